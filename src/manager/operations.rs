//! What is done to a held or named lock: extend (retried once after a redirect), release
//! (also in the background), inspect.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::round::{Round, spawn_release};
use crate::error::{LockError, NodeError};
use crate::input::Resource;
use crate::lock::{Lock, LockInfo, LockToken};
use crate::topology::key_on;

use super::LockManager;

/// Whether a round failed because votes were redirected (the slots moved to other masters).
fn redirected(error: &LockError) -> bool {
    error
        .failures()
        .iter()
        .any(|failure| matches!(failure.error, NodeError::Redirected(_)))
}

impl LockManager {
    /// Extend a held lock to `ttl` from now, by quorum (compare-and-`PEXPIRE`).
    ///
    /// On success the lock's new deadline is `start + ttl - drift`, where `start` is taken
    /// before the first extend is sent, so the remaining time becomes just under `ttl` (not
    /// the old remaining time plus `ttl`). A lock whose validity has already run out cannot
    /// be extended (`Ok(false)`): another client may hold it by now.
    ///
    /// A failed extend whose lock is gone anyway (a quorum refused, or the old validity ran
    /// out during the round) ends the lock: some of its keys may have been lengthened, and a
    /// lock nobody holds must not block others for the new TTL, so those keys are released in
    /// the background and the lock's deadline becomes now. When too few voters answered and
    /// validity is left, the lock keeps its old deadline: retry, or release it.
    ///
    /// When votes were redirected (`MOVED`/`ASK`: the slots moved) and that cost the quorum,
    /// the call waits for a topology refresh (no longer than the lock's validity) and runs the
    /// round once more on the new masters, if the lock is still valid by then.
    ///
    /// # Errors
    /// Invalid TTL; [`LockError::Unavailable`] when fewer than a quorum answered.
    pub async fn extend(&self, lock: &mut Lock, ttl: Duration) -> Result<bool, LockError> {
        self.check_open()?;
        self.check_owner(lock)?;
        let ttl = self.check_ttl(ttl)?;
        if !lock.is_valid() {
            return Ok(false);
        }
        let cache = &self.inner.topology;
        let topology = cache.get().await.map_err(|e| e.explained(|_| None))?;
        let round = self.round_on(&topology, Resource::of(lock))?;
        let explain = |e: LockError, round: &Round<'_>| e.explained(|n| key_on(&round.voters, n));
        let error = match round.extend(lock, ttl).await {
            Err(error) if redirected(&error) => explain(error, &round),
            decided => return decided.map_err(|e| explain(e, &round)),
        };
        let refreshed = tokio::time::timeout(lock.remaining(), cache.refresh_now(&topology)).await;
        let Ok(Ok(fresh)) = refreshed else {
            return Err(error);
        };
        if Arc::ptr_eq(&fresh, &topology) || !lock.is_valid() {
            return Err(error);
        }
        tracing::debug!(
            resource = lock.resource(),
            "extend redirected; retrying on the new topology"
        );
        let round = self.round_on(&fresh, Resource::of(lock))?;
        round
            .extend(lock, ttl)
            .await
            .map_err(|e| explain(e, &round))
    }

    /// Wait (no longer than `limit`) for the topology refresh that a failed round asked for,
    /// if any, so that a retry runs on the new view. A failed or slow refresh leaves the last
    /// view in place; the retry then runs on it.
    pub(crate) async fn settle_topology(&self, limit: Duration) {
        let settled = tokio::time::timeout(limit, self.inner.topology.settled()).await;
        if let Ok(Err(error)) = settled {
            tracing::debug!(%error, "topology refresh failed; retrying on the last view");
        }
    }

    /// Release a lock by quorum (compare-and-delete on every voter). A key that is already
    /// gone is fine.
    ///
    /// Returns `Ok(true)` when a quorum still held the lock (so it was ours until now), and
    /// `Ok(false)` when it had expired or been taken over on a majority. Once released the
    /// lock is no longer valid ([`Lock::is_valid`] is `false`).
    ///
    /// The lock is taken by `&mut`: only its owner can release it. A shared reference (for
    /// example the one [`RedisDistributedLock::lock`](crate::RedisDistributedLock::lock)
    /// hands out) is not enough:
    ///
    /// ```compile_fail
    /// # async fn bypass(handle: std::sync::Arc<redlock_cluster::RedisDistributedLock>) {
    /// let lock = handle.lock().unwrap();
    /// handle.manager().release(lock).await; // &Lock: refused at compile time
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when fewer than a quorum answered (the keys on the nodes
    /// that did answer are deleted all the same; the others expire with their TTL). The
    /// lock keeps its deadline then, so `release` can be called again.
    pub async fn release(&self, lock: &mut Lock) -> Result<bool, LockError> {
        self.check_owner(lock)?;
        // From here on a vote of the acquire round that lands late is deleted when it lands
        // (see `Lock::late`): the release below may reach that voter before it.
        lock.end_late_votes();
        let round = self.round(Resource::of(lock)).await?;
        let released = round
            .release(lock)
            .await
            .map_err(|e| e.explained(|node| key_on(&round.voters, node)));
        if let Some(notifier) = &self.inner.notifier {
            notifier.released(&lock.resource, lock.token.as_str());
        }
        if released.is_ok() {
            lock.deadline = tokio::time::Instant::now();
        }
        released
    }

    /// Read who holds `resource`, from every voter, decided by quorum. `token` (for example
    /// [`Lock::token`]) sets [`LockInfo::held_by_caller`].
    ///
    /// # Errors
    /// Invalid resource; [`LockError::Unavailable`] when too few voters answered to decide.
    pub async fn inspect(
        &self,
        resource: &str,
        token: Option<&LockToken>,
    ) -> Result<LockInfo, LockError> {
        self.check_open()?;
        let resource = Resource::new(resource)?;
        let round = self.round(resource).await?;
        let mut info = round
            .inspect(resource, token)
            .await
            .map_err(|e| e.explained(|node| key_on(&round.voters, node)))?;
        if self.inner.config.fencing_enabled() {
            info.fencing_token = round.fence_floor().await;
        }
        Ok(info)
    }

    /// Whether anyone holds `resource`, decided by quorum.
    ///
    /// # Errors
    /// As [`LockManager::inspect`].
    pub async fn is_locked(&self, resource: &str) -> Result<bool, LockError> {
        Ok(self.inspect(resource, None).await?.locked)
    }

    /// Release `lock` in a background task counted by [`LockManager::close`], and return at
    /// once: for a synchronous `Drop`. Without a tokio runtime the keys expire with their TTL.
    pub(crate) fn release_in_background(&self, lock: Lock, what: &'static str) {
        let manager = self.clone();
        let resource = lock.resource.clone();
        spawn_release(&self.inner.flight, &resource, what, async move {
            let mut lock = lock;
            match manager.release(&mut lock).await {
                Ok(released) => tracing::debug!(resource = lock.resource(), released, "{what}"),
                Err(error) => tracing::debug!(
                    resource = lock.resource(),
                    %error,
                    "release of {what} failed; the keys expire with their TTL"
                ),
            }
        });
    }
}
