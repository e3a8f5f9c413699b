//! Replica-acknowledged votes (`LockConfig::replica_acks`) against real `redis-server`
//! processes: a 3+3 cluster with fast failover, and standalone masters with and without
//! replicas, all started by the harness on free loopback ports.
//!
//! What is asserted: with acks, a promoted replica always has the key of a vote that counted;
//! a vote its replica did not acknowledge fails with `NotReplicated`; a lock held on three
//! acknowledged votes survives a failover plus one more lost vote. What is measured and
//! printed (not asserted, it depends on timing): how often a promoted replica misses the key
//! without acks.
//!
//! `REDLOCK_ACKS_ROUNDS` sets the rounds of the repeated failover (default 6 per variant).

use std::time::{Duration, Instant};

use redlock_cluster::{Lock, LockConfig, LockError, LockManager, Mode, NodeError, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone, info_field};

mod support;
use support::{addr_of, del, get, index_of, raw, role};

/// How long a failover, a restart and the return to health may take on a loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(45);
/// Long enough to outlive a failover and the reads after it.
const HELD_TTL: Duration = Duration::from_secs(20);

/// Generous per-node timeout (a loaded machine), one attempt per call; cluster mode, so that
/// a seed killed by a test is skipped.
fn plain() -> LockConfig {
    base().mode(Mode::Cluster)
}

/// The settings of [`plain`] in any mode.
fn base() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(1000))
        .connect_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::once())
}

/// [`plain`] with one replica acknowledging every vote within 500 ms.
fn acked() -> LockConfig {
    plain().replica_acks(1, Duration::from_millis(500))
}

fn rounds() -> usize {
    std::env::var("REDLOCK_ACKS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .clamp(1, 20)
}

/// Acquire `resource` (bounded tries) until `want` voters granted it; releases lesser locks.
/// How many voters hold `lock`'s token, once the votes still in flight when the round was
/// decided (on the first quorum) have landed: waits (bounded) until `want` do.
async fn holders(manager: &LockManager, lock: &Lock, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let held = match manager.inspect(lock.resource(), Some(lock.token())).await {
            Ok(info) => info
                .nodes
                .iter()
                .filter(|n| n.holder.as_deref() == Some(lock.token().as_str()))
                .count(),
            Err(_) => 0,
        };
        if held >= want || Instant::now() >= deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lock of `resource` held on `want` voters. A round is decided by the first quorum: the
/// votes still in flight then land right after, which `holders` and a pause as long as the
/// acks timeout wait for. The caller fails over a voter whose vote decided the round (so its
/// vote was acknowledged when acks are on): under load the same voter can be the slowest
/// every time, so no fixed voter is sure to be among the deciding ones.
async fn acquire_with_votes(manager: &LockManager, resource: &str, want: usize) -> Lock {
    let mut seen = Vec::new();
    for _ in 0..12 {
        match manager.try_acquire(resource, HELD_TTL).await {
            Ok(Some(lock)) if holders(manager, &lock, want).await >= want => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return lock;
            }
            Ok(Some(mut lock)) => {
                seen.push(format!("granted by {:?}", lock.granted_by()));
                let _ = manager.release(&mut lock).await;
            }
            other => seen.push(format!("{other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no acquire of {resource} got {want} votes in 12 tries: {seen:?}");
}

/// Kill voter 0's master right after a lock was granted, wait for its replica, and read the
/// key there; then bring the killed node back (as a replica) and wait until healthy. Returns
/// whether the promoted replica had the lock's token.
async fn fail_over_voter_0(cluster: Cluster, config: LockConfig, round: usize) -> (Cluster, bool) {
    let urls = cluster.urls();
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    let resource = format!("acks/held-{round}");
    let mut lock = acquire_with_votes(&manager, &resource, 3).await;
    let voters = manager.voters_of(&resource).await.expect("voters");
    // The first voter whose vote decided the round (acknowledged when acks are on).
    let decided = voters
        .iter()
        .position(|(addr, _)| lock.granted_by().contains(addr))
        .expect("a deciding voter");
    let victim = index_of(&cluster, &voters[decided].0);
    let (mut cluster, promoted) = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        let promoted = cluster
            .kill_and_fail_over(victim, FAILOVER_TIMEOUT)
            .expect("failover");
        (cluster, promoted)
    })
    .await
    .expect("failover thread");
    let kept = get(&addr_of(&cluster, promoted), &voters[decided].1).as_deref()
        == Some(lock.token().as_str());
    let _ = manager.release(&mut lock).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.node_mut(victim).restart().expect("restart");
        cluster
            .wait_healthy(FAILOVER_TIMEOUT)
            .expect("healthy again");
        cluster
    })
    .await
    .expect("restart thread");
    (cluster, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_keeps_every_acknowledged_key() {
    let mut cluster = Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster");
    let rounds = rounds();
    let (mut missed_plain, mut missed_acked) = (0, 0);
    for round in 0..rounds {
        let (back, kept) = fail_over_voter_0(cluster, plain(), 2 * round).await;
        missed_plain += usize::from(!kept);
        let (back, kept) = fail_over_voter_0(back, acked(), 2 * round + 1).await;
        missed_acked += usize::from(!kept);
        cluster = back;
        eprintln!("round {round}: misses so far without acks {missed_plain}, with {missed_acked}");
    }
    eprintln!(
        "fail over voter 0 while held, {rounds} rounds each: the promoted replica missed the key \
         {missed_plain} times without acks, {missed_acked} times with replica_acks(1)"
    );
    assert_eq!(
        missed_acked, 0,
        "an acknowledged vote was lost in a failover to its acknowledging replica"
    );
}

/// Cut voter 0's master off from its replica so that the next write never reaches it: pause
/// the replica (so it cannot reconnect), then drop the replication link on the master. The
/// write stays in the master's backlog only. Returns the replica's index.
fn cut_off_replica(cluster: &Cluster, master: usize) -> usize {
    let replica = cluster
        .replica_of(master)
        .expect("voter 0's master has a replica");
    cluster.nodes()[replica].pause().expect("pause replica");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut raw(&addr_of(cluster, master)))
        .expect("CLIENT KILL TYPE replica");
    assert!(killed >= 1, "the master had no replica link to drop");
    replica
}

/// Kill `master`, resume its cut-off `replica`, and wait (bounded) until the cluster promoted
/// it and is healthy.
fn kill_and_promote_cut_off(cluster: &mut Cluster, master: usize, replica: usize) {
    cluster.node_mut(master).kill().expect("kill master");
    cluster.nodes()[replica].resume().expect("resume replica");
    let addr = addr_of(cluster, replica);
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while role(&addr).as_deref() != Some("master") {
        assert!(
            Instant::now() < deadline,
            "the replica was not promoted in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster
        .wait_healthy(FAILOVER_TIMEOUT)
        .expect("healthy after the failover");
}

/// The "second fault": voter 0's master fails over to a replica that never got the first
/// client's write, and voter 1 loses its key (a raw `DEL` stands in for any lost vote).
/// Without acks the first lock counted voter 0's unreplicated vote, so a second client gets
/// voters 0 and 1: two holders. With acks voter 0's vote is refused at acquire time
/// (`NotReplicated`); and a lock held on three acknowledged votes keeps voter 0's key through
/// the failover, so the same two faults leave it two votes and the second client is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_plus_one_lost_vote_no_longer_breaks_an_acknowledged_lock() {
    let cluster = Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster");
    let urls = cluster.urls();

    // 1. Without acks: two holders.
    let first = LockManager::connect(&urls, plain()).await.expect("first");
    let resource = "acks/second-fault-plain";
    let voters = first.voters_of(resource).await.expect("voters");
    let master = index_of(&cluster, &voters[0].0);
    let replica = cut_off_replica(&cluster, master);
    let lock = first
        .try_acquire(resource, HELD_TTL)
        .await
        .expect("acquire")
        .expect("the free lock is granted");
    // Decided on the first quorum; the third vote lands right after.
    assert_eq!(holders(&first, &lock, 3).await, 3, "{lock:?}");
    let (mut cluster, voters) = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        kill_and_promote_cut_off(&mut cluster, master, replica);
        (cluster, voters)
    })
    .await
    .expect("failover thread");
    assert_eq!(
        get(&addr_of(&cluster, replica), &voters[0].1),
        None,
        "the cut-off replica got the write after all"
    );
    del(&voters[1].0, &voters[1].1);
    let second = LockManager::connect(&cluster.urls(), plain())
        .await
        .expect("second");
    let stolen = second
        .try_acquire(resource, HELD_TTL)
        .await
        .expect("second acquire");
    eprintln!(
        "without acks, after the failover to a replica without the key and one lost vote: \
         first lock valid {}, second client granted: {:?}",
        lock.is_valid(),
        stolen.as_ref().map(Lock::granted_by)
    );
    assert!(
        lock.is_valid() && stolen.is_some(),
        "without acks the two faults should give the second client the lock while the first \
         is valid (the scenario lost its teeth)"
    );
    cluster = tokio::task::spawn_blocking(move || {
        cluster.node_mut(master).restart().expect("restart");
        cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
        cluster
    })
    .await
    .expect("restart thread");

    // 2. With acks, the cut-off replica: voter 0's vote does not count.
    let urls = cluster.urls();
    let first = LockManager::connect(&urls, acked()).await.expect("first");
    let resource = "acks/second-fault-acked";
    let voters = first.voters_of(resource).await.expect("voters");
    let master = index_of(&cluster, &voters[0].0);
    let replica = cut_off_replica(&cluster, master);
    let outcome = first.try_acquire(resource, HELD_TTL).await;
    cluster.nodes()[replica].resume().expect("resume replica");
    let mut lock = outcome.expect("acquire").expect("voters 1 and 2 grant");
    eprintln!(
        "with acks and voter 0's replica cut off: granted by {:?}",
        lock.granted_by()
    );
    assert!(
        !lock.granted_by().contains(&voters[0].0),
        "voter 0's unacknowledged vote counted: {lock:?}"
    );
    first.release(&mut lock).await.expect("release");
    cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
        cluster
    })
    .await
    .expect("wait thread");

    // 3. With acks, three acknowledged votes: the same two faults leave two.
    let first = LockManager::connect(&urls, acked()).await.expect("first");
    let lock = acquire_with_votes(&first, resource, 3).await;
    // Fail over a voter whose acknowledged vote decided the round; lose another one's key.
    let decided = voters
        .iter()
        .position(|(addr, _)| lock.granted_by().contains(addr))
        .expect("a deciding voter");
    let other = (decided + 1) % voters.len();
    let victim = index_of(&cluster, &voters[decided].0);
    let (cluster, promoted) = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        let promoted = cluster
            .kill_and_fail_over(victim, FAILOVER_TIMEOUT)
            .expect("failover");
        (cluster, promoted)
    })
    .await
    .expect("failover thread");
    assert_eq!(
        get(&addr_of(&cluster, promoted), &voters[decided].1).as_deref(),
        Some(lock.token().as_str()),
        "the acknowledging replica lost the key"
    );
    del(&voters[other].0, &voters[other].1);
    let second = LockManager::connect(&cluster.urls(), plain())
        .await
        .expect("second");
    for _ in 0..5 {
        let stolen = second
            .try_acquire(resource, HELD_TTL)
            .await
            .expect("second acquire");
        assert!(
            stolen.is_none() || !lock.is_valid(),
            "with acks the second client got the lock while the first is valid: {stolen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lock.is_valid(), "the test outlived the first lock");
    eprintln!("with acks, after the failover and one lost vote: the second client was refused");
}

/// Standalone masters without replicas: `connect` names them, and every acknowledged vote
/// fails with `NotReplicated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_masters_without_replicas_are_named() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = base()
        .mode(Mode::Independent)
        .replica_acks(1, Duration::from_millis(50));
    let error = LockManager::connect(&urls, config.clone())
        .await
        .expect_err("masters without replicas");
    let message = error.to_string();
    assert!(
        matches!(error, LockError::InvalidConfig(_)) && message.contains("connected_slaves:0 < 1"),
        "{message}"
    );
    assert!(
        urls.iter()
            .all(|u| message.contains(u.trim_start_matches("redis://")))
    );
    let manager = LockManager::new(&urls, config).expect("manager");
    let Err(LockError::Unavailable { failures, .. }) =
        manager.try_acquire("acks/no-replicas", HELD_TTL).await
    else {
        panic!("an acknowledged vote without replicas counted");
    };
    assert!(
        failures.iter().all(|f| f.error
            == NodeError::NotReplicated {
                acked: 0,
                needed: 1
            }),
        "{failures}"
    );
}

/// Standalone masters, each with a replica (`REPLICAOF`): acknowledged acquire and extend
/// work, and each replica holds the key and its new TTL when the vote returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_masters_with_replicas_vote_with_acks() {
    let servers = Standalone::start(6).expect("3 masters + 3 replicas");
    let masters: Vec<String> = servers.urls()[..3].to_vec();
    for i in 0..3 {
        let master = &servers.nodes()[i];
        let () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(master.port())
            .query(&mut servers.nodes()[i + 3].connection().expect("replica"))
            .expect("REPLICAOF");
    }
    let addr = |i: usize| format!("127.0.0.1:{}", servers.nodes()[i].port());
    let deadline = Instant::now() + Duration::from_secs(30);
    while (3..6).any(|i| {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut raw(&addr(i)))
            .unwrap_or_default();
        info_field(&info, "master_link_status") != Some("up")
    }) {
        assert!(Instant::now() < deadline, "the replicas did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The masters' `connected_slaves` is read when the manager connects.
    let config = base()
        .mode(Mode::Independent)
        .replica_acks(1, Duration::from_millis(500));
    let manager = LockManager::connect(&masters, config)
        .await
        .expect("masters with replicas");
    let mut lock = manager
        .try_acquire("acks/independent", HELD_TTL)
        .await
        .expect("acquire")
        .expect("granted");
    assert_eq!(holders(&manager, &lock, 3).await, 3);
    let key = manager.voters_of("acks/independent").await.expect("voters")[0]
        .1
        .clone();
    // Every vote that counted was acknowledged: the replicas of the masters that decided the
    // round have the key. (A late grant from the third master belongs to the lock too, but the
    // round did not wait for its acknowledgement.)
    let counted: Vec<usize> = (0..3)
        .filter(|&i| lock.granted_by().contains(&addr(i)))
        .collect();
    assert!(counted.len() >= 2, "{:?}", lock.granted_by());
    for i in counted {
        assert_eq!(
            get(&addr(i + 3), &key).as_deref(),
            Some(lock.token().as_str())
        );
    }
    let longer = HELD_TTL * 3;
    assert!(manager.extend(&mut lock, longer).await.expect("extend"));
    let counted: Vec<usize> = (0..3)
        .filter(|&i| lock.granted_by().contains(&addr(i)))
        .map(|i| i + 3)
        .collect();
    assert!(counted.len() >= 2, "{:?}", lock.granted_by());
    for i in counted {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query(&mut raw(&addr(i)))
            .expect("PTTL");
        assert!(
            pttl > i64::try_from(HELD_TTL.as_millis()).unwrap_or(i64::MAX),
            "replica {i} does not have the extended TTL: {pttl} ms"
        );
    }
    assert!(manager.release(&mut lock).await.expect("release"));
}
