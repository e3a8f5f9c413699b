//! Round mechanics against real `redis-server` processes: early decisions with a hung voter,
//! fresh managers next to a hung voter, no orphan keys under overload, failed extends that
//! leave nothing behind, and `close()`.

use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, Mode, RetryPolicy};
use redlock_harness::Standalone;

fn raw(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("raw connection");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    con
}

/// No fsync per write: these tests are about decisions, and thousands of fsyncs on a loaded
/// machine would only slow them down.
fn no_fsync(servers: &Standalone) {
    for url in servers.urls() {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("no")
            .query(&mut raw(&url))
            .expect("CONFIG SET");
    }
}

fn key_count(url: &str) -> i64 {
    redis::cmd("DBSIZE").query(&mut raw(url)).expect("DBSIZE")
}

/// Wait (bounded) until `check` holds; cleanups run in spawned tasks.
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 9 of issue 8: thousands of concurrent `try_acquire` on one manager all come back,
/// and once the winners released, no key of any failed attempt is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_leaves_no_orphan_keys() {
    const CALLS: usize = 5_000;
    let servers = Standalone::start(3).expect("3 masters");
    no_fsync(&servers);
    let urls = servers.urls();
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(100))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let manager = manager.clone();
            tokio::spawn(async move {
                manager
                    .try_acquire(&format!("overload/{i}"), Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    let started = Instant::now();
    let mut won = Vec::new();
    let mut failed = 0usize;
    for task in tasks {
        match task.await.expect("task") {
            Ok(Some(lock)) => won.push(lock),
            Ok(None) => panic!("distinct resources cannot be contended"),
            Err(_) => failed += 1,
        }
    }
    eprintln!(
        "{CALLS} calls: {} won, {failed} failed, in {:?}",
        won.len(),
        started.elapsed()
    );
    for lock in &mut won {
        manager.release(lock).await.expect("release");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let left: Vec<i64> = urls.iter().map(|u| key_count(u)).collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "keys left 1 s after releasing every winner: {left:?} ({failed} failed calls)"
    );
}

/// Item 6 of issue 8: a voter that accepts TCP but never answers (SIGSTOP) costs a fresh
/// manager's round at most the node timeout, connecting included: the connection keeps
/// opening in the background. (The first topology read asks every seed for its server facts,
/// under the connect timeout; it is done before the clock starts here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_voter_does_not_tax_fresh_managers() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let connect_timeout = Duration::from_secs(3);
    let config = LockConfig::new()
        .mode(Mode::Independent)
        .node_timeout(Duration::from_millis(200))
        .connect_timeout(connect_timeout)
        .retry(RetryPolicy::once());
    servers.nodes()[0].pause().expect("pause");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (urls, config) = (urls.clone(), config.clone());
            tokio::spawn(async move {
                let manager = LockManager::new(&urls, config).expect("manager");
                manager.mode().await.expect("topology");
                let started = Instant::now();
                let mut lock = manager
                    .try_acquire(&format!("fresh/{i}"), Duration::from_secs(10))
                    .await
                    .expect("acquire")
                    .expect("granted by the two live voters");
                let took = started.elapsed();
                manager.release(&mut lock).await.expect("release");
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for task in tasks {
        took.push(task.await.expect("task"));
    }
    servers.nodes()[0].resume().expect("resume");
    eprintln!("fresh managers next to a hung voter: {took:?}");
    assert!(
        took.iter().all(|t| *t < connect_timeout),
        "a round waited for the hung voter's connection: {took:?}"
    );
}

/// Item 12 of issue 8: an extend that runs out of time while its `PEXPIRE`s are on their way
/// ends the lock, and the keys it lengthened do not stay behind with the new TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_extend_leaves_no_lengthened_key() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(400))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    let mut lock = manager
        .try_acquire("extend/late", Duration::from_secs(1))
        .await
        .expect("acquire")
        .expect("granted");
    // Two voters stop answering with the lock's validity nearly spent: their PEXPIREs are
    // written but run only after the round, which the old validity does not outlive.
    tokio::time::sleep(lock.remaining().saturating_sub(Duration::from_millis(150))).await;
    servers.nodes()[1].pause().expect("pause");
    servers.nodes()[2].pause().expect("pause");
    let extended = manager.extend(&mut lock, Duration::from_secs(60)).await;
    servers.nodes()[1].resume().expect("resume");
    servers.nodes()[2].resume().expect("resume");
    assert!(!matches!(extended, Ok(true)), "{extended:?}");
    assert!(
        !lock.is_valid(),
        "a failed extend past the validity ends the lock"
    );
    eventually("no lengthened key is left", Duration::from_secs(5), || {
        urls.iter().all(|u| key_count(u) == 0)
    })
    .await;
}

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
