//! Who votes: the masters of a Redis Cluster (discovered from any seed node) or a fixed list
//! of independent masters, and which key each voter stores for a resource.
//!
//! Cluster masters are read with `CLUSTER SHARDS` (Redis 7+), falling back to `CLUSTER SLOTS`,
//! and reached directly by address. Discovery talks to nodes only through the [`Node`] trait and
//! gets them from a [`Seeds`] source, so the in-memory nodes of the simulation take the same
//! path as real Redis. Lock scripts never go through a cluster router: a router
//! silently follows `MOVED`, which could put two votes on one master.
//!
//! The voters and their admission are here; the mode decision is in `mode`, discovery in
//! `discovery`.

use std::sync::Arc;

use crate::config::{LockConfig, Mode};
use crate::error::LockError;
use crate::keys::{derive_cluster_keys, independent_key, key_slot};
use crate::node::{SharedNode, UnservedSlot};
use crate::server::ServerFacts;

mod discovery;
mod mode;

pub(crate) use discovery::{Discovered, Seeds, check_late_seed, discover};
use mode::decide_mode;

// Named by the module docs.
#[cfg(doc)]
use crate::node::Node;

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

/// Whether two voters of one resource are one server: two voter keys on one master (slots
/// moved), or one server reached under two names (same `run_id`). Safety holds (a round counts
/// one vote per server) but one node failure can now cost two votes.
pub(crate) fn voters_share_master(voters: &[Voter]) -> bool {
    let facts: Vec<Option<Arc<ServerFacts>>> = voters.iter().map(|v| v.node.facts()).collect();
    voters.iter().enumerate().any(|(i, a)| {
        voters.iter().enumerate().skip(i + 1).any(|(j, b)| {
            Arc::ptr_eq(&a.node, &b.node)
                || matches!((&facts[i], &facts[j]), (Some(x), Some(y)) if x.run_id == y.run_id)
        })
    })
}

/// The key `voters` store on the node at `addr` (lossy UTF-8), for error messages.
pub(crate) fn key_on(voters: &[Voter], addr: &str) -> Option<String> {
    voters
        .iter()
        .find(|v| v.node.addr() == addr)
        .map(|v| String::from_utf8_lossy(&v.key).into_owned())
}

#[cfg(test)]
mod tests;
