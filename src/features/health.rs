//! The voter health report ([`crate::LockManager::health`]): what each voter's server says
//! about itself, how far away it is, how fast its clock runs against ours, and what of that
//! endangers the locks, each finding with a severity and a one-line fix.
//!
//! The probing (one fresh `INFO` plus `CONFIG GET`s, and a few `TIME`s spread over
//! `LockConfig::clock_sample_window`) runs on every voter at once, every call under a
//! deadline. What it means is decided by pure functions, tested apart from any server:
//! [`clock_rate`] (the rate of a server's clock from timed samples, with its error bounds)
//! and [`assess`] (the findings).
//!
//! Why the clock rate: a key's TTL runs on the server's clock, a lock's validity on ours. A
//! server whose clock runs fast by more than the drift factor expires keys before our
//! validity ends, so a second client can win a lock the first still believes valid.

use std::fmt;
use std::time::Duration;

use crate::config::Mode;
use crate::error::NodeError;

mod assess;
mod clock;
mod display;
mod offset;
mod probe;

pub(crate) use assess::{Context, assess};
use clock::median_rtt;
pub(crate) use clock::{Sample, clock_rate};
pub(crate) use probe::report;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing to do unless it surprises you.
    Info,
    /// Costs availability, or safety under a second fault.
    Warning,
    /// Can hand one lock to two clients: fix it.
    Danger,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Info => "info",
            Severity::Warning => "WARNING",
            Severity::Danger => "DANGER",
        })
    }
}

/// One thing the report found about a voter, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What was found, in one line.
    pub message: String,
    /// What to do, in one line.
    pub fix: String,
}

impl Finding {
    fn new(severity: Severity, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            severity,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// One replica of a voter, from the voter's `INFO replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaLag {
    /// `host:port` as the master sees it.
    pub addr: String,
    /// Seconds since its last acknowledgement (whole seconds); `None` when not reported.
    pub lag: Option<Duration>,
}

/// The rate of a voter's clock against our monotonic clock: server seconds per local
/// second, with bounds that account for the round trips of the samples.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ClockRate {
    /// The best estimate (`1.0`: same speed; `1.1`: 10 % fast).
    pub rate: f64,
    /// The rate is at least this.
    pub low: f64,
    /// The rate is at most this.
    pub high: f64,
}

/// How far a voter's clock (`TIME`, wall time) is from ours, read from the quickest sample.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ClockOffset {
    /// Server clock minus ours, in seconds (negative: the server is behind).
    pub seconds: f64,
    /// The offset is known within this (half the sample's round trip).
    pub uncertainty: Duration,
}

/// The health of one voter. Fields the server did not tell (an ACL refusing `CONFIG`, a
/// voter that did not answer) are `None`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VoterHealth {
    /// `host:port`.
    pub addr: String,
    /// Why it could not be probed, if it could not.
    pub error: Option<NodeError>,
    /// `master` or `slave`.
    pub role: Option<String>,
    /// The server's `run_id` (new at every start).
    pub run_id: Option<String>,
    /// `redis_version`.
    pub redis_version: Option<String>,
    /// `uptime_in_seconds`.
    pub uptime: Option<Duration>,
    /// Whether the append-only file is on (`aof_enabled`).
    pub appendonly: Option<bool>,
    /// `appendfsync` (`always`, `everysec`, `no`).
    pub appendfsync: Option<String>,
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: Option<u64>,
    /// `maxmemory-policy`.
    pub maxmemory_policy: Option<String>,
    /// `connected_slaves`.
    pub connected_replicas: Option<u32>,
    /// Each replica and its lag.
    pub replicas: Vec<ReplicaLag>,
    /// `cluster-require-full-coverage` (cluster nodes, when `CONFIG GET` is allowed).
    pub cluster_require_full_coverage: Option<bool>,
    /// Median round trip of the `TIME` samples.
    pub rtt: Option<Duration>,
    /// The rate of its clock against ours.
    pub clock_rate: Option<ClockRate>,
    /// Its clock's offset from ours.
    pub clock_offset: Option<ClockOffset>,
    /// How long it stays quarantined by `LockConfig::delayed_restart`, if it is.
    pub quarantined_for: Option<Duration>,
    /// What is wrong or worth knowing, worst first.
    pub findings: Vec<Finding>,
}

impl VoterHealth {
    /// The worst severity among its findings.
    #[must_use]
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// The health of every voter ([`crate::LockManager::health`]); `Display` prints a table and
/// the findings with their fixes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HealthReport {
    /// The mode in use.
    pub mode: Mode,
    /// The drift factor the clock rates were judged against.
    pub drift_factor: f64,
    /// How long each voter's clock was sampled.
    pub clock_window: Duration,
    /// How far apart the voters' clocks are at most (offsets and their uncertainties); with
    /// fencing on, a spread near the quarantine or the counters' retention is reported.
    pub clock_spread: Option<Duration>,
    /// Every voter (the masters, in cluster mode), in voter order.
    pub voters: Vec<VoterHealth>,
}

impl HealthReport {
    /// The worst severity of any finding.
    #[must_use]
    pub fn worst(&self) -> Option<Severity> {
        self.voters.iter().filter_map(VoterHealth::worst).max()
    }

    /// Every finding as `(voter address, finding)`, worst first.
    pub fn findings(&self) -> Vec<(&str, &Finding)> {
        let mut all: Vec<(&str, &Finding)> = self
            .voters
            .iter()
            .flat_map(|v| v.findings.iter().map(move |f| (v.addr.as_str(), f)))
            .collect();
        all.sort_by_key(|(_, f)| std::cmp::Reverse(f.severity));
        all
    }
}

#[cfg(test)]
mod tests;
