//! The decision rules of `quorum`, unit- and property-tested.

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

/// `(voters, yes, answered)` of the answers that [`yes_no`] makes.
fn counts(answers: &[u8]) -> (usize, usize, usize) {
    let yes = answers.iter().filter(|a| **a == 0).count();
    let answered = answers.iter().filter(|a| **a < 2).count();
    (answers.len(), yes, answered)
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
        let (n, yes, answered) = counts(&answers);
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
        let (n, yes, answered) = counts(&answers);
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

/// The settled outcome a full set of yes (0) / no (1) / failed (2) answers gives.
fn settle_all(answers: &[u8]) -> Option<Settled> {
    let mut count = Count::new(answers.len());
    for a in answers {
        count.record(match a {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        });
    }
    count.settled()
}

#[test]
fn a_paused_voter_does_not_delay_a_decided_round() {
    // Two of three granted: won without the third.
    let mut count = Count::new(3);
    count.record(Some(true));
    assert_eq!(count.settled(), None);
    count.record(Some(true));
    assert_eq!(count.settled(), Some(Settled::Won));
    // Two of three hold it for another: lost without the third.
    let mut count = Count::new(3);
    count.record(Some(false));
    count.record(Some(false));
    assert_eq!(count.settled(), Some(Settled::Lost));
    // Two failed: unavailable without the third.
    let mut count = Count::new(3);
    count.record(None);
    count.record(None);
    assert_eq!(count.settled(), Some(Settled::Unavailable));
    // One yes, one no: the third decides.
    let mut count = Count::new(3);
    count.record(Some(true));
    count.record(Some(false));
    assert_eq!(count.settled(), None);
}

proptest! {
    /// Deciding early never contradicts the decision of all answers: whatever the order in
    /// which answers arrive, an outcome settled by a prefix is the outcome of the whole, and
    /// the whole is always settled, and agrees with the full decision functions.
    #[test]
    fn early_settlement_never_contradicts_all_answers(
        answers in prop::collection::vec(0u8..3, 1..9),
        order in prop::collection::vec(any::<prop::sample::Index>(), 9),
    ) {
        let mut arrival: Vec<usize> = (0..answers.len()).collect();
        for (i, pick) in order.iter().enumerate().take(answers.len()) {
            let j = i + pick.index(answers.len() - i);
            arrival.swap(i, j);
        }
        let full = settle_all(&answers);
        prop_assert!(full.is_some());
        let mut count = Count::new(answers.len());
        for &i in &arrival {
            count.record(match answers[i] { 0 => Some(true), 1 => Some(false), _ => None });
            if let Some(early) = count.settled() {
                prop_assert_eq!(Some(early), full);
            }
        }
        let expected = match decide_release(&yes_no(answers.clone())) {
            ReleaseDecision::Released => Settled::Won,
            ReleaseDecision::NotHeld => Settled::Lost,
            ReleaseDecision::Unavailable { .. } => Settled::Unavailable,
        };
        prop_assert_eq!(full, Some(expected));
        let votes: Vec<AcquireVote> = answers.iter().map(|v| match v {
            0 => AcquireVote::Granted,
            1 => AcquireVote::Held(Some(ms(500))),
            _ => AcquireVote::Failed(NodeError::Timeout(ms(50))),
        }).collect();
        let acquire = match decide_acquire(&named(votes), ms(10_000), ms(5), ms(102)) {
            AcquireDecision::Acquired { .. } | AcquireDecision::Expired => Settled::Won,
            AcquireDecision::Contended { .. } => Settled::Lost,
            AcquireDecision::Unavailable { .. } => Settled::Unavailable,
        };
        prop_assert_eq!(full, Some(acquire));
    }
}
