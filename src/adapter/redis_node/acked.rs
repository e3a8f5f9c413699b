//! A node's connections for replica-acknowledged writes (`LockConfig::replica_acks`): `WAIT n
//! timeout` acknowledges the writes of the connection it is sent on and blocks that
//! connection until it answers, so an acknowledged vote never goes over the node's shared
//! multiplexed connection (every other lock's commands would queue behind the `WAIT`): it
//! takes a connection of its own from a small pool, sends the script and the `WAIT`
//! pipelined in one round trip, and gives the connection back only after both answered.

use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::error::NodeError;
use crate::server::FactsCell;

/// How many idle connections for acknowledged writes a node keeps. More votes in flight open
/// more connections; those beyond this many are closed after use.
const MAX_IDLE: usize = 4;

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
            .field("idle", &crate::mutex::lock(&self.idle).len())
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

    /// An idle connection, or a new one (its server's facts recorded in `facts`, the scripts
    /// loaded).
    async fn take(
        &self,
        addr: &str,
        facts: &FactsCell,
    ) -> Result<MultiplexedConnection, NodeError> {
        if let Some(conn) = crate::mutex::lock(&self.idle).pop() {
            return Ok(conn);
        }
        // The one way a node's connection opens (see `connection`): a new connection may
        // reach a restarted server before the node's main connection notices, so who answers
        // is recorded for the voting rules. No response timeout of its own: every use is under
        // the round's deadline, and a connection whose call was cut short is never given back.
        super::connection::open(self.info.clone(), self.connect_timeout, addr, facts).await
    }

    /// Give a connection back after a complete exchange.
    fn give_back(&self, conn: MultiplexedConnection) {
        let mut idle = crate::mutex::lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
    /// `EVALSHA script` then `WAIT replicas limit`, pipelined on a connection of the pool;
    /// returns the script's reply and the number of replicas that acknowledged. A missing
    /// script (`NOSCRIPT`, after a `SCRIPT FLUSH`) is loaded and the pair sent once more.
    pub(super) async fn write(
        &self,
        addr: &str,
        facts: &FactsCell,
        script: &redis::Script,
        (keys, args): (&[&[u8]], &[&[u8]]),
        (replicas, limit): (usize, u64),
    ) -> Result<(Value, i64), NodeError> {
        let mut conn = self.take(addr, facts).await?;
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
            pipe.cmd("WAIT").arg(replicas).arg(limit);
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
            self.give_back(conn);
            return Ok((reply, acked));
        }
    }
}
