//! Round mechanics: one script sent to every voter of a resource at once, decided by the
//! pure functions of `quorum` as soon as the answers still missing cannot change the outcome,
//! under one deadline per round; and the rest of the round (slower answers, the release of a
//! failed or abandoned round's keys) in a background task that no cancelled caller can stop.
//!
//! Each round runs in a task of its own ([`InFlight::spawn`]): the caller gets the decision
//! over a oneshot channel the moment it is known, and the task goes on with what is left.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::future::{BoxFuture, join_all, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::acks;
use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::flight::InFlight;
use crate::input::{Resource, Ttl};
use crate::lock::{Lock, LockInfo, LockToken, NodeLockState};
use crate::node::{AcquireReply, KeyState, with_deadline};
use crate::quorum::{
    AcquireDecision, AcquireVote, Count, ExtendDecision, InfoDecision, ReleaseDecision,
    collect_failures, decide_acquire, decide_extend, decide_info, decide_release, drift, quorum,
    unavailable,
};
use crate::server::{ServerFacts, admit_one, refusal};
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
    /// Shared with the round's task; never copied per round.
    pub(crate) voters: Arc<[Voter]>,
    pub(crate) mode: Mode,
    pub(crate) config: &'a Arc<LockConfig>,
    pub(crate) topology: &'a TopologyCache,
    pub(crate) flight: &'a Arc<InFlight>,
}

/// Who may vote in a round: the voting rule of `server::admit` (one vote per server, no
/// cluster node in independent mode, no evicting server when refused), applied to each answer
/// as it arrives.
#[derive(Debug, Clone)]
struct Rule {
    mode: Mode,
    config: Arc<LockConfig>,
}

/// The answers of one round, by voter index; `None` until a voter answered.
struct Answers<T> {
    /// What each voter answered (a refused voter's answer included: it may have written).
    answers: Vec<Option<Result<T, NodeError>>>,
    /// Why a voter's answer does not count, when it does not.
    refused: Vec<Option<NodeError>>,
    /// The facts of the voters whose answers counted so far (shared, not copied).
    admitted: Vec<Arc<ServerFacts>>,
    rule: Rule,
    count: Count,
}

impl<T> Answers<T> {
    fn new(voters: usize, rule: Rule) -> Self {
        Answers {
            answers: (0..voters).map(|_| None).collect(),
            refused: (0..voters).map(|_| None).collect(),
            admitted: Vec::new(),
            rule,
            count: Count::new(voters),
        }
    }

    /// Record voter `i`'s answer; `yes` tells a yes from a no. An answer from a voter that
    /// may not vote counts as failed (with the reason).
    fn record(&mut self, voter: &Voter, i: usize, answer: Result<T, NodeError>, yes: bool) {
        let verdict = match &answer {
            Err(_) => None,
            Ok(_) => {
                let facts = voter.node.facts();
                let verdict = admit_one(
                    self.rule.mode,
                    &self.rule.config,
                    self.admitted.iter().map(|f| &**f),
                    facts.as_deref(),
                    Instant::now(),
                );
                if let (None, Some(facts)) = (&verdict, facts) {
                    self.admitted.push(facts);
                }
                verdict
            }
        };
        self.count.record(match (&answer, &verdict) {
            (Ok(_), None) => Some(yes),
            _ => None,
        });
        if let Some(slot) = self.refused.get_mut(i) {
            *slot = verdict;
        }
        if let Some(slot) = self.answers.get_mut(i) {
            *slot = Some(answer);
        }
    }

    /// Whether voter `i`'s answer counted and `pick` likes it.
    fn counted(&self, i: usize, pick: impl Fn(&T) -> bool) -> bool {
        matches!(self.answers.get(i), Some(Some(Ok(value))) if pick(value))
            && matches!(self.refused.get(i), Some(None))
    }

    /// The answers in voter order with the voters' addresses, as the decision functions see
    /// them: a voter that did not answer in time counts as timed out after `limit`, a refused
    /// one as failed with the reason, and a failed one from a server that may never vote here
    /// reports that reason (it says what to change).
    fn named(self, voters: &[Voter], limit: Duration) -> Vec<(&str, Result<T, NodeError>)> {
        let rule = self.rule.clone();
        voters
            .iter()
            .zip(self.answers.into_iter().zip(self.refused))
            .map(|(voter, (answer, refused))| {
                let answer = match (answer, refused) {
                    (_, Some(reason)) => Err(reason),
                    (None, None) => Err(NodeError::Timeout(limit)),
                    (Some(Ok(value)), None) => Ok(value),
                    (Some(Err(error)), None) => Err(voter
                        .node
                        .facts()
                        .and_then(|f| refusal(rule.mode, &rule.config, &f))
                        .unwrap_or(error)),
                };
                (voter.node.addr(), answer)
            })
            .collect()
    }
}

type Call<'v, T> = BoxFuture<'v, (usize, Result<T, NodeError>)>;

/// Send `call` to every voter at once.
fn send<'v, T: 'v>(
    voters: &'v [Voter],
    call: impl Fn(&'v Voter) -> BoxFuture<'v, Result<T, NodeError>>,
) -> FuturesUnordered<Call<'v, T>> {
    voters
        .iter()
        .enumerate()
        .map(|(i, voter)| {
            let answer = call(voter);
            Box::pin(async move { (i, answer.await) }) as Call<'v, T>
        })
        .collect()
}

/// Collect answers as they arrive until the outcome is settled (`yes` tells a yes from a no;
/// an error is a failed vote) or the deadline passes. The calls still in flight stay in
/// `calls` for the caller to hand on or drop.
async fn gather<T>(
    voters: &[Voter],
    calls: &mut FuturesUnordered<Call<'_, T>>,
    answers: &mut Answers<T>,
    deadline: Instant,
    yes: impl Fn(&T) -> bool,
) {
    let mut timer = pin!(tokio::time::sleep_until(deadline));
    while answers.count.settled().is_none() {
        let next = poll_fn(|cx| match calls.poll_next_unpin(cx) {
            Poll::Ready(answer) => Poll::Ready(answer),
            Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
        })
        .await;
        let Some((i, answer)) = next else { return };
        let Some(voter) = voters.get(i) else { continue };
        let said_yes = answer.as_ref().is_ok_and(&yes);
        answers.record(voter, i, answer, said_yes);
    }
}

/// `call` on `voter`, unless the round is decided by the time the voter's connection is
/// open: a call still waiting for its connection at the decision is never sent. A call sent
/// on an open connection is queued there at once (on its first poll) and runs before anything
/// sent later on that connection (the lock's release or extend); one that would only be sent
/// once a connection opens after the decision has no such order, so it is not sent at all.
/// An open connection is taken as it is (no connect pass); the decision is checked either way.
async fn unless_decided<T>(
    voter: &Voter,
    decided: &AtomicBool,
    call: impl Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    if !voter.node.is_connected() {
        voter.node.connect().await?;
    }
    if decided.load(Ordering::Acquire) {
        return Err(NodeError::Connect(
            "the connection opened after the round was decided; not sent".into(),
        ));
    }
    call.await
}

/// Whether a failed call may still have written: its request may have reached the node
/// (a timeout or a broken connection). A refused connection or an error reply wrote nothing.
fn may_have_written<T>(answer: &Option<Result<T, NodeError>>) -> bool {
    matches!(
        answer,
        None | Some(Err(NodeError::Timeout(_) | NodeError::Io(_)))
    )
}

/// Compare-and-delete `token` on the voters at `targets`, each awaited until `patience`
/// passes: long enough that the request is always sent (redis-rs drops a request whose caller
/// gave up before it was written), and it runs after any write of ours that went before it on
/// the same connection.
async fn release_where(voters: &[Voter], targets: &[usize], token: &LockToken, patience: Duration) {
    join_all(
        targets
            .iter()
            .filter_map(|i| voters.get(*i))
            .map(|voter| with_deadline(patience, voter.node.release(&voter.key, token.as_str()))),
    )
    .await;
}

/// What the calls of one round share: they own it, so that what is left of them when the
/// round is decided can go on in a task of its own.
struct Shared {
    voters: Arc<[Voter]>,
    token: LockToken,
    config: Arc<LockConfig>,
    /// Set when the round is decided (or abandoned): see [`unless_decided`].
    decided: AtomicBool,
}

/// What is left of a round once its caller stops polling it (decided, or cancelled): its
/// calls still in flight, and which voters to release after dropping them. Dropped, it hands
/// them to a background task counted by the manager's [`InFlight`] (so `close()` waits for
/// it): with `release` set, the calls are dropped (a request not yet written is never sent;
/// one already written runs first on its connection) and our token is compare-and-deleted
/// on those voters, each awaited up to `patience`; without, the calls are awaited up to
/// `patience`. Without a tokio runtime nothing can run, and the keys expire with their TTL.
struct Rest<T: Send + 'static> {
    calls: FuturesUnordered<Call<'static, T>>,
    release: Option<Vec<usize>>,
    shared: Arc<Shared>,
    patience: Duration,
    flight: Arc<InFlight>,
}

impl<T: Send + 'static> Drop for Rest<T> {
    fn drop(&mut self) {
        self.shared.decided.store(true, Ordering::Release);
        let calls = std::mem::take(&mut self.calls);
        let (shared, patience) = (self.shared.clone(), self.patience);
        let task: BoxFuture<'static, ()> = match self.release.take() {
            Some(targets) if targets.is_empty() => return,
            Some(targets) => Box::pin(async move {
                drop(calls);
                release_where(&shared.voters, &targets, &shared.token, patience).await;
            }),
            None if calls.is_empty() => return,
            None => Box::pin(async move {
                let _ = tokio::time::timeout(patience, calls.count()).await;
            }),
        };
        if self.flight.spawn(task).is_err() {
            tracing::debug!("no tokio runtime to finish a round; its keys expire with their TTL");
        }
    }
}

impl Round<'_> {
    /// Mark the topology stale after a redirect (MOVED/ASK) or, in cluster mode, any lost
    /// voter: a failover gives the slot a master at another address.
    fn note_failures(&self, failures_seen: bool, redirected: bool) {
        let stale = match self.mode {
            Mode::Cluster => failures_seen,
            _ => redirected,
        };
        if stale {
            self.topology.mark_stale();
        }
    }

    fn note_errors<'e>(&self, errors: impl Iterator<Item = &'e NodeError>) {
        let (mut seen, mut redirected) = (false, false);
        for error in errors {
            seen = true;
            redirected |= matches!(error, NodeError::Redirected(_));
        }
        self.note_failures(seen, redirected);
    }

    /// Who may vote in this round.
    fn rule(&self) -> Rule {
        Rule {
            mode: self.mode,
            config: self.config.clone(),
        }
    }

    /// The bound of one round: the node timeout, but never more than the validity a TTL can
    /// leave.
    fn per_call(&self, ttl: Duration, allowance: Duration) -> Duration {
        self.config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance))
    }

    /// Run a round's task in the background, tracked by the manager, and wait for its
    /// decision; without a tokio runtime, run the whole task here.
    async fn run<R>(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        decision: &mut oneshot::Receiver<R>,
    ) -> Option<R> {
        if let Err(task) = self.flight.spawn(task) {
            task.await;
        }
        decision.await.ok()
    }

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
            decided: AtomicBool::new(false),
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
                    (i, unless_decided(voter, &shared.decided, vote).await)
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
        shared.decided.store(true, Ordering::Release);
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
        // A won round's slower votes go on: each was queued on its connection when first
        // polled, so it runs before the lock's own release or extend there; a late grant
        // belongs to the lock and goes with it. A failed round's calls are dropped before
        // the release is queued behind them: a request not yet written is never sent, and
        // one already written runs before the release on the same connection.
        rest.release = match decision {
            AcquireDecision::Acquired { .. } => None,
            _ => Some(cleanup),
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
                Ok(true)
            }
            ExtendDecision::Refused => Ok(false),
            ExtendDecision::Unavailable { answered, failures } => {
                Err(unavailable(self.voters.len(), answered, failures))
            }
        }
    }

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
            decided: AtomicBool::new(false),
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
        self.note_errors(nodes.iter().filter_map(|n| n.error.as_ref()));
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

/// Whether any answer failed, and whether any was a redirect (MOVED/ASK).
fn failure_signs<'a, T: 'a>(
    answers: impl Iterator<Item = &'a Result<T, NodeError>>,
) -> (bool, bool) {
    let (mut seen, mut redirected) = (false, false);
    for answer in answers {
        if let Err(error) = answer {
            seen = true;
            redirected |= matches!(error, NodeError::Redirected(_));
        }
    }
    (seen, redirected)
}

/// The addresses of the voters that had not answered when a round was decided early (before
/// its deadline): they did not fail, the round simply did not need them.
fn unasked<'v, T>(voters: &'v [Voter], answers: &Answers<T>, early: bool) -> Vec<&'v str> {
    if !early {
        return Vec::new();
    }
    voters
        .iter()
        .zip(&answers.answers)
        .filter(|(_, answer)| answer.is_none())
        .map(|(voter, _)| voter.node.addr())
        .collect()
}

/// Remove the voters that were not needed from a list of failures.
fn drop_unasked(failures: &mut Vec<crate::error::NodeFailure>, unasked: &[&str]) {
    failures.retain(|f| !unasked.contains(&f.node.as_str()));
}

/// The indices of the answers that `keep` picks.
fn which<T>(answers: &[Option<T>], keep: impl Fn(&Option<T>) -> bool) -> Vec<usize> {
    answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| keep(answer))
        .map(|(i, _)| i)
        .collect()
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
    let decided = AtomicBool::new(false);
    let mut calls = send(&voters, |voter| {
        // Acknowledged by replicas when configured (see `acks`).
        let vote = acks::extend(&voter.node, &voter.key, token.as_str(), ttl, config, limit);
        Box::pin(unless_decided(voter, &decided, vote))
    });
    gather(&voters, &mut calls, &mut answers, start + limit, |yes| *yes).await;
    decided.store(true, Ordering::Release);
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

/// Start `release` in a task on the current tokio runtime, counted by the manager's
/// [`InFlight`] so that `close()` waits for it, and return at once: a synchronous `Drop` can
/// start it without blocking (never `block_on`), and a cancelled caller cannot cancel it.
/// Without a runtime nothing runs and the keys expire with their TTL; `what` names them in
/// the debug log.
pub(crate) fn spawn_release(
    flight: &Arc<InFlight>,
    resource: &str,
    what: &str,
    release: impl Future<Output = ()> + Send + 'static,
) {
    if flight.spawn(release).is_err() {
        tracing::debug!(
            resource,
            "no tokio runtime to release {what}; the keys expire with their TTL"
        );
    }
}
