//! What a manager has in flight: a bound on its rounds (a queue in front of the network, so
//! that overload degrades into waiting rather than into timeouts and orphan keys), and the
//! background tasks (the rest of a decided round, cleanups, a dropped guard's release) that
//! [`crate::LockManager::close`] waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Set by [`InFlight::close`]: new work is refused from then on.
    closed: AtomicBool,
}

/// What [`crate::LockManager::close`] waited for, and what was left.
///
/// `Display` says it in one line, for a shutdown log: "waited 3 ms for 2 background tasks
/// (releases, cleanups, late votes); none pending".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Background tasks (releases, cleanups, the slower votes of decided rounds) running
    /// when `close` was called: what it waited for.
    pub waited_for: usize,
    /// How long it waited.
    pub waited: Duration,
    /// Background tasks still running when the time was up; their keys expire with their TTL
    /// if the runtime stops now.
    pub pending: usize,
}

impl CloseReport {
    /// Whether every pending release and cleanup finished in time.
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }
}

impl std::fmt::Display for CloseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "waited {:?} for {} background task{} (releases, cleanups, late votes); ",
            self.waited,
            self.waited_for,
            if self.waited_for == 1 { "" } else { "s" }
        )?;
        match self.pending {
            0 => f.write_str("none pending"),
            n => write!(f, "{n} still pending: their keys expire with their TTL"),
        }
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
            closed: AtomicBool::new(false),
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

    /// Whether [`InFlight::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuse new work from now on, then wait until no background task is left, or
    /// `timeout` passed. Idempotent: a second call waits for what is still running.
    pub(crate) async fn close(&self, timeout: Duration) -> CloseReport {
        self.closed.store(true, Ordering::Release);
        let started = tokio::time::Instant::now();
        let waited_for = self.tasks.load(Ordering::Acquire);
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
            waited_for,
            waited: started.elapsed(),
            pending: self.tasks.load(Ordering::Acquire),
        }
    }
}
