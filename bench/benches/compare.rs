//! Comparison benchmark: a raw `SET NX PX` + `DEL` fan-out (the floor), `rslock` and this
//! crate, in one process, interleaved, on servers it starts itself on 127.0.0.1.
//!
//! ```text
//! cargo bench -p redlock-bench --bench compare                               # full run, ~3-5 min
//! REDLOCK_BENCH_QUICK=1 cargo bench -p redlock-bench --bench compare         # ~1 min, smaller counts
//! REDLOCK_BENCH_FSYNC_ALWAYS=1 cargo bench -p redlock-bench --bench compare  # servers with appendfsync always
//! ```
//!
//! It prints Markdown tables and writes a report and an SVG plot: the full run to
//! `docs/benchmarks.md` + `docs/benchmarks.svg` (with `REDLOCK_BENCH_FSYNC_ALWAYS=1`:
//! `docs/benchmarks-fsync-always.{md,svg}`), a quick run to `target/redlock-bench/`;
//! `REDLOCK_BENCH_OUT_DIR` overrides the directory.
//!
//! Servers: 7 standalone masters (the first 1, 3, 5 or 7 are the voters) and a 3+3 cluster,
//! started by `redlock-harness` on free loopback ports, without AOF or RDB (no write waits for
//! the disk) unless `REDLOCK_BENCH_FSYNC_ALWAYS=1` (`appendonly yes`, `appendfsync always`).
//! Every loop is bounded in count or time, and every Redis call is bounded by a timeout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use redis::aio::MultiplexedConnection;
use redlock_bench::{
    Panel, Series, Table, fmt_ms, fmt_rate, fmt_ratio, group_thousands, p50_p99, render_svg,
    utc_timestamp,
};
use redlock_cluster::{Lock, LockConfig, LockManager, Mode, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, RedisServer, Standalone, redis_server_path};
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------------
// Live heap bytes, for "client memory per held lock".

/// The system allocator, counting the bytes currently allocated by the whole process.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn size_delta(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_delta(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_delta(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(size_delta(layout.size()), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr`, and the caller guarantees `new_size` is valid.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(size_delta(new_size), Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(size_delta(layout.size()), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Settings.

/// The TTL of every lock taken (long enough never to expire during a measurement).
const TTL: Duration = Duration::from_secs(10);
/// The TTL in the overload case: leftover keys must still be there to be counted 1 s later.
const OVERLOAD_TTL: Duration = Duration::from_secs(30);
/// Our per-node timeout (the library default), also the raw fan-out's per-call timeout.
const NODE_TIMEOUT: Duration = Duration::from_millis(100);
/// Upper bound of any single operation of any implementation, so nothing can hang.
const OP_LIMIT: Duration = Duration::from_secs(5);
/// Voter counts over independent masters.
const VOTER_COUNTS: [usize; 4] = [1, 3, 5, 7];

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    fsync_always: bool,
    serial_batches: usize,
    serial_per_batch: usize,
    window: Duration,
    windows: usize,
    paused_batches: usize,
    paused_per_batch: usize,
    contention_window: Duration,
    contention_windows: usize,
    held_locks: usize,
    overload: usize,
    /// Fresh handles per implementation and scenario in the first-acquire case.
    fresh_handles: usize,
}

impl Settings {
    fn from_env() -> Self {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        let quick = flag("REDLOCK_BENCH_QUICK");
        let fsync_always = flag("REDLOCK_BENCH_FSYNC_ALWAYS");
        if quick {
            Self {
                quick,
                fsync_always,
                serial_batches: 4,
                serial_per_batch: 25,
                window: Duration::from_millis(300),
                windows: 2,
                paused_batches: 2,
                paused_per_batch: 2,
                contention_window: Duration::from_secs(1),
                contention_windows: 1,
                held_locks: 2_000,
                overload: 10_000,
                fresh_handles: 10,
            }
        } else {
            Self {
                quick,
                fsync_always,
                serial_batches: 20,
                serial_per_batch: 100,
                window: Duration::from_secs(1),
                windows: 4,
                paused_batches: 3,
                paused_per_batch: 5,
                contention_window: Duration::from_secs(2),
                contention_windows: 3,
                held_locks: 10_000,
                overload: 10_000,
                fresh_handles: 30,
            }
        }
    }

    fn command(&self) -> String {
        let mut env = String::new();
        if self.quick {
            env.push_str("REDLOCK_BENCH_QUICK=1 ");
        }
        if self.fsync_always {
            env.push_str("REDLOCK_BENCH_FSYNC_ALWAYS=1 ");
        }
        format!("{env}cargo bench -p redlock-bench --bench compare")
    }

    fn out_dir(&self) -> PathBuf {
        if let Ok(dir) = std::env::var("REDLOCK_BENCH_OUT_DIR") {
            return PathBuf::from(dir);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        if self.quick {
            root.join("target").join("redlock-bench")
        } else {
            root.join("docs")
        }
    }

    fn file_stem(&self) -> &'static str {
        if self.fsync_always {
            "benchmarks-fsync-always"
        } else {
            "benchmarks"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The three implementations.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Impl {
    Raw,
    Ours,
    Rslock,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Impl::Raw => "raw",
            Impl::Ours => "redlock-cluster",
            Impl::Rslock => "rslock",
        })
    }
}

/// One topology with a client of each implementation.
struct Setup {
    label: String,
    voters: usize,
    ours: LockManager,
    rslock: Option<rslock::LockManager>,
    /// One multiplexed connection per master, by `host:port`.
    conns: HashMap<String, MultiplexedConnection>,
}

/// A resource and the raw fan-out's keys for it: the lock's own voter keys with a prefix in
/// front (in cluster mode the hash tag, so the slot and the master, stay the same).
struct Resource {
    name: String,
    raw: Vec<(MultiplexedConnection, Vec<u8>)>,
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("redis://").to_string()
}

impl Setup {
    async fn new(
        label: String,
        seeds: &[String],
        masters: &[String],
        mode: Mode,
        with_rslock: bool,
    ) -> Arc<Self> {
        let config = LockConfig::new()
            .mode(mode)
            .node_timeout(NODE_TIMEOUT)
            .retry(RetryPolicy::once());
        let ours = LockManager::connect(seeds, config)
            .await
            .expect("our manager");
        let voters = ours.voters_of("probe").await.expect("voters").len();
        let mut conns = HashMap::new();
        for url in masters {
            let client = redis::Client::open(url.as_str()).expect("client");
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connection");
            conns.insert(addr_of(url), conn);
        }
        let rslock = with_rslock.then(|| rslock::LockManager::new(masters.to_vec()));
        Arc::new(Self {
            label,
            voters,
            ours,
            rslock,
            conns,
        })
    }

    fn impls(&self) -> Vec<Impl> {
        let mut impls = vec![Impl::Raw, Impl::Ours];
        if self.rslock.is_some() {
            impls.push(Impl::Rslock);
        }
        impls
    }

    async fn resource(&self, name: String) -> Arc<Resource> {
        let raw = self
            .ours
            .voters_of(&name)
            .await
            .expect("voters_of")
            .into_iter()
            .map(|(addr, key)| {
                let conn = self.conns.get(&addr).expect("a master").clone();
                let mut raw_key = b"raw:".to_vec();
                raw_key.extend_from_slice(&key);
                (conn, raw_key)
            })
            .collect();
        Arc::new(Resource { name, raw })
    }

    fn rslock(&self) -> &rslock::LockManager {
        self.rslock.as_ref().expect("rslock in this setup")
    }

    /// Keys in all masters' databases.
    async fn total_keys(&self) -> u64 {
        let counts = join_all(self.conns.values().map(|conn| {
            let mut conn = conn.clone();
            async move {
                let n: u64 = timeout(OP_LIMIT, redis::cmd("DBSIZE").query_async(&mut conn))
                    .await
                    .expect("DBSIZE in time")
                    .expect("DBSIZE");
                n
            }
        }))
        .await;
        counts.into_iter().sum()
    }

    async fn flush(&self) {
        for conn in self.conns.values() {
            let mut conn = conn.clone();
            let () = timeout(OP_LIMIT, redis::cmd("FLUSHALL").query_async(&mut conn))
                .await
                .expect("FLUSHALL in time")
                .expect("FLUSHALL");
        }
    }
}

/// What one acquire + release cycle came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The lock was not granted (contended or no quorum).
    NotGranted,
    /// An error or the operation limit.
    Failed,
}

/// `SET key val NX PX ttl` on every voter in parallel, then `DEL` on every voter in parallel,
/// each call under `NODE_TIMEOUT`; granted when a majority answered OK.
async fn raw_cycle(resource: &Resource, value: u64, ttl: Duration) -> Outcome {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let sets = join_all(resource.raw.iter().map(|(conn, key)| {
        let mut conn = conn.clone();
        async move {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_ms);
            let reply = timeout(NODE_TIMEOUT, set.query_async::<Option<String>>(&mut conn)).await;
            matches!(reply, Ok(Ok(Some(_))))
        }
    }))
    .await;
    let granted = sets.iter().filter(|ok| **ok).count() > resource.raw.len() / 2;
    join_all(resource.raw.iter().map(|(conn, key)| {
        let mut conn = conn.clone();
        async move {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            let _ = timeout(NODE_TIMEOUT, del.query_async::<i64>(&mut conn)).await;
        }
    }))
    .await;
    if granted {
        Outcome::Done
    } else {
        Outcome::NotGranted
    }
}

/// One uncontended `try_acquire` (or `lock`) + `release` (or `unlock`) cycle.
async fn cycle(
    setup: &Setup,
    imp: Impl,
    resource: &Resource,
    value: u64,
    ttl: Duration,
) -> Outcome {
    let work = async {
        match imp {
            Impl::Raw => raw_cycle(resource, value, ttl).await,
            Impl::Ours => match setup.ours.try_acquire(&resource.name, ttl).await {
                Ok(Some(mut lock)) => match setup.ours.release(&mut lock).await {
                    Ok(_) => Outcome::Done,
                    Err(_) => Outcome::Failed,
                },
                Ok(None) => Outcome::NotGranted,
                Err(_) => Outcome::Failed,
            },
            Impl::Rslock => {
                let rs = setup.rslock();
                match rs.lock(resource.name.as_str(), ttl).await {
                    Ok(lock) => {
                        rs.unlock(&lock).await;
                        Outcome::Done
                    }
                    Err(rslock::LockError::Unavailable) => Outcome::NotGranted,
                    Err(_) => Outcome::Failed,
                }
            }
        }
    };
    timeout(OP_LIMIT, work).await.unwrap_or(Outcome::Failed)
}

/// Rotates `impls` by `k`, so that no implementation always runs first in a batch.
fn rotated(impls: &[Impl], k: usize) -> Vec<Impl> {
    let mut v = impls.to_vec();
    if !v.is_empty() {
        let n = k % v.len();
        v.rotate_left(n);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Workloads.

#[derive(Debug, Default, Clone)]
struct Latency {
    samples: Vec<Duration>,
    not_done: usize,
}

impl Latency {
    fn p50_p99(&self) -> Option<(Duration, Duration)> {
        p50_p99(&mut self.samples.clone())
    }
}

/// Serial acquire + release, interleaved in batches.
async fn serial(setup: &Setup, s: &Settings) -> HashMap<Impl, Latency> {
    let impls = setup.impls();
    let mut resources = HashMap::new();
    for &imp in &impls {
        resources.insert(imp, setup.resource(format!("serial-{imp}")).await);
    }
    // Warm up connections and script caches.
    for &imp in &impls {
        for i in 0..20 {
            cycle(setup, imp, &resources[&imp], i, TTL).await;
        }
    }
    let mut out: HashMap<Impl, Latency> = HashMap::new();
    let mut value = 0u64;
    for batch in 0..s.serial_batches {
        for imp in rotated(&impls, batch) {
            let entry = out.entry(imp).or_default();
            for _ in 0..s.serial_per_batch {
                value += 1;
                let t = Instant::now();
                let outcome = cycle(setup, imp, &resources[&imp], value, TTL).await;
                if outcome == Outcome::Done {
                    entry.samples.push(t.elapsed());
                } else {
                    entry.not_done += 1;
                }
            }
        }
    }
    out
}

#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    cycles: u64,
    not_done: u64,
    elapsed: Duration,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `tasks` tasks, each cycling on its own resource until the window closes; windows of the
/// implementations interleaved.
async fn throughput(setup: &Arc<Setup>, tasks: usize, s: &Settings) -> HashMap<Impl, Rate> {
    let impls = setup.impls();
    let mut resources: HashMap<Impl, Vec<Arc<Resource>>> = HashMap::new();
    for &imp in &impls {
        let mut list = Vec::with_capacity(tasks);
        for t in 0..tasks {
            list.push(setup.resource(format!("tp{tasks}-{imp}-{t}")).await);
        }
        resources.insert(imp, list);
    }
    let mut out: HashMap<Impl, Rate> = HashMap::new();
    for window in 0..s.windows {
        for imp in rotated(&impls, window) {
            let start = Instant::now();
            let deadline = start + s.window;
            let handles: Vec<_> = resources[&imp]
                .iter()
                .cloned()
                .map(|resource| {
                    let setup = setup.clone();
                    tokio::spawn(async move {
                        let (mut done, mut not_done, mut value) = (0u64, 0u64, 0u64);
                        while Instant::now() < deadline {
                            value += 1;
                            match cycle(&setup, imp, &resource, value, TTL).await {
                                Outcome::Done => done += 1,
                                _ => not_done += 1,
                            }
                        }
                        (done, not_done)
                    })
                })
                .collect();
            let results = join_all(handles).await;
            let entry = out.entry(imp).or_default();
            entry.elapsed += start.elapsed();
            for (done, not_done) in results.into_iter().map(|r| r.expect("task")) {
                entry.cycles += done;
                entry.not_done += not_done;
            }
        }
    }
    out
}

/// Serial cycles while `node` is SIGSTOPped; resumed between batches (so a cluster never
/// sees it down for long) and always at the end.
async fn paused(setup: &Setup, node: &RedisServer, s: &Settings) -> HashMap<Impl, Latency> {
    let impls = setup.impls();
    let mut resources = HashMap::new();
    for &imp in &impls {
        resources.insert(imp, setup.resource(format!("paused-{imp}")).await);
    }
    let mut out: HashMap<Impl, Latency> = HashMap::new();
    let mut value = 0u64;
    for batch in 0..s.paused_batches {
        for imp in rotated(&impls, batch) {
            node.pause().expect("SIGSTOP");
            let entry = out.entry(imp).or_default();
            for _ in 0..s.paused_per_batch {
                value += 1;
                let t = Instant::now();
                let outcome = cycle(setup, imp, &resources[&imp], value, TTL).await;
                // Every round counts here: a failed round took its time too.
                entry.samples.push(t.elapsed());
                if outcome != Outcome::Done {
                    entry.not_done += 1;
                }
            }
            node.resume().expect("SIGCONT");
            // Let the queued commands drain before the next implementation's batch.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    out
}

/// One voter's state in the first-acquire case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FreshScenario {
    Healthy,
    /// The third master SIGSTOPped: it accepts connections (the kernel does) but answers nothing.
    Stopped,
    /// The third master's address is a closed loopback port: connections are refused.
    Refused,
}

impl fmt::Display for FreshScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FreshScenario::Healthy => "healthy",
            FreshScenario::Stopped => "one master SIGSTOPped",
            FreshScenario::Refused => "one master refusing connections",
        })
    }
}

/// A loopback port with nothing listening on it (bound, then let go).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The first acquire of a brand-new handle over three masters: a new `LockManager` with the
/// default configuration (`Mode::Auto`: it reads every master's `INFO` before the first
/// round) or a new `rslock::LockManager` (no discovery: it connects on the first `lock`),
/// timed from construction to the grant; then released (not timed). Interleaved, one handle
/// of each implementation at a time.
async fn fresh_first(
    urls: &[String],
    stopped: &RedisServer,
    s: &Settings,
) -> Vec<(FreshScenario, HashMap<Impl, Latency>)> {
    let mut out = Vec::new();
    for scenario in [
        FreshScenario::Healthy,
        FreshScenario::Stopped,
        FreshScenario::Refused,
    ] {
        let mut urls = urls[..3].to_vec();
        if scenario == FreshScenario::Refused {
            urls[2] = format!("redis://127.0.0.1:{}", closed_port());
        }
        if scenario == FreshScenario::Stopped {
            stopped.pause().expect("SIGSTOP");
        }
        let mut lat: HashMap<Impl, Latency> = HashMap::new();
        for i in 0..s.fresh_handles {
            for imp in rotated(&[Impl::Ours, Impl::Rslock], i) {
                let name = format!("fresh-{scenario:?}-{imp}-{i}");
                let entry = lat.entry(imp).or_default();
                let start = Instant::now();
                let granted = match imp {
                    Impl::Ours => {
                        let manager = LockManager::new(&urls, LockConfig::new()).expect("manager");
                        let got = timeout(OP_LIMIT, manager.try_acquire(&name, TTL)).await;
                        entry.samples.push(start.elapsed());
                        match got {
                            Ok(Ok(Some(mut lock))) => {
                                let _ = timeout(OP_LIMIT, manager.release(&mut lock)).await;
                                true
                            }
                            _ => false,
                        }
                    }
                    _ => {
                        let rs = rslock::LockManager::new(urls.clone());
                        let got = timeout(OP_LIMIT, rs.lock(name.as_str(), TTL)).await;
                        entry.samples.push(start.elapsed());
                        match got {
                            Ok(Ok(lock)) => {
                                let _ = timeout(OP_LIMIT, rs.unlock(&lock)).await;
                                true
                            }
                            _ => false,
                        }
                    }
                };
                if !granted {
                    entry.not_done += 1;
                }
            }
        }
        if scenario == FreshScenario::Stopped {
            stopped.resume().expect("SIGCONT");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        out.push((scenario, lat));
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Held {
    locks: usize,
    bytes_per_lock: f64,
}

/// Live heap bytes per held lock: take `n` locks on distinct resources (64 at a time), keep
/// them in a `Vec`, and compare live bytes before and after; then release them all.
async fn held_memory(setup: &Setup, imp: Impl, n: usize) -> Held {
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    // Warm up: grow whatever per-connection buffers 64 concurrent calls need.
    let warm = setup.resource(format!("warm-{imp}")).await;
    stream::iter(0..256u64)
        .for_each_concurrent(64, |i| {
            let warm = &warm;
            async move {
                cycle(setup, imp, warm, i, TTL).await;
            }
        })
        .await;
    settle().await;
    match imp {
        Impl::Ours => {
            let before = live_bytes();
            let mut held: Vec<Lock> = Vec::with_capacity(n);
            let results: Vec<_> = stream::iter(0..n)
                .map(|i| async move {
                    let name = format!("held-{i}");
                    timeout(OP_LIMIT, setup.ours.try_acquire(&name, TTL)).await
                })
                .buffer_unordered(64)
                .collect()
                .await;
            held.extend(results.into_iter().filter_map(|r| r.ok()?.ok()?));
            settle().await;
            let after = live_bytes();
            let result = Held {
                locks: held.len(),
                bytes_per_lock: (after - before) as f64 / held.len().max(1) as f64,
            };
            stream::iter(held)
                .for_each_concurrent(64, |mut lock| async move {
                    let _ = timeout(OP_LIMIT, setup.ours.release(&mut lock)).await;
                })
                .await;
            result
        }
        Impl::Rslock => {
            let rs = setup.rslock();
            let before = live_bytes();
            let mut held: Vec<rslock::Lock> = Vec::with_capacity(n);
            let results: Vec<_> = stream::iter(0..n)
                .map(|i| async move {
                    let name = format!("held-{i}");
                    timeout(OP_LIMIT, rs.lock(name.as_str(), TTL)).await
                })
                .buffer_unordered(64)
                .collect()
                .await;
            held.extend(results.into_iter().filter_map(|r| r.ok()?.ok()));
            settle().await;
            let after = live_bytes();
            let result = Held {
                locks: held.len(),
                bytes_per_lock: (after - before) as f64 / held.len().max(1) as f64,
            };
            stream::iter(held)
                .for_each_concurrent(64, |lock| async move {
                    let _ = timeout(OP_LIMIT, rs.unlock(&lock)).await;
                })
                .await;
            result
        }
        Impl::Raw => unreachable!("the raw fan-out holds no lock object"),
    }
}

#[derive(Debug, Default, Clone)]
struct Contention {
    acquisitions: u64,
    waits: Vec<Duration>,
    elapsed: Duration,
    gave_up: u64,
}

/// 16 tasks on one resource, each holding it 1 ms, until the window closes (a waiter already
/// waiting when it closes waits on, bounded by `OP_LIMIT`); windows of the two interleaved.
/// Acquire as a user would: ours `acquire` (default retry policy) again until granted,
/// rslock's `acquire_no_guard` (which loops by itself).
async fn contention(setup: &Arc<Setup>, s: &Settings) -> HashMap<Impl, Contention> {
    const TASKS: usize = 16;
    const HOLD: Duration = Duration::from_millis(1);
    let impls = [Impl::Ours, Impl::Rslock];
    let ours_manager = LockManager::connect(
        &setup.ours_seeds(),
        LockConfig::new().mode(Mode::Independent),
    )
    .await
    .expect("manager with the default retry policy");
    let ours_manager = Arc::new(ours_manager);
    let mut out: HashMap<Impl, Contention> = HashMap::new();
    for window in 0..s.contention_windows {
        for imp in rotated(&impls, window) {
            let resource = Arc::new(format!("contended-{imp}-{window}"));
            let start = Instant::now();
            let deadline = start + s.contention_window;
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    let setup = setup.clone();
                    let manager = ours_manager.clone();
                    let resource = resource.clone();
                    tokio::spawn(async move {
                        let mut mine = Contention::default();
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            match imp {
                                Impl::Ours => {
                                    let wait = async {
                                        loop {
                                            if let Ok(Some(lock)) =
                                                manager.acquire(&resource, TTL).await
                                            {
                                                break lock;
                                            }
                                        }
                                    };
                                    let Ok(mut lock) = timeout(OP_LIMIT, wait).await else {
                                        mine.gave_up += 1;
                                        continue;
                                    };
                                    mine.waits.push(t.elapsed());
                                    mine.acquisitions += 1;
                                    tokio::time::sleep(HOLD).await;
                                    let _ = timeout(OP_LIMIT, manager.release(&mut lock)).await;
                                }
                                _ => {
                                    let rs = setup.rslock();
                                    let wait = rs.acquire_no_guard(resource.as_str(), TTL);
                                    let Ok(Ok(lock)) = timeout(OP_LIMIT, wait).await else {
                                        mine.gave_up += 1;
                                        continue;
                                    };
                                    mine.waits.push(t.elapsed());
                                    mine.acquisitions += 1;
                                    tokio::time::sleep(HOLD).await;
                                    let _ = timeout(OP_LIMIT, rs.unlock(&lock)).await;
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            let results = join_all(handles).await;
            let entry = out.entry(imp).or_default();
            entry.elapsed += start.elapsed();
            for mine in results.into_iter().map(|r| r.expect("task")) {
                entry.acquisitions += mine.acquisitions;
                entry.gave_up += mine.gave_up;
                entry.waits.extend(mine.waits);
            }
        }
    }
    out
}

impl Setup {
    /// The URLs of this setup's masters (for an independent-masters manager).
    fn ours_seeds(&self) -> Vec<String> {
        let mut addrs: Vec<&String> = self.conns.keys().collect();
        addrs.sort();
        addrs.iter().map(|a| format!("redis://{a}")).collect()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Overload {
    calls: usize,
    elapsed: Duration,
    granted: usize,
    not_granted: usize,
    failed: usize,
    leftover_keys: u64,
}

/// `n` concurrent acquire attempts on distinct resources (each released when granted) from one
/// client; then, 1 s after the last one finished, the keys left on the masters.
async fn overload(setup: &Arc<Setup>, imp: Impl, n: usize) -> Overload {
    setup.flush().await;
    let mut resources = Vec::with_capacity(n);
    for i in 0..n {
        resources.push(setup.resource(format!("overload-{i}")).await);
    }
    let start = Instant::now();
    let handles: Vec<_> = resources
        .into_iter()
        .enumerate()
        .map(|(i, resource)| {
            let setup = setup.clone();
            tokio::spawn(async move { cycle(&setup, imp, &resource, i as u64, OVERLOAD_TTL).await })
        })
        .collect();
    let outcomes = join_all(handles).await;
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leftover_keys = setup.total_keys().await;
    let mut result = Overload {
        calls: n,
        elapsed,
        leftover_keys,
        ..Overload::default()
    };
    for outcome in outcomes {
        match outcome.expect("task") {
            Outcome::Done => result.granted += 1,
            Outcome::NotGranted => result.not_granted += 1,
            Outcome::Failed => result.failed += 1,
        }
    }
    setup.flush().await;
    result
}

// ---------------------------------------------------------------------------------------------
// The run and the report.

#[derive(Default)]
struct Results {
    serial: Vec<(Arc<Setup>, HashMap<Impl, Latency>)>,
    throughput: Vec<(Arc<Setup>, usize, HashMap<Impl, Rate>)>,
    paused: Vec<(Arc<Setup>, HashMap<Impl, Latency>)>,
    fresh: Vec<(FreshScenario, HashMap<Impl, Latency>)>,
    held: Vec<(Impl, Held)>,
    contention: HashMap<Impl, Contention>,
    overload: Vec<(Arc<Setup>, Impl, Overload)>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn redis_version() -> String {
    redis_server_path()
        .ok()
        .and_then(|path| {
            std::process::Command::new(path)
                .arg("--version")
                .output()
                .ok()
        })
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let s = Settings::from_env();
    let load_before = loadavg();
    let started = Instant::now();
    let date = utc_timestamp(SystemTime::now());
    eprintln!("compare: {} (load {load_before})", s.command());

    let appendonly = s.fsync_always;
    let standalone =
        Standalone::start_with_appendonly(7, appendonly).expect("7 standalone masters");
    let cluster =
        Cluster::start(ClusterOptions::default().appendonly(appendonly)).expect("3+3 cluster");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let results = runtime.block_on(run(&s, &standalone, &cluster));
    let load_after = loadavg();
    let total = started.elapsed();
    drop(runtime);

    let report = report(&s, &results, &date, &load_before, &load_after, total);
    println!("{report}");
    let dir = s.out_dir();
    std::fs::create_dir_all(&dir).expect("output directory");
    let md = dir.join(format!("{}.md", s.file_stem()));
    let svg = dir.join(format!("{}.svg", s.file_stem()));
    std::fs::write(&md, report).expect("write the report");
    match render_svg(&plot_panels(&results), 1000, 420) {
        Ok(text) => std::fs::write(&svg, text).expect("write the plot"),
        Err(e) => eprintln!("compare: no plot: {e}"),
    }
    eprintln!(
        "compare: wrote {} and {} in {:.0} s",
        md.display(),
        svg.display(),
        total.as_secs_f64()
    );
}

async fn run(s: &Settings, standalone: &Standalone, cluster: &Cluster) -> Results {
    let mut results = Results::default();
    let urls = standalone.urls();
    let cluster_masters: Vec<String> = cluster
        .master_indices()
        .expect("cluster masters")
        .into_iter()
        .map(|i| cluster.nodes()[i].url())
        .collect();

    // Voter counts over independent masters: serial and 64 tasks.
    let mut three = None;
    for n in VOTER_COUNTS {
        let setup = Setup::new(
            format!("{n} independent master{}", if n == 1 { "" } else { "s" }),
            &urls[..n],
            &urls[..n],
            Mode::Independent,
            true,
        )
        .await;
        eprintln!("compare: {}: serial", setup.label);
        results
            .serial
            .push((setup.clone(), serial(&setup, s).await));
        eprintln!("compare: {}: 64 tasks", setup.label);
        results
            .throughput
            .push((setup.clone(), 64, throughput(&setup, 64, s).await));
        if n == 3 {
            three = Some(setup);
        }
    }
    let three = three.expect("the 3-master setup");
    let clustered = Setup::new(
        "3+3 cluster, 3 voters".to_string(),
        &[cluster.seed_url()],
        &cluster_masters,
        Mode::Cluster,
        false,
    )
    .await;
    eprintln!("compare: cluster: serial, 64 and 256 tasks");
    results
        .serial
        .push((clustered.clone(), serial(&clustered, s).await));
    results
        .throughput
        .push((clustered.clone(), 64, throughput(&clustered, 64, s).await));
    for setup in [&three, &clustered] {
        results
            .throughput
            .push((setup.clone(), 256, throughput(setup, 256, s).await));
    }

    eprintln!("compare: one master SIGSTOPped");
    results.paused.push((
        three.clone(),
        paused(&three, &standalone.nodes()[2], s).await,
    ));
    let cluster_paused = cluster.master_indices().expect("masters")[2];
    results.paused.push((
        clustered.clone(),
        paused(&clustered, &cluster.nodes()[cluster_paused], s).await,
    ));

    eprintln!("compare: first acquire of a fresh handle");
    results.fresh = fresh_first(&urls, &standalone.nodes()[2], s).await;

    eprintln!("compare: memory per held lock");
    for imp in [Impl::Ours, Impl::Rslock] {
        results
            .held
            .push((imp, held_memory(&three, imp, s.held_locks).await));
    }

    eprintln!("compare: 16 tasks on one resource");
    results.contention = contention(&three, s).await;

    eprintln!("compare: {} concurrent acquires", s.overload);
    for setup in [&three, &clustered] {
        for imp in setup.impls() {
            let o = overload(setup, imp, s.overload).await;
            results.overload.push((setup.clone(), imp, o));
        }
    }
    results
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn report(
    s: &Settings,
    r: &Results,
    date: &str,
    load_before: &str,
    load_after: &str,
    total: Duration,
) -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let persistence = if s.fsync_always {
        "`appendonly yes` with `appendfsync always` (every write waits for fsync)"
    } else {
        "no AOF and no RDB snapshots (`appendonly no`, `save \"\"`): no write waits for the disk. \
         Run with `REDLOCK_BENCH_FSYNC_ALWAYS=1` for `appendfsync always` \
         (written to `docs/benchmarks-fsync-always.md`)"
    };
    let mut out = String::new();
    out.push_str("# Benchmarks: redlock-cluster vs rslock vs a raw fan-out\n\n");
    out.push_str(&format!(
        "Generated by `{}` on {date} in {:.0} s{}.\n\n",
        s.command(),
        secs(total),
        if s.quick {
            " (quick mode: small counts, indicative only)"
        } else {
            ""
        }
    ));
    // Busy before we started: something else was running (the 1-minute load is the first).
    let busy = load_before
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l >= 1.0);
    let sharing = if busy {
        "The machine was shared with other work"
    } else {
        "The machine was otherwise idle when the run started"
    };
    out.push_str(&format!(
        "- Machine: {cores} cores ({}), Linux; client and all servers on the same machine, \
         over loopback. Load average (1, 5, 15 min) before: {load_before}; after: \
         {load_after}. {sharing}: quote the ratios, which were measured interleaved so \
         noise hits all implementations alike, not absolute times.\n",
        cpu_model()
    ));
    out.push_str(&format!("- Redis: {}.\n", redis_version()));
    out.push_str(&format!("- Server persistence: {persistence}.\n"));
    out.push_str(
        "- Client: one tokio runtime with 2 worker threads; each implementation with its \
         defaults except where said. **raw** = `SET key val NX PX ttl` on every voter in \
         parallel, then `DEL key` on every voter in parallel, over one multiplexed connection \
         per master, each call under a 100 ms timeout (the floor any quorum lock pays). \
         **redlock-cluster** = `LockManager::try_acquire` + `release` (node timeout 100 ms, \
         the default). **rslock** 0.10 = `LockManager::lock` + `unlock` (no per-node timeout \
         of its own; redis-rs's default 500 ms response timeout applies).\n",
    );
    out.push_str(
        "- rslock is absent on the cluster: it takes a list of independent masters and writes \
         the same key on each. Pointed at cluster masters, a key can only be written on the \
         master owning its slot (the others answer MOVED), so no quorum can form; its \
         `cluster` feature instead treats the whole cluster as one voter (one key on one \
         master), which is a different lock, not the quorum compared here.\n\n",
    );
    out.push_str("![serial p50 and 64-task throughput by voter count](");
    out.push_str(s.file_stem());
    out.push_str(".svg)\n\n");

    // Headline ratios.
    out.push_str("## Ratios\n\n");
    let mut t = Table::new([
        "workload",
        "setup",
        "redlock-cluster / raw",
        "rslock / raw",
        "redlock-cluster / rslock",
    ]);
    let mut ratios = |workload: String, setup: &Setup, values: &dyn Fn(Impl) -> Option<f64>| {
        let rs = setup.rslock.is_some();
        let dash = || "—".to_string();
        t.row([
            workload,
            setup.label.clone(),
            fmt_ratio(values(Impl::Ours), values(Impl::Raw)),
            if rs {
                fmt_ratio(values(Impl::Rslock), values(Impl::Raw))
            } else {
                dash()
            },
            if rs {
                fmt_ratio(values(Impl::Ours), values(Impl::Rslock))
            } else {
                dash()
            },
        ]);
    };
    let p50 = |lat: &HashMap<Impl, Latency>, imp| {
        lat.get(&imp)
            .and_then(Latency::p50_p99)
            .map(|(p, _)| secs(p))
    };
    for (setup, lat) in &r.serial {
        if setup.voters == 3 {
            ratios("serial acquire+release, p50 time".into(), setup, &|imp| {
                p50(lat, imp)
            });
        }
    }
    for (setup, tasks, rates) in &r.throughput {
        if setup.voters == 3 {
            ratios(
                format!("{tasks} tasks, distinct resources, cycles/s"),
                setup,
                &|imp| rates.get(&imp).map(Rate::per_sec),
            );
        }
    }
    for (setup, lat) in &r.paused {
        ratios(
            "one of three masters SIGSTOPped, serial p50 time".into(),
            setup,
            &|imp| p50(lat, imp),
        );
    }
    let three = r
        .serial
        .iter()
        .find(|(s2, _)| s2.voters == 3 && s2.rslock.is_some());
    if let Some((setup, _)) = three {
        for (scenario, lat) in &r.fresh {
            ratios(
                format!("first acquire of a fresh handle, {scenario}, p50 time"),
                setup,
                &|imp| {
                    if imp == Impl::Raw {
                        None
                    } else {
                        p50(lat, imp)
                    }
                },
            );
        }
        ratios("client bytes per held lock".into(), setup, &|imp| {
            r.held
                .iter()
                .find(|(i, _)| *i == imp)
                .map(|(_, h)| h.bytes_per_lock)
        });
        ratios(
            "16 tasks, one resource, hold 1 ms: acquisitions/s".into(),
            setup,
            &|imp| {
                r.contention
                    .get(&imp)
                    .map(|c| c.acquisitions as f64 / secs(c.elapsed).max(1e-9))
            },
        );
        ratios(
            "16 tasks, one resource, hold 1 ms: p99 wait".into(),
            setup,
            &|imp| {
                let c = r.contention.get(&imp)?;
                p50_p99(&mut c.waits.clone()).map(|(_, p)| secs(p))
            },
        );
    }
    out.push_str(&t.to_markdown());
    out.push_str(
        "\nRatios of times and bytes: above 1 means slower or bigger than the denominator; \
         ratios of rates: below 1 means fewer per second. \"n/a\": no raw counterpart (raw \
         holds no lock object and was not run contended). Details below.\n\n",
    );

    // Serial by voter count.
    out.push_str("## Serial acquire + release (one task, one resource)\n\n");
    out.push_str(&format!(
        "{} batches of {} cycles per implementation, interleaved (the order rotates each \
         batch).\n\n",
        s.serial_batches, s.serial_per_batch
    ));
    let mut t = Table::new([
        "setup",
        "raw p50",
        "raw p99",
        "ours p50",
        "ours p99",
        "ours/raw p50",
        "rslock p50",
        "rslock p99",
        "rslock/raw p50",
    ]);
    for (setup, lat) in &r.serial {
        let get = |imp| lat.get(&imp).and_then(Latency::p50_p99);
        let cell = |imp, p99: bool| {
            get(imp).map_or("—".to_string(), |(a, b)| fmt_ms(if p99 { b } else { a }))
        };
        let p50 = |imp| get(imp).map(|(p, _)| secs(p));
        let rs = setup.rslock.is_some();
        t.row([
            setup.label.clone(),
            cell(Impl::Raw, false),
            cell(Impl::Raw, true),
            cell(Impl::Ours, false),
            cell(Impl::Ours, true),
            fmt_ratio(p50(Impl::Ours), p50(Impl::Raw)),
            cell(Impl::Rslock, false),
            cell(Impl::Rslock, true),
            if rs {
                fmt_ratio(p50(Impl::Rslock), p50(Impl::Raw))
            } else {
                "—".into()
            },
        ]);
    }
    out.push_str(&t.to_markdown());
    let failures: Vec<String> = r
        .serial
        .iter()
        .flat_map(|(setup, lat)| {
            lat.iter()
                .filter(|(_, l)| l.not_done > 0)
                .map(move |(imp, l)| format!("{} {imp}: {}", setup.label, l.not_done))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str(&format!(
            "\nCycles not granted or failed (left out of the times): {}.\n",
            failures.join("; ")
        ));
    }

    // Throughput.
    out.push_str("\n## Throughput: N tasks, each on its own resource\n\n");
    out.push_str(&format!(
        "{} windows of {} ms per implementation, interleaved; cycles/s = completed cycles / \
         time until every task finished its last cycle.\n\n",
        s.windows,
        s.window.as_millis()
    ));
    let mut t = Table::new([
        "setup",
        "tasks",
        "raw",
        "ours",
        "ours/raw",
        "rslock",
        "rslock/raw",
        "not granted or failed (raw/ours/rslock)",
    ]);
    for (setup, tasks, rates) in &r.throughput {
        let c = |imp| rates.get(&imp).map(Rate::per_sec);
        let cell = |imp| c(imp).map_or("—".to_string(), fmt_rate);
        let bad = |imp| {
            rates
                .get(&imp)
                .map_or("—".to_string(), |r| r.not_done.to_string())
        };
        t.row([
            setup.label.clone(),
            tasks.to_string(),
            cell(Impl::Raw),
            cell(Impl::Ours),
            fmt_ratio(c(Impl::Ours), c(Impl::Raw)),
            cell(Impl::Rslock),
            if setup.rslock.is_some() {
                fmt_ratio(c(Impl::Rslock), c(Impl::Raw))
            } else {
                "—".into()
            },
            format!(
                "{}/{}/{}",
                bad(Impl::Raw),
                bad(Impl::Ours),
                bad(Impl::Rslock)
            ),
        ]);
    }
    out.push_str(&t.to_markdown());

    // Paused master.
    out.push_str("\n## One of three masters SIGSTOPped\n\n");
    out.push_str(&format!(
        "Serial cycles while one voter is stopped with SIGSTOP (it keeps its sockets and \
         answers nothing); {} batches of {} cycles per implementation, the node resumed \
         between batches. Every cycle's time counts, granted or not. Ratio: to \
         redlock-cluster's healthy p50 on the same setup.\n\n",
        s.paused_batches, s.paused_per_batch
    ));
    let mut t = Table::new([
        "setup",
        "implementation",
        "p50",
        "max",
        "p50 / our healthy p50",
        "granted",
    ]);
    for (setup, lat) in &r.paused {
        let healthy = r
            .serial
            .iter()
            .find(|(s2, _)| Arc::ptr_eq(s2, setup))
            .and_then(|(_, l)| l.get(&Impl::Ours)?.p50_p99())
            .map(|(p, _)| secs(p));
        for imp in setup.impls() {
            let Some(l) = lat.get(&imp) else { continue };
            let p50 = l.p50_p99().map(|(p, _)| p);
            let max = l.samples.iter().max().copied();
            t.row([
                setup.label.clone(),
                imp.to_string(),
                p50.map_or("—".into(), fmt_ms),
                max.map_or("—".into(), fmt_ms),
                fmt_ratio(p50.map(secs), healthy),
                format!("{}/{}", l.samples.len() - l.not_done, l.samples.len()),
            ]);
        }
    }
    out.push_str(&t.to_markdown());

    // Fresh handles.
    out.push_str("\n## First acquire of a fresh handle\n\n");
    out.push_str(&format!(
        "{} new handles per implementation and scenario over 3 independent masters, \
         interleaved, each timed from its construction to the grant. redlock-cluster: \
         `LockManager::new` with the default configuration (`Mode::Auto`: the seeds' `INFO` is \
         read before the first round, each seed bounded by the node timeout, 100 ms; the mode \
         is decided once every seed answered or that time passed, by a majority) + \
         `try_acquire`. rslock: `LockManager::new` + `lock` (no discovery step: nothing is \
         read before the first `SET`, so it pays no such wait, and it never learns whether the \
         nodes are masters, one server twice, or cluster nodes). \"Refusing\": the third URL \
         is a closed loopback port.\n\n",
        s.fresh_handles
    ));
    let mut t = Table::new(["scenario", "implementation", "p50", "p99", "max", "granted"]);
    for (scenario, lat) in &r.fresh {
        for imp in [Impl::Ours, Impl::Rslock] {
            let Some(l) = lat.get(&imp) else { continue };
            let pp = l.p50_p99();
            t.row([
                scenario.to_string(),
                imp.to_string(),
                pp.map_or("—".into(), |(p, _)| fmt_ms(p)),
                pp.map_or("—".into(), |(_, p)| fmt_ms(p)),
                l.samples.iter().max().copied().map_or("—".into(), fmt_ms),
                format!("{}/{}", l.samples.len() - l.not_done, l.samples.len()),
            ]);
        }
    }
    out.push_str(&t.to_markdown());

    // Memory.
    out.push_str("\n## Client memory per held lock\n\n");
    out.push_str(
        "Live heap bytes (a counting global allocator in the bench binary) after taking the \
         locks on distinct resources and keeping them in a `Vec`, minus before, divided by \
         the number of locks; 3 independent masters. Includes the `Vec` slot of each lock; \
         counts the bytes requested, not the allocator's own rounding and headers.\n\n",
    );
    let mut t = Table::new(["implementation", "locks held", "bytes per held lock"]);
    for (imp, h) in &r.held {
        t.row([
            imp.to_string(),
            group_thousands(h.locks as u64),
            format!("{:.0}", h.bytes_per_lock),
        ]);
    }
    out.push_str(&t.to_markdown());

    // Contention.
    out.push_str("\n## 16 tasks on one resource, each holding it 1 ms\n\n");
    out.push_str(&format!(
        "3 independent masters; {} windows of {} ms each, interleaved. Each task loops: wait \
         for the lock, hold it 1 ms, release. Ours: `acquire` with the default retry policy \
         (3 attempts, full-jitter backoff from 50 ms, cut to the holder's remaining TTL), \
         called again until granted; rslock: `acquire_no_guard` (retries with a random delay \
         up to 200 ms, forever). Wait = from the first attempt to the grant.\n\n",
        s.contention_windows,
        s.contention_window.as_millis()
    ));
    let mut t = Table::new([
        "implementation",
        "acquisitions/s",
        "p50 wait",
        "p99 wait",
        "gave up (>5 s)",
    ]);
    for imp in [Impl::Ours, Impl::Rslock] {
        let Some(c) = r.contention.get(&imp) else {
            continue;
        };
        let waits = p50_p99(&mut c.waits.clone());
        t.row([
            imp.to_string(),
            fmt_rate(c.acquisitions as f64 / secs(c.elapsed).max(1e-9)),
            waits.map_or("—".into(), |(p, _)| fmt_ms(p)),
            waits.map_or("—".into(), |(_, p)| fmt_ms(p)),
            c.gave_up.to_string(),
        ]);
    }
    out.push_str(&t.to_markdown());

    // Overload.
    out.push_str(&format!(
        "\n## {} concurrent acquires on distinct resources, one client\n\n",
        group_thousands(s.overload as u64)
    ));
    out.push_str(
        "All spawned at once on one manager (ours: `try_acquire`, then `release` when \
         granted; rslock: `lock`, then `unlock`; raw: the cycle above), TTL 30 s. Leftover \
         keys: `DBSIZE` summed over the masters 1 s after the last call returned (the \
         databases are flushed before each run). It must be 0: a key left behind blocks its \
         resource until the TTL runs out. Not granted = the majority did not answer OK in time \
         (raw) or contended (ours, rslock); errors = the call returned an error (ours: \
         mostly `Unavailable` after the 100 ms node timeout).\n\n\
         Why a timed-out delete can leave a key: redis-rs 1.8 does not send a queued command \
         whose caller has already stopped waiting (`aio/multiplexed_connection.rs`: \"if \
         there is nothing to receive our output we do not need to send the message\"). A \
         `DEL`/release/unlock run under a timeout (raw: 100 ms; ours: the node timeout; \
         rslock: redis-rs's 500 ms response timeout) that expires while the command is still \
         queued behind thousands of others is dropped, while the `SET` before it went out.\n\n",
    );
    let mut t = Table::new([
        "setup",
        "implementation",
        "completion",
        "granted",
        "not granted",
        "errors",
        "leftover keys after 1 s",
    ]);
    for (setup, imp, o) in &r.overload {
        t.row([
            setup.label.clone(),
            imp.to_string(),
            fmt_ms(o.elapsed),
            group_thousands(o.granted as u64),
            group_thousands(o.not_granted as u64),
            group_thousands(o.failed as u64),
            group_thousands(o.leftover_keys),
        ]);
        debug_assert_eq!(o.calls, o.granted + o.not_granted + o.failed);
    }
    out.push_str(&t.to_markdown());
    out
}

fn plot_panels(r: &Results) -> Vec<Panel> {
    let mut latency: HashMap<Impl, Vec<(f64, f64)>> = HashMap::new();
    for (setup, lat) in &r.serial {
        if setup.rslock.is_none() {
            continue; // the cluster is not a voter-count point
        }
        for (imp, l) in lat {
            if let Some((p50, _)) = l.p50_p99() {
                latency
                    .entry(*imp)
                    .or_default()
                    .push((setup.voters as f64, secs(p50) * 1000.0));
            }
        }
    }
    let mut rate: HashMap<Impl, Vec<(f64, f64)>> = HashMap::new();
    for (setup, tasks, rates) in &r.throughput {
        if setup.rslock.is_none() || *tasks != 64 {
            continue;
        }
        for (imp, rt) in rates {
            rate.entry(*imp)
                .or_default()
                .push((setup.voters as f64, rt.per_sec()));
        }
    }
    let series = |mut map: HashMap<Impl, Vec<(f64, f64)>>| {
        [Impl::Raw, Impl::Ours, Impl::Rslock]
            .into_iter()
            .filter_map(|imp| {
                let mut points = map.remove(&imp)?;
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Some(Series {
                    name: imp.to_string(),
                    points,
                })
            })
            .collect()
    };
    vec![
        Panel {
            title: "serial acquire+release, p50 (ms)".into(),
            x_label: "independent masters (voters)".into(),
            y_label: "ms".into(),
            series: series(latency),
        },
        Panel {
            title: "64 tasks, distinct resources (cycles/s)".into(),
            x_label: "independent masters (voters)".into(),
            y_label: "cycles/s".into(),
            series: series(rate),
        },
    ]
}
