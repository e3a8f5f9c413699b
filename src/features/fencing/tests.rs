//! Tests of `fencing`.

use std::time::Duration;

use redis::Value;

use super::decide::{CommitDecision, decide_commit, next_token, quorum_floor};
use super::*;
use crate::adapter::redis_node::{
    MAX_COUNTER_LEAD, check_counter_lead, parse_acquire_fenced, parse_commit, parse_counter_bytes,
    parse_read,
};
use crate::error::NodeError;
use crate::keys::{derive_cluster_keys, independent_key, key_slot};
use crate::node::FencedReply;
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

/// A `TIME` reply's two parts for `seconds.micros`.
fn time(seconds: u64, micros: u64) -> [Value; 2] {
    [
        Value::BulkString(seconds.to_string().into_bytes()),
        Value::BulkString(micros.to_string().into_bytes()),
    ]
}

const KEY: &[u8] = b"redlock:\xfffence:ledger";

#[test]
fn replies_parse() {
    let [s, us] = time(1_700_000_000, 42);
    let granted = Value::Array(vec![
        Value::Int(1),
        Value::BulkString(b"41".to_vec()),
        s.clone(),
        us.clone(),
    ]);
    assert_eq!(
        parse_acquire_fenced(&granted, KEY),
        Ok(FencedReply::Granted {
            counter: 41,
            time: 1_700_000_000_000_042
        })
    );
    let fresh = Value::Array(vec![Value::Int(1), Value::Nil, s.clone(), us.clone()]);
    assert!(matches!(
        parse_acquire_fenced(&fresh, KEY),
        Ok(FencedReply::Granted { counter: 0, .. })
    ));
    let held = Value::Array(vec![Value::Int(0), Value::Int(900)]);
    assert_eq!(
        parse_acquire_fenced(&held, KEY),
        Ok(FencedReply::Held(Some(Duration::from_millis(900))))
    );
    let junk = Value::Array(vec![Value::Int(1), Value::BulkString(b"x".to_vec()), s, us]);
    assert!(parse_acquire_fenced(&junk, KEY).is_err());
    let list = Value::Array(vec![Value::Int(2), Value::BulkString(b"list".to_vec())]);
    match parse_acquire_fenced(&list, KEY) {
        Err(NodeError::FencingCounter { key, found }) => {
            assert_eq!(key, r#""redlock:\xfffence:ledger""#);
            assert!(found.contains("list"), "{found}");
        }
        other => panic!("a list counter must be a FencingCounter error, got {other:?}"),
    }
    assert_eq!(parse_commit(&Value::Int(1), KEY), Ok(true));
    assert_eq!(parse_commit(&Value::Int(0), KEY), Ok(false));
    assert!(matches!(
        parse_commit(&Value::BulkString(b"a hash".to_vec()), KEY),
        Err(NodeError::FencingCounter { .. })
    ));
    let [s, us] = time(1_700_000_000, 0);
    let read = Value::Array(vec![Value::BulkString(b"7".to_vec()), s, us]);
    // The recorded counter, not its max with the clock (a status read shows the holder's
    // token).
    assert_eq!(parse_read(&read, KEY), Ok(7));
}

/// Counters are numbers written by the commit script: anything else names the key, what it
/// holds, and how to repair it; nothing is compared as a string or a double.
#[test]
fn odd_counter_values_are_clear_errors() {
    assert_eq!(parse_counter_bytes(None, KEY), Ok(0));
    assert_eq!(parse_counter_bytes(Some(b"0"), KEY), Ok(0));
    assert_eq!(parse_counter_bytes(Some(b"99"), KEY), Ok(99));
    assert_eq!(
        parse_counter_bytes(Some(u64::MAX.to_string().as_bytes()), KEY),
        Ok(u64::MAX)
    );
    for (value, why) in [
        (&b"00000000000099"[..], "leading zeros"),
        (b"-5", "a sign"),
        (b"+5", "a sign"),
        (b" 5", "spaces"),
        (b"5 ", "spaces"),
        (b"18446744073709551616", "above u64::MAX"),
        (b"1e3", "not decimal digits"),
        (b"", "empty"),
    ] {
        let error = parse_counter_bytes(Some(value), KEY).expect_err("an odd counter");
        let NodeError::FencingCounter { key, found } = &error else {
            panic!("{value:?}: {error:?}");
        };
        assert_eq!(key, r#""redlock:\xfffence:ledger""#);
        assert!(found.contains(why), "{value:?}: {found}");
        let message = error.to_string();
        assert!(message.contains("DEL"), "no repair in {message}");
        assert!(error.is_configuration());
    }
}

/// A counter far ahead of its voter's clock (up to `u64::MAX`) fails that voter's vote
/// instead of becoming the floor of every later token.
#[test]
fn a_counter_far_ahead_of_the_clock_fails_the_vote() {
    let now = 1_700_000_000_000_000u64;
    assert_eq!(check_counter_lead(now + 5, now, KEY), Ok(now + 5));
    let day = MAX_COUNTER_LEAD.as_micros() as u64;
    assert_eq!(check_counter_lead(now + day, now, KEY), Ok(now + day));
    for counter in [now + day + 1, u64::MAX] {
        assert!(matches!(
            check_counter_lead(counter, now, KEY),
            Err(NodeError::FencingCounter { .. })
        ));
    }
}

#[test]
fn the_token_is_a_hybrid_logical_clock() {
    assert_eq!(next_token([]), None);
    // The clock dominates fresh counters...
    assert_eq!(next_token([(0, 1000), (0, 900)]), Some(1000));
    // ...the counter a clock that is behind, or two rounds within one microsecond.
    assert_eq!(next_token([(1000, 900), (3, 950)]), Some(1001));
    assert_eq!(next_token([(u64::MAX, 0)]), None);
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
