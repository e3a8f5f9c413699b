//! The findings about one voter, judged by a pure function from what its probe gathered.

use std::time::Duration;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;
use crate::server::ServerFacts;

use super::{ClockRate, Finding, Severity};

/// A replica lagging this much or more is reported.
const LAG_WARNING: Duration = Duration::from_secs(1);

/// What the report judges against.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) mode: Mode,
    pub(crate) drift_factor: f64,
    pub(crate) node_timeout: Duration,
    pub(crate) delayed_restart: Option<Duration>,
    /// With fencing on, the counters' retention.
    pub(crate) fencing_retention: Option<Duration>,
}

impl Context {
    pub(crate) fn of(config: &LockConfig, mode: Mode) -> Self {
        Context {
            mode,
            drift_factor: config.drift_factor_value(),
            node_timeout: config.node_timeout_value(),
            delayed_restart: config.delayed_restart_value(),
            fencing_retention: config
                .fencing_enabled()
                .then(|| config.fencing_retention_value()),
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
