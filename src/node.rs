//! One voter's node: what the quorum engine asks of a Redis master, and the real
//! implementation over one multiplexed connection per master.
//!
//! The engine talks to nodes only through the [`Node`] trait, so that the same voting code runs
//! against real Redis and against the in-memory nodes of the model-based property tests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::error::NodeError;
use crate::scripts::SCRIPTS;

/// A node's answer to the acquire script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcquireReply {
    /// The key was set with our token.
    Granted,
    /// Someone else holds the key; their remaining time (`None`: the key has no expiry).
    Held(Option<Duration>),
}

/// What a node reports about a key: its token, and its remaining time (`None`: no expiry).
pub(crate) type KeyState = (Option<String>, Option<Duration>);

pub(crate) type NodeResult<'a, T> = BoxFuture<'a, Result<T, NodeError>>;

/// One voter. Deadlines are applied by the caller, so implementations need none of their own
/// beyond connecting.
pub(crate) trait Node: Send + Sync + fmt::Debug {
    /// `host:port`, for error messages and lock info.
    fn addr(&self) -> &str;
    /// Make sure a connection is open, so that the timed voting round measures only the vote.
    fn connect(&self) -> NodeResult<'_, ()>;
    /// Run the acquire script.
    fn acquire<'a>(
        &'a self,
        key: &'a [u8],
        token: &'a str,
        ttl: Duration,
    ) -> NodeResult<'a, AcquireReply>;
    /// Run the compare-and-PEXPIRE script; `true` when the key held our token.
    fn extend<'a>(&'a self, key: &'a [u8], token: &'a str, ttl: Duration) -> NodeResult<'a, bool>;
    /// Run the compare-and-delete script; `true` when the key held our token.
    fn release<'a>(&'a self, key: &'a [u8], token: &'a str) -> NodeResult<'a, bool>;
    /// Read token and remaining time.
    fn inspect<'a>(&'a self, key: &'a [u8]) -> NodeResult<'a, KeyState>;
}

/// Run one node call under a deadline; a missed deadline is [`NodeError::Timeout`].
pub(crate) async fn with_deadline<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(NodeError::Timeout(limit)))
}

/// A node handle shared by the topology, the voters and the spawned cleanup tasks.
pub(crate) type SharedNode = Arc<dyn Node>;

/// A real Redis master reached directly by its address, with one lazily opened multiplexed
/// connection that is reopened after an I/O error.
pub(crate) struct RedisNode {
    addr: String,
    info: redis::ConnectionInfo,
    connect_timeout: Duration,
    /// A tokio mutex because it is held across the connect `.await`: concurrent callers wait
    /// for the one connection attempt instead of opening several.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNode")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `host:port` of a connection address.
pub(crate) fn addr_string(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        other => format!("{other:?}"),
    }
}

impl RedisNode {
    pub(crate) fn new(info: redis::ConnectionInfo, connect_timeout: Duration) -> Self {
        RedisNode {
            addr: addr_string(info.addr()),
            info,
            connect_timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The open connection, opening it (and preloading the scripts) if needed.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection, NodeError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let timeout = self.connect_timeout;
        let open = async {
            let client = redis::Client::open(self.info.clone())
                .map_err(|e| NodeError::Connect(e.to_string()))?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            let conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| NodeError::Connect(e.to_string()))?;
            SCRIPTS
                .preload(&conn)
                .await
                .map_err(|e| match NodeError::from_redis(&e) {
                    NodeError::Io(msg) => NodeError::Connect(msg),
                    other => other,
                })?;
            Ok::<_, NodeError>(conn)
        };
        let conn = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| NodeError::Timeout(timeout))??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forget a broken connection so that the next call reconnects.
    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// Run a command, forgetting the connection if it broke.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        run: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, NodeError> {
        let mut conn = self.connection().await?;
        match run(&mut conn).await {
            Ok(value) => Ok(value),
            Err(err) => {
                let error = NodeError::from_redis(&err);
                if matches!(error, NodeError::Io(_)) || err.is_connection_dropped() {
                    self.forget_connection().await;
                }
                Err(error)
            }
        }
    }

    /// Run a plain command (`args[0]` with the rest as arguments) under a deadline.
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        limit: Duration,
        args: &[&str],
    ) -> Result<T, NodeError> {
        let (name, rest) = args.split_first().unwrap_or((&"PING", &[]));
        with_deadline(
            limit,
            self.query(async |conn| redis::cmd(name).arg(rest).query_async::<T>(conn).await),
        )
        .await
    }

    async fn script(
        &self,
        script: &redis::Script,
        key: &[u8],
        args: &[&[u8]],
    ) -> Result<Value, NodeError> {
        self.query(async |conn| {
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(*arg);
            }
            invocation.invoke_async::<Value>(conn).await
        })
        .await
    }
}

fn ttl_millis(ttl: Duration) -> Vec<u8> {
    ttl.as_millis().to_string().into_bytes()
}

/// A PTTL value as a remaining time: `None` for "no expiry" (-1); a missing key (-2) and any
/// other negative value count as zero.
fn pttl(value: i64) -> Option<Duration> {
    match value {
        -1 => None,
        ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    }
}

fn int(value: &Value) -> Result<i64, NodeError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(NodeError::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

fn server_error(value: &Value) -> Option<NodeError> {
    match value {
        Value::ServerError(e) => Some(NodeError::from_redis(&redis::RedisError::from(e.clone()))),
        _ => None,
    }
}

pub(crate) fn parse_acquire(value: &Value) -> Result<AcquireReply, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    match value {
        Value::Array(items) if items.len() == 2 => match int(&items[0])? {
            1 => Ok(AcquireReply::Granted),
            0 => Ok(AcquireReply::Held(pttl(int(&items[1])?))),
            n => Err(NodeError::Protocol(format!("acquire status {n}"))),
        },
        other => Err(NodeError::Protocol(format!(
            "acquire script returned {other:?}"
        ))),
    }
}

pub(crate) fn parse_flag(value: &Value) -> Result<bool, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    Ok(int(value)? == 1)
}

pub(crate) fn parse_inspect(value: &Value) -> Result<KeyState, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    match value {
        Value::Array(items) if items.len() == 2 => {
            let token = match &items[0] {
                Value::Nil => None,
                Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                other => {
                    return Err(NodeError::Protocol(format!("token reply {other:?}")));
                }
            };
            let remaining = pttl(int(&items[1])?);
            Ok(match token {
                None => (None, Some(Duration::ZERO)),
                Some(token) => (Some(token), remaining),
            })
        }
        other => Err(NodeError::Protocol(format!(
            "inspect script returned {other:?}"
        ))),
    }
}

impl Node for RedisNode {
    fn addr(&self) -> &str {
        &self.addr
    }

    fn connect(&self) -> NodeResult<'_, ()> {
        Box::pin(async move { self.connection().await.map(|_| ()) })
    }

    fn acquire<'a>(
        &'a self,
        key: &'a [u8],
        token: &'a str,
        ttl: Duration,
    ) -> NodeResult<'a, AcquireReply> {
        Box::pin(async move {
            let ttl = ttl_millis(ttl);
            let reply = self
                .script(&SCRIPTS.acquire, key, &[token.as_bytes(), &ttl])
                .await?;
            parse_acquire(&reply)
        })
    }

    fn extend<'a>(&'a self, key: &'a [u8], token: &'a str, ttl: Duration) -> NodeResult<'a, bool> {
        Box::pin(async move {
            let ttl = ttl_millis(ttl);
            let reply = self
                .script(&SCRIPTS.extend, key, &[token.as_bytes(), &ttl])
                .await?;
            parse_flag(&reply)
        })
    }

    fn release<'a>(&'a self, key: &'a [u8], token: &'a str) -> NodeResult<'a, bool> {
        Box::pin(async move {
            let reply = self
                .script(&SCRIPTS.release, key, &[token.as_bytes()])
                .await?;
            parse_flag(&reply)
        })
    }

    fn inspect<'a>(&'a self, key: &'a [u8]) -> NodeResult<'a, KeyState> {
        Box::pin(async move {
            let reply = self.script(&SCRIPTS.inspect, key, &[]).await?;
            parse_inspect(&reply)
        })
    }
}

/// A voter whose slot no reachable master serves (a failed master without a replica, or a
/// partial topology view). Every call fails, so the vote counts as failed.
#[derive(Debug)]
pub(crate) struct UnservedSlot {
    pub(crate) label: String,
}

impl UnservedSlot {
    fn fail<T: Send + 'static>(&self) -> NodeResult<'_, T> {
        let error = NodeError::Server(format!("no master serves {}", self.label));
        Box::pin(async move { Err(error) })
    }
}

impl Node for UnservedSlot {
    fn addr(&self) -> &str {
        &self.label
    }
    fn connect(&self) -> NodeResult<'_, ()> {
        self.fail()
    }
    fn acquire<'a>(&'a self, _: &'a [u8], _: &'a str, _: Duration) -> NodeResult<'a, AcquireReply> {
        self.fail()
    }
    fn extend<'a>(&'a self, _: &'a [u8], _: &'a str, _: Duration) -> NodeResult<'a, bool> {
        self.fail()
    }
    fn release<'a>(&'a self, _: &'a [u8], _: &'a str) -> NodeResult<'a, bool> {
        self.fail()
    }
    fn inspect<'a>(&'a self, _: &'a [u8]) -> NodeResult<'a, KeyState> {
        self.fail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replies_parse() {
        let arr = |a: i64, b: i64| Value::Array(vec![Value::Int(a), Value::Int(b)]);
        assert_eq!(parse_acquire(&arr(1, 0)), Ok(AcquireReply::Granted));
        assert_eq!(
            parse_acquire(&arr(0, 1500)),
            Ok(AcquireReply::Held(Some(Duration::from_millis(1500))))
        );
        assert_eq!(parse_acquire(&arr(0, -1)), Ok(AcquireReply::Held(None)));
        assert!(parse_acquire(&Value::Okay).is_err());
        assert_eq!(parse_flag(&Value::Int(1)), Ok(true));
        assert_eq!(parse_flag(&Value::Int(0)), Ok(false));
        assert!(parse_flag(&Value::Nil).is_err());
        let held = Value::Array(vec![Value::BulkString(b"tok".to_vec()), Value::Int(900)]);
        assert_eq!(
            parse_inspect(&held),
            Ok((Some("tok".into()), Some(Duration::from_millis(900))))
        );
        let free = Value::Array(vec![Value::Nil, Value::Int(-2)]);
        assert_eq!(parse_inspect(&free), Ok((None, Some(Duration::ZERO))));
    }
}
