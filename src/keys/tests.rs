//! The cluster key scheme of `keys`, unit- and property-tested.

use super::*;
use proptest::prelude::*;

#[test]
fn crc16_matches_the_redis_cluster_spec() {
    // The reference value from the Redis Cluster specification.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"{}foo"), key_slot(b"{}foo"));
    assert_ne!(key_slot(b"{}foo"), key_slot(b"foo"));
    assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOT_COUNT);
    assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOT_COUNT);
    assert_eq!(key_slot(b"foo{bar}{zap}"), crc16(b"bar") % SLOT_COUNT);
}

#[test]
fn windows_are_disjoint_and_inside_both_splits() {
    for voters in 1..=MAX_CLUSTER_VOTERS {
        let cli = even_slot_ranges(voters);
        let mut previous_end = 0u16;
        for (i, range) in cli.iter().enumerate() {
            let (start, end) = slot_band(i, voters);
            assert!(end > start, "empty window {i} of {voters}");
            assert!(start >= previous_end);
            previous_end = end;
            let slots = SLOT_COUNT as usize;
            assert!(usize::from(start) >= i * slots / voters);
            assert!(usize::from(end) <= (i + 1) * slots / voters);
            assert!(range.contains(&start) && range.contains(&(end - 1)));
        }
        // redis-cli's ranges tile the slot space.
        assert_eq!(*cli[0].start(), 0);
        assert_eq!(*cli[voters - 1].end(), SLOT_COUNT - 1);
        for pair in cli.windows(2) {
            assert_eq!(*pair[0].end() + 1, *pair[1].start());
        }
    }
    // The 3-master split of `redis-cli --cluster create`: 0-5460, 5461-10922, 10923-16383.
    assert_eq!(
        even_slot_ranges(3),
        vec![0..=5460, 5461..=10922, 10923..=16383]
    );
    // Window 0 ends where 5 masters' range 1 starts (3277), window 1 where 4 masters'
    // range 2 starts (8192): those are the ranges holding the next window's first slot.
    assert_eq!(slot_band(0, 3), (0, 3277));
    assert_eq!(slot_band(1, 3), (5461, 8192));
    assert_eq!(slot_band(2, 3), (10923, 16384));
    assert_eq!(slot_band(0, 1), (0, SLOT_COUNT));
    assert_eq!(slot_band(5, 64), (5 * 256, 6 * 256));
    // The narrowest windows, which MAX_TAG_TRIES and docs/design.md rely on.
    let narrowest = |voters: usize| {
        (0..voters)
            .map(|i| slot_band(i, voters))
            .map(|(start, end)| end - start)
            .min()
            .unwrap()
    };
    assert_eq!((1..=MAX_CLUSTER_VOTERS).map(narrowest).min(), Some(8));
    assert!((1..=45).all(|voters| narrowest(voters) >= 16));
    assert!((1..=9).all(|voters| narrowest(voters) >= 364));
    assert_eq!(narrowest(3), 2731);
    // Out-of-range arguments are clamped, not a panic.
    assert_eq!(slot_band(7, 3), slot_band(2, 3));
    assert_eq!(slot_band(0, 0), slot_band(0, 1));
    assert_eq!(slot_band(0, 1000), slot_band(0, MAX_CLUSTER_VOTERS));
}

/// The issue 8 guarantee, slot by slot: for every voter count `V` and every master count
/// `M` from `V` to 64, no master under redis-cli's even split of `M` holds a slot of two
/// different voters' windows. So whatever slot each voter's key hashes to, the `V` keys
/// of any resource are on `V` distinct masters.
#[test]
fn windows_of_different_voters_never_share_a_master() {
    let mut owner_tables = Vec::new();
    for masters in 0..=PLACEMENT_MASTERS {
        let mut owner = vec![usize::MAX; usize::from(SLOT_COUNT)];
        for (m, range) in even_slot_ranges(masters.max(1)).into_iter().enumerate() {
            for slot in range {
                owner[usize::from(slot)] = m;
            }
        }
        assert!(owner.iter().all(|&m| m != usize::MAX));
        owner_tables.push(owner);
    }
    let mut pairs = 0;
    for voters in 1..=MAX_CLUSTER_VOTERS {
        for (masters, owner) in owner_tables.iter().enumerate().skip(voters) {
            let mut voter_of_master = vec![None; masters];
            for i in 0..voters {
                let (start, end) = slot_band(i, voters);
                for slot in start..end {
                    let claimed = &mut voter_of_master[owner[usize::from(slot)]];
                    assert!(
                        claimed.is_none_or(|v| v == i),
                        "{voters} voters, {masters} masters: master {} holds slots of \
                             voters {claimed:?} and {i}",
                        owner[usize::from(slot)]
                    );
                    *claimed = Some(i);
                }
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, 64 * 65 / 2);
}

/// The issue's figure (18% of resources with two voters on one master at `V = 3`,
/// `M = 5`) is now zero, here checked against the slot owners directly.
#[test]
fn default_voters_are_on_distinct_masters_for_every_master_count() {
    for masters in 3..=PLACEMENT_MASTERS {
        let ranges = even_slot_ranges(masters);
        let owner = |slot: u16| ranges.iter().position(|r| r.contains(&slot));
        for r in 0..300u32 {
            let resource = format!("resource-{r}");
            let keys = cluster_voter_keys("redlock:", resource.as_bytes(), 3).unwrap();
            let owners: Vec<_> = keys.iter().map(|k| owner(key_slot(k))).collect();
            assert!(
                owners[0] < owners[1] && owners[1] < owners[2],
                "{resource} on {masters} masters: {owners:?}"
            );
        }
    }
}

/// Derivation cost, printed (run with `--nocapture`, ideally `--release`).
#[test]
fn key_derivation_cost() {
    for (voters, resources) in [(3usize, 2000u32), (5, 1000), (9, 500), (64, 20)] {
        let started = std::time::Instant::now();
        for r in 0..resources {
            let keys = cluster_voter_keys("p:", format!("cost/{r}").as_bytes(), voters);
            assert_eq!(keys.map(|k| k.len()).ok(), Some(voters));
        }
        let per = started.elapsed() / resources;
        println!("cluster_voter_keys with {voters} voters: {per:?} per resource");
    }
}

#[test]
fn bad_prefix_and_voter_counts_are_rejected() {
    assert!(cluster_voter_keys("a{b", b"r", 3).is_err());
    assert!(cluster_voter_keys("a}b", b"r", 3).is_err());
    assert!(cluster_voter_keys("p:", b"r", 0).is_err());
    assert!(cluster_voter_keys("p:", b"r", MAX_CLUSTER_VOTERS + 1).is_err());
}

/// Under redis-cli's split of every `M` in `V..=64`, voter `i`'s key is on a master
/// below voter `i + 1`'s (so all `V` masters are distinct).
fn check_distinct_masters(resource: &[u8], voters: usize) -> Result<(), TestCaseError> {
    let keys = cluster_voter_keys("redlock:", resource, voters).unwrap();
    for masters in voters..=PLACEMENT_MASTERS {
        let ranges = even_slot_ranges(masters);
        let owners: Vec<Option<usize>> = keys
            .iter()
            .map(|key| ranges.iter().position(|r| r.contains(&key_slot(key))))
            .collect();
        for pair in owners.windows(2) {
            prop_assert!(
                pair[0].is_some() && pair[0] < pair[1],
                "{} masters: {:?}",
                masters,
                owners
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn up_to_nine_voters_are_on_distinct_masters_for_every_master_count(
        resource in prop::collection::vec(any::<u8>(), 0..64),
        voters in 1usize..=9,
    ) {
        check_distinct_masters(&resource, voters)?;
    }
}

proptest! {
    // Fewer cases: with many voters each derivation takes milliseconds in a debug build.
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn many_voters_are_on_distinct_masters_for_every_master_count(
        resource in prop::collection::vec(any::<u8>(), 0..64),
        voters in 10usize..=MAX_CLUSTER_VOTERS,
    ) {
        check_distinct_masters(&resource, voters)?;
    }
}

proptest! {
    #[test]
    fn keys_land_in_their_bands_and_are_deterministic(
        resource in prop::collection::vec(any::<u8>(), 0..64),
        voters in 1usize..=9,
    ) {
        let keys = cluster_voter_keys("redlock:", &resource, voters).unwrap();
        prop_assert_eq!(keys.len(), voters);
        for (i, key) in keys.iter().enumerate() {
            let (start, end) = slot_band(i, voters);
            prop_assert!((start..end).contains(&key_slot(key)));
            prop_assert!(key.ends_with(&resource));
        }
        prop_assert_eq!(keys, cluster_voter_keys("redlock:", &resource, voters).unwrap());
    }

    #[test]
    fn keys_are_injective(
        a in prop::collection::vec(any::<u8>(), 0..24),
        b in prop::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), Just(b'a'), any::<u8>()], 0..24),
    ) {
        let ka = cluster_voter_keys("p:", &a, 3).unwrap();
        let kb = cluster_voter_keys("p:", &b, 3).unwrap();
        for (i, key_a) in ka.iter().enumerate() {
            for (j, key_b) in kb.iter().enumerate() {
                if a != b || i != j {
                    prop_assert_ne!(key_a, key_b);
                }
            }
        }
        prop_assert_eq!(a == b, independent_key("p:", &a) == independent_key("p:", &b));
    }
}
