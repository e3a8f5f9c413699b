//! Several clients compete for one lock: each wants it a few times, holds it briefly and lets
//! go. The output shows who holds it when and who waits; the summary checks that no two
//! holding intervals overlapped.
//!
//! Each client is its own `RedisDistributedLock` with its own connections, as separate
//! processes would be, and owns it: the task that acquires is the one that releases. (Tasks
//! of one process would rather build their handles over one shared `LockManager` with
//! `RedisDistributedLock::with_manager`.) Run it with:
//!
//! ```sh
//! cargo run --release -- lock_contention
//! ```
//!
//! It uses the cluster on 127.0.0.1:7000-7005 when one answers (`docker-compose up -d`),
//! otherwise it starts a throwaway local cluster (needs `redis-server` on `PATH`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock_cluster::RedisDistributedLock;
use redlock_harness::Cluster;

use crate::common::{CLOSE_TIMEOUT, DemoResult, Summary, say, secs};

const CLIENTS: usize = 5;
const ROUNDS: usize = 3;
const HOLD: Duration = Duration::from_millis(80);
const TTL: Duration = Duration::from_secs(2);

/// Runs the demo on the cluster reached through `seed_urls`.
pub async fn run(seed_urls: &[String], _throwaway: Option<&mut Cluster>) -> DemoResult {
    println!("--- lock_contention: {CLIENTS} clients, {ROUNDS} turns each, one lock");
    // Every completed hold, as (client, acquired at, released at).
    let holds: Arc<Mutex<Vec<(usize, Instant, Instant)>>> = Arc::default();
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let mut lock =
            RedisDistributedLock::new(seed_urls.to_vec(), "demo/contention".to_string(), TTL)?;
        let holds = holds.clone();
        clients.push(tokio::spawn(async move {
            let who = format!("client-{id}");
            for _ in 0..ROUNDS {
                let asked = Instant::now();
                if !lock.acquire().await? {
                    say(&who, "busy, waiting (backoff with jitter)");
                    if !lock
                        .acquire_with_retry(200, Duration::from_millis(20))
                        .await?
                    {
                        say(&who, "gave up");
                        continue;
                    }
                }
                let acquired = Instant::now();
                say(
                    &who,
                    format!("HOLDS the lock (waited {})", secs(acquired - asked)),
                );
                tokio::time::sleep(HOLD).await;
                let released_at = Instant::now();
                let released = lock.release().await?;
                say(&who, format!("released (still ours: {released})"));
                if let Ok(mut holds) = holds.lock() {
                    holds.push((id, acquired, released_at));
                }
                // Other work between turns, so that the waiters get a chance.
                tokio::time::sleep(HOLD / 2).await;
            }
            // Wait (bounded) for background releases before the client goes away; without
            // it, a release still in flight when the runtime stops leaves its keys until TTL.
            let report = lock.manager().close(CLOSE_TIMEOUT).await;
            Ok::<_, redlock_cluster::LockError>(report.pending)
        }));
    }
    let mut pending = 0;
    for client in clients {
        pending += client.await??;
    }

    let mut holds = holds.lock().map_err(|e| e.to_string())?.clone();
    holds.sort_by_key(|&(_, start, _)| start);
    let overlaps = holds
        .windows(2)
        .filter(|pair| pair[1].1 < pair[0].2)
        .count();
    Ok(Summary::new("lock_contention")
        .field("clients", CLIENTS)
        .field("acquisitions", holds.len())
        .field("overlaps", overlaps)
        .field("pending_at_close", pending)
        .check(
            holds.len() == CLIENTS * ROUNDS,
            "every client got every turn",
        )
        .check(overlaps == 0, "no two holders at once"))
}
