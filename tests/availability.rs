//! Availability, as a matrix on real `redis-server` processes (issue 14): with a majority of
//! the voters healthy, every operation of every handle, fresh or established, succeeds within
//! the node timeout plus the healthy time, whatever one node does; with a majority down,
//! every operation fails with a typed error within its bound and nothing is ever granted.
//!
//! The matrix:
//! - setups: 3 standalone masters in [`Mode::Auto`] and [`Mode::Independent`] (every master
//!   listed: a one-node list of standalone masters is a one-voter lock); a 3+3 cluster in
//!   [`Mode::Auto`] and [`Mode::Cluster`], seeded with one healthy master or with all six nodes;
//! - faults on one node: connection refused (killed, then restarted), `SIGSTOP`, and replies
//!   slower than the node timeout (`CLIENT PAUSE ... ALL`), on a master and, in the cluster,
//!   on a replica; then a majority of the masters stopped;
//! - handles: established (connections open and topology read before the fault) and fresh
//!   (made after the fault: the first call of a new handle reads the topology);
//! - operations: acquire, extend, release, `is_locked`, `get_lock_info` and `health`. A fresh
//!   handle makes each of `acquire`, `is_locked`, `get_lock_info` and `health` its first call.
//!
//! Each fault is applied once and every case of it runs at once, so the file stays short. The
//! default [`LockConfig`] is used (node timeout 100 ms, connect timeout 1 s), only the mode set.
//! Timings are printed (p50/p99 per fault), and each call is held to [`BOUND`].

use std::time::{Duration, Instant};

use futures::future::join_all;
use redlock_cluster::{LockConfig, LockError, LockManager, Mode, RedisDistributedLock};
use redlock_harness::{Cluster, ClusterOptions, RedisServer, Standalone};

const TTL: Duration = Duration::from_secs(5);

/// A generous bound on one call: the node timeout (100 ms) plus the healthy time on a loaded
/// two-core machine. It stays below the connect timeout (1 s), which is what one hung node
/// cost every fresh handle before (issue 14's table).
const BOUND: Duration = Duration::from_millis(800);

/// How long a slow node holds its replies (`CLIENT PAUSE`): longer than any window's calls.
const SLOW_FOR: Duration = Duration::from_millis(3000);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Killed: connections are refused. Restarted afterwards.
    Refused,
    /// `SIGSTOP`: connections are accepted by the kernel, nothing answers. Resumed afterwards.
    Stopped,
    /// `CLIENT PAUSE ... ALL`: every command waits [`SLOW_FOR`], far past the node timeout.
    Slow,
}

const FAULTS: [Fault; 3] = [Fault::Refused, Fault::Stopped, Fault::Slow];

fn apply(fault: Fault, node: &mut RedisServer) {
    match fault {
        Fault::Refused => node.kill().expect("kill"),
        Fault::Stopped => node.pause().expect("pause"),
        Fault::Slow => {
            let mut con = node.connection().expect("connection");
            let _: () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(SLOW_FOR.as_millis() as u64)
                .arg("ALL")
                .query(&mut con)
                .expect("CLIENT PAUSE");
        }
    }
}

/// Undo `fault`. A paused server cannot be unpaused early (`CLIENT UNPAUSE` waits too), so
/// the pause is waited out from `applied`.
async fn heal(fault: Fault, node: &mut RedisServer, applied: Instant) {
    match fault {
        Fault::Refused => node.restart().expect("restart"),
        Fault::Stopped => node.resume().expect("resume"),
        Fault::Slow => {
            let left = (applied + SLOW_FOR + Duration::from_millis(100))
                .saturating_duration_since(Instant::now());
            tokio::time::sleep(left).await;
        }
    }
}

/// One configuration of the matrix: a node list and a mode.
#[derive(Clone)]
struct Case {
    label: String,
    urls: Vec<String>,
    mode: Mode,
}

impl Case {
    fn manager(&self) -> LockManager {
        LockManager::new(&self.urls, LockConfig::new().mode(self.mode)).expect("manager")
    }
}

/// What a window expects of every call.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A majority is healthy: every call succeeds.
    Grants,
    /// A majority is down: every call fails with a typed error; nothing is granted.
    Refuses,
}

/// The timings of one window, by operation, and the calls that broke a promise.
#[derive(Default)]
struct Log {
    calls: Vec<(String, Duration)>,
    broken: Vec<String>,
}

impl Log {
    fn merge(&mut self, other: Log) {
        self.calls.extend(other.calls);
        self.broken.extend(other.broken);
    }
}

/// Time `call` and check it against `expect`: `ok` says whether its result is a success.
async fn timed<T: std::fmt::Debug>(
    log: &mut Log,
    what: String,
    expect: Expect,
    call: impl Future<Output = Result<T, LockError>>,
    ok: impl Fn(&T) -> bool,
) -> Option<T> {
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), call).await;
    let took = start.elapsed();
    log.calls.push((what.clone(), took));
    if took > BOUND {
        log.broken
            .push(format!("{what}: took {took:?} (bound {BOUND:?})"));
    }
    let Ok(result) = result else {
        log.broken.push(format!("{what}: hung for 10 s"));
        return None;
    };
    match (expect, &result) {
        (Expect::Grants, Ok(value)) if ok(value) => {}
        (Expect::Grants, other) => log.broken.push(format!("{what}: {other:?}")),
        (Expect::Refuses, Err(error)) if error.is_unavailable() => {}
        (Expect::Refuses, Ok(value)) if !ok(value) => {
            // `false` from acquire under a majority down would hide the failure; only the
            // health report may answer (see `health_ok`).
            log.broken
                .push(format!("{what}: answered {value:?}, not an error"));
        }
        (Expect::Refuses, other) => log.broken.push(format!("{what}: {other:?}")),
    }
    result.ok()
}

/// Whether a health report shows a quorum of reachable voters.
fn health_ok(report: &redlock_cluster::HealthReport) -> bool {
    let reachable = report.voters.iter().filter(|v| v.error.is_none()).count();
    reachable > report.voters.len() / 2
}

/// The health call: with a majority down it may still report (that is its job), but then it
/// must show the majority unreachable.
async fn health(log: &mut Log, what: String, expect: Expect, manager: &LockManager) {
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), manager.health()).await;
    let took = start.elapsed();
    log.calls.push((what.clone(), took));
    if took > BOUND {
        log.broken
            .push(format!("{what}: took {took:?} (bound {BOUND:?})"));
    }
    match (expect, result) {
        (_, Err(_)) => log.broken.push(format!("{what}: hung for 10 s")),
        (Expect::Grants, Ok(Ok(report))) if health_ok(&report) => {}
        (Expect::Refuses, Ok(Ok(report))) if !health_ok(&report) => {}
        (Expect::Refuses, Ok(Err(error))) if error.is_unavailable() => {}
        (_, Ok(other)) => log.broken.push(format!("{what}: {other:?}")),
    }
}

/// Every operation on one handle in a row: acquire, extend, `is_locked`, `get_lock_info`,
/// release, health. Under `Refuses`, `held` is a lock taken before the fault: its extend and
/// release must fail with a typed error.
async fn all_operations(
    label: String,
    manager: LockManager,
    resource: String,
    expect: Expect,
    held: Option<RedisDistributedLock>,
) -> Log {
    let mut log = Log::default();
    let mut handle =
        RedisDistributedLock::with_manager(manager.clone(), resource, TTL).expect("handle");
    timed(
        &mut log,
        format!("{label} acquire"),
        expect,
        handle.acquire(),
        |g| *g,
    )
    .await;
    let mut handle = match (expect, held) {
        (Expect::Refuses, Some(held)) => held,
        (Expect::Refuses, None) => {
            // A fresh handle under a majority down holds nothing to extend or release.
            timed(
                &mut log,
                format!("{label} is_locked"),
                expect,
                handle.is_locked(),
                |_| true,
            )
            .await;
            health(&mut log, format!("{label} health"), expect, &manager).await;
            return log;
        }
        _ => handle,
    };
    timed(
        &mut log,
        format!("{label} extend"),
        expect,
        handle.extend(TTL),
        |e| *e,
    )
    .await;
    timed(
        &mut log,
        format!("{label} is_locked"),
        expect,
        handle.is_locked(),
        |l| *l,
    )
    .await;
    timed(
        &mut log,
        format!("{label} get_lock_info"),
        expect,
        handle.get_lock_info(),
        |info| info.locked && info.held_by_caller,
    )
    .await;
    timed(
        &mut log,
        format!("{label} release"),
        expect,
        handle.release(),
        |r| *r,
    )
    .await;
    health(&mut log, format!("{label} health"), expect, &manager).await;
    log
}

/// Fresh handles made after the fault, each with another operation as its first call.
async fn fresh_first_calls(case: Case, resource: String, expect: Expect) -> Log {
    let label = format!("{} fresh", case.label);
    let mut log = Log::default();
    let acquire = all_operations(
        format!("{label} (acquire first)"),
        case.manager(),
        resource.clone(),
        expect,
        None,
    );
    let is_locked = async {
        let mut log = Log::default();
        // Resources of their own: the acquiring handle above holds `resource` meanwhile, and a
        // read racing its grant with one voter down may rightly be undecided.
        let handle = RedisDistributedLock::with_manager(
            case.manager(),
            format!("{resource}/is_locked"),
            TTL,
        )
        .expect("handle");
        timed(
            &mut log,
            format!("{label} is_locked first"),
            expect,
            handle.is_locked(),
            |_| true,
        )
        .await;
        log
    };
    let info = async {
        let mut log = Log::default();
        let handle =
            RedisDistributedLock::with_manager(case.manager(), format!("{resource}/info"), TTL)
                .expect("handle");
        timed(
            &mut log,
            format!("{label} get_lock_info first"),
            expect,
            handle.get_lock_info(),
            |_| true,
        )
        .await;
        log
    };
    let health_first = async {
        let mut log = Log::default();
        health(
            &mut log,
            format!("{label} health first"),
            expect,
            &case.manager(),
        )
        .await;
        log
    };
    let (a, b, c, d) = futures::join!(acquire, is_locked, info, health_first);
    for part in [a, b, c, d] {
        log.merge(part);
    }
    log
}

/// An established handle: its manager connected and read the topology (one acquire and
/// release) before the fault; with `hold`, it also holds a lock from before the fault.
async fn established(
    case: &Case,
    window: &str,
    hold: bool,
) -> (LockManager, Option<RedisDistributedLock>) {
    let manager = case.manager();
    let mut warm = RedisDistributedLock::with_manager(
        manager.clone(),
        format!("warm/{window}/{}", case.label),
        TTL,
    )
    .expect("handle");
    assert!(
        warm.acquire().await.expect("warm-up acquire"),
        "{}",
        case.label
    );
    assert!(warm.release().await.expect("warm-up release"));
    let held = if hold {
        let mut held = RedisDistributedLock::with_manager(
            manager.clone(),
            format!("held/{window}/{}", case.label),
            TTL,
        )
        .expect("handle");
        assert!(held.acquire().await.expect("acquire before the fault"));
        Some(held)
    } else {
        None
    };
    (manager, held)
}

/// The established handles of a window, made before its fault.
async fn establish(
    name: &str,
    cases: &[Case],
    expect: Expect,
) -> Vec<(LockManager, Option<RedisDistributedLock>)> {
    let mut ready = Vec::new();
    for case in cases {
        ready.push(established(case, name, expect == Expect::Refuses).await);
    }
    ready
}

/// One window, its fault applied: every case, established and fresh, all at once.
async fn window(
    name: &str,
    cases: &[Case],
    ready: Vec<(LockManager, Option<RedisDistributedLock>)>,
    expect: Expect,
) -> Log {
    let runs = cases.iter().zip(ready).map(|(case, (manager, held))| {
        let case = case.clone();
        let name = name.to_string();
        async move {
            let resource = format!("{name}/{}", case.label);
            let mut log = all_operations(
                format!("{name}: {} established", case.label),
                manager,
                format!("{resource}/established"),
                expect,
                held,
            )
            .await;
            let mut fresh_case = case.clone();
            fresh_case.label = format!("{name}: {}", case.label);
            log.merge(fresh_first_calls(fresh_case, format!("{resource}/fresh"), expect).await);
            log
        }
    });
    let mut log = Log::default();
    for part in join_all(runs).await {
        log.merge(part);
    }
    log
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Print p50/p99/max of a window's calls and fail on any broken promise.
fn report(name: &str, log: &Log, all_broken: &mut Vec<String>) {
    let mut times: Vec<Duration> = log.calls.iter().map(|(_, t)| *t).collect();
    times.sort();
    println!(
        "{name}: {} calls, p50 {:?}, p99 {:?}, max {:?}, {} broken",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
        log.broken.len()
    );
    all_broken.extend(log.broken.iter().cloned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_masters_keep_every_operation_with_one_node_down() {
    let mut servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let cases: Vec<Case> = [Mode::Auto, Mode::Independent]
        .into_iter()
        .map(|mode| Case {
            label: format!("3 masters {mode:?}"),
            urls: urls.clone(),
            mode,
        })
        .collect();
    let mut broken = Vec::new();
    for fault in FAULTS {
        let name = format!("standalone master {fault:?}");
        let ready = establish(&name, &cases, Expect::Grants).await;
        apply(fault, servers.node_mut(2));
        let applied = Instant::now();
        let log = window(&name, &cases, ready, Expect::Grants).await;
        heal(fault, servers.node_mut(2), applied).await;
        report(&name, &log, &mut broken);
    }
    let name = "standalone majority stopped";
    let ready = establish(name, &cases, Expect::Refuses).await;
    servers.nodes()[1].pause().expect("pause");
    servers.nodes()[2].pause().expect("pause");
    let log = window(name, &cases, ready, Expect::Refuses).await;
    servers.nodes()[1].resume().expect("resume");
    servers.nodes()[2].resume().expect("resume");
    report(name, &log, &mut broken);
    assert!(
        broken.is_empty(),
        "{} broken:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_every_operation_with_one_node_down() {
    let mut cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let masters = cluster.master_indices().expect("masters");
    let seed = masters[0];
    let (faulty_master, replica) = (masters[1], cluster.replica_of(masters[2]).expect("replica"));
    let one = vec![cluster.nodes()[seed].url()];
    let every = cluster.urls();
    let mut cases = Vec::new();
    for mode in [Mode::Auto, Mode::Cluster] {
        for (seeds, urls) in [("one seed", &one), ("six seeds", &every)] {
            cases.push(Case {
                label: format!("cluster {mode:?} {seeds}"),
                urls: urls.clone(),
                mode,
            });
        }
    }
    let mut broken = Vec::new();
    for (role, index) in [("master", faulty_master), ("replica", replica)] {
        for fault in FAULTS {
            let name = format!("cluster {role} {fault:?}");
            let ready = establish(&name, &cases, Expect::Grants).await;
            apply(fault, cluster.node_mut(index));
            let applied = Instant::now();
            let log = window(&name, &cases, ready, Expect::Grants).await;
            heal(fault, cluster.node_mut(index), applied).await;
            report(&name, &log, &mut broken);
            // A restarted node must be back in the cluster before the next window.
            cluster
                .wait_healthy(Duration::from_secs(30))
                .expect("cluster healthy again");
        }
    }
    let name = "cluster majority of masters stopped";
    let ready = establish(name, &cases, Expect::Refuses).await;
    cluster.nodes()[masters[1]].pause().expect("pause");
    cluster.nodes()[masters[2]].pause().expect("pause");
    let log = window(name, &cases, ready, Expect::Refuses).await;
    cluster.nodes()[masters[1]].resume().expect("resume");
    cluster.nodes()[masters[2]].resume().expect("resume");
    report(name, &log, &mut broken);
    assert!(
        broken.is_empty(),
        "{} broken:\n{}",
        broken.len(),
        broken.join("\n")
    );
}
