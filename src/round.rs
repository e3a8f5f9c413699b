//! Round mechanics: one script sent to every voter of a resource in parallel, each call under a
//! deadline, decided by the pure functions of `quorum`; and the release of a failed or
//! abandoned round's keys in a spawned task, which no cancelled caller can stop.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::acks;
use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::input::{Resource, Ttl};
use crate::lock::{Lock, LockInfo, LockToken, NodeLockState};
use crate::node::{AcquireReply, KeyState, with_deadline};
use crate::quorum::{
    AcquireDecision, AcquireVote, ExtendDecision, InfoDecision, ReleaseDecision, collect_failures,
    decide_acquire, decide_extend, decide_info, decide_release, drift, quorum, unavailable,
};
use crate::topology::{Voter, admit_votes, voters_share_master};
use crate::topology_cache::TopologyCache;

/// The outcome of one acquire round.
pub(crate) enum Attempt {
    /// A quorum granted, with validity left.
    Acquired(Lock),
    /// Others hold the resource; when enough of their keys should have expired, if known.
    Contended(Option<Duration>),
    /// Too few voters answered, or the round took too long.
    Failed(LockError),
}

/// The voters of one resource for one round, and where to report signs that the topology is
/// out of date.
pub(crate) struct Round<'a> {
    pub(crate) voters: Vec<Voter>,
    pub(crate) mode: Mode,
    pub(crate) config: &'a LockConfig,
    pub(crate) topology: &'a TopologyCache,
}

impl Round<'_> {
    /// Mark the topology stale after a redirect (MOVED/ASK) or, in cluster mode, any lost
    /// voter: a failover gives the slot a master at another address.
    fn note_failures<'e>(&self, mut errors: impl Iterator<Item = &'e NodeError>) {
        let stale = match self.mode {
            Mode::Cluster => errors.next().is_some(),
            _ => errors.any(|e| matches!(e, NodeError::Redirected(_))),
        };
        if stale {
            self.topology.mark_stale();
        }
    }

    /// The bound of one vote: the node timeout, but never more than the validity a TTL can
    /// leave.
    fn per_call(&self, ttl: Duration, allowance: Duration) -> Duration {
        self.config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance))
    }

    /// One acquire round under a fresh token. Keys written by a failed round, or by a round
    /// whose future is dropped mid-flight, are released on every voter in a spawned task.
    pub(crate) async fn acquire(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let (config, voters, ttl) = (self.config, &self.voters, ttl.get());
        let connect_limit = config.connect_timeout_value();
        // Open connections before the clock starts: connecting is not part of the vote.
        let connected = join_all(
            voters
                .iter()
                .map(|v| with_deadline(connect_limit, v.node.connect())),
        )
        .await;
        // Only voters that may vote are asked: one vote per server (see `server::admit`).
        let connected = admit_votes(self.mode, config, voters, connected);

        let allowance = drift(ttl, config.drift_factor_value());
        let per_call = self.per_call(ttl, allowance);
        let token = LockToken::new();
        let cleanup = Cleanup {
            resource,
            voters: voters.clone(),
            token: token.clone(),
            node_timeout: config.node_timeout_value(),
            armed: true,
        };
        let start = Instant::now();
        let votes = join_all(voters.iter().zip(connected).map(|(voter, connected)| {
            let token = &token;
            async move {
                let vote = match connected {
                    Err(error) => AcquireVote::Failed(error),
                    Ok(()) => match with_deadline(
                        per_call,
                        acks::acquire(
                            &voter.node,
                            &voter.key,
                            token.as_str(),
                            ttl,
                            config,
                            per_call,
                        ),
                    )
                    .await
                    {
                        Ok(AcquireReply::Granted) => AcquireVote::Granted,
                        Ok(AcquireReply::Held(left)) => AcquireVote::Held(left),
                        Err(error) => AcquireVote::Failed(error),
                    },
                };
                (voter.node.addr().to_string(), vote)
            }
        }))
        .await;
        let elapsed = start.elapsed();
        self.note_failures(votes.iter().filter_map(|(_, v)| match v {
            AcquireVote::Failed(e) => Some(e),
            _ => None,
        }));
        let decision = decide_acquire(&votes, ttl, elapsed, allowance);
        let granted_by: Vec<String> = votes
            .iter()
            .filter(|(_, v)| *v == AcquireVote::Granted)
            .map(|(node, _)| node.clone())
            .collect();
        tracing::debug!(
            resource = resource.as_str(),
            votes = granted_by.len(),
            voters = voters.len(),
            ?elapsed,
            ?decision,
            "acquire round"
        );
        match decision {
            AcquireDecision::Acquired { .. } => {
                cleanup.disarm();
                let deadline = start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(start);
                Attempt::Acquired(Lock {
                    resource: resource.as_str().to_string(),
                    token,
                    ttl,
                    deadline,
                    granted_by,
                    fencing_token: None,
                })
            }
            AcquireDecision::Contended { retry_hint } => Attempt::Contended(retry_hint),
            AcquireDecision::Expired => {
                Attempt::Failed(LockError::ValidityExpired { elapsed, ttl })
            }
            AcquireDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(voters.len(), answered, failures))
            }
        }
    }

    /// One extend round (compare-and-`PEXPIRE`); on success the lock's deadline becomes
    /// `start + ttl - drift`. A refused or failed extend changes nothing and deletes nothing.
    pub(crate) async fn extend(&self, lock: &mut Lock, ttl: Ttl) -> Result<bool, LockError> {
        let (voters, ttl) = (&self.voters, ttl.get());
        let allowance = drift(ttl, self.config.drift_factor_value());
        let per_call = self.per_call(ttl, allowance);
        let start = Instant::now();
        let results = join_all(voters.iter().map(|v| {
            let extend = acks::extend(
                &v.node,
                &v.key,
                lock.token.as_str(),
                ttl,
                self.config,
                per_call,
            );
            with_deadline(per_call, extend)
        }))
        .await;
        let results = admit_votes(self.mode, self.config, voters, results);
        let elapsed = start.elapsed();
        let answers = named(voters, results);
        self.note_failures(answers.iter().filter_map(|(_, r)| r.as_ref().err()));
        let decision = decide_extend(&answers, ttl, elapsed, allowance, lock.is_valid());
        tracing::debug!(
            resource = lock.resource,
            ?elapsed,
            ?decision,
            "extend round"
        );
        match decision {
            ExtendDecision::Extended { by } => {
                lock.deadline = start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(lock.deadline);
                lock.ttl = ttl;
                lock.granted_by = by;
                Ok(true)
            }
            ExtendDecision::Refused => Ok(false),
            ExtendDecision::Unavailable { answered, failures } => {
                Err(unavailable(voters.len(), answered, failures))
            }
        }
    }

    /// One release round (compare-and-delete); `true` when a quorum still held the lock.
    pub(crate) async fn release(&self, lock: &Lock) -> Result<bool, LockError> {
        let results = release_on(&self.voters, &lock.token, self.config.node_timeout_value()).await;
        let results = admit_votes(self.mode, self.config, &self.voters, results);
        let answers = named(&self.voters, results);
        self.note_failures(answers.iter().filter_map(|(_, r)| r.as_ref().err()));
        let decision = decide_release(&answers);
        tracing::debug!(resource = lock.resource, ?decision, "release round");
        match decision {
            ReleaseDecision::Released => Ok(true),
            ReleaseDecision::NotHeld => Ok(false),
            ReleaseDecision::Unavailable { answered, failures } => {
                Err(unavailable(self.voters.len(), answered, failures))
            }
        }
    }

    /// One info round: every voter's token and remaining time, decided by quorum.
    pub(crate) async fn inspect(
        &self,
        resource: Resource<'_>,
        token: Option<&LockToken>,
    ) -> Result<LockInfo, LockError> {
        let voters = &self.voters;
        let limit = self.config.node_timeout_value();
        let results: Vec<Result<KeyState, NodeError>> = join_all(
            voters
                .iter()
                .map(|v| with_deadline(limit, v.node.inspect(&v.key))),
        )
        .await;
        let results = admit_votes(self.mode, self.config, voters, results);
        let answers: Vec<Option<KeyState>> =
            results.iter().map(|r| r.as_ref().ok().cloned()).collect();
        let nodes: Vec<NodeLockState> = voters
            .iter()
            .zip(&results)
            .map(|(voter, result)| {
                let (holder, remaining, error) = match result {
                    Ok((holder, remaining)) => (holder.clone(), *remaining, None),
                    Err(error) => (None, None, Some(error.clone())),
                };
                NodeLockState {
                    node: voter.node.addr().to_string(),
                    key: String::from_utf8_lossy(&voter.key).into_owned(),
                    holder,
                    remaining,
                    error,
                }
            })
            .collect();
        self.note_failures(nodes.iter().filter_map(|n| n.error.as_ref()));
        let (locked, holder, remaining) =
            match decide_info(&answers, self.config.drift_factor_value()) {
                InfoDecision::Locked { token, remaining } => (true, Some(token), remaining),
                InfoDecision::Free => (false, None, None),
                InfoDecision::Unknown => {
                    return Err(unavailable(
                        voters.len(),
                        answers.iter().flatten().count(),
                        collect_failures(
                            nodes
                                .iter()
                                .filter_map(|n| n.error.as_ref().map(|e| (&n.node, e))),
                        ),
                    ));
                }
            };
        Ok(LockInfo {
            resource: resource.as_str().to_string(),
            locked,
            held_by_caller: token.is_some_and(|t| holder.as_deref() == Some(t.as_str())),
            holder,
            remaining,
            quorum: quorum(voters.len()),
            mode: self.mode,
            voters_share_master: voters_share_master(voters),
            nodes,
            fencing_token: None,
        })
    }
}

/// Each voter's answer with the voter's address, in voter order.
fn named<T>(voters: &[Voter], results: Vec<T>) -> Vec<(String, T)> {
    voters
        .iter()
        .map(|v| v.node.addr().to_string())
        .zip(results)
        .collect()
}

/// Run the release script on every voter, each under the node timeout.
async fn release_on(
    voters: &[Voter],
    token: &LockToken,
    node_timeout: Duration,
) -> Vec<Result<bool, NodeError>> {
    join_all(
        voters
            .iter()
            .map(|v| with_deadline(node_timeout, v.node.release(&v.key, token.as_str()))),
    )
    .await
}

/// Start `release` in a task on the current tokio runtime and return at once: a synchronous
/// `Drop` can start it without blocking (never `block_on`), and a cancelled caller cannot
/// cancel it. Without a runtime nothing runs and the keys expire with their TTL; `what` names
/// them in the debug log.
pub(crate) fn spawn_release(
    resource: &str,
    what: &str,
    release: impl Future<Output = ()> + Send + 'static,
) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(release);
        }
        Err(_) => tracing::debug!(
            resource,
            "no tokio runtime to release {what}; the keys expire with their TTL"
        ),
    }
}

/// Releases a round's keys on every voter when dropped armed: after a failed round, and when
/// the caller drops the acquire future mid-flight. Every voter is included, even those that
/// timed out: their write may still land.
struct Cleanup<'a> {
    resource: Resource<'a>,
    voters: Vec<Voter>,
    token: LockToken,
    node_timeout: Duration,
    armed: bool,
}

impl Cleanup<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let voters = std::mem::take(&mut self.voters);
        let token = self.token.clone();
        let node_timeout = self.node_timeout;
        spawn_release(
            self.resource.as_str(),
            "a failed attempt's keys",
            async move {
                release_on(&voters, &token, node_timeout).await;
            },
        );
    }
}
