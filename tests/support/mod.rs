//! Helpers shared by the integration tests: raw connections to one node, key counts, bounded
//! waits and the common configuration. Each test file that needs them says `mod support;`.
//!
//! Only helpers used by two or more test files live here; one file's helpers stay in it.

// Every file under `tests/` is compiled as its own crate, and each uses only some of these
// helpers: without this, every file would warn about the others' helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, RedisDistributedLock, RetryPolicy};
use redlock_harness::{Cluster, RedisServer, info_field, raw_connection};

/// Generous per-node timeout: these tests check decisions, not speed, on a loaded machine.
pub fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::once())
}

/// Generous timeouts: these tests check decisions, not speed, on a loaded machine. The
/// connect timeout bounds how long a paused seed holds up discovery.
pub fn patient_config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(800))
        .connect_timeout(Duration::from_millis(1500))
        .retry(RetryPolicy::once())
}

/// A `RedisDistributedLock` on `resource` over a clone of `manager` (one handle per task).
pub fn handle(manager: &LockManager, resource: &str, ttl: Duration) -> RedisDistributedLock {
    RedisDistributedLock::with_manager(manager.clone(), resource.to_string(), ttl)
        .expect("valid handle")
}

/// Bound every library call: a probe must fail, never hang.
pub async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 15 s (a hang)"))
}

/// Wait (bounded) until `check` holds; cleanups and late votes run in spawned tasks.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `127.0.0.1:port` address of `node`, as the library names its voters.
pub fn addr(node: &RedisServer) -> String {
    format!("127.0.0.1:{}", node.port())
}

/// The address of the cluster's node `node`.
pub fn addr_of(cluster: &Cluster, node: usize) -> String {
    addr(&cluster.nodes()[node])
}

/// The index of the node at `addr` (`127.0.0.1:port`).
pub fn index_of(cluster: &Cluster, addr: &str) -> usize {
    cluster
        .nodes()
        .iter()
        .position(|n| addr.ends_with(&format!(":{}", n.port())))
        .expect("a voter is one of the cluster's nodes")
}

/// A raw (synchronous, non-cluster) connection to the node at `addr` (`host:port`).
pub fn raw(addr: &str) -> redis::Connection {
    raw_connection(&format!("redis://{addr}")).expect("raw connection")
}

/// A raw connection to the node at `url`, with a read timeout so that a test never hangs on it.
pub fn raw_url(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("raw connection");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    con
}

/// How many keys the node at `url` holds (`DBSIZE`).
pub fn key_count(url: &str) -> i64 {
    redis::cmd("DBSIZE")
        .query(&mut raw_url(url))
        .expect("DBSIZE")
}

pub fn get(addr: &str, key: &[u8]) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut raw(addr))
        .expect("GET")
}

pub fn del(addr: &str, key: &[u8]) {
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query(&mut raw(addr))
        .expect("DEL");
}

/// Run one command on `node` (the first of `args` is its name) and return the reply.
pub fn command(node: &RedisServer, args: &[&str]) -> redis::Value {
    let mut con = node.connection().expect("connection");
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut con)
        .expect("command")
}

/// The replication role of the node at `addr`, `None` while it does not answer (during a
/// failover).
pub fn role(addr: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut raw_connection(&format!("redis://{addr}")).ok()?)
        .ok()?;
    info_field(&info, "role").map(str::to_string)
}
