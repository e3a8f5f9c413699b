//! Issue 8, item 2: an acquisition can be extended or released only by the code that made it,
//! and no task waits on another task's backoff. Real `redis-server` processes (3 independent
//! masters, started by the harness on free loopback ports).
//!
//! How these would have failed before: the facade's methods took `&self` and kept the current
//! `Lock` behind a `tokio::sync::Mutex`, and the README said to share one handle through an
//! `Arc`. Two tasks doing that shared one acquisition slot: after task A's lock lapsed and
//! task B acquired through the same handle, A's `extend` and `release` acted on B's lock
//! (both returned `true`, and the release deleted B's keys while B was valid); and B's
//! `acquire_with_retry` kept the mutex through its backoff sleeps, so A's `extend` waited for
//! B's whole retry loop. Now `acquire*`, `extend` and `release` take `&mut self`, so that
//! sharing does not compile (a `compile_fail` doctest on `RedisDistributedLock` checks it) and
//! the tests below exercise the pattern the docs recommend instead: one handle per task over
//! one shared `LockManager`.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager};
use redlock_harness::Standalone;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, timeout};

mod support;
use support::{bounded, config, handle};

/// Generous per-node timeout: these tests check decisions, not speed, on a loaded machine.
fn manager(urls: &[String]) -> LockManager {
    LockManager::new(
        urls,
        LockConfig::new().node_timeout(Duration::from_millis(500)),
    )
    .expect("manager")
}

/// Task A's acquisition lapses and task B takes the resource: A can neither extend nor
/// release B's lock, and B still holds it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_holder_cannot_extend_or_release_the_next_holders_lock() {
    let servers = Standalone::start(3).expect("3 redis-server processes");
    let manager = manager(&servers.urls());
    let resource = "ownership/lapsed";
    let mut a = handle(&manager, resource, Duration::from_millis(300));
    let mut b = handle(&manager, resource, Duration::from_secs(10));
    let (a_lapsed, a_lapsed_rx) = oneshot::channel::<()>();
    let (b_holds, b_holds_rx) = oneshot::channel::<()>();

    let task_a = tokio::spawn(async move {
        assert!(a.acquire().await.expect("A acquires"), "resource was free");
        let deadline = a.validity_deadline().expect("A holds a lock");
        // A "pauses" past its validity (a GC pause, a slow disk) and never releases.
        tokio::time::sleep_until(deadline.into()).await;
        assert!(a.lock().is_some_and(|lock| !lock.is_valid()));
        a_lapsed.send(()).expect("B listens");
        b_holds_rx.await.expect("B acquired");
        // Back from the pause: A tries to keep, then to drop, what it thinks it holds.
        let extended = a.extend(Duration::from_secs(10)).await.expect("A extend");
        let released = a.release().await.expect("A release");
        (a, extended, released)
    });
    let task_b = tokio::spawn(async move {
        a_lapsed_rx.await.expect("A lapsed");
        // A's keys outlive its validity by the drift allowance: retry until they expire.
        assert!(
            b.acquire_with_retry(50, Duration::from_millis(20))
                .await
                .expect("B acquires"),
            "B should get the resource once A's keys expire"
        );
        b_holds.send(()).expect("A listens");
        b
    });

    let mut b = task_b.await.expect("task B");
    let (a, a_extended, a_released) = task_a.await.expect("task A");
    assert!(!a_extended, "A extended a lock it no longer held");
    assert!(!a_released, "A released a lock it no longer held");

    // B's lock survived A's attempts, on a quorum of masters.
    assert!(b.lock().is_some_and(|lock| lock.is_valid()));
    assert!(b.is_locked().await.expect("is_locked"));
    let info = b.get_lock_info().await.expect("B's info");
    assert!(info.locked && info.held_by_caller, "{info:?}");
    let b_token = b.lock().expect("B's lock").token().to_string();
    assert_eq!(info.holder.as_deref(), Some(b_token.as_str()));
    assert!(
        !a.get_lock_info().await.expect("A's info").held_by_caller,
        "A's handle must not report B's lock as its own"
    );
    // B still owns it: it can extend and release it.
    assert!(b.extend(Duration::from_secs(10)).await.expect("B extends"));
    assert!(b.release().await.expect("B releases"));
    assert!(!b.is_locked().await.expect("is_locked after release"));
}

/// Task B retries (with backoff) against task A's lock; A's `extend` does not wait for B's
/// backoff: it returns while B is still retrying, and B gets the lock only after A releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_does_not_wait_for_another_tasks_backoff() {
    let servers = Standalone::start(3).expect("3 redis-server processes");
    let manager = manager(&servers.urls());
    let resource = "ownership/backoff";
    let ttl = Duration::from_secs(5);
    let mut a = handle(&manager, resource, ttl);
    let mut b = handle(&manager, resource, ttl);
    assert!(a.acquire().await.expect("A acquires"), "resource was free");

    let waiter = tokio::spawn(async move {
        // Backoff from 100 ms, capped at 3.2 s per delay: B's loop lasts seconds while A holds.
        let won = b
            .acquire_with_retry(40, Duration::from_millis(100))
            .await
            .expect("B retries");
        (b, won, Instant::now())
    });
    // Let B make its first attempt and go to sleep in its backoff.
    sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished(), "B cannot win while A holds the lock");

    let start = Instant::now();
    assert!(a.extend(ttl).await.expect("A extends"), "A still holds it");
    let extended_at = Instant::now();
    assert!(
        extended_at - start < Duration::from_secs(1),
        "A's extend took {:?}: it waited on something",
        extended_at - start
    );
    // Ordering, not only timing: B is still retrying after A's extend returned.
    assert!(!waiter.is_finished(), "B finished before A released");

    assert!(a.release().await.expect("A releases"));
    let (mut b, won, b_finished_at) = timeout(Duration::from_secs(20), waiter)
        .await
        .expect("B's retries are bounded")
        .expect("task B");
    assert!(won, "B should get the lock once A released it");
    assert!(extended_at < b_finished_at);
    assert!(b.get_lock_info().await.expect("B's info").held_by_caller);
    assert!(b.release().await.expect("B releases"));
}

/// A lock can be extended, released or guarded only through the manager that made it. Before
/// the owner check, manager B over 1 of A's 3 masters (quorum 1) kept A's lock alive
/// (`extend` returned `Ok(true)` four times) while the keys on the other two expired and a
/// third client acquired there: two valid holders in 1 of 1 runs. (A guard's lock is no
/// longer handed out as a copy, and `Lock` is not `Clone`: see the `compile_fail` doctest on
/// `Lock`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_extended_and_released_only_through_its_own_manager() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let a = LockManager::new(&urls, config()).expect("a");
    let a_clone = a.clone();
    let b = LockManager::new(&urls[..1], config()).expect("b");
    let c = LockManager::new(&urls, config()).expect("c");
    let mut lock = bounded("a", a.try_acquire("cross", Duration::from_millis(800)))
        .await
        .expect("acquire")
        .expect("free");
    for _ in 0..4 {
        sleep(Duration::from_millis(300)).await;
        let through_b = bounded("b extend", b.extend(&mut lock, Duration::from_millis(800))).await;
        assert!(
            matches!(through_b, Err(LockError::ForeignLock { .. })),
            "{through_b:?}"
        );
    }
    let other = bounded("c", c.try_acquire("cross", Duration::from_secs(5))).await;
    assert!(
        !(lock.is_valid() && matches!(other, Ok(Some(_)))),
        "two valid holders: {other:?}"
    );
    assert!(matches!(
        bounded("b release", b.release(&mut lock)).await,
        Err(LockError::ForeignLock { .. })
    ));
    let options = redlock_cluster::GuardOptions::new();
    assert!(matches!(
        b.guard(lock, options),
        Err(LockError::ForeignLock { .. })
    ));
    // A clone of the manager that made a lock is the same manager.
    let mut own = bounded("a again", a.try_acquire("own", Duration::from_secs(5)))
        .await
        .expect("acquire")
        .expect("free");
    assert!(matches!(
        bounded(
            "clone extend",
            a_clone.extend(&mut own, Duration::from_secs(5))
        )
        .await,
        Ok(true)
    ));
    assert!(matches!(
        bounded("clone release", a_clone.release(&mut own)).await,
        Ok(true)
    ));
}
