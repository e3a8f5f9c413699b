//! The fencing scripts on a real node (fenced acquire, commit, counter read) and the parsers
//! of their replies.

use std::time::Duration;

use redis::Value;

use crate::error::NodeError;
use crate::redis_node::{RedisNode, parse_acquire, parse_flag};

use super::FencedReply;

/// The fencing scripts, compiled once per process. They are not preloaded with the lock
/// scripts: the first fenced acquire on a server costs one `NOSCRIPT` round trip more.
struct FencingScripts {
    acquire: redis::Script,
    commit: redis::Script,
}

static SCRIPTS: std::sync::LazyLock<FencingScripts> = std::sync::LazyLock::new(|| FencingScripts {
    acquire: redis::Script::new(include_str!("../scripts/acquire_fenced.lua")),
    commit: redis::Script::new(include_str!("../scripts/fence_commit.lua")),
});

/// A counter as stored: decimal digits (a missing counter reads as 0).
pub(super) fn parse_counter(value: &Value) -> Result<u64, NodeError> {
    let bad = || NodeError::Protocol(format!("fencing counter {value:?} is not a u64"));
    match value {
        Value::Nil => Ok(0),
        Value::Int(n) => u64::try_from(*n).map_err(|_| bad()),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad),
        Value::SimpleString(s) => s.parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// The reply of `acquire_fenced.lua`: `{1, counter}` or, as the plain acquire, `{0, pttl}`.
pub(super) fn parse_acquire_fenced(value: &Value) -> Result<FencedReply, NodeError> {
    match value {
        Value::Array(items) if items.len() == 2 && items[0] == Value::Int(1) => {
            parse_counter(&items[1]).map(FencedReply::Granted)
        }
        other => match parse_acquire(other)? {
            crate::node::AcquireReply::Held(left) => Ok(FencedReply::Held(left)),
            crate::node::AcquireReply::Granted => Err(NodeError::Protocol(format!(
                "fenced acquire script returned {other:?}"
            ))),
        },
    }
}

/// The fencing scripts on a real node; its [`crate::node::Node`] methods call these.
impl RedisNode {
    pub(crate) async fn run_acquire_fenced(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        ttl: Duration,
    ) -> Result<FencedReply, NodeError> {
        let ttl = ttl.as_millis().to_string();
        let reply = self
            .query(async |conn| {
                let mut invocation = SCRIPTS.acquire.key(key);
                invocation.key(counter).arg(token).arg(&ttl);
                invocation.invoke_async::<Value>(conn).await
            })
            .await?;
        parse_acquire_fenced(&reply)
    }

    pub(crate) async fn run_fence_commit(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        fencing_token: u64,
    ) -> Result<bool, NodeError> {
        let reply = self
            .query(async |conn| {
                let mut invocation = SCRIPTS.commit.key(key);
                invocation
                    .key(counter)
                    .arg(token)
                    .arg(fencing_token.to_string());
                invocation.invoke_async::<Value>(conn).await
            })
            .await?;
        parse_flag(&reply)
    }

    pub(crate) async fn run_read_fence(&self, counter: &[u8]) -> Result<u64, NodeError> {
        let reply = self
            .query(async |conn| {
                redis::cmd("GET")
                    .arg(counter)
                    .query_async::<Value>(conn)
                    .await
            })
            .await?;
        parse_counter(&reply)
    }
}
