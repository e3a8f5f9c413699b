//! Skewed server clocks, for real: voters whose server runs under libfaketime (Valkey; see
//! `harness/src/clock.rs`), fast by a rate or jumped ahead mid-run. A key's TTL runs on the
//! server's clock and a lock's validity on ours, so a fast voter frees a key before the
//! holder's validity ends.

use std::time::{Duration, Instant};

use redlock_cluster::{LockManager, Severity};
use redlock_harness::{Cluster, RedisServer, Standalone};

use super::report::Report;
use super::under_load::sleep_until;
use super::workload::{CLIENTS, Workload, lock_config, run_with_fault};

/// How long a holder works inside its critical section in the x2 and jump scenarios: most of
/// its validity, instead of the 5 ms of the other scenarios (a key that expires early on a
/// fast voter only matters while its holder still works).
pub const HOLD: Duration = Duration::from_millis(1000);

/// The hold of the x1.02 scenarios: all but a few milliseconds of the validity with drift
/// factor 0.02 (1.5 s - 32 ms - the round), so the 29 ms by which a x1.02 voter frees a
/// 1.5 s key early would show.
pub const FULL_HOLD: Duration = Duration::from_millis(1420);

/// A Valkey deployment some of whose voters run on a faked clock.
pub enum Skewed {
    /// Independent masters: voter `i` is node `i`.
    Masters(Standalone),
    /// A cluster: voter `i` is the master serving band `i` (node `i` at start).
    Cluster(Cluster),
}

impl Skewed {
    fn backend(&self) -> String {
        match self {
            Skewed::Masters(_) => "valkey 8.1 (libfaketime), 3 masters".into(),
            Skewed::Cluster(_) => "valkey 8.1 (libfaketime), 3+3 cluster".into(),
        }
    }

    fn urls(&self) -> Vec<String> {
        match self {
            Skewed::Masters(masters) => masters.urls(),
            Skewed::Cluster(cluster) => cluster.urls(),
        }
    }

    fn voter(&self, voter: usize) -> &RedisServer {
        match self {
            Skewed::Masters(masters) => &masters.nodes()[voter],
            Skewed::Cluster(cluster) => {
                &cluster.nodes()[cluster.master_indices().expect("masters")[voter]]
            }
        }
    }
}

/// What a clock scenario does and expects.
pub struct ClockFault {
    /// Scenario name for the results line.
    pub name: &'static str,
    /// The voters started on a faked clock (by the caller).
    pub fast: Vec<usize>,
    /// The voters `health()` must flag before the run (the fast ones; none when the clocks
    /// only jump later).
    pub flagged: Vec<usize>,
    /// Jump those voters' clocks this far ahead 2 s into the run.
    pub jump: Option<Duration>,
    /// The clients' drift factor (`None`: the default, 0.01).
    pub drift_factor: Option<f64>,
    /// How long each holder works inside its section.
    pub hold: Duration,
    /// Whether the design guarantees safety here (assert 0 overlaps and 0 lost updates), or
    /// the overlaps are measured and reported.
    pub safe: bool,
}

/// Checks that `health()` flags the fast voters' clocks (and only theirs) before the run,
/// then runs the workload, jumping clocks if asked.
pub async fn skewed_clock(target: Skewed, fault: ClockFault) -> Report {
    let urls = target.urls();
    // A longer sampling window than the default 200 ms: a 2 % rate needs it to be told apart
    // from round-trip noise (the bounds are about 2 x round trip / window wide: 2 s keeps a
    // 2 % clock flagged with round trips up to ~5 ms on a loaded CI machine).
    let probe = LockManager::connect(
        &urls,
        lock_config().clock_sample_window(Duration::from_secs(2)),
    )
    .await
    .expect("manager");
    let health = probe.health().await.expect("health");
    let voters = match &target {
        Skewed::Masters(_) => health.voters.clone(),
        Skewed::Cluster(cluster) => {
            // In cluster mode the report lists the masters; map them to voters by address.
            let masters = cluster.master_indices().expect("masters");
            masters
                .iter()
                .map(|&m| {
                    let addr = format!("127.0.0.1:{}", cluster.nodes()[m].port());
                    health
                        .voters
                        .iter()
                        .find(|v| v.addr == addr)
                        .cloned()
                        .unwrap_or_else(|| panic!("{addr} not in the report:\n{health}"))
                })
                .collect()
        }
    };
    for (i, voter) in voters.iter().enumerate() {
        let clock = voter.clock_rate.expect("a clock rate");
        let flagged = voter
            .findings
            .iter()
            .any(|f| f.severity == Severity::Danger && f.message.contains("clock"));
        eprintln!(
            "{} voter {i} ({}): clock rate {:.4} [{:.4}, {:.4}], flagged: {flagged}",
            target.backend(),
            voter.addr,
            clock.rate,
            clock.low,
            clock.high
        );
        assert_eq!(
            flagged,
            fault.flagged.contains(&i),
            "health() should flag exactly the fast voters' clocks:\n{health}"
        );
    }
    let counter = Standalone::start(1).expect("counter redis");
    // Holders keep the lock for most of its validity (1 s of 1.5 s) instead of 5 ms: a key
    // that expires early on a fast voter only matters while its holder still works.
    let mut config = lock_config();
    if let Some(factor) = fault.drift_factor {
        config = config.drift_factor(factor);
    }
    let workload = Workload {
        hold: fault.hold,
        config,
        ..Workload::new(Duration::from_secs(5))
    };
    let jump = fault.jump;
    let fast = fault.fast.clone();
    let (run, (target, jumped)) = run_with_fault(urls, &counter, &workload, move |start| {
        let target = target;
        let mut jumped = None;
        if let Some(by) = jump {
            sleep_until(start, Duration::from_secs(2));
            for &voter in &fast {
                let node = target.voter(voter);
                node.set_clock(node.clock().jumped(by)).expect("jump");
            }
            jumped = Some(Instant::now());
        }
        (target, jumped)
    })
    .await;
    let report = Report::of(&target.backend(), fault.name, CLIENTS, &run);
    report.print();
    if let Some(at) = jumped {
        eprintln!(
            "{}: {} sections after the jump",
            fault.name,
            run.sections_after(at)
        );
    }
    if fault.safe {
        report.assert_safe(&run);
    } else {
        eprintln!(
            "MEASURED {} / {}: {} overlaps, {:?} lost updates in {} sections",
            target.backend(),
            fault.name,
            report.overlaps,
            report.lost_updates,
            report.sections
        );
        assert!(
            report.sections > 0,
            "{report}\nno critical section succeeded"
        );
    }
    report
}
