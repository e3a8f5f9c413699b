//! `RedisDistributedLock` against real `redis-server` processes: 3 independent masters and a
//! 3+3 cluster, started by the harness on free loopback ports.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager, MAX_TTL, Mode, RedisDistributedLock};
use redlock_harness::{Cluster, ClusterOptions, Standalone};
use tokio::time::Instant;

mod support;
use support::handle;

/// Generous per-node timeout: these tests check decisions, not speed, on a loaded machine.
fn config() -> LockConfig {
    LockConfig::new().node_timeout(Duration::from_millis(500))
}

/// The whole method set on one resource, with two handles sharing one manager.
async fn methods_follow_the_contract(urls: &[String]) {
    let manager = LockManager::new(urls, config()).expect("manager");
    let ttl = Duration::from_secs(10);
    let mut a = handle(&manager, "facade/methods", ttl);
    let mut b = handle(&manager, "facade/methods", ttl);

    assert!(!a.is_locked().await.expect("is_locked"));
    assert_eq!(a.validity_deadline(), None);
    assert!(a.acquire().await.expect("a acquires"));
    // Not re-entrant, and nobody else gets it.
    assert!(!a.acquire().await.expect("a again"));
    assert!(!b.acquire().await.expect("b"));
    assert!(a.is_locked().await.expect("is_locked a"));
    assert!(b.is_locked().await.expect("is_locked b"));

    let deadline = a.validity_deadline().expect("a holds a lock");
    let now = std::time::Instant::now();
    assert!(deadline > now && deadline <= now + ttl);

    let info = a.get_lock_info().await.expect("info a");
    assert!(info.locked && info.held_by_caller);
    let token = a.lock().expect("a's lock").token().to_string();
    assert_eq!(info.holder.as_deref(), Some(token.as_str()));
    assert!(info.remaining.is_some_and(|r| r <= ttl));
    assert_eq!(info.nodes.len(), 3);
    let info = b.get_lock_info().await.expect("info b");
    assert!(info.locked && !info.held_by_caller);

    // A handle that holds nothing can neither release nor extend, and touches nothing.
    assert!(!b.release().await.expect("b release"));
    assert!(!b.extend(Duration::from_secs(30)).await.expect("b extend"));
    let info = a.get_lock_info().await.expect("info after b");
    assert!(info.held_by_caller);

    // Extend sets the remaining time to just under the new TTL; it does not add to it.
    let longer = Duration::from_secs(30);
    assert!(a.extend(longer).await.expect("a extends"));
    let left = a.lock().expect("a's lock").remaining();
    assert!(left > ttl && left <= longer, "remaining {left:?}");
    assert!(matches!(
        a.extend(Duration::ZERO).await,
        Err(LockError::InvalidTtl { .. })
    ));

    assert!(a.release().await.expect("a releases"));
    assert!(!a.release().await.expect("a again"));
    assert!(!a.extend(ttl).await.expect("extend after release"));
    assert!(!b.is_locked().await.expect("is_locked after release"));
    assert!(b.acquire().await.expect("b acquires"));
    assert!(b.release().await.expect("b releases"));
}

/// A waiter with retries gets the lock once an abandoned holder's TTL runs out, not before.
async fn retry_waits_out_an_expired_holder(urls: &[String]) {
    let manager = LockManager::new(urls, config()).expect("manager");
    let ttl = Duration::from_millis(800);
    let mut holder = handle(&manager, "facade/expiring", ttl);
    let mut waiter = handle(&manager, "facade/expiring", Duration::from_secs(5));

    assert!(holder.acquire().await.expect("holder"));
    let holder_deadline = holder.validity_deadline().expect("deadline");
    // The holder never releases: it "crashed".
    assert!(!waiter.acquire().await.expect("single attempt"));
    assert!(
        !waiter
            .acquire_with_retry(0, Duration::from_millis(10))
            .await
            .expect("no retries")
    );

    let start = Instant::now();
    assert!(
        waiter
            .acquire_with_retry(100, Duration::from_millis(50))
            .await
            .expect("retries"),
        "the waiter should get the lock once the holder's keys expire"
    );
    assert!(
        std::time::Instant::now() >= holder_deadline,
        "granted before the holder's validity ended"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(waiter.get_lock_info().await.expect("info").held_by_caller);
    assert!(!holder.release().await.expect("holder lost it"));
    assert!(waiter.release().await.expect("waiter releases"));
}

/// Many handles on one resource, one per task over one shared manager: exactly one wins.
async fn one_winner_among_concurrent_handles(urls: &[String]) {
    let manager = LockManager::new(urls, config()).expect("manager");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut h = handle(&manager, "facade/race", Duration::from_secs(10));
            // The task owns its handle and gives it back with the outcome.
            tokio::spawn(async move {
                // Retries with jitter: one-shot attempts that all split the votes would leave
                // no winner (a liveness outcome, not what this test is about).
                let won = h.acquire_with_retry(10, Duration::from_millis(20)).await;
                (h, won)
            })
        })
        .collect();
    let mut winners = 0;
    let mut handles = Vec::new();
    for task in tasks {
        let (h, won) = task.await.expect("task");
        if won.expect("acquire") {
            winners += 1;
        }
        handles.push(h);
    }
    assert_eq!(winners, 1);
    let mut released = 0;
    for h in &mut handles {
        if h.release().await.expect("release") {
            released += 1;
        }
    }
    assert_eq!(released, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_independent_masters() {
    let servers = Standalone::start(3).expect("3 redis-server processes");
    let urls = servers.urls();
    let manager = LockManager::new(&urls, config()).expect("manager");
    assert_eq!(manager.mode().await.expect("mode"), Mode::Independent);
    methods_follow_the_contract(&urls).await;
    retry_waits_out_an_expired_holder(&urls).await;
    one_winner_among_concurrent_handles(&urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::default()))
        .await
        .expect("join")
        .expect("3+3 cluster");
    // One URL of a cluster node: the voters are the cluster's masters.
    let urls = vec![cluster.seed_url()];
    let manager = LockManager::new(&urls, config()).expect("manager");
    assert_eq!(manager.mode().await.expect("mode"), Mode::Cluster);
    methods_follow_the_contract(&urls).await;
    retry_waits_out_an_expired_holder(&urls).await;
    one_winner_among_concurrent_handles(&urls).await;
    drop(cluster);
}

#[test]
fn bad_input_to_new_is_an_error_not_a_panic() {
    let node = || vec!["redis://127.0.0.1:7000".to_string()];
    let new = |nodes: Vec<String>, resource: &str, ttl: Duration| {
        RedisDistributedLock::new(nodes, resource.to_string(), ttl)
    };
    let second = Duration::from_secs(1);
    assert!(matches!(
        new(node(), "", second),
        Err(LockError::InvalidResource(_))
    ));
    assert!(matches!(
        new(node(), &"x".repeat(100_000), second),
        Err(LockError::InvalidResource(_))
    ));
    for ttl in [
        Duration::ZERO,
        Duration::from_micros(500),
        // Shorter than the drift allowance (1% + 2 ms): no validity could ever be left.
        Duration::from_millis(2),
        MAX_TTL + second,
        Duration::MAX,
    ] {
        let err = new(node(), "r", ttl).expect_err("bad TTL");
        assert!(
            matches!(err, LockError::InvalidTtl { .. }),
            "{ttl:?}: {err}"
        );
    }
    for nodes in [
        vec![],
        vec!["127.0.0.1:7000".to_string()],
        vec!["http://127.0.0.1:7000".to_string()],
        vec!["redis://127.0.0.1:notaport".to_string()],
        vec![
            "redis://127.0.0.1:7000".to_string(),
            "redis://127.0.0.1:7000".to_string(),
        ],
    ] {
        let err = new(nodes.clone(), "r", second).expect_err("bad URL");
        assert!(
            matches!(err, LockError::InvalidUrl { .. }),
            "{nodes:?}: {err}"
        );
        assert!(err.is_invalid_input());
    }
    let err = RedisDistributedLock::with_config(
        node(),
        "r".to_string(),
        second,
        LockConfig::new().drift_factor(0.9),
    )
    .expect_err("bad config");
    assert!(matches!(err, LockError::InvalidConfig(_)), "{err}");
    // Valid input connects to nothing yet, so it succeeds without a server.
    assert!(new(node(), "r", second).is_ok());
}
