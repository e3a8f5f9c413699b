//! What a manager has in flight: a bound on its rounds (a queue in front of the network, so
//! that overload degrades into waiting rather than into timeouts and orphan keys), and the
//! background tasks (the rest of a decided round, cleanups, a dropped guard's release) that
//! [`crate::LockManager::close`] waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The rounds and background tasks of one manager.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// One permit per round that is deciding; waiting for one is the queue.
    rounds: Arc<Semaphore>,
    /// Background tasks still running.
    tasks: AtomicUsize,
    /// Woken whenever the last background task ends.
    idle: Notify,
}

/// What [`crate::LockManager::close`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Background tasks (releases and cleanups) still running when the time was up; their
    /// keys expire with their TTL if the runtime stops now.
    pub pending: usize,
}

impl CloseReport {
    /// Whether every pending release and cleanup finished in time.
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }
}

/// Counts a background task for as long as it lives (including when it is cancelled).
struct Tracked(Arc<InFlight>);

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    /// At most `max_rounds` rounds deciding at once.
    pub(crate) fn new(max_rounds: usize) -> Arc<Self> {
        Arc::new(InFlight {
            rounds: Arc::new(Semaphore::new(max_rounds)),
            tasks: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Wait for a round's turn. The permit is held until the round is decided, not while
    /// its slower answers are still handled.
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; without a permit the round simply runs.
        self.rounds.clone().acquire_owned().await.ok()
    }

    /// Run `task` in the background on the current tokio runtime, counted until it ends.
    /// Without a runtime, `task` is handed back unrun.
    ///
    /// # Errors
    /// The task itself, when there is no tokio runtime to run it on.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(
        self: &Arc<Self>,
        task: F,
    ) -> Result<(), F> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(task);
        };
        self.tasks.fetch_add(1, Ordering::AcqRel);
        let tracked = Tracked(self.clone());
        runtime.spawn(async move {
            let _tracked = tracked;
            task.await;
        });
        Ok(())
    }

    /// Wait until no background task is left, or `timeout` passed.
    pub(crate) async fn close(&self, timeout: Duration) -> CloseReport {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.tasks.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        CloseReport {
            pending: self.tasks.load(Ordering::Acquire),
        }
    }
}
