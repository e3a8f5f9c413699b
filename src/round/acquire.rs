//! The acquire round: a fresh token on every voter, decided as soon as a quorum granted or
//! no longer can.

use std::sync::Arc;

use tokio::time::Instant;

use crate::acks;
use crate::error::{LockError, NodeError};
use crate::input::{Resource, Ttl};
use crate::lock::{LateVotes, Lock, LockToken};
use crate::node::AcquireReply;
use crate::quorum::{AcquireDecision, AcquireVote, decide_acquire, drift, unavailable};

use super::answers::{Answers, Call, drop_unasked, failure_signs, gather, unasked, which};
use super::cleanup::Rest;
use super::{Attempt, Round, Shared, may_have_written, on_connection};

impl Round<'_> {
    /// One acquire round under a fresh token, decided in the caller's task as soon as a
    /// quorum granted (validity measured then) or a quorum no longer can. What is left then
    /// goes to a background task (see [`Rest`]): a won round's slower votes, or the release
    /// of a failed round's keys wherever they may have been written; a cancelled caller's
    /// [`Rest`] releases every key the round may have written.
    pub(crate) async fn acquire(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let ttl = ttl.get();
        let allowance = drift(ttl, self.config.drift_factor_value());
        let limit = self.per_call(ttl, allowance);
        // Queueing for a turn happens before the clock starts: it never eats validity.
        let permit = self.flight.permit().await;
        let shared = Arc::new(Shared {
            voters: self.voters.clone(),
            token: LockToken::new(),
            config: self.config.clone(),
        });
        let start = Instant::now();
        let calls = (0..shared.voters.len())
            .map(|i| {
                let shared = shared.clone();
                Box::pin(async move {
                    let Some(voter) = shared.voters.get(i) else {
                        return (i, Err(NodeError::Protocol("no such voter".into())));
                    };
                    // Acknowledged by replicas when configured (see `acks`).
                    let vote = acks::acquire(
                        &voter.node,
                        &voter.key,
                        shared.token.as_str(),
                        ttl,
                        &shared.config,
                        limit,
                    );
                    (i, on_connection(voter, vote).await)
                }) as Call<'static, AcquireReply>
            })
            .collect();
        // Until the decision, a cancelled caller's `Rest` releases the keys on every voter.
        let mut rest = Rest {
            calls,
            release: Some((0..self.voters.len()).collect()),
            shared: shared.clone(),
            patience: ttl,
            flight: self.flight.clone(),
        };
        let mut answers = Answers::new(self.voters.len(), self.rule());
        gather(
            &self.voters,
            &mut rest.calls,
            &mut answers,
            start + limit,
            |reply| *reply == AcquireReply::Granted,
        )
        .await;
        let elapsed = start.elapsed();
        drop(permit);
        let voters = &*self.voters;
        let (failures_seen, redirected) = failure_signs(answers.answers.iter().flatten());
        let granted: Vec<usize> = (0..voters.len())
            .filter(|i| answers.counted(*i, |r| *r == AcquireReply::Granted))
            .collect();
        let cleanup = which(&answers.answers, |a| {
            matches!(a, Some(Ok(AcquireReply::Granted))) || may_have_written(a)
        });
        let answers_pending = unasked(voters, &answers, Instant::now() < start + limit);
        let votes: Vec<(&str, AcquireVote)> = answers
            .named(voters, limit)
            .into_iter()
            .map(|(node, answer)| {
                let vote = match answer {
                    Ok(AcquireReply::Granted) => AcquireVote::Granted,
                    Ok(AcquireReply::Held(left)) => AcquireVote::Held(left),
                    Err(error) => AcquireVote::Failed(error),
                };
                (node, vote)
            })
            .collect();
        let mut decision = decide_acquire(&votes, ttl, elapsed, allowance);
        if let AcquireDecision::Unavailable { failures, .. } = &mut decision {
            drop_unasked(&mut failures.0, &answers_pending);
        }
        drop(votes);
        // A won round's slower votes go on, each sent as soon as its connection is open: a
        // late grant belongs to the lock (`LateVotes`: listed in `granted_by`, or deleted
        // when it lands after the lock's release). A failed round's calls are dropped before
        // the release is queued behind them: a request not yet written is never sent, and
        // one already written runs before the release on the same connection.
        let late = match decision {
            AcquireDecision::Acquired { .. } if !rest.calls.is_empty() => {
                let late = Arc::new(LateVotes::default());
                rest.late_grants(late.clone());
                Some(late)
            }
            AcquireDecision::Acquired { .. } => {
                rest.release = None;
                None
            }
            _ => {
                rest.release = Some(cleanup);
                None
            }
        };
        drop(rest);
        self.note_failures(failures_seen, redirected);
        tracing::debug!(
            resource = resource.as_str(),
            votes = granted.len(),
            voters = voters.len(),
            ?elapsed,
            ?decision,
            "acquire round"
        );
        match decision {
            AcquireDecision::Acquired { .. } => Attempt::Acquired(Lock {
                resource: resource.as_str().into(),
                token: shared.token.clone(),
                ttl,
                deadline: start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(start),
                granted_by: self.topology.granted_by(
                    granted
                        .iter()
                        .filter_map(|i| voters.get(*i))
                        .map(|v| v.node.addr()),
                ),
                fencing_token: None,
                owner: 0,
                late,
            }),
            AcquireDecision::Contended { retry_hint } => Attempt::Contended(retry_hint),
            AcquireDecision::Expired => {
                Attempt::Failed(LockError::ValidityExpired { elapsed, ttl })
            }
            AcquireDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(voters.len(), answered, failures))
            }
        }
    }
}
