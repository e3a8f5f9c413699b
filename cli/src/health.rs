//! `redlock health`: the library's voter health report, as text (one line a voter, then the
//! findings with their fixes) or JSON, with an exit status a readiness probe can use.

use std::time::Duration;

use redlock_cluster::{HealthReport, LockManager, Severity, VoterHealth};
use serde_json::{Value, json};

use crate::args::HealthArgs;
use crate::exit::{self, Exit};
use crate::status::mode_name;

/// Probe the voters and print the report. Exits [`exit::UNAVAILABLE`] when fewer than a quorum
/// of voters answered, [`exit::DANGER`] when a finding is DANGER, else 0 (warnings included).
pub async fn health(manager: &LockManager, args: &HealthArgs) -> Exit {
    let report = match manager.health().await {
        Ok(report) => report,
        Err(error) => return Exit::from_lock_error(&error),
    };
    if args.json {
        exit::print(&format!("{}\n", to_json(&report)));
    } else {
        exit::print(&report.to_string());
    }
    verdict(&report)
}

/// The exit status of a report.
fn verdict(report: &HealthReport) -> Exit {
    let voters = report.voters.len();
    let answered = report.voters.iter().filter(|v| v.error.is_none()).count();
    let quorum = voters / 2 + 1;
    if answered < quorum {
        return Exit::fail(
            exit::UNAVAILABLE,
            format!("only {answered} of {voters} voters answered, {quorum} needed"),
        );
    }
    if report.worst() == Some(Severity::Danger) {
        return Exit::fail(exit::DANGER, "a finding is DANGER (see its fix above)");
    }
    Exit::status(0)
}

fn millis(duration: Duration) -> Value {
    json!(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn severity(severity: Severity) -> String {
    severity.to_string().to_lowercase()
}

fn voter_json(voter: &VoterHealth) -> Value {
    let findings: Vec<Value> = voter
        .findings
        .iter()
        .map(|f| json!({"severity": severity(f.severity), "message": f.message, "fix": f.fix}))
        .collect();
    let replicas: Vec<Value> = voter
        .replicas
        .iter()
        .map(|r| json!({"addr": r.addr, "lag_ms": r.lag.map(millis)}))
        .collect();
    json!({
        "addr": voter.addr,
        "error": voter.error.as_ref().map(ToString::to_string),
        "role": voter.role,
        "run_id": voter.run_id,
        "redis_version": voter.redis_version,
        "uptime_s": voter.uptime.map(|u| u.as_secs()),
        "appendonly": voter.appendonly,
        "appendfsync": voter.appendfsync,
        "maxmemory": voter.maxmemory,
        "maxmemory_policy": voter.maxmemory_policy,
        "connected_replicas": voter.connected_replicas,
        "replicas": replicas,
        "cluster_require_full_coverage": voter.cluster_require_full_coverage,
        "rtt_us": voter.rtt.map(|r| u64::try_from(r.as_micros()).unwrap_or(u64::MAX)),
        "clock_rate": voter.clock_rate.map(|c| json!({"rate": c.rate, "low": c.low, "high": c.high})),
        "quarantined_ms": voter.quarantined_for.map(millis),
        "worst": voter.worst().map(severity),
        "findings": findings,
    })
}

/// One JSON object: `mode`, `drift_factor`, `clock_window_ms`, `worst`, `voters`.
fn to_json(report: &HealthReport) -> Value {
    json!({
        "mode": mode_name(report.mode),
        "drift_factor": report.drift_factor,
        "clock_window_ms": millis(report.clock_window),
        "worst": report.worst().map(severity),
        "voters": report.voters.iter().map(voter_json).collect::<Vec<_>>(),
    })
}
