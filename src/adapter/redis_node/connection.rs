//! Opening a node's connection: one at a time per node, in a task of its own that a caller
//! giving up does not stop, and forgetting it once it broke.

use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use redis::aio::MultiplexedConnection;

use crate::adapter::scripts::SCRIPTS;
use crate::error::NodeError;
use crate::mutex::lock;
use crate::server::FactsCell;

use super::RedisNode;

/// An opening connection, awaited by every caller that needs it (single flight).
type Opening = Shared<BoxFuture<'static, Result<MultiplexedConnection, NodeError>>>;

/// Where a node's connection stands.
pub(super) enum Conn {
    /// None open and none opening.
    Closed,
    /// Being opened by a task that keeps going when the callers waiting for it give up.
    Opening(Opening),
    /// Open; the number tells it from a later connection, so that an old failure does not
    /// drop a newer connection.
    Open(MultiplexedConnection, u64),
}

/// `host:port` of a connection address.
pub(crate) fn addr_string(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        other => format!("{other:?}"),
    }
}

/// Open a connection, read the server's facts into `facts`, and preload the scripts, all
/// within `timeout`.
pub(super) async fn open(
    info: redis::ConnectionInfo,
    timeout: Duration,
    addr: &str,
    facts: &FactsCell,
) -> Result<MultiplexedConnection, NodeError> {
    let open = async {
        #[cfg(feature = "tls")]
        if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            // Without a process-level provider rustls would panic in the connect below.
            crate::tls::ensure_crypto_provider();
        }
        let client = redis::Client::open(info).map_err(|e| NodeError::Connect(e.to_string()))?;
        // No response timeout of redis-rs's own: every call already runs under the round's
        // deadline, and a second timer per request would only stack on it.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| NodeError::from_connect(&e))?;
        // Who this server is, read once per connection (see `server`).
        facts.record(addr, super::facts::read_facts(&mut conn).await?);
        SCRIPTS
            .preload(&conn)
            .await
            .map_err(|e| match NodeError::from_redis(&e) {
                NodeError::Io(msg) => NodeError::Connect(msg),
                other => other,
            })?;
        Ok::<_, NodeError>(conn)
    };
    tokio::time::timeout(timeout, open)
        .await
        .unwrap_or(Err(NodeError::Timeout(timeout)))
}

impl RedisNode {
    /// The open connection, opening it (and preloading the scripts) if needed.
    ///
    /// Opening runs in a spawned task, one at a time per node: a caller that stops waiting
    /// (its round's deadline passed) does not stop it, so a node that is slow to accept costs
    /// each round at most that round's deadline, and the connection is there for the next.
    pub(crate) async fn connection(&self) -> Result<(MultiplexedConnection, u64), NodeError> {
        let opening = {
            let mut state = lock(&self.conn);
            match &*state {
                Conn::Open(conn, id) => return Ok((conn.clone(), *id)),
                Conn::Opening(opening) => opening.clone(),
                Conn::Closed => {
                    let opening = self.start_opening();
                    *state = Conn::Opening(opening.clone());
                    opening
                }
            }
        };
        let conn = opening.await?;
        // Whoever is first after the opening task stored it finds it open.
        match &*lock(&self.conn) {
            Conn::Open(open, id) => Ok((open.clone(), *id)),
            _ => Ok((conn, 0)),
        }
    }

    fn start_opening(&self) -> Opening {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let (state, info, timeout) = (self.conn.clone(), self.info.clone(), self.connect_timeout);
        let (addr, facts) = (self.addr.clone(), self.facts.clone());
        let task = async move {
            let result = open(info, timeout, &addr, &facts).await;
            *lock(&state) = match &result {
                Ok(conn) => Conn::Open(
                    conn.clone(),
                    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                ),
                Err(_) => Conn::Closed,
            };
            result
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let handle = runtime.spawn(task);
                async move {
                    handle
                        .await
                        .unwrap_or_else(|e| Err(NodeError::Connect(e.to_string())))
                }
                .boxed()
                .shared()
            }
            Err(_) => task.boxed().shared(),
        }
    }

    /// Forget a broken connection so that the next call reconnects.
    pub(super) fn forget_connection(&self, broken: u64) {
        let mut state = lock(&self.conn);
        if matches!(&*state, Conn::Open(_, id) if *id == broken) {
            *state = Conn::Closed;
        }
    }

    /// Run a command, forgetting the connection if it broke.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        run: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, NodeError> {
        let (mut conn, id) = self.connection().await?;
        match run(&mut conn).await {
            Ok(value) => Ok(value),
            Err(err) => {
                let error = NodeError::from_redis(&err);
                if matches!(error, NodeError::Io(_)) || err.is_connection_dropped() {
                    self.forget_connection(id);
                }
                Err(error)
            }
        }
    }
}
