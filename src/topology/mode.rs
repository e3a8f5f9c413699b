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
