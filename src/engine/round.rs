//! Round mechanics: one script sent to every voter of a resource at once, decided by the
//! pure functions of `quorum` as soon as the answers still missing cannot change the outcome,
//! under one deadline per round; and the rest of the round (slower answers, the release of a
//! failed or abandoned round's keys) in a background task that no cancelled caller can stop.
//!
//! Every round kind (plain and fenced acquire, fencing commit, extend, release, inspect,
//! fence floor) is a vote and a decision on the one mechanism, [`Round::ask`]: a turn from
//! the manager's bound on rounds in flight, each call sent once its voter's connection is
//! open, answers admitted by the voting rule as they arrive and gathered until the outcome
//! is settled or the deadline passed, and what is left handed to a [`Rest`] that a task
//! counted by the manager's [`InFlight`] finishes.

mod acquire;
mod answers;
mod cleanup;
mod extend;
mod inspect;
mod release;
pub(crate) mod votes;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::engine::flight::InFlight;
use crate::error::{LockError, NodeError};
use crate::lock::{Lock, LockToken};
use crate::topology::Voter;
use crate::topology_cache::TopologyCache;

pub(crate) use acquire::{Grant, Granted, limits};
pub(crate) use answers::Answers;
use answers::{Call, Rule, gather};
pub(crate) use cleanup::{Rest, spawn_release};

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
    /// What the features add to the admission of votes (delayed restarts).
    pub(crate) veto: crate::server::Veto,
}

/// A round's turn under the manager's bound on rounds in flight, held until the round is
/// decided (not while its slower answers are still handled). Only [`Round::turn`] makes one,
/// and [`Round::ask`] needs one: no round reaches the network without its turn.
pub(crate) struct Turn(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// What the calls of one round share: they own it, so that what is left of them when the
/// round is decided can go on in a task of its own.
pub(crate) struct Shared {
    pub(crate) voters: Arc<[Voter]>,
    pub(crate) token: LockToken,
    pub(crate) config: Arc<LockConfig>,
}

/// One round as [`Round::ask`] runs it.
pub(crate) struct Ask<'s> {
    /// The voters, token and configuration the calls own.
    pub(crate) shared: &'s Arc<Shared>,
    /// The voters asked, by index (`None`: all); the others count as failed votes.
    pub(crate) targets: Option<&'s [usize]>,
    /// When the answers still missing count as timed out: never later than the node timeout
    /// after the round started.
    pub(crate) deadline: Instant,
    /// How long what is left of the round is awaited in the background.
    pub(crate) patience: Duration,
    /// Whether a caller that stops waiting before the decision has every voter's key
    /// released (a write round of a new token), or only the calls awaited.
    pub(crate) release_on_cancel: bool,
    /// Whether the round is decided as soon as a quorum's outcome is known, or waits for
    /// every answer (reads that report each voter).
    pub(crate) early: bool,
}

/// A vote: the call one voter (by index) gets in a round; it owns what it needs.
pub(crate) type Vote<T> =
    dyn Fn(Arc<Shared>, usize) -> BoxFuture<'static, Result<T, NodeError>> + Send + Sync;

/// `call` on `voter` once its connection is open (an open connection is taken as it is, with
/// no connect pass). The call is sent even when the round was decided meanwhile: a fresh
/// manager's connections open while its first rounds run, and a vote that waited for one
/// still reaches its voter, so that a lock holds a key on every reachable voter (see
/// `LateVotes`). A caller that gives up drops the call: a request not yet written is never
/// sent.
async fn on_connection<T>(
    voter: &Voter,
    call: impl Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    if !voter.node.is_connected() {
        voter.node.connect().await?;
    }
    call.await
}

/// Whether a failed call may still have written: its request may have reached the node
/// (a timeout or a broken connection). A refused connection or an error reply wrote nothing.
pub(crate) fn may_have_written<T>(answer: &Option<Result<T, NodeError>>) -> bool {
    matches!(
        answer,
        None | Some(Err(NodeError::Timeout(_) | NodeError::Io(_)))
    )
}

impl Round<'_> {
    /// Wait for a round's turn. Queueing happens before a round's clock starts: it never
    /// eats validity.
    pub(crate) async fn turn(&self) -> Turn {
        Turn(self.flight.permit().await)
    }

    /// The one mechanism of every round: `vote` sent to the voters `ask` names, each once its
    /// connection is open, the answers admitted by the voting rule (one vote per server) and
    /// gathered until the outcome is settled (`yes` tells a yes from a no) or the deadline
    /// passed. Returns the answers, and what is left of the round as a [`Rest`]: the caller
    /// sets what it releases, and dropping it hands it to a background task.
    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        _turn: &Turn,
        ask: Ask<'_>,
        vote: &Vote<T>,
        yes: impl Fn(&T) -> bool,
    ) -> (Answers<T>, Rest<T>) {
        let n = self.voters.len();
        let mut answers = Answers::new(n, self.rule(), ask.early);
        let targets: Vec<usize> = match ask.targets {
            Some(targets) => targets.to_vec(),
            None => (0..n).collect(),
        };
        for i in (0..n).filter(|i| !targets.contains(i)) {
            answers.skip(i);
        }
        let calls = targets
            .into_iter()
            .map(|i| {
                let (shared, call) = (ask.shared.clone(), vote(ask.shared.clone(), i));
                Box::pin(async move {
                    let Some(voter) = shared.voters.get(i) else {
                        return (i, Err(NodeError::Protocol("no such voter".into())));
                    };
                    (i, on_connection(voter, call).await)
                }) as Call<'static, T>
            })
            .collect();
        let mut rest = Rest {
            calls,
            release: ask.release_on_cancel.then(|| (0..n).collect()),
            shared: ask.shared.clone(),
            patience: ask.patience,
            flight: self.flight.clone(),
        };
        gather(
            &self.voters,
            &mut rest.calls,
            &mut answers,
            ask.deadline,
            yes,
        )
        .await;
        // A read round's voter that did not answer in time failed (a decided round's slower
        // voters did not: the round did not need them).
        let timed_out = !ask.early && !rest.calls.is_empty();
        let errors = answers
            .answers
            .iter()
            .flatten()
            .filter_map(|a| a.as_ref().err());
        self.note_errors(errors, timed_out);
        (answers, rest)
    }

    /// Mark the topology stale after a redirect (MOVED/ASK) or, in cluster mode, any lost
    /// voter: a failover gives the slot a master at another address.
    fn note_errors<'e>(&self, errors: impl Iterator<Item = &'e NodeError>, timed_out: bool) {
        let (mut seen, mut redirected) = (timed_out, false);
        for error in errors {
            seen = true;
            redirected |= matches!(error, NodeError::Redirected(_));
        }
        let stale = match self.mode {
            Mode::Cluster => seen,
            _ => redirected,
        };
        if stale {
            self.topology.mark_stale();
        }
    }

    /// Who may vote in this round.
    fn rule(&self) -> Rule {
        Rule {
            mode: self.mode,
            config: self.config.clone(),
            veto: self.veto,
        }
    }

    /// Release `shared`'s token on the voters at `targets` in the background, each awaited
    /// up to `patience` (keys of an attempt whose rounds were decided).
    pub(crate) fn release_later(
        &self,
        shared: &Arc<Shared>,
        targets: Vec<usize>,
        patience: Duration,
    ) {
        drop(Rest::<()> {
            calls: Default::default(),
            release: Some(targets),
            shared: shared.clone(),
            patience,
            flight: self.flight.clone(),
        });
    }

    /// A fresh token's shared part of a round.
    pub(crate) fn shared(&self, token: LockToken) -> Arc<Shared> {
        Arc::new(Shared {
            voters: self.voters.clone(),
            token,
            config: self.config.clone(),
        })
    }
}
