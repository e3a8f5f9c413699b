//! The fenced acquire on the round engine: the acquire round that reads counters, then the
//! commit round that writes the token to the voters that granted, both under one turn of the
//! manager's bound on rounds in flight, each decided as soon as its outcome is known.

use std::sync::Arc;

use tokio::time::Instant;

use crate::engine::quorum::{AcquireDecision, collect_failures, unavailable};
use crate::engine::round::votes::no_voter;
use crate::engine::round::{Ask, Attempt, Grant, Granted, Round, Shared, Vote};
use crate::error::NodeError;
use crate::input::{Resource, Ttl};
use crate::lock::LockToken;

use super::acked;
use super::decide::{CommitDecision, decide_commit, next_token, quorum_floor};
use super::fence_key;
use crate::node::FencedReply;

impl Grant for FencedReply {
    fn held(&self) -> Option<Option<std::time::Duration>> {
        match self {
            FencedReply::Granted { .. } => None,
            FencedReply::Held(left) => Some(*left),
        }
    }
}

impl Round<'_> {
    /// One fenced acquire: the acquire round, then the commit round on the voters that
    /// granted (see the module docs), under one turn. Keys of a failed or abandoned attempt
    /// are released on every voter in the background; a round-1 vote still in flight at the
    /// decision is not part of the commit, so its key is released too.
    pub(crate) async fn acquire_fenced(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let ttl = ttl.get();
        let (allowance, limit) = crate::engine::round::limits(self.config, ttl);
        let turn = self.turn().await;
        let shared = self.shared(LockToken::new());

        // Round 1: take the keys, read the counters.
        let vote: &Vote<FencedReply> = &move |shared: Arc<Shared>, i| {
            Box::pin(async move {
                let voter = shared.voters.get(i).ok_or_else(no_voter)?;
                let counter = fence_key(shared.config.key_prefix_str(), &voter.key);
                let token = shared.token.as_str();
                acked::acquire_fenced(voter, &counter, token, ttl, &shared.config, limit).await
            })
        };
        let Granted {
            decision,
            grants,
            cleanup,
            pending,
            mut rest,
            start,
            elapsed,
        } = self.grant_round(&turn, &shared, ttl, vote).await;
        if !matches!(decision, AcquireDecision::Acquired { .. }) {
            rest.release = Some(cleanup);
            return self.not_acquired(decision, elapsed, ttl);
        }
        // The voters still to answer are sent the commit too, behind their acquire on the same
        // connection, so that a late grant holds the counter like the others (it does not
        // count: its counter was not read). Their acquires are awaited, never dropped; the
        // keys of voters that failed without a clear answer are released.
        let granters: Vec<usize> = grants.iter().map(|(i, _)| *i).collect();
        let failed = cleanup
            .into_iter()
            .filter(|i| !granters.contains(i) && !pending.contains(i))
            .collect();
        self.release_later(&shared, failed, ttl);
        rest.release = None;
        drop(rest);
        let targets: Vec<usize> = granters.iter().chain(&pending).copied().collect();

        // Round 2: record t = max(1 + max(counters), max(times)) on the voters that granted.
        let times = grants.iter().filter_map(|(_, reply)| match reply {
            FencedReply::Granted { counter, time } => Some((*counter, *time)),
            FencedReply::Held(_) => None,
        });
        let Some(fencing_token) = next_token(times) else {
            // Only a counter at u64::MAX gets here, which parsing refuses (it is far ahead of
            // any clock): no token can be greater.
            self.release_later(&shared, (0..self.voters.len()).collect(), ttl);
            let full = NodeError::Protocol("the fencing counter is at u64::MAX".into());
            let names: Vec<String> = granters
                .iter()
                .filter_map(|i| self.voters.get(*i))
                .map(|v| v.node.addr().to_string())
                .collect();
            let failures = collect_failures(names.iter().map(|n| (n, &full)));
            return Attempt::Failed(unavailable(self.voters.len(), 0, failures));
        };
        let retention = self.config.fencing_retention_value();
        let limit = limit.min(ttl.saturating_sub(allowance).saturating_sub(elapsed));
        let counted = granters.clone();
        let commit: &Vote<bool> = &move |shared: Arc<Shared>, i| {
            // Only a round-1 granter's acknowledgement counts.
            let counts = counted.contains(&i);
            Box::pin(async move {
                let voter = shared.voters.get(i).ok_or_else(no_voter)?;
                let counter = fence_key(shared.config.key_prefix_str(), &voter.key);
                let token = shared.token.as_str();
                let config = &shared.config;
                let fence = (fencing_token, retention);
                acked::fence_commit(voter, &counter, token, fence, config, limit)
                    .await
                    .map(|ack| ack && counts)
            })
        };
        // Until the decision, a cancelled caller's rest releases every voter's key.
        let ask = Ask {
            shared: &shared,
            targets: Some(&targets),
            deadline: Instant::now() + limit,
            patience: ttl,
            release_on_cancel: true,
            early: true,
        };
        let (answers, mut rest) = self.ask(&turn, ask, commit, |ok| *ok).await;
        let elapsed = start.elapsed();
        drop(turn);
        let acks: Vec<(String, Result<bool, NodeError>)> = answers
            .named(&self.voters, limit)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| granters.contains(i))
            .map(|(_, (node, ack))| (node.to_string(), ack))
            .collect();
        let decision = decide_commit(&acks, self.voters.len(), ttl, elapsed, allowance);
        tracing::debug!(
            resource = resource.as_str(),
            fencing_token,
            ?elapsed,
            ?decision,
            "fenced acquire"
        );
        match decision {
            CommitDecision::Acquired { by, .. } => {
                // A late commit is harmless (counters only grow): awaited, not released.
                rest.release = None;
                drop(rest);
                let by = by.iter().filter_map(|name| {
                    self.voters
                        .iter()
                        .position(|v| v.node.addr() == name.as_str())
                });
                let mut lock = self.granted_lock(resource, &shared, ttl, start, by);
                lock.fencing_token = Some(fencing_token);
                Attempt::Acquired(lock)
            }
            CommitDecision::Expired => self.not_acquired(AcquireDecision::Expired, elapsed, ttl),
            CommitDecision::Unavailable { answered, failures } => {
                let decision = AcquireDecision::Unavailable { answered, failures };
                self.not_acquired(decision, elapsed, ttl)
            }
        }
    }

    /// The value a quorum of voters guarantees every later token exceeds ([`quorum_floor`]
    /// of each voter's `max(counter, clock)`), for [`crate::LockInfo::fencing_token`]; `None`
    /// when fewer than a quorum answered.
    pub(crate) async fn fence_floor(&self) -> Option<u64> {
        let vote: &Vote<u64> = &|shared: Arc<Shared>, i| {
            Box::pin(async move {
                let voter = shared.voters.get(i).ok_or_else(no_voter)?;
                let counter = fence_key(shared.config.key_prefix_str(), &voter.key);
                acked::read_fence(voter, &counter).await
            })
        };
        let reads = self.read_all(vote).await;
        let values = reads.into_iter().filter_map(|(_, r)| r.ok()).collect();
        quorum_floor(values, self.voters.len())
    }
}
