//! The acquire round: a fresh token on every voter, decided as soon as a quorum granted or
//! no longer can. The plain acquire is this round alone; the fenced acquire (`fencing`) runs
//! it with its own script, then a commit round.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::quorum::{AcquireDecision, AcquireVote, decide_acquire, drift, unavailable};
use crate::error::LockError;
use crate::input::{Resource, Ttl};
use crate::lock::{LateVotes, Lock, LockToken};
use crate::node::AcquireReply;

use super::answers::{drop_unasked, unasked, which};
use super::cleanup::Rest;
use super::{Ask, Attempt, Round, Shared, Turn, Vote, may_have_written};

/// A reply to an acquire script, plain or fenced: a grant, or the key held by another.
pub(crate) trait Grant: Clone + Send + 'static {
    /// `None` when granted; otherwise the holder's remaining time (`None`: no expiry).
    fn held(&self) -> Option<Option<Duration>>;
}

impl Grant for AcquireReply {
    fn held(&self) -> Option<Option<Duration>> {
        match self {
            AcquireReply::Granted => None,
            AcquireReply::Held(left) => Some(*left),
        }
    }
}

/// A decided acquire round: the decision, and what is left of it.
pub(crate) struct Granted<T: Send + 'static> {
    pub(crate) decision: AcquireDecision,
    /// The counted grants, by voter index.
    pub(crate) grants: Vec<(usize, T)>,
    /// The voters whose key the round may have written (granted, or no clear answer).
    pub(crate) cleanup: Vec<usize>,
    /// The voters that had not answered at the decision (their calls are in `rest`).
    pub(crate) pending: Vec<usize>,
    /// The round's calls still in flight; releases every voter's key unless told otherwise.
    pub(crate) rest: Rest<T>,
    /// When the round started (before the first send) and how long it took to decide.
    pub(crate) start: Instant,
    pub(crate) elapsed: Duration,
}

/// The drift allowance of `ttl` and the deadline of each call of a round: the node timeout,
/// but never more than the validity the TTL can leave.
pub(crate) fn limits(config: &crate::LockConfig, ttl: Duration) -> (Duration, Duration) {
    let allowance = drift(ttl, config.drift_factor_value());
    let limit = config
        .node_timeout_value()
        .min(ttl.saturating_sub(allowance));
    (allowance, limit)
}

impl Round<'_> {
    /// The acquire round of `vote` (a script that takes the key under `shared`'s token),
    /// decided as soon as a quorum granted (validity measured then) or no longer can. Its
    /// [`Rest`] releases every voter's key when dropped as it is (a cancelled caller
    /// included); the caller narrows that once it knows the outcome.
    pub(crate) async fn grant_round<T: Grant>(
        &self,
        turn: &Turn,
        shared: &Arc<Shared>,
        ttl: Duration,
        vote: &Vote<T>,
    ) -> Granted<T> {
        let (allowance, limit) = limits(self.config, ttl);
        let start = Instant::now();
        let ask = Ask {
            shared,
            targets: None,
            deadline: start + limit,
            patience: ttl,
            release_on_cancel: true,
            early: true,
        };
        let (answers, rest) = self.ask(turn, ask, vote, |r| r.held().is_none()).await;
        let elapsed = start.elapsed();
        let voters = &*self.voters;
        let grants = (0..voters.len())
            .filter(|i| answers.counted(*i, |r| r.held().is_none()))
            .filter_map(|i| match answers.answers.get(i) {
                Some(Some(Ok(reply))) => Some((i, reply.clone())),
                _ => None,
            })
            .collect();
        let cleanup = which(&answers.answers, |a| {
            matches!(a, Some(Ok(r)) if r.held().is_none()) || may_have_written(a)
        });
        let pending = which(&answers.answers, Option::is_none);
        let unanswered = unasked(voters, &answers, Instant::now() < start + limit);
        let votes: Vec<(&str, AcquireVote)> = answers
            .named(voters, limit)
            .into_iter()
            .map(|(node, answer)| {
                let vote = match answer.map(|r| r.held()) {
                    Ok(None) => AcquireVote::Granted,
                    Ok(Some(left)) => AcquireVote::Held(left),
                    Err(error) => AcquireVote::Failed(error),
                };
                (node, vote)
            })
            .collect();
        let mut decision = decide_acquire(&votes, ttl, elapsed, allowance);
        if let AcquireDecision::Unavailable { failures, .. } = &mut decision {
            drop_unasked(&mut failures.0, &unanswered);
        }
        Granted {
            decision,
            grants,
            cleanup,
            pending,
            rest,
            start,
            elapsed,
        }
    }

    /// The lock a won acquire round made.
    pub(crate) fn granted_lock(
        &self,
        resource: Resource<'_>,
        shared: &Shared,
        ttl: Duration,
        start: Instant,
        by: impl Iterator<Item = usize> + Clone,
    ) -> Lock {
        let allowance = drift(ttl, self.config.drift_factor_value());
        Lock {
            resource: resource.as_str().into(),
            token: shared.token.clone(),
            ttl,
            deadline: start
                .checked_add(ttl.saturating_sub(allowance))
                .unwrap_or(start),
            granted_by: self
                .topology
                .granted_by(by.filter_map(|i| self.voters.get(i)).map(|v| v.node.addr())),
            fencing_token: None,
            owner: 0,
            late: None,
        }
    }

    /// The attempt a lost or spent acquire decision makes.
    pub(crate) fn not_acquired(
        &self,
        decision: AcquireDecision,
        elapsed: Duration,
        ttl: Duration,
    ) -> Attempt {
        match decision {
            AcquireDecision::Contended { retry_hint } => Attempt::Contended(retry_hint),
            AcquireDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(self.voters.len(), answered, failures))
            }
            AcquireDecision::Acquired { .. } | AcquireDecision::Expired => {
                Attempt::Failed(LockError::ValidityExpired { elapsed, ttl })
            }
        }
    }

    /// One plain acquire round under a fresh token (acknowledged by replicas when configured,
    /// see `acks`). What is left at the decision goes to a background task (see [`Rest`]): a
    /// won round's slower votes, or the release of a failed round's keys wherever they may
    /// have been written; a cancelled caller's [`Rest`] releases every key the round may have
    /// written.
    pub(crate) async fn acquire(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let ttl = ttl.get();
        let (_, limit) = limits(self.config, ttl);
        let turn = self.turn().await;
        let shared = self.shared(LockToken::new());
        let vote: &Vote<AcquireReply> = &move |shared: Arc<Shared>, i| {
            Box::pin(async move { super::votes::acquire(&shared, i, ttl, limit).await })
        };
        let round = self.grant_round(&turn, &shared, ttl, vote).await;
        drop(turn);
        let Granted {
            decision,
            grants,
            cleanup,
            mut rest,
            start,
            elapsed,
            ..
        } = round;
        tracing::debug!(
            resource = resource.as_str(),
            votes = grants.len(),
            voters = self.voters.len(),
            ?elapsed,
            ?decision,
            "acquire round"
        );
        // A won round's slower votes go on, each sent as soon as its connection is open: a
        // late grant belongs to the lock (`LateVotes`: listed in `granted_by`, or deleted
        // when it lands after the lock's release). A failed round's calls are dropped before
        // the release is queued behind them: a request not yet written is never sent, and
        // one already written runs before the release on the same connection.
        if !matches!(decision, AcquireDecision::Acquired { .. }) {
            rest.release = Some(cleanup);
            return self.not_acquired(decision, elapsed, ttl);
        }
        let late = if rest.calls.is_empty() {
            rest.release = None;
            None
        } else {
            // The names of all the round's voters, shared between locks: the late grants
            // are bits over it.
            let voters = self
                .topology
                .granted_by(self.voters.iter().map(|v| v.node.addr()));
            let late = Arc::new(LateVotes::new(voters));
            rest.late_grants(late.clone());
            Some(late)
        };
        drop(rest);
        let mut lock = self.granted_lock(resource, &shared, ttl, start, grants.iter().map(|g| g.0));
        lock.late = late;
        Attempt::Acquired(lock)
    }
}
