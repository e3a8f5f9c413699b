//! Discovery: where the nodes come from ([`Seeds`]), reading a cluster's masters, and
//! [`discover`], which asks the seeds, decides the mode and checks that the voters are one
//! cluster or distinct servers.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::{Topology, decide_mode};
use crate::config::Mode;
use crate::error::{LockError, NodeError, NodeFailure};
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

/// Read the cluster's masters from one node that is known to be a cluster node, within the
/// caller's deadline.
async fn read_cluster(node: &SharedNode, seeds: &dyn Seeds) -> Result<Topology, NodeError> {
    let ranges = match node.cluster_shards().await {
        Ok(ranges) => ranges,
        // Redis before 7.0 has no CLUSTER SHARDS; fall back to CLUSTER SLOTS.
        Err(_) => node.cluster_slots().await?,
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

/// What one seed said about itself: its facts and, for a cluster node (unless
/// [`Mode::Independent`] was forced), the masters it sees.
struct SeedAnswer {
    facts: Arc<ServerFacts>,
    view: Option<Topology>,
}

/// Ask one seed what it is (connection, facts and, for a cluster node, `CLUSTER SHARDS`),
/// all under one deadline: a seed never costs a caller more than `timeout`, and its
/// connection goes on opening in the background for a later call.
async fn ask_seed(
    node: &SharedNode,
    seeds: &dyn Seeds,
    mode: Mode,
    timeout: Duration,
) -> Result<SeedAnswer, NodeError> {
    with_deadline(timeout, async {
        node.connect().await?;
        let facts = node.facts().ok_or_else(|| {
            NodeError::Protocol("connected, but the server facts were not read".into())
        })?;
        let view = if facts.cluster_enabled && mode != Mode::Independent {
            Some(read_cluster(node, seeds).await?)
        } else {
            None
        };
        Ok(SeedAnswer { facts, view })
    })
    .await
}

/// A seed's kind for [`decide_mode`]: `cluster_enabled` once it answered.
fn kind_of(answer: &Option<Result<SeedAnswer, NodeError>>) -> Option<Result<bool, NodeError>> {
    answer.as_ref().map(|a| match a {
        Ok(answer) => Ok(answer.facts.cluster_enabled),
        Err(error) => Err(error.clone()),
    })
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
    answers: &[(String, Option<Arc<ServerFacts>>)],
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

/// What a discovery found: the voters, and the seeds whose answer was not in when the mode
/// was decided (checked when they answer, see `TopologyCache`).
pub(crate) struct Discovered {
    pub(crate) topology: Topology,
    pub(crate) unchecked: Vec<SharedNode>,
}

/// Find out who votes. On a refresh (`previous` is a cluster) the mode is known and the
/// known masters are asked, all at once, the first good view winning: after a failover the
/// configured seed may be the dead node. Otherwise every seed is asked at once (each bounded
/// by `timeout`, connection and `CLUSTER SHARDS` included) and the mode is decided by
/// [`decide_mode`] once every seed answered or the deadline passed, provided more than half
/// of the seeds answered and agree; the seeds without an answer are returned as unchecked.
/// In cluster mode the answering seeds must see one cluster; in independent mode they must be
/// distinct servers.
pub(crate) async fn discover(
    seeds: &dyn Seeds,
    previous: Option<&Topology>,
    mode: Mode,
    timeout: Duration,
) -> Result<Discovered, LockError> {
    let mut failures = Vec::new();
    if let Some(Topology::Cluster { masters, .. }) = previous {
        let mut reads: FuturesUnordered<_> = masters
            .iter()
            .map(|node| async move {
                let read = with_deadline(timeout, read_cluster(node, seeds)).await;
                (node, read)
            })
            .collect();
        while let Some((node, read)) = reads.next().await {
            match read {
                Ok(topology) => {
                    return Ok(Discovered {
                        topology,
                        unchecked: Vec::new(),
                    });
                }
                Err(error) => failures.push(NodeFailure {
                    node: node.addr().to_string(),
                    error,
                }),
            }
        }
    }
    let mode = previous.map_or(mode, Topology::mode);
    let nodes = seeds.seeds();
    let mut answers: Vec<Option<Result<SeedAnswer, NodeError>>> =
        nodes.iter().map(|_| None).collect();
    let mut asks: FuturesUnordered<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| async move { (i, ask_seed(node, seeds, mode, timeout).await) })
        .collect();
    let kinds = |answers: &[Option<Result<SeedAnswer, NodeError>>]| {
        nodes
            .iter()
            .zip(answers)
            .map(|(node, a)| (node.addr().to_string(), kind_of(a)))
            .collect::<Vec<_>>()
    };
    // Every seed is waited for, up to the deadline (each ask is bounded by `timeout`), so
    // that a healthy list is always checked whole (aliases, mixed kinds, two clusters) and a
    // failure names every seed that failed; a mixed list ends it sooner. At the deadline a
    // majority decides, and the seeds still silent are checked when they answer (see
    // `TopologyCache`).
    while let Some((i, answer)) = asks.next().await {
        if let Some(slot) = answers.get_mut(i) {
            *slot = Some(answer);
        }
        match decide_mode(mode, &kinds(&answers)) {
            // Too few seeds left for a majority: the error waits for the rest, so that it
            // names every seed that failed.
            Err(LockError::SeedsUnavailable { .. }) | Ok(_) => {}
            Err(error) => return Err(error),
        }
    }
    let decided = decide_mode(mode, &kinds(&answers))?;
    // A seed that timed out goes on opening its connection in the background, and is
    // checked when it answers.
    let unchecked: Vec<SharedNode> = nodes
        .iter()
        .zip(&answers)
        .filter(|(_, a)| !matches!(a, Some(Ok(_))))
        .map(|(node, _)| node.clone())
        .collect();
    let Some(decided) = decided else {
        // `decide_mode` with no seed pending always decides or fails.
        return Err(LockError::Topology("the mode could not be decided".into()));
    };
    let topology = match decided {
        Mode::Cluster => {
            let mut views = Vec::new();
            let mut chosen = None;
            for (node, answer) in nodes.iter().zip(answers) {
                if let Some(Ok(SeedAnswer {
                    view: Some(topology),
                    ..
                })) = answer
                {
                    views.push((node.addr().to_string(), master_addrs(&topology)));
                    chosen.get_or_insert(topology);
                }
            }
            check_one_cluster(&views)?;
            chosen.ok_or_else(|| LockError::Topology("no cluster seed was read".into()))?
        }
        _ => {
            let facts: Vec<(String, Option<Arc<ServerFacts>>)> = nodes
                .iter()
                .zip(answers)
                .map(|(node, a)| {
                    (
                        node.addr().to_string(),
                        a.and_then(Result::ok).map(|a| a.facts),
                    )
                })
                .collect();
            check_distinct_servers(&facts)?;
            Topology::Independent {
                nodes: nodes.to_vec(),
            }
        }
    };
    Ok(Discovered {
        topology,
        unchecked,
    })
}

/// Check a seed that was not in when the mode was decided, now that it may answer (bounded
/// by `timeout`). `Ok(true)`: it agrees with `current` (same kind; a cluster node of the
/// same cluster; not an alias of another seed). `Ok(false)`: still no answer, ask again
/// later. An error: it does not agree, and the configuration is invalid.
pub(crate) async fn check_late_seed(
    seeds: &dyn Seeds,
    node: &SharedNode,
    current: &Topology,
    mode: Mode,
    timeout: Duration,
) -> Result<bool, LockError> {
    let Ok(answer) = ask_seed(node, seeds, current.mode(), timeout).await else {
        return Ok(false);
    };
    // The kinds of every seed whose facts are known, this one included.
    let kinds: Vec<(String, Option<Result<bool, NodeError>>)> = seeds
        .seeds()
        .iter()
        .map(|seed| {
            let kind = if Arc::ptr_eq(seed, node) {
                Some(Ok(answer.facts.cluster_enabled))
            } else {
                seed.facts().map(|f| Ok(f.cluster_enabled))
            };
            (seed.addr().to_string(), kind)
        })
        .collect();
    let configured = match mode {
        Mode::Auto => current.mode(),
        forced => forced,
    };
    decide_mode(configured, &kinds)?;
    if answer.facts.cluster_enabled != (current.mode() == Mode::Cluster) {
        return Err(LockError::InvalidConfig(format!(
            "{} answered late as {} but the voters were decided as {:?} masters; list the \
             masters of one Redis Cluster or standalone masters, never both",
            node.addr(),
            if answer.facts.cluster_enabled {
                "a Redis Cluster node"
            } else {
                "a standalone master"
            },
            current.mode(),
        )));
    }
    match answer.view {
        Some(view) => check_one_cluster(&[
            ("the decided cluster".to_string(), master_addrs(current)),
            (node.addr().to_string(), master_addrs(&view)),
        ])?,
        None => {
            let facts: Vec<(String, Option<Arc<ServerFacts>>)> = seeds
                .seeds()
                .iter()
                .map(|seed| {
                    let facts = if Arc::ptr_eq(seed, node) {
                        Some(answer.facts.clone())
                    } else {
                        seed.facts()
                    };
                    (seed.addr().to_string(), facts)
                })
                .collect();
            check_distinct_servers(&facts)?;
        }
    }
    Ok(true)
}
