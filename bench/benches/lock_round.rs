//! Cost of one uncontended lock round against a raw baseline, in the same process.
//!
//! Run with `cargo bench --bench lock_round` (needs `redis-server` on PATH; the harness starts
//! three standalone masters and a 3+3 cluster on free loopback ports).
//!
//! For each topology it measures, interleaved in batches so that machine noise hits both
//! alike:
//! - **baseline**: `SET key val NX PX ttl` then `DEL key`, sent to the same three masters in
//!   parallel over multiplexed connections (the least any 3-master lock can do);
//! - **redlock**: `LockManager::try_acquire` + `LockManager::release` (Lua scripts, quorum
//!   decision, validity arithmetic).
//!
//! It prints medians, p99s and the ratio redlock/baseline. Ratios are the figures to quote;
//! absolute times on a shared machine are noise.

use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::aio::MultiplexedConnection;
use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

const BATCHES: usize = 20;
const PER_BATCH: usize = 100;
const TTL: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn baseline_round(conns: &[(MultiplexedConnection, Vec<u8>)], i: usize) {
    join_all(conns.iter().map(|(conn, key)| {
        let mut conn = conn.clone();
        async move {
            let _: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(i)
                .arg("NX")
                .arg("PX")
                .arg(TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .expect("SET");
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }))
    .await;
}

async fn measure(label: &str, seed_urls: &[String]) {
    let manager = LockManager::connect(seed_urls, LockConfig::new().retry(RetryPolicy::once()))
        .await
        .expect("manager");
    // The baseline talks to exactly the lock's voters, each with its own key.
    let voters = manager.voters_of("bench").await.expect("voters");
    let mut conns = Vec::new();
    for (addr, key) in &voters {
        let client = redis::Client::open(format!("redis://{addr}")).expect("client");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let mut raw_key = b"bench-raw:".to_vec();
        raw_key.extend_from_slice(key);
        conns.push((conn, raw_key));
    }
    // Warm up both paths (connections, script cache).
    for i in 0..50 {
        baseline_round(&conns, i).await;
        let lock = manager
            .try_acquire("bench", TTL)
            .await
            .expect("acquire")
            .expect("free");
        manager.release(&lock).await.expect("release");
    }
    let (mut base, mut lock_times) = (Vec::new(), Vec::new());
    for batch in 0..BATCHES {
        for i in 0..PER_BATCH {
            let t = Instant::now();
            baseline_round(&conns, batch * PER_BATCH + i).await;
            base.push(t.elapsed());
        }
        for _ in 0..PER_BATCH {
            let t = Instant::now();
            let lock = manager
                .try_acquire("bench", TTL)
                .await
                .expect("acquire")
                .expect("free");
            assert!(manager.release(&lock).await.expect("release"));
            lock_times.push(t.elapsed());
        }
    }
    base.sort();
    lock_times.sort();
    let (b50, l50) = (percentile(&base, 0.5), percentile(&lock_times, 0.5));
    let (b99, l99) = (percentile(&base, 0.99), percentile(&lock_times, 0.99));
    println!(
        "{label}: {} rounds each | baseline SET NX PX + DEL: p50 {b50:?} p99 {b99:?} | \
         acquire + release: p50 {l50:?} p99 {l99:?} | ratio p50 {:.2}x, p99 {:.2}x",
        base.len(),
        l50.as_secs_f64() / b50.as_secs_f64(),
        l99.as_secs_f64() / b99.as_secs_f64(),
    );
}

fn main() {
    let standalone = Standalone::start(3).expect("3 standalone masters");
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        measure("independent, 3 masters", &standalone.urls()).await;
        measure("cluster, 3 masters", &[cluster.seed_url()]).await;
    });
}
