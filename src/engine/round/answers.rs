//! The answers of one round: who may vote ([`Rule`]), what each voter said ([`Answers`]),
//! sending a call to every voter and gathering the answers until the outcome is settled.

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::engine::quorum::Count;
use crate::error::NodeError;
use crate::server::{ServerFacts, Veto, admit_one, refusal};
use crate::topology::Voter;

/// Who may vote in a round: the voting rule of `server::admit` (one vote per server, no
/// cluster node in independent mode, no evicting server when refused), applied to each answer
/// as it arrives.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) mode: Mode,
    pub(super) config: Arc<LockConfig>,
    /// What the features add to admission (see [`Veto`]).
    pub(super) veto: Veto,
}

/// The answers of one round, by voter index; `None` until a voter answered.
pub(crate) struct Answers<T> {
    /// What each voter answered (a refused voter's answer included: it may have written).
    pub(crate) answers: Vec<Option<Result<T, NodeError>>>,
    /// Why a voter's answer does not count, when it does not.
    refused: Vec<Option<NodeError>>,
    /// The facts of the voters whose answers counted so far (shared, not copied).
    admitted: Vec<Arc<ServerFacts>>,
    rule: Rule,
    pub(super) count: Count,
    /// Whether the round is decided as soon as its outcome is settled, or waits for all.
    early: bool,
}

impl<T> Answers<T> {
    pub(super) fn new(voters: usize, rule: Rule, early: bool) -> Self {
        Answers {
            answers: (0..voters).map(|_| None).collect(),
            refused: (0..voters).map(|_| None).collect(),
            admitted: Vec::new(),
            rule,
            count: Count::new(voters),
            early,
        }
    }

    /// Voter `i` is not asked in this round: its vote counts as failed.
    pub(super) fn skip(&mut self, i: usize) {
        self.count.record(None);
        if let Some(slot) = self.refused.get_mut(i) {
            *slot = Some(NodeError::Server("not asked in this round".into()));
        }
    }

    /// Whether the answers still missing can no longer change the outcome.
    fn settled(&self) -> bool {
        self.early && self.count.settled().is_some()
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
                    self.rule.veto,
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
    pub(crate) fn counted(&self, i: usize, pick: impl Fn(&T) -> bool) -> bool {
        matches!(self.answers.get(i), Some(Some(Ok(value))) if pick(value))
            && matches!(self.refused.get(i), Some(None))
    }

    /// The answers in voter order with the voters' addresses, as the decision functions see
    /// them: a voter that did not answer in time counts as timed out after `limit`, a refused
    /// one as failed with the reason, and a failed one from a server that may never vote here
    /// reports that reason (it says what to change).
    pub(crate) fn named(
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
    while !answers.settled() {
        let next = poll_fn(|cx| match calls.poll_next_unpin(cx) {
            Poll::Ready(answer) => Poll::Ready(answer),
            Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
        })
        .await;
        let Some(mut next) = next else { return };
        // Answers already in cost no time: all of them count before the round is decided.
        loop {
            let (i, answer) = next;
            if let Some(voter) = voters.get(i) {
                let said_yes = answer.as_ref().is_ok_and(&yes);
                answers.record(voter, i, answer, said_yes);
            }
            match calls.next().now_or_never() {
                Some(Some(ready)) => next = ready,
                _ => break,
            }
        }
    }
}

/// The addresses of the voters that had not answered when a round was decided early (before
/// its deadline): they did not fail, the round simply did not need them.
pub(crate) fn unasked<'v, T>(
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
pub(crate) fn drop_unasked(failures: &mut Vec<crate::error::NodeFailure>, unasked: &[&str]) {
    failures.retain(|f| !unasked.contains(&f.node.as_str()));
}

/// The indices of the answers that `keep` picks.
pub(crate) fn which<T>(answers: &[Option<T>], keep: impl Fn(&Option<T>) -> bool) -> Vec<usize> {
    answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| keep(answer))
        .map(|(i, _)| i)
        .collect()
}
