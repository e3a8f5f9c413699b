//! Mode decision, discovery and voter admission of `topology`, unit-tested.

use std::time::Duration;

use super::discovery::{check_distinct_servers, check_one_cluster, host_of};
use super::*;
use crate::error::NodeError;

/// Seed answers: `Some(kind)` answered, `None` failed (timed out).
fn answers(kinds: &[Option<bool>]) -> Vec<(String, Option<Result<bool, NodeError>>)> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let node = format!("127.0.0.1:{}", 7000 + i);
            (
                node,
                Some(kind.ok_or(NodeError::Timeout(Duration::from_secs(1)))),
            )
        })
        .collect()
}

fn invalid_naming(result: Result<Option<Mode>, LockError>, node: &str) -> bool {
    matches!(&result, Err(LockError::InvalidConfig(why)) if why.starts_with(node))
}

fn seeds_unavailable(result: &Result<Option<Mode>, LockError>) -> bool {
    matches!(result, Err(LockError::SeedsUnavailable { .. }))
}

#[test]
fn the_mode_is_decided_by_a_majority_of_the_seeds_never_by_the_first_answer() {
    let (c, s, silent) = (Some(true), Some(false), None);
    for mode in [Mode::Auto, Mode::Cluster] {
        assert_eq!(
            decide_mode(mode, &answers(&[c, c])).ok(),
            Some(Some(Mode::Cluster))
        );
        // One of three seeds silent: a majority answered and agrees.
        assert_eq!(
            decide_mode(mode, &answers(&[c, silent, c])).ok(),
            Some(Some(Mode::Cluster))
        );
    }
    for mode in [Mode::Auto, Mode::Independent] {
        assert_eq!(
            decide_mode(mode, &answers(&[s, s])).ok(),
            Some(Some(Mode::Independent))
        );
        assert_eq!(
            decide_mode(mode, &answers(&[silent, s, s])).ok(),
            Some(Some(Mode::Independent))
        );
    }
    // The old timing bug: the cluster seed is slow, the standalone one answers. One of two
    // is no majority, in any mode.
    for mode in [Mode::Auto, Mode::Cluster, Mode::Independent] {
        let slow_cluster = decide_mode(mode, &answers(&[silent, s]));
        if mode == Mode::Cluster {
            assert!(matches!(slow_cluster, Err(LockError::NotACluster { .. })));
        } else {
            assert!(seeds_unavailable(&slow_cluster), "{slow_cluster:?}");
        }
        let lone = decide_mode(mode, &answers(&[c, silent, silent]));
        if mode == Mode::Independent {
            assert!(lone.is_err_and(|e| matches!(e, LockError::InvalidConfig(_))));
        } else {
            assert!(seeds_unavailable(&lone), "{lone:?}");
        }
    }
    assert!(seeds_unavailable(&decide_mode(
        Mode::Auto,
        &answers(&[c, silent])
    )));
    // Pending seeds: undecided while a majority may still answer.
    let mut pending = answers(&[c, silent, c]);
    pending[1].1 = None;
    pending[2].1 = None;
    assert_eq!(decide_mode(Mode::Auto, &pending).ok(), Some(None));
    pending[2].1 = Some(Ok(true));
    assert_eq!(
        decide_mode(Mode::Auto, &pending).ok(),
        Some(Some(Mode::Cluster))
    );
    // Mixed lists name the odd node, in every mode, as soon as both kinds answered.
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
    assert!(matches!(
        decide_mode(Mode::Cluster, &answers(&[s])),
        Err(LockError::NotACluster { .. })
    ));
    assert!(seeds_unavailable(&decide_mode(
        Mode::Cluster,
        &answers(&[silent])
    )));
    // The error counts seeds, not voters, and names the silent ones.
    let err = decide_mode(Mode::Auto, &answers(&[silent, silent, c])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1 of 3 seeds answered, 2 needed"), "{text}");
    assert!(
        text.contains("127.0.0.1:7000") && text.contains("127.0.0.1:7001"),
        "{text}"
    );
    assert!(!text.contains("voters answered"), "{text}");
    assert!(err.is_unavailable() && err.is_retryable());
}

/// Two majorities of one seed list share a seed: whatever subsets two clients hear from,
/// they never settle on two kinds (exhaustive over lists of up to 5 seeds of two kinds).
#[test]
fn two_majorities_of_one_seed_list_never_settle_on_two_modes() {
    for n in 1..=5usize {
        for kinds in 0..(1u32 << n) {
            let kind = |i: usize| kinds & (1 << i) != 0;
            for heard_a in 0..(1u32 << n) {
                for heard_b in 0..(1u32 << n) {
                    let decide = |heard: u32| {
                        let list: Vec<_> = (0..n)
                            .map(|i| {
                                let answer = (heard & (1 << i) != 0)
                                    .then_some(kind(i))
                                    .ok_or(NodeError::Timeout(Duration::ZERO));
                                (format!("n{i}"), Some(answer))
                            })
                            .collect();
                        decide_mode(Mode::Auto, &list).ok().flatten()
                    };
                    if let (Some(a), Some(b)) = (decide(heard_a), decide(heard_b)) {
                        assert_eq!(a, b, "n={n} kinds={kinds:b} {heard_a:b} {heard_b:b}");
                    }
                }
            }
        }
    }
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
    let a = Some(Arc::new(ServerFacts::simulated("a")));
    let b = Some(Arc::new(ServerFacts::simulated("b")));
    type Facts = Option<Arc<ServerFacts>>;
    let seeds = |facts: Vec<Facts>| -> Vec<(String, Facts)> {
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
