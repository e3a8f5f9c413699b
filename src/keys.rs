//! Which key each voter stores, so that every client derives the same keys for a resource
//! whatever its view of the cluster topology.
//!
//! In cluster mode, voter `i` of `V` gets a key whose hash slot lies in voter `i`'s slot
//! window ([`slot_band`]). The key is `prefix {tag} resource`, where the hash tag is
//! `<fnv64(resource)>.<i>.<counter>` and `counter` is the smallest value that puts the slot in
//! the window. The key depends only on (prefix, resource, i, V), never on the live topology, so
//! a reshard cannot make two clients use different keys for one vote.
//!
//! The windows are a pure function of `V`, chosen so that the `V` keys of every resource land
//! on `V` distinct masters under the even split of `redis-cli --cluster create`
//! ([`even_slot_ranges`]) for **every** master count `M` from `V` to [`MAX_CLUSTER_VOTERS`]
//! (issue 8): window `i` starts where master `i`'s range starts for `M = V`, and ends before
//! the start of whichever range, for any `M` in `V..=64`, holds the first slot of window
//! `i + 1`. So for each `M`, every slot of window `i` is on a lower-numbered master than every
//! slot of window `i + 1`: the masters of the windows are strictly increasing, hence distinct.
//! The unit tests check this slot by slot for every `V` in `1..=64` and `M` in `V..=64`.
//!
//! Compatibility: this scheme replaced the earlier one (voter `i` anywhere in band
//! `[i * 16384 / V, (i + 1) * 16384 / V)`), which let two voters of one resource share a
//! master when `M > V`. Key names changed with it: clients of different versions derive
//! different keys and do not exclude each other, so all clients of a cluster must be upgraded
//! together. Key names carry no compatibility promise yet.
//!
//! Why no escaping is needed: Redis hashes the bytes between the *first* `{` and the first `}`
//! after it. The prefix may not contain braces and the tag is hex digits, dots and decimal
//! digits, so the tag is always what is hashed, and the resource bytes after the tag are
//! carried verbatim. Injectivity follows: the resource is exactly the bytes after the first
//! `}`.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::sync::OnceLock;

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
/// assert_eq!(redlock_cluster::cluster::key_slot(b"foo"), 12182);
/// assert_eq!(redlock_cluster::cluster::key_slot(b"{user1000}.following"),
///            redlock_cluster::cluster::key_slot(b"user1000"));
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

/// The largest master count for which the windows guarantee distinct masters. Changing it
/// changes every key name.
const PLACEMENT_MASTERS: usize = MAX_CLUSTER_VOTERS;

/// Upper bound of counters tried per voter key. The narrowest window is 8 slots (with 61 or
/// 63 voters; 16 or more for up to 45 voters, 364 or more for up to 9, 2731 for the default
/// 3), so with CRC16 spreading the tags evenly a miss has probability at most
/// `(1 - 8/16384)^(2^20)`, about `e^-512`: it never happens in practice, and if it did it
/// would be the same error for every client, never two different keys.
const MAX_TAG_TRIES: u32 = 1 << 20;

/// The slot window `[start, end)` of voter `index` out of `voters`, a pure function of the
/// two (`voters` is clamped to `1..=`[`MAX_CLUSTER_VOTERS`], `index` to `0..voters`).
///
/// Window `i` starts at master `i`'s first slot under [`even_slot_ranges`]`(voters)` and is
/// cut short so that for every master count `M` in `voters..=64` all of it lies on masters
/// below the master holding window `i + 1`'s first slot (the last window runs to slot 16383).
/// So under `redis-cli --cluster create`'s split, voter `i` is master `i` when there are
/// `voters` masters, and with more masters (up to 64) the voters of a resource are still on
/// distinct masters. Each window is inside `[i * 16384 / voters, (i + 1) * 16384 / voters)`
/// and master `i`'s range for `M = voters`; the windows are disjoint and never empty.
#[must_use]
pub fn slot_band(index: usize, voters: usize) -> (u16, u16) {
    let voters = voters.clamp(1, MAX_CLUSTER_VOTERS);
    let index = index.min(voters - 1);
    windows()
        .get(voters)
        .and_then(|windows| windows.get(index))
        .copied()
        .unwrap_or((0, SLOT_COUNT))
}

/// The windows of every voter count, computed once: `windows()[v][i]` is voter `i` of `v`.
fn windows() -> &'static [Vec<(u16, u16)>] {
    static WINDOWS: OnceLock<Vec<Vec<(u16, u16)>>> = OnceLock::new();
    WINDOWS.get_or_init(|| {
        let splits: Vec<Vec<RangeInclusive<u16>>> =
            (0..=PLACEMENT_MASTERS).map(even_slot_ranges).collect();
        (0..=MAX_CLUSTER_VOTERS)
            .map(|voters| voter_windows(voters, &splits))
            .collect()
    })
}

/// The windows of `voters` voters; `splits[m]` is `even_slot_ranges(m)`.
fn voter_windows(voters: usize, splits: &[Vec<RangeInclusive<u16>>]) -> Vec<(u16, u16)> {
    let Some(own) = splits.get(voters).filter(|_| voters > 0) else {
        return Vec::new();
    };
    own.iter()
        .enumerate()
        .map(|(i, range)| {
            let end = match own.get(i + 1) {
                None => SLOT_COUNT,
                Some(next) => {
                    // The lowest first slot among the ranges, for every M, that hold the next
                    // window's first slot: every slot below it is on an earlier master.
                    let next_start = *next.start();
                    splits
                        .get(voters..)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|split| split.iter().find(|r| r.contains(&next_start)))
                        .map(|r| *r.start())
                        .fold(next_start, u16::min)
                }
            };
            (*range.start(), end)
        })
        .collect()
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

/// The cluster-mode keys of `resource`, one per voter, voter `i`'s key in
/// [`slot_band`]`(i, voters)`.
///
/// # Errors
/// [`LockError::InvalidConfig`] if `voters` is 0 or above [`MAX_CLUSTER_VOTERS`], or if the
/// prefix contains `{` or `}` (it would change which bytes Redis hashes); also if no counter
/// in `2^20` tries puts a key in its window, which never happens in practice (see
/// `MAX_TAG_TRIES` in the source).
///
/// ```
/// use redlock_cluster::cluster::{cluster_voter_keys, key_slot, slot_band};
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
        .map(|index| voter_key(prefix, resource, resource_hash, index, voters))
        .collect()
}

/// Voter `index`'s key: the first counter whose tag hashes into the voter's window.
fn voter_key(
    prefix: &str,
    resource: &[u8],
    resource_hash: u64,
    index: usize,
    voters: usize,
) -> Result<Vec<u8>, LockError> {
    let (start, end) = slot_band(index, voters);
    let mut tag = format!("{resource_hash:016x}.{index}.");
    let fixed = tag.len();
    for counter in 0..MAX_TAG_TRIES {
        tag.truncate(fixed);
        // Writing to a String cannot fail.
        let _ = write!(tag, "{counter}");
        if (start..end).contains(&key_slot(tag.as_bytes())) {
            let mut key = Vec::with_capacity(prefix.len() + tag.len() + resource.len() + 2);
            key.extend_from_slice(prefix.as_bytes());
            key.push(b'{');
            key.extend_from_slice(tag.as_bytes());
            key.push(b'}');
            key.extend_from_slice(resource);
            return Ok(key);
        }
    }
    Err(LockError::InvalidConfig(format!(
        "no hash tag in {MAX_TAG_TRIES} tries puts voter {index} of {voters} in slots \
         {start}..{end}"
    )))
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
}
