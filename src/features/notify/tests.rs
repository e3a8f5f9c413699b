//! Tests of `notify`.

use super::*;
use crate::keys::{cluster_voter_keys, key_slot};

#[test]
fn channels_keep_the_key_slot_and_are_injective() {
    for resource in [&b"orders/42"[..], b"a{b}c", b"", b"x:released"] {
        for key in cluster_voter_keys("redlock:", resource, 3).unwrap() {
            assert_eq!(key_slot(&channel_of(&key)), key_slot(&key));
        }
    }
    assert_ne!(channel_of(b"a"), channel_of(b"a:released"));
    assert_eq!(channel_of(b"k"), b"k:released".to_vec());
}
