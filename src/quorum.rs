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

/// Decide an acquire round from the voters' answers (in voter order, with their names).
pub(crate) fn decide_acquire(
    votes: &[(String, AcquireVote)],
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

pub(crate) fn collect_failures<'a>(
    failed: impl Iterator<Item = (&'a String, &'a NodeError)>,
) -> NodeFailures {
    NodeFailures(
        failed
            .map(|(node, error)| NodeFailure {
                node: node.clone(),
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
    fn of(answers: &[(String, Result<bool, NodeError>)]) -> Self {
        Tally {
            yes: answers
                .iter()
                .filter(|(_, answer)| *answer == Ok(true))
                .map(|(node, _)| node.clone())
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
pub(crate) fn decide_extend(
    answers: &[(String, Result<bool, NodeError>)],
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
pub(crate) fn decide_release(answers: &[(String, Result<bool, NodeError>)]) -> ReleaseDecision {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn named(votes: Vec<AcquireVote>) -> Vec<(String, AcquireVote)> {
        votes
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("n{i}"), v))
            .collect()
    }

    #[test]
    fn quorum_is_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
    }

    #[test]
    fn drift_matches_redlock_formula() {
        assert_eq!(drift(ms(10_000), 0.01), ms(102));
        assert_eq!(drift(ms(1_000), 0.0), ms(2));
        assert_eq!(drift(ms(1_000), f64::NAN), ms(2));
        assert_eq!(drift(Duration::MAX, 1.0), Duration::MAX);
        assert!(drift(Duration::MAX, 0.5) >= Duration::MAX / 2);
    }

    #[test]
    fn contention_hint_is_when_enough_holders_expire() {
        let votes = named(vec![
            AcquireVote::Held(Some(ms(300))),
            AcquireVote::Held(Some(ms(100))),
            AcquireVote::Held(Some(ms(200))),
        ]);
        assert_eq!(
            decide_acquire(&votes, ms(1000), ms(1), ms(12)),
            AcquireDecision::Contended {
                retry_hint: Some(ms(200))
            }
        );
    }

    #[test]
    fn too_few_answers_is_unavailable_not_contention() {
        let votes = named(vec![
            AcquireVote::Granted,
            AcquireVote::Failed(NodeError::Timeout(ms(50))),
            AcquireVote::Failed(NodeError::Connect("refused".into())),
        ]);
        match decide_acquire(&votes, ms(1000), ms(1), ms(12)) {
            AcquireDecision::Unavailable { answered, failures } => {
                assert_eq!(answered, 1);
                assert_eq!(failures.0.len(), 2);
                assert_eq!(failures.0[1].node, "n2");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn quorum_granted_but_slow_is_expired() {
        let votes = named(vec![AcquireVote::Granted; 3]);
        assert_eq!(
            decide_acquire(&votes, ms(100), ms(99), ms(3)),
            AcquireDecision::Expired
        );
    }

    #[test]
    fn info_needs_a_quorum_of_the_same_token() {
        let a = |t: &str, ms_left: u64| Some((Some(t.to_string()), Some(ms(ms_left))));
        // Two of three agree on "x": locked, remaining = second largest (800) minus drift.
        let decision = decide_info(&[a("x", 900), a("x", 800), a("y", 5000)], 0.01);
        assert_eq!(
            decision,
            InfoDecision::Locked {
                token: "x".into(),
                remaining: Some(ms(800 - 10))
            }
        );
        // One each: nobody can reach quorum.
        assert_eq!(
            decide_info(&[a("x", 900), a("y", 800), Some((None, None))], 0.01),
            InfoDecision::Free
        );
        // One holder and one silent voter: the silent one might hold it too.
        assert_eq!(
            decide_info(&[a("x", 900), None, Some((None, None))], 0.01),
            InfoDecision::Unknown
        );
        assert_eq!(
            decide_info(&[None, None, Some((None, None))], 0.01),
            InfoDecision::Unknown
        );
    }

    fn yes_no(answers: Vec<u8>) -> Vec<(String, Result<bool, NodeError>)> {
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let answer = match a {
                    0 => Ok(true),
                    1 => Ok(false),
                    _ => Err(NodeError::Timeout(ms(50))),
                };
                (format!("n{i}"), answer)
            })
            .collect()
    }

    #[test]
    fn extend_needs_quorum_validity_and_an_unexpired_lock() {
        let answers = yes_no(vec![0, 0, 2]);
        assert_eq!(
            decide_extend(&answers, ms(1000), ms(5), ms(12), true),
            ExtendDecision::Extended {
                by: vec!["n0".into(), "n1".into()]
            }
        );
        // Too slow, or the old validity ran out during the round: refused, not unavailable.
        assert_eq!(
            decide_extend(&answers, ms(100), ms(99), ms(3), true),
            ExtendDecision::Refused
        );
        assert_eq!(
            decide_extend(&answers, ms(1000), ms(5), ms(12), false),
            ExtendDecision::Refused
        );
        match decide_extend(&yes_no(vec![0, 2, 2]), ms(1000), ms(5), ms(12), true) {
            ExtendDecision::Unavailable { answered, failures } => {
                assert_eq!(answered, 1);
                assert_eq!(failures.0.len(), 2);
                assert_eq!(failures.0[0].node, "n1");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn release_reports_whether_a_quorum_held_it() {
        assert_eq!(
            decide_release(&yes_no(vec![0, 0, 1])),
            ReleaseDecision::Released
        );
        assert_eq!(
            decide_release(&yes_no(vec![0, 1, 1])),
            ReleaseDecision::NotHeld
        );
        assert_eq!(
            decide_release(&yes_no(vec![0, 1, 2, 2, 2])),
            ReleaseDecision::Unavailable {
                answered: 2,
                failures: collect_failures(
                    [
                        ("n2".to_string(), NodeError::Timeout(ms(50))),
                        ("n3".to_string(), NodeError::Timeout(ms(50))),
                        ("n4".to_string(), NodeError::Timeout(ms(50))),
                    ]
                    .iter()
                    .map(|(n, e)| (n, e))
                ),
            }
        );
    }

    proptest! {
        #[test]
        fn validity_never_positive_when_elapsed_plus_drift_reach_ttl(
            ttl_ms in 0u64..=u64::MAX / 2,
            elapsed_ms in 0u64..=u64::MAX / 2,
            factor in 0.0f64..0.5,
        ) {
            let ttl = ms(ttl_ms);
            let elapsed = ms(elapsed_ms);
            let d = drift(ttl, factor);
            match validity(ttl, elapsed, d) {
                Some(v) => {
                    prop_assert!(elapsed.saturating_add(d) < ttl);
                    prop_assert_eq!(v, ttl - elapsed - d);
                    prop_assert!(v <= ttl);
                }
                None => prop_assert!(elapsed.saturating_add(d) >= ttl),
            }
        }

        #[test]
        fn drift_never_overflows_and_grows_with_ttl(
            a in any::<u64>(), b in any::<u64>(), nanos in 0u32..1_000_000_000, factor in 0.0f64..1.0,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let lo = Duration::new(lo, nanos);
            let hi = Duration::new(hi, nanos);
            prop_assert!(drift(lo, factor) <= drift(hi, factor));
            prop_assert!(drift(lo, factor) >= DRIFT_FIXED);
        }

        #[test]
        fn acquire_succeeds_exactly_with_a_quorum_of_grants(
            votes in prop::collection::vec(0u8..3, 1..9),
        ) {
            let votes: Vec<AcquireVote> = votes.into_iter().map(|v| match v {
                0 => AcquireVote::Granted,
                1 => AcquireVote::Held(Some(ms(500))),
                _ => AcquireVote::Failed(NodeError::Timeout(ms(50))),
            }).collect();
            let granted = votes.iter().filter(|v| **v == AcquireVote::Granted).count();
            let answered = votes.iter().filter(|v| !matches!(v, AcquireVote::Failed(_))).count();
            let n = votes.len();
            let decision = decide_acquire(&named(votes), ms(10_000), ms(5), ms(102));
            let acquired = matches!(decision, AcquireDecision::Acquired { .. });
            prop_assert_eq!(acquired, granted >= quorum(n));
            if !acquired {
                let unavailable = matches!(decision, AcquireDecision::Unavailable { .. });
                prop_assert_eq!(unavailable, answered < quorum(n));
            }
        }

        #[test]
        fn release_is_decided_by_quorum(answers in prop::collection::vec(0u8..3, 1..9)) {
            let n = answers.len();
            let yes = answers.iter().filter(|a| **a == 0).count();
            let answered = answers.iter().filter(|a| **a < 2).count();
            match decide_release(&yes_no(answers)) {
                ReleaseDecision::Released => prop_assert!(yes >= quorum(n)),
                ReleaseDecision::NotHeld => {
                    prop_assert!(yes < quorum(n) && answered >= quorum(n))
                }
                ReleaseDecision::Unavailable { answered: a, failures } => {
                    prop_assert!(answered < quorum(n));
                    prop_assert_eq!(a, answered);
                    prop_assert_eq!(failures.0.len(), n - answered);
                }
            }
        }

        #[test]
        fn extend_counts_only_with_quorum_validity_and_a_valid_lock(
            answers in prop::collection::vec(0u8..3, 1..9),
            elapsed_ms in 0u64..1200,
            still_valid in any::<bool>(),
        ) {
            let n = answers.len();
            let yes = answers.iter().filter(|a| **a == 0).count();
            let answered = answers.iter().filter(|a| **a < 2).count();
            let (ttl, elapsed) = (ms(1000), ms(elapsed_ms));
            let d = drift(ttl, 0.01);
            let decision = decide_extend(&yes_no(answers), ttl, elapsed, d, still_valid);
            let extended = matches!(decision, ExtendDecision::Extended { .. });
            prop_assert_eq!(
                extended,
                yes >= quorum(n) && validity(ttl, elapsed, d).is_some() && still_valid
            );
            if let ExtendDecision::Extended { by } = &decision {
                prop_assert_eq!(by.len(), yes);
            }
            let unavailable = matches!(decision, ExtendDecision::Unavailable { .. });
            prop_assert_eq!(unavailable, answered < quorum(n));
        }
    }
}
