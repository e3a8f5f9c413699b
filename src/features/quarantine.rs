//! Delayed restarts, enforced by the client (opt-in: `LockConfig::delayed_restart`).
//!
//! Redlock's answer to a master that restarts without its data is operator discipline: keep
//! it down for longer than the longest TTL, so that every lock it voted for has expired
//! everywhere before it votes again. A master that comes back sooner, empty, grants a lock
//! another client still holds by a bare majority. This module enforces the rule instead: a
//! voter that may have lost keys does not vote until the longest TTL has passed since it
//! started (or since we saw it change), and its votes count as failed meanwhile.
//!
//! The rule, a pure function of what the server said and what we saw ([`delayed_restart`]):
//! - a voter whose persistence cannot guarantee the keys survived a restart (anything but
//!   `appendonly yes` with `appendfsync always`, unknown included) is quarantined until
//!   `max_ttl` after it started, counted back from its `uptime_in_seconds`. The uptime is
//!   whole seconds rounded down and measured on the server's clock, which may run fast by up
//!   to the drift factor, so it is shrunk by that factor: the start is placed no earlier than
//!   it really was, and the quarantine never ends early.
//! - a voter seen to change `run_id` (a restart) without such persistence is quarantined
//!   until `max_ttl` after the moment we saw it, whatever its uptime says;
//! - a voter seen to change role (a failover, `REPLICAOF`) is quarantined until `max_ttl`
//!   after we saw it, persistence or not: its data came by asynchronous replication, and
//!   no fsync setting makes up for a key the replica never received.
//!
//! What it cannot see: a failover to a replica this client never saw as a replica (in
//! cluster mode the promoted master has another address and a long uptime), and a disk lost
//! under a server that claims `appendfsync always`. Replica-acknowledged votes and fencing
//! cover those; docs/design.md, "Delayed restarts", says more.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::LockConfig;
use crate::error::NodeError;
use crate::server::ServerFacts;

/// Whether a voter may vote now under the delayed-restart rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It may vote.
    Admit,
    /// It may not vote before `until` (our monotonic clock); `cause` says why, for the user.
    Quarantined { until: Instant, cause: String },
}

/// The delayed-restart rule (see the module docs): `facts` of one voter, the longest TTL any
/// client uses, the drift factor, and the time now.
pub(crate) fn delayed_restart(
    facts: &ServerFacts,
    max_ttl: Duration,
    drift_factor: f64,
    now: Instant,
) -> Verdict {
    // `max_ttl` is at most a day (checked by the config), far from overflowing an Instant.
    let after = |at: Instant, wait: Duration| at.checked_add(wait).unwrap_or(at);
    let mut latest: Option<(Instant, String)> = None;
    let mut hold_until = |until: Instant, cause: String| {
        if latest.as_ref().is_none_or(|(known, _)| until > *known) {
            latest = Some((until, cause));
        }
    };
    if !facts.persists_every_write() {
        let persistence = facts.persistence();
        let factor = if drift_factor.is_finite() && drift_factor > 0.0 {
            1.0 + drift_factor
        } else {
            1.0
        };
        let uptime = facts.uptime.div_f64(factor);
        if let Some(left) = max_ttl.checked_sub(uptime)
            && !left.is_zero()
        {
            hold_until(
                after(facts.read_at, left),
                format!(
                    "it started {}s ago (uptime_in_seconds) with {persistence}, so it may have \
                     come back without the keys of locks that are still held",
                    facts.uptime.as_secs()
                ),
            );
        }
        if let Some(seen) = facts.restart_seen_at {
            hold_until(
                after(seen, max_ttl),
                format!(
                    "it restarted (its run_id changed to {}) with {persistence}, so it may \
                     have come back without the keys of locks that are still held",
                    facts.run_id
                ),
            );
        }
    }
    if let Some(seen) = facts.role_change_seen_at {
        hold_until(
            after(seen, max_ttl),
            format!(
                "its role changed to {} (a failover or REPLICAOF), and a replica may not have \
                 received every key its master granted",
                facts.role
            ),
        );
    }
    match latest {
        Some((until, cause)) if until > now => Verdict::Quarantined {
            until,
            cause: format!(
                "{cause}; it votes again once the longest TTL ({max_ttl:?}) has passed, \
                 in {:.1}s",
                until.saturating_duration_since(now).as_secs_f64()
            ),
        },
        _ => Verdict::Admit,
    }
}

/// [`NodeError::Quarantined`] when delayed restarts are on and `facts` are quarantined at
/// `now`.
/// The admission [`Veto`](crate::server::Veto) of delayed restarts.
pub(crate) fn quarantine(
    config: &LockConfig,
    facts: &ServerFacts,
    now: Instant,
) -> Option<NodeError> {
    let max_ttl = config.delayed_restart_value()?;
    match delayed_restart(facts, max_ttl, config.drift_factor_value(), now) {
        Verdict::Admit => None,
        Verdict::Quarantined { until, cause } => Some(NodeError::Quarantined {
            remaining: until.saturating_duration_since(now),
            reason: cause,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_TTL: Duration = Duration::from_secs(30);

    fn volatile(uptime_secs: u64, now: Instant) -> ServerFacts {
        let mut facts = ServerFacts::simulated("a");
        facts.aof_enabled = false;
        facts.appendfsync = Some("everysec".into());
        facts.uptime = Duration::from_secs(uptime_secs);
        facts.read_at = now;
        facts
    }

    fn until(verdict: &Verdict) -> Option<Instant> {
        match verdict {
            Verdict::Admit => None,
            Verdict::Quarantined { until, .. } => Some(*until),
        }
    }

    #[test]
    fn a_young_voter_without_durable_persistence_waits_out_the_longest_ttl() {
        let now = Instant::now();
        let young = volatile(10, now);
        let verdict = delayed_restart(&young, MAX_TTL, 0.0, now);
        assert_eq!(until(&verdict), Some(now + Duration::from_secs(20)));
        let Verdict::Quarantined { cause, .. } = &verdict else {
            unreachable!()
        };
        assert!(cause.contains("started 10s ago"), "{cause}");
        assert!(cause.contains("appendonly no"), "{cause}");
        assert!(cause.contains("in 20.0s"), "{cause}");
        // Over once the time is up; and an old server is never held back.
        let later = now + Duration::from_secs(20);
        assert_eq!(delayed_restart(&young, MAX_TTL, 0.0, later), Verdict::Admit);
        assert_eq!(
            delayed_restart(&volatile(30, now), MAX_TTL, 0.0, now),
            Verdict::Admit
        );
        // A fast server clock overstates its uptime: the drift factor shrinks it.
        let drifted = delayed_restart(&volatile(30, now), MAX_TTL, 0.1, now);
        assert!(until(&drifted).is_some_and(|u| u > now), "{drifted:?}");
    }

    #[test]
    fn only_aof_with_fsync_always_counts_as_durable() {
        let now = Instant::now();
        let mut facts = volatile(1, now);
        facts.aof_enabled = true;
        for (fsync, quarantined) in [
            (Some("always"), false),
            (Some("everysec"), true),
            (Some("no"), true),
            (None, true),
        ] {
            facts.appendfsync = fsync.map(str::to_string);
            let verdict = delayed_restart(&facts, MAX_TTL, 0.01, now);
            assert_eq!(verdict != Verdict::Admit, quarantined, "{fsync:?}");
        }
    }

    #[test]
    fn a_restart_or_role_change_seen_starts_a_quarantine_from_that_moment() {
        let now = Instant::now();
        let seen = now - Duration::from_secs(5);
        // An old uptime does not help once we saw the run_id change.
        let mut restarted = volatile(3600, now);
        restarted.restart_seen_at = Some(seen);
        let verdict = delayed_restart(&restarted, MAX_TTL, 0.0, now);
        assert_eq!(until(&verdict), Some(seen + MAX_TTL));
        assert!(format!("{verdict:?}").contains("run_id changed"));
        // ... unless it persists every write.
        restarted.aof_enabled = true;
        restarted.appendfsync = Some("always".into());
        assert_eq!(
            delayed_restart(&restarted, MAX_TTL, 0.0, now),
            Verdict::Admit
        );
        // A role change counts whatever the persistence.
        restarted.role_change_seen_at = Some(seen);
        restarted.role = "master".into();
        let verdict = delayed_restart(&restarted, MAX_TTL, 0.0, now);
        assert_eq!(until(&verdict), Some(seen + MAX_TTL));
        assert!(format!("{verdict:?}").contains("role changed to master"));
    }

    proptest! {
        /// The quarantine never ends before `max_ttl` has passed since the latest of: the
        /// server's start (uptime read at `read_at`, if not durable), a restart seen (if not
        /// durable), a role change seen; and it is never longer than needed for that.
        #[test]
        fn the_quarantine_covers_exactly_the_longest_ttl(
            uptime_ms in 0u64..100_000,
            durable in any::<bool>(),
            restart_ago_ms in prop::option::of(0u64..100_000),
            role_ago_ms in prop::option::of(0u64..100_000),
            max_ttl_ms in 1u64..60_000,
            drift in 0.0f64..0.1,
            wait_ms in 0u64..100_000,
        ) {
            let base = Instant::now() + Duration::from_secs(1000);
            let mut facts = volatile(0, base);
            facts.uptime = Duration::from_millis(uptime_ms);
            facts.aof_enabled = durable;
            facts.appendfsync = Some(if durable { "always" } else { "everysec" }.into());
            facts.restart_seen_at = restart_ago_ms.map(|ms| base - Duration::from_millis(ms));
            facts.role_change_seen_at = role_ago_ms.map(|ms| base - Duration::from_millis(ms));
            let max_ttl = Duration::from_millis(max_ttl_ms);
            let now = base + Duration::from_millis(wait_ms);
            let mut required = Vec::new();
            if !durable {
                let real_uptime = facts.uptime.div_f64(1.0 + drift);
                required.push(base.checked_sub(real_uptime).unwrap_or(base) + max_ttl);
                if let Some(seen) = facts.restart_seen_at {
                    required.push(seen + max_ttl);
                }
            }
            if let Some(seen) = facts.role_change_seen_at {
                required.push(seen + max_ttl);
            }
            let end = required.into_iter().max();
            let verdict = delayed_restart(&facts, max_ttl, drift, now);
            match end {
                Some(end) if now < end => {
                    let got = until(&verdict);
                    prop_assert!(got.is_some(), "admitted at {now:?} before {end:?}");
                    // Within a microsecond of the bound (Duration arithmetic rounds).
                    let got = got.unwrap_or(now);
                    prop_assert!(got + Duration::from_micros(1) >= end && got <= end + Duration::from_micros(1));
                }
                _ => prop_assert!(until(&verdict).is_none_or(|u| u <= now + Duration::from_micros(1)),
                    "held back at {now:?} after {end:?}: {verdict:?}"),
            }
        }
    }
}
