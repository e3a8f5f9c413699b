//! The cleanup of a round: what is left of it once decided or cancelled ([`Rest`]), handed
//! to a background task, and the releases started from synchronous code ([`spawn_release`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::engine::flight::InFlight;
use crate::lock::{LateVotes, LockToken};
use crate::node::AcquireReply;
use crate::node::with_deadline;
use crate::topology::Voter;

use super::Shared;
use super::answers::Call;
use super::votes::release;

/// Compare-and-delete `token` on the voters at `targets`, each awaited until `patience`
/// passes: long enough that the request is always sent (redis-rs drops a request whose caller
/// gave up before it was written), and it runs after any write of ours that went before it on
/// the same connection.
pub(super) async fn release_where(
    voters: &[Voter],
    targets: &[usize],
    token: &LockToken,
    patience: Duration,
) {
    join_all(targets.iter().filter_map(|i| voters.get(*i)).map(|voter| {
        with_deadline(
            patience,
            release(voter.node.as_ref(), &voter.key, token.as_str()),
        )
    }))
    .await;
}

/// What is left of a round once its caller stops polling it (decided, or cancelled): its
/// calls still in flight, and which voters to release after dropping them. Dropped, it hands
/// them to a background task counted by the manager's [`InFlight`] (so `close()` waits for
/// it): with `release` set, the calls are dropped (a request not yet written is never sent;
/// one already written runs first on its connection) and our token is compare-and-deleted
/// on those voters, each awaited up to `patience`; without, the calls are awaited up to
/// `patience`. Without a tokio runtime nothing can run, and the keys expire with their TTL.
pub(crate) struct Rest<T: Send + 'static> {
    pub(crate) calls: FuturesUnordered<Call<'static, T>>,
    pub(crate) release: Option<Vec<usize>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) patience: Duration,
    pub(crate) flight: Arc<InFlight>,
}

impl Rest<AcquireReply> {
    /// Hand a won acquire round's slower votes to a background task (counted like every
    /// rest): a grant that lands is recorded in `late`, or deleted at once when the lock was
    /// released meanwhile. Each vote is awaited up to `patience` (the TTL: after it the key
    /// is gone anyway).
    pub(crate) fn late_grants(&mut self, late: Arc<LateVotes>) {
        self.release = Some(Vec::new());
        let mut calls = std::mem::take(&mut self.calls);
        let (shared, patience) = (self.shared.clone(), self.patience);
        let task = async move {
            let answers = async {
                while let Some((i, answer)) = calls.next().await {
                    if matches!(answer, Ok(AcquireReply::Granted)) && !late.landed(i) {
                        release_where(&shared.voters, &[i], &shared.token, patience).await;
                    }
                }
            };
            // Once the lock's release started, the votes not sent yet are dropped (never
            // sent), and those already written run before the release queued behind them on
            // their connection: nothing is left to wait for (`close()` does not wait on a
            // released lock's hung voter).
            let (answers, ended) = (std::pin::pin!(answers), std::pin::pin!(late.until_ended()));
            let _ = tokio::time::timeout(patience, futures::future::select(answers, ended)).await;
            late.done_waiting();
        };
        if self.flight.spawn(task).is_err() {
            tracing::debug!(
                "no tokio runtime for a round's late votes; their keys expire with their TTL"
            );
        }
    }
}

impl<T: Send + 'static> Drop for Rest<T> {
    fn drop(&mut self) {
        let calls = std::mem::take(&mut self.calls);
        let (shared, patience) = (self.shared.clone(), self.patience);
        let task: BoxFuture<'static, ()> = match self.release.take() {
            Some(targets) if targets.is_empty() => return,
            Some(targets) => Box::pin(async move {
                drop(calls);
                release_where(&shared.voters, &targets, &shared.token, patience).await;
            }),
            None if calls.is_empty() || patience.is_zero() => return,
            None => Box::pin(async move {
                let _ = tokio::time::timeout(patience, calls.count()).await;
            }),
        };
        if self.flight.spawn(task).is_err() {
            tracing::debug!("no tokio runtime to finish a round; its keys expire with their TTL");
        }
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
