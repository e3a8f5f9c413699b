//! Discovery: where the nodes come from ([`Seeds`]), reading a cluster's masters, and
//! [`discover`], which asks the seeds, decides the mode and checks that the voters are one
//! cluster or distinct servers.

use std::fmt;
use std::time::Duration;

use futures::future::join_all;

use super::{Topology, decide_mode};
use crate::config::Mode;
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};
use crate::node::{Node, SharedNode, with_deadline};
use crate::server::ServerFacts;

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

/// The host part of a `host:port` address.
pub(super) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
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
    for mut range in ranges {
        // A node that never met a peer does not know its own address: use the one we reached
        // it at, as redis-cli does.
        if range.host.is_empty() {
            range.host = host_of(node.addr()).to_string();
        }
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

/// The addresses of a cluster topology's masters (empty for independent masters).
fn master_addrs(topology: &Topology) -> Vec<String> {
    match topology {
        Topology::Cluster { masters, .. } => masters.iter().map(|m| m.addr().to_string()).collect(),
        Topology::Independent { .. } => Vec::new(),
    }
}

/// [`LockError::InvalidConfig`] when two seeds see clusters without a master in common: they
/// are nodes of two different clusters, whose masters would decide the same lock separately.
/// (Two nodes of one cluster can disagree for a moment during a failover or a reshard, but
/// never about every master at once.)
pub(super) fn check_one_cluster(views: &[(String, Vec<String>)]) -> Result<(), LockError> {
    for (i, (a, masters_a)) in views.iter().enumerate() {
        for (b, masters_b) in &views[i + 1..] {
            if !masters_a.iter().any(|m| masters_b.contains(m)) {
                return Err(LockError::InvalidConfig(format!(
                    "{a} and {b} are nodes of two different Redis Clusters ({a} sees masters \
                     {}; {b} sees masters {}): one lock must be decided by the masters of one \
                     cluster; list nodes of one cluster only",
                    masters_a.join(", "),
                    masters_b.join(", "),
                )));
            }
        }
    }
    Ok(())
}

/// [`LockError::InvalidConfig`] when two seeds that answered are one server (same `run_id`):
/// `localhost` and `127.0.0.1`, two databases, or any other alias.
pub(super) fn check_distinct_servers(
    answers: &[(String, Option<ServerFacts>)],
) -> Result<(), LockError> {
    for (i, (a, facts_a)) in answers.iter().enumerate() {
        let Some(facts_a) = facts_a else { continue };
        for (b, facts_b) in &answers[i + 1..] {
            if facts_b.as_ref().is_some_and(|f| f.run_id == facts_a.run_id) {
                return Err(LockError::InvalidConfig(format!(
                    "{a} and {b} are the same Redis server (run_id {}): one server must not vote \
                     twice; list each master once",
                    facts_a.run_id
                )));
            }
        }
    }
    Ok(())
}

/// Find out who votes: ask every seed (in parallel, each bounded by `timeout`) what it is,
/// decide the mode by [`decide_mode`] and, for a cluster, read its masters. On a refresh
/// (`previous` is a cluster) the mode is known and the known masters are asked before the
/// seeds: after a failover the configured seed may be the dead node.
pub(crate) async fn discover(
    seeds: &dyn Seeds,
    previous: Option<&Topology>,
    mode: Mode,
    timeout: Duration,
) -> Result<Topology, LockError> {
    let mut failures = Vec::new();
    if let Some(Topology::Cluster { masters, .. }) = previous {
        for node in masters {
            match read_cluster(node, seeds, timeout).await {
                Ok(topology) => return Ok(topology),
                Err(error) => failures.push(NodeFailure {
                    node: node.addr().to_string(),
                    error,
                }),
            }
        }
    }
    let mode = previous.map_or(mode, Topology::mode);
    let nodes = seeds.seeds();
    let answers: Vec<Result<ServerFacts, NodeError>> = join_all(nodes.iter().map(|node| {
        with_deadline(timeout, async move {
            node.connect().await?;
            node.facts().map(|f| ServerFacts::clone(&f)).ok_or_else(|| {
                NodeError::Protocol("connected, but the server facts were not read".into())
            })
        })
    }))
    .await;
    let kinds: Vec<(String, Result<bool, NodeError>)> = nodes
        .iter()
        .zip(&answers)
        .map(|(node, a)| {
            let kind = a.as_ref().map(|f| f.cluster_enabled).map_err(Clone::clone);
            (node.addr().to_string(), kind)
        })
        .collect();
    match decide_mode(mode, &kinds)? {
        Mode::Cluster => {
            // Every cluster seed that answers is read (in parallel), not just the first: seeds
            // of two different clusters would otherwise lock on whichever answered first, and
            // two clients listing the same seeds in another order would lock on two clusters.
            let cluster_seeds: Vec<&SharedNode> = nodes
                .iter()
                .zip(&answers)
                .filter(|(_, answer)| answer.as_ref().is_ok_and(|f| f.cluster_enabled))
                .map(|(node, _)| node)
                .collect();
            let reads = join_all(
                cluster_seeds
                    .iter()
                    .map(|node| read_cluster(node, seeds, timeout)),
            )
            .await;
            let mut views = Vec::new();
            let mut chosen = None;
            for (node, read) in cluster_seeds.iter().zip(reads) {
                match read {
                    Ok(topology) => {
                        views.push((node.addr().to_string(), master_addrs(&topology)));
                        chosen.get_or_insert(topology);
                    }
                    Err(error) => failures.push(NodeFailure {
                        node: node.addr().to_string(),
                        error,
                    }),
                }
            }
            check_one_cluster(&views)?;
            if let Some(topology) = chosen {
                return Ok(topology);
            }
            failures.extend(
                kinds
                    .into_iter()
                    .filter_map(|(node, a)| a.err().map(|error| NodeFailure { node, error })),
            );
            Err(LockError::Unavailable {
                answered: 0,
                voters: nodes.len(),
                quorum: 1,
                failures: NodeFailures(failures),
            })
        }
        _ => {
            let facts: Vec<(String, Option<ServerFacts>)> = nodes
                .iter()
                .zip(answers)
                .map(|(node, a)| (node.addr().to_string(), a.ok()))
                .collect();
            check_distinct_servers(&facts)?;
            Ok(Topology::Independent {
                nodes: nodes.to_vec(),
            })
        }
    }
}
