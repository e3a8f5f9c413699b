//! Network faults between clients and voters, through one [`FaultProxy`] per voter: an
//! asymmetric partition, a majority partition, a slow link, a flapping link, a blackholed
//! voter that is also the first seed. Every fault is on loopback, bounded in time, and undone
//! when its guard drops.

use std::any::Any;
use std::time::{Duration, Instant};

use redlock_cluster::LockManager;
use redlock_harness::{Direction, Fault, FaultProxy, Standalone};

use super::record::{Attempt, Outcome, Run};
use super::report::{Report, percentile};
use super::under_load::{PAUSED_LATENCY_BOUND, sleep_until};
use super::workload::{CLIENTS, NODE_TIMEOUT, TTL, Workload, lock_config, run_with_fault_for};

/// A deployment whose voters are reached through proxies: voter `i` (URL `i`, or in a cluster
/// the master serving band `i`) behind `proxies[i]`, each with `groups` client groups.
pub struct Proxied {
    /// `"proxied, 3 masters"`, `"proxied, 3+3 cluster"`.
    pub backend: String,
    /// One proxy per voter, in voter order.
    pub proxies: Vec<FaultProxy>,
    /// Client groups per proxy (a cluster announces one port per master: 1 group).
    pub groups: usize,
    /// The servers behind the proxies, kept alive for the run.
    pub servers: Box<dyn Any + Send>,
}

impl Proxied {
    /// The lock URLs of client group `group`.
    pub fn urls(&self, group: usize) -> Vec<String> {
        self.proxies.iter().map(|p| p.url(group)).collect()
    }

    /// Client `client`'s group (clients alternate between groups).
    pub fn group_of(&self, client: usize) -> usize {
        client % self.groups
    }

    /// Puts `fault` on voter `voter`'s link for the client groups `groups`.
    fn inject(
        &self,
        voter: usize,
        groups: &[usize],
        direction: Direction,
        fault: Fault,
        bound: Duration,
    ) -> redlock_harness::FaultGuard {
        self.proxies[voter].inject(groups, direction, fault, bound)
    }

    fn all_groups(&self) -> Vec<usize> {
        (0..self.groups).collect()
    }
}

/// Runs the workload with each client on its group's URLs; `fault` gets the deployment back
/// on the blocking fault thread and returns it with its result.
async fn run<T: Send + 'static>(
    target: Proxied,
    workload: &Workload,
    fault: impl FnOnce(&Proxied, Instant) -> T + Send + 'static,
) -> (Run, Proxied, T) {
    let counter = Standalone::start(1).expect("counter redis");
    let urls: Vec<Vec<String>> = (0..target.groups).map(|g| target.urls(g)).collect();
    let groups = target.groups;
    let (run, (target, result)) = run_with_fault_for(
        move |client| urls[client % groups].clone(),
        &counter,
        workload,
        move |start| {
            let result = fault(&target, start);
            (target, result)
        },
    )
    .await;
    (run, target, result)
}

fn finish(target: &Proxied, scenario: &str, run: &Run) -> Report {
    let report = Report::of(&target.backend, scenario, CLIENTS, run);
    report.print();
    report
}

/// Sections of clients in `group` whose acquire call lies inside `[from, until]`.
fn sections_of(target: &Proxied, run: &Run, group: usize, from: Instant, until: Instant) -> usize {
    run.sections()
        .filter(|a| target.group_of(a.client) == group && a.within(from, until))
        .count()
}

fn latencies_within(run: &Run, from: Instant, until: Instant) -> Vec<Duration> {
    run.attempts
        .iter()
        .filter(|a| a.within(from, until))
        .map(|a| a.returned - a.requested)
        .collect()
}

fn describe(during: &mut [Duration]) -> String {
    format!(
        "{} rounds, p50 {:?}, p99 {:?}",
        during.len(),
        percentile(during, 50),
        percentile(during, 99)
    )
}

/// Voter 0 cut off (blackholed both ways) from client group 0 for longer than the TTL, then
/// healed; group 1 still reaches it. Safe: every majority still shares a voter with every
/// other; both groups keep locking (group 0 on voters 1 and 2).
pub async fn asymmetric_partition(target: Proxied) -> Report {
    assert!(
        target.groups >= 2,
        "an asymmetric partition needs two client groups"
    );
    let cut_for = TTL + Duration::from_secs(1);
    let workload = Workload::new(Duration::from_secs(5));
    let (run, target, (from, until)) = run(target, &workload, move |target, start| {
        sleep_until(start, Duration::from_secs(2));
        let cut = target.inject(0, &[0], Direction::Both, Fault::Blackhole, cut_for);
        let from = Instant::now();
        std::thread::sleep(cut_for);
        drop(cut);
        (from, Instant::now())
    })
    .await;
    let report = finish(
        &target,
        "asymmetric partition: voter 0 cut off from half the clients for TTL + 1 s",
        &run,
    );
    report.assert_safe(&run);
    for group in 0..2 {
        let sections = sections_of(&target, &run, group, from, until);
        eprintln!("group {group}: {sections} sections during the partition");
        assert!(
            sections > 0,
            "{report}\ngroup {group} locked nothing during the partition"
        );
    }
    assert!(
        run.sections_after(until) > 0,
        "{report}\nno acquisition after the heal"
    );
    report
}

/// Voters 0 and 1 cut off from client group 0 for 3 s: that group is refused (no grant,
/// `Unavailable`), the other group keeps locking, and group 0 locks again after the heal.
pub async fn majority_partition(target: Proxied) -> Report {
    assert!(
        target.groups >= 2,
        "a majority partition needs two client groups"
    );
    let cut_for = Duration::from_secs(3);
    let workload = Workload::new(Duration::from_secs(5));
    let (run, target, (from, until)) = run(target, &workload, move |target, start| {
        sleep_until(start, Duration::from_secs(2));
        let cuts = [
            target.inject(0, &[0], Direction::Both, Fault::Blackhole, cut_for),
            target.inject(1, &[0], Direction::Both, Fault::Blackhole, cut_for),
        ];
        let from = Instant::now();
        std::thread::sleep(cut_for);
        drop(cuts);
        (from, Instant::now())
    })
    .await;
    let report = finish(
        &target,
        "majority partition: voters 0 and 1 cut off from half the clients for 3 s",
        &run,
    );
    report.assert_safe(&run);
    let cut_off: Vec<&Attempt> = run
        .attempts
        .iter()
        .filter(|a| target.group_of(a.client) == 0 && a.within(from, until))
        .collect();
    let granted: Vec<&&Attempt> = cut_off.iter().filter(|a| a.hold().is_some()).collect();
    assert!(
        granted.is_empty(),
        "{report}\nthe cut-off group was granted: {granted:#?}"
    );
    let unavailable = cut_off
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Unavailable(_)))
        .count();
    eprintln!(
        "cut-off group during the partition: {} attempts, {unavailable} Unavailable, {} contended",
        cut_off.len(),
        cut_off
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Contended))
            .count()
    );
    assert!(
        unavailable > 0,
        "{report}\nthe cut-off group saw no Unavailable error"
    );
    let other = sections_of(&target, &run, 1, from, until);
    assert!(
        other > 0,
        "{report}\nthe other group locked nothing during the partition"
    );
    let healed = run
        .sections()
        .filter(|a| target.group_of(a.client) == 0 && a.requested > until)
        .count();
    assert!(
        healed > 0,
        "{report}\nthe cut-off group locked nothing after the heal"
    );
    report
}

/// Voter 0's replies delayed beyond the node timeout (400 ms), then below it (100 ms), then
/// jittered around it (150-350 ms), 1.5 s each. Safe throughout; locking goes on in every
/// phase; rounds in the first phase end at the node timeout, not the delay.
pub async fn slow_link(target: Proxied) -> Report {
    let phase = Duration::from_millis(1500);
    let delays = [
        ("400 ms", Duration::from_millis(400), Duration::ZERO),
        ("100 ms", Duration::from_millis(100), Duration::ZERO),
        (
            "150-350 ms",
            Duration::from_millis(150),
            Duration::from_millis(200),
        ),
    ];
    let workload = Workload::new(Duration::from_secs(6));
    let (run, target, phases) = run(target, &workload, move |target, start| {
        sleep_until(start, Duration::from_millis(1500));
        let mut phases = Vec::new();
        for (name, fixed, jitter) in delays {
            let slow = target.inject(
                0,
                &target.all_groups(),
                Direction::ToClient,
                Fault::Delay { fixed, jitter },
                phase,
            );
            let from = Instant::now();
            std::thread::sleep(phase);
            drop(slow);
            phases.push((name, from, Instant::now()));
        }
        phases
    })
    .await;
    let report = finish(
        &target,
        "slow link: voter 0's replies delayed 400 ms, 100 ms, 150-350 ms",
        &run,
    );
    report.assert_safe(&run);
    for (i, &(name, from, until)) in phases.iter().enumerate() {
        let sections = run.sections().filter(|a| a.within(from, until)).count();
        let mut during = latencies_within(&run, from, until);
        eprintln!(
            "delay {name}: {sections} sections, {}",
            describe(&mut during)
        );
        assert!(
            sections > 0,
            "{report}\nno acquisition with voter 0 delayed {name}"
        );
        if i == 0 {
            let p99 = percentile(&mut during, 99);
            assert!(
                p99 < PAUSED_LATENCY_BOUND,
                "{report}\nrounds waited for the slow voter: p99 {p99:?}"
            );
        }
    }
    report
}

/// Voter 0 resets every connection every 300 ms for 3 s. Safe; locking goes on during the
/// flapping and after it.
pub async fn flapping_link(target: Proxied) -> Report {
    let flap_for = Duration::from_secs(3);
    let workload = Workload::new(Duration::from_secs(5));
    let (run, target, (from, until)) = run(target, &workload, move |target, start| {
        sleep_until(start, Duration::from_secs(2));
        let flap = target.inject(
            0,
            &target.all_groups(),
            Direction::Both,
            Fault::Flap {
                every: Duration::from_millis(300),
            },
            flap_for,
        );
        let from = Instant::now();
        std::thread::sleep(flap_for);
        drop(flap);
        (from, Instant::now())
    })
    .await;
    let report = finish(
        &target,
        "flapping link: voter 0 resets its connections every 300 ms for 3 s",
        &run,
    );
    report.assert_safe(&run);
    let during = run.sections().filter(|a| a.within(from, until)).count();
    let mut latencies = latencies_within(&run, from, until);
    eprintln!(
        "while flapping: {during} sections, {}",
        describe(&mut latencies)
    );
    assert!(during > 0, "{report}\nno acquisition while voter 0 flapped");
    assert!(
        run.sections_after(until) > 0,
        "{report}\nno acquisition after the flapping"
    );
    report
}

/// Voter 0, which is also the first seed, blackholed both ways for 3 s (it accepts
/// connections and never answers). Established handles keep granting within the node
/// timeout plus the healthy time; so do fresh handles (new managers whose first seed is the
/// blackholed one), each on a resource of its own.
pub async fn blackholed_voter_and_seed(target: Proxied) -> Report {
    let hole_for = Duration::from_secs(3);
    let fresh_handles = 4;
    let workload = Workload::new(Duration::from_secs(5));
    let runtime = tokio::runtime::Handle::current();
    let (run, target, (from, until, fresh)) = run(target, &workload, move |target, start| {
        sleep_until(start, Duration::from_secs(2));
        let hole = target.inject(
            0,
            &target.all_groups(),
            Direction::Both,
            Fault::Blackhole,
            hole_for,
        );
        let from = Instant::now();
        let urls = target.urls(0);
        let mut fresh = Vec::new();
        for i in 0..fresh_handles {
            let started = Instant::now();
            let outcome = runtime.block_on(async {
                let manager = LockManager::new(&urls, lock_config())?;
                let mut lock = manager
                    .try_acquire(&format!("faults/fresh-{i}"), TTL)
                    .await?;
                let granted = lock.is_some();
                if let Some(lock) = lock.as_mut() {
                    let _ = manager.release(lock).await;
                }
                Ok::<_, redlock_cluster::LockError>(granted)
            });
            fresh.push((started.elapsed(), outcome));
            std::thread::sleep(Duration::from_millis(200));
        }
        sleep_until(from, hole_for);
        drop(hole);
        (from, Instant::now(), fresh)
    })
    .await;
    let report = finish(&target, "blackholed voter 0 (the first seed) for 3 s", &run);
    report.assert_safe(&run);
    let mut established = latencies_within(&run, from, until);
    let sections = run.sections().filter(|a| a.within(from, until)).count();
    eprintln!(
        "established handles while voter 0 was blackholed: {sections} sections, {}",
        describe(&mut established)
    );
    eprintln!("fresh handles (new manager + first acquire): {fresh:?}");
    assert!(sections > 0, "{report}\nestablished handles locked nothing");
    let p99 = percentile(&mut established, 99);
    assert!(
        p99 < PAUSED_LATENCY_BOUND,
        "{report}\nestablished rounds p99 {p99:?} over {PAUSED_LATENCY_BOUND:?}"
    );
    // A fresh handle pays its discovery and connections once, each bounded by the node
    // timeout: the bound is the node timeout (twice: discovery, then the round) plus 1 s.
    let fresh_bound = NODE_TIMEOUT * 2 + Duration::from_secs(1);
    for (took, outcome) in &fresh {
        assert!(
            matches!(outcome, Ok(true)),
            "{report}\na fresh handle with a blackholed first seed was not granted: {outcome:?} \
             after {took:?}"
        );
        assert!(
            *took < fresh_bound,
            "{report}\na fresh handle took {took:?} (bound {fresh_bound:?})"
        );
    }
    assert!(
        run.sections_after(until) > 0,
        "{report}\nno acquisition after the heal"
    );
    report
}
