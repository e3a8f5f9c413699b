//! The seed-shaped facade: one handle per resource, with the original README's method names,
//! as a thin layer over [`LockManager`].
//!
//! A handle has one owner: the methods that change what it holds take `&mut self`, so an
//! acquisition is extended or released only by the code that made it. Tasks that contend for
//! a resource each build their own handle over one shared [`LockManager`].

use std::time::{Duration, Instant};

use crate::config::LockConfig;
use crate::error::LockError;
use crate::guard::{GuardOptions, LockGuard};
use crate::input::Resource;
use crate::lock::{Lock, LockInfo};
use crate::manager::LockManager;
use crate::retry::RetryPolicy;

/// How far the backoff of [`RedisDistributedLock::acquire_with_retry`] may grow: the random
/// delay before a retry is capped at this many times the base delay.
pub const MAX_BACKOFF_FACTOR: u32 = 32;

/// A lock on one resource, with a fixed TTL: the crate's simple entry point.
///
/// # One owner per handle
/// The handle remembers the [`Lock`] it currently holds, and [`release`](Self::release) and
/// [`extend`](Self::extend) act on that acquisition. The methods that change it
/// ([`acquire`](Self::acquire), [`acquire_with_retry`](Self::acquire_with_retry),
/// [`acquire_with`](Self::acquire_with), [`release`](Self::release),
/// [`extend`](Self::extend)) take `&mut self`, so an acquisition can be extended or released
/// only by the code that made it, and no task ever waits on another task's backoff or round
/// trip through a shared handle.
///
/// To share a resource between tasks, give **each task its own handle**, built cheaply over
/// one shared [`LockManager`] with [`RedisDistributedLock::with_manager`] (one connection per
/// master however many handles there are), or use the manager directly and hand [`Lock`] /
/// [`LockGuard`] values to the tasks that hold them. The handle is `Send + Sync`, so it can
/// be moved into a task or read (`is_locked`, `get_lock_info`) through a shared reference,
/// but a shared reference cannot acquire, extend or release:
///
/// ```compile_fail,E0596
/// use std::sync::Arc;
/// use redlock_cluster::RedisDistributedLock;
///
/// async fn release_through_arc(lock: Arc<RedisDistributedLock>) {
///     // error[E0596]: cannot borrow data in an `Arc` as mutable
///     let _ = lock.release().await;
/// }
/// ```
///
/// ```no_run
/// use std::time::Duration;
/// use redlock_cluster::{LockConfig, LockManager, RedisDistributedLock};
///
/// # async fn demo() -> Result<(), redlock_cluster::LockError> {
/// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
/// let mut tasks = Vec::new();
/// for worker in 0..4 {
///     // Each task owns its handle; all of them share the manager's connections.
///     let mut lock = RedisDistributedLock::with_manager(
///         manager.clone(),
///         "reports/daily".to_string(),
///         Duration::from_secs(10),
///     )?;
///     tasks.push(tokio::spawn(async move {
///         if lock.acquire_with_retry(5, Duration::from_millis(100)).await? {
///             println!("worker {worker} holds the lock");
///             lock.release().await?;
///         }
///         Ok::<_, redlock_cluster::LockError>(())
///     }));
/// }
/// # Ok(()) }
/// ```
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use redlock_cluster::RedisDistributedLock;
///
/// # async fn demo() -> Result<(), redlock_cluster::LockError> {
/// // One URL of a cluster node: the voters are that cluster's masters.
/// // Several standalone URLs: classic Redlock over independent masters.
/// let mut lock = RedisDistributedLock::new(
///     vec!["redis://127.0.0.1:7000".to_string()],
///     "invoices/2024-06".to_string(),
///     Duration::from_secs(10),
/// )?;
///
/// if lock.acquire_with_retry(5, Duration::from_millis(100)).await? {
///     // Critical section: finish before the validity deadline.
///     let deadline = lock.validity_deadline();
///     println!("held until {deadline:?}");
///
///     // Need more time? The remaining validity becomes just under 10 s from now.
///     lock.extend(Duration::from_secs(10)).await?;
///
///     let info = lock.get_lock_info().await?;
///     assert!(info.held_by_caller);
///
///     lock.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisDistributedLock {
    /// The engine; shared with every other handle built from it.
    manager: LockManager,
    /// The resource this handle locks.
    resource: String,
    /// The TTL of every acquisition, already checked and rounded to whole milliseconds.
    ttl: Duration,
    /// This handle's current acquisition, if any (possibly expired: check `is_valid`). Plain
    /// data, no mutex: only the owner (`&mut self`) changes it.
    held: Option<Lock>,
}

impl RedisDistributedLock {
    /// The fencing token of this handle's current acquisition ([`Lock::fencing_token`]):
    /// `None` when the handle holds nothing or its manager has fencing off. Send it with every
    /// write to the protected resource.
    pub fn fencing_token(&self) -> Option<u64> {
        self.lock().and_then(Lock::fencing_token)
    }

    /// A lock on `resource` over the Redis nodes `nodes`, with the default [`LockConfig`].
    ///
    /// Nothing is connected yet: the first operation reads the topology and connects. One
    /// URL of a cluster node means cluster mode over that cluster's masters; several
    /// standalone URLs mean independent masters (see [`crate::Mode::Auto`]).
    ///
    /// Each call builds its own [`LockManager`] and so its own connections; for several
    /// handles in one process use [`with_manager`](Self::with_manager).
    ///
    /// # Errors
    /// [`LockError::InvalidUrl`] for an empty list or a malformed or duplicate URL;
    /// [`LockError::InvalidResource`] for an empty or too long resource name;
    /// [`LockError::InvalidTtl`] for a TTL that is zero, over [`crate::MAX_TTL`] or not longer
    /// than the clock-drift allowance.
    pub fn new(nodes: Vec<String>, resource: String, ttl: Duration) -> Result<Self, LockError> {
        Self::with_config(nodes, resource, ttl, LockConfig::new())
    }

    /// Like [`RedisDistributedLock::new`], with a custom configuration (timeouts, drift,
    /// key prefix, mode).
    ///
    /// # Errors
    /// As [`RedisDistributedLock::new`], plus [`LockError::InvalidConfig`].
    pub fn with_config(
        nodes: Vec<String>,
        resource: String,
        ttl: Duration,
        config: LockConfig,
    ) -> Result<Self, LockError> {
        Self::with_manager(LockManager::new(&nodes, config)?, resource, ttl)
    }

    /// A lock on `resource` that shares `manager` (its connections and topology) with every
    /// other lock built from it. This is how tasks share a resource: each builds its own
    /// handle over a clone of one manager (a clone is a reference count, not a connection).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redlock_cluster::{LockConfig, LockManager, RedisDistributedLock};
    ///
    /// # fn demo() -> Result<(), redlock_cluster::LockError> {
    /// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
    /// let locks: Vec<RedisDistributedLock> = (0..1000)
    ///     .map(|i| {
    ///         RedisDistributedLock::with_manager(
    ///             manager.clone(),
    ///             format!("account/{i}"),
    ///             Duration::from_secs(5),
    ///         )
    ///     })
    ///     .collect::<Result<_, _>>()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`LockError::InvalidResource`] or [`LockError::InvalidTtl`], as for
    /// [`RedisDistributedLock::new`].
    pub fn with_manager(
        manager: LockManager,
        resource: String,
        ttl: Duration,
    ) -> Result<Self, LockError> {
        Resource::new(&resource)?;
        let ttl = manager.config().check_ttl(ttl)?;
        Ok(RedisDistributedLock {
            manager,
            resource,
            ttl,
            held: None,
        })
    }

    /// The resource this handle locks.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The TTL of each acquisition (rounded down to whole milliseconds).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The manager behind this handle, to build more handles or guards that share it.
    pub fn manager(&self) -> &LockManager {
        &self.manager
    }

    /// One attempt to take the lock for [`ttl`](Self::ttl), without retrying.
    ///
    /// Returns `Ok(true)` when a quorum granted it, and `Ok(false)` when anyone holds it,
    /// **including this handle**: a second `acquire` while the first acquisition is still
    /// alive returns `false` (locks are not re-entrant; use [`extend`](Self::extend) to keep
    /// holding).
    ///
    /// If the future is dropped before it completes, the handle keeps what it held before,
    /// and any keys the interrupted round wrote are released in the background.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when fewer than a quorum of masters answered;
    /// [`LockError::ValidityExpired`] when the round took longer than the TTL allows.
    pub async fn acquire(&mut self) -> Result<bool, LockError> {
        self.acquire_with(&RetryPolicy::once()).await
    }

    /// Take the lock, retrying up to `max_retries` times after the first attempt (so at most
    /// `max_retries + 1` attempts).
    ///
    /// The delay before retry `n` (from 0) is random in `[0, min(base_delay * 2^n,
    /// base_delay * MAX_BACKOFF_FACTOR)]` (exponential backoff with full jitter), cut short to
    /// about the holder's remaining TTL when the masters reported it, so a waiter arrives
    /// just after an abandoned lock expires. The backoff sleeps hold nothing that another
    /// handle needs.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire), for the last attempt: contention after the last
    /// attempt is `Ok(false)`, an infrastructure failure is the error.
    pub async fn acquire_with_retry(
        &mut self,
        max_retries: u32,
        base_delay: Duration,
    ) -> Result<bool, LockError> {
        let policy = RetryPolicy::new()
            .max_attempts(max_retries.saturating_add(1))
            .base_delay(base_delay)
            .max_delay(base_delay.saturating_mul(MAX_BACKOFF_FACTOR));
        self.acquire_with(&policy).await
    }

    /// Take the lock, retrying per `policy`.
    ///
    /// # Errors
    /// As [`acquire_with_retry`](Self::acquire_with_retry).
    pub async fn acquire_with(&mut self, policy: &RetryPolicy) -> Result<bool, LockError> {
        match self
            .manager
            .acquire_with(&self.resource, self.ttl, policy)
            .await?
        {
            Some(lock) => {
                // A quorum granted a new token, so any previous acquisition of this handle
                // is gone from a majority already.
                self.held = Some(lock);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Release this handle's acquisition (compare-and-delete on every master).
    ///
    /// Returns `Ok(true)` when a quorum still held it, `Ok(false)` when this handle holds
    /// nothing or its lock had expired or been taken over. Never touches another holder's
    /// keys, whether another process or another handle over the same manager.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when fewer than a quorum answered; the handle then keeps
    /// the lock, so `release` can be called again (the keys expire with their TTL anyway).
    /// The handle also keeps it if the future is dropped before it completes.
    pub async fn release(&mut self) -> Result<bool, LockError> {
        let Some(lock) = self.held.as_mut() else {
            return Ok(false);
        };
        let released = self.manager.release(lock).await?;
        self.held = None;
        Ok(released)
    }

    /// Extend this handle's acquisition so that it stays valid for just under `ttl` **from
    /// this call** (the new remaining time replaces the old one; it is not added to it):
    /// the new deadline is `start + ttl - drift`, with `start` taken before the extend is
    /// sent.
    ///
    /// Returns `Ok(false)` when this handle holds nothing, when its validity has already
    /// run out (someone else may hold the resource by now), or when fewer than a quorum
    /// extended it; the old deadline then still stands. A failed extend deletes nothing.
    ///
    /// # Errors
    /// [`LockError::InvalidTtl`] for an unusable `ttl`; [`LockError::Unavailable`] when fewer
    /// than a quorum answered.
    pub async fn extend(&mut self, ttl: Duration) -> Result<bool, LockError> {
        match self.held.as_mut() {
            Some(lock) => self.manager.extend(lock, ttl).await,
            None => Ok(false),
        }
    }

    /// Whether anyone (this handle or another client) holds the resource, decided by a
    /// quorum of masters.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when too few masters answered to decide.
    pub async fn is_locked(&self) -> Result<bool, LockError> {
        self.manager.is_locked(&self.resource).await
    }

    /// Who holds the resource, read from every master and decided by quorum: whether it is
    /// locked, whether by this handle ([`LockInfo::held_by_caller`]), the validity a quorum
    /// still guarantees, and each master's view.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when too few masters answered to decide.
    pub async fn get_lock_info(&self) -> Result<LockInfo, LockError> {
        self.manager
            .inspect(&self.resource, self.held.as_ref().map(Lock::token))
            .await
    }

    /// The validity deadline of this handle's acquisition: the instant after which it must
    /// be presumed lost. `None` when the handle holds nothing; an instant in the past when
    /// the acquisition has expired.
    pub fn validity_deadline(&self) -> Option<Instant> {
        self.held.as_ref().map(Lock::validity_deadline)
    }

    /// This handle's current acquisition (token, deadline, granting masters), if any. It
    /// may have expired: check [`Lock::is_valid`].
    pub fn lock(&self) -> Option<&Lock> {
        self.held.as_ref()
    }

    /// One attempt (or several, per [`GuardOptions::retry`]) to take the resource for
    /// [`ttl`](Self::ttl), returning a [`LockGuard`] that releases it when dropped and can
    /// keep it alive with a watchdog.
    ///
    /// The guard holds its own acquisition, independent of this handle's state:
    /// [`release`](Self::release) on the handle does not release a guard's lock (it returns
    /// `false` unless the handle holds an acquisition of its own). While a guard holds the
    /// resource, [`acquire`](Self::acquire) returns `false`.
    ///
    /// # Errors
    /// As [`LockManager::lock_guard`].
    pub async fn acquire_guard(
        &self,
        options: GuardOptions,
    ) -> Result<Option<LockGuard>, LockError> {
        self.manager
            .lock_guard(&self.resource, self.ttl, options)
            .await
    }
}

#[cfg(test)]
mod tests;
