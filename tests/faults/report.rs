//! The summary of one run: a line of the results table in docs/fault-injection.md.

use std::fmt;
use std::time::Duration;

use super::checker::{lost_updates, overlapping_pairs};
use super::record::{Outcome, Run};

/// The checker's summary of one scenario run: one line of the results table.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where it ran.
    pub backend: String,
    /// What was done.
    pub scenario: String,
    /// Number of clients.
    pub clients: usize,
    /// Acquire attempts.
    pub operations: usize,
    /// Successful critical sections.
    pub sections: usize,
    /// Sections granted but abandoned because the validity ran out before the write.
    pub abandoned: usize,
    /// Successful sections minus the counter, summed over resources (`None`: no counter).
    pub lost_updates: Option<i64>,
    /// Overlapping hold-interval pairs on the same resource.
    pub overlaps: usize,
    /// Failed acquires: contended.
    pub contended: usize,
    /// Failed acquires: unavailable.
    pub unavailable: usize,
    /// Failed acquires: any other error.
    pub other: usize,
    /// Acquire latency percentiles (every attempt).
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Report {
    /// Checks `run` and summarises it.
    pub fn of(backend: &str, scenario: &str, clients: usize, run: &Run) -> Self {
        let count = |f: fn(&Outcome) -> bool| run.attempts.iter().filter(|a| f(&a.outcome)).count();
        let mut latencies: Vec<Duration> = run
            .attempts
            .iter()
            .map(|a| a.returned - a.requested)
            .collect();
        Report {
            backend: backend.to_string(),
            scenario: scenario.to_string(),
            clients,
            operations: run.attempts.len(),
            sections: run.sections().count(),
            abandoned: count(|o| matches!(o, Outcome::Abandoned)),
            lost_updates: lost_updates(run),
            overlaps: overlapping_pairs(&run.attempts).len(),
            contended: count(|o| matches!(o, Outcome::Contended)),
            unavailable: count(|o| matches!(o, Outcome::Unavailable(_))),
            other: count(|o| matches!(o, Outcome::Other(_))),
            p50: percentile(&mut latencies, 50),
            p99: percentile(&mut latencies, 99),
        }
    }

    /// Fails the test on any lost update or overlap (where the algorithm guarantees safety).
    pub fn assert_safe(&self, run: &Run) {
        assert_eq!(
            self.overlaps,
            0,
            "{self}\noverlapping holds: {:#?}",
            overlapping_pairs(&run.attempts)
        );
        assert!(
            self.lost_updates.unwrap_or(0) == 0,
            "{self}\nlost updates (counters {:?})",
            run.counters
        );
        assert!(self.sections > 0, "{self}\nno critical section succeeded");
    }

    /// Prints the line (visible with `--nocapture`).
    pub fn print(&self) {
        eprintln!("{}\n{self}", Report::HEADER);
    }

    /// The table header matching [`Report`]'s `Display`.
    pub const HEADER: &'static str = "| backend | scenario | clients | operations | sections | \
        lost updates | overlaps | contended / unavailable / other | abandoned | p50 | p99 |";
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lost = self
            .lost_updates
            .map_or_else(|| "-".to_string(), |l| l.to_string());
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {:.1} ms | {:.1} ms |",
            self.backend,
            self.scenario,
            self.clients,
            self.operations,
            self.sections,
            lost,
            self.overlaps,
            self.contended,
            self.unavailable,
            self.other,
            self.abandoned,
            self.p50.as_secs_f64() * 1000.0,
            self.p99.as_secs_f64() * 1000.0,
        )
    }
}

/// The `p`-th percentile (nearest rank) of `values`; zero when empty.
pub fn percentile(values: &mut [Duration], p: usize) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = (values.len() * p).div_ceil(100).max(1);
    values[rank - 1]
}
