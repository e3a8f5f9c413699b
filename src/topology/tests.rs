//! Mode decision, discovery and voter admission of `topology`, unit-tested.

use std::time::Duration;

use super::discovery::{check_distinct_servers, check_one_cluster, host_of};
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
