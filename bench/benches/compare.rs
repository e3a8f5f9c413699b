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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use redis::aio::MultiplexedConnection;
use redlock_bench::{
    Panel, Series, Table, fmt_ms, fmt_rate, fmt_ratio, group_thousands, info_u64, p50_p99,
    parse_commandstats, proc_stat_cpu_ticks, render_svg, script_commands, utc_timestamp,
};
use redlock_cluster::{Lock, LockConfig, LockManager, Mode, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, RedisServer, Standalone, redis_server_path};
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------------
// Live heap bytes, for "client memory per held lock", and allocation calls and bytes, for
// the cost per cycle.

/// The system allocator, counting the bytes currently allocated by the whole process and the
/// allocation calls made.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// `alloc`, `alloc_zeroed` and `realloc` calls so far.
static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);
/// Bytes asked for by those calls (a `realloc` counts its new size).
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

fn count_alloc(size: usize) {
    ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
    ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

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
            count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_delta(layout.size()), Ordering::Relaxed);
            count_alloc(layout.size());
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
            count_alloc(new_size);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// User + system CPU time of this process so far (`getrusage(RUSAGE_SELF)`: every thread).
fn client_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` to the pointer, which is valid for that write.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised (all-zero is a valid `rusage`) and filled in by the call.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User + system CPU time of the processes `pids` so far, from `/proc/<pid>/stat` (clock
/// ticks, usually 10 ms each).
fn servers_cpu(pids: &[u32]) -> Duration {
    // SAFETY: `sysconf` only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| proc_stat_cpu_ticks(&stat))
        .sum();
    Duration::from_micros(ticks * 1_000_000 / hz)
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
/// The replica acknowledgement of the "acked" option: `replica_acks(1, ACK_TIMEOUT)`.
const ACK_TIMEOUT: Duration = Duration::from_millis(100);
/// The acked option's node timeout: the acks timeout must be shorter than the node timeout
/// (`LockConfig::validate`), so it cannot keep the default 100 ms.
const ACKED_NODE_TIMEOUT: Duration = Duration::from_millis(250);
/// Waiters (one `LockManager` each) in the many-waiters case.
const WAITERS: usize = 200;
/// Attempts of each waiter's acquire in the many-waiters case, before it gives up.
const WAITER_ATTEMPTS: u32 = 10;
/// rslock's retry delay in the many-waiters case (its default: a random delay up to this).
const RSLOCK_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Upper bound of one waiter's acquire in the many-waiters case: ten attempts with
/// exponential backoff may take over 5 s.
const WAITER_LIMIT: Duration = Duration::from_secs(10);

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
    /// The many-waiters case: window length and count.
    waiters_window: Duration,
    waiters_windows: usize,
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
                waiters_window: Duration::from_secs(1),
                waiters_windows: 1,
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
                waiters_window: Duration::from_secs(3),
                waiters_windows: 2,
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
    /// Ours with `LockConfig::fencing(true)`.
    Fenced,
    /// Ours with `LockConfig::replica_acks(1, ACK_TIMEOUT)` (needs replicas: the cluster).
    Acked,
    /// Ours with `LockConfig::notify_on_release(false)` (the many-waiters case only).
    Polling,
}

impl Impl {
    /// The commands this implementation's Lua scripts call: `INFO commandstats` counts them
    /// apart from the script call (`evalsha`) whose time already includes theirs, and no
    /// client sends them itself during a cycle.
    fn script_commands(self) -> BTreeSet<String> {
        match self {
            Impl::Raw => BTreeSet::new(),
            // rslock 0.10's unlock script (src/lock.rs, UNLOCK_SCRIPT): GET, then DEL.
            Impl::Rslock => ["get", "del"].into_iter().map(String::from).collect(),
            Impl::Ours | Impl::Fenced | Impl::Acked | Impl::Polling => our_script_commands(),
        }
    }
}

/// The commands called by the library's Lua scripts (`src/scripts/*.lua`, read at run time,
/// so that the split follows the scripts being measured).
fn our_script_commands() -> BTreeSet<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../src/scripts");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "lua")
            && let Ok(lua) = std::fs::read_to_string(&path)
        {
            out.extend(script_commands(&lua));
        }
    }
    out
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Impl::Raw => "raw",
            Impl::Ours => "redlock-cluster",
            Impl::Rslock => "rslock",
            Impl::Fenced => "redlock-cluster fenced",
            Impl::Acked => "redlock-cluster acked",
            Impl::Polling => "redlock-cluster, notified waits off",
        })
    }
}

/// One topology with a client of each implementation.
struct Setup {
    label: String,
    voters: usize,
    ours: LockManager,
    rslock: Option<rslock::LockManager>,
    /// Ours with `fencing(true)`, where that option is measured.
    fenced: Option<LockManager>,
    /// Ours with `replica_acks(1, ACK_TIMEOUT)`, where that option is measured.
    acked: Option<LockManager>,
    /// One multiplexed connection per master, by `host:port`.
    conns: HashMap<String, MultiplexedConnection>,
    /// The voters' server processes, for their CPU time.
    pids: Vec<u32>,
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
        options: &[Impl],
        pids: Vec<u32>,
    ) -> Arc<Self> {
        let config = LockConfig::new()
            .mode(mode)
            .node_timeout(NODE_TIMEOUT)
            .retry(RetryPolicy::once());
        let ours = LockManager::connect(seeds, config.clone())
            .await
            .expect("our manager");
        let mut fenced = None;
        let mut acked = None;
        for option in options {
            match option {
                Impl::Fenced => {
                    let config = config.clone().fencing(true);
                    fenced = Some(LockManager::connect(seeds, config).await.expect("fenced"));
                }
                Impl::Acked => {
                    let config = config
                        .clone()
                        .node_timeout(ACKED_NODE_TIMEOUT)
                        .replica_acks(1, ACK_TIMEOUT);
                    acked = Some(LockManager::connect(seeds, config).await.expect("acked"));
                }
                other => panic!("{other} is not an option"),
            }
        }
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
            fenced,
            acked,
            conns,
            pids,
        })
    }

    /// The implementations compared everywhere on this setup.
    fn impls(&self) -> Vec<Impl> {
        let mut impls = vec![Impl::Raw, Impl::Ours];
        if self.rslock.is_some() {
            impls.push(Impl::Rslock);
        }
        impls
    }

    /// [`Setup::impls`] plus the options measured on this setup (serial and 64 tasks).
    fn with_options(&self) -> Vec<Impl> {
        let mut impls = self.impls();
        if self.fenced.is_some() {
            impls.push(Impl::Fenced);
        }
        if self.acked.is_some() {
            impls.push(Impl::Acked);
        }
        impls
    }

    /// Our manager for `imp` (plain, fenced or acked).
    fn manager(&self, imp: Impl) -> &LockManager {
        match imp {
            Impl::Fenced => self.fenced.as_ref().expect("fenced on this setup"),
            Impl::Acked => self.acked.as_ref().expect("acked on this setup"),
            Impl::Polling => unreachable!("notified waits off: the many-waiters case only"),
            _ => &self.ours,
        }
    }

    /// `CONFIG RESETSTAT` on every master: command stats, reads and network bytes from 0.
    async fn reset_stats(&self) {
        for conn in self.conns.values() {
            let mut conn = conn.clone();
            let () = timeout(
                OP_LIMIT,
                redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut conn),
            )
            .await
            .expect("CONFIG RESETSTAT in time")
            .expect("CONFIG RESETSTAT");
        }
    }

    /// `INFO stats commandstats` of every master, summed: what reached the servers since
    /// [`Setup::reset_stats`], the bench's own `CONFIG RESETSTAT` and `INFO` left out.
    async fn server_stats(&self) -> ServerStats {
        let mut out = ServerStats::default();
        for conn in self.conns.values() {
            let mut conn = conn.clone();
            let info: String = timeout(
                OP_LIMIT,
                redis::cmd("INFO")
                    .arg("stats")
                    .arg("commandstats")
                    .query_async(&mut conn),
            )
            .await
            .expect("INFO in time")
            .expect("INFO");
            for stat in parse_commandstats(&info) {
                if stat.name == "info" || stat.name == "config|resetstat" {
                    continue;
                }
                let entry = out.commands.entry(stat.name).or_default();
                entry.0 += stat.calls;
                entry.1 += stat.usec;
            }
            // The read that brought this INFO is counted already; the RESETSTAT's was reset.
            out.reads += info_u64(&info, "total_reads_processed")
                .unwrap_or(0)
                .saturating_sub(1);
            out.net_bytes += info_u64(&info, "total_net_input_bytes").unwrap_or(0)
                + info_u64(&info, "total_net_output_bytes").unwrap_or(0);
            out.connections += info_u64(&info, "total_connections_received").unwrap_or(0);
        }
        out
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
            Impl::Ours | Impl::Fenced | Impl::Acked | Impl::Polling => {
                let manager = setup.manager(imp);
                match manager.try_acquire(&resource.name, ttl).await {
                    Ok(Some(mut lock)) => match manager.release(&mut lock).await {
                        Ok(_) => Outcome::Done,
                        Err(_) => Outcome::Failed,
                    },
                    Ok(None) => Outcome::NotGranted,
                    Err(_) => Outcome::Failed,
                }
            }
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
    let impls = setup.with_options();
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

#[derive(Debug, Default, Clone)]
struct Rate {
    cycles: u64,
    not_done: u64,
    elapsed: Duration,
    /// What the windows cost, client and servers.
    cost: Cost,
}

/// What reached the servers in a window (summed over the voters).
#[derive(Debug, Default, Clone)]
struct ServerStats {
    /// By command name: calls and microseconds (`INFO commandstats`).
    commands: BTreeMap<String, (u64, u64)>,
    /// Socket reads of client input (`total_reads_processed`).
    reads: u64,
    /// Bytes in and out (`total_net_input_bytes` + `total_net_output_bytes`).
    net_bytes: u64,
    /// Connections accepted (`total_connections_received`).
    connections: u64,
}

/// Client and server resources used over the throughput windows of one implementation.
#[derive(Debug, Default, Clone)]
struct Cost {
    /// Cycles attempted (completed or not) in those windows.
    cycles: u64,
    /// This process's user + system CPU (`getrusage(RUSAGE_SELF)`).
    client_cpu: Duration,
    /// The voters' processes' user + system CPU (`/proc/<pid>/stat`).
    server_cpu: Duration,
    server: ServerStats,
    /// Allocation calls of this process, and the bytes they asked for.
    allocs: u64,
    alloc_bytes: u64,
}

/// Counters read before and after a window.
#[derive(Debug, Clone, Copy)]
struct Probe {
    client_cpu: Duration,
    server_cpu: Duration,
    allocs: u64,
    alloc_bytes: u64,
}

impl Probe {
    fn now(pids: &[u32]) -> Self {
        Self {
            client_cpu: client_cpu(),
            server_cpu: servers_cpu(pids),
            allocs: ALLOC_CALLS.load(Ordering::Relaxed),
            alloc_bytes: ALLOC_BYTES.load(Ordering::Relaxed),
        }
    }
}

impl Cost {
    fn add(&mut self, cycles: u64, before: Probe, after: Probe, server: ServerStats) {
        self.cycles += cycles;
        self.client_cpu += after.client_cpu.saturating_sub(before.client_cpu);
        self.server_cpu += after.server_cpu.saturating_sub(before.server_cpu);
        self.allocs += after.allocs.saturating_sub(before.allocs);
        self.alloc_bytes += after.alloc_bytes.saturating_sub(before.alloc_bytes);
        for (name, (calls, usec)) in server.commands {
            let entry = self.server.commands.entry(name).or_default();
            entry.0 += calls;
            entry.1 += usec;
        }
        self.server.reads += server.reads;
        self.server.net_bytes += server.net_bytes;
        self.server.connections += server.connections;
    }

    fn per_cycle(&self, total: f64) -> f64 {
        total / self.cycles.max(1) as f64
    }
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `tasks` tasks, each cycling on its own resource until the window closes; windows of the
/// implementations `impls` interleaved. Around each window: the servers' stats reset before,
/// read after, and the client's and servers' CPU and the client's allocations counted (none
/// of it inside the timed window).
async fn throughput(
    setup: &Arc<Setup>,
    tasks: usize,
    impls: &[Impl],
    s: &Settings,
) -> HashMap<Impl, Rate> {
    let impls = impls.to_vec();
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
            setup.reset_stats().await;
            let before = Probe::now(&setup.pids);
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
            let elapsed = start.elapsed();
            let after = Probe::now(&setup.pids);
            let server = setup.server_stats().await;
            let entry = out.entry(imp).or_default();
            entry.elapsed += elapsed;
            let mut cycles = 0;
            for (done, not_done) in results.into_iter().map(|r| r.expect("task")) {
                entry.cycles += done;
                entry.not_done += not_done;
                cycles += done + not_done;
            }
            entry.cost.add(cycles, before, after, server);
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
        other => unreachable!("{other}: only ours and rslock are measured here"),
    }
}

#[derive(Debug, Default, Clone)]
struct Contention {
    acquisitions: u64,
    waits: Vec<Duration>,
    elapsed: Duration,
    gave_up: u64,
    /// Calls that returned an error or ran over their limit (the many-waiters case only; the
    /// 16-task case counts these as gave up).
    errors: u64,
    /// What reached the servers (the many-waiters case only).
    server: ServerStats,
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

/// `WAITERS` tasks on one resource, each with its own `LockManager` (so each its own
/// connections and its own notified-wait subscriptions), each holding the lock 1 ms, until the
/// window closes; windows of ours and rslock interleaved. Each acquire call is bounded to
/// `WAITER_ATTEMPTS` attempts: ours `acquire` with `RetryPolicy::new().max_attempts(..)`
/// (full-jitter backoff from 50 ms up to 1 s, notified waits on: the default), rslock `lock`
/// after `set_retry(WAITER_ATTEMPTS, 200 ms)`; a call that ran out of attempts gave up, and
/// the waiter calls again.
async fn many_waiters(setup: &Setup, s: &Settings) -> HashMap<Impl, Contention> {
    const HOLD: Duration = Duration::from_millis(1);
    let urls = &setup.ours_seeds()[..];
    let config = LockConfig::new()
        .mode(Mode::Independent)
        .retry(RetryPolicy::new().max_attempts(WAITER_ATTEMPTS));
    let ours: Vec<Arc<LockManager>> = stream::iter(0..WAITERS)
        .map(|_| {
            let config = config.clone();
            async move {
                let manager = timeout(OP_LIMIT, LockManager::connect(urls, config))
                    .await
                    .expect("a waiter's manager in time")
                    .expect("a waiter's manager");
                Arc::new(manager)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let polling: Vec<Arc<LockManager>> = stream::iter(0..WAITERS)
        .map(|_| {
            let config = config.clone().notify_on_release(false);
            async move {
                let manager = timeout(OP_LIMIT, LockManager::connect(urls, config))
                    .await
                    .expect("a waiter's manager in time")
                    .expect("a waiter's manager");
                Arc::new(manager)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let theirs: Vec<Arc<rslock::LockManager>> = (0..WAITERS)
        .map(|_| {
            let mut manager = rslock::LockManager::new(urls.to_vec());
            manager.set_retry(WAITER_ATTEMPTS, RSLOCK_RETRY_DELAY);
            Arc::new(manager)
        })
        .collect();
    let impls = [Impl::Ours, Impl::Polling, Impl::Rslock];
    let mut out: HashMap<Impl, Contention> = HashMap::new();
    for window in 0..s.waiters_windows {
        for imp in rotated(&impls, window) {
            let resource = Arc::new(format!("waiters-{imp}-{window}"));
            setup.reset_stats().await;
            let start = Instant::now();
            let deadline = start + s.waiters_window;
            let handles: Vec<_> = (0..WAITERS)
                .map(|i| {
                    let ours = if imp == Impl::Polling {
                        polling[i].clone()
                    } else {
                        ours[i].clone()
                    };
                    let theirs = theirs[i].clone();
                    let resource = resource.clone();
                    tokio::spawn(async move {
                        let mut mine = Contention::default();
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            if imp != Impl::Rslock {
                                match timeout(WAITER_LIMIT, ours.acquire(&resource, TTL)).await {
                                    Ok(Ok(Some(mut lock))) => {
                                        mine.waits.push(t.elapsed());
                                        mine.acquisitions += 1;
                                        tokio::time::sleep(HOLD).await;
                                        let _ = timeout(OP_LIMIT, ours.release(&mut lock)).await;
                                    }
                                    Ok(Ok(None)) => mine.gave_up += 1,
                                    Ok(Err(_)) | Err(_) => mine.errors += 1,
                                }
                            } else {
                                match timeout(WAITER_LIMIT, theirs.lock(resource.as_str(), TTL))
                                    .await
                                {
                                    Ok(Ok(lock)) => {
                                        mine.waits.push(t.elapsed());
                                        mine.acquisitions += 1;
                                        tokio::time::sleep(HOLD).await;
                                        let _ = timeout(OP_LIMIT, theirs.unlock(&lock)).await;
                                    }
                                    Ok(Err(rslock::LockError::Unavailable)) => mine.gave_up += 1,
                                    Ok(Err(_)) | Err(_) => mine.errors += 1,
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            let results = join_all(handles).await;
            let elapsed = start.elapsed();
            let server = setup.server_stats().await;
            let entry = out.entry(imp).or_default();
            entry.elapsed += elapsed;
            for (name, (calls, usec)) in server.commands {
                let e = entry.server.commands.entry(name).or_default();
                e.0 += calls;
                e.1 += usec;
            }
            entry.server.reads += server.reads;
            for mine in results.into_iter().map(|r| r.expect("task")) {
                entry.acquisitions += mine.acquisitions;
                entry.gave_up += mine.gave_up;
                entry.errors += mine.errors;
                entry.waits.extend(mine.waits);
            }
        }
    }
    join_all(
        ours.iter()
            .chain(&polling)
            .map(|m| m.close(Duration::from_secs(1))),
    )
    .await;
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
    waiters: HashMap<Impl, Contention>,
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
        let options: &[Impl] = if n == 3 { &[Impl::Fenced] } else { &[] };
        let pids = standalone.nodes()[..n]
            .iter()
            .filter_map(RedisServer::pid)
            .collect();
        let setup = Setup::new(
            format!("{n} independent master{}", if n == 1 { "" } else { "s" }),
            &urls[..n],
            &urls[..n],
            Mode::Independent,
            true,
            options,
            pids,
        )
        .await;
        eprintln!("compare: {}: serial", setup.label);
        results
            .serial
            .push((setup.clone(), serial(&setup, s).await));
        eprintln!("compare: {}: 64 tasks", setup.label);
        let impls = setup.with_options();
        results
            .throughput
            .push((setup.clone(), 64, throughput(&setup, 64, &impls, s).await));
        if n == 3 {
            three = Some(setup);
        }
    }
    let three = three.expect("the 3-master setup");
    let cluster_pids = cluster
        .master_indices()
        .expect("cluster masters")
        .into_iter()
        .filter_map(|i| cluster.nodes()[i].pid())
        .collect();
    let clustered = Setup::new(
        "3+3 cluster, 3 voters".to_string(),
        &[cluster.seed_url()],
        &cluster_masters,
        Mode::Cluster,
        false,
        &[Impl::Acked],
        cluster_pids,
    )
    .await;
    eprintln!("compare: cluster: serial, 64 and 256 tasks");
    results
        .serial
        .push((clustered.clone(), serial(&clustered, s).await));
    let impls = clustered.with_options();
    results.throughput.push((
        clustered.clone(),
        64,
        throughput(&clustered, 64, &impls, s).await,
    ));
    for setup in [&three, &clustered] {
        let impls = setup.impls();
        results
            .throughput
            .push((setup.clone(), 256, throughput(setup, 256, &impls, s).await));
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

    eprintln!("compare: {WAITERS} waiters on {WAITERS} managers, one resource");
    results.waiters = many_waiters(&three, s).await;

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
        ratios(
            format!("{WAITERS} waiters on {WAITERS} managers, one resource: acquisitions/s"),
            setup,
            &|imp| {
                r.waiters
                    .get(&imp)
                    .map(|c| c.acquisitions as f64 / secs(c.elapsed).max(1e-9))
            },
        );
        ratios(
            format!("{WAITERS} waiters on {WAITERS} managers, one resource: p99 wait"),
            setup,
            &|imp| {
                let c = r.waiters.get(&imp)?;
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

    // Options against plain ours and raw, same setup, same run.
    out.push_str(
        "Options, against plain redlock-cluster and raw on the same setup in the same run \
         (fenced: `LockConfig::fencing(true)`; acked: `replica_acks(1, 100 ms)` with a 250 ms \
         node timeout):\n\n",
    );
    out.push_str(&options_ratios(r).to_markdown());
    out.push('\n');

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

    out.push_str(&options_section(s, r));
    out.push_str(&cost_section(s, r));

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

    out.push_str(&waiters_section(s, r));

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

/// The p50 of `imp`'s serial cycles on `setup` and its 64-task rate, from `r`.
fn serial_p50(r: &Results, setup: &Arc<Setup>, imp: Impl) -> Option<f64> {
    r.serial
        .iter()
        .find(|(s2, _)| Arc::ptr_eq(s2, setup))
        .and_then(|(_, lat)| lat.get(&imp)?.p50_p99())
        .map(|(p, _)| secs(p))
}

fn rate_of(r: &Results, setup: &Arc<Setup>, tasks: usize, imp: Impl) -> Option<f64> {
    r.throughput
        .iter()
        .find(|(s2, t, _)| Arc::ptr_eq(s2, setup) && *t == tasks)
        .and_then(|(_, _, rates)| rates.get(&imp))
        .map(Rate::per_sec)
}

/// The setups on which an option was measured, with the option.
fn option_setups(r: &Results) -> Vec<(Arc<Setup>, Impl)> {
    let mut out = Vec::new();
    for (setup, _) in &r.serial {
        for imp in setup.with_options() {
            if matches!(imp, Impl::Fenced | Impl::Acked) {
                out.push((setup.clone(), imp));
            }
        }
    }
    out
}

fn options_ratios(r: &Results) -> Table {
    let mut t = Table::new([
        "workload",
        "setup",
        "option",
        "option / redlock-cluster",
        "option / raw",
    ]);
    for (setup, imp) in option_setups(r) {
        let p = |i| serial_p50(r, &setup, i);
        t.row([
            "serial acquire+release, p50 time".to_string(),
            setup.label.clone(),
            imp.to_string(),
            fmt_ratio(p(imp), p(Impl::Ours)),
            fmt_ratio(p(imp), p(Impl::Raw)),
        ]);
        let c = |i| rate_of(r, &setup, 64, i);
        t.row([
            "64 tasks, distinct resources, cycles/s".to_string(),
            setup.label.clone(),
            imp.to_string(),
            fmt_ratio(c(imp), c(Impl::Ours)),
            fmt_ratio(c(imp), c(Impl::Raw)),
        ]);
    }
    t
}

fn options_section(s: &Settings, r: &Results) -> String {
    let mut out = String::from("\n## Options: fencing tokens and replica acknowledgements\n\n");
    out.push_str(&format!(
        "The same serial batches ({} x {} cycles) and 64-task windows ({} x {} ms) as above, \
         interleaved with raw, plain redlock-cluster (and rslock) in the same process. \
         **fenced** = `LockConfig::fencing(true)`: each acquire is two rounds (the vote, which \
         also reads the voters' counters, then the write-back of the token). **acked** = \
         `replica_acks(1, Duration::from_millis(100))` on the 3+3 cluster: each vote is the \
         script and a `WAIT 1 100` pipelined on a connection of its own (a small per-node \
         pool); its node timeout is 250 ms, because the acks timeout must be shorter than the \
         node timeout. Releases are not acknowledged.\n\n",
        s.serial_batches,
        s.serial_per_batch,
        s.windows,
        s.window.as_millis()
    ));
    let mut t = Table::new([
        "setup",
        "option",
        "serial p50",
        "serial p99",
        "p50 / ours",
        "p50 / raw",
        "64 tasks",
        "cycles/s / ours",
        "cycles/s / raw",
        "not granted or failed",
    ]);
    for (setup, imp) in option_setups(r) {
        let lat = r
            .serial
            .iter()
            .find(|(s2, _)| Arc::ptr_eq(s2, &setup))
            .and_then(|(_, l)| l.get(&imp)?.p50_p99());
        let p = |i| serial_p50(r, &setup, i);
        let c = |i| rate_of(r, &setup, 64, i);
        let bad = r
            .throughput
            .iter()
            .find(|(s2, t, _)| Arc::ptr_eq(s2, &setup) && *t == 64)
            .and_then(|(_, _, rates)| rates.get(&imp))
            .map_or("—".to_string(), |rt| rt.not_done.to_string());
        t.row([
            setup.label.clone(),
            imp.to_string(),
            lat.map_or("—".into(), |(a, _)| fmt_ms(a)),
            lat.map_or("—".into(), |(_, b)| fmt_ms(b)),
            fmt_ratio(p(imp), p(Impl::Ours)),
            fmt_ratio(p(imp), p(Impl::Raw)),
            c(imp).map_or("—".into(), fmt_rate),
            fmt_ratio(c(imp), c(Impl::Ours)),
            fmt_ratio(c(imp), c(Impl::Raw)),
            bad,
        ]);
    }
    out.push_str(&t.to_markdown());
    out
}

/// `calls` per cycle of each command in `names`, largest first: `evalsha 6.00, wait 3.00`.
fn by_name(cost: &Cost, pick: &dyn Fn(&str) -> bool) -> String {
    let mut list: Vec<(&String, u64)> = cost
        .server
        .commands
        .iter()
        .filter(|(name, _)| pick(name))
        .map(|(name, (calls, _))| (name, *calls))
        .collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = list
        .iter()
        .map(|(name, calls)| {
            format!(
                "{} {:.2}",
                name.to_uppercase(),
                cost.per_cycle(*calls as f64)
            )
        })
        .filter(|s| !s.ends_with(" 0.00"))
        .collect();
    if shown.is_empty() {
        "—".into()
    } else {
        shown.join(", ")
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn cost_section(s: &Settings, r: &Results) -> String {
    let mut out = String::from("\n## Where each cycle goes (64 tasks, distinct resources)\n\n");
    out.push_str(&format!(
        "Measured around the 64-task windows above ({} x {} ms per implementation, \
         interleaved), divided by the cycles attempted in them; servers summed over the \
         voters (the masters). Before each window `CONFIG RESETSTAT` on every voter; after it \
         `INFO stats commandstats` (the bench's own `CONFIG`/`INFO` left out). **client CPU** \
         = user + system time of the bench process (`getrusage(RUSAGE_SELF)`, both runtime \
         threads; the process runs nothing else during a window). **server CPU, commands** = \
         `usec` of the commands the clients sent (`usec_per_call` x calls); a script's time \
         includes the commands it calls, which are listed apart and not added again. \
         **server CPU, processes** = user + system time of the voters' `redis-server` \
         processes from `/proc/<pid>/stat` (10 ms ticks): it adds what commandstats leaves out, \
         reading, parsing and writing the sockets. **commands sent** = calls of the commands \
         the clients send, each a request and a reply (acked's `WAIT` travels in the same \
         write as its `EVALSHA`); **in scripts** = the commands the Lua scripts call \
         (ours: `src/scripts/*.lua`, read when the bench runs; rslock's unlock script: `GET`, \
         `DEL`). **server reads** = `total_reads_processed`: socket reads of client input, \
         which counts round trips as the servers see them (a multiplexed connection sends \
         the commands queued at once in one write, so reads can be fewer than commands). \
         **connections opened** = `total_connections_received`. `REPLCONF`, where it \
         shows, comes from the replicas (the acknowledgements `WAIT` asks for), not from the \
         client. **allocations** = calls to the global allocator (the bench's counting allocator; a \
         `realloc` counts as one call of its new size), over the whole process.\n\n",
        s.windows,
        s.window.as_millis()
    ));
    let mut t = Table::new([
        "setup",
        "implementation",
        "client CPU",
        "server CPU, commands",
        "server CPU, processes",
        "client + server processes / raw",
        "commands sent",
        "commands sent, by name",
        "in scripts, by name",
        "server reads",
        "connections opened",
        "bytes in + out",
        "allocations",
        "allocated bytes",
    ]);
    for (setup, tasks, rates) in &r.throughput {
        if *tasks != 64 || setup.voters != 3 {
            continue;
        }
        let total = |imp: Impl| {
            rates.get(&imp).map(|rt| {
                rt.cost
                    .per_cycle(micros(rt.cost.client_cpu + rt.cost.server_cpu))
            })
        };
        for imp in [
            Impl::Raw,
            Impl::Rslock,
            Impl::Ours,
            Impl::Fenced,
            Impl::Acked,
        ] {
            let Some(rt) = rates.get(&imp) else { continue };
            let c = &rt.cost;
            let inner = imp.script_commands();
            let sent = |name: &str| !inner.contains(name);
            let (sent_calls, sent_usec) = c
                .server
                .commands
                .iter()
                .filter(|(name, _)| sent(name))
                .fold((0u64, 0u64), |acc, (_, (calls, usec))| {
                    (acc.0 + calls, acc.1 + usec)
                });
            t.row([
                setup.label.clone(),
                imp.to_string(),
                format!("{:.1} µs", c.per_cycle(micros(c.client_cpu))),
                format!("{:.1} µs", c.per_cycle(sent_usec as f64)),
                format!("{:.1} µs", c.per_cycle(micros(c.server_cpu))),
                fmt_ratio(total(imp), total(Impl::Raw)),
                format!("{:.2}", c.per_cycle(sent_calls as f64)),
                by_name(c, &sent),
                by_name(c, &|name| inner.contains(name)),
                format!("{:.2}", c.per_cycle(c.server.reads as f64)),
                format!("{:.3}", c.per_cycle(c.server.connections as f64)),
                format!("{:.0}", c.per_cycle(c.server.net_bytes as f64)),
                format!("{:.1}", c.per_cycle(c.allocs as f64)),
                format!("{:.0}", c.per_cycle(c.alloc_bytes as f64)),
            ]);
        }
    }
    out.push_str(&t.to_markdown());
    out
}

/// Calls of the commands `pick` selects, per grant.
fn per_grant(c: &Contention, pick: &dyn Fn(&str) -> bool) -> String {
    let calls: u64 = c
        .server
        .commands
        .iter()
        .filter(|(name, _)| pick(name))
        .map(|(_, (calls, _))| calls)
        .sum();
    format!("{:.1}", calls as f64 / c.acquisitions.max(1) as f64)
}

fn waiters_section(s: &Settings, r: &Results) -> String {
    let mut out = format!("\n## {WAITERS} waiters on {WAITERS} managers, one resource\n\n");
    out.push_str(&format!(
        "3 independent masters; {} windows of {} ms per implementation, interleaved. {WAITERS} \
         tasks, each with its own manager (its own connections; ours also its own notified-wait \
         subscriptions, notified waits being on by default), loop: acquire the one resource, \
         hold it 1 ms, release. Each acquire call is bounded to {WAITER_ATTEMPTS} attempts: \
         ours `acquire` with `RetryPolicy::new().max_attempts({WAITER_ATTEMPTS})` (full-jitter \
         backoff from 50 ms, capped at 1 s, cut short by a release notice); rslock `lock` after \
         `set_retry({WAITER_ATTEMPTS}, 200 ms)` (a random delay up to 200 ms between \
         attempts). A call that used up its attempts gave up, and the task calls again. Wait = \
         from the call to the grant, granted calls only; errors = the call returned an error \
         or ran over {} s. acquisitions/s = grants / time until every task finished. \
         \"notified waits off\": the same with `notify_on_release(false)`, to tell what the \
         release notices do to this case. Votes per grant = `SET` calls on the voters (each \
         vote of each attempt runs one, ours inside its acquire script, rslock's directly) \
         per grant; commands sent per grant = the commands the clients sent (scripts counted \
         once), both from `INFO commandstats` over the windows.\n\n",
        s.waiters_windows,
        s.waiters_window.as_millis(),
        WAITER_LIMIT.as_secs()
    ));
    let mut t = Table::new([
        "implementation",
        "acquisitions/s",
        "p50 wait",
        "p99 wait",
        "max wait",
        "calls that gave up",
        "errors",
        "votes per grant",
        "commands sent per grant",
    ]);
    for imp in [Impl::Ours, Impl::Polling, Impl::Rslock] {
        let Some(c) = r.waiters.get(&imp) else {
            continue;
        };
        let waits = p50_p99(&mut c.waits.clone());
        t.row([
            imp.to_string(),
            fmt_rate(c.acquisitions as f64 / secs(c.elapsed).max(1e-9)),
            waits.map_or("—".into(), |(p, _)| fmt_ms(p)),
            waits.map_or("—".into(), |(_, p)| fmt_ms(p)),
            c.waits.iter().max().copied().map_or("—".into(), fmt_ms),
            format!(
                "{} of {}",
                group_thousands(c.gave_up),
                group_thousands(c.acquisitions + c.gave_up + c.errors)
            ),
            group_thousands(c.errors),
            per_grant(c, &|name| name == "set"),
            per_grant(c, &|name| !imp.script_commands().contains(name)),
        ]);
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
