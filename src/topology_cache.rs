//! The manager's current view of who votes: read on first use, then refreshed in the
//! background when a round saw a sign that it is out of date.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::config::Mode;
use crate::error::LockError;
use crate::topology::{Seeds, Topology, discover};

/// The least time between two topology refreshes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// The cached topology and the state of its background refresh.
#[derive(Debug)]
pub(crate) struct TopologyCache {
    /// Where discovery gets its nodes.
    seeds: Box<dyn Seeds>,
    /// The configured mode (forced or detected).
    mode: Mode,
    /// The bound of each node read during discovery (the connect timeout).
    timeout: Duration,
    /// The current view of the voters; `None` until first use.
    current: RwLock<Option<Arc<Topology>>>,
    /// Set when a vote was redirected (MOVED/ASK) or a cluster voter failed: re-read the
    /// topology before the next operation.
    stale: AtomicBool,
    /// Whether a background refresh is running.
    refreshing: AtomicBool,
    /// When the last refresh finished. A std mutex: it is never held across an `.await`.
    last_refresh: Mutex<Option<Instant>>,
}

impl TopologyCache {
    /// An empty cache over `seeds`; nothing is read yet.
    pub(crate) fn new(seeds: Box<dyn Seeds>, mode: Mode, timeout: Duration) -> Self {
        TopologyCache {
            seeds,
            mode,
            timeout,
            current: RwLock::new(None),
            stale: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            last_refresh: Mutex::new(None),
        }
    }

    /// The configured seed nodes.
    pub(crate) fn seeds(&self) -> &dyn Seeds {
        self.seeds.as_ref()
    }

    /// Ask for a refresh before the next operation.
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// The current topology. It is read on first use; afterwards, when marked stale, it is
    /// re-read in a background task (one at a time, at most every [`REFRESH_INTERVAL`]) while
    /// rounds go on with the last good view, so that a paused or dead node never stalls a
    /// round on a refresh.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Arc<Topology>, LockError> {
        if let Some(current) = self.current.read().await.clone() {
            if self.stale.load(Ordering::Acquire) {
                self.spawn_refresh(&current);
            }
            return Ok(current);
        }
        let mut slot = self.current.write().await;
        // Another task may have read it while we waited for the write lock.
        if let Some(current) = slot.clone() {
            return Ok(current);
        }
        let fresh = Arc::new(self.read(None).await?);
        tracing::debug!(mode = ?fresh.mode(), "topology read");
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    fn spawn_refresh(self: &Arc<Self>, current: &Arc<Topology>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let recent = self
            .last_refresh
            .lock()
            .map(|last| last.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL))
            .unwrap_or(false);
        if recent {
            self.refreshing.store(false, Ordering::Release);
            return;
        }
        let cache = self.clone();
        let current = current.clone();
        runtime.spawn(async move {
            // Cleared first: failures seen during the refresh mark it stale again.
            cache.stale.store(false, Ordering::Release);
            match cache.read(Some(&current)).await {
                Ok(fresh) => {
                    tracing::debug!(mode = ?fresh.mode(), "topology refreshed");
                    *cache.current.write().await = Some(Arc::new(fresh));
                }
                Err(error) => {
                    tracing::debug!(%error, "topology refresh failed; keeping the last view");
                    cache.mark_stale();
                }
            }
            if let Ok(mut last) = cache.last_refresh.lock() {
                *last = Some(Instant::now());
            }
            cache.refreshing.store(false, Ordering::Release);
        });
    }

    async fn read(&self, previous: Option<&Topology>) -> Result<Topology, LockError> {
        discover(self.seeds(), previous, self.mode, self.timeout).await
    }
}
