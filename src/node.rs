//! One voter's node: what the quorum engine and topology discovery ask of a Redis master.
//!
//! The engine and the features talk to nodes only through the [`Node`] trait, so that the same
//! voting and discovery code runs against real Redis (`adapter::redis_node`) and against the
//! in-memory nodes of the model-based property tests. Every vote is one primitive, a script of
//! the registry run with its keys and arguments, optionally followed by `WAIT`
//! ([`Node::run`]); the rest reads what a server says about itself (facts, cluster slots, its
//! clock) or where to subscribe. A new feature is a new script and a new decision, never a new
//! method here.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::NodeError;
use crate::server::ServerFacts;

/// A node's answer to the acquire script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcquireReply {
    /// The key was set with our token.
    Granted,
    /// Someone else holds the key; their remaining time (`None`: the key has no expiry).
    Held(Option<Duration>),
}

/// A node's answer to the fenced acquire script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FencedReply {
    /// The key was set with our token: the voter's fencing counter (0 when it has none) and
    /// its clock (`TIME`) in microseconds since the Unix epoch.
    Granted { counter: u64, time: u64 },
    /// Someone else holds the key; their remaining time (`None`: the key has no expiry).
    Held(Option<Duration>),
}

/// One call of the port's one primitive, [`Node::run`]: a script of the registry
/// (`adapter::scripts`), its keys and arguments, and the `WAIT` that follows it, as
/// `(replicas, milliseconds)`, when replicas must acknowledge the write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptCall<'a> {
    pub(crate) script: &'static redis::Script,
    pub(crate) keys: &'a [&'a [u8]],
    pub(crate) args: &'a [&'a [u8]],
    pub(crate) wait: Option<(usize, u64)>,
}

/// What [`Node::run`] returns: the script's reply, and how many replicas acknowledged it
/// (`None` without `WAIT`).
pub(crate) type ScriptReply = (redis::Value, Option<i64>);

/// An inclusive slot range and the address of the master serving it. An empty `host` means
/// the node does not know its own address (a node that never met a peer reports `ip: ""`):
/// the caller uses the address it reached the node at, as `redis-cli` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// What a node reports about a key: its token, and its remaining time (`None`: no expiry).
pub(crate) type KeyState = (Option<String>, Option<Duration>);

pub(crate) type NodeResult<'a, T> = BoxFuture<'a, Result<T, NodeError>>;

/// One voter. Deadlines are applied by the caller, so implementations need none of their own
/// beyond connecting. A call whose future is dropped before its request was written must not
/// be sent later, and calls on one node run in the order they were first polled (as on one
/// multiplexed connection): the cleanup ordering of `round` relies on both.
pub(crate) trait Node: Send + Sync + fmt::Debug {
    /// `host:port`, for error messages and lock info.
    fn addr(&self) -> &str;
    /// Make sure a connection is open (used when a manager connects eagerly; a round's calls
    /// open one themselves, under the round's deadline).
    fn connect(&self) -> NodeResult<'_, ()>;
    /// Whether a connection is open now (a call would be queued on it at once). By default:
    /// not known, so callers go through [`Node::connect`].
    fn is_connected(&self) -> bool {
        false
    }
    /// Which master serves which slots, from `CLUSTER SHARDS` (Redis 7+).
    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>>;
    /// Which master serves which slots, from `CLUSTER SLOTS` (any Redis Cluster version).
    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>>;

    /// What the server said about itself when the current connection opened (`run_id`,
    /// `cluster_enabled`, eviction policy...); `None` before the first connection. Who may
    /// vote is decided on these (see `server::admit`).
    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>>;
    /// Run `script` (from the one registry, `adapter::scripts`) with `keys` and `args`; with
    /// `wait` = `(replicas, milliseconds)`, followed by `WAIT replicas milliseconds` pipelined
    /// on a connection of its own (`WAIT` blocks the connection it is sent on). The script's
    /// reply, and how many replicas acknowledged (`None` without `wait`). Every vote of
    /// every round kind is one such call (see `engine::round::votes`).
    fn run<'a>(&'a self, call: ScriptCall<'a>) -> NodeResult<'a, ScriptReply>;
    /// [`NodeError::WrongType`] when `key` holds something other than a string (a key
    /// without expiry that `SET NX` cannot tell from a held lock). By default: not checked.
    fn check_string_key<'a>(&'a self, _key: &'a [u8]) -> NodeResult<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Read the server's facts afresh, for the health report (and record them, so that a
    /// role change is seen). By default: the facts of the current connection.
    fn probe(&self) -> NodeResult<'_, ServerFacts> {
        let facts = self.facts();
        Box::pin(async move {
            facts
                .map(|f| ServerFacts::clone(&f))
                .ok_or_else(|| NodeError::Server("no server facts were read yet".into()))
        })
    }
    /// The server's clock (`TIME`) as time since the Unix epoch, for the health report's
    /// clock-rate measurement. By default: not available.
    fn server_time(&self) -> NodeResult<'_, Duration> {
        Box::pin(async { Err(NodeError::Server("this node has no clock to read".into())) })
    }

    /// Where to open a pub/sub connection for release notices (`notify`); `None` for nodes
    /// that publish none (the simulation's, an unserved slot).
    fn subscriber_info(&self) -> Option<redis::ConnectionInfo> {
        None
    }
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
    fn run<'a>(&'a self, _: ScriptCall<'a>) -> NodeResult<'a, ScriptReply> {
        self.fail()
    }
    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        self.fail()
    }
    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        self.fail()
    }
    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        None
    }
}
