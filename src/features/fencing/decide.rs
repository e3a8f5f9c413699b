//! The pure decisions of fencing: the commit round's outcome, and the token floor read back
//! from a quorum of counters.

use std::time::Duration;

use crate::engine::quorum::{quorum, validity};
use crate::error::{NodeError, NodeFailure, NodeFailures};

/// The decision of the commit round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommitDecision {
    /// A quorum of round-1 granters recorded the token, with validity left; `by` names them.
    Acquired { validity: Duration, by: Vec<String> },
    /// A quorum recorded it but the two rounds took too long.
    Expired,
    /// Too few granters recorded it.
    Unavailable {
        answered: usize,
        failures: NodeFailures,
    },
}

/// Decide the commit round from the answers of the voters that granted in round 1 (only
/// those are asked: an acknowledgement from any other voter would prove nothing). `voters`
/// is the number of all voters; `elapsed` runs from before round 1 to after round 2.
pub(crate) fn decide_commit(
    answers: &[(String, Result<bool, NodeError>)],
    voters: usize,
    ttl: Duration,
    elapsed: Duration,
    drift: Duration,
) -> CommitDecision {
    let by: Vec<String> = answers
        .iter()
        .filter(|(_, answer)| *answer == Ok(true))
        .map(|(node, _)| node.clone())
        .collect();
    if by.len() >= quorum(voters) {
        return match validity(ttl, elapsed, drift) {
            Some(validity) => CommitDecision::Acquired { validity, by },
            None => CommitDecision::Expired,
        };
    }
    let gone = NodeError::Server("the lock key was gone before the fencing token landed".into());
    CommitDecision::Unavailable {
        answered: by.len(),
        failures: NodeFailures(
            answers
                .iter()
                .filter_map(|(node, answer)| match answer {
                    Ok(true) => None,
                    Ok(false) => Some((node, &gone)),
                    Err(error) => Some((node, error)),
                })
                .map(|(node, error)| NodeFailure {
                    node: node.clone(),
                    error: error.clone(),
                })
                .collect(),
        ),
    }
}

/// The highest counter value that at least a quorum of `voters` has reached, from the values
/// read (`None` when fewer than a quorum were read): the quorum-th largest.
pub(crate) fn quorum_floor(mut values: Vec<u64>, voters: usize) -> Option<u64> {
    let needed = quorum(voters);
    if values.len() < needed {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(needed - 1).copied()
}

/// The fencing token of a round from its granters' `(counter, time)` pairs: a hybrid logical
/// clock, `max(1 + max(counters), max(times))`. `None` without a grant, or when no token can
/// be greater than a counter (only at `u64::MAX`, which the counter check rules out).
pub(crate) fn next_token(grants: impl IntoIterator<Item = (u64, u64)>) -> Option<u64> {
    let mut grants = grants.into_iter().peekable();
    grants.peek()?;
    let (counter, time) = grants.fold((0u64, 0u64), |(c, t), (counter, time)| {
        (c.max(counter), t.max(time))
    });
    counter.checked_add(1).map(|next| next.max(time))
}
