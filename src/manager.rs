//! [`LockManager`], the handle users clone and share: it checks each input once, finds the
//! voters of a resource, runs a round on them (see `round`), and retries acquisitions.

mod acquire;
mod admin;
mod operations;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;

use crate::adapter::redis_node::RedisSeeds;
use crate::config::LockConfig;
#[cfg(doc)]
use crate::config::Mode;
use crate::engine::flight::InFlight;
use crate::engine::round::Round;
use crate::error::LockError;
use crate::features::notify::Notifier;
use crate::input::{Resource, Ttl, parse_urls};
use crate::lock::Lock;
use crate::node::{SharedNode, with_deadline};
use crate::topology::{Seeds, Topology, voters_share_master};
use crate::topology_cache::TopologyCache;

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
/// if let Some(mut lock) = manager.acquire("orders/42", Duration::from_secs(10)).await? {
///     // ... critical section, while lock.is_valid() ...
///     manager.release(&mut lock).await?;
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
    /// replicas than [`LockConfig::replica_acks`] needs, and [`LockError::SeedsUnavailable`]
    /// when the mode cannot be decided yet (fewer than a majority of the seeds answered within
    /// the node timeout; see [`Mode`]). A voter that does not answer within the node timeout
    /// is not an error here: a minority of voters may be down, and its connection goes on
    /// opening in the background.
    pub async fn connect<S: AsRef<str>>(urls: &[S], config: LockConfig) -> Result<Self, LockError> {
        let manager = Self::new(urls, config)?;
        let topology = manager.inner.topology.get().await?;
        let nodes: Vec<SharedNode> = match topology.as_ref() {
            Topology::Independent { nodes } => nodes.clone(),
            Topology::Cluster { masters, .. } => masters.clone(),
        };
        // No node costs more than the node timeout; connection failures are not fatal here
        // (a minority of voters may be down), and a slow connection goes on opening.
        let limit = manager.inner.config.node_timeout_value();
        join_all(nodes.iter().map(|n| with_deadline(limit, n.connect()))).await;
        crate::features::acks::check_replicas(&manager.inner.config, topology.mode(), &nodes)?;
        Ok(manager)
    }

    /// A manager whose voters are discovered from `seeds`: real Redis nodes, or the in-memory
    /// nodes of the simulation. The configuration is checked here, once: the key prefix and
    /// voter count are not checked again when keys are derived.
    pub(crate) fn with_seeds(config: LockConfig, seeds: Box<dyn Seeds>) -> Result<Self, LockError> {
        config.validate()?;
        let topology = TopologyCache::new(seeds, config.mode_value(), config.node_timeout_value());
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

    /// `Ok` unless [`LockManager::close`] was called: then [`LockError::Closed`] for any new
    /// work.
    pub(crate) fn check_open(&self) -> Result<(), LockError> {
        if self.inner.flight.is_closed() {
            Err(LockError::Closed)
        } else {
            Ok(())
        }
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
            veto: crate::features::quarantine::quarantine,
        })
    }
}
