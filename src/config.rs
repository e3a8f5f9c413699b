//! How the lock behaves: timing allowances, retries, key naming, and how voters are chosen.
//!
//! The settings, their setters and getters are here; the checks are in `validate`.

use std::time::Duration;

use crate::error::LockError;
use crate::retry::RetryPolicy;

/// The longest TTL accepted: one day. A lock meant to be held longer should be kept alive
/// with an auto-extending guard, so that a crashed holder does not block others for days.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The default bound on the rounds one manager runs at once
/// ([`LockConfig::max_rounds_in_flight`]).
pub const DEFAULT_MAX_ROUNDS_IN_FLIGHT: usize = 256;

/// How the voters are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Ask every seed node for `cluster_enabled` (all at once, each within the node timeout)
    /// and decide once they answered, or that time passed, provided **more than half of the
    /// seeds** answered and agree: all `1` is cluster mode, all `0` independent mode, a mix is
    /// [`LockError::InvalidConfig`]. With fewer answers, discovery fails with a retryable
    /// [`LockError::SeedsUnavailable`]. Two majorities of one list share a seed, so two
    /// clients of one list never settle on two modes; a seed that answers later is checked
    /// then (a disagreeing one turns later calls into `InvalidConfig`).
    #[default]
    Auto,
    /// The masters of one Redis Cluster, discovered from the given seed node(s), by the same
    /// majority rule. A seed that answers as a standalone master is refused
    /// ([`LockError::InvalidConfig`], or [`LockError::NotACluster`] when no seed is a cluster
    /// node).
    Cluster,
    /// Classic Redlock over the given standalone masters, the same key on each, by the same
    /// majority rule. Seeds must all be standalone ([`LockError::InvalidConfig`] otherwise); a
    /// seed that was down at discovery confirms `cluster_enabled:0` when it connects, before
    /// its first vote counts.
    Independent,
}

/// Settings of a [`crate::LockManager`]. Every setter says its default.
///
/// ```
/// use std::time::Duration;
/// use redlock_cluster::{LockConfig, Mode};
///
/// let config = LockConfig::new()
///     .node_timeout(Duration::from_millis(50))
///     .drift_factor(0.01)
///     .mode(Mode::Cluster);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LockConfig {
    drift_factor: f64,
    node_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    key_prefix: String,
    cluster_voters: usize,
    mode: Mode,
    max_rounds_in_flight: usize,
    notify_on_release: bool,
    refuse_evicting_voters: bool,
    replica_acks: Option<ReplicaAcks>,
    delayed_restart: Option<Duration>,
    clock_sample_window: Duration,
    #[cfg(feature = "tls")]
    tls_root_ca: Option<crate::tls::RootCa>,
    fencing: bool,
    fencing_retention: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LockConfig {
    /// The defaults: drift factor 0.01, node timeout 100 ms, connect timeout 1 s, the default
    /// [`RetryPolicy`], key prefix `"redlock:"`, 3 cluster voters, [`Mode::Auto`], voters that
    /// can evict keys refused, notified waits on.
    pub fn new() -> Self {
        LockConfig {
            drift_factor: 0.01,
            node_timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::new(),
            key_prefix: "redlock:".to_string(),
            cluster_voters: 3,
            mode: Mode::Auto,
            max_rounds_in_flight: DEFAULT_MAX_ROUNDS_IN_FLIGHT,
            notify_on_release: true,
            refuse_evicting_voters: true,
            replica_acks: None,
            delayed_restart: None,
            clock_sample_window: Duration::from_millis(200),
            #[cfg(feature = "tls")]
            tls_root_ca: None,
            fencing: false,
            fencing_retention: DEFAULT_FENCING_RETENTION,
        }
    }

    /// Clock-drift allowance as a fraction of the TTL; the drift subtracted from every
    /// validity is `ttl * factor + 2 ms`. Must be in `[0, 0.5)`. Defaults to 0.01.
    #[must_use]
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.drift_factor = factor;
        self
    }

    /// How long one voter may take to answer one script before its vote counts as failed.
    /// Keep it small next to the TTL: a slow voter eats into the validity of every lock. It is
    /// further capped per call at `ttl - drift`. It is the only bound on a reply: the
    /// connections have no reply timeout of their own to stack on it. Defaults to 100 ms.
    #[must_use]
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// How long opening a connection (and reading the topology) may take. A connection is
    /// opened in the background: a round waits for it at most its own node timeout (a
    /// connection still opening then is a failed vote for that round, and goes on opening
    /// for the next). Defaults to 1 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy of [`crate::LockManager::acquire`]. Defaults to
    /// [`RetryPolicy::new`] (3 attempts).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Prefix of every lock key; must not contain `{` or `}`. Defaults to `"redlock:"`.
    ///
    /// Clients exclude each other only if they derive the same keys on the same servers:
    /// every client of a resource must use the same prefix, the same masters (and database
    /// number in their URLs) and, in cluster mode, the same
    /// [`cluster_voters`](Self::cluster_voters). Two managers that differ in any of these lock
    /// different keys, and both can hold the resource at once.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Number of voters (keys) per lock in cluster mode; every client of a resource must use
    /// the same value. With the even slot split of `redis-cli --cluster create`, voter `i`
    /// lands on master `i`. Between 1 and 64. Defaults to 3.
    #[must_use]
    pub fn cluster_voters(mut self, voters: usize) -> Self {
        self.cluster_voters = voters;
        self
    }

    /// How voters are chosen. Defaults to [`Mode::Auto`].
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// How many rounds (acquire, extend, release attempts) one manager runs at once; more
    /// wait in line for their turn. The wait happens before a round's clock starts, so it
    /// never eats validity, and under overload calls queue instead of timing out and leaving
    /// keys behind. At least 1. Defaults to [`DEFAULT_MAX_ROUNDS_IN_FLIGHT`] (256).
    #[must_use]
    pub fn max_rounds_in_flight(mut self, rounds: usize) -> Self {
        self.max_rounds_in_flight = rounds;
        self
    }

    /// The bound on rounds in flight in use.
    pub(crate) fn max_rounds_in_flight_value(&self) -> usize {
        self.max_rounds_in_flight
    }

    /// Whether waiters retry as soon as a release of their resource is noticed, instead of
    /// only when their backoff timer fires (see "Notified waits" in `docs/design.md`).
    ///
    /// A notice is only a hint: the next vote still decides. It costs one extra connection per
    /// voter, opened when the manager's first acquire has to wait, and one `SSUBSCRIBE` per
    /// contended resource. Releases publish whatever this says (so that other clients' waiters
    /// hear them). Without Redis 7 (sharded pub/sub) waits fall back to polling. Defaults to
    /// `true`.
    #[must_use]
    pub fn notify_on_release(mut self, yes: bool) -> Self {
        self.notify_on_release = yes;
        self
    }

    /// Whether notified waits are on.
    pub(crate) fn notify_on_release_value(&self) -> bool {
        self.notify_on_release
    }

    /// Whether a voter whose server can evict keys (`maxmemory` set with a
    /// `maxmemory-policy` other than `noeviction`) is refused. Under memory pressure such a
    /// server may evict lock keys (under `volatile-ttl` they go first, having the shortest
    /// TTLs), which withdraws a vote silently and can hand one lock to two clients.
    ///
    /// On (the default), its votes count as failed with the reason, and a round that cannot
    /// reach a quorum without it fails with [`LockError::VoterRefused`] saying what to change.
    /// Off accepts the risk: such a voter is reported once with a `tracing` warning naming it
    /// and votes all the same, and a lock then holds only as long as no lock key is evicted
    /// (size `maxmemory` so that it is never reached, or use `noeviction`). Defaults to
    /// `true`.
    #[must_use]
    pub fn refuse_evicting_voters(mut self, refuse: bool) -> Self {
        self.refuse_evicting_voters = refuse;
        self
    }

    /// Count a vote (acquire or extend) only after `replicas` replicas of the voter's master
    /// acknowledged the write, waiting at most `timeout` (`WAIT replicas timeout` after the
    /// script, on a connection of its own so that waiting holds up no other lock). A failover
    /// to an acknowledged replica then keeps the key. A vote that fewer replicas acknowledged
    /// counts as failed ([`crate::NodeError::NotReplicated`]) and its key is cleaned up like
    /// that of any failed vote. `replicas == 0` turns it off.
    ///
    /// The wait is part of the vote, so `timeout` must be shorter than
    /// [`LockConfig::node_timeout`] (checked by [`LockConfig::validate`]), and it is further
    /// capped per call like the node timeout. It costs one replication round trip per vote;
    /// see `docs/operations.md`. In independent mode [`crate::LockManager::connect`] fails
    /// naming any master that reports fewer connected replicas than `replicas` (in cluster mode
    /// it logs a warning: a master lacks its replica for a while after every failover).
    /// With [`LockConfig::fencing`], the fenced acquire and its commit are acknowledged the
    /// same way. Defaults to off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redlock_cluster::LockConfig;
    ///
    /// let config = LockConfig::new()
    ///     .node_timeout(Duration::from_millis(250))
    ///     .replica_acks(1, Duration::from_millis(150));
    /// assert!(config.validate().is_ok());
    /// ```
    #[must_use]
    pub fn replica_acks(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some(ReplicaAcks { replicas, timeout });
        self
    }

    /// The replica acknowledgement a vote needs, if any.
    pub(crate) fn replica_acks_value(&self) -> Option<&ReplicaAcks> {
        self.replica_acks.as_ref()
    }

    /// Whether voters that can evict keys are refused.
    pub(crate) fn refuses_evicting_voters(&self) -> bool {
        self.refuse_evicting_voters
    }

    /// Enforce delayed restarts: `max_ttl` is the longest TTL any client of these voters
    /// uses. A voter that may have lost its keys does not vote until `max_ttl` has passed:
    /// one whose `uptime_in_seconds` is below `max_ttl` while its persistence cannot guarantee
    /// that keys survive a restart (anything but `appendonly yes` with `appendfsync always`,
    /// or unknown because `CONFIG GET` is refused), one this client saw restart (new `run_id`)
    /// without such persistence, and one this client saw change role (failover, `REPLICAOF`).
    /// Its votes count as failed with [`NodeError::Quarantined`](crate::NodeError), naming
    /// why and when it ends.
    ///
    /// This is Redlock's "keep a crashed master down for longer than the longest TTL",
    /// enforced by the client instead of by operator discipline: a master that comes back
    /// empty can no longer hand a held lock to a second client. The price is availability: a
    /// freshly started voter (or a fresh deployment) does not vote for `max_ttl`. With this
    /// set, a TTL longer than `max_ttl` is refused ([`LockError::InvalidTtl`]); every client
    /// must keep its TTLs at or under `max_ttl`. Between 1 ms and [`MAX_TTL`]. Defaults to
    /// off.
    #[must_use]
    pub fn delayed_restart(mut self, max_ttl: Duration) -> Self {
        self.delayed_restart = Some(max_ttl);
        self
    }

    /// The longest TTL of [`LockConfig::delayed_restart`], when on.
    pub(crate) fn delayed_restart_value(&self) -> Option<Duration> {
        self.delayed_restart
    }

    /// How long [`crate::LockManager::health`] samples each voter's clock (`TIME`, 5 times
    /// spread over the window) to measure its rate against ours: a longer window measures
    /// more precisely (the error is about two round trips over the window). Between 10 ms and
    /// 60 s. Defaults to 200 ms.
    #[must_use]
    pub fn clock_sample_window(mut self, window: Duration) -> Self {
        self.clock_sample_window = window;
        self
    }

    /// The clock sampling window in use.
    pub(crate) fn clock_sample_window_value(&self) -> Duration {
        self.clock_sample_window
    }

    /// Trust exactly these root certificates (PEM, one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) for `rediss://` nodes, instead of the system's trust store: for servers with a
    /// private or self-signed CA. Applies to every `rediss://` URL given and to the cluster
    /// masters discovered from them; plain `redis://` URLs ignore it. A URL ending in
    /// `/#insecure` skips certificate verification altogether, CA or not. Defaults to none:
    /// the system's roots.
    ///
    /// [`LockConfig::validate`] (so also [`crate::LockManager::new`]) rejects PEM that holds
    /// no certificate.
    ///
    /// ```no_run
    /// use redlock_cluster::{LockConfig, LockManager};
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let config = LockConfig::new().tls_root_ca(ca);
    /// let manager = LockManager::new(&["rediss://127.0.0.1:6380"], config)?;
    /// # let _ = manager; Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_ca = Some(crate::tls::RootCa::new(pem.into()));
        self
    }

    /// The root CA given with [`LockConfig::tls_root_ca`], if any.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_root_ca_value(&self) -> Option<&crate::tls::RootCa> {
        self.tls_root_ca.as_ref()
    }

    /// Whether every lock carries a fencing token ([`crate::Lock::fencing_token`]): a `u64`
    /// strictly greater than the token of every earlier holder of the resource, for a
    /// protected store to refuse stale writes with. It costs a second round (a write-back of
    /// the token) per acquisition; see the `fencing` section of `docs/design.md`. Every
    /// client that writes to the protected store must use it. Defaults to `false`.
    #[must_use]
    pub fn fencing(mut self, yes: bool) -> Self {
        self.fencing = yes;
        self
    }

    /// How long a resource's fencing counter is kept on a voter after the last acquisition
    /// that wrote it: counter keys expire, so their number is bounded by the resources locked
    /// within this time. Safe because every token also carries the granting voters' server
    /// time: it must be longer than the largest clock offset between voters (see the
    /// `fencing` section of `docs/design.md`). At least 1 s. Defaults to 60 seconds.
    #[must_use]
    pub fn fencing_retention(mut self, retention: Duration) -> Self {
        self.fencing_retention = retention;
        self
    }
}

/// The default of [`LockConfig::fencing_retention`].
const DEFAULT_FENCING_RETENTION: Duration = Duration::from_secs(60);

// The values in use, for the manager and its rounds.
impl LockConfig {
    /// Whether fencing tokens are on.
    pub fn fencing_enabled(&self) -> bool {
        self.fencing
    }

    /// The fencing counters' retention in use.
    pub(crate) fn fencing_retention_value(&self) -> Duration {
        self.fencing_retention
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The drift factor in use.
    pub(crate) fn drift_factor_value(&self) -> f64 {
        self.drift_factor
    }

    /// The per-node timeout in use.
    pub(crate) fn node_timeout_value(&self) -> Duration {
        self.node_timeout
    }

    /// The connect timeout in use.
    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }

    /// The key prefix in use.
    pub(crate) fn key_prefix_str(&self) -> &str {
        &self.key_prefix
    }

    /// The number of cluster voters in use.
    pub(crate) fn voter_count(&self) -> usize {
        self.cluster_voters
    }

    /// The mode in use.
    pub(crate) fn mode_value(&self) -> Mode {
        self.mode
    }
}

mod validate;

/// The replica acknowledgement a vote needs: `replicas` replicas within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaAcks {
    /// How many replicas must acknowledge a write (`WAIT`'s `numreplicas`), at least 1.
    pub(crate) replicas: usize,
    /// How long `WAIT` may block, before the cap of [`wait_limit`].
    pub(crate) timeout: Duration,
}

impl ReplicaAcks {
    /// Check the values against the node timeout they must fit in.
    pub(crate) fn validate(&self, node_timeout: Duration) -> Result<(), LockError> {
        if self.timeout < Duration::from_millis(1) || self.timeout >= node_timeout {
            return Err(LockError::InvalidConfig(format!(
                "replica_acks timeout must be at least 1 ms and shorter than node_timeout \
                 ({node_timeout:?}), which bounds the whole vote (script, WAIT and round trip); \
                 got {:?}: raise node_timeout or lower the acks timeout",
                self.timeout
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
