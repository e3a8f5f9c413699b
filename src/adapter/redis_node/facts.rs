//! Reading what a server says about itself (`server::ServerFacts`) over an open connection:
//! the redis-rs side of the facts, whose parsing and meaning live in `server`.

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::error::NodeError;
use crate::server::ServerFacts;

/// Read the facts over an open connection: `INFO default`, then `CONFIG GET` of
/// `appendfsync` and (on a cluster node) `cluster-require-full-coverage`. A refused
/// `CONFIG` (ACL, renamed command) leaves those unknown; a broken connection is an error.
pub(super) async fn read_facts(conn: &mut MultiplexedConnection) -> Result<ServerFacts, NodeError> {
    let info: String = redis::cmd("INFO")
        .arg("default")
        .query_async(conn)
        .await
        .map_err(|e| NodeError::from_redis(&e))?;
    let mut facts = ServerFacts::parse(&info, Instant::now()).map_err(NodeError::Protocol)?;
    facts.appendfsync = config_get(conn, "appendfsync").await?;
    if facts.cluster_enabled {
        facts.require_full_coverage = config_get(conn, "cluster-require-full-coverage")
            .await?
            .map(|v| v == "yes");
    }
    Ok(facts)
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
