//! The extend round (compare-and-`PEXPIRE`), and the release of what a failed one may have
//! lengthened.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::acks;
use crate::error::LockError;
use crate::input::Ttl;
use crate::lock::{Lock, LockToken};
use crate::quorum::{ExtendDecision, decide_extend, drift, unavailable};
use crate::topology::Voter;

use super::answers::{Answers, Rule, drop_unasked, failure_signs, gather, send, unasked, which};
use super::cleanup::release_where;
use super::{Round, may_have_written, on_connection};

impl Round<'_> {
    /// One extend round (compare-and-`PEXPIRE`), decided as soon as the outcome is known; on
    /// success the lock's deadline becomes `start + ttl - drift`. A failed extend that leaves
    /// the lock gone anyway (a quorum refused, or the old validity ran out during the round)
    /// ends it: the keys it may have lengthened are released in the background (otherwise
    /// they would block others for the new TTL with nobody holding them), and the lock's
    /// deadline becomes now. With too few answers and validity left, the lock stands.
    pub(crate) async fn extend(&self, lock: &mut Lock, ttl: Ttl) -> Result<bool, LockError> {
        let ttl = ttl.get();
        let allowance = drift(ttl, self.config.drift_factor_value());
        let per_call = self.per_call(ttl, allowance);
        let permit = self.flight.permit().await;
        let start = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        let task = extend_round(ExtendRound {
            rule: self.rule(),
            voters: self.voters.clone(),
            token: lock.token.clone(),
            ttl,
            allowance,
            start,
            limit: per_call,
            old_deadline: lock.deadline,
            permit,
            report: tx,
        });
        let decision = self.run(task, &mut rx).await;
        let Some((decision, ends, failures_seen, redirected)) = decision else {
            return Err(unavailable(self.voters.len(), 0, Default::default()));
        };
        self.note_failures(failures_seen, redirected);
        tracing::debug!(
            resource = lock.resource,
            elapsed = ?start.elapsed(),
            ?decision,
            ends,
            "extend round"
        );
        if ends {
            lock.deadline = Instant::now();
        }
        match decision {
            ExtendDecision::Extended { by } => {
                lock.deadline = start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(lock.deadline);
                lock.ttl = ttl;
                lock.granted_by = self.topology.granted_by(by.iter().map(String::as_str));
                lock.supersede_late_votes();
                Ok(true)
            }
            ExtendDecision::Refused => Ok(false),
            ExtendDecision::Unavailable { answered, failures } => {
                Err(unavailable(self.voters.len(), answered, failures))
            }
        }
    }
}

/// Everything an extend round's task owns.
struct ExtendRound {
    rule: Rule,
    voters: Arc<[Voter]>,
    token: LockToken,
    ttl: Duration,
    allowance: Duration,
    start: Instant,
    limit: Duration,
    old_deadline: Instant,
    permit: Option<OwnedSemaphorePermit>,
    /// The decision, whether it ends the lock, and the failure signs.
    report: oneshot::Sender<(ExtendDecision, bool, bool, bool)>,
}

/// The task of one extend round. A won round's calls still in flight are dropped (a late
/// extension belongs to the lock). A failed one releases every key it may have lengthened:
/// those that said yes, timed out, or lost their connection.
async fn extend_round(round: ExtendRound) {
    let ExtendRound {
        rule,
        voters,
        token,
        ttl,
        allowance,
        start,
        limit,
        old_deadline,
        permit,
        report,
    } = round;
    let config = rule.config.clone();
    let config = config.as_ref();
    let mut answers = Answers::new(voters.len(), rule);
    let token = &token;
    let mut calls = send(&voters, |voter| {
        // Acknowledged by replicas when configured (see `acks`).
        let vote = acks::extend(&voter.node, &voter.key, token.as_str(), ttl, config, limit);
        Box::pin(on_connection(voter, vote))
    });
    gather(&voters, &mut calls, &mut answers, start + limit, |yes| *yes).await;
    let elapsed = start.elapsed();
    // An extension that lands after the old validity ran out may lengthen keys that someone
    // else now relies on never having been ours: it does not count.
    let still_valid = Instant::now() < old_deadline;
    drop(permit);
    let (failures_seen, redirected) = failure_signs(answers.answers.iter().flatten());
    let lengthened = which(&answers.answers, |a| {
        matches!(a, Some(Ok(true))) || may_have_written(a)
    });
    let unanswered = unasked(&voters, &answers, Instant::now() < start + limit);
    let mut decision = decide_extend(
        &answers.named(&voters, limit),
        ttl,
        elapsed,
        allowance,
        still_valid,
    );
    if let ExtendDecision::Unavailable { failures, .. } = &mut decision {
        drop_unasked(&mut failures.0, &unanswered);
    }
    // A failed extend ends the lock when it is gone anyway: a quorum refused, or its old
    // validity ran out during the round. Then the keys it may have lengthened must not block
    // others for the new TTL. With too few answers and validity left, the lock stands for a
    // retry (the manager's after a redirect, the guard's watchdog) or the holder's release.
    let ends = match decision {
        ExtendDecision::Extended { .. } => false,
        ExtendDecision::Refused => true,
        ExtendDecision::Unavailable { .. } => Instant::now() >= old_deadline,
    };
    let _ = report.send((decision, ends, failures_seen, redirected));
    if !ends {
        let _ = tokio::time::timeout(ttl, calls.count()).await;
    } else {
        drop(calls);
        release_where(&voters, &lengthened, token, ttl).await;
    }
}
