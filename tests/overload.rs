//! Overload and cancellation against real `redis-server` processes (3 independent masters,
//! started by the harness on free loopback ports): thousands of concurrent acquires and
//! acquires cancelled at random points leave no orphan keys, and many tasks on one resource
//! never hold it at once.

use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::Standalone;
use tokio::time::{sleep, timeout};

mod support;
use support::{bounded, config, key_count, raw_url};

/// No fsync per write: these tests are about decisions, and thousands of fsyncs on a loaded
/// machine would only slow them down.
fn no_fsync(servers: &Standalone) {
    for url in servers.urls() {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("no")
            .query(&mut raw_url(&url))
            .expect("CONFIG SET");
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

/// Acquires cancelled at random points (tiny timeouts): 1 s later, no key is left but those
/// of the locks that were granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_orphan_keys() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    let mut granted = Vec::new();
    let (mut cancelled, mut failed) = (0, 0);
    for i in 0..150u64 {
        let limit = Duration::from_micros((i * 7919) % 3000);
        match timeout(
            limit,
            manager.try_acquire(&format!("cancel-{i}"), Duration::from_secs(20)),
        )
        .await
        {
            Err(_) => cancelled += 1,
            Ok(Ok(Some(lock))) => granted.push(lock),
            Ok(_) => failed += 1,
        }
    }
    sleep(Duration::from_secs(1)).await;
    let granted_names: std::collections::BTreeSet<String> = granted
        .iter()
        .map(|l| format!("redlock:{}", l.resource()))
        .collect();
    let mut orphans = Vec::new();
    for url in &urls {
        let mut con = redlock_harness::raw_connection(url).expect("raw");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
        orphans.extend(keys.into_iter().filter(|k| !granted_names.contains(k)));
    }
    println!(
        "granted {}, cancelled {cancelled}, failed {failed}; orphan keys: {}",
        granted.len(),
        orphans.len()
    );
    assert!(orphans.is_empty(), "orphans: {orphans:?}");
}

/// Many tasks on one resource over one manager: the holding intervals (from the grant to the
/// release, cut at the lock's own deadline) never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_one_resource_never_overlap() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    let intervals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let manager = manager.clone();
        let intervals = intervals.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let retry = RetryPolicy::new()
                    .max_attempts(20)
                    .base_delay(Duration::from_millis(5));
                if let Ok(Some(mut lock)) = manager
                    .acquire_with("shared", Duration::from_millis(300), &retry)
                    .await
                {
                    let start = std::time::Instant::now();
                    sleep(Duration::from_millis(3)).await;
                    let end = std::time::Instant::now().min(lock.validity_deadline());
                    intervals.lock().unwrap().push((start, end));
                    let _ = manager.release(&mut lock).await;
                }
            }
        }));
    }
    for task in tasks {
        bounded("task", task).await.expect("task");
    }
    let mut intervals = intervals.lock().unwrap().clone();
    intervals.sort();
    let overlaps = intervals.windows(2).filter(|w| w[1].0 < w[0].1).count();
    println!("{} holds, {overlaps} overlaps", intervals.len());
    assert_eq!(overlaps, 0);
}
