//! The release round (compare-and-delete), whose deletes still in flight are awaited in the
//! background.

use std::sync::Arc;

use tokio::time::Instant;

use crate::engine::quorum::{ReleaseDecision, decide_release, unavailable};
use crate::error::LockError;
use crate::lock::Lock;

use super::answers::{drop_unasked, unasked};
use super::votes::no_voter;
use super::{Ask, Round, Shared, Vote};

impl Round<'_> {
    /// One release round (compare-and-delete); `true` when a quorum still held the lock. It
    /// returns as soon as that is known; the deletes still in flight are awaited in the
    /// background until the lock's TTL (never dropped: a dropped request may never be sent;
    /// after the TTL the keys are gone anyway), also when the caller is cancelled.
    pub(crate) async fn release(&self, lock: &Lock) -> Result<bool, LockError> {
        let turn = self.turn().await;
        let limit = self.config.node_timeout_value();
        let deadline = Instant::now() + limit;
        let shared = self.shared(lock.token.clone());
        let vote: &Vote<bool> = &|shared: Arc<Shared>, i| {
            Box::pin(async move {
                let voter = shared.voters.get(i).ok_or_else(no_voter)?;
                super::votes::release(voter.node.as_ref(), &voter.key, shared.token.as_str()).await
            })
        };
        let ask = Ask {
            shared: &shared,
            targets: None,
            deadline,
            patience: lock.ttl,
            release_on_cancel: false,
            early: true,
        };
        let (answers, rest) = self.ask(&turn, ask, vote, |yes| *yes).await;
        drop(turn);
        drop(rest);
        let voters = &*self.voters;
        let unanswered = unasked(voters, &answers, Instant::now() < deadline);
        let mut decision = decide_release(&answers.named(voters, limit));
        if let ReleaseDecision::Unavailable { failures, .. } = &mut decision {
            drop_unasked(&mut failures.0, &unanswered);
        }
        tracing::debug!(resource = &*lock.resource, ?decision, "release round");
        match decision {
            ReleaseDecision::Released => Ok(true),
            ReleaseDecision::NotHeld => Ok(false),
            ReleaseDecision::Unavailable { answered, failures } => {
                Err(unavailable(voters.len(), answered, failures))
            }
        }
    }
}
