//! A lock held for a scope: released when dropped, optionally kept alive by a watchdog task,
//! with a signal that fires when the lock is lost.
//!
//! The design follows two well-tried shapes: node-redlock's `using()`, which extends the lock
//! in the background and hands the routine an abort signal, and etcd's `Session.Done()`, a
//! channel that closes when the lease can no longer be kept alive. Here the signal is
//! [`LockGuard::lost`], meant for `tokio::select!` against the critical section.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::LockError;
use crate::lock::{Lock, LockToken};
use crate::manager::LockManager;
use crate::quorum::drift;
use crate::retry::RetryPolicy;

/// The default extension interval of the watchdog, as a fraction of the TTL: the lock is
/// extended when a third of its TTL has passed, leaving two thirds for the extension (and one
/// more try) to get through.
pub const DEFAULT_EXTEND_FRACTION: f64 = 1.0 / 3.0;

/// The watchdog's step between retries of a failed extension: a retry waits one step plus a
/// random time of up to 1, 2, 4, then 5 steps.
const RETRY_STEP: Duration = Duration::from_millis(10);

/// How a [`LockGuard`] is acquired and kept.
///
/// ```
/// use std::time::Duration;
/// use redlock_cluster::{GuardOptions, RetryPolicy};
///
/// let options = GuardOptions::new()
///     .auto_extend(true)
///     .extend_fraction(0.25)
///     .max_hold(Duration::from_secs(60))
///     .retry(RetryPolicy::new().max_attempts(10));
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GuardOptions {
    auto_extend: bool,
    extend_fraction: f64,
    max_hold: Option<Duration>,
    retry: RetryPolicy,
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl GuardOptions {
    /// The defaults: no auto-extension, extension fraction 1/3, no
    /// maximum hold time, a single acquire attempt ([`RetryPolicy::once`]).
    pub fn new() -> Self {
        GuardOptions {
            auto_extend: false,
            extend_fraction: DEFAULT_EXTEND_FRACTION,
            max_hold: None,
            retry: RetryPolicy::once(),
        }
    }

    /// Whether a watchdog task extends the lock (to its TTL from the extension) every
    /// `ttl * extend_fraction`, for as long as the guard lives. Without it the lock simply
    /// expires at its deadline unless released first. Defaults to `false`.
    #[must_use]
    pub fn auto_extend(mut self, yes: bool) -> Self {
        self.auto_extend = yes;
        self
    }

    /// When the watchdog extends, as a fraction of the TTL after the acquisition (or the last
    /// extension) started; in `(0, 1)`. Smaller means more traffic but more room for a slow
    /// or failed extension before the validity runs out. Defaults to
    /// 1/3.
    #[must_use]
    pub fn extend_fraction(mut self, fraction: f64) -> Self {
        self.extend_fraction = fraction;
        self
    }

    /// The longest the guard may hold the lock, counted from when the guard was created.
    /// When it is reached the watchdog stops extending and the lost signal fires with
    /// [`LostReason::MaxHold`]; the lock itself is not deleted (the holder may still be in
    /// its critical section) and expires at its current deadline, at most one TTL later,
    /// unless released first. Defaults to no limit.
    #[must_use]
    pub fn max_hold(mut self, limit: Duration) -> Self {
        self.max_hold = Some(limit);
        self
    }

    /// How the guard is acquired. Defaults to [`RetryPolicy::once`] (one attempt).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Check every value.
    ///
    /// # Errors
    /// [`LockError::InvalidConfig`] for an extension fraction outside `(0, 1)` or a zero
    /// maximum hold time.
    pub fn validate(&self) -> Result<(), LockError> {
        if !(self.extend_fraction > 0.0 && self.extend_fraction < 1.0) {
            return Err(LockError::InvalidConfig(format!(
                "the extension fraction must be in (0, 1), got {}",
                self.extend_fraction
            )));
        }
        if self.max_hold.is_some_and(|limit| limit.is_zero()) {
            return Err(LockError::InvalidConfig(
                "the maximum hold time must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

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
        self.check_owner(&lock)?;
        options.validate()?;
        Ok(LockGuard::start(self.clone(), lock, options))
    }
}

impl LockGuard {
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
        let lock = self.current();
        let result = self.manager.release(&lock).await;
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

/// The watchdog: sleeps until the next extension (with auto-extension), the deadline or the
/// maximum hold time, whichever comes first, and raises the lost signal when the lock can no
/// longer be kept.
///
/// An extension (with its retries) races the validity deadline and the hold end: whatever
/// round is in flight, the lost signal fires when the deadline passes, not when the round
/// ends. The abandoned round is dropped; a late `PEXPIRE` it sent can only lengthen our own
/// keys, and the release that follows a loss deletes them.
async fn watchdog(manager: LockManager, state: Arc<watch::Sender<State>>, options: GuardOptions) {
    let hold_end = options
        .max_hold
        .and_then(|limit| tokio::time::Instant::now().checked_add(limit));
    let reason = loop {
        let lock = state.borrow().lock.duplicate();
        let ttl = lock.ttl();
        // The deadline is `start + ttl - drift`, so this is `start + ttl * fraction - drift`:
        // the extension interval counted from when the last acquire or extend started.
        let mut wake = lock.deadline;
        if options.auto_extend {
            let before_deadline = ttl.mul_f64(1.0 - options.extend_fraction);
            wake = wake.checked_sub(before_deadline).unwrap_or(wake);
        }
        if let Some(end) = hold_end {
            wake = wake.min(end);
        }
        tokio::time::sleep_until(wake).await;

        if let (Some(end), Some(limit)) = (hold_end, options.max_hold)
            && tokio::time::Instant::now() >= end
        {
            break LostReason::MaxHold(limit);
        }
        if !lock.is_valid() {
            break LostReason::Expired;
        }
        if !options.auto_extend {
            continue;
        }
        let cutoff = hold_end.map_or(lock.deadline, |end| end.min(lock.deadline));
        // Cut off at the deadline (or the hold end) whatever round is in flight; the checks
        // at the top of the loop then name the reason.
        let Ok(kept) = tokio::time::timeout_at(cutoff, keep(&manager, &lock, ttl)).await else {
            continue;
        };
        match kept {
            Ok(extended) => state.send_modify(|s| s.lock = extended),
            Err(reason) => break reason,
        }
    };
    tracing::debug!(%reason, "guard lost its lock");
    state.send_modify(|s| s.lost = Some(reason.clone()));
    if matches!(reason, LostReason::MaxHold(_)) {
        // Still valid until its deadline, and the holder may still be in its critical
        // section: left to expire (or to an explicit release).
        return;
    }
    // Lost: whatever keys are left (a late extension may even have lengthened some) are ours
    // and no use to anyone; free them for the next holder. Still in this task, so an explicit
    // release or a drop of the guard (which abort it) take over.
    let lock = state.borrow().lock.duplicate();
    match manager.release(&lock).await {
        Ok(held) => tracing::debug!(resource = lock.resource(), held, "lost lock released"),
        Err(error) => tracing::debug!(
            resource = lock.resource(),
            %error,
            "lost lock's release failed; the keys expire with their TTL"
        ),
    }
}

/// Extend `lock` to `ttl`, retrying a failed extension (refused, or too few voters answered)
/// with a short jittered backoff, on the refreshed topology when the failure asked for one,
/// for as long as the validity left allows one more round. Returns the extended lock, or why
/// it could not be kept.
async fn keep(manager: &LockManager, lock: &Lock, ttl: Duration) -> Result<Lock, LostReason> {
    let config = manager.config();
    // The worst case of one extension round: every vote waits out the node timeout, and the
    // result must still leave validity after the drift allowance.
    let round = config
        .node_timeout_value()
        .saturating_add(drift(ttl, config.drift_factor_value()));
    let backoff = RetryPolicy::new()
        .base_delay(RETRY_STEP)
        .max_delay(RETRY_STEP * 5);
    let mut retry = 0;
    loop {
        let mut extended = lock.duplicate();
        let failure = match manager.extend(&mut extended, ttl).await {
            Ok(true) => return Ok(extended),
            Ok(false) if !lock.is_valid() => return Err(LostReason::Expired),
            Ok(false) => LostReason::ExtendRefused,
            Err(error) if error.is_invalid_input() => return Err(LostReason::ExtendFailed(error)),
            Err(error) => LostReason::ExtendFailed(error),
        };
        let delay = RETRY_STEP.saturating_add(backoff.delay(retry, None));
        let Some(spare) = lock.remaining().checked_sub(delay.saturating_add(round)) else {
            return Err(failure);
        };
        tracing::debug!(
            resource = lock.resource(),
            retry,
            ?delay,
            reason = %failure,
            "extension failed; retrying while validity lasts"
        );
        tokio::time::sleep(delay).await;
        // A redirect or a lost cluster voter asked for a refresh: run the retry on it.
        manager.settle_topology(spare).await;
        if lock.remaining() <= round {
            return Err(failure);
        }
        retry = retry.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(GuardOptions::new().validate().is_ok());
        for fraction in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert!(
                GuardOptions::new()
                    .extend_fraction(fraction)
                    .validate()
                    .is_err(),
                "{fraction}"
            );
        }
        assert!(
            GuardOptions::new()
                .max_hold(Duration::ZERO)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn guard_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LockGuard>();
    }
}
