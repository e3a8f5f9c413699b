//! Who votes: the masters of a Redis Cluster (discovered from any seed node) or a fixed list
//! of independent masters, and which key each voter stores for a resource.
//!
//! Cluster masters are read with `CLUSTER SHARDS` (Redis 7+), falling back to `CLUSTER SLOTS`,
//! and reached directly by address. Lock scripts never go through a cluster router: a router
//! silently follows `MOVED`, which could put two votes on one master.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};
use crate::info::parse_info;
use crate::keys::{cluster_voter_keys, independent_key, key_slot};
use crate::node::{Node, RedisNode, SharedNode, UnservedSlot, addr_string};

/// An inclusive slot range and the address of the master serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// One voter of one resource: the key it stores and the node that stores it.
#[derive(Debug, Clone)]
pub(crate) struct Voter {
    pub(crate) key: Vec<u8>,
    pub(crate) node: SharedNode,
}

/// The current view of who votes.
#[derive(Debug)]
pub(crate) enum Topology {
    /// Classic Redlock: the same key on every listed master.
    Independent { nodes: Vec<SharedNode> },
    /// Cluster masters, each serving some slot ranges (`node` indexes `masters`).
    Cluster {
        masters: Vec<SharedNode>,
        slots: Vec<(u16, u16, usize)>,
    },
}

impl Topology {
    pub(crate) fn mode(&self) -> Mode {
        match self {
            Topology::Independent { .. } => Mode::Independent,
            Topology::Cluster { .. } => Mode::Cluster,
        }
    }

    /// The voters of `resource`: in cluster mode one derived key per voter, each sent to the
    /// master that currently serves its slot.
    pub(crate) fn voters(
        &self,
        config: &LockConfig,
        resource: &[u8],
    ) -> Result<Vec<Voter>, LockError> {
        match self {
            Topology::Independent { nodes } => {
                let key = independent_key(config.key_prefix_str(), resource);
                Ok(nodes
                    .iter()
                    .map(|node| Voter {
                        key: key.clone(),
                        node: node.clone(),
                    })
                    .collect())
            }
            Topology::Cluster { masters, slots } => {
                let keys =
                    cluster_voter_keys(config.key_prefix_str(), resource, config.voter_count())?;
                Ok(keys
                    .into_iter()
                    .map(|key| {
                        let slot = key_slot(&key);
                        let node = slots
                            .iter()
                            .find(|(start, end, _)| (*start..=*end).contains(&slot))
                            .and_then(|(_, _, i)| masters.get(*i).cloned())
                            .unwrap_or_else(|| {
                                Arc::new(UnservedSlot {
                                    label: format!("slot {slot}"),
                                }) as SharedNode
                            });
                        Voter { key, node }
                    })
                    .collect())
            }
        }
    }
}

/// Whether two voters of one resource landed on the same master: safety holds (each key has
/// one owner) but one node failure can now cost two votes.
pub(crate) fn voters_share_master(voters: &[Voter]) -> bool {
    voters.iter().enumerate().any(|(i, a)| {
        voters[i + 1..]
            .iter()
            .any(|b| Arc::ptr_eq(&a.node, &b.node) && a.key != b.key)
    })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

fn slot(value: &Value) -> Option<u16> {
    number(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n < crate::keys::SLOT_COUNT)
}

/// The entries of a RESP2 flat key/value array or a RESP3 map.
fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| text(k).map(|k| (k, v)))
            .collect(),
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|kv| text(&kv[0]).map(|k| (k, &kv[1])))
            .collect(),
        _ => None,
    }
}

fn field<'a>(entries: &'a [(String, &'a Value)], name: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// Parse a `CLUSTER SHARDS` reply into the slot ranges of each shard's master.
/// `tls` picks the `tls-port` field when the nodes announce one.
pub(crate) fn parse_cluster_shards(reply: &Value, tls: bool) -> Result<Vec<SlotRange>, String> {
    let Value::Array(shards) = reply else {
        return Err(format!("CLUSTER SHARDS returned {reply:?}"));
    };
    let mut ranges = Vec::new();
    for shard in shards {
        let shard = pairs(shard).ok_or("a shard is not a key/value list")?;
        let Some(Value::Array(bounds)) = field(&shard, "slots") else {
            return Err("a shard has no slots list".into());
        };
        let Some(Value::Array(nodes)) = field(&shard, "nodes") else {
            return Err("a shard has no nodes list".into());
        };
        if bounds.is_empty() {
            continue; // a shard without slots (for example a fresh empty master) votes on nothing
        }
        let master = nodes
            .iter()
            .filter_map(pairs)
            .find(|node| field(node, "role").and_then(text).as_deref() == Some("master"))
            .ok_or("a shard with slots has no master")?;
        let host = field(&master, "ip")
            .or_else(|| field(&master, "endpoint"))
            .and_then(text)
            .ok_or("a master has no ip")?;
        let port = tls
            .then(|| field(&master, "tls-port"))
            .flatten()
            .or_else(|| field(&master, "port"))
            .and_then(number)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("a master has no port")?;
        for pair in bounds.chunks(2) {
            match pair {
                [start, end] => ranges.push(SlotRange {
                    start: slot(start).ok_or("bad slot number")?,
                    end: slot(end).ok_or("bad slot number")?,
                    host: host.clone(),
                    port,
                }),
                _ => return Err("odd number of slot bounds".into()),
            }
        }
    }
    Ok(ranges)
}

/// Parse a `CLUSTER SLOTS` reply (`[[start, end, [ip, port, id, ...], replicas...], ...]`).
pub(crate) fn parse_cluster_slots(reply: &Value) -> Result<Vec<SlotRange>, String> {
    let Value::Array(entries) = reply else {
        return Err(format!("CLUSTER SLOTS returned {reply:?}"));
    };
    entries
        .iter()
        .map(|entry| {
            let Value::Array(fields) = entry else {
                return Err("a slot entry is not an array".to_string());
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err("a slot entry is too short".to_string());
            };
            let host = master.first().and_then(text).ok_or("master without ip")?;
            let port = master
                .get(1)
                .and_then(number)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("master without port")?;
            Ok(SlotRange {
                start: slot(start).ok_or("bad slot number")?,
                end: slot(end).ok_or("bad slot number")?,
                host,
                port,
            })
        })
        .collect()
}

/// Whether `INFO cluster` says `cluster_enabled:1`.
pub(crate) fn cluster_enabled(info: &str) -> bool {
    parse_info(info).get("cluster_enabled") == Some(&"1")
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
}

/// The connection info of a discovered master: the seed's settings (credentials, TLS, db)
/// with the master's address.
pub(crate) fn master_info(
    seed: &redis::ConnectionInfo,
    host: &str,
    port: u16,
) -> redis::ConnectionInfo {
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

/// Read the cluster's masters from one node that is known to be a cluster node.
async fn read_cluster(
    node: &RedisNode,
    seed: &redis::ConnectionInfo,
    registry: &NodeRegistry,
    config: &LockConfig,
) -> Result<Topology, NodeError> {
    let tls = matches!(seed.addr(), redis::ConnectionAddr::TcpTls { .. });
    let timeout = config.connect_timeout_value();
    let shards = node.command::<Value>(timeout, &["CLUSTER", "SHARDS"]).await;
    let ranges = match shards.map(|reply| parse_cluster_shards(&reply, tls)) {
        Ok(Ok(ranges)) => ranges,
        // Redis before 7.0 has no CLUSTER SHARDS; fall back to CLUSTER SLOTS.
        _ => {
            let reply = node
                .command::<Value>(timeout, &["CLUSTER", "SLOTS"])
                .await?;
            parse_cluster_slots(&reply).map_err(NodeError::Protocol)?
        }
    };
    let mut masters: Vec<SharedNode> = Vec::new();
    let mut addrs: Vec<(String, u16)> = Vec::new();
    let mut slots = Vec::new();
    for range in ranges {
        let index = match addrs
            .iter()
            .position(|a| a.0 == range.host && a.1 == range.port)
        {
            Some(i) => i,
            None => {
                let info = master_info(seed, &range.host, range.port);
                masters.push(registry.node(&info, config.connect_timeout_value()));
                addrs.push((range.host.clone(), range.port));
                masters.len() - 1
            }
        };
        slots.push((range.start, range.end, index));
    }
    if slots.is_empty() {
        return Err(NodeError::Server("the cluster serves no slots yet".into()));
    }
    Ok(Topology::Cluster { masters, slots })
}

/// Find out who votes: detect the mode from the first node that answers (unless forced) and,
/// for a cluster, read its masters. `seeds` are tried in order (known masters first on a
/// refresh, then the configured URLs).
pub(crate) async fn discover(
    seeds: &[redis::ConnectionInfo],
    independent: &[redis::ConnectionInfo],
    registry: &NodeRegistry,
    config: &LockConfig,
) -> Result<Topology, LockError> {
    let independent_topology = || Topology::Independent {
        nodes: independent
            .iter()
            .map(|info| registry.node(info, config.connect_timeout_value()) as SharedNode)
            .collect(),
    };
    if config.mode_value() == Mode::Independent {
        return Ok(independent_topology());
    }
    let timeout = config.connect_timeout_value();
    let mut failures = Vec::new();
    for seed in seeds {
        let node = registry.node(seed, timeout);
        let info = node.command::<String>(timeout, &["INFO", "cluster"]).await;
        let info = match info {
            Ok(info) => info,
            Err(error) => {
                failures.push(NodeFailure {
                    node: node.addr().to_string(),
                    error,
                });
                continue;
            }
        };
        if !cluster_enabled(&info) {
            if config.mode_value() == Mode::Cluster {
                return Err(LockError::NotACluster {
                    node: node.addr().to_string(),
                });
            }
            return Ok(independent_topology());
        }
        match read_cluster(&node, seed, registry, config).await {
            Ok(topology) => return Ok(topology),
            Err(error) => failures.push(NodeFailure {
                node: node.addr().to_string(),
                error,
            }),
        }
    }
    Err(LockError::Unavailable {
        answered: 0,
        voters: seeds.len(),
        quorum: 1,
        failures: NodeFailures(failures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn shard(slots: &[i64], nodes: Vec<(&str, i64, &str)>) -> Value {
        Value::Array(vec![
            bulk("slots"),
            Value::Array(slots.iter().map(|s| Value::Int(*s)).collect()),
            bulk("nodes"),
            Value::Array(
                nodes
                    .into_iter()
                    .map(|(ip, port, role)| {
                        Value::Array(vec![
                            bulk("id"),
                            bulk("abc"),
                            bulk("port"),
                            Value::Int(port),
                            bulk("ip"),
                            bulk(ip),
                            bulk("role"),
                            bulk(role),
                            bulk("health"),
                            bulk("online"),
                        ])
                    })
                    .collect(),
            ),
        ])
    }

    #[test]
    fn parses_cluster_shards() {
        let reply = Value::Array(vec![
            shard(
                &[0, 5460],
                vec![
                    ("127.0.0.1", 7003, "replica"),
                    ("127.0.0.1", 7000, "master"),
                ],
            ),
            shard(
                &[5461, 10922, 16000, 16001],
                vec![("127.0.0.1", 7001, "master")],
            ),
            shard(&[], vec![("127.0.0.1", 7009, "master")]),
        ]);
        let ranges = parse_cluster_shards(&reply, false).unwrap();
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            SlotRange {
                start: 0,
                end: 5460,
                host: "127.0.0.1".into(),
                port: 7000
            }
        );
        assert_eq!(ranges[2].start, 16000);
        assert_eq!(ranges[2].port, 7001);
        assert!(parse_cluster_shards(&Value::Nil, false).is_err());
        assert!(
            parse_cluster_shards(
                &Value::Array(vec![shard(&[1], vec![("h", 1, "master")])]),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn parses_cluster_slots() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("id")]),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(7003), bulk("id2")]),
        ])]);
        let ranges = parse_cluster_slots(&reply).unwrap();
        assert_eq!(
            ranges,
            vec![SlotRange {
                start: 0,
                end: 5460,
                host: "127.0.0.1".into(),
                port: 7000
            }]
        );
        assert!(parse_cluster_slots(&Value::Array(vec![Value::Int(3)])).is_err());
    }

    #[test]
    fn detects_cluster_mode_from_info() {
        assert!(cluster_enabled("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!cluster_enabled("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!cluster_enabled(""));
    }
}
