//! How a vote is decided: quorum size, clock-drift allowance, validity, and the decision of
//! each kind of round (acquire, extend, release, info). Pure functions, no I/O, so that every rule here is unit- and property-tested.

use std::time::Duration;

use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};

/// The fixed part of the drift allowance (Redlock adds 2 ms for the expiry precision of Redis).
pub const DRIFT_FIXED: Duration = Duration::from_millis(2);

/// Votes needed out of `voters`: a strict majority, `voters / 2 + 1`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// The clock-drift allowance for a TTL: `ttl * factor + 2 ms`, saturating instead of
/// overflowing for absurd inputs, and treating a negative or NaN factor as zero.
pub fn drift(ttl: Duration, factor: f64) -> Duration {
    let factor = if factor.is_finite() && factor > 0.0 {
        factor
    } else {
        0.0
    };
    let proportional =
        Duration::try_from_secs_f64(ttl.as_secs_f64() * factor).unwrap_or(Duration::MAX);
    proportional.saturating_add(DRIFT_FIXED)
}

/// What is left of a lock after a round: `ttl - elapsed - drift`, or `None` when nothing is
/// left (a lock with no validity must never be handed out).
pub fn validity(ttl: Duration, elapsed: Duration, drift: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed)
        .and_then(|rest| rest.checked_sub(drift))
        .filter(|left| !left.is_zero())
}

/// One voter's answer to an acquire script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcquireVote {
    /// The key was set with our token.
    Granted,
    /// Somebody else holds the key; their remaining time if it has one.
    Held(Option<Duration>),
    /// No usable answer.
    Failed(NodeError),
}

/// What a round can already tell before every voter answered. Every kind of round counts
/// its answers as yes (granted, extended, deleted), no (held by another, not ours) or failed,
/// and its outcome is settled as soon as the answers still missing cannot change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// A quorum said yes: more answers can only add yeses.
    Won,
    /// A quorum answered, and too few said yes even if every missing answer were a yes.
    Lost,
    /// Too few can answer any more, even if every missing voter answered.
    Unavailable,
}

/// The running count of one round, fed one answer at a time in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    voters: usize,
    yes: usize,
    no: usize,
    failed: usize,
}

impl Count {
    /// No answer yet from any of `voters`.
    pub(crate) fn new(voters: usize) -> Self {
        Count {
            voters,
            yes: 0,
            no: 0,
            failed: 0,
        }
    }

    /// Record one answer: `Some(true)` yes, `Some(false)` no, `None` failed.
    pub(crate) fn record(&mut self, answer: Option<bool>) {
        match answer {
            Some(true) => self.yes += 1,
            Some(false) => self.no += 1,
            None => self.failed += 1,
        }
    }

    /// The voters that have not answered yet.
    pub(crate) fn pending(&self) -> usize {
        self.voters.saturating_sub(self.yes + self.no + self.failed)
    }

    /// The outcome, if no answer still missing can change it. With every answer in, a round
    /// is always settled; before that, deciding early never contradicts the decision that all
    /// answers would give (property-tested).
    pub(crate) fn settled(&self) -> Option<Settled> {
        let needed = quorum(self.voters);
        let pending = self.pending();
        let answered = self.yes + self.no;
        if self.yes >= needed {
            Some(Settled::Won)
        } else if self.yes + pending < needed && answered >= needed {
            Some(Settled::Lost)
        } else if answered + pending < needed {
            Some(Settled::Unavailable)
        } else {
            None
        }
    }
}

/// The decision of one acquire round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcquireDecision {
    /// A quorum granted and validity is left.
    Acquired { validity: Duration },
    /// Enough voters answered and too few granted because others hold the resource.
    /// `retry_hint` is when enough holders' keys should have expired for us to win.
    Contended { retry_hint: Option<Duration> },
    /// A quorum granted but the round took too long.
    Expired,
    /// Too few voters answered to decide.
    Unavailable {
        answered: usize,
        failures: NodeFailures,
    },
}

/// Decide an acquire round from the voters' answers (in voter order, with their names). A
/// voter that has not answered when the round is decided counts as failed.
pub(crate) fn decide_acquire<N: AsRef<str>>(
    votes: &[(N, AcquireVote)],
    ttl: Duration,
    elapsed: Duration,
    drift: Duration,
) -> AcquireDecision {
    let needed = quorum(votes.len());
    let granted = votes
        .iter()
        .filter(|(_, v)| matches!(v, AcquireVote::Granted))
        .count();
    let mut held: Vec<Option<Duration>> = votes
        .iter()
        .filter_map(|(_, v)| match v {
            AcquireVote::Held(pttl) => Some(*pttl),
            _ => None,
        })
        .collect();
    if granted >= needed {
        return match validity(ttl, elapsed, drift) {
            Some(validity) => AcquireDecision::Acquired { validity },
            None => AcquireDecision::Expired,
        };
    }
    let answered = granted + held.len();
    if answered >= needed && !held.is_empty() {
        // We need `needed - granted` of the holders' keys to go away; the earliest moment
        // that can happen is the (needed - granted)-th smallest remaining time. A key with
        // no expiry (`None`) gives no hint.
        let missing = needed - granted;
        held.sort_by_key(|pttl| pttl.unwrap_or(Duration::MAX));
        let retry_hint = held.get(missing.saturating_sub(1)).copied().flatten();
        return AcquireDecision::Contended { retry_hint };
    }
    AcquireDecision::Unavailable {
        answered,
        failures: collect_failures(votes.iter().filter_map(|(node, v)| match v {
            AcquireVote::Failed(e) => Some((node, e)),
            _ => None,
        })),
    }
}

pub(crate) fn collect_failures<'a, N: AsRef<str> + 'a>(
    failed: impl Iterator<Item = (&'a N, &'a NodeError)>,
) -> NodeFailures {
    NodeFailures(
        failed
            .map(|(node, error)| NodeFailure {
                node: node.as_ref().to_string(),
                error: error.clone(),
            })
            .collect(),
    )
}

/// The error of a round that too few voters answered to decide.
pub(crate) fn unavailable(voters: usize, answered: usize, failures: NodeFailures) -> LockError {
    LockError::Unavailable {
        answered,
        voters,
        quorum: quorum(voters),
        failures,
    }
}

/// The count of a yes/no round (extend, release): who said yes, how many answered, who failed.
struct Tally {
    yes: Vec<String>,
    answered: usize,
    failures: NodeFailures,
}

impl Tally {
    fn of<N: AsRef<str>>(answers: &[(N, Result<bool, NodeError>)]) -> Self {
        Tally {
            yes: answers
                .iter()
                .filter(|(_, answer)| *answer == Ok(true))
                .map(|(node, _)| node.as_ref().to_string())
                .collect(),
            answered: answers.iter().filter(|(_, answer)| answer.is_ok()).count(),
            failures: collect_failures(
                answers
                    .iter()
                    .filter_map(|(node, answer)| answer.as_ref().err().map(|e| (node, e))),
            ),
        }
    }
}

/// The decision of an extend round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtendDecision {
    /// A quorum extended our keys, validity is left, and the lock was still valid when the
    /// round ended: the new deadline holds. `by` names the voters that extended.
    Extended { by: Vec<String> },
    /// A quorum answered but the lock cannot be counted as extended (too few held our token,
    /// the round took too long, or the old validity ran out meanwhile). Nothing is deleted:
    /// the old deadline still stands.
    Refused,
    /// Too few voters answered to decide.
    Unavailable {
        answered: usize,
        failures: NodeFailures,
    },
}

/// Decide an extend round from the voters' answers (`true`: the key held our token and was
/// extended). `still_valid` is whether the lock's old validity was left when the round ended:
/// an extension that lands after the lock expired may extend keys someone else now relies on
/// never having been ours, so it does not count.
pub(crate) fn decide_extend<N: AsRef<str>>(
    answers: &[(N, Result<bool, NodeError>)],
    ttl: Duration,
    elapsed: Duration,
    drift: Duration,
    still_valid: bool,
) -> ExtendDecision {
    let needed = quorum(answers.len());
    let tally = Tally::of(answers);
    if tally.yes.len() >= needed && validity(ttl, elapsed, drift).is_some() && still_valid {
        return ExtendDecision::Extended { by: tally.yes };
    }
    if tally.answered >= needed {
        return ExtendDecision::Refused;
    }
    ExtendDecision::Unavailable {
        answered: tally.answered,
        failures: tally.failures,
    }
}

/// The decision of a release round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReleaseDecision {
    /// A quorum still held our token until this round deleted it.
    Released,
    /// A quorum answered and too few held our token: the lock had expired or was taken over.
    NotHeld,
    /// Too few voters answered to tell (the keys of those that answered are deleted anyway).
    Unavailable {
        answered: usize,
        failures: NodeFailures,
    },
}

/// Decide a release round from the voters' answers (`true`: the key held our token and was
/// deleted; a missing key is a plain `false`, not an error).
pub(crate) fn decide_release<N: AsRef<str>>(
    answers: &[(N, Result<bool, NodeError>)],
) -> ReleaseDecision {
    let needed = quorum(answers.len());
    let tally = Tally::of(answers);
    if tally.yes.len() >= needed {
        ReleaseDecision::Released
    } else if tally.answered >= needed {
        ReleaseDecision::NotHeld
    } else {
        ReleaseDecision::Unavailable {
            answered: tally.answered,
            failures: tally.failures,
        }
    }
}

/// The decision of a lock-info read: who holds the resource, if a quorum agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InfoDecision {
    /// `token` is on at least a quorum of voters; `remaining` is the quorum-th largest
    /// remaining time minus drift (`None` when that is spent, `Some(MAX)` for no expiry).
    Locked {
        token: String,
        remaining: Option<Duration>,
    },
    /// No token can reach a quorum even if every silent voter held it.
    Free,
    /// Too few answers to tell.
    Unknown,
}

/// Decide who holds a resource from `(token, remaining)` answers; `None` entries are voters
/// that did not answer. `remaining` of `None` on a present token means "no expiry".
pub(crate) fn decide_info(
    answers: &[Option<(Option<String>, Option<Duration>)>],
    drift_factor: f64,
) -> InfoDecision {
    let needed = quorum(answers.len());
    let silent = answers.iter().filter(|a| a.is_none()).count();
    let mut best: Option<(&String, Vec<Option<Duration>>)> = None;
    let mut tokens: Vec<(&String, Vec<Option<Duration>>)> = Vec::new();
    for (token, pttl) in answers.iter().flatten() {
        if let Some(token) = token {
            match tokens.iter_mut().find(|(t, _)| *t == token) {
                Some((_, ttls)) => ttls.push(*pttl),
                None => tokens.push((token, vec![*pttl])),
            }
        }
    }
    for (token, ttls) in tokens {
        if best.as_ref().is_none_or(|(_, b)| ttls.len() > b.len()) {
            best = Some((token, ttls));
        }
    }
    match best {
        Some((token, mut ttls)) if ttls.len() >= needed => {
            // Largest first; the quorum-th largest is how long a quorum still holds it.
            ttls.sort_by_key(|t| std::cmp::Reverse(t.unwrap_or(Duration::MAX)));
            let remaining = match ttls.get(needed - 1).copied().flatten() {
                None => Some(Duration::MAX),
                Some(left) => left.checked_sub(drift(left, drift_factor)),
            };
            InfoDecision::Locked {
                token: token.clone(),
                remaining,
            }
        }
        Some((_, ttls)) if ttls.len() + silent >= needed => InfoDecision::Unknown,
        None if silent >= needed => InfoDecision::Unknown,
        _ => InfoDecision::Free,
    }
}

#[cfg(test)]
mod tests;
