//! Probing: every voter at once (facts, then timed `TIME` samples), each call under a deadline.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;
use crate::features::quarantine::quarantine;
use crate::node::{SharedNode, with_deadline};

use super::offset::{clock_offset, clock_spread, spread_findings};
use super::{
    Context, HealthReport, ReplicaLag, Sample, VoterHealth, assess, clock_rate, median_rtt,
};

/// How many `TIME` samples are taken per voter, spread evenly over the sampling window.
const CLOCK_SAMPLES: usize = 5;

/// Probe every voter at once and report.
pub(crate) async fn report(config: &LockConfig, mode: Mode, voters: &[SharedNode]) -> HealthReport {
    let context = Context::of(config, mode);
    let window = config.clock_sample_window_value();
    // Our wall clock at a local instant, for the voters' clock offsets.
    let (wall, local) = (
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
        Instant::now(),
    );
    let wall_at = move |at: Instant| wall + at.saturating_duration_since(local);
    let mut voters = join_all(
        voters
            .iter()
            .map(|node| probe(config, &context, node, window, wall_at)),
    )
    .await;
    let clock_spread = clock_spread(voters.iter().filter_map(|v| v.clock_offset.as_ref()));
    spread_findings(&context, clock_spread, &mut voters);
    HealthReport {
        mode,
        drift_factor: context.drift_factor,
        clock_window: window,
        clock_spread,
        voters,
    }
}

/// Probe one voter: its facts, then [`CLOCK_SAMPLES`] `TIME`s spread over `window`. Each call
/// is bounded by the node timeout, like a lock round's: a hung voter costs the report no more
/// than that per call (its connection goes on opening in the background).
async fn probe(
    config: &LockConfig,
    context: &Context,
    node: &SharedNode,
    window: Duration,
    wall_at: impl Fn(Instant) -> Duration,
) -> VoterHealth {
    let limit = config.node_timeout_value();
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
    let offset = clock_offset(&samples, wall_at);
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
        clock_offset: offset,
        quarantined_for: match quarantined {
            Some(NodeError::Quarantined { remaining, .. }) => Some(remaining),
            _ => None,
        },
        findings,
    }
}
