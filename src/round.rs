//! Round mechanics: one script sent to every voter of a resource at once, decided by the
//! pure functions of `quorum` as soon as the answers still missing cannot change the outcome,
//! under one deadline per round; and the rest of the round (slower answers, the release of a
//! failed or abandoned round's keys) in a background task that no cancelled caller can stop.
//!
//! Each round runs in a task of its own ([`InFlight::spawn`]): the caller gets the decision
//! over a oneshot channel the moment it is known, and the task goes on with what is left.

mod acquire;
mod answers;
mod cleanup;
mod extend;
mod inspect;
mod release;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::flight::InFlight;
use crate::lock::{Lock, LockToken};
use crate::topology::Voter;
use crate::topology_cache::TopologyCache;

use answers::Rule;
pub(crate) use cleanup::spawn_release;

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
fn may_have_written<T>(answer: &Option<Result<T, NodeError>>) -> bool {
    matches!(
        answer,
        None | Some(Err(NodeError::Timeout(_) | NodeError::Io(_)))
    )
}

/// What the calls of one round share: they own it, so that what is left of them when the
/// round is decided can go on in a task of its own.
struct Shared {
    voters: Arc<[Voter]>,
    token: LockToken,
    config: Arc<LockConfig>,
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
}
