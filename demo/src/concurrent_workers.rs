//! N workers share M tasks; a per-task lock makes sure each task runs exactly once.
//!
//! Every worker walks the whole task list (each from a different starting point), and for each
//! task: takes the task's lock, checks whether the task is already done, runs it if not,
//! records it as done, releases. The check and the record are separate steps with work in
//! between, so without the lock two workers would run the same task. The summary counts the
//! runs of every task and checks each ran exactly once.
//!
//! ```sh
//! cargo run --release -- concurrent_workers
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use redlock_cluster::{GuardOptions, LockConfig, LockManager};
use redlock_harness::Cluster;

use crate::common::{CLOSE_TIMEOUT, DemoResult, Summary, say};

const WORKERS: usize = 4;
const TASKS: usize = 12;
const WORK: Duration = Duration::from_millis(40);
const TTL: Duration = Duration::from_secs(5);

/// The shared record of what ran: how often each task ran, and whether it is done.
#[derive(Default)]
struct Ledger {
    runs: Vec<AtomicU32>,
    done: Vec<AtomicBool>,
}

/// Runs the demo on the cluster reached through `seed_urls`.
pub async fn run(seed_urls: &[String], _throwaway: Option<&mut Cluster>) -> DemoResult {
    println!("--- concurrent_workers: {WORKERS} workers, {TASKS} tasks, one lock per task");
    let ledger = Arc::new(Ledger {
        runs: (0..TASKS).map(|_| AtomicU32::new(0)).collect(),
        done: (0..TASKS).map(|_| AtomicBool::new(false)).collect(),
    });
    // A per-run prefix, so that tasks of an earlier run on the same cluster do not matter.
    let run_id = uuid_like();
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        // Each worker is its own client, with its own connections.
        let manager = LockManager::new(seed_urls, LockConfig::new())?;
        let ledger = ledger.clone();
        let run_id = run_id.clone();
        workers.push(tokio::spawn(async move {
            let who = format!("worker-{id}");
            let (mut ran, mut busy, mut done) = (0, 0, 0);
            for step in 0..TASKS {
                // Neighbouring workers walk the same tasks one step apart: they collide.
                let task = (id + step) % TASKS;
                let resource = format!("demo/{run_id}/task/{task}");
                let Some(guard) = manager
                    .lock_guard(&resource, TTL, GuardOptions::new())
                    .await?
                else {
                    busy += 1;
                    continue; // another worker is on it
                };
                if !ledger.done[task].load(Ordering::SeqCst) {
                    tokio::time::sleep(WORK).await;
                    ledger.runs[task].fetch_add(1, Ordering::SeqCst);
                    ledger.done[task].store(true, Ordering::SeqCst);
                    ran += 1;
                    say(&who, format!("ran task {task}"));
                } else {
                    done += 1;
                }
                guard.release().await?;
            }
            say(
                &who,
                format!("finished: ran {ran}, found {busy} locked and {done} already done"),
            );
            // Background releases done (bounded) before the worker's client goes away.
            manager.close(CLOSE_TIMEOUT).await;
            Ok::<_, redlock_cluster::LockError>(ran)
        }));
    }
    let mut ran_by_workers = 0;
    for worker in workers {
        ran_by_workers += worker.await??;
    }

    let runs: Vec<u32> = ledger
        .runs
        .iter()
        .map(|r| r.load(Ordering::SeqCst))
        .collect();
    let once = runs.iter().filter(|&&n| n == 1).count();
    let duplicates: u32 = runs.iter().map(|&n| n.saturating_sub(1)).sum();
    Ok(Summary::new("concurrent_workers")
        .field("workers", WORKERS)
        .field("tasks", TASKS)
        .field("ran_once", once)
        .field("duplicates", duplicates)
        .field("runs", ran_by_workers)
        .check(once == TASKS, "every task ran exactly once"))
}

/// A short random id (no extra dependency: the current time's nanoseconds).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}")
}
