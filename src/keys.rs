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
mod tests;
