//! Who votes: the masters of a Redis Cluster (discovered from any seed node) or a fixed list
//! of independent masters, and which key each voter stores for a resource.
//!
//! Cluster masters are read with `CLUSTER SHARDS` (Redis 7+), falling back to `CLUSTER SLOTS`,
//! and reached directly by address. Discovery talks to nodes only through the [`Node`] trait and
//! gets them from a [`Seeds`] source, so the in-memory nodes of the simulation take the same
//! path as real Redis. Lock scripts never go through a cluster router: a router
//! silently follows `MOVED`, which could put two votes on one master.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};
use crate::info::parse_info;
use crate::keys::{derive_cluster_keys, independent_key, key_slot};
use crate::node::{Node, SharedNode, UnservedSlot, with_deadline};

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
                // The prefix and voter count were checked when the manager was built.
                let keys =
                    derive_cluster_keys(config.key_prefix_str(), resource, config.voter_count())?;
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

/// Whether `INFO cluster` says `cluster_enabled:1`.
pub(crate) fn cluster_enabled(info: &str) -> bool {
    parse_info(info).get("cluster_enabled") == Some(&"1")
}

/// Where discovery gets its nodes: the configured seeds, and a node for each master a cluster
/// announces.
pub(crate) trait Seeds: Send + Sync + fmt::Debug {
    /// The configured nodes, in order: where discovery starts, and the voters of independent
    /// mode.
    fn seeds(&self) -> &[SharedNode];
    /// The node of the master at `host:port` that `via` announced, reached with `via`'s
    /// settings (credentials, TLS, database).
    fn master(&self, via: &dyn Node, host: &str, port: u16) -> SharedNode;
}

/// Read the cluster's masters from one node that is known to be a cluster node.
async fn read_cluster(
    node: &SharedNode,
    seeds: &dyn Seeds,
    timeout: Duration,
) -> Result<Topology, NodeError> {
    let ranges = match with_deadline(timeout, node.cluster_shards()).await {
        Ok(ranges) => ranges,
        // Redis before 7.0 has no CLUSTER SHARDS; fall back to CLUSTER SLOTS.
        Err(_) => with_deadline(timeout, node.cluster_slots()).await?,
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
                masters.push(seeds.master(node.as_ref(), &range.host, range.port));
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

/// Find out who votes: detect the mode from the first node that answers (unless `mode` forces
/// it) and, for a cluster, read its masters. On a refresh (`previous` is a cluster) the known
/// masters are asked too, not only the seeds: after a failover the configured seed may be the
/// dead node. All are asked at once and the first to answer decides; each node read is
/// bounded by `timeout`.
pub(crate) async fn discover(
    seeds: &dyn Seeds,
    previous: Option<&Topology>,
    mode: Mode,
    timeout: Duration,
) -> Result<Topology, LockError> {
    let independent = || Topology::Independent {
        nodes: seeds.seeds().to_vec(),
    };
    if mode == Mode::Independent {
        return Ok(independent());
    }
    let mut candidates: Vec<SharedNode> = match previous {
        Some(Topology::Cluster { masters, .. }) => masters.clone(),
        _ => Vec::new(),
    };
    candidates.extend(seeds.seeds().iter().cloned());
    let mut failures = Vec::new();
    // Every candidate is asked at once and answers are taken as they come: a seed that
    // accepts connections but never answers (a paused master) must not hold up the others.
    let mut asked: futures::stream::FuturesUnordered<_> = candidates
        .iter()
        .map(|node| async move { (node, with_deadline(timeout, node.info("cluster")).await) })
        .collect();
    while let Some((node, answer)) = futures::StreamExt::next(&mut asked).await {
        let info = match answer {
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
            if mode == Mode::Cluster {
                return Err(LockError::NotACluster {
                    node: node.addr().to_string(),
                });
            }
            return Ok(independent());
        }
        match read_cluster(node, seeds, timeout).await {
            Ok(topology) => return Ok(topology),
            Err(error) => failures.push(NodeFailure {
                node: node.addr().to_string(),
                error,
            }),
        }
    }
    Err(LockError::Unavailable {
        answered: 0,
        voters: candidates.len(),
        quorum: 1,
        failures: NodeFailures(failures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_cluster_mode_from_info() {
        assert!(cluster_enabled("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!cluster_enabled("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!cluster_enabled(""));
    }
}
