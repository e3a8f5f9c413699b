//! What a voter's server says about itself: identity (`run_id`), mode (`cluster_enabled`),
//! whether it can evict keys, its role and uptime, persistence and replicas, read once per
//! connection from `INFO` (plus `CONFIG GET appendfsync` and `cluster-require-full-coverage`,
//! which `INFO` does not show; an ACL that refuses `CONFIG` leaves them unknown).
//!
//! A voter is a *server*, not a URL: two URLs can name one server (`localhost` and
//! `127.0.0.1`, two databases), and only the `run_id` tells. The facts are parsed by a pure
//! function (unit-tested apart from any connection) and re-read whenever a connection is
//! reopened, so a restart (a new `run_id`) is noticed. `admit` turns them into the rule of
//! who may vote in a round.
//!
//! `admit`: that rule; `cell`: [`FactsCell`], the facts of a node's current connection and
//! their history.

use std::time::Duration;

use tokio::time::Instant;

use info::parse_info;

mod admit;
mod cell;
pub(crate) mod info;

#[cfg(test)]
pub(crate) use admit::admit;
pub(crate) use admit::{Veto, admit_one, refusal};
pub(crate) use cell::FactsCell;

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

#[cfg(test)]
mod tests;
