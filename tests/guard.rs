//! `LockGuard` against real `redis-server` processes started by the harness: release on drop,
//! explicit release, the auto-extending watchdog, and the lost-lock signal.

use std::time::Duration;

use redlock_cluster::{
    GuardOptions, LockConfig, LockManager, LostReason, RedisDistributedLock, RetryPolicy,
};
use redlock_harness::Standalone;
use tokio::time::{Instant, sleep, timeout};

fn manager(urls: &[String]) -> LockManager {
    LockManager::new(
        urls,
        LockConfig::new().node_timeout(Duration::from_millis(200)),
    )
    .expect("manager")
}

/// Polls `acquire` until it succeeds or `limit` passes; returns how long it took.
async fn time_until_free(manager: &LockManager, resource: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(lock) = manager
            .try_acquire(resource, Duration::from_secs(5))
            .await
            .expect("probe")
        {
            manager.release(&lock).await.expect("release probe");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{resource} still held after {limit:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_or_releasing_a_guard_frees_the_lock() {
    let servers = Standalone::start(3).expect("3 masters");
    let owner = manager(&servers.urls());
    let other = manager(&servers.urls());
    // A TTL far longer than the bound below, so only a release can free the lock in time.
    let ttl = Duration::from_secs(60);

    let guard = owner
        .lock_guard("guard/drop", ttl, GuardOptions::new())
        .await
        .expect("acquire")
        .expect("free");
    assert!(guard.is_valid() && !guard.is_lost());
    assert!(
        other
            .try_acquire("guard/drop", ttl)
            .await
            .expect("b")
            .is_none()
    );
    drop(guard);
    let took = time_until_free(&other, "guard/drop", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));

    let guard = owner
        .lock_guard("guard/release", ttl, GuardOptions::new())
        .await
        .expect("acquire")
        .expect("free");
    let token = guard.token();
    let info = owner
        .inspect("guard/release", Some(&token))
        .await
        .expect("info");
    assert!(info.held_by_caller);
    assert!(guard.release().await.expect("release"));
    assert!(!other.is_locked("guard/release").await.expect("is_locked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_keeps_the_lock_past_three_ttls() {
    let servers = Standalone::start(3).expect("3 masters");
    let owner = manager(&servers.urls());
    let other = manager(&servers.urls());
    let ttl = Duration::from_millis(400);

    let guard = owner
        .lock_guard("guard/watchdog", ttl, GuardOptions::new().auto_extend(true))
        .await
        .expect("acquire")
        .expect("free");
    let first_deadline = guard.validity_deadline();
    let start = Instant::now();
    while start.elapsed() < ttl * 4 {
        assert!(!guard.is_lost(), "lost: {:?}", guard.lost_reason());
        assert!(guard.is_valid());
        assert!(
            other
                .try_acquire("guard/watchdog", ttl)
                .await
                .expect("probe")
                .is_none(),
            "another client got the lock after {:?}",
            start.elapsed()
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert!(guard.validity_deadline() > first_deadline + ttl * 2);
    let info = owner
        .inspect("guard/watchdog", Some(&guard.token()))
        .await
        .expect("info");
    assert!(info.held_by_caller);
    assert!(guard.release().await.expect("still held at release"));
    assert!(!other.is_locked("guard/watchdog").await.expect("is_locked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_extension_the_signal_fires_at_expiry() {
    let servers = Standalone::start(3).expect("3 masters");
    let owner = manager(&servers.urls());
    let ttl = Duration::from_millis(500);
    let guard = owner
        .lock_guard("guard/expiry", ttl, GuardOptions::new())
        .await
        .expect("acquire")
        .expect("free");
    let deadline = guard.validity_deadline();
    let reason = timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("lost fires");
    assert!(matches!(reason, LostReason::Expired), "{reason}");
    assert!(std::time::Instant::now() >= deadline);
    assert!(guard.is_lost() && !guard.is_valid());
    // A second wait completes at once.
    assert!(matches!(guard.lost().await, LostReason::Expired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hold_ends_the_extensions() {
    let servers = Standalone::start(3).expect("3 masters");
    let owner = manager(&servers.urls());
    let ttl = Duration::from_millis(300);
    let max_hold = Duration::from_millis(1000);
    let start = Instant::now();
    let guard = owner
        .lock_guard(
            "guard/max-hold",
            ttl,
            GuardOptions::new().auto_extend(true).max_hold(max_hold),
        )
        .await
        .expect("acquire")
        .expect("free");
    let reason = timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("lost fires");
    assert!(
        matches!(reason, LostReason::MaxHold(limit) if limit == max_hold),
        "{reason}"
    );
    // The lock outlived its first TTL (it was extended) and was held until max_hold.
    assert!(start.elapsed() >= max_hold);
    // No more extensions: it expires on its own within one TTL.
    let took = time_until_free(&owner, "guard/max-hold", Duration::from_secs(5)).await;
    assert!(took <= Duration::from_secs(5));
    assert!(!guard.release().await.expect("release after expiry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_master_quorum_fires_the_signal_within_one_ttl() {
    let mut servers = Standalone::start(3).expect("3 masters");
    let owner = manager(&servers.urls());
    let ttl = Duration::from_millis(1500);
    let guard = owner
        .lock_guard("guard/lost", ttl, GuardOptions::new().auto_extend(true))
        .await
        .expect("acquire")
        .expect("free");
    // Let at least one extension succeed first.
    sleep(ttl / 2).await;
    assert!(!guard.is_lost());

    tokio::task::block_in_place(|| {
        servers.node_mut(0).kill().expect("kill node 0");
        servers.node_mut(1).kill().expect("kill node 1");
    });
    let killed = Instant::now();
    let reason = timeout(ttl, guard.lost())
        .await
        .expect("the lost signal fires within one TTL of losing the quorum");
    assert!(
        matches!(
            reason,
            LostReason::ExtendFailed(ref e) if e.is_unavailable()
        ) || matches!(reason, LostReason::Expired),
        "{reason}"
    );
    assert!(killed.elapsed() < ttl);
    assert!(guard.is_lost() && !guard.is_valid());
    // Releasing a lost guard reports the outage instead of pretending.
    assert!(guard.release().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_guard_and_select_on_lost() {
    let servers = Standalone::start(3).expect("3 masters");
    let mut lock = RedisDistributedLock::with_manager(
        manager(&servers.urls()),
        "guard/facade".to_string(),
        Duration::from_millis(500),
    )
    .expect("handle");
    let guard = lock
        .acquire_guard(GuardOptions::new().auto_extend(true))
        .await
        .expect("acquire")
        .expect("free");
    // The guard holds the resource; the handle itself holds nothing.
    assert!(!lock.acquire().await.expect("handle acquire"));
    assert!(!lock.release().await.expect("handle release"));
    assert!(lock.is_locked().await.expect("is_locked"));

    // The critical section outlasts two TTLs; the signal must not fire meanwhile.
    let finished = tokio::select! {
        reason = guard.lost() => panic!("lost while held: {reason}"),
        () = sleep(Duration::from_millis(1200)) => true,
    };
    assert!(finished);
    assert!(guard.release().await.expect("release"));

    // Retries through the options: a second guard waits out a holder that never releases.
    let holder = lock
        .manager()
        .lock_guard(
            "guard/facade",
            Duration::from_millis(300),
            GuardOptions::new(),
        )
        .await
        .expect("holder")
        .expect("free");
    std::mem::forget(holder); // a crashed holder: neither released nor dropped
    let waiter = lock
        .acquire_guard(
            GuardOptions::new().retry(
                RetryPolicy::new()
                    .max_attempts(50)
                    .base_delay(Duration::from_millis(50)),
            ),
        )
        .await
        .expect("waiter");
    assert!(waiter.is_some(), "the waiter should get the expired lock");
}

/// Without a runtime, a dropped guard cannot release: the lock stays until its TTL.
#[test]
fn dropped_without_a_runtime_the_lock_expires_with_its_ttl() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let ttl = Duration::from_secs(2);
    let guard = runtime().block_on(async {
        manager(&urls)
            .lock_guard("guard/no-runtime", ttl, GuardOptions::new())
            .await
            .expect("acquire")
            .expect("free")
    });
    // The runtime that created it is gone; dropping must neither panic nor block.
    let deadline = guard.validity_deadline();
    drop(guard);
    runtime().block_on(async {
        let other = manager(&urls);
        if std::time::Instant::now() < deadline {
            assert!(
                other
                    .is_locked("guard/no-runtime")
                    .await
                    .expect("is_locked")
            );
        }
        let took = time_until_free(&other, "guard/no-runtime", Duration::from_secs(10)).await;
        assert!(took <= Duration::from_secs(10));
    });
}
