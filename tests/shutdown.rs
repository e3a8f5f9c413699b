//! `LockManager::close()` against real `redis-server` processes (3 independent masters,
//! started by the harness on free loopback ports): it waits for pending releases and
//! cleanups, refuses new work with a typed error and says what it waited for.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::Standalone;

mod support;
use support::key_count;

/// Item 14 of issue 8: `close()` waits for the release of a dropped guard and for the
/// cleanup of cancelled acquisitions, so that the keys are gone when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_pending_releases() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    let guard = manager
        .lock_guard(
            "close/guard",
            Duration::from_secs(30),
            redlock_cluster::GuardOptions::new(),
        )
        .await
        .expect("guard")
        .expect("granted");
    drop(guard);
    let cancelled: Vec<_> = (0..50)
        .map(|i| {
            let manager = manager.clone();
            tokio::spawn(async move {
                manager
                    .try_acquire(&format!("close/{i}"), Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2)).await;
    for task in &cancelled {
        task.abort();
    }
    // Acquisitions that completed before the abort hold their locks: release them.
    for task in cancelled {
        if let Ok(Ok(Some(mut lock))) = task.await {
            manager.release(&mut lock).await.expect("release");
        }
    }
    let report = manager.close(Duration::from_secs(10)).await;
    assert!(report.is_complete(), "{report:?}");
    let left: Vec<i64> = urls.iter().map(|u| key_count(u)).collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "keys left right after close: {left:?}"
    );
}

/// Issue 15.5: `close()` refuses new work with a typed error, lets a held lock still be
/// released, is idempotent, and says what it waited for. Before: the manager stayed usable
/// after `close`, and the report gave only the pending count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_refuses_new_work_and_says_what_it_waited_for() {
    use redlock_cluster::LockError;
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, LockConfig::new())
        .await
        .expect("manager");
    let mut held = manager
        .try_acquire("close/held", Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("granted");
    let dropped = manager
        .lock_guard(
            "close/dropped",
            Duration::from_secs(30),
            redlock_cluster::GuardOptions::new(),
        )
        .await
        .expect("guard")
        .expect("granted");
    drop(dropped);
    let report = manager.close(Duration::from_secs(5)).await;
    assert!(report.is_complete(), "{report}");
    assert!(
        report.waited_for >= 1,
        "the dropped guard's release: {report:?}"
    );
    let said = report.to_string();
    assert!(
        said.starts_with("waited ") && said.contains("none pending"),
        "{said}"
    );
    // New work is refused, with the typed error, every kind of it.
    let closed = |r: Result<(), LockError>| matches!(r, Err(LockError::Closed));
    assert!(closed(
        manager
            .try_acquire("close/new", Duration::from_secs(5))
            .await
            .map(drop)
    ));
    assert!(closed(
        manager
            .extend(&mut held, Duration::from_secs(30))
            .await
            .map(drop)
    ));
    assert!(closed(manager.is_locked("close/held").await.map(drop)));
    assert!(closed(manager.health().await.map(drop)));
    assert!(!LockError::Closed.is_retryable());
    // A held lock can still be freed.
    assert!(
        manager
            .release(&mut held)
            .await
            .expect("release after close")
    );
    // Idempotent: a second close waits for nothing and refuses the same.
    let again = manager.close(Duration::from_secs(5)).await;
    assert!(again.is_complete(), "{again}");
    assert!(closed(
        manager
            .try_acquire("close/new", Duration::from_secs(5))
            .await
            .map(drop)
    ));
    assert!(
        urls.iter().all(|u| key_count(u) == 0),
        "no key left after the releases"
    );
}
