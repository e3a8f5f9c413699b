//! When to try again: bounded attempts, exponential backoff with full jitter, optionally
//! shortened by how long the current holders still have.

use std::time::Duration;

use rand::RngExt;

/// How an acquire retries after contention or an unavailable quorum.
///
/// Attempt `n` (counting retries from 0) waits a random time in `[0, min(max_delay,
/// base_delay * 2^n)]` ("full jitter", which spreads competing clients out best). When the
/// holders reported their remaining TTL and [`RetryPolicy::use_holder_ttl`] is on, the wait is
/// cut to that remaining time plus a small jitter, since waiting longer only loses the race.
///
/// ```
/// use std::time::Duration;
/// use redlock_cluster::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .max_attempts(5)
///     .base_delay(Duration::from_millis(20))
///     .max_delay(Duration::from_millis(500));
/// assert_eq!(policy.attempts(), 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    use_holder_ttl: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// The default policy: 3 attempts, 50 ms base delay, 1 s maximum delay, holder TTL used.
    pub fn new() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            use_holder_ttl: true,
        }
    }

    /// A single attempt, no retry.
    pub fn once() -> Self {
        Self::new().max_attempts(1)
    }

    /// Total number of attempts, the first included (a value of 0 is treated as 1).
    /// Defaults to 3.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Backoff base: the cap of the first retry's random delay. Defaults to 50 ms.
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Upper bound of any single delay. Defaults to 1 s.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Whether to shorten the wait to the holders' remaining TTL (it never lengthens it).
    /// Defaults to `true`.
    #[must_use]
    pub fn use_holder_ttl(mut self, yes: bool) -> Self {
        self.use_holder_ttl = yes;
        self
    }

    /// Total number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The cap of the random delay before retry number `retry` (0-based):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn delay_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// The delay before retry number `retry`, given the holders' remaining time if known.
    pub fn delay(&self, retry: u32, holder_remaining: Option<Duration>) -> Duration {
        let mut rng = rand::rng();
        let backoff = jitter(&mut rng, self.delay_cap(retry));
        match holder_remaining {
            Some(left) if self.use_holder_ttl && left < backoff => {
                // Arrive just after the key expires; a little jitter keeps the waiters from
                // arriving in lockstep.
                let spread = jitter(&mut rng, self.base_delay.min(self.max_delay) / 4);
                left.saturating_add(spread).min(backoff)
            }
            _ => backoff,
        }
    }
}

fn jitter(rng: &mut impl rand::Rng, cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn caps_double_until_max() {
        let p = RetryPolicy::new()
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(100));
        let caps: Vec<u64> = (0..6).map(|r| p.delay_cap(r).as_millis() as u64).collect();
        assert_eq!(caps, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(p.delay_cap(u32::MAX), Duration::from_millis(100));
        assert_eq!(RetryPolicy::new().max_attempts(0).attempts(), 1);
    }

    proptest! {
        #[test]
        fn delays_stay_within_bounds(
            retry in 0u32..100,
            base_ms in 0u64..10_000,
            max_ms in 0u64..60_000,
            holder in proptest::option::of(0u64..120_000),
            use_holder in any::<bool>(),
        ) {
            let p = RetryPolicy::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms))
                .use_holder_ttl(use_holder);
            let d = p.delay(retry, holder.map(Duration::from_millis));
            prop_assert!(d <= Duration::from_millis(max_ms));
            // The holder hint may only shorten the wait, never lengthen it.
            prop_assert!(d <= p.delay_cap(retry));
            if let (true, Some(left)) = (use_holder, holder.map(Duration::from_millis)) {
                prop_assert!(d <= left + Duration::from_millis(base_ms.min(max_ms)) / 4 || d <= left);
            }
        }
    }
}
