//! What a voter's server says about itself: identity (`run_id`), mode (`cluster_enabled`),
//! whether it can evict keys, its role and uptime, persistence and replicas, read once per
//! connection from `INFO` (plus `CONFIG GET appendfsync` and `cluster-require-full-coverage`,
//! which `INFO` does not show; an ACL that refuses `CONFIG` leaves them unknown).
//!
//! A voter is a *server*, not a URL: two URLs can name one server (`localhost` and
//! `127.0.0.1`, two databases), and only the `run_id` tells. The facts are parsed by a pure
//! function (unit-tested apart from any connection) and re-read whenever a connection is
//! reopened, so a restart (a new `run_id`) is noticed. [`admit`] turns them into the rule of
//! who may vote in a round.

use std::borrow::Borrow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;
use crate::info::parse_info;
use crate::quarantine::{Verdict, delayed_restart};

/// The facts of one Redis server, from one `INFO` reply (and two `CONFIG GET`s), with when
/// they were read and what this client saw change at the address before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFacts {
    /// The server's random identity, new at every start: the same `run_id` is the same
    /// server, whatever address or database it was reached by.
    pub(crate) run_id: String,
    /// `cluster_enabled:1`: a Redis Cluster node.
    pub(crate) cluster_enabled: bool,
    /// `maxmemory` in bytes; 0 means no limit.
    pub(crate) maxmemory: u64,
    /// `maxmemory_policy`, for example `noeviction` or `volatile-ttl`.
    pub(crate) maxmemory_policy: String,
    /// `role`: `master` or `slave`.
    pub(crate) role: String,
    /// `uptime_in_seconds`.
    pub(crate) uptime: Duration,
    /// `redis_version`.
    pub(crate) redis_version: String,
    /// `aof_enabled:1`: the append-only file is on.
    pub(crate) aof_enabled: bool,
    /// `CONFIG GET appendfsync` (`always`, `everysec`, `no`); `None` when it could not be
    /// read (an ACL without `+config|get`, a renamed `CONFIG`): unknown.
    pub(crate) appendfsync: Option<String>,
    /// `CONFIG GET cluster-require-full-coverage`; `None` when unknown.
    pub(crate) require_full_coverage: Option<bool>,
    /// `connected_slaves`.
    pub(crate) connected_replicas: u32,
    /// Each `slaveN:ip=..,port=..,..,lag=N` line: the replica's `host:port` and its lag.
    pub(crate) replicas: Vec<(String, Option<Duration>)>,
    /// When the reply was read, on our monotonic clock: the server's uptime counts back
    /// from here.
    pub(crate) read_at: Instant,
    /// When this client first saw a new `run_id` at this address (a restart), if it did.
    pub(crate) restart_seen_at: Option<Instant>,
    /// When this client first saw a new `role` at this address (a failover, `REPLICAOF`).
    pub(crate) role_change_seen_at: Option<Instant>,
}

impl ServerFacts {
    /// Parse the text of `INFO` (the default sections: server, memory, persistence,
    /// replication, cluster among them), read at `read_at`. The `CONFIG` values are unknown.
    ///
    /// # Errors
    /// A message naming the missing field when there is no `run_id`: without it the server
    /// cannot be told apart from another, so it must not vote.
    pub(crate) fn parse(info: &str, read_at: Instant) -> Result<Self, String> {
        let fields = parse_info(info);
        let text = |name: &str| fields.get(name).map(|v| v.trim().to_string());
        let number = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let run_id = text("run_id")
            .filter(|id| !id.is_empty())
            .ok_or("INFO has no run_id")?;
        Ok(ServerFacts {
            run_id,
            cluster_enabled: fields.get("cluster_enabled").map(|v| v.trim()) == Some("1"),
            maxmemory: number("maxmemory"),
            maxmemory_policy: text("maxmemory_policy").unwrap_or_default(),
            role: text("role").unwrap_or_default(),
            uptime: Duration::from_secs(number("uptime_in_seconds")),
            redis_version: text("redis_version").unwrap_or_default(),
            aof_enabled: fields.get("aof_enabled").map(|v| v.trim()) == Some("1"),
            appendfsync: None,
            require_full_coverage: None,
            connected_replicas: u32::try_from(number("connected_slaves")).unwrap_or(u32::MAX),
            replicas: (0..)
                .map_while(|i| fields.get(format!("slave{i}").as_str()).map(|v| replica(v)))
                .collect(),
            read_at,
            restart_seen_at: None,
            role_change_seen_at: None,
        })
    }

    /// Read the facts over an open connection: `INFO default`, then `CONFIG GET` of
    /// `appendfsync` and (on a cluster node) `cluster-require-full-coverage`. A refused
    /// `CONFIG` (ACL, renamed command) leaves those unknown; a broken connection is an error.
    pub(crate) async fn read(conn: &mut MultiplexedConnection) -> Result<Self, NodeError> {
        let info: String = redis::cmd("INFO")
            .arg("default")
            .query_async(conn)
            .await
            .map_err(|e| NodeError::from_redis(&e))?;
        let mut facts = Self::parse(&info, Instant::now()).map_err(NodeError::Protocol)?;
        facts.appendfsync = config_get(conn, "appendfsync").await?;
        if facts.cluster_enabled {
            facts.require_full_coverage = config_get(conn, "cluster-require-full-coverage")
                .await?
                .map(|v| v == "yes");
        }
        Ok(facts)
    }

    /// Whether a restart keeps every key it acknowledged: the append-only file, fsynced
    /// before each reply (`appendfsync always`). Unknown counts as no.
    pub(crate) fn persists_every_write(&self) -> bool {
        self.aof_enabled && self.appendfsync.as_deref() == Some("always")
    }

    /// `aof, fsync always`, `no aof`, `aof, fsync unknown`: for messages.
    pub(crate) fn persistence(&self) -> String {
        match (self.aof_enabled, self.appendfsync.as_deref()) {
            (false, _) => "appendonly no".into(),
            (true, Some(fsync)) => format!("appendonly yes, appendfsync {fsync}"),
            (true, None) => "appendonly yes, appendfsync unknown (CONFIG GET refused)".into(),
        }
    }

    /// Whether the server may evict keys under memory pressure: a `maxmemory` limit with any
    /// policy but `noeviction`. Lock keys, having the shortest TTLs, are the first to go under
    /// `volatile-ttl`, and any evicted key is a vote silently withdrawn.
    pub(crate) fn can_evict(&self) -> bool {
        self.maxmemory > 0 && self.maxmemory_policy != "noeviction"
    }

    /// Why this server may not vote for a lock, as the advice the user needs.
    fn eviction_reason(&self) -> String {
        format!(
            "it can evict keys (maxmemory {} bytes, maxmemory-policy {}), and lock keys, having \
             the shortest TTLs, may go first; set `maxmemory-policy noeviction` on it, or \
             accept the risk with LockConfig::refuse_evicting_voters(false)",
            self.maxmemory, self.maxmemory_policy
        )
    }

    /// Facts of a simulated standalone master.
    #[cfg(test)]
    pub(crate) fn simulated(run_id: &str) -> Self {
        ServerFacts {
            run_id: run_id.to_string(),
            cluster_enabled: false,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            role: "master".into(),
            uptime: Duration::from_secs(3600),
            redis_version: "7.0.0".into(),
            aof_enabled: true,
            appendfsync: Some("always".into()),
            require_full_coverage: None,
            connected_replicas: 0,
            replicas: Vec::new(),
            read_at: Instant::now(),
            restart_seen_at: None,
            role_change_seen_at: None,
        }
    }
}

/// One `slaveN` value (`ip=127.0.0.1,port=7003,state=online,offset=42,lag=0`): the replica's
/// `host:port` and its lag (`None` when the line has none).
fn replica(value: &str) -> (String, Option<Duration>) {
    let field = |name: &str| {
        value
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    };
    let addr = format!(
        "{}:{}",
        field("ip").unwrap_or("?"),
        field("port").unwrap_or("?")
    );
    let lag = field("lag")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    (addr, lag)
}

/// One `CONFIG GET name` value; `None` when the server refuses (`NOPERM`, unknown command,
/// unknown parameter). Only a broken connection or a timeout is an error.
async fn config_get(
    conn: &mut MultiplexedConnection,
    name: &str,
) -> Result<Option<String>, NodeError> {
    // A map in RESP3, a flat name-value array in RESP2: both read as a map.
    let reply: redis::RedisResult<std::collections::HashMap<String, String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await;
    match reply {
        Ok(mut values) => Ok(values.remove(name)),
        Err(err) => match NodeError::from_redis(&err) {
            error @ (NodeError::Io(_) | NodeError::Timeout(_)) => Err(error),
            _ => Ok(None),
        },
    }
}

/// The facts of one node's current connection, and what was already logged about it. A std
/// mutex: it is never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct FactsCell {
    state: Mutex<FactsState>,
}

#[derive(Debug, Default)]
struct FactsState {
    /// Shared, never copied: every round's admission check reads it.
    facts: Option<Arc<ServerFacts>>,
    warned_evicting: bool,
    warned_volatile: bool,
}

impl FactsCell {
    /// The facts read when the current connection opened; `None` before the first one.
    pub(crate) fn get(&self) -> Option<Arc<ServerFacts>> {
        self.lock().facts.clone()
    }

    /// Record the facts of a freshly opened connection to `addr` (or of a fresh read on an
    /// open one): note a restart (a new `run_id`) or a new role as seen now, keep what was
    /// seen before, and log, once per node, a server that can evict keys or that does not
    /// persist them.
    pub(crate) fn record(&self, addr: &str, mut facts: ServerFacts) {
        let mut state = self.lock();
        if let Some(old) = &state.facts {
            facts.restart_seen_at = old.restart_seen_at;
            facts.role_change_seen_at = old.role_change_seen_at;
            if old.run_id != facts.run_id {
                facts.restart_seen_at = Some(facts.read_at);
                tracing::warn!(
                    node = addr,
                    old_run_id = %old.run_id,
                    new_run_id = %facts.run_id,
                    "voter restarted (its run_id changed): keys it held may be lost unless it \
                     persists them (appendonly yes, appendfsync always)"
                );
            }
            if old.role != facts.role {
                facts.role_change_seen_at = Some(facts.read_at);
                tracing::warn!(
                    node = addr,
                    old_role = %old.role,
                    new_role = %facts.role,
                    "voter changed role (failover or REPLICAOF): it may not have the keys its \
                     predecessor granted"
                );
            }
        }
        if facts.can_evict() && !state.warned_evicting {
            state.warned_evicting = true;
            tracing::warn!(
                node = addr,
                maxmemory = facts.maxmemory,
                maxmemory_policy = %facts.maxmemory_policy,
                "voter {addr} can evict lock keys under memory pressure, which can hand one lock \
                 to two clients; set `maxmemory-policy noeviction` on it (or refuse such voters \
                 with LockConfig::refuse_evicting_voters(true))"
            );
        }
        if !facts.aof_enabled && !state.warned_volatile {
            state.warned_volatile = true;
            tracing::warn!(
                node = addr,
                "voter {addr} does not persist lock keys (appendonly no): restarted, it comes \
                 back empty and can hand a held lock to a second client; set `appendonly yes` \
                 with `appendfsync always`, keep it down longer than the longest TTL, or let \
                 the client enforce that with LockConfig::delayed_restart"
            );
        }
        state.facts = Some(Arc::new(facts));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FactsState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Who may vote in one round, given each connected voter's facts (in voter order): the
/// reason a voter may not, or `None` when it may. A voter may not vote
/// - without facts (its connection has not confirmed what it is),
/// - in independent mode, when it is a cluster node (`cluster_enabled:1`),
/// - when `refuse_evicting_voters` is set and it can evict keys,
/// - when `delayed_restart` is set and it is quarantined (see `quarantine`): it started, or
///   was seen to restart or change role, less than the longest TTL ago, and may have lost keys,
/// - when an earlier voter is the same server (same `run_id`): one server never votes twice,
///   whether it was listed under two names or two voter keys moved onto one master.
pub(crate) fn admit<F: Borrow<ServerFacts>>(
    mode: Mode,
    config: &LockConfig,
    facts: &[Option<F>],
) -> Vec<Option<NodeError>> {
    admit_at(mode, config, facts, Instant::now())
}

/// [`admit`] at `now`.
pub(crate) fn admit_at<F: Borrow<ServerFacts>>(
    mode: Mode,
    config: &LockConfig,
    facts: &[Option<F>],
    now: Instant,
) -> Vec<Option<NodeError>> {
    facts
        .iter()
        .enumerate()
        .map(|(i, own)| {
            let earlier = facts[..i].iter().flatten().map(Borrow::borrow);
            admit_one(mode, config, earlier, own.as_ref().map(Borrow::borrow), now)
        })
        .collect()
}

/// The verdict of [`admit`] on one voter's facts (`own`), given the facts of the voters
/// admitted before it (`earlier`), at `now`.
pub(crate) fn admit_one<'f>(
    mode: Mode,
    config: &LockConfig,
    mut earlier: impl Iterator<Item = &'f ServerFacts>,
    own: Option<&ServerFacts>,
    now: Instant,
) -> Option<NodeError> {
    let Some(own) = own else {
        return Some(NodeError::Refused(
            "its server facts (INFO) were not read yet, so it cannot vote".into(),
        ));
    };
    if let Some(reason) = refusal(mode, config, own) {
        return Some(reason);
    }
    if let Some(quarantined) = quarantine(config, own, now) {
        return Some(quarantined);
    }
    let same_server = earlier.any(|earlier| earlier.run_id == own.run_id);
    if same_server {
        return Some(NodeError::Refused(format!(
            "it is the same server (run_id {}) as an earlier voter, and one server never \
             votes twice: in independent mode list each master once, by one name; in \
             cluster mode keep cluster_voters at most the number of masters and the slot \
             layout of `redis-cli --cluster create`",
            own.run_id
        )));
    }
    None
}

/// [`NodeError::Quarantined`] when delayed restarts are on and `facts` are quarantined at
/// `now`.
pub(crate) fn quarantine(
    config: &LockConfig,
    facts: &ServerFacts,
    now: Instant,
) -> Option<NodeError> {
    let max_ttl = config.delayed_restart_value()?;
    match delayed_restart(facts, max_ttl, config.drift_factor_value(), now) {
        Verdict::Admit => None,
        Verdict::Quarantined { until, cause } => Some(NodeError::Quarantined {
            remaining: until.saturating_duration_since(now),
            reason: cause,
        }),
    }
}

/// Why a server may never vote in this configuration, whatever the others are: a cluster node
/// in independent mode, or an evicting server when `refuse_evicting_voters` is set.
pub(crate) fn refusal(mode: Mode, config: &LockConfig, facts: &ServerFacts) -> Option<NodeError> {
    if mode == Mode::Independent && facts.cluster_enabled {
        return Some(NodeError::Refused(
            "it is a Redis Cluster node (cluster_enabled:1) and cannot vote as an independent \
             master; list only standalone masters, or only nodes of one cluster"
                .into(),
        ));
    }
    if config.refuses_evicting_voters() && facts.can_evict() {
        return Some(NodeError::Refused(facts.eviction_reason()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n\
                        uptime_in_seconds:42\r\n\r\n# Memory\r\nmaxmemory:10485760\r\n\
                        maxmemory_policy:volatile-ttl\r\n\r\n# Persistence\r\naof_enabled:1\r\n\
                        \r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                        slave0:ip=127.0.0.1,port=7003,state=online,offset=42,lag=1\r\n\
                        slave1:ip=::1,port=7004,state=wait_bgsave,offset=0\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n";

    #[test]
    fn parses_the_facts_of_one_info_reply() {
        let facts = ServerFacts::parse(INFO, Instant::now()).unwrap();
        assert_eq!(facts.run_id, "abc123");
        assert!(!facts.cluster_enabled);
        assert_eq!(facts.maxmemory, 10_485_760);
        assert_eq!(facts.maxmemory_policy, "volatile-ttl");
        assert_eq!(facts.role, "master");
        assert_eq!(facts.uptime, Duration::from_secs(42));
        assert_eq!(facts.redis_version, "7.0.15");
        assert!(facts.aof_enabled);
        assert!(facts.can_evict());
        assert_eq!(facts.connected_replicas, 2);
        assert_eq!(
            facts.replicas,
            [
                ("127.0.0.1:7003".to_string(), Some(Duration::from_secs(1))),
                ("::1:7004".to_string(), None)
            ]
        );
        assert_eq!(facts.appendfsync, None, "not in INFO: read with CONFIG GET");
        assert!(
            !facts.persists_every_write(),
            "unknown fsync is not durable"
        );
        let now = Instant::now();
        let cluster =
            ServerFacts::parse(&INFO.replace("cluster_enabled:0", "cluster_enabled:1"), now);
        assert!(cluster.unwrap().cluster_enabled);
        assert!(ServerFacts::parse("# Server\r\nredis_version:7.0.0\r\n", now).is_err());
    }

    #[test]
    fn eviction_needs_a_limit_and_an_evicting_policy() {
        let mut facts = ServerFacts::simulated("a");
        assert!(!facts.can_evict());
        facts.maxmemory_policy = "allkeys-lru".into();
        assert!(!facts.can_evict(), "no maxmemory, nothing is evicted");
        facts.maxmemory = 1 << 20;
        assert!(facts.can_evict());
        facts.maxmemory_policy = "noeviction".into();
        assert!(!facts.can_evict());
    }

    #[test]
    fn one_server_votes_once_and_cluster_nodes_never_as_independent() {
        let a = ServerFacts::simulated("a");
        let b = ServerFacts::simulated("b");
        let mut c = ServerFacts::simulated("c");
        c.cluster_enabled = true;
        let facts = [Some(a.clone()), Some(a.clone()), Some(b), None, Some(c)];
        let plain = LockConfig::new();
        let refusing = LockConfig::new().refuse_evicting_voters(true);
        let refused: Vec<bool> = admit(Mode::Independent, &plain, &facts)
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(refused, [false, true, false, true, true]);
        // In cluster mode a cluster node votes; the duplicate still does not.
        let refused: Vec<bool> = admit(Mode::Cluster, &plain, &facts)
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(refused, [false, true, false, true, false]);
        let mut evicting = a;
        evicting.maxmemory = 1 << 20;
        evicting.maxmemory_policy = "volatile-ttl".into();
        let facts = [Some(evicting)];
        assert!(admit(Mode::Independent, &plain, &facts)[0].is_none());
        let refused = admit(Mode::Independent, &refusing, &facts);
        assert!(
            matches!(&refused[0], Some(NodeError::Refused(why)) if why.contains("noeviction")),
            "{refused:?}"
        );
    }
}
