//! Replica-acknowledged votes (opt-in, [`crate::LockConfig::replica_acks`]): a vote counts only
//! after `n` replicas of the voter's master acknowledged the write, so that a failover to an
//! acknowledged replica keeps the key.
//!
//! `WAIT n timeout` acknowledges the writes of the connection it is sent on, and blocks that
//! connection until it answers. So an acknowledged vote never goes over a node's shared
//! multiplexed connection (every other lock's commands would queue behind the `WAIT`): it takes
//! a connection of its own from a small per-node pool ([`AckedConnections`]), sends the script
//! and the `WAIT` pipelined in one round trip, and gives the connection back only after both
//! answered. A vote whose `WAIT` counts fewer than `n` replicas fails with
//! [`NodeError::NotReplicated`]; its key is cleaned up like that of any failed vote.
//!
//! The `WAIT` timeout is capped by the per-node deadline of the round (see [`wait_limit`]):
//! no round waits longer than `node_timeout` for one voter.

use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError};
use crate::node::{AcquireReply, Node, SharedNode};
use crate::redis_node::{parse_acquire, parse_flag};
use crate::scripts::SCRIPTS;
use crate::server::{FactsCell, ServerFacts};

/// How many idle connections for acknowledged writes a node keeps. More votes in flight open
/// more connections; those beyond this many are closed after use.
const MAX_IDLE: usize = 4;

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

/// The `WAIT` timeout in whole milliseconds: the configured timeout, capped by the vote's
/// deadline `per_call`, and never 0 (which would make `WAIT` block forever).
pub(crate) fn wait_limit(acks: &ReplicaAcks, per_call: Duration) -> u64 {
    let limit = acks.timeout.min(per_call).as_millis();
    u64::try_from(limit).unwrap_or(u64::MAX).max(1)
}

/// The vote of a write that `acked` replicas acknowledged when `needed` were asked for.
pub(crate) fn judged<T>(reply: T, acked: i64, needed: usize) -> Result<T, NodeError> {
    match usize::try_from(acked) {
        Ok(acked) if acked >= needed => Ok(reply),
        _ => Err(NodeError::NotReplicated {
            acked: usize::try_from(acked).unwrap_or(0),
            needed,
        }),
    }
}

/// Run the acquire script on `node`: acknowledged by replicas when the configuration asks for
/// it (then `per_call` is the vote's deadline, which caps the `WAIT`), plain otherwise.
pub(crate) async fn acquire(
    node: &SharedNode,
    key: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<AcquireReply, NodeError> {
    let Some(acks) = config.replica_acks_value() else {
        return node.acquire(key, token, ttl).await;
    };
    let writer = writer_of(node.as_ref(), acks)?;
    let (reply, acked) = writer
        .write_token_ttl(&SCRIPTS.acquire, key, token, ttl, acks, per_call)
        .await?;
    let reply = parse_acquire(&reply)?;
    if reply != AcquireReply::Granted {
        // Nothing was written: replication is beside the point.
        if reply == AcquireReply::Held(None) {
            writer.check_string_key(key).await?;
        }
        return Ok(reply);
    }
    judged(reply, acked, acks.replicas)
}

/// Run the extend script on `node`, acknowledged by replicas when configured (see
/// [`acquire`]). An extend that replicas did not acknowledge counts as failed.
pub(crate) async fn extend(
    node: &SharedNode,
    key: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<bool, NodeError> {
    let Some(acks) = config.replica_acks_value() else {
        return node.extend(key, token, ttl).await;
    };
    let writer = writer_of(node.as_ref(), acks)?;
    let (reply, acked) = writer
        .write_token_ttl(&SCRIPTS.extend, key, token, ttl, acks, per_call)
        .await?;
    match parse_flag(&reply)? {
        true => judged(true, acked, acks.replicas),
        false => Ok(false),
    }
}

/// The node's writer for acknowledged writes, or why it has none.
pub(crate) fn writer_of<'a>(
    node: &'a dyn Node,
    acks: &ReplicaAcks,
) -> Result<AckedWriter<'a>, NodeError> {
    node.acked_writer().ok_or(NodeError::NotReplicated {
        acked: 0,
        needed: acks.replicas,
    })
}

/// With replica acks configured, the voters whose server reported fewer connected replicas
/// than needed when its connection opened (`connected_slaves` of `INFO replication`): such a
/// master cannot give an acknowledged vote until replicas attach.
///
/// Independent masters: an error naming each of them (a standalone master without replicas
/// is a configuration mistake). Cluster masters: a warning, since a master is often without
/// its replica for a while after a failover, until the old master comes back as one.
pub(crate) fn check_replicas(
    config: &LockConfig,
    mode: Mode,
    nodes: &[SharedNode],
) -> Result<(), LockError> {
    let Some(acks) = config.replica_acks_value() else {
        return Ok(());
    };
    let short: Vec<String> = nodes
        .iter()
        .filter_map(|node| {
            let facts = node.facts()?;
            too_few_replicas(&facts, acks).then(|| {
                format!(
                    "{} (connected_slaves:{} < {})",
                    node.addr(),
                    facts.connected_replicas,
                    acks.replicas
                )
            })
        })
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    let problem = format!(
        "replica_acks({}) needs {} replica(s) per voter, but {} had fewer: their votes fail \
         until enough replicas attach; attach replicas to these masters or lower replica_acks",
        acks.replicas,
        acks.replicas,
        short.join(", ")
    );
    if mode == Mode::Cluster {
        tracing::warn!("{problem}");
        return Ok(());
    }
    Err(LockError::InvalidConfig(problem))
}

/// Whether a server has fewer replicas attached than the acks need.
fn too_few_replicas(facts: &ServerFacts, acks: &ReplicaAcks) -> bool {
    usize::try_from(facts.connected_replicas).unwrap_or(usize::MAX) < acks.replicas
}

fn ttl_millis(ttl: Duration) -> Vec<u8> {
    ttl.as_millis().to_string().into_bytes()
}

/// A node's pool of connections for acknowledged writes, each used by one vote at a time and
/// opened lazily.
pub(crate) struct AckedConnections {
    info: redis::ConnectionInfo,
    connect_timeout: Duration,
    /// Idle connections. A std mutex: only held to push or pop, never across an `.await`.
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl std::fmt::Debug for AckedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckedConnections")
            .field("idle", &self.idle_mut().len())
            .finish_non_exhaustive()
    }
}

impl AckedConnections {
    /// A pool for the node at `info`; nothing is connected yet.
    pub(crate) fn new(info: redis::ConnectionInfo, connect_timeout: Duration) -> Self {
        AckedConnections {
            info,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle_mut(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        match self.idle.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// An idle connection, or a new one (its server's facts recorded in `facts`, the scripts
    /// loaded).
    async fn take(
        &self,
        addr: &str,
        facts: &FactsCell,
    ) -> Result<MultiplexedConnection, NodeError> {
        if let Some(conn) = self.idle_mut().pop() {
            return Ok(conn);
        }
        let timeout = self.connect_timeout;
        let open = async {
            #[cfg(feature = "tls")]
            if matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
                crate::tls::ensure_crypto_provider();
            }
            let client = redis::Client::open(self.info.clone())
                .map_err(|e| NodeError::Connect(e.to_string()))?;
            // No response timeout of its own: every use is under the round's deadline, and a
            // connection whose call was cut short is dropped, never given back.
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(None);
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| NodeError::from_connect(&e))?;
            // A new connection may reach a restarted server before the node's main connection
            // notices: record who answers, so that the voting rules see it.
            facts.record(addr, ServerFacts::read(&mut conn).await?);
            SCRIPTS
                .preload(&conn)
                .await
                .map_err(|e| NodeError::from_redis(&e))?;
            Ok::<_, NodeError>(conn)
        };
        tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| NodeError::Timeout(timeout))?
    }

    /// Give a connection back after a complete exchange.
    fn give_back(&self, conn: MultiplexedConnection) {
        let mut idle = self.idle_mut();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// What [`Node::acked_writer`] hands out: a node's pool, with where to record its facts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckedWriter<'a> {
    pub(crate) addr: &'a str,
    pub(crate) connections: &'a AckedConnections,
    pub(crate) facts: &'a FactsCell,
}

impl AckedWriter<'_> {
    /// [`write`](Self::write) of a script whose arguments are the token and the TTL in
    /// milliseconds (acquire and extend).
    async fn write_token_ttl(
        &self,
        script: &redis::Script,
        key: &[u8],
        token: &str,
        ttl: Duration,
        acks: &ReplicaAcks,
        per_call: Duration,
    ) -> Result<(Value, i64), NodeError> {
        let ttl = ttl_millis(ttl);
        self.write(script, key, &[token.as_bytes(), &ttl], acks, per_call)
            .await
    }

    /// `EVALSHA script` then `WAIT n limit`, pipelined on a connection of the pool; returns the
    /// script's reply and the number of replicas that acknowledged. A missing script
    /// (`NOSCRIPT`, after a `SCRIPT FLUSH`) is loaded and the pair sent once more.
    async fn write(
        &self,
        script: &redis::Script,
        key: &[u8],
        args: &[&[u8]],
        acks: &ReplicaAcks,
        per_call: Duration,
    ) -> Result<(Value, i64), NodeError> {
        self.write_keys(script, &[key], args, acks, per_call).await
    }

    /// [`write`](Self::write) of a script with several keys (the fenced scripts: the lock key
    /// and its counter).
    pub(crate) async fn write_keys(
        &self,
        script: &redis::Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        acks: &ReplicaAcks,
        per_call: Duration,
    ) -> Result<(Value, i64), NodeError> {
        let mut conn = self.connections.take(self.addr, self.facts).await?;
        let limit = wait_limit(acks, per_call);
        let mut reloaded = false;
        loop {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            pipe.cmd("EVALSHA").arg(script.get_hash()).arg(keys.len());
            for key in keys {
                pipe.arg(*key);
            }
            for arg in args {
                pipe.arg(*arg);
            }
            pipe.cmd("WAIT").arg(acks.replicas).arg(limit);
            let replies: Vec<Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| NodeError::from_redis(&e))?;
            let [reply, acked] = <[Value; 2]>::try_from(replies).map_err(|replies| {
                NodeError::Protocol(format!("script and WAIT returned {replies:?}"))
            })?;
            let noscript = matches!(&reply, Value::ServerError(e) if e.code() == "NOSCRIPT");
            if noscript && !reloaded {
                reloaded = true;
                script
                    .load_async(&mut conn)
                    .await
                    .map_err(|e| NodeError::from_redis(&e))?;
                continue;
            }
            let acked = match acked {
                Value::Int(n) => n,
                Value::ServerError(e) => {
                    return Err(NodeError::from_redis(&redis::RedisError::from(e)));
                }
                other => {
                    return Err(NodeError::Protocol(format!("WAIT returned {other:?}")));
                }
            };
            self.connections.give_back(conn);
            return Ok((reply, acked));
        }
    }

    /// [`NodeError::WrongType`] when `key` holds something other than a string.
    async fn check_string_key(&self, key: &[u8]) -> Result<(), NodeError> {
        let mut conn = self.connections.take(self.addr, self.facts).await?;
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| NodeError::from_redis(&e))?;
        self.connections.give_back(conn);
        match kind.as_str() {
            "string" | "none" => Ok(()),
            other => Err(NodeError::WrongType(format!(
                "the key holds a {other} (WRONGTYPE)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
