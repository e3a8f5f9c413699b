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

use futures::future::join_all;
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;
use crate::node::{SharedNode, with_deadline};
use crate::server::{ServerFacts, quarantine};

/// How many `TIME` samples are taken per voter, spread evenly over the sampling window.
const CLOCK_SAMPLES: usize = 5;
/// A replica lagging this much or more is reported.
const LAG_WARNING: Duration = Duration::from_secs(1);

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

/// One `TIME` sample: when we sent it, when the reply came, what the server's clock said.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) received: Instant,
    pub(crate) server: Duration,
}

impl Sample {
    fn rtt(&self) -> Duration {
        self.received.saturating_duration_since(self.sent)
    }

    /// The local instant the server most likely read its clock at: mid round trip.
    fn midpoint(&self) -> Instant {
        self.sent + self.rtt() / 2
    }
}

/// The rate of a server's clock from timed samples: the quickest sample of the first half
/// against the quickest of the second. The server read its clock somewhere inside each round
/// trip, so the local time between the two reads lies between `b.sent - a.received` and
/// `b.received - a.sent`: the bounds. `None` with fewer than two samples, or when the samples
/// are too close for the round trips to leave any interval.
pub(crate) fn clock_rate(samples: &[Sample]) -> Option<ClockRate> {
    if samples.len() < 2 {
        return None;
    }
    let (early, late) = samples.split_at(samples.len() / 2);
    let a = early.iter().min_by_key(|s| s.rtt())?;
    // On ties, the earliest of the first half and the latest of the second: the widest span.
    let b = late.iter().rev().min_by_key(|s| s.rtt())?;
    let server = b.server.as_secs_f64() - a.server.as_secs_f64();
    let widest = b.received.saturating_duration_since(a.sent).as_secs_f64();
    let narrowest = b.sent.saturating_duration_since(a.received).as_secs_f64();
    let middle = b
        .midpoint()
        .saturating_duration_since(a.midpoint())
        .as_secs_f64();
    if narrowest <= 0.0 || middle <= 0.0 {
        return None;
    }
    let (x, y) = (server / widest, server / narrowest);
    Some(ClockRate {
        rate: server / middle,
        low: x.min(y),
        high: x.max(y),
    })
}

/// The median round trip of the samples.
fn median_rtt(samples: &[Sample]) -> Option<Duration> {
    let mut rtts: Vec<Duration> = samples.iter().map(Sample::rtt).collect();
    rtts.sort_unstable();
    rtts.get(rtts.len() / 2).copied()
}

/// What the report judges against.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) mode: Mode,
    pub(crate) drift_factor: f64,
    pub(crate) node_timeout: Duration,
    pub(crate) delayed_restart: Option<Duration>,
}

impl Context {
    pub(crate) fn of(config: &LockConfig, mode: Mode) -> Self {
        Context {
            mode,
            drift_factor: config.drift_factor_value(),
            node_timeout: config.node_timeout_value(),
            delayed_restart: config.delayed_restart_value(),
        }
    }
}

/// The findings about one voter, worst first: from its facts (when it answered), the error
/// that kept it from answering, its round trip, its clock rate, and its quarantine.
pub(crate) fn assess(
    context: &Context,
    facts: Option<&ServerFacts>,
    error: Option<&NodeError>,
    rtt: Option<Duration>,
    clock: Option<&ClockRate>,
    quarantined: Option<&NodeError>,
) -> Vec<Finding> {
    use Severity::{Danger, Info, Warning};
    let mut findings = Vec::new();
    if let Some(error) = error {
        findings.push(Finding::new(
            Warning,
            format!("did not answer the probe: {error}"),
            "bring it back: while it is down, one more lost voter stops every lock",
        ));
    }
    if let Some(facts) = facts {
        if facts.role != "master" {
            findings.push(Finding::new(
                Warning,
                format!(
                    "its role is {:?}, not master: it cannot store lock keys",
                    facts.role
                ),
                "list masters only (or let cluster mode find them)",
            ));
        }
        if facts.can_evict() {
            findings.push(Finding::new(
                Danger,
                format!(
                    "can evict lock keys: maxmemory {} with maxmemory-policy {}",
                    facts.maxmemory, facts.maxmemory_policy
                ),
                "CONFIG SET maxmemory-policy noeviction (and in redis.conf)",
            ));
        }
        let durable_fix = "appendonly yes + appendfsync always, or \
                           LockConfig::delayed_restart(longest TTL)";
        match (
            facts.aof_enabled,
            facts.appendfsync.as_deref(),
            context.delayed_restart,
        ) {
            (_, _, _) if facts.persists_every_write() => {}
            (_, _, Some(max_ttl)) => findings.push(Finding::new(
                Info,
                format!(
                    "{}: a restart may lose lock keys; delayed_restart keeps it from voting \
                     for {max_ttl:?} after one",
                    facts.persistence()
                ),
                "none needed (appendonly yes + appendfsync always would let it vote at once)",
            )),
            (false, _, None) => findings.push(Finding::new(
                Danger,
                "appendonly no: restarted, it comes back without its lock keys and can \
                 grant a held lock again",
                durable_fix,
            )),
            (true, None, None) => findings.push(Finding::new(
                Warning,
                "appendfsync unknown (CONFIG GET refused): cannot tell whether a restart \
                 keeps every lock key",
                "grant the lock's user +config|get, or check appendfsync by hand",
            )),
            (true, Some(fsync), None) => findings.push(Finding::new(
                Warning,
                format!(
                    "appendfsync {fsync}: a machine crash (not a process crash) can lose the \
                     last second of lock keys"
                ),
                durable_fix,
            )),
        }
        for (addr, lag) in &facts.replicas {
            if let Some(lag) = lag
                && *lag >= LAG_WARNING
            {
                findings.push(Finding::new(
                    Warning,
                    format!(
                        "replica {addr} lags {}s: a failover to it loses the newest lock keys",
                        lag.as_secs()
                    ),
                    "check the replication link (INFO replication on both sides)",
                ));
            }
        }
        if context.mode == Mode::Cluster && facts.require_full_coverage == Some(true) {
            findings.push(Finding::new(
                Warning,
                "cluster-require-full-coverage yes: while one master is failing, every master \
                 answers CLUSTERDOWN and no lock can be taken",
                "CONFIG SET cluster-require-full-coverage no (and in redis.conf)",
            ));
        }
    }
    if let Some(rtt) = rtt
        && rtt > context.node_timeout / 2
    {
        findings.push(Finding::new(
            Warning,
            format!(
                "median round trip {:.1} ms is over half the node timeout ({:?}): its votes \
                 will time out",
                rtt.as_secs_f64() * 1000.0,
                context.node_timeout
            ),
            "raise LockConfig::node_timeout, or find what slows the link or the server",
        ));
    }
    if let Some(clock) = clock {
        let drift = context.drift_factor;
        let percent = |rate: f64| (rate - 1.0) * 100.0;
        if clock.low > 1.0 + drift {
            findings.push(Finding::new(
                Danger,
                format!(
                    "its clock runs {:+.2} % against ours (at least {:+.2} %), beyond the drift \
                     factor ({:.2} %): keys expire there before a lock's validity ends",
                    percent(clock.rate),
                    percent(clock.low),
                    drift * 100.0
                ),
                format!(
                    "fix time sync on the server (chronyc tracking / timedatectl), or raise \
                     LockConfig::drift_factor above {:.3}",
                    clock.high - 1.0
                ),
            ));
        } else if clock.high < 1.0 - drift {
            findings.push(Finding::new(
                Info,
                format!(
                    "its clock runs {:+.2} % against ours: keys outlive their TTL there (safe, \
                     but a crashed holder blocks others longer)",
                    percent(clock.rate)
                ),
                "fix time sync on the server",
            ));
        } else if clock.rate > 1.0 + drift {
            findings.push(Finding::new(
                Info,
                format!(
                    "its clock may run fast ({:+.2} %, between {:+.2} % and {:+.2} %): the \
                     round trips were too slow to tell",
                    percent(clock.rate),
                    percent(clock.low),
                    percent(clock.high)
                ),
                "measure again with a longer LockConfig::clock_sample_window",
            ));
        }
    }
    if let Some(NodeError::Quarantined { reason, .. }) = quarantined {
        findings.push(Finding::new(
            Warning,
            format!("quarantined, its votes count as failed: {reason}"),
            "none: it votes again when the quarantine ends",
        ));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// Probe every voter at once and report.
pub(crate) async fn report(config: &LockConfig, mode: Mode, voters: &[SharedNode]) -> HealthReport {
    let context = Context::of(config, mode);
    let window = config.clock_sample_window_value();
    let voters = join_all(
        voters
            .iter()
            .map(|node| probe(config, &context, node, window)),
    )
    .await;
    HealthReport {
        mode,
        drift_factor: context.drift_factor,
        clock_window: window,
        voters,
    }
}

/// Probe one voter: its facts, then [`CLOCK_SAMPLES`] `TIME`s spread over `window`. Each call
/// is bounded by the connect timeout.
async fn probe(
    config: &LockConfig,
    context: &Context,
    node: &SharedNode,
    window: Duration,
) -> VoterHealth {
    let limit = config.connect_timeout_value();
    let facts = with_deadline(limit, node.probe()).await;
    let mut samples = Vec::with_capacity(CLOCK_SAMPLES);
    let mut error = facts.as_ref().err().cloned();
    if facts.is_ok() {
        let gap = window / u32::try_from(CLOCK_SAMPLES - 1).unwrap_or(1);
        for i in 0..CLOCK_SAMPLES {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let sent = Instant::now();
            match with_deadline(limit, node.server_time()).await {
                Ok(server) => samples.push(Sample {
                    sent,
                    received: Instant::now(),
                    server,
                }),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    let facts = facts.ok();
    let rtt = median_rtt(&samples);
    let clock = clock_rate(&samples);
    let quarantined = facts
        .as_ref()
        .and_then(|f| quarantine(config, f, Instant::now()));
    let findings = assess(
        context,
        facts.as_ref(),
        error.as_ref(),
        rtt,
        clock.as_ref(),
        quarantined.as_ref(),
    );
    let f = facts.as_ref();
    VoterHealth {
        addr: node.addr().to_string(),
        error,
        role: f.map(|f| f.role.clone()),
        run_id: f.map(|f| f.run_id.clone()),
        redis_version: f.map(|f| f.redis_version.clone()),
        uptime: f.map(|f| f.uptime),
        appendonly: f.map(|f| f.aof_enabled),
        appendfsync: f.and_then(|f| f.appendfsync.clone()),
        maxmemory: f.map(|f| f.maxmemory),
        maxmemory_policy: f.map(|f| f.maxmemory_policy.clone()),
        connected_replicas: f.map(|f| f.connected_replicas),
        replicas: f
            .map(|f| {
                f.replicas
                    .iter()
                    .map(|(addr, lag)| ReplicaLag {
                        addr: addr.clone(),
                        lag: *lag,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        cluster_require_full_coverage: f.and_then(|f| f.require_full_coverage),
        rtt,
        clock_rate: clock,
        quarantined_for: match quarantined {
            Some(NodeError::Quarantined { remaining, .. }) => Some(remaining),
            _ => None,
        },
        findings,
    }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dash = || "-".to_string();
        let header = [
            "voter",
            "role",
            "redis",
            "run_id",
            "uptime",
            "persistence",
            "maxmemory (policy)",
            "replicas (lag)",
            "full coverage",
            "rtt",
            "clock rate",
        ];
        let rows: Vec<[String; 11]> = self
            .voters
            .iter()
            .map(|v| {
                let persistence = match (v.appendonly, v.appendfsync.as_deref()) {
                    (Some(false), _) => "no aof".to_string(),
                    (Some(true), Some(fsync)) => format!("aof, fsync {fsync}"),
                    (Some(true), None) => "aof, fsync ?".to_string(),
                    (None, _) => dash(),
                };
                let memory = match (v.maxmemory, &v.maxmemory_policy) {
                    (Some(max), Some(policy)) => format!("{max} ({policy})"),
                    _ => dash(),
                };
                let replicas = match v.connected_replicas {
                    None => dash(),
                    Some(0) => "0".to_string(),
                    Some(n) => {
                        let lags: Vec<String> = v
                            .replicas
                            .iter()
                            .map(|r| {
                                r.lag
                                    .map_or_else(|| "?".into(), |l| l.as_secs().to_string())
                            })
                            .collect();
                        format!("{n} ({}s)", lags.join(","))
                    }
                };
                [
                    v.addr.clone(),
                    v.role.clone().unwrap_or_else(dash),
                    v.redis_version.clone().unwrap_or_else(dash),
                    v.run_id
                        .as_deref()
                        .map_or_else(dash, |id| id.chars().take(8).collect()),
                    v.uptime.map_or_else(dash, |u| format!("{}s", u.as_secs())),
                    persistence,
                    memory,
                    replicas,
                    v.cluster_require_full_coverage
                        .map_or_else(dash, |yes| if yes { "yes" } else { "no" }.into()),
                    v.rtt
                        .map_or_else(dash, |r| format!("{:.2} ms", r.as_secs_f64() * 1000.0)),
                    v.clock_rate.map_or_else(dash, |c| {
                        format!("{:.4} [{:.4}, {:.4}]", c.rate, c.low, c.high)
                    }),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(&format!("{cell:<width$}"));
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        writeln!(
            f,
            "(mode {:?}, drift factor {}, clock sampled over {:?})",
            self.mode, self.drift_factor, self.clock_window
        )?;
        let findings = self.findings();
        if findings.is_empty() {
            return writeln!(f, "no findings");
        }
        writeln!(f, "findings:")?;
        for (addr, finding) in findings {
            writeln!(f, "  {:<7}  {addr}  {}", finding.severity, finding.message)?;
            writeln!(
                f,
                "  {:<7}  {:width$}  fix: {}",
                "",
                "",
                finding.fix,
                width = addr.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(mode: Mode) -> Context {
        Context::of(&LockConfig::new(), mode)
    }

    fn severities(findings: &[Finding]) -> Vec<Severity> {
        findings.iter().map(|f| f.severity).collect()
    }

    /// Samples of a server whose clock runs at `rate`, every `gap`, each with round trip
    /// `rtt`, the server reading its clock mid-trip.
    fn samples(rate: f64, gap: Duration, rtt: Duration, n: usize) -> Vec<Sample> {
        let start = Instant::now();
        let epoch = Duration::from_secs(1_700_000_000);
        (0..n)
            .map(|i| {
                let sent = start + gap * u32::try_from(i).unwrap();
                let local = (sent + rtt / 2).duration_since(start);
                Sample {
                    sent,
                    received: sent + rtt,
                    server: epoch + local.mul_f64(rate),
                }
            })
            .collect()
    }

    #[test]
    fn the_clock_rate_and_its_bounds() {
        let ms = Duration::from_millis;
        let fast = clock_rate(&samples(1.1, ms(50), ms(1), 5)).unwrap();
        assert!((fast.rate - 1.1).abs() < 1e-6, "{fast:?}");
        assert!(fast.low < 1.1 && fast.high > 1.1, "{fast:?}");
        // Two 1 ms round trips over the 200 ms between first and last sample: about +-0.5 %.
        assert!(fast.low > 1.09 && fast.high < 1.11, "{fast:?}");
        let same = clock_rate(&samples(1.0, ms(50), ms(1), 5)).unwrap();
        assert!((same.rate - 1.0).abs() < 1e-6 && same.low < 1.0 && same.high > 1.0);
        // Too few samples, or round trips longer than the gaps: nothing to say.
        assert!(clock_rate(&samples(1.0, ms(50), ms(1), 1)).is_none());
        assert!(clock_rate(&samples(1.0, ms(1), ms(5), 2)).is_none());
        // One slow sample does not spoil the estimate: the quickest of each half is used.
        let mut noisy = samples(1.1, ms(50), ms(1), 5);
        noisy[4].received += ms(40);
        let rate = clock_rate(&noisy).unwrap();
        assert!((rate.rate - 1.1).abs() < 1e-6, "{rate:?}");
        assert_eq!(median_rtt(&noisy), Some(ms(1)));
    }

    #[test]
    fn a_fast_clock_beyond_the_drift_factor_is_a_danger() {
        let ms = Duration::from_millis;
        let judge = |rate: f64, rtt: Duration| {
            let clock = clock_rate(&samples(rate, ms(50), rtt, 5)).unwrap();
            severities(&assess(
                &context(Mode::Independent),
                None,
                None,
                None,
                Some(&clock),
                None,
            ))
        };
        assert_eq!(judge(1.10, ms(1)), [Severity::Danger]);
        assert_eq!(judge(1.005, ms(1)), [], "within the 1 % drift factor");
        assert_eq!(judge(0.90, ms(1)), [Severity::Info], "slow is safe");
        // 3 % fast, but round trips of 10 ms leave it uncertain: no alarm, a hint.
        assert_eq!(judge(1.03, ms(10)), [Severity::Info]);
    }

    #[test]
    fn findings_from_the_facts_each_with_a_fix() {
        let healthy = ServerFacts::simulated("a");
        let findings = assess(
            &context(Mode::Independent),
            Some(&healthy),
            None,
            Some(Duration::from_millis(1)),
            None,
            None,
        );
        assert!(findings.is_empty(), "{findings:?}");

        let mut risky = healthy.clone();
        risky.maxmemory = 1 << 20;
        risky.maxmemory_policy = "allkeys-lru".into();
        risky.aof_enabled = false;
        risky.replicas = vec![("127.0.0.1:7003".into(), Some(Duration::from_secs(3)))];
        risky.require_full_coverage = Some(true);
        let findings = assess(
            &context(Mode::Cluster),
            Some(&risky),
            None,
            Some(Duration::from_millis(80)),
            None,
            None,
        );
        assert_eq!(
            severities(&findings),
            [
                Severity::Danger,
                Severity::Danger,
                Severity::Warning,
                Severity::Warning,
                Severity::Warning
            ],
            "{findings:#?}"
        );
        assert!(findings[0].fix.contains("noeviction"), "{findings:#?}");
        assert!(
            findings[1].fix.contains("appendfsync always"),
            "{findings:#?}"
        );
        assert!(findings.iter().all(|f| !f.fix.is_empty()));
        // With delayed restarts, missing persistence is covered: information only.
        let covered = Context {
            delayed_restart: Some(Duration::from_secs(30)),
            ..context(Mode::Independent)
        };
        let mut volatile = healthy.clone();
        volatile.aof_enabled = false;
        let findings = assess(&covered, Some(&volatile), None, None, None, None);
        assert_eq!(severities(&findings), [Severity::Info], "{findings:?}");
        // Unknown fsync (CONFIG refused) is a warning; everysec too.
        volatile.aof_enabled = true;
        volatile.appendfsync = None;
        let context = context(Mode::Independent);
        let findings = assess(&context, Some(&volatile), None, None, None, None);
        assert!(findings[0].message.contains("unknown"), "{findings:?}");
        volatile.appendfsync = Some("everysec".into());
        let findings = assess(&context, Some(&volatile), None, None, None, None);
        assert_eq!(severities(&findings), [Severity::Warning]);
        // A voter that did not answer.
        let down = NodeError::Timeout(Duration::from_secs(1));
        let findings = assess(&context, None, Some(&down), None, None, None);
        assert_eq!(severities(&findings), [Severity::Warning]);
    }
}
