//! The quorum engine: runs each vote on all voters in parallel, under deadlines, and decides it
//! by majority. [`LockManager`] is the handle users clone and share.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use redis::IntoConnectionInfo;
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::lock::{Lock, LockInfo, LockToken, NodeLockState};
use crate::node::{AcquireReply, KeyState, SharedNode, with_deadline};
use crate::quorum::{
    AcquireDecision, AcquireVote, ExtendDecision, InfoDecision, ReleaseDecision, collect_failures,
    decide_acquire, decide_extend, decide_info, decide_release, drift, quorum, unavailable,
};
use crate::redis_node::RedisSeeds;
use crate::retry::RetryPolicy;
use crate::topology::{Seeds, Topology, Voter, discover, voters_share_master};

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 4096;

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

struct Inner {
    config: LockConfig,
    /// Where discovery gets its nodes.
    seeds: Box<dyn Seeds>,
    /// The current view of the voters; `None` until first use.
    topology: tokio::sync::RwLock<Option<Arc<Topology>>>,
    /// Set when a vote was redirected (MOVED/ASK) or a cluster voter failed: re-read the
    /// topology before the next operation.
    stale: AtomicBool,
    /// Whether the "voters share a master" warning was already logged.
    warned_shared: AtomicBool,
    /// Whether a background topology refresh is running.
    refreshing: AtomicBool,
    /// When the last refresh finished.
    last_refresh: std::sync::Mutex<Option<Instant>>,
}

/// The least time between two topology refreshes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<&str> = self.inner.seeds.seeds().iter().map(|n| n.addr()).collect();
        f.debug_struct("LockManager")
            .field("nodes", &nodes)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Parse and check node URLs.
fn parse_urls<S: AsRef<str>>(urls: &[S]) -> Result<Vec<redis::ConnectionInfo>, LockError> {
    if urls.is_empty() {
        return Err(LockError::InvalidUrl {
            url: String::new(),
            reason: "at least one node URL is needed".into(),
        });
    }
    let mut seen = Vec::new();
    urls.iter()
        .map(|url| {
            let url = url.as_ref();
            let invalid = |reason: String| LockError::InvalidUrl {
                url: url.to_string(),
                reason,
            };
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "expected redis://[user:password@]host:port or rediss://...".into(),
                ));
            }
            let info = url
                .into_connection_info()
                .map_err(|e| invalid(e.to_string()))?;
            if !info.addr().is_supported() {
                return Err(invalid(
                    "TLS (rediss://) needs the crate feature `tls`".into(),
                ));
            }
            let addr = crate::redis_node::addr_string(info.addr());
            if seen.contains(&addr) {
                return Err(invalid(format!(
                    "{addr} is listed twice; each voter must be a different master"
                )));
            }
            seen.push(addr);
            Ok(info)
        })
        .collect()
}

pub(crate) fn check_resource(resource: &str) -> Result<(), LockError> {
    if resource.is_empty() {
        return Err(LockError::InvalidResource(
            "the resource name must not be empty".into(),
        ));
    }
    if resource.len() > MAX_RESOURCE_LEN {
        return Err(LockError::InvalidResource(format!(
            "the resource name is {} bytes; at most {MAX_RESOURCE_LEN} are accepted",
            resource.len()
        )));
    }
    Ok(())
}

/// The outcome of one acquire round.
enum Attempt {
    Acquired(Lock),
    Contended(Option<Duration>),
    Failed(LockError),
}

/// Releases a round's keys on every voter when dropped armed: after a failed round, and when
/// the caller drops the acquire future mid-flight. The release runs in a spawned task, so a
/// cancelled caller cannot cancel it.
struct Cleanup {
    voters: Vec<Voter>,
    token: LockToken,
    node_timeout: Duration,
    armed: bool,
}

impl Cleanup {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let voters = std::mem::take(&mut self.voters);
        let token = self.token.clone();
        let node_timeout = self.node_timeout;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    release_on(&voters, &token, node_timeout).await;
                });
            }
            Err(_) => tracing::debug!(
                "no tokio runtime to release a failed attempt's keys; they expire with their TTL"
            ),
        }
    }
}

/// Run the release script on every voter, each under the node timeout.
async fn release_on(
    voters: &[Voter],
    token: &LockToken,
    node_timeout: Duration,
) -> Vec<Result<bool, NodeError>> {
    join_all(
        voters
            .iter()
            .map(|v| with_deadline(node_timeout, v.node.release(&v.key, token.as_str()))),
    )
    .await
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
        let seeds = RedisSeeds::new(&parse_urls(urls)?, config.connect_timeout_value());
        Self::with_seeds(config, Box::new(seeds))
    }

    /// Like [`LockManager::new`], then reads the topology and opens a connection to every
    /// voter, so that configuration mistakes surface now rather than at the first lock.
    ///
    /// # Errors
    /// As [`LockManager::new`], plus [`LockError::NotACluster`] when cluster mode was forced
    /// against a standalone node, and [`LockError::Unavailable`] when no node answers.
    pub async fn connect<S: AsRef<str>>(urls: &[S], config: LockConfig) -> Result<Self, LockError> {
        let manager = Self::new(urls, config)?;
        let topology = manager.topology().await?;
        let nodes: Vec<SharedNode> = match topology.as_ref() {
            Topology::Independent { nodes } => nodes.clone(),
            Topology::Cluster { masters, .. } => masters.clone(),
        };
        let limit = manager.inner.config.connect_timeout_value();
        // Connection failures are not fatal here: a minority of voters may be down.
        join_all(nodes.iter().map(|n| with_deadline(limit, n.connect()))).await;
        Ok(manager)
    }

    /// A manager whose voters are discovered from `seeds`: real Redis nodes, or the in-memory
    /// nodes of the simulation.
    pub(crate) fn with_seeds(config: LockConfig, seeds: Box<dyn Seeds>) -> Result<Self, LockError> {
        config.validate()?;
        Ok(LockManager {
            inner: Arc::new(Inner {
                config,
                seeds,
                topology: tokio::sync::RwLock::new(None),
                stale: AtomicBool::new(false),
                warned_shared: AtomicBool::new(false),
                refreshing: AtomicBool::new(false),
                last_refresh: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LockConfig {
        &self.inner.config
    }

    /// The current topology. It is read on first use; afterwards, when marked stale, it is
    /// re-read in a background task (one at a time, at most every [`REFRESH_INTERVAL`]) while
    /// rounds go on with the last good view, so that a paused or dead node never stalls a
    /// round on a refresh.
    async fn topology(&self) -> Result<Arc<Topology>, LockError> {
        if let Some(current) = self.inner.topology.read().await.clone() {
            if self.inner.stale.load(Ordering::Acquire) {
                self.spawn_refresh(&current);
            }
            return Ok(current);
        }
        let mut slot = self.inner.topology.write().await;
        // Another task may have read it while we waited for the write lock.
        if let Some(current) = slot.clone() {
            return Ok(current);
        }
        let fresh = Arc::new(self.read_topology(None).await?);
        tracing::debug!(mode = ?fresh.mode(), "topology read");
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    fn spawn_refresh(&self, current: &Arc<Topology>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let recent = self
            .inner
            .last_refresh
            .lock()
            .map(|last| last.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL))
            .unwrap_or(false);
        if recent {
            self.inner.refreshing.store(false, Ordering::Release);
            return;
        }
        let manager = self.clone();
        let current = current.clone();
        runtime.spawn(async move {
            // Cleared first: failures seen during the refresh mark it stale again.
            manager.inner.stale.store(false, Ordering::Release);
            match manager.read_topology(Some(&current)).await {
                Ok(fresh) => {
                    tracing::debug!(mode = ?fresh.mode(), "topology refreshed");
                    *manager.inner.topology.write().await = Some(Arc::new(fresh));
                }
                Err(error) => {
                    tracing::debug!(%error, "topology refresh failed; keeping the last view");
                    manager.inner.stale.store(true, Ordering::Release);
                }
            }
            if let Ok(mut last) = manager.inner.last_refresh.lock() {
                *last = Some(Instant::now());
            }
            manager.inner.refreshing.store(false, Ordering::Release);
        });
    }

    async fn read_topology(&self, previous: Option<&Topology>) -> Result<Topology, LockError> {
        let config = &self.inner.config;
        discover(
            self.inner.seeds.as_ref(),
            previous,
            config.mode_value(),
            config.connect_timeout_value(),
        )
        .await
    }

    async fn voters(&self, resource: &str) -> Result<(Vec<Voter>, Mode), LockError> {
        check_resource(resource)?;
        let topology = self.topology().await?;
        let voters = topology.voters(&self.inner.config, resource.as_bytes())?;
        if voters_share_master(&voters) && !self.inner.warned_shared.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                resource,
                "two voter keys live on one master (slots moved?): locks stay safe but one \
                 node failure now costs two votes"
            );
        }
        Ok((voters, topology.mode()))
    }

    /// Mark the topology stale after a redirect (MOVED/ASK) or, in cluster mode, any lost
    /// voter: a failover gives the slot a master at another address.
    fn note_failures<'a>(&self, mode: Mode, mut errors: impl Iterator<Item = &'a NodeError>) {
        let stale = match mode {
            Mode::Cluster => errors.next().is_some(),
            _ => errors.any(|e| matches!(e, NodeError::Redirected(_))),
        };
        if stale {
            self.inner.stale.store(true, Ordering::Release);
        }
    }

    /// One acquire round.
    async fn attempt(&self, resource: &str, ttl: Duration) -> Result<Attempt, LockError> {
        let config = &self.inner.config;
        let ttl = config.check_ttl(ttl)?;
        let (voters, mode) = self.voters(resource).await?;
        let connect_limit = config.connect_timeout_value();
        // Open connections before the clock starts: connecting is not part of the vote.
        let connected = join_all(
            voters
                .iter()
                .map(|v| with_deadline(connect_limit, v.node.connect())),
        )
        .await;

        let allowance = drift(ttl, config.drift_factor_value());
        let per_call = config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance));
        let token = LockToken::new();
        let cleanup = Cleanup {
            voters: voters.clone(),
            token: token.clone(),
            node_timeout: config.node_timeout_value(),
            armed: true,
        };
        let start = Instant::now();
        let votes = join_all(voters.iter().zip(connected).map(|(voter, connected)| {
            let token = &token;
            async move {
                let vote = match connected {
                    Err(error) => AcquireVote::Failed(error),
                    Ok(()) => match with_deadline(
                        per_call,
                        voter.node.acquire(&voter.key, token.as_str(), ttl),
                    )
                    .await
                    {
                        Ok(AcquireReply::Granted) => AcquireVote::Granted,
                        Ok(AcquireReply::Held(left)) => AcquireVote::Held(left),
                        Err(error) => AcquireVote::Failed(error),
                    },
                };
                (voter.node.addr().to_string(), vote)
            }
        }))
        .await;
        let elapsed = start.elapsed();
        self.note_failures(
            mode,
            votes.iter().filter_map(|(_, v)| match v {
                AcquireVote::Failed(e) => Some(e),
                _ => None,
            }),
        );
        let decision = decide_acquire(&votes, ttl, elapsed, allowance);
        let granted_by: Vec<String> = votes
            .iter()
            .filter(|(_, v)| *v == AcquireVote::Granted)
            .map(|(node, _)| node.clone())
            .collect();
        tracing::debug!(
            resource,
            votes = granted_by.len(),
            voters = voters.len(),
            ?elapsed,
            ?decision,
            "acquire round"
        );
        Ok(match decision {
            AcquireDecision::Acquired { .. } => {
                cleanup.disarm();
                let deadline = start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(start);
                Attempt::Acquired(Lock {
                    resource: resource.to_string(),
                    token,
                    ttl,
                    deadline,
                    granted_by,
                })
            }
            AcquireDecision::Contended { retry_hint } => Attempt::Contended(retry_hint),
            AcquireDecision::Expired => {
                Attempt::Failed(LockError::ValidityExpired { elapsed, ttl })
            }
            AcquireDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(voters.len(), answered, failures))
            }
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
        let attempts = retry.attempts();
        let mut last = Ok(None);
        for attempt in 0..attempts {
            let hint = match self.attempt(resource, ttl).await {
                Ok(Attempt::Acquired(lock)) => return Ok(Some(lock)),
                Ok(Attempt::Contended(hint)) => {
                    last = Ok(None);
                    hint
                }
                // Infrastructure failures (a round without quorum, or no node answering the
                // topology read) are retried; bad input is not.
                Ok(Attempt::Failed(error)) | Err(error @ LockError::Unavailable { .. }) => {
                    last = Err(error);
                    None
                }
                Err(error) => return Err(error),
            };
            if attempt + 1 < attempts {
                let delay = retry.delay(attempt, hint);
                tracing::debug!(resource, attempt, ?delay, "retrying acquire");
                tokio::time::sleep(delay).await;
            }
        }
        last
    }

    /// Extend a held lock to `ttl` from now, by quorum (compare-and-`PEXPIRE`).
    ///
    /// On success the lock's new deadline is `start + ttl - drift`, where `start` is taken
    /// before the first extend is sent, so the remaining time becomes just under `ttl` (not
    /// the old remaining time plus `ttl`). A lock whose validity has already run out cannot
    /// be extended (`Ok(false)`): another client may hold it by now. A failed extend deletes
    /// nothing and leaves the lock's old deadline in force.
    ///
    /// # Errors
    /// Invalid TTL; [`LockError::Unavailable`] when fewer than a quorum answered.
    pub async fn extend(&self, lock: &mut Lock, ttl: Duration) -> Result<bool, LockError> {
        let config = &self.inner.config;
        let ttl = config.check_ttl(ttl)?;
        if !lock.is_valid() {
            return Ok(false);
        }
        let (voters, mode) = self.voters(&lock.resource).await?;
        let allowance = drift(ttl, config.drift_factor_value());
        let per_call = config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance));
        let start = Instant::now();
        let results = join_all(
            voters
                .iter()
                .map(|v| with_deadline(per_call, v.node.extend(&v.key, lock.token.as_str(), ttl))),
        )
        .await;
        let elapsed = start.elapsed();
        let answers = named(&voters, results);
        self.note_failures(mode, answers.iter().filter_map(|(_, r)| r.as_ref().err()));
        match decide_extend(&answers, ttl, elapsed, allowance, lock.is_valid()) {
            ExtendDecision::Extended { by } => {
                tracing::debug!(
                    resource = lock.resource,
                    extended = by.len(),
                    ?elapsed,
                    "extend round"
                );
                lock.deadline = start
                    .checked_add(ttl.saturating_sub(allowance))
                    .unwrap_or(lock.deadline);
                lock.ttl = ttl;
                lock.granted_by = by;
                Ok(true)
            }
            ExtendDecision::Refused => {
                tracing::debug!(resource = lock.resource, ?elapsed, "extend round refused");
                Ok(false)
            }
            ExtendDecision::Unavailable { answered, failures } => {
                Err(unavailable(voters.len(), answered, failures))
            }
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
        let (voters, mode) = self.voters(&lock.resource).await?;
        let results =
            release_on(&voters, &lock.token, self.inner.config.node_timeout_value()).await;
        let answers = named(&voters, results);
        self.note_failures(mode, answers.iter().filter_map(|(_, r)| r.as_ref().err()));
        let decision = decide_release(&answers);
        tracing::debug!(resource = lock.resource, ?decision, "release round");
        match decision {
            ReleaseDecision::Released => Ok(true),
            ReleaseDecision::NotHeld => Ok(false),
            ReleaseDecision::Unavailable { answered, failures } => {
                Err(unavailable(voters.len(), answered, failures))
            }
        }
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
        let (voters, mode) = self.voters(resource).await?;
        let limit = self.inner.config.node_timeout_value();
        let results: Vec<Result<KeyState, NodeError>> = join_all(
            voters
                .iter()
                .map(|v| with_deadline(limit, v.node.inspect(&v.key))),
        )
        .await;
        let answers: Vec<Option<KeyState>> =
            results.iter().map(|r| r.as_ref().ok().cloned()).collect();
        let needed = quorum(voters.len());
        let nodes: Vec<NodeLockState> = voters
            .iter()
            .zip(&results)
            .map(|(voter, result)| {
                let (holder, remaining, error) = match result {
                    Ok((holder, remaining)) => (holder.clone(), *remaining, None),
                    Err(error) => (None, None, Some(error.clone())),
                };
                NodeLockState {
                    node: voter.node.addr().to_string(),
                    key: String::from_utf8_lossy(&voter.key).into_owned(),
                    holder,
                    remaining,
                    error,
                }
            })
            .collect();
        self.note_failures(mode, nodes.iter().filter_map(|n| n.error.as_ref()));
        let (locked, holder, remaining) =
            match decide_info(&answers, self.inner.config.drift_factor_value()) {
                InfoDecision::Locked { token, remaining } => (true, Some(token), remaining),
                InfoDecision::Free => (false, None, None),
                InfoDecision::Unknown => {
                    return Err(unavailable(
                        voters.len(),
                        answers.iter().flatten().count(),
                        collect_failures(
                            nodes
                                .iter()
                                .filter_map(|n| n.error.as_ref().map(|e| (&n.node, e))),
                        ),
                    ));
                }
            };
        Ok(LockInfo {
            resource: resource.to_string(),
            locked,
            held_by_caller: token.is_some_and(|t| holder.as_deref() == Some(t.as_str())),
            holder,
            remaining,
            quorum: needed,
            mode,
            voters_share_master: voters_share_master(&voters),
            nodes,
        })
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
        let (voters, _) = self.voters(resource).await?;
        Ok(voters
            .into_iter()
            .map(|v| (v.node.addr().to_string(), v.key))
            .collect())
    }

    /// The detected mode (reading the topology if needed).
    ///
    /// # Errors
    /// The topology could not be read.
    pub async fn mode(&self) -> Result<Mode, LockError> {
        Ok(self.topology().await?.mode())
    }
}

/// Each voter's answer with the voter's address, in voter order.
fn named<T>(voters: &[Voter], results: Vec<T>) -> Vec<(String, T)> {
    voters
        .iter()
        .map(|v| v.node.addr().to_string())
        .zip(results)
        .collect()
}
