//! Acquisition: one attempt, or the retry loop with its backoff and notified waits.

use std::time::Duration;

use crate::engine::round::Attempt;
use crate::error::LockError;
use crate::features::notify::Waiter;
use crate::input::Resource;
use crate::lock::Lock;
use crate::retry::RetryPolicy;
use crate::topology::key_on;

use super::LockManager;

impl LockManager {
    /// One attempt to take `resource` for `ttl`, without retrying.
    ///
    /// Returns `Ok(Some(lock))` when a quorum granted it with validity left, `Ok(None)` when
    /// others hold it. Whatever the outcome, keys written by a failed attempt are released on
    /// every voter in a spawned task; dropping this future mid-flight does the same.
    ///
    /// # Errors
    /// Invalid resource or TTL; [`LockError::Unavailable`] when fewer than a quorum of voters
    /// answered; [`LockError::ValidityExpired`] when the round took longer than the TTL
    /// allows.
    pub async fn try_acquire(
        &self,
        resource: &str,
        ttl: Duration,
    ) -> Result<Option<Lock>, LockError> {
        self.acquire_with(resource, ttl, &RetryPolicy::once()).await
    }

    /// Take `resource` for `ttl`, retrying per the configured [`RetryPolicy`].
    ///
    /// # Errors
    /// As [`LockManager::try_acquire`]; after the last attempt, an infrastructure failure is
    /// returned as the error and contention as `Ok(None)`.
    pub async fn acquire(&self, resource: &str, ttl: Duration) -> Result<Option<Lock>, LockError> {
        let retry = self.inner.config.retry_policy().clone();
        self.acquire_with(resource, ttl, &retry).await
    }

    /// Take `resource` for `ttl`, retrying per `retry`.
    ///
    /// # Errors
    /// As [`LockManager::acquire`].
    pub async fn acquire_with(
        &self,
        resource: &str,
        ttl: Duration,
        retry: &RetryPolicy,
    ) -> Result<Option<Lock>, LockError> {
        self.check_open()?;
        // Checked once here, not on every attempt.
        let resource = Resource::new(resource)?;
        let ttl = self.check_ttl(ttl)?;
        let attempts = retry.attempts();
        let mut last = Ok(None);
        let mut waiter = self.queue_behind_waiters(resource, retry).await;
        for attempt in 0..attempts {
            let outcome = match self.round(resource).await {
                Ok(round) => {
                    let attempt = if self.inner.config.fencing_enabled() {
                        round.acquire_fenced(resource, ttl).await
                    } else {
                        round.acquire(resource, ttl).await
                    };
                    match attempt {
                        Attempt::Failed(error) => {
                            Err(error.explained(|node| key_on(&round.voters, node)))
                        }
                        other => Ok(other),
                    }
                }
                Err(error) => Err(error),
            };
            let hint = match outcome {
                Ok(Attempt::Acquired(mut lock)) => {
                    lock.owner = self.inner.id;
                    return Ok(Some(lock));
                }
                Ok(Attempt::Contended(hint)) => {
                    last = Ok(None);
                    hint
                }
                // Infrastructure failures (a round without quorum, or no node answering the
                // topology read) are retried; anything that needs a change first
                // (credentials, permissions, configuration) is not.
                Ok(Attempt::Failed(error)) | Err(error) if error.is_retryable() => {
                    last = Err(error);
                    None
                }
                Ok(Attempt::Failed(error)) | Err(error) => return Err(error),
            };
            if attempt + 1 < attempts {
                let delay = retry.delay(attempt, hint);
                tracing::debug!(
                    resource = resource.as_str(),
                    attempt,
                    ?delay,
                    "retrying acquire"
                );
                self.wait_to_retry(resource, &mut waiter, delay).await;
            }
        }
        last
    }

    /// Before a first attempt that may retry: if other acquires of this manager already wait
    /// for `resource`, join the back of their queue and wait one backoff (or for the turn)
    /// instead of barging ahead of them (see `notify`).
    async fn queue_behind_waiters(
        &self,
        resource: Resource<'_>,
        retry: &RetryPolicy,
    ) -> Option<Waiter> {
        let notifier = self.inner.notifier.as_ref()?;
        if retry.attempts() < 2 || !notifier.has_waiters(resource.as_str()) {
            return None;
        }
        let mut waiter = None;
        self.wait_to_retry(resource, &mut waiter, retry.delay(0, None))
            .await;
        waiter
    }

    /// Sleep `delay` before retrying, or less when a release of `resource` is noticed first
    /// (notified waits, see `notify`). The first wait joins the resource's wait queue.
    async fn wait_to_retry(
        &self,
        resource: Resource<'_>,
        waiter: &mut Option<Waiter>,
        delay: Duration,
    ) {
        if let (None, Some(notifier)) = (waiter.as_ref(), self.inner.notifier.as_ref()) {
            // The voters from the cached topology; without them, plain polling.
            if let Ok(round) = self.round(resource).await {
                *waiter = Some(notifier.join(resource.as_str(), &round.voters));
            }
        }
        match waiter {
            Some(waiter) => waiter.wait(delay).await,
            None => tokio::time::sleep(delay).await,
        }
    }
}
