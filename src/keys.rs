//! Which key each voter stores, so that every client derives the same keys for a resource
//! whatever its view of the cluster topology.
//!
//! In cluster mode, voter `i` of `V` gets a key whose hash slot lies in band
//! `[i * 16384 / V, (i + 1) * 16384 / V)`, further narrowed to master `i`'s range under
//! `redis-cli --cluster create`'s even split (which differs by a slot at some boundaries), so
//! that in the default layout voter `i` is master `i`. The key is `prefix {tag} resource`, where the hash tag is
//! `<fnv64(resource)>.<i>.<counter>` and `counter` is the smallest value that puts the slot in
//! the band. The key depends only on (prefix, resource, i, V), never on the live topology, so a
//! reshard cannot make two clients use different keys for one vote.
//!
//! Why no escaping is needed: Redis hashes the bytes between the *first* `{` and the first `}`
//! after it. The prefix may not contain braces and the tag is hex digits, dots and decimal
//! digits, so the tag is always what is hashed, and the resource bytes after the tag are
//! carried verbatim. Injectivity follows: the resource is exactly the bytes after the first
//! `}`.

use std::ops::RangeInclusive;

use crc::{CRC_16_XMODEM, Crc};

use crate::error::LockError;

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// Upper bound of voters in cluster mode; more than this many masters voting on one lock
/// would cost more round-trip time than it buys in fault tolerance.
pub const MAX_CLUSTER_VOTERS: usize = 64;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes keys
/// with.
const XMODEM: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The CRC16/XMODEM checksum of `data`, as Redis Cluster computes it to hash keys.
pub fn crc16(data: &[u8]) -> u16 {
    XMODEM.checksum(data)
}

/// The cluster hash slot of a key, honouring `{hash tags}` exactly as `CLUSTER KEYSLOT` does.
///
/// ```
/// assert_eq!(redlock_cluster::key_slot(b"foo"), 12182);
/// assert_eq!(redlock_cluster::key_slot(b"{user1000}.following"),
///            redlock_cluster::key_slot(b"user1000"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOT_COUNT
}

/// The slot ranges `redis-cli --cluster create` gives to `masters` masters, in order: master
/// `i` gets range `i`.
///
/// This is redis-cli's arithmetic reproduced exactly (single-precision cursor, rounded ends),
/// not `[i*16384/M, (i+1)*16384/M)`: the two differ by one slot at some boundaries (with 3
/// masters redis-cli gives `5461..=10922` and `10923..=16383`).
#[must_use]
pub fn even_slot_ranges(masters: usize) -> Vec<RangeInclusive<u16>> {
    // Mirrors the slot allocation of `--cluster create` in redis-cli.c (Redis 5 to 7).
    let masters = masters.max(1);
    let per_master = f32::from(SLOT_COUNT) / masters as f32;
    let mut cursor = 0.0f32;
    let mut first: i64 = 0;
    let mut ranges = Vec::with_capacity(masters);
    for i in 0..masters {
        let mut last = (cursor + per_master - 1.0).round() as i64;
        if last > i64::from(SLOT_COUNT) || i + 1 == masters {
            last = i64::from(SLOT_COUNT) - 1;
        }
        last = last.max(first);
        ranges.push(clamp_slot(first)..=clamp_slot(last));
        first = last + 1;
        cursor += per_master;
    }
    ranges
}

fn clamp_slot(value: i64) -> u16 {
    u16::try_from(value.clamp(0, i64::from(SLOT_COUNT) - 1)).unwrap_or(0)
}

/// The half-open slot band `[start, end)` of voter `index` out of `voters`: the part of
/// `[index * 16384 / voters, (index + 1) * 16384 / voters)` that is also master `index`'s
/// range in [`even_slot_ranges`], so that voter `i`'s key lands on master `i` of a cluster
/// created by `redis-cli --cluster create` (whose split differs by one slot at some
/// boundaries). The bands are disjoint and never empty.
pub fn slot_band(index: usize, voters: usize) -> (u16, u16) {
    let voters = voters.max(1);
    let index = index.min(voters - 1);
    let slots = SLOT_COUNT as usize;
    // Both values are <= 16384 <= u16::MAX, so the conversions cannot truncate.
    let (lo, hi) = (
        (index * slots / voters) as u16,
        ((index + 1) * slots / voters) as u16,
    );
    let cli = even_slot_ranges(voters)
        .get(index)
        .cloned()
        .unwrap_or(0..=SLOT_COUNT - 1);
    let start = lo.max(*cli.start());
    let end = hi.min(cli.end().saturating_add(1));
    if start < end { (start, end) } else { (lo, hi) }
}

/// 64-bit FNV-1a: a stable, platform-independent hash that spreads resources over slots.
fn fnv64(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in data {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The cluster-mode keys of `resource`, one per voter, voter `i`'s key in slot band `i`.
///
/// # Errors
/// [`LockError::InvalidConfig`] if `voters` is 0 or above [`MAX_CLUSTER_VOTERS`], or if the
/// prefix contains `{` or `}` (it would change which bytes Redis hashes).
///
/// ```
/// use redlock_cluster::{cluster_voter_keys, key_slot, slot_band};
/// let keys = cluster_voter_keys("redlock:", b"orders/42", 3).unwrap();
/// for (i, key) in keys.iter().enumerate() {
///     let (start, end) = slot_band(i, 3);
///     assert!((start..end).contains(&key_slot(key)));
/// }
/// ```
pub fn cluster_voter_keys(
    prefix: &str,
    resource: &[u8],
    voters: usize,
) -> Result<Vec<Vec<u8>>, LockError> {
    check_prefix(prefix)?;
    check_cluster_voters(voters)?;
    derive_cluster_keys(prefix, resource, voters)
}

/// [`cluster_voter_keys`] for a prefix and voter count that were already checked (by
/// [`LockConfig::validate`](crate::LockConfig::validate), once, when the manager was built).
pub(crate) fn derive_cluster_keys(
    prefix: &str,
    resource: &[u8],
    voters: usize,
) -> Result<Vec<Vec<u8>>, LockError> {
    let resource_hash = fnv64(resource);
    (0..voters)
        .map(|index| {
            let (start, end) = slot_band(index, voters);
            // Each try lands in the band with probability 1/voters; 2^20 tries make a miss
            // astronomically unlikely (and it would be the same miss for every client).
            (0u32..1 << 20)
                .map(|counter| format!("{resource_hash:016x}.{index}.{counter}"))
                .find(|tag| (start..end).contains(&key_slot(tag.as_bytes())))
                .map(|tag| {
                    let mut key = Vec::with_capacity(prefix.len() + tag.len() + resource.len() + 2);
                    key.extend_from_slice(prefix.as_bytes());
                    key.push(b'{');
                    key.extend_from_slice(tag.as_bytes());
                    key.push(b'}');
                    key.extend_from_slice(resource);
                    key
                })
                .ok_or_else(|| {
                    LockError::InvalidConfig(format!(
                        "no hash tag found for voter {index} of {voters}"
                    ))
                })
        })
        .collect()
}

/// The independent-mode key of `resource`: the same name on every master.
pub(crate) fn independent_key(prefix: &str, resource: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + resource.len());
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(resource);
    key
}

/// Check a number of cluster voters: between 1 and [`MAX_CLUSTER_VOTERS`].
pub(crate) fn check_cluster_voters(voters: usize) -> Result<(), LockError> {
    if voters == 0 || voters > MAX_CLUSTER_VOTERS {
        return Err(LockError::InvalidConfig(format!(
            "cluster voters must be between 1 and {MAX_CLUSTER_VOTERS}, got {voters}"
        )));
    }
    Ok(())
}

/// Check a key prefix: no `{` or `}`, which would change which bytes Redis hashes.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), LockError> {
    if prefix.contains(['{', '}']) {
        return Err(LockError::InvalidConfig(format!(
            "key prefix {prefix:?} must not contain '{{' or '}}': they would change the hash slot"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
    fn bands_are_disjoint_and_inside_both_splits() {
        for voters in 1..=MAX_CLUSTER_VOTERS {
            let cli = even_slot_ranges(voters);
            let mut previous_end = 0u16;
            for (i, range) in cli.iter().enumerate() {
                let (start, end) = slot_band(i, voters);
                assert!(end > start, "empty band {i} of {voters}");
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
        assert_eq!(slot_band(0, 3), (0, 5461));
        assert_eq!(slot_band(1, 3), (5461, 10922));
        assert_eq!(slot_band(2, 3), (10923, 16384));
    }

    #[test]
    fn bad_prefix_and_voter_counts_are_rejected() {
        assert!(cluster_voter_keys("a{b", b"r", 3).is_err());
        assert!(cluster_voter_keys("a}b", b"r", 3).is_err());
        assert!(cluster_voter_keys("p:", b"r", 0).is_err());
        assert!(cluster_voter_keys("p:", b"r", MAX_CLUSTER_VOTERS + 1).is_err());
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
}
