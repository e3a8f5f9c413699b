//! The mode decision: cluster or independent masters, from what each seed answered.

use crate::config::Mode;
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};

/// "a", "a and b", "a, b and c".
fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The number of seeds that must answer, and agree, before the mode is decided: more than
/// half of them. Two majorities of one list share a seed, so two clients of one seed list can
/// never settle on two lock spaces (see docs/design.md, "Seeds and modes").
pub(crate) fn seeds_needed(seeds: usize) -> usize {
    seeds / 2 + 1
}

/// The mode, decided from what the seeds answered so far (`cluster_enabled`; `None` for a
/// seed still pending; an error for one that failed), in seed order. Pure: the rule of
/// [`Mode`] in one place.
///
/// - Answers of both kinds are always [`LockError::InvalidConfig`] naming the odd ones (a
///   forced [`Mode::Cluster`] that only standalone masters answered is
///   [`LockError::NotACluster`]; a forced [`Mode::Independent`] that only cluster nodes
///   answered is `InvalidConfig`): no later answer can make such a list valid.
/// - Once more than half of the seeds ([`seeds_needed`]) answered and all agree, the mode can
///   be decided (`Ok(Some(mode))`), in every mode, forced or not: the answer never depends on
///   which seeds happened to be fast, and a dead minority never stops it. (Discovery still
///   waits for the rest up to its deadline, so that a healthy list is checked whole.)
/// - While that many can still answer, `Ok(None)`: wait for more.
/// - Otherwise [`LockError::SeedsUnavailable`], retryable, naming the silent seeds.
pub(crate) fn decide_mode(
    configured: Mode,
    answers: &[(String, Option<Result<bool, NodeError>>)],
) -> Result<Option<Mode>, LockError> {
    let of_kind = |cluster: bool| -> Vec<&str> {
        answers
            .iter()
            .filter(|(_, a)| matches!(a, Some(Ok(c)) if *c == cluster))
            .map(|(node, _)| node.as_str())
            .collect()
    };
    let (cluster, standalone) = (of_kind(true), of_kind(false));
    let pending = answers.iter().filter(|(_, a)| a.is_none()).count();
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
        // One kind so far, the wrong one for the forced mode: wait for the rest, which may
        // make it a mixed list (the more telling error).
        Mode::Cluster if cluster.is_empty() && !standalone.is_empty() && pending > 0 => {
            return Ok(None);
        }
        Mode::Independent if standalone.is_empty() && !cluster.is_empty() && pending > 0 => {
            return Ok(None);
        }
        Mode::Cluster if !standalone.is_empty() && cluster.is_empty() => {
            return Err(LockError::NotACluster {
                node: standalone[0].to_string(),
            });
        }
        Mode::Cluster if !standalone.is_empty() => {
            return Err(mixed(&standalone, STANDALONE, &cluster, CLUSTER));
        }
        Mode::Independent if !cluster.is_empty() && standalone.is_empty() => {
            return Err(LockError::InvalidConfig(format!(
                "{} {} ({CLUSTER}) but Mode::Independent was forced: a cluster node never votes \
                 as an independent master; use Mode::Cluster or Mode::Auto for a cluster, or list \
                 standalone masters",
                list(&cluster),
                if cluster.len() == 1 { "is" } else { "are" },
            )));
        }
        Mode::Independent if !cluster.is_empty() => {
            return Err(mixed(&cluster, CLUSTER, &standalone, STANDALONE));
        }
        _ if !cluster.is_empty() && !standalone.is_empty() => {
            // Auto: the minority is the odd one out (the standalone ones on a tie).
            return Err(if cluster.len() < standalone.len() {
                mixed(&cluster, CLUSTER, &standalone, STANDALONE)
            } else {
                mixed(&standalone, STANDALONE, &cluster, CLUSTER)
            });
        }
        _ => {}
    }
    let needed = seeds_needed(answers.len());
    let answered = cluster.len() + standalone.len();
    if answered >= needed {
        return Ok(Some(if cluster.is_empty() {
            Mode::Independent
        } else {
            Mode::Cluster
        }));
    }
    if answered + pending >= needed {
        return Ok(None);
    }
    Err(LockError::SeedsUnavailable {
        answered,
        seeds: answers.len(),
        needed,
        failures: NodeFailures(
            answers
                .iter()
                .filter_map(|(node, a)| match a {
                    Some(Err(error)) => Some(NodeFailure {
                        node: node.clone(),
                        error: error.clone(),
                    }),
                    _ => None,
                })
                .collect(),
        ),
    })
}
