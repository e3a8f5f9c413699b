//! Tests of `fencing`.

use std::time::Duration;

use redis::Value;

use super::decide::{CommitDecision, decide_commit, quorum_floor};
use super::scripts::{parse_acquire_fenced, parse_counter};
use super::*;
use crate::error::NodeError;
use crate::keys::{derive_cluster_keys, independent_key, key_slot};
use proptest::prelude::*;

fn ok(node: &str) -> (String, Result<bool, NodeError>) {
    (node.to_string(), Ok(true))
}

#[test]
fn commit_needs_a_quorum_of_granters_and_validity_over_both_rounds() {
    let (ttl, drift) = (Duration::from_millis(1000), Duration::from_millis(12));
    let fast = Duration::from_millis(100);
    let refused = ("c".to_string(), Ok(false));
    let failed = ("c".to_string(), Err(NodeError::Timeout(fast)));
    assert!(matches!(
        decide_commit(&[ok("a"), ok("b")], 3, ttl, fast, drift),
        CommitDecision::Acquired { by, .. } if by == ["a", "b"]
    ));
    assert_eq!(
        decide_commit(&[ok("a"), ok("b")], 3, ttl, ttl, drift),
        CommitDecision::Expired
    );
    // Two of five granters acknowledging is not a quorum, whatever the others said.
    for third in [refused, failed] {
        match decide_commit(&[ok("a"), ok("b"), third], 5, ttl, fast, drift) {
            CommitDecision::Unavailable { answered, failures } => {
                assert_eq!(answered, 2);
                assert_eq!(failures.len(), 1);
                assert!(failures.get("c").is_some());
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
}

#[test]
fn quorum_floor_is_the_quorum_th_largest() {
    assert_eq!(quorum_floor(vec![5, 9, 7], 3), Some(7));
    assert_eq!(quorum_floor(vec![5, 9], 3), Some(5));
    assert_eq!(quorum_floor(vec![9], 3), None);
    assert_eq!(quorum_floor(vec![1, 4, 4, 2, 8], 5), Some(4));
}

#[test]
fn replies_parse() {
    let granted = Value::Array(vec![Value::Int(1), Value::BulkString(b"41".to_vec())]);
    assert_eq!(parse_acquire_fenced(&granted), Ok(FencedReply::Granted(41)));
    let held = Value::Array(vec![Value::Int(0), Value::Int(900)]);
    assert_eq!(
        parse_acquire_fenced(&held),
        Ok(FencedReply::Held(Some(Duration::from_millis(900))))
    );
    let junk = Value::Array(vec![Value::Int(1), Value::BulkString(b"x".to_vec())]);
    assert!(parse_acquire_fenced(&junk).is_err());
    assert_eq!(parse_counter(&Value::Nil), Ok(0));
    assert_eq!(
        parse_counter(&Value::BulkString(u64::MAX.to_string().into_bytes())),
        Ok(u64::MAX)
    );
}

proptest! {
    /// The counter key shares its lock key's slot, and is never the lock key of another
    /// resource, nor the counter key of another resource, in either mode.
    #[test]
    fn counter_keys_share_the_slot_and_never_collide(
        a in "\\PC{1,12}",
        b in "\\PC{1,12}",
        prefix in "[a-z:]{0,8}",
    ) {
        for voter in derive_cluster_keys(&prefix, a.as_bytes(), 3).unwrap_or_default() {
            let counter = fence_key(&prefix, &voter);
            prop_assert_eq!(key_slot(&counter), key_slot(&voter));
            for other in derive_cluster_keys(&prefix, b.as_bytes(), 3).unwrap_or_default() {
                prop_assert_ne!(&counter, &other);
                if a != b {
                    prop_assert_ne!(&counter, &fence_key(&prefix, &other));
                }
            }
        }
        let (ka, kb) = (independent_key(&prefix, a.as_bytes()), independent_key(&prefix, b.as_bytes()));
        prop_assert_ne!(&fence_key(&prefix, &ka), &kb);
        prop_assert_eq!(fence_key(&prefix, &ka) == fence_key(&prefix, &kb), a == b);
    }
}

/// The resource named like another resource's counter key cannot take it over: the
/// suffix after the mark is not UTF-8, so no resource name is spelled that way.
#[test]
fn the_mark_is_not_utf8() {
    // 0xFF starts no UTF-8 sequence, so no resource name (a `&str`) begins with the mark.
    assert_eq!(FENCE_MARK.first(), Some(&0xFF));
    let named_like_a_counter = [FENCE_MARK, b"resource"].concat();
    assert!(String::from_utf8(named_like_a_counter).is_err());
    assert!(!FENCE_MARK.contains(&b'{') && !FENCE_MARK.contains(&b'}'));
}
