//! The extend round (compare-and-`PEXPIRE`), and the release of what a failed one may have
//! lengthened.

use std::sync::Arc;

use tokio::time::Instant;

use crate::engine::quorum::{ExtendDecision, decide_extend, unavailable};
use crate::error::LockError;
use crate::input::Ttl;
use crate::lock::Lock;

use super::acquire::limits;
use super::answers::{drop_unasked, unasked, which};
use super::{Ask, Round, Shared, Vote, may_have_written};

impl Round<'_> {
    /// One extend round (compare-and-`PEXPIRE`, acknowledged by replicas when configured),
    /// decided as soon as the outcome is known; on success the lock's deadline becomes
    /// `start + ttl - drift`. A failed extend that leaves the lock gone anyway (a quorum
    /// refused, or the old validity ran out during the round) ends it: the keys it may have
    /// lengthened are released in the background (otherwise they would block others for the
    /// new TTL with nobody holding them), and the lock's deadline becomes now. With too few
    /// answers and validity left, the lock stands for a retry (the manager's after a
    /// redirect, the guard's watchdog) or the holder's release. A won round's calls still in
    /// flight are awaited in the background (a late extension belongs to the lock).
    pub(crate) async fn extend(&self, lock: &mut Lock, ttl: Ttl) -> Result<bool, LockError> {
        let ttl = ttl.get();
        let (allowance, limit) = limits(self.config, ttl);
        let turn = self.turn().await;
        let start = Instant::now();
        let shared = self.shared(lock.token.clone());
        let vote: &Vote<bool> = &move |shared: Arc<Shared>, i| {
            Box::pin(async move { super::votes::extend(&shared, i, ttl, limit).await })
        };
        let ask = Ask {
            shared: &shared,
            targets: None,
            deadline: start + limit,
            patience: ttl,
            release_on_cancel: false,
            early: true,
        };
        let (answers, mut rest) = self.ask(&turn, ask, vote, |yes| *yes).await;
        let elapsed = start.elapsed();
        // An extension that lands after the old validity ran out may lengthen keys that
        // someone else now relies on never having been ours: it does not count.
        let still_valid = Instant::now() < lock.deadline;
        drop(turn);
        let voters = &*self.voters;
        let lengthened = which(&answers.answers, |a| {
            matches!(a, Some(Ok(true))) || may_have_written(a)
        });
        let unanswered = unasked(voters, &answers, Instant::now() < start + limit);
        let named = answers.named(voters, limit);
        let mut decision = decide_extend(&named, ttl, elapsed, allowance, still_valid);
        if let ExtendDecision::Unavailable { failures, .. } = &mut decision {
            drop_unasked(&mut failures.0, &unanswered);
        }
        let ends = match decision {
            ExtendDecision::Extended { .. } => false,
            ExtendDecision::Refused => true,
            ExtendDecision::Unavailable { .. } => Instant::now() >= lock.deadline,
        };
        if ends {
            rest.release = Some(lengthened);
        }
        drop(rest);
        tracing::debug!(
            resource = lock.resource,
            ?elapsed,
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
                Err(unavailable(voters.len(), answered, failures))
            }
        }
    }
}
