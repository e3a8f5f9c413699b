//! The manager's current view of who votes: read on first use, then refreshed in the
//! background when a round saw a sign that it is out of date.
//!
//! Every read is single-flight: at most one runs at a time, in a spawned task (so a caller
//! that gives up cannot cancel it), and every caller that needs a read while one runs waits
//! for that read and shares its result, an error included. Without this, callers queued on a
//! lock and each read again in turn: five acquires against a paused seed finished 1, 2, 3, 4
//! and 5 connect timeouts after they started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::mutex::lock as locked;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use crate::config::Mode;
use crate::error::LockError;
use crate::node::SharedNode;
use crate::topology::{Discovered, Seeds, Topology, check_late_seed, discover};

/// The least time between two background topology refreshes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// One topology read that any number of callers can await; they all get its result.
type SharedRead = Shared<BoxFuture<'static, Result<Arc<Topology>, LockError>>>;

/// The read in flight, if any, and the number of the next one.
#[derive(Default)]
struct Reads {
    /// The read in flight and its number (so that it clears only itself when done).
    in_flight: Option<(u64, SharedRead)>,
    /// The number the next read gets.
    next: u64,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("in_flight", &self.in_flight.as_ref().map(|(id, _)| id))
            .field("next", &self.next)
            .finish()
    }
}

/// The cached topology and the state of its reads.
#[derive(Debug)]
pub(crate) struct TopologyCache {
    /// Where discovery gets its nodes.
    seeds: Box<dyn Seeds>,
    /// The configured mode (forced or detected).
    mode: Mode,
    /// The bound of each node read during discovery (the node timeout: no caller waits
    /// longer for any one seed).
    timeout: Duration,
    /// The current view of the voters; `None` until a read succeeded. A std mutex: it is
    /// never held across an `.await`.
    current: Mutex<Option<Arc<Topology>>>,
    /// Set when a vote was redirected (MOVED/ASK) or a cluster voter failed: re-read the
    /// topology before the next operation.
    stale: AtomicBool,
    /// The read in flight. A std mutex, never held across an `.await`.
    reads: Mutex<Reads>,
    /// When the last read finished. A std mutex, never held across an `.await`.
    last_refresh: Mutex<Option<Instant>>,
    /// The voter lists of granted locks, shared between locks.
    granted: crate::lock::GrantedSets,
    /// The seeds whose answer was not in when the mode was decided: checked in the
    /// background when they answer (see [`TopologyCache::check_late_seeds`]).
    late: LateSeeds,
}

/// Seeds still to be checked against the decided mode, and what such a check found.
#[derive(Debug, Default)]
struct LateSeeds {
    /// Set while `unchecked` is not empty: the hot path reads only this.
    any: AtomicBool,
    /// Set while a check runs (one at a time).
    checking: AtomicBool,
    /// The seeds not checked yet. A std mutex, never held across an `.await`.
    unchecked: Mutex<Vec<SharedNode>>,
    /// When the last check started: a seed that stays silent is asked at most every
    /// [`LATE_SEED_INTERVAL`].
    last_check: Mutex<Option<Instant>>,
    /// A late seed that disagreed with the decided mode or cluster: every later call fails
    /// with this configuration error.
    invalid: Mutex<Option<LockError>>,
    /// Set with `invalid`: the hot path reads only this.
    is_invalid: AtomicBool,
}

/// The least time between two checks of the seeds that did not answer at discovery.
const LATE_SEED_INTERVAL: Duration = Duration::from_millis(500);

impl TopologyCache {
    /// An empty cache over `seeds`; nothing is read yet.
    pub(crate) fn new(seeds: Box<dyn Seeds>, mode: Mode, timeout: Duration) -> Self {
        TopologyCache {
            seeds,
            mode,
            timeout,
            current: Mutex::new(None),
            stale: AtomicBool::new(false),
            reads: Mutex::new(Reads::default()),
            last_refresh: Mutex::new(None),
            granted: crate::lock::GrantedSets::default(),
            late: LateSeeds::default(),
        }
    }

    /// The shared list of the voters at `addrs` (for [`Lock::granted_by`](crate::Lock)).
    pub(crate) fn granted_by<'a, I>(&self, addrs: I) -> std::sync::Arc<[String]>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        self.granted.get(addrs)
    }

    /// The configured seed nodes.
    pub(crate) fn seeds(&self) -> &dyn Seeds {
        self.seeds.as_ref()
    }

    /// Ask for a refresh before the next operation.
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    fn current(&self) -> Option<Arc<Topology>> {
        locked(&self.current).clone()
    }

    /// The current topology. The first use waits for a read (shared with every concurrent
    /// first use: the k-th caller waits no longer than the first). Afterwards, when marked
    /// stale, it is re-read in the background (at most every [`REFRESH_INTERVAL`]) while
    /// rounds go on with the last good view, so that a paused or dead node never stalls a
    /// round on a refresh.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Arc<Topology>, LockError> {
        self.check_late_seeds()?;
        if let Some(current) = self.current() {
            if self.stale.load(Ordering::Acquire) && !self.refreshed_recently() {
                // Background: the read runs in its own task whether or not anyone awaits it.
                if tokio::runtime::Handle::try_current().is_ok() {
                    drop(self.read_shared());
                }
            }
            return Ok(current);
        }
        self.read_shared().await
    }

    /// A view newer than `seen` (the view a failed round used): the read in flight if there
    /// is one, the current view if it already replaced `seen`, else a new read. Single-flight
    /// like every read, so callers that ask together share one read.
    ///
    /// # Errors
    /// The read failed (the last good view is kept for the next caller).
    pub(crate) async fn refresh_now(
        self: &Arc<Self>,
        seen: &Arc<Topology>,
    ) -> Result<Arc<Topology>, LockError> {
        if let Some(read) = self.in_flight() {
            return read.await;
        }
        match self.current() {
            Some(current) if !Arc::ptr_eq(&current, seen) => Ok(current),
            _ => self.read_shared().await,
        }
    }

    /// Wait for a refresh when one is running or was asked for (the topology was marked
    /// stale); otherwise the current view at once. For a retry after a failed round, so that
    /// it runs on the view that failure asked for.
    ///
    /// # Errors
    /// The read failed (the last good view is kept for the next caller).
    pub(crate) async fn settled(self: &Arc<Self>) -> Result<Arc<Topology>, LockError> {
        if let Some(read) = self.in_flight() {
            return read.await;
        }
        match self.current() {
            Some(current) if !self.stale.load(Ordering::Acquire) => Ok(current),
            _ => self.read_shared().await,
        }
    }

    /// The configuration error a late seed revealed, if any; otherwise, when seeds are still
    /// unchecked, a background check of them (at most one at a time, at most every
    /// [`LATE_SEED_INTERVAL`]): each is asked within the node timeout, and one that
    /// disagrees with the decided mode or cluster (or is an alias of another seed) turns
    /// every later call into that [`LockError::InvalidConfig`], with a warning.
    fn check_late_seeds(self: &Arc<Self>) -> Result<(), LockError> {
        if self.late.is_invalid.load(Ordering::Acquire)
            && let Some(error) = locked(&self.late.invalid).clone()
        {
            return Err(error);
        }
        if !self.late.any.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let mut last = locked(&self.late.last_check);
            if last.is_some_and(|at| at.elapsed() < LATE_SEED_INTERVAL) {
                return Ok(());
            }
            if self.late.checking.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.late.checking.store(false, Ordering::Release);
            return Ok(());
        };
        let cache = self.clone();
        runtime.spawn(async move {
            cache.check_unchecked().await;
            cache.late.checking.store(false, Ordering::Release);
        });
        Ok(())
    }

    /// One check of every unchecked seed, all at once.
    async fn check_unchecked(&self) {
        let Some(current) = self.current() else {
            return;
        };
        let unchecked = locked(&self.late.unchecked).clone();
        let checks =
            futures::future::join_all(unchecked.iter().map(|node| {
                check_late_seed(self.seeds(), node, &current, self.mode, self.timeout)
            }))
            .await;
        let mut agreed = Vec::new();
        for (node, check) in unchecked.iter().zip(checks) {
            match check {
                Ok(true) => agreed.push(node.clone()),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(
                        node = node.addr(),
                        %error,
                        "a seed that answered late disagrees with the decided voters; every \
                         call of this manager fails until the node list is fixed"
                    );
                    *locked(&self.late.invalid) = Some(error);
                    self.late.is_invalid.store(true, Ordering::Release);
                    return;
                }
            }
        }
        let mut unchecked = locked(&self.late.unchecked);
        unchecked.retain(|node| !agreed.iter().any(|a| Arc::ptr_eq(a, node)));
        self.late
            .any
            .store(!unchecked.is_empty(), Ordering::Release);
    }

    fn in_flight(&self) -> Option<SharedRead> {
        locked(&self.reads)
            .in_flight
            .as_ref()
            .map(|(_, read)| read.clone())
    }

    fn refreshed_recently(&self) -> bool {
        locked(&self.last_refresh).is_some_and(|at| at.elapsed() < REFRESH_INTERVAL)
    }

    /// The read in flight, or a new one. A new read runs in a spawned task when there is a
    /// runtime (no cancelled caller can stop it; it clears itself when done) and inline in
    /// whoever polls it otherwise.
    fn read_shared(self: &Arc<Self>) -> SharedRead {
        let mut reads = locked(&self.reads);
        if let Some((_, read)) = &reads.in_flight {
            return read.clone();
        }
        let id = reads.next;
        reads.next = reads.next.wrapping_add(1);
        let cache = self.clone();
        let task = async move {
            let result = cache.read_and_store().await;
            let mut reads = locked(&cache.reads);
            if reads
                .in_flight
                .as_ref()
                .is_some_and(|(done, _)| *done == id)
            {
                reads.in_flight = None;
            }
            result
        };
        let read: BoxFuture<'static, _> = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let handle = runtime.spawn(task);
                async move {
                    handle.await.unwrap_or_else(|error| {
                        Err(LockError::Topology(format!(
                            "the topology read task stopped ({error}); try again"
                        )))
                    })
                }
                .boxed()
            }
            Err(_) => task.boxed(),
        };
        let read = read.shared();
        // Stored before the lock is let go, so the task (which takes the lock to clear it)
        // always finds it.
        reads.in_flight = Some((id, read.clone()));
        read
    }

    /// One discovery: on success it becomes the current view; on failure the last good view
    /// stays and is marked stale again.
    async fn read_and_store(&self) -> Result<Arc<Topology>, LockError> {
        // Cleared first: failures seen during the read mark it stale again.
        self.stale.store(false, Ordering::Release);
        let previous = self.current();
        let result = discover(self.seeds(), previous.as_deref(), self.mode, self.timeout)
            .await
            .map(
                |Discovered {
                     topology,
                     unchecked,
                 }| {
                    // A refresh through the known masters asks no seed: keep the list as it is.
                    if !matches!(previous.as_deref(), Some(Topology::Cluster { .. })) {
                        self.late
                            .any
                            .store(!unchecked.is_empty(), Ordering::Release);
                        *locked(&self.late.unchecked) = unchecked;
                    }
                    Arc::new(topology)
                },
            );
        match &result {
            Ok(fresh) => {
                tracing::debug!(mode = ?fresh.mode(), refresh = previous.is_some(), "topology read");
                *locked(&self.current) = Some(fresh.clone());
            }
            Err(error) => {
                tracing::debug!(%error, "topology read failed; keeping the last view");
                if previous.is_some() {
                    self.mark_stale();
                }
            }
        }
        *locked(&self.last_refresh) = Some(Instant::now());
        result
    }
}

#[cfg(test)]
mod tests;
