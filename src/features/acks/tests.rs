//! Replica-acknowledged votes of `acks`, unit-tested.

use super::*;
use crate::config::ReplicaAcks;
use crate::engine::round::votes::{judged, wait_limit};
use crate::error::NodeError;
use std::time::Duration;

fn acks(replicas: usize, ms: u64) -> ReplicaAcks {
    ReplicaAcks {
        replicas,
        timeout: Duration::from_millis(ms),
    }
}

#[test]
fn the_wait_fits_in_the_vote_and_never_blocks_forever() {
    let one = acks(1, 50);
    assert_eq!(wait_limit(&one, Duration::from_millis(100)), 50);
    assert_eq!(wait_limit(&one, Duration::from_millis(20)), 20);
    assert_eq!(wait_limit(&one, Duration::from_micros(300)), 1);
    assert_eq!(wait_limit(&one, Duration::ZERO), 1);
}

#[test]
fn a_write_counts_only_with_enough_acks() {
    assert_eq!(judged(true, 1, 1), Ok(true));
    assert_eq!(judged(true, 2, 1), Ok(true));
    assert_eq!(
        judged(true, 0, 1),
        Err(NodeError::NotReplicated {
            acked: 0,
            needed: 1
        })
    );
    assert_eq!(
        judged(true, -1, 2),
        Err(NodeError::NotReplicated {
            acked: 0,
            needed: 2
        })
    );
}

#[test]
fn the_timeout_must_fit_inside_the_node_timeout() {
    let node_timeout = Duration::from_millis(100);
    assert!(acks(1, 50).validate(node_timeout).is_ok());
    assert!(acks(1, 100).validate(node_timeout).is_err());
    assert!(acks(1, 0).validate(node_timeout).is_err());
}

#[test]
fn a_master_without_replicas_is_named() {
    let mut facts = ServerFacts::simulated("a");
    assert!(too_few_replicas(&facts, &acks(1, 50)));
    facts.connected_replicas = 1;
    assert!(!too_few_replicas(&facts, &acks(1, 50)));
    assert!(too_few_replicas(&facts, &acks(2, 50)));
}
