//! The offset of each voter's clock (`TIME`, wall time) from ours, and the spread between
//! voters. Fencing tokens carry the granting voters' time: after a voter lost its counter
//! (restarted empty, failed over to a lagging replica, or the counter's retention ran out),
//! they keep increasing only while voter clocks agree within the gap before that voter grants
//! again (the quarantine, the failover time, the retention; see `fencing`).

use std::time::Duration;

use tokio::time::Instant;

use super::assess::Context;
use super::{ClockOffset, Finding, Sample, Severity, VoterHealth};

/// A voter's clock offset from the quickest of its samples: the server read its clock
/// somewhere inside that round trip, so the offset is known within half of it. `wall_at`
/// maps a local instant to our wall clock (time since the Unix epoch).
pub(crate) fn clock_offset(
    samples: &[Sample],
    wall_at: impl Fn(Instant) -> Duration,
) -> Option<ClockOffset> {
    let best = samples.iter().min_by_key(|s| s.rtt())?;
    let ours = wall_at(best.midpoint());
    Some(ClockOffset {
        seconds: best.server.as_secs_f64() - ours.as_secs_f64(),
        uncertainty: best.rtt() / 2,
    })
}

/// How far apart the voters' clocks are at most: the largest offset plus its uncertainty
/// minus the smallest minus its. `None` with fewer than two offsets.
pub(crate) fn clock_spread<'a>(offsets: impl Iterator<Item = &'a ClockOffset>) -> Option<Duration> {
    let (mut high, mut low, mut count) = (f64::MIN, f64::MAX, 0usize);
    for offset in offsets {
        let uncertainty = offset.uncertainty.as_secs_f64();
        high = high.max(offset.seconds + uncertainty);
        low = low.min(offset.seconds - uncertainty);
        count += 1;
    }
    (count >= 2).then(|| Duration::try_from_secs_f64(high - low).unwrap_or(Duration::MAX))
}

/// With fencing on, the shortest gap the tokens rely on after a lost counter: the quarantine
/// of `delayed_restart` when on, and the counters' retention.
fn shortest_gap(context: &Context) -> Option<Duration> {
    let retention = context.fencing_retention?;
    Some(
        context
            .delayed_restart
            .map_or(retention, |q| q.min(retention)),
    )
}

/// Add the spread findings to the voter whose clock is farthest from the others' middle:
/// danger when the spread reaches the shortest gap fencing relies on, a warning from half of
/// it. Nothing without fencing, or with fewer than two voters' clocks read.
pub(crate) fn spread_findings(
    context: &Context,
    spread: Option<Duration>,
    voters: &mut [VoterHealth],
) {
    let (Some(gap), Some(spread)) = (shortest_gap(context), spread) else {
        return;
    };
    let severity = if spread >= gap {
        Severity::Danger
    } else if spread >= gap / 2 {
        Severity::Warning
    } else {
        return;
    };
    let offsets: Vec<f64> = voters
        .iter()
        .filter_map(|v| v.clock_offset.map(|o| o.seconds))
        .collect();
    let middle = (offsets.iter().copied().fold(f64::MIN, f64::max)
        + offsets.iter().copied().fold(f64::MAX, f64::min))
        / 2.0;
    let Some(farthest) = voters
        .iter_mut()
        .filter(|v| v.clock_offset.is_some())
        .max_by(|a, b| {
            let d = |v: &VoterHealth| v.clock_offset.map_or(0.0, |o| (o.seconds - middle).abs());
            d(a).total_cmp(&d(b))
        })
    else {
        return;
    };
    farthest.findings.push(Finding::new(
        severity,
        format!(
            "the voters' clocks are up to {:.3} s apart, against {:.3} s that fencing tokens rely \
             on after a voter loses its counter (quarantine or retention): a token could repeat",
            spread.as_secs_f64(),
            gap.as_secs_f64()
        ),
        "synchronise the voters' clocks (NTP), or raise delayed_restart's longest TTL and \
         fencing_retention above the offset",
    ));
    farthest
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
}
