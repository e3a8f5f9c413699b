//! The real voter: a Redis master reached directly by its address over one multiplexed
//! connection, the registry that keeps those connections across topology refreshes, and the
//! [`Seeds`](crate::topology::Seeds) source that hands them to discovery.
//!
//! `connection`: opening the connection (single flight, in a task of its own) and forgetting
//! a broken one; `replies`: the parsers of the lock scripts' replies; `seeds`: the registry of
//! nodes by address and the seeds of discovery.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::adapter::cluster_replies::{parse_cluster_shards, parse_cluster_slots};
use crate::error::NodeError;
use crate::node::{Node, NodeResult, ScriptCall, ScriptReply, SlotRange};
use crate::server::{FactsCell, ServerFacts};

mod acked;
mod connection;
mod facts;
mod fenced;
mod replies;
mod seeds;

use acked::AckedConnections;
#[cfg(test)]
pub(crate) use fenced::{
    MAX_COUNTER_LEAD, check_counter_lead, parse_acquire_fenced, parse_commit, parse_counter_bytes,
    parse_read,
};
#[cfg(not(test))]
pub(crate) use fenced::{parse_acquire_fenced, parse_commit, parse_read};

use crate::mutex::lock;
use connection::Conn;
pub(crate) use connection::addr_string;
pub(crate) use replies::{parse_acquire, parse_flag, parse_inspect};
pub(crate) use seeds::RedisSeeds;

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

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNode")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
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
    async fn key_is_string(&self, key: &[u8]) -> Result<(), NodeError> {
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

    /// Run `script` with `keys` and `args` on the node's connection (`EVALSHA`, reloaded on
    /// `NOSCRIPT`).
    async fn script_keys(
        &self,
        script: &redis::Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Value, NodeError> {
        self.query(async |conn| {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(*key);
            }
            for arg in args {
                invocation.arg(*arg);
            }
            invocation.invoke_async::<Value>(conn).await
        })
        .await
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

    fn run<'a>(&'a self, call: ScriptCall<'a>) -> NodeResult<'a, ScriptReply> {
        let ScriptCall {
            script,
            keys,
            args,
            wait,
        } = call;
        Box::pin(async move {
            if let Some(wait) = wait {
                let (addr, facts) = (&self.addr, &*self.facts);
                let reply = self.acked.write(addr, facts, script, (keys, args), wait);
                return acked_reply(reply.await);
            }
            self.script_keys(script, keys, args)
                .await
                .map(|v| (v, None))
        })
    }

    fn check_string_key<'a>(&'a self, key: &'a [u8]) -> NodeResult<'a, ()> {
        Box::pin(self.key_is_string(key))
    }

    fn probe(&self) -> NodeResult<'_, ServerFacts> {
        Box::pin(async move {
            let (mut conn, id) = self.connection().await?;
            let facts = facts::read_facts(&mut conn).await;
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
}

/// An acknowledged write's reply as the port gives it.
fn acked_reply(reply: Result<(Value, i64), NodeError>) -> Result<(Value, Option<i64>), NodeError> {
    reply.map(|(value, acked)| (value, Some(acked)))
}

#[cfg(test)]
mod tests;
