//! A lock held for a scope: released when dropped, optionally kept alive by a watchdog task,
//! with a signal that fires when the lock is lost.
//!
//! The design follows two well-tried shapes: node-redlock's `using()`, which extends the lock
//! in the background and hands the routine an abort signal, and etcd's `Session.Done()`, a
//! channel that closes when the lease can no longer be kept alive. Here the signal is
//! [`LockGuard::lost`], meant for `tokio::select!` against the critical section.
//!
//! The guard is here; its options are in `options`, its background task in `watchdog`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::LockError;
use crate::lock::{Lock, LockToken};
use crate::manager::LockManager;

mod options;
mod watchdog;

pub use options::GuardOptions;
use watchdog::watchdog;

/// Why a [`LockGuard`] no longer holds (or can no longer keep) its lock.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LostReason {
    /// A quorum of masters answered the extension but did not extend: the keys are gone or
    /// belong to someone else (a master lost its data, or the lock had expired there). The
    /// last of the retries was refused.
    #[error("a quorum of masters refused to extend the lock: it is gone or held by another")]
    ExtendRefused,
    /// The extension could not reach a quorum of masters, and no retry did before the validity
    /// left was too short for one more round.
    #[error("the lock could not be extended: {0}")]
    ExtendFailed(LockError),
    /// The validity ran out before a successful extension (or without auto-extension).
    #[error("the lock's validity ran out")]
    Expired,
    /// The guard's maximum hold time was reached.
    #[error("the maximum hold time of {0:?} was reached")]
    MaxHold(Duration),
}

/// What the guard and its watchdog share: the current lock and whether it was lost.
#[derive(Debug)]
struct State {
    lock: Lock,
    lost: Option<LostReason>,
}

/// A held lock that is released when dropped.
///
/// - [`release`](Self::release) releases it now and reports whether a quorum still held it.
/// - Dropping the guard releases it in a spawned task (never blocking). Without a tokio
///   runtime to spawn on, the lock is left to expire with its TTL.
/// - With [`GuardOptions::auto_extend`] a watchdog task keeps extending it; the watchdog
///   stops when the guard is released or dropped, or when the lock is lost.
/// - [`lost`](Self::lost) completes when the lock is lost: extensions kept failing (a failed
///   extension is retried, after a short backoff and on a refreshed topology when votes were
///   redirected or a cluster voter failed, for as long as the validity left allows one more
///   round), the validity runs out before an extension succeeds, or
///   [`GuardOptions::max_hold`] is reached. It fires no later than the validity deadline
///   (within the timer's millisecond resolution), even while an extension round is still in
///   flight. Once lost, a guard stays lost, and (except after `max_hold`) the watchdog
///   releases the lock's keys in the background.
///
/// ```no_run
/// use std::time::Duration;
/// use redlock_cluster::{GuardOptions, LockConfig, LockManager};
///
/// # async fn work() {}
/// # async fn demo() -> Result<(), redlock_cluster::LockError> {
/// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
/// let options = GuardOptions::new().auto_extend(true);
/// if let Some(guard) = manager.lock_guard("reports/daily", Duration::from_secs(5), options).await? {
///     tokio::select! {
///         reason = guard.lost() => eprintln!("lock lost ({reason}); stopping"),
///         () = work() => {}
///     }
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    /// The engine, to extend and release.
    manager: LockManager,
    /// The current lock and the lost signal; the watchdog writes, the guard reads.
    state: Arc<watch::Sender<State>>,
    /// The task that extends the lock and watches its deadline, if a runtime was there.
    watchdog: Option<JoinHandle<()>>,
    /// Set once released explicitly, so that `Drop` does not release again.
    released: bool,
}

impl LockManager {
    /// Take `resource` for `ttl` (attempts per [`GuardOptions::retry`]) and return a guard
    /// that releases it when dropped; `Ok(None)` when others hold it.
    ///
    /// # Errors
    /// [`LockError::InvalidConfig`] for invalid options; otherwise as
    /// [`LockManager::acquire_with`].
    pub async fn lock_guard(
        &self,
        resource: &str,
        ttl: Duration,
        options: GuardOptions,
    ) -> Result<Option<LockGuard>, LockError> {
        options.validate()?;
        let lock = self.acquire_with(resource, ttl, &options.retry).await?;
        Ok(lock.map(|lock| LockGuard::start(self.clone(), lock, options)))
    }

    /// Wrap a lock acquired from this manager in a guard. Call it inside a tokio runtime: the
    /// watchdog (extension and lost signal) is spawned there, and without one the guard has
    /// no watchdog and its signal never fires.
    ///
    /// # Errors
    /// [`LockError::InvalidConfig`] for invalid options.
    pub fn guard(&self, lock: Lock, options: GuardOptions) -> Result<LockGuard, LockError> {
        if let Err(closed) = self.check_open() {
            // Not guarded, but not left to block others for its TTL either.
            self.release_in_background(lock, "a lock handed to a closed manager");
            return Err(closed);
        }
        self.check_owner(&lock)?;
        options.validate()?;
        Ok(LockGuard::start(self.clone(), lock, options))
    }
}

impl LockGuard {
    /// The lock's fencing token ([`Lock::fencing_token`]); `None` unless the manager has
    /// fencing on. Extensions keep it.
    pub fn fencing_token(&self) -> Option<u64> {
        self.current().fencing_token()
    }

    fn start(manager: LockManager, lock: Lock, options: GuardOptions) -> Self {
        let state = Arc::new(watch::Sender::new(State { lock, lost: None }));
        let watchdog = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(watchdog(manager.clone(), state.clone(), options))),
            Err(_) => {
                tracing::debug!("no tokio runtime: the guard has no watchdog");
                None
            }
        };
        LockGuard {
            manager,
            state,
            watchdog,
            released: false,
        }
    }

    /// The guarded resource's name.
    pub fn resource(&self) -> String {
        self.state.borrow().lock.resource().to_string()
    }

    /// The validity left now (zero once expired); it grows back with each extension.
    pub fn remaining(&self) -> Duration {
        self.state.borrow().lock.remaining()
    }

    /// The guard's own copy of its lock, for the crate only: handing users a `Lock` would let
    /// other code release what the guard still extends.
    pub(crate) fn current(&self) -> Lock {
        self.state.borrow().lock.duplicate()
    }

    /// The lock's token.
    pub fn token(&self) -> LockToken {
        self.state.borrow().lock.token().clone()
    }

    /// The current validity deadline: after it the lock must be presumed lost.
    pub fn validity_deadline(&self) -> Instant {
        self.state.borrow().lock.validity_deadline()
    }

    /// Whether the lock still has validity left and was not lost.
    pub fn is_valid(&self) -> bool {
        let state = self.state.borrow();
        state.lost.is_none() && state.lock.is_valid()
    }

    /// Whether the lost signal has fired.
    pub fn is_lost(&self) -> bool {
        self.state.borrow().lost.is_some()
    }

    /// Why the lock was lost, once it was.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.state.borrow().lost.clone()
    }

    /// Completes when the lock is lost (at once if it already was), with the reason. Cancel
    /// safe: use it in `tokio::select!` against the critical section. Never completes while
    /// the lock is held; without a watchdog (no runtime at creation) it never completes.
    pub async fn lost(&self) -> LostReason {
        let mut signal = self.state.subscribe();
        if let Ok(state) = signal.wait_for(|s| s.lost.is_some()).await
            && let Some(reason) = state.lost.clone()
        {
            return reason;
        }
        // The sender lives in `self`, so the channel cannot close while we borrow it.
        std::future::pending().await
    }

    /// Stop the watchdog and release the lock now.
    ///
    /// Returns `Ok(true)` when a quorum still held the lock, `Ok(false)` when it had expired
    /// or been taken over.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when fewer than a quorum answered; the keys on the masters
    /// that answered are deleted and the others expire with their TTL.
    pub async fn release(mut self) -> Result<bool, LockError> {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
            // Wait for it to stop so that no extension runs after the release.
            let _ = watchdog.await;
        }
        let mut lock = self.current();
        let result = self.manager.release(&mut lock).await;
        self.released = true;
        result
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if self.released {
            return;
        }
        self.manager
            .release_in_background(self.current(), "a dropped guard's lock");
    }
}

#[cfg(test)]
mod tests;
