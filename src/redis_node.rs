//! The real voter: a Redis master reached directly by its address over one multiplexed
//! connection, the registry that keeps those connections across topology refreshes, and the
//! [`Seeds`] source that hands them to discovery.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::acks::{AckedConnections, AckedWriter};
use crate::cluster_replies::{SlotRange, parse_cluster_shards, parse_cluster_slots};
use crate::error::NodeError;
use crate::fencing::FencedReply;
use crate::node::{AcquireReply, KeyState, Node, NodeResult, SharedNode, UnservedSlot};
use crate::scripts::SCRIPTS;
use crate::server::{FactsCell, ServerFacts};
use crate::topology::Seeds;

/// A real Redis master reached directly by its address, with one lazily opened multiplexed
/// connection that is reopened after an I/O error.
pub(crate) struct RedisNode {
    addr: String,
    info: redis::ConnectionInfo,
    connect_timeout: Duration,
    /// The connection's state, shared with the task that opens it. A std mutex, held only to
    /// read or swap the state, never across an `.await`: an open connection costs a clone.
    conn: Arc<std::sync::Mutex<Conn>>,
    /// What the server said about itself when the current connection opened (written by the
    /// task that opens it).
    facts: Arc<FactsCell>,
    /// Connections for replica-acknowledged writes (see `acks`), opened on first use.
    acked: AckedConnections,
}

/// An opening connection, awaited by every caller that needs it (single flight).
type Opening = Shared<BoxFuture<'static, Result<MultiplexedConnection, NodeError>>>;

/// Where a node's connection stands.
enum Conn {
    /// None open and none opening.
    Closed,
    /// Being opened by a task that keeps going when the callers waiting for it give up.
    Opening(Opening),
    /// Open; the number tells it from a later connection, so that an old failure does not
    /// drop a newer connection.
    Open(MultiplexedConnection, u64),
}

fn lock(state: &std::sync::Mutex<Conn>) -> std::sync::MutexGuard<'_, Conn> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Open a connection, read the server's facts into `facts`, and preload the scripts, all
/// within `timeout`.
async fn open(
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
        facts.record(addr, ServerFacts::read(&mut conn).await?);
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
    pub(crate) fn new(info: redis::ConnectionInfo, connect_timeout: Duration) -> Self {
        RedisNode {
            addr: addr_string(info.addr()),
            acked: AckedConnections::new(info.clone(), connect_timeout),
            info,
            connect_timeout,
            conn: Arc::new(std::sync::Mutex::new(Conn::Closed)),
            facts: Arc::new(FactsCell::default()),
        }
    }

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
    fn forget_connection(&self, broken: u64) {
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

    /// Run the plain command `name args...` and read its reply as `T`.
    async fn command<T: redis::FromRedisValue>(
        &self,
        name: &str,
        args: &[&str],
    ) -> Result<T, NodeError> {
        self.query(async |conn| redis::cmd(name).arg(args).query_async::<T>(conn).await)
            .await
    }

    /// [`NodeError::WrongType`] when `key` holds something other than a string.
    async fn check_string_key(&self, key: &[u8]) -> Result<(), NodeError> {
        let kind: String = self
            .query(async |conn| redis::cmd("TYPE").arg(key).query_async(conn).await)
            .await?;
        match kind.as_str() {
            "string" | "none" => Ok(()),
            other => Err(NodeError::WrongType(format!(
                "the key holds a {other} (WRONGTYPE)"
            ))),
        }
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

    fn is_connected(&self) -> bool {
        matches!(&*lock(&self.conn), Conn::Open(..))
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
            let reply = parse_acquire(&reply)?;
            // Our keys always expire: a key without expiry may be a foreign value (a list, a
            // hash) that SET NX cannot tell apart from a held lock.
            if reply == AcquireReply::Held(None) {
                self.check_string_key(key).await?;
            }
            Ok(reply)
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

    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async move {
            let reply = self.command::<Value>("CLUSTER", &["SHARDS"]).await?;
            // Over TLS the nodes announce a `tls-port` as well; that is the one to dial.
            let tls = matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. });
            parse_cluster_shards(&reply, tls).map_err(NodeError::Protocol)
        })
    }

    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async move {
            let reply = self.command::<Value>("CLUSTER", &["SLOTS"]).await?;
            parse_cluster_slots(&reply).map_err(NodeError::Protocol)
        })
    }

    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        self.facts.get()
    }

    fn acked_writer(&self) -> Option<AckedWriter<'_>> {
        Some(AckedWriter {
            addr: &self.addr,
            connections: &self.acked,
            facts: &self.facts,
        })
    }

    fn probe(&self) -> NodeResult<'_, ServerFacts> {
        Box::pin(async move {
            let (mut conn, id) = self.connection().await?;
            let facts = ServerFacts::read(&mut conn).await;
            if matches!(facts, Err(NodeError::Io(_))) {
                self.forget_connection(id);
            }
            let facts = facts?;
            self.facts.record(&self.addr, facts.clone());
            Ok(self.facts.get().map_or(facts, |f| ServerFacts::clone(&f)))
        })
    }

    fn server_time(&self) -> NodeResult<'_, Duration> {
        Box::pin(async move {
            let (secs, micros): (String, String) = self
                .query(async |conn| redis::cmd("TIME").query_async(conn).await)
                .await?;
            match (secs.parse::<u64>(), micros.parse::<u64>()) {
                (Ok(secs), Ok(micros)) => {
                    Ok(Duration::from_secs(secs) + Duration::from_micros(micros))
                }
                _ => Err(NodeError::Protocol(format!(
                    "TIME replied {secs:?} {micros:?}"
                ))),
            }
        })
    }

    fn subscriber_info(&self) -> Option<redis::ConnectionInfo> {
        Some(self.info.clone())
    }

    // Fencing: the scripts and their replies live in `fencing`.

    fn acquire_fenced<'a>(
        &'a self,
        key: &'a [u8],
        counter: &'a [u8],
        token: &'a str,
        ttl: Duration,
    ) -> NodeResult<'a, FencedReply> {
        Box::pin(self.run_acquire_fenced(key, counter, token, ttl))
    }

    fn fence_commit<'a>(
        &'a self,
        key: &'a [u8],
        counter: &'a [u8],
        token: &'a str,
        fencing_token: u64,
    ) -> NodeResult<'a, bool> {
        Box::pin(self.run_fence_commit(key, counter, token, fencing_token))
    }

    fn read_fence<'a>(&'a self, counter: &'a [u8]) -> NodeResult<'a, u64> {
        Box::pin(self.run_read_fence(counter))
    }
}

/// The connections of the real nodes, kept across topology refreshes by address so that a
/// refresh does not reopen every connection.
#[derive(Debug, Default)]
pub(crate) struct NodeRegistry {
    nodes: std::sync::Mutex<HashMap<String, Arc<RedisNode>>>,
}

impl NodeRegistry {
    pub(crate) fn node(
        &self,
        info: &redis::ConnectionInfo,
        connect_timeout: Duration,
    ) -> Arc<RedisNode> {
        let addr = addr_string(info.addr());
        let mut nodes = match self.nodes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        nodes
            .entry(addr)
            .or_insert_with(|| Arc::new(RedisNode::new(info.clone(), connect_timeout)))
            .clone()
    }

    /// The connection settings of the node at `addr`, if it is known.
    fn settings(&self, addr: &str) -> Option<redis::ConnectionInfo> {
        let nodes = match self.nodes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        nodes.get(addr).map(|node| node.info.clone())
    }
}

/// The connection info of a discovered master: the seed's settings (credentials, TLS, db)
/// with the master's address.
fn master_info(seed: &redis::ConnectionInfo, host: &str, port: u16) -> redis::ConnectionInfo {
    let addr = match seed.addr() {
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => redis::ConnectionAddr::Tcp(host.to_string(), port),
    };
    seed.clone().set_addr(addr)
}

/// The configured Redis nodes and the registry of every node discovered from them.
#[derive(Debug)]
pub(crate) struct RedisSeeds {
    /// The nodes of the configured URLs, in order.
    seeds: Vec<SharedNode>,
    registry: NodeRegistry,
    connect_timeout: Duration,
}

impl RedisSeeds {
    /// The nodes of `urls` (already parsed and checked); nothing is connected yet.
    pub(crate) fn new(urls: &[redis::ConnectionInfo], connect_timeout: Duration) -> Self {
        let registry = NodeRegistry::default();
        let seeds = urls
            .iter()
            .map(|info| registry.node(info, connect_timeout) as SharedNode)
            .collect();
        RedisSeeds {
            seeds,
            registry,
            connect_timeout,
        }
    }
}

impl Seeds for RedisSeeds {
    fn seeds(&self) -> &[SharedNode] {
        &self.seeds
    }

    fn master(&self, via: &dyn Node, host: &str, port: u16) -> SharedNode {
        // `via` is always one of our registry's nodes; the fallback only keeps this total.
        match self.registry.settings(via.addr()) {
            Some(settings) => self
                .registry
                .node(&master_info(&settings, host, port), self.connect_timeout),
            None => Arc::new(UnservedSlot {
                label: format!("{host}:{port}"),
            }),
        }
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
