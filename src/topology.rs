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

use futures::future::join_all;

use crate::config::{LockConfig, Mode};
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};
use crate::keys::{derive_cluster_keys, independent_key, key_slot};
use crate::node::{Node, SharedNode, UnservedSlot, with_deadline};
use crate::server::{ServerFacts, admit, refusal};

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

/// Apply the voting rule of `server::admit` to one round's answers (in voter order): an
/// answer from a voter that may not vote (a cluster node in independent mode, a server that
/// already answered under another name or for another key, an evicting server when refused)
/// becomes a failure with the reason. A failed answer from a server that may never vote here
/// reports that reason instead (it says what to change; a cluster node's `MOVED` would not).
pub(crate) fn admit_votes<T>(
    mode: Mode,
    config: &LockConfig,
    voters: &[Voter],
    answers: Vec<Result<T, NodeError>>,
) -> Vec<Result<T, NodeError>> {
    let facts: Vec<Option<Arc<ServerFacts>>> = voters
        .iter()
        .zip(&answers)
        .map(|(voter, answer)| answer.as_ref().ok().and_then(|_| voter.node.facts()))
        .collect();
    let verdicts = admit(mode, config, &facts);
    answers
        .into_iter()
        .zip(verdicts)
        .zip(voters)
        .map(|((answer, verdict), voter)| match (answer, verdict) {
            (Ok(_), Some(reason)) => Err(reason),
            (Ok(answer), None) => Ok(answer),
            (Err(error), _) => Err(voter
                .node
                .facts()
                .and_then(|facts| refusal(mode, config, &facts))
                .unwrap_or(error)),
        })
        .collect()
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

/// The host part of a `host:port` address.
fn host_of(addr: &str) -> &str {
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
fn check_one_cluster(views: &[(String, Vec<String>)]) -> Result<(), LockError> {
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

/// "a", "a and b", "a, b and c".
fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The mode, decided from what each seed answered (`cluster_enabled`, or why it did not
/// answer), in seed order. Pure: the rule of [`Mode`] in one place.
///
/// Nodes of both kinds among the answers is always [`LockError::InvalidConfig`] naming the odd
/// ones. [`Mode::Auto`] decides only when every seed answered (a retryable
/// [`LockError::Unavailable`] otherwise), so the answer never depends on timing. A forced mode
/// needs only the answering seeds to agree with it.
pub(crate) fn decide_mode(
    configured: Mode,
    answers: &[(String, Result<bool, NodeError>)],
) -> Result<Mode, LockError> {
    let of_kind = |cluster: bool| -> Vec<&str> {
        answers
            .iter()
            .filter(|(_, a)| a.as_ref().is_ok_and(|c| *c == cluster))
            .map(|(node, _)| node.as_str())
            .collect()
    };
    let (cluster, standalone) = (of_kind(true), of_kind(false));
    let failures: Vec<NodeFailure> = answers
        .iter()
        .filter_map(|(node, a)| {
            a.as_ref().err().map(|error| NodeFailure {
                node: node.clone(),
                error: error.clone(),
            })
        })
        .collect();
    let mixed = |odd: &[&str], odd_kind: &str, rest: &[&str], rest_kind: &str| {
        LockError::InvalidConfig(format!(
            "{} {} ({odd_kind}) but {} {} ({rest_kind}); the voters must be either the masters \
             of one Redis Cluster or standalone masters, never both: remove {} from the node list",
            list(odd),
            if odd.len() == 1 { "is" } else { "are" },
            list(rest),
            if rest.len() == 1 { "is" } else { "are" },
            list(odd),
        ))
    };
    const CLUSTER: &str = "a Redis Cluster node, cluster_enabled:1";
    const STANDALONE: &str = "a standalone master, cluster_enabled:0";
    match configured {
        Mode::Cluster if !standalone.is_empty() && cluster.is_empty() => {
            Err(LockError::NotACluster {
                node: standalone[0].to_string(),
            })
        }
        Mode::Cluster if !standalone.is_empty() => {
            Err(mixed(&standalone, STANDALONE, &cluster, CLUSTER))
        }
        Mode::Independent if !cluster.is_empty() && standalone.is_empty() => {
            Err(LockError::InvalidConfig(format!(
                "{} {} ({CLUSTER}) but Mode::Independent was forced: a cluster node never votes \
                 as an independent master; use Mode::Cluster or Mode::Auto for a cluster, or list \
                 standalone masters",
                list(&cluster),
                if cluster.len() == 1 { "is" } else { "are" },
            )))
        }
        Mode::Independent if !cluster.is_empty() => {
            Err(mixed(&cluster, CLUSTER, &standalone, STANDALONE))
        }
        _ if !cluster.is_empty() && !standalone.is_empty() => {
            // Auto: the minority is the odd one out (the standalone ones on a tie).
            if cluster.len() < standalone.len() {
                Err(mixed(&cluster, CLUSTER, &standalone, STANDALONE))
            } else {
                Err(mixed(&standalone, STANDALONE, &cluster, CLUSTER))
            }
        }
        Mode::Independent => Ok(Mode::Independent),
        Mode::Cluster if !cluster.is_empty() => Ok(Mode::Cluster),
        Mode::Auto if failures.is_empty() && !cluster.is_empty() => Ok(Mode::Cluster),
        Mode::Auto if failures.is_empty() => Ok(Mode::Independent),
        // Auto with a seed silent (every seed must answer), or a forced cluster with no
        // cluster seed answering: retry later.
        _ => Err(LockError::Unavailable {
            answered: cluster.len() + standalone.len(),
            voters: answers.len(),
            quorum: if configured == Mode::Auto {
                answers.len()
            } else {
                1
            },
            failures: NodeFailures(failures),
        }),
    }
}

/// [`LockError::InvalidConfig`] when two seeds that answered are one server (same `run_id`):
/// `localhost` and `127.0.0.1`, two databases, or any other alias.
fn check_distinct_servers(answers: &[(String, Option<ServerFacts>)]) -> Result<(), LockError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(kinds: &[Option<bool>]) -> Vec<(String, Result<bool, NodeError>)> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let node = format!("127.0.0.1:{}", 7000 + i);
                (node, kind.ok_or(NodeError::Timeout(Duration::from_secs(1))))
            })
            .collect()
    }

    fn invalid_naming(result: Result<Mode, LockError>, node: &str) -> bool {
        matches!(&result, Err(LockError::InvalidConfig(why)) if why.starts_with(node))
    }

    #[test]
    fn the_mode_depends_on_every_seed_not_on_the_first_answer() {
        let (c, s, silent) = (Some(true), Some(false), None);
        assert_eq!(
            decide_mode(Mode::Auto, &answers(&[c, c])).ok(),
            Some(Mode::Cluster)
        );
        assert_eq!(
            decide_mode(Mode::Auto, &answers(&[s, s])).ok(),
            Some(Mode::Independent)
        );
        // The old timing bug: the cluster seed is slow, the standalone one answers.
        let slow_cluster = decide_mode(Mode::Auto, &answers(&[silent, s]));
        assert!(
            matches!(slow_cluster, Err(ref e) if e.is_unavailable()),
            "{slow_cluster:?}"
        );
        assert!(decide_mode(Mode::Auto, &answers(&[c, silent])).is_err());
        // Mixed lists name the odd node, in every mode.
        assert!(invalid_naming(
            decide_mode(Mode::Auto, &answers(&[c, s, s])),
            "127.0.0.1:7000"
        ));
        assert!(invalid_naming(
            decide_mode(Mode::Auto, &answers(&[c, s])),
            "127.0.0.1:7001"
        ));
        assert!(invalid_naming(
            decide_mode(Mode::Cluster, &answers(&[c, s])),
            "127.0.0.1:7001"
        ));
        assert!(invalid_naming(
            decide_mode(Mode::Independent, &answers(&[c, s])),
            "127.0.0.1:7000"
        ));
        // A forced mode needs only the answering seeds to agree.
        assert_eq!(
            decide_mode(Mode::Cluster, &answers(&[silent, c])).ok(),
            Some(Mode::Cluster)
        );
        assert_eq!(
            decide_mode(Mode::Independent, &answers(&[silent, s])).ok(),
            Some(Mode::Independent)
        );
        assert!(matches!(
            decide_mode(Mode::Cluster, &answers(&[s])),
            Err(LockError::NotACluster { .. })
        ));
        assert!(decide_mode(Mode::Cluster, &answers(&[silent])).is_err_and(|e| e.is_unavailable()));
    }

    #[test]
    fn a_forced_independent_mode_over_cluster_nodes_says_so() {
        let refused = decide_mode(Mode::Independent, &answers(&[Some(true)]));
        let Err(LockError::InvalidConfig(why)) = refused else {
            panic!("{refused:?}");
        };
        assert!(why.contains("Mode::Independent was forced"), "{why}");
        assert!(!why.contains("but  are"), "{why}");
    }

    #[test]
    fn seeds_of_two_clusters_are_refused() {
        let view = |seed: &str, masters: &[&str]| {
            (
                seed.to_string(),
                masters.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            )
        };
        let x = ["x:1", "x:2", "x:3"];
        assert!(check_one_cluster(&[view("x:1", &x), view("x:2", &x)]).is_ok());
        // One cluster, two views during a failover (x:3 replaced by x:4): still one cluster.
        assert!(check_one_cluster(&[view("x:1", &x), view("x:2", &["x:1", "x:2", "x:4"])]).is_ok());
        let err =
            check_one_cluster(&[view("x:1", &x), view("y:1", &["y:1", "y:2", "y:3"])]).unwrap_err();
        assert!(
            err.to_string()
                .contains("x:1 and y:1 are nodes of two different Redis Clusters"),
            "{err}"
        );
    }

    #[test]
    fn an_alias_of_one_server_is_refused() {
        let a = Some(ServerFacts::simulated("a"));
        let b = Some(ServerFacts::simulated("b"));
        let seeds = |facts: Vec<Option<ServerFacts>>| -> Vec<(String, Option<ServerFacts>)> {
            facts
                .into_iter()
                .enumerate()
                .map(|(i, f)| (format!("n{i}"), f))
                .collect()
        };
        assert!(check_distinct_servers(&seeds(vec![a.clone(), b.clone(), None])).is_ok());
        let err = check_distinct_servers(&seeds(vec![a.clone(), b, None, a])).unwrap_err();
        assert!(
            err.to_string()
                .contains("n0 and n3 are the same Redis server"),
            "{err}"
        );
    }

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host_of("127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(host_of("::1:7000"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
