//! [`LockManager`], the handle users clone and share: it checks each input once, finds the
//! voters of a resource, runs a round on them (see `round`), and retries acquisitions.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::flight::{CloseReport, InFlight};
use crate::input::{Resource, Ttl, parse_urls};
use crate::lock::{Lock, LockInfo, LockToken};
use crate::node::{SharedNode, with_deadline};
use crate::notify::{Notifier, Waiter};
use crate::redis_node::RedisSeeds;
use crate::retry::RetryPolicy;
use crate::round::{Attempt, Round, spawn_release};
use crate::topology::{Seeds, Topology, key_on, voters_share_master};
use crate::topology_cache::TopologyCache;

/// Whether a round failed because votes were redirected (the slots moved to other masters).
fn redirected(error: &LockError) -> bool {
    error
        .failures()
        .iter()
        .any(|failure| matches!(failure.error, NodeError::Redirected(_)))
}

/// Shares connections and topology among any number of locks: clone it freely (it is an
/// `Arc` inside), and build every lock of an application from one manager so that a thousand
/// locks still use one connection per master.
///
/// ```no_run
/// use std::time::Duration;
/// use redlock_cluster::{LockConfig, LockManager};
///
/// # async fn demo() -> Result<(), redlock_cluster::LockError> {
/// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
/// if let Some(lock) = manager.acquire("orders/42", Duration::from_secs(10)).await? {
///     // ... critical section, while lock.is_valid() ...
///     manager.release(&lock).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockManager {
    inner: Arc<Inner>,
}

/// Ids of managers, unique in the process (0 is never used: a lock not yet stamped).
static NEXT_MANAGER_ID: AtomicU64 = AtomicU64::new(1);

struct Inner {
    /// This manager's id, stamped on every lock it grants: a lock is extended, released or
    /// guarded only through the manager that made it.
    id: u64,
    /// Shared with the rounds' tasks.
    config: Arc<LockConfig>,
    /// Who votes, read on first use and refreshed when stale.
    topology: Arc<TopologyCache>,
    /// Whether the "voters share a master" warning was already logged.
    warned_shared: AtomicBool,
    /// The bound on rounds in flight, and the background tasks `close()` waits for.
    flight: Arc<InFlight>,
    /// Release notices and wait queues; `None` when notified waits are off.
    notifier: Option<Notifier>,
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seeds = self.inner.topology.seeds().seeds();
        let nodes: Vec<&str> = seeds.iter().map(|n| n.addr()).collect();
        f.debug_struct("LockManager")
            .field("nodes", &nodes)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl LockManager {
    /// A manager over `urls`, connecting lazily on first use. One URL of a cluster node means
    /// cluster mode over that cluster's masters; several standalone URLs mean independent
    /// masters (see [`Mode`]). URLs are `redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with the `tls` feature.
    ///
    /// # Errors
    /// [`LockError::InvalidUrl`] for an empty list, a malformed or duplicate URL;
    /// [`LockError::InvalidConfig`] for a configuration value out of range.
    pub fn new<S: AsRef<str>>(urls: &[S], config: LockConfig) -> Result<Self, LockError> {
        let urls = parse_urls(urls)?;
        #[cfg(feature = "tls")]
        let urls = crate::tls::with_root_ca(urls, &config)?;
        let seeds = RedisSeeds::new(&urls, config.connect_timeout_value());
        Self::with_seeds(config, Box::new(seeds))
    }

    /// Like [`LockManager::new`], then reads the topology and opens a connection to every
    /// voter, so that configuration mistakes surface now rather than at the first lock.
    ///
    /// # Errors
    /// As [`LockManager::new`], plus [`LockError::InvalidConfig`] when the nodes mix cluster
    /// and standalone servers or name one server twice (same `run_id`),
    /// [`LockError::NotACluster`] when cluster mode was forced against standalone nodes,
    /// [`LockError::Auth`] / [`LockError::Permission`] when the nodes refuse our credentials or
    /// commands, [`LockError::InvalidConfig`] naming the independent masters that have fewer
    /// replicas than [`LockConfig::replica_acks`] needs, and [`LockError::Unavailable`] when
    /// the mode cannot be decided yet (in [`Mode::Auto`] every seed must answer; see
    /// [`Mode`]).
    pub async fn connect<S: AsRef<str>>(urls: &[S], config: LockConfig) -> Result<Self, LockError> {
        let manager = Self::new(urls, config)?;
        let topology = manager.inner.topology.get().await?;
        let nodes: Vec<SharedNode> = match topology.as_ref() {
            Topology::Independent { nodes } => nodes.clone(),
            Topology::Cluster { masters, .. } => masters.clone(),
        };
        let limit = manager.inner.config.connect_timeout_value();
        // Connection failures are not fatal here: a minority of voters may be down.
        join_all(nodes.iter().map(|n| with_deadline(limit, n.connect()))).await;
        crate::acks::check_replicas(&manager.inner.config, topology.mode(), &nodes)?;
        Ok(manager)
    }

    /// A manager whose voters are discovered from `seeds`: real Redis nodes, or the in-memory
    /// nodes of the simulation. The configuration is checked here, once: the key prefix and
    /// voter count are not checked again when keys are derived.
    pub(crate) fn with_seeds(config: LockConfig, seeds: Box<dyn Seeds>) -> Result<Self, LockError> {
        config.validate()?;
        let topology =
            TopologyCache::new(seeds, config.mode_value(), config.connect_timeout_value());
        Ok(LockManager {
            inner: Arc::new(Inner {
                id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
                topology: Arc::new(topology),
                warned_shared: AtomicBool::new(false),
                flight: InFlight::new(config.max_rounds_in_flight_value()),
                notifier: config
                    .notify_on_release_value()
                    .then(|| Notifier::new(config.connect_timeout_value())),
                config: Arc::new(config),
            }),
        })
    }

    /// `Ok` when `lock` was granted by this manager (or a clone of it), else
    /// [`LockError::ForeignLock`]: a lock made by a manager with other voters, prefix or voter
    /// count must not be extended or released by this one (it could keep alive keys its
    /// quorum never held, while others acquire on the rest).
    pub(crate) fn check_owner(&self, lock: &Lock) -> Result<(), LockError> {
        if lock.owner == self.inner.id {
            Ok(())
        } else {
            Err(LockError::ForeignLock {
                resource: lock.resource.to_string(),
            })
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LockConfig {
        &self.inner.config
    }

    fn check_ttl(&self, ttl: Duration) -> Result<Ttl, LockError> {
        self.inner.config.ttl(ttl)
    }

    /// A round on the current voters of `resource`.
    async fn round(&self, resource: Resource<'_>) -> Result<Round<'_>, LockError> {
        let topology = self
            .inner
            .topology
            .get()
            .await
            .map_err(|e| e.explained(|_| None))?;
        self.round_on(&topology, resource)
    }

    /// A round on the voters of `resource` in `topology`.
    fn round_on(
        &self,
        topology: &Topology,
        resource: Resource<'_>,
    ) -> Result<Round<'_>, LockError> {
        let voters = topology.voters(&self.inner.config, resource.as_str().as_bytes())?;
        if voters_share_master(&voters) && !self.inner.warned_shared.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                resource = resource.as_str(),
                "two voters are one server (voter keys on one master after slots moved, or one \
                 server under two names): a round counts one vote per server, so locks stay \
                 safe, but one node failure now costs two votes"
            );
        }
        Ok(Round {
            voters: voters.into(),
            mode: topology.mode(),
            config: &self.inner.config,
            topology: &self.inner.topology,
            flight: &self.inner.flight,
        })
    }

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
    /// `Ok(false)` when it had expired or been taken over on a majority.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when fewer than a quorum answered (the keys on the nodes
    /// that did answer are deleted all the same; the others expire with their TTL).
    pub async fn release(&self, lock: &Lock) -> Result<bool, LockError> {
        self.check_owner(lock)?;
        let round = self.round(Resource::of(lock)).await?;
        let released = round
            .release(lock)
            .await
            .map_err(|e| e.explained(|node| key_on(&round.voters, node)));
        if let Some(notifier) = &self.inner.notifier {
            notifier.released(&lock.resource, lock.token.as_str());
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

    /// The voters of `resource` as `(host:port, key)` pairs, in voter order, reading the
    /// topology if needed. Useful to check where the keys live.
    ///
    /// # Errors
    /// Invalid resource, or the topology could not be read.
    pub async fn voters_of(&self, resource: &str) -> Result<Vec<(String, Vec<u8>)>, LockError> {
        let round = self.round(Resource::new(resource)?).await?;
        Ok(round
            .voters
            .iter()
            .map(|v| (v.node.addr().to_string(), v.key.clone()))
            .collect())
    }

    /// Release `lock` in a background task counted by [`LockManager::close`], and return at
    /// once: for a synchronous `Drop`. Without a tokio runtime the keys expire with their TTL.
    pub(crate) fn release_in_background(&self, lock: Lock, what: &'static str) {
        let manager = self.clone();
        let resource = lock.resource.clone();
        spawn_release(&self.inner.flight, &resource, what, async move {
            match manager.release(&lock).await {
                Ok(released) => tracing::debug!(resource = lock.resource(), released, "{what}"),
                Err(error) => tracing::debug!(
                    resource = lock.resource(),
                    %error,
                    "release of {what} failed; the keys expire with their TTL"
                ),
            }
        });
    }

    /// Wait, at most `timeout`, for this manager's background work to finish: the releases
    /// of dropped guards, the cleanups of failed or cancelled acquisitions, and the slower
    /// answers of decided rounds. Call it before the runtime stops (at the end of `main`):
    /// tasks still pending when the runtime shuts down are dropped, and their keys stay until
    /// their TTL runs out, blocking the resource for others that long.
    ///
    /// Returns how many tasks were still running when the time was up (none in the usual
    /// case). The manager stays usable; `close` only waits.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redlock_cluster::{LockConfig, LockManager};
    ///
    /// # async fn demo() -> Result<(), redlock_cluster::LockError> {
    /// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
    /// // ... locks, guards ...
    /// let report = manager.close(Duration::from_secs(2)).await;
    /// if !report.is_complete() {
    ///     eprintln!("{} releases still pending; their keys expire with their TTL", report.pending);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, timeout: Duration) -> CloseReport {
        self.inner.flight.close(timeout).await
    }

    /// Probe every voter (the masters, in cluster mode) and report its health: role,
    /// `run_id`, version, persistence, memory policy, replicas and their lag,
    /// `cluster-require-full-coverage`, round trip, the rate of its clock against ours, and
    /// whether it is quarantined ([`LockConfig::delayed_restart`]), with findings that each
    /// carry a [`Severity`](crate::Severity) and a one-line fix. `Display` prints it as a
    /// table. Takes about [`LockConfig::clock_sample_window`] (the voters are probed at
    /// once); a voter that does not answer is reported, not an error.
    ///
    /// ```no_run
    /// # async fn demo(manager: redlock_cluster::LockManager) -> Result<(), redlock_cluster::LockError> {
    /// let report = manager.health().await?;
    /// println!("{report}");
    /// if report.worst() == Some(redlock_cluster::Severity::Danger) {
    ///     eprintln!("some voter endangers the locks; see the fixes above");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The topology could not be read.
    pub async fn health(&self) -> Result<crate::HealthReport, LockError> {
        let topology = self.inner.topology.get().await?;
        let voters = match topology.as_ref() {
            Topology::Independent { nodes } => nodes.clone(),
            Topology::Cluster { masters, .. } => masters.clone(),
        };
        Ok(crate::health::report(&self.inner.config, topology.mode(), &voters).await)
    }

    /// The detected mode (reading the topology if needed).
    ///
    /// # Errors
    /// The topology could not be read.
    pub async fn mode(&self) -> Result<Mode, LockError> {
        Ok(self.inner.topology.get().await?.mode())
    }
}
