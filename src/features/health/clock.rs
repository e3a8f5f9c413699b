//! The clock rate of a voter's server, from timed `TIME` samples, and their median round trip.

use std::time::Duration;

use tokio::time::Instant;

use super::ClockRate;

/// One `TIME` sample: when we sent it, when the reply came, what the server's clock said.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) received: Instant,
    pub(crate) server: Duration,
}

impl Sample {
    pub(super) fn rtt(&self) -> Duration {
        self.received.saturating_duration_since(self.sent)
    }

    /// The local instant the server most likely read its clock at: mid round trip.
    pub(super) fn midpoint(&self) -> Instant {
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
pub(super) fn median_rtt(samples: &[Sample]) -> Option<Duration> {
    let mut rtts: Vec<Duration> = samples.iter().map(Sample::rtt).collect();
    rtts.sort_unstable();
    rtts.get(rtts.len() / 2).copied()
}
