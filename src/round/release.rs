//! The release round (compare-and-delete), whose deletes still in flight are awaited in the
//! background.

use std::sync::Arc;

use tokio::time::Instant;

use crate::error::{LockError, NodeError};
use crate::lock::Lock;
use crate::quorum::{ReleaseDecision, decide_release, unavailable};

use super::answers::{Answers, Call, drop_unasked, failure_signs, gather, unasked};
use super::cleanup::Rest;
use super::{Round, Shared};

impl Round<'_> {
    /// One release round (compare-and-delete); `true` when a quorum still held the lock. It
    /// returns as soon as that is known; the deletes still in flight are awaited in the
    /// background (never dropped: a dropped request may never be sent), also when the caller
    /// is cancelled.
    pub(crate) async fn release(&self, lock: &Lock) -> Result<bool, LockError> {
        let permit = self.flight.permit().await;
        let limit = self.config.node_timeout_value();
        let deadline = Instant::now() + limit;
        let shared = Arc::new(Shared {
            voters: self.voters.clone(),
            token: lock.token.clone(),
            config: self.config.clone(),
        });
        let calls = (0..shared.voters.len())
            .map(|i| {
                let shared = shared.clone();
                Box::pin(async move {
                    let Some(voter) = shared.voters.get(i) else {
                        return (i, Err(NodeError::Protocol("no such voter".into())));
                    };
                    let answer = voter.node.release(&voter.key, shared.token.as_str()).await;
                    (i, answer)
                }) as Call<'static, bool>
            })
            .collect();
        // The deletes still in flight are awaited until the lock's TTL (after it the keys
        // are gone anyway), whenever the caller stops waiting.
        let mut rest = Rest {
            calls,
            release: None,
            shared,
            patience: lock.ttl,
            flight: self.flight.clone(),
        };
        let mut answers = Answers::new(self.voters.len(), self.rule());
        gather(
            &self.voters,
            &mut rest.calls,
            &mut answers,
            deadline,
            |yes| *yes,
        )
        .await;
        drop(permit);
        drop(rest);
        let voters = &*self.voters;
        let (failures_seen, redirected) = failure_signs(answers.answers.iter().flatten());
        let unanswered = unasked(voters, &answers, Instant::now() < deadline);
        let mut decision = decide_release(&answers.named(voters, limit));
        if let ReleaseDecision::Unavailable { failures, .. } = &mut decision {
            drop_unasked(&mut failures.0, &unanswered);
        }
        self.note_failures(failures_seen, redirected);
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
