//! The answers of one round: who may vote ([`Rule`]), what each voter said ([`Answers`]),
//! sending a call to every voter and gathering the answers until the outcome is settled.

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::{BoxFuture, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;
use crate::quorum::Count;
use crate::server::{ServerFacts, admit_one, refusal};
use crate::topology::Voter;

/// Who may vote in a round: the voting rule of `server::admit` (one vote per server, no
/// cluster node in independent mode, no evicting server when refused), applied to each answer
/// as it arrives.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) mode: Mode,
    pub(super) config: Arc<LockConfig>,
}

/// The answers of one round, by voter index; `None` until a voter answered.
pub(super) struct Answers<T> {
    /// What each voter answered (a refused voter's answer included: it may have written).
    pub(super) answers: Vec<Option<Result<T, NodeError>>>,
    /// Why a voter's answer does not count, when it does not.
    refused: Vec<Option<NodeError>>,
    /// The facts of the voters whose answers counted so far (shared, not copied).
    admitted: Vec<Arc<ServerFacts>>,
    rule: Rule,
    pub(super) count: Count,
}

impl<T> Answers<T> {
    pub(super) fn new(voters: usize, rule: Rule) -> Self {
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
    pub(super) fn counted(&self, i: usize, pick: impl Fn(&T) -> bool) -> bool {
        matches!(self.answers.get(i), Some(Some(Ok(value))) if pick(value))
            && matches!(self.refused.get(i), Some(None))
    }

    /// The answers in voter order with the voters' addresses, as the decision functions see
    /// them: a voter that did not answer in time counts as timed out after `limit`, a refused
    /// one as failed with the reason, and a failed one from a server that may never vote here
    /// reports that reason (it says what to change).
    pub(super) fn named(
        self,
        voters: &[Voter],
        limit: Duration,
    ) -> Vec<(&str, Result<T, NodeError>)> {
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

pub(super) type Call<'v, T> = BoxFuture<'v, (usize, Result<T, NodeError>)>;

/// Send `call` to every voter at once.
pub(super) fn send<'v, T: 'v>(
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
pub(super) async fn gather<T>(
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

/// Whether any answer failed, and whether any was a redirect (MOVED/ASK).
pub(super) fn failure_signs<'a, T: 'a>(
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
pub(super) fn unasked<'v, T>(
    voters: &'v [Voter],
    answers: &Answers<T>,
    early: bool,
) -> Vec<&'v str> {
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
pub(super) fn drop_unasked(failures: &mut Vec<crate::error::NodeFailure>, unasked: &[&str]) {
    failures.retain(|f| !unasked.contains(&f.node.as_str()));
}

/// The indices of the answers that `keep` picks.
pub(super) fn which<T>(answers: &[Option<T>], keep: impl Fn(&Option<T>) -> bool) -> Vec<usize> {
    answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| keep(answer))
        .map(|(i, _)| i)
        .collect()
}
