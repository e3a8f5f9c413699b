//! `GuardOptions`: how a `LockGuard` is acquired (retries) and kept (auto-extension, its
//! interval, the maximum hold time), with their validation.

use std::time::Duration;

use crate::error::LockError;
use crate::retry::RetryPolicy;

// Named by the docs.
#[cfg(doc)]
use super::{LockGuard, LostReason};

/// The default extension interval of the watchdog, as a fraction of the TTL: the lock is
/// extended when a third of its TTL has passed, leaving two thirds for the extension (and one
/// more try) to get through.
pub const DEFAULT_EXTEND_FRACTION: f64 = 1.0 / 3.0;

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
    pub(super) auto_extend: bool,
    pub(super) extend_fraction: f64,
    pub(super) max_hold: Option<Duration>,
    pub(super) retry: RetryPolicy,
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
