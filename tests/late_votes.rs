//! Every vote reaches every voter (issue 14.7): a round decided on its first quorum still
//! sends the slower votes, even those whose connection opened only after the decision (a
//! fresh manager's first lock), and a late grant belongs to the lock: listed in
//! `granted_by`, and deleted by the lock's release, even when the release overtakes it.
//!
//! Before: 15 of 50 fresh managers' first locks in cluster mode held keys on only 2 of their
//! 3 masters (a vote whose connection opened after the decision was never sent), so one lost
//! key cost such a lock its majority.

use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, RedisDistributedLock};
use redlock_harness::{Cluster, ClusterOptions, Standalone, raw_connection};

const TTL: Duration = Duration::from_secs(30);
const MANAGERS: usize = 50;

/// Whether `key` exists on the node at `addr` (a raw connection to that node).
fn exists(addr: &str, key: &[u8]) -> bool {
    let mut con = raw_connection(&format!("redis://{addr}")).expect("raw connection");
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut con)
        .expect("EXISTS")
        == 1
}

/// Wait (bounded) until `check` holds; late votes land in background tasks.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `MANAGERS` fresh managers over `urls`, one first lock each: every lock's key must be on
/// every voter shortly after the grant, and gone from every voter after its release.
async fn fresh_managers_hold_keys_on_every_voter(urls: &[String], what: &str) {
    let mut missing = 0usize;
    let mut listed_short = 0usize;
    let mut locks = Vec::new();
    for i in 0..MANAGERS {
        let manager = LockManager::new(urls, LockConfig::new()).expect("manager");
        let resource = format!("late/{what}/{i}");
        let lock = manager
            .try_acquire(&resource, TTL)
            .await
            .expect("acquire")
            .expect("free resource");
        let voters = manager.voters_of(&resource).await.expect("voters");
        locks.push((manager, lock, voters));
    }
    for (_, lock, voters) in &locks {
        let all_there = eventually(Duration::from_millis(500), || {
            voters.iter().all(|(addr, key)| exists(addr, key))
        })
        .await;
        if !all_there {
            missing += 1;
        }
        if lock.granted_by().len() != voters.len() {
            listed_short += 1;
        }
    }
    println!(
        "{what}: {missing} of {MANAGERS} fresh managers' locks miss a key on a reachable voter; \
         {listed_short} list fewer voters than hold the key"
    );
    assert_eq!(
        missing, 0,
        "{what}: locks with a key missing on a reachable voter"
    );
    assert_eq!(
        listed_short, 0,
        "{what}: late grants missing from granted_by"
    );
    for (manager, mut lock, voters) in locks {
        assert!(manager.release(&mut lock).await.expect("release"));
        let gone = eventually(Duration::from_secs(2), || {
            voters.iter().all(|(addr, key)| !exists(addr, key))
        })
        .await;
        assert!(gone, "{what}: a key is left after the release");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cluster_managers_first_lock_holds_a_key_on_every_master() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    fresh_managers_hold_keys_on_every_voter(&[cluster.seed_url()], "cluster, one seed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_independent_managers_first_lock_holds_a_key_on_every_master() {
    let servers = Standalone::start(3).expect("3 masters");
    fresh_managers_hold_keys_on_every_voter(&servers.urls(), "3 masters").await;
}

/// A release while a vote is still held on one voter (`CLIENT PAUSE WRITE`): the lock is
/// granted by the other two and released meanwhile, and the grant that lands afterwards is
/// deleted (here by the release queued behind it on the same connection), so no key
/// outlives the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_grant_after_the_release_is_deleted_when_it_lands() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, LockConfig::new())
        .await
        .expect("manager");
    let slow = &servers.nodes()[2];
    let mut con = slow.connection().expect("connection");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("WRITE")
        .query(&mut con)
        .expect("CLIENT PAUSE");
    let mut handle =
        RedisDistributedLock::with_manager(manager.clone(), "late/overtaken".into(), TTL)
            .expect("handle");
    assert!(handle.acquire().await.expect("acquire"), "two voters grant");
    let voters = manager.voters_of("late/overtaken").await.expect("voters");
    let (slow_addr, key) = &voters[2];
    // The late vote is still held by the pause: the release deletes the two keys it finds
    // (its own delete on the paused voter waits behind the vote, or overtakes it).
    assert!(handle.release().await.expect("release"));
    assert!(!exists(&voters[0].0, key) && !exists(&voters[1].0, key));
    let gone = eventually(Duration::from_secs(3), || !exists(slow_addr, key)).await;
    assert!(gone, "the late grant on {slow_addr} outlived the release");
    // And it stays gone (it was deleted, not merely not yet written).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!exists(slow_addr, key));
}
