//! The fenced protocol round: the acquire round that reads counters, the commit round that
//! writes the token, and the release of a failed attempt's keys.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::config::Mode;
use crate::error::{LockError, NodeError};
use crate::flight::InFlight;
use crate::input::{Resource, Ttl};
use crate::lock::{Lock, LockToken};
use crate::node::with_deadline;
use crate::quorum::{
    AcquireDecision, AcquireVote, collect_failures, decide_acquire, drift, unavailable,
};
use crate::round::{Attempt, Round, spawn_release};
use crate::topology::{Voter, admit_votes};

use super::acked;
use super::decide::{CommitDecision, decide_commit, next_token, quorum_floor};
use super::{FencedReply, fence_key};

/// Releases an attempt's keys on every voter when dropped armed, as the plain acquire round
/// does: after a failed round, or when the caller drops the future between the rounds.
struct ReleaseOnDrop {
    resource: String,
    voters: Arc<[Voter]>,
    token: LockToken,
    /// How long each release is awaited: the TTL, so that it is always sent (a request
    /// dropped before it was written never is) and runs after a slow `SET` on its connection.
    patience: Duration,
    /// Counts the release for `LockManager::close`.
    flight: Arc<InFlight>,
    armed: bool,
}

impl ReleaseOnDrop {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let voters = self.voters.clone();
        let token = self.token.clone();
        let limit = self.patience;
        spawn_release(
            &self.flight,
            &self.resource,
            "a failed fenced attempt's keys",
            async move {
                join_all(
                    voters
                        .iter()
                        .map(|v| with_deadline(limit, v.node.release(&v.key, token.as_str()))),
                )
                .await;
            },
        );
    }
}

impl Round<'_> {
    /// Mark the topology stale as the other rounds do: after a redirect, or in cluster mode
    /// after any failed voter (a failover moves a slot to another address).
    fn note_fencing_failures<'e>(&self, mut errors: impl Iterator<Item = &'e NodeError>) {
        let stale = match self.mode {
            Mode::Cluster => errors.next().is_some(),
            _ => errors.any(|e| matches!(e, NodeError::Redirected(_))),
        };
        if stale {
            self.topology.mark_stale();
        }
    }

    /// One fenced acquire: the acquire round, then the commit round on the voters that
    /// granted (see the module docs). Keys of a failed or abandoned attempt are released on
    /// every voter in a spawned task.
    pub(crate) async fn acquire_fenced(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let (config, voters, ttl) = (self.config, &self.voters, ttl.get());
        // Connections open before the clock starts, each waited for no longer than the node
        // timeout (a hung voter must not cost a fenced acquire the connect timeout; its
        // connection goes on opening in the background for the next round).
        let connect_limit = config.node_timeout_value();
        let connected = join_all(
            voters
                .iter()
                .map(|v| with_deadline(connect_limit, v.node.connect())),
        )
        .await;
        // Only voters that may vote are asked: one vote per server (see `server::admit`).
        let connected = admit_votes(self.mode, config, voters, connected);
        let allowance = drift(ttl, config.drift_factor_value());
        let per_call = config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance));
        let counters: Vec<Vec<u8>> = voters
            .iter()
            .map(|v| fence_key(config.key_prefix_str(), &v.key))
            .collect();
        let token = LockToken::new();
        let cleanup = ReleaseOnDrop {
            resource: resource.as_str().to_string(),
            voters: voters.clone(),
            token: token.clone(),
            patience: ttl,
            flight: self.flight.clone(),
            armed: true,
        };
        let start = Instant::now();

        // Round 1: take the keys, read the counters.
        let replies = join_all(voters.iter().zip(&counters).zip(connected).map(
            |((voter, counter), connected)| {
                let token = &token;
                async move {
                    connected?;
                    with_deadline(
                        per_call,
                        acked::acquire_fenced(
                            &voter.node,
                            &voter.key,
                            counter,
                            token.as_str(),
                            ttl,
                            config,
                            per_call,
                        ),
                    )
                    .await
                }
            },
        ))
        .await;
        let votes: Vec<(String, AcquireVote)> = voters
            .iter()
            .zip(&replies)
            .map(|(voter, reply)| {
                let vote = match reply {
                    Ok(FencedReply::Granted { .. }) => AcquireVote::Granted,
                    Ok(FencedReply::Held(left)) => AcquireVote::Held(*left),
                    Err(error) => AcquireVote::Failed(error.clone()),
                };
                (voter.node.addr().to_string(), vote)
            })
            .collect();
        self.note_fencing_failures(replies.iter().filter_map(|r| r.as_ref().err()));
        let elapsed = start.elapsed();
        match decide_acquire(&votes, ttl, elapsed, allowance) {
            AcquireDecision::Acquired { .. } => {}
            AcquireDecision::Contended { retry_hint } => return Attempt::Contended(retry_hint),
            AcquireDecision::Expired => {
                return Attempt::Failed(LockError::ValidityExpired { elapsed, ttl });
            }
            AcquireDecision::Unavailable { answered, failures } => {
                return Attempt::Failed(unavailable(voters.len(), answered, failures));
            }
        }

        // Round 2: record t = max(1 + max(counters), max(times)) on the voters that granted.
        let granted: Vec<(usize, (u64, u64))> = replies
            .iter()
            .enumerate()
            .filter_map(|(i, reply)| match reply {
                Ok(FencedReply::Granted { counter, time }) => Some((i, (*counter, *time))),
                _ => None,
            })
            .collect();
        let Some(fencing_token) = next_token(granted.iter().map(|(_, grant)| *grant)) else {
            // Only a counter at u64::MAX gets here, which parsing refuses (it is far ahead of
            // any clock): no token can be greater.
            let full = NodeError::Protocol("the fencing counter is at u64::MAX".into());
            let names: Vec<String> = granted
                .iter()
                .map(|(i, _)| voters[*i].node.addr().to_string())
                .collect();
            return Attempt::Failed(unavailable(
                voters.len(),
                0,
                collect_failures(names.iter().map(|n| (n, &full))),
            ));
        };
        let retention = config.fencing_retention_value();
        let left = ttl.saturating_sub(allowance).saturating_sub(elapsed);
        let acks = join_all(granted.iter().map(|(i, _)| {
            let (voter, counter, token) = (&voters[*i], &counters[*i], &token);
            async move {
                let limit = per_call.min(left);
                let ack = with_deadline(
                    limit,
                    acked::fence_commit(
                        &voter.node,
                        &voter.key,
                        counter,
                        token.as_str(),
                        fencing_token,
                        retention,
                        config,
                        limit,
                    ),
                )
                .await;
                (voter.node.addr().to_string(), ack)
            }
        }))
        .await;
        let elapsed = start.elapsed();
        self.note_fencing_failures(acks.iter().filter_map(|(_, a)| a.as_ref().err()));
        let decision = decide_commit(&acks, voters.len(), ttl, elapsed, allowance);
        tracing::debug!(
            resource = resource.as_str(),
            fencing_token,
            ?elapsed,
            ?decision,
            "fenced acquire"
        );
        match decision {
            CommitDecision::Acquired { by, .. } => {
                cleanup.disarm();
                Attempt::Acquired(Lock {
                    resource: resource.as_str().into(),
                    token,
                    ttl,
                    deadline: start
                        .checked_add(ttl.saturating_sub(allowance))
                        .unwrap_or(start),
                    granted_by: self.topology.granted_by(by.iter().map(String::as_str)),
                    fencing_token: Some(fencing_token),
                    owner: 0,
                    late: None,
                })
            }
            CommitDecision::Expired => Attempt::Failed(LockError::ValidityExpired { elapsed, ttl }),
            CommitDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(voters.len(), answered, failures))
            }
        }
    }

    /// The value a quorum of voters guarantees every later token exceeds ([`quorum_floor`]
    /// of each voter's `max(counter, clock)`), for [`crate::LockInfo::fencing_token`]; `None`
    /// when fewer than a quorum answered.
    pub(crate) async fn fence_floor(&self) -> Option<u64> {
        let limit = self.config.node_timeout_value();
        let prefix = self.config.key_prefix_str();
        let reads = join_all(self.voters.iter().map(|v| async move {
            let counter = fence_key(prefix, &v.key);
            with_deadline(limit, v.node.read_fence(&counter)).await
        }))
        .await;
        let reads = admit_votes(self.mode, self.config, &self.voters, reads);
        self.note_fencing_failures(reads.iter().filter_map(|r| r.as_ref().err()));
        quorum_floor(reads.into_iter().flatten().collect(), self.voters.len())
    }
}
