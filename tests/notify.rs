//! Notified waits against real `redis-server` processes (3 independent masters, a 3+3
//! cluster), all started by the harness on free loopback ports: a waiter retries when the holder
//! releases, well before its backoff timer; a killed subscriber connection only degrades waits
//! to polling; many waiters on one resource all get their turn, never two at once.
//!
//! The assertions are about decisions and order (who holds, whether a waiter was notified
//! rather than timed out), with deadlines generous enough for a loaded machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

mod support;
use support::raw;

/// A backoff so long that a waiter acquiring within `PROMPT` of the release was notified: it
/// retries at a random point in `[0, 60 s]`, so polling alone acquires within `PROMPT` about
/// one time in six, and only ever makes this test pass, never fail.
const LONG_BACKOFF: Duration = Duration::from_secs(60);
const PROMPT: Duration = Duration::from_secs(10);

fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::once())
}

fn long_wait() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .base_delay(LONG_BACKOFF)
        .max_delay(LONG_BACKOFF)
        .use_holder_ttl(false)
}

/// The release channel of a voter key (the key with the suffix `release.lua` appends).
fn channel(key: &[u8]) -> Vec<u8> {
    [key, b":released"].concat()
}

/// How many connections of the node at `addr` subscribe to `channel` (sharded pub/sub).
fn shard_subscribers(addr: &str, channel: &[u8]) -> i64 {
    let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query(&mut raw(addr))
        .expect("PUBSUB SHARDNUMSUB");
    match reply.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("unexpected SHARDNUMSUB reply {other:?}"),
    }
}

/// Wait (bounded) until every voter of `resource` has `count` subscribers on its channel.
async fn until_subscribed(manager: &LockManager, resource: &str, count: i64) {
    let voters = manager.voters_of(resource).await.expect("voters");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let subscribed = voters
            .iter()
            .all(|(addr, key)| shard_subscribers(addr, &channel(key)) == count);
        if subscribed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "voters of {resource} never reached {count} subscriber(s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A waiter with a long backoff takes the lock promptly after the holder releases it.
async fn waiter_is_notified(urls: &[String]) {
    let holder = LockManager::connect(urls, config()).await.expect("holder");
    let waiting = LockManager::connect(urls, config()).await.expect("waiter");
    let mut lock = holder
        .acquire("notify/prompt", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free resource");
    let waiter = {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let lock = waiting
                .acquire_with("notify/prompt", Duration::from_secs(30), &long_wait())
                .await;
            (lock, Instant::now())
        })
    };
    // The waiter subscribes once its first attempt found the resource held.
    until_subscribed(&waiting, "notify/prompt", 1).await;
    assert!(holder.release(&mut lock).await.expect("release"));
    let released = Instant::now();
    let (acquired, at) = tokio::time::timeout(Duration::from_secs(90), waiter)
        .await
        .expect("the waiter returns")
        .expect("waiter task");
    let mut acquired = acquired
        .expect("no error")
        .expect("the waiter took the lock");
    let after = at.saturating_duration_since(released);
    assert!(
        after < PROMPT,
        "took {after:?} after the release: the waiter polled instead of being notified"
    );
    // The last waiter out unsubscribes.
    until_subscribed(&waiting, "notify/prompt", 0).await;
    waiting.release(&mut acquired).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_waiter_is_notified_of_the_release() {
    let servers = Standalone::start(3).expect("3 masters");
    waiter_is_notified(&servers.urls()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_waiter_is_notified_of_the_release() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    waiter_is_notified(&[cluster.seed_url()]).await;
}

/// Killing the subscriber connections leaves the waiter polling; the next wait resubscribes,
/// and the waiter still takes the lock once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriber_degrades_to_polling() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let holder = LockManager::connect(&urls, config()).await.expect("holder");
    let waiting = LockManager::connect(&urls, config()).await.expect("waiter");
    let mut lock = holder
        .acquire("notify/killed", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free resource");
    let polling = RetryPolicy::new()
        .max_attempts(1000)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(300));
    let waiter = {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            waiting
                .acquire_with("notify/killed", Duration::from_secs(30), &polling)
                .await
        })
    };
    until_subscribed(&waiting, "notify/killed", 1).await;
    for server in servers.nodes() {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut server.connection().expect("connection"))
            .expect("CLIENT KILL");
    }
    // The waiter keeps retrying on its timer and resubscribes on a later wait.
    until_subscribed(&waiting, "notify/killed", 1).await;
    assert!(
        !waiter.is_finished(),
        "the waiter gave up while the lock was held"
    );
    assert!(holder.release(&mut lock).await.expect("release"));
    let mut acquired = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the waiter returns")
        .expect("waiter task")
        .expect("no error")
        .expect("the waiter took the lock");
    waiting.release(&mut acquired).await.expect("release");
}

/// 16 tasks (4 managers of 4 tasks, so both the in-process queue and the notices between
/// managers are exercised) each take one resource `ROUNDS` times, holding it 1 ms: all of them
/// finish, and no two ever hold it at once. Prints the longest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_waiters_all_finish_without_overlap() {
    const MANAGERS: usize = 4;
    const TASKS_PER_MANAGER: usize = 4;
    const ROUNDS: usize = 10;
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let retry = RetryPolicy::new()
        .max_attempts(100_000)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(100));
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..MANAGERS {
        let manager = LockManager::connect(&urls, config().retry(retry.clone()))
            .await
            .expect("manager");
        for _ in 0..TASKS_PER_MANAGER {
            let (manager, inside) = (manager.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let mut longest = Duration::ZERO;
                for _ in 0..ROUNDS {
                    let start = Instant::now();
                    let mut lock = manager
                        .acquire("notify/contended", Duration::from_secs(10))
                        .await
                        .expect("no error")
                        .expect("acquired within the retry budget");
                    longest = longest.max(start.elapsed());
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(manager.release(&mut lock).await.expect("release"));
                }
                longest
            }));
        }
    }
    let mut longest = Duration::ZERO;
    for task in tasks {
        let task_longest = tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("every task finishes")
            .expect("task");
        longest = longest.max(task_longest);
    }
    println!(
        "16 tasks x {ROUNDS} acquisitions, hold 1 ms: longest wait {longest:?} (loaded machine, \
         not a benchmark)"
    );
}
