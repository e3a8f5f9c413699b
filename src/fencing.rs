//! Fencing tokens by quorum (opt-in: [`LockConfig::fencing`](crate::LockConfig::fencing)):
//! every granted lock carries a `u64` strictly greater than the token of every earlier holder
//! of the resource, under the same assumption as the lock itself (no voter loses its data).
//!
//! A lock's validity is only as good as its holder's clock and scheduler: a holder paused
//! past its deadline (GC, swap, `SIGSTOP`) wakes up believing it still holds the lock. A
//! fencing token lets the protected resource itself refuse such a holder: it remembers the
//! highest token it has seen and rejects any write that carries a lower one.
//!
//! # The construction: two rounds
//! Each voter keeps, next to its lock key, a counter key with no TTL, in the same hash slot
//! ([`fence_key`]).
//! 1. **Acquire** (`scripts/acquire_fenced.lua`): the usual `SET NX PX`; a voter that grants
//!    also returns its counter.
//! 2. **Commit** (`scripts/fence_commit.lua`): with a quorum of grants, the client takes
//!    `t = 1 + max(counters returned)` and sends `counter = max(counter, t)` to the voters
//!    that granted; a voter writes it only while our lock key still holds our lock token.
//!
//! The lock is granted only if the voters that granted in round 1 **and** acknowledged round
//! 2 form a quorum, with validity left after both rounds (the clock starts before round 1).
//! Otherwise every key of the attempt is released; a counter write that landed is harmless,
//! since counters only grow.
//!
//! # Why it is enough
//! Let `S` be our granted-and-acknowledged quorum and `B` any later holder. `B`'s round-1
//! grants form a quorum, so they include some voter `v` in `S`. At `v`, `B`'s grant needs our
//! key to be gone, and our commit landed while our key was there (the script checks it):
//! scripts run atomically, so `B` reads a counter `>= t` at `v` and takes a token `> t`.
//! (Which of two holders is "later" is the order of their grants at a shared voter; under the
//! lock's own timing assumptions it is the order of their hold intervals.)
//!
//! # Why the cheaper variants are not
//! - One round, "`INCR` in the acquire script and take the max": grant sets `{1,2}`, then
//!   `{2,3}`, then `{1,3}` on fresh counters give tokens 1, 2, 2 — the third holder is not
//!   ahead of the second, because they met on voter 3, whose counter was still low.
//! - Two rounds, "commit to any majority": acknowledgements from voters that did not grant
//!   prove nothing about order, since a later holder may have been granted there before our
//!   write landed, and then met our grant set only on voters our write never reached.
//!
//! The model test (`sim::fencing`) finds both failures and shows the construction holds
//! under message delays, loss, crashes and clock drift.
//!
//! # Using the token
//! The protected resource must compare tokens atomically with the write. For a Redis store,
//! a script like the one in `examples/fencing.rs`:
//!
//! ```lua
//! -- KEYS[1]: the data, KEYS[2]: the highest token seen. ARGV[1]: token, ARGV[2]: value.
//! local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
//! if tonumber(ARGV[1]) < seen then return 0 end
//! redis.call('SET', KEYS[2], ARGV[1])
//! redis.call('SET', KEYS[1], ARGV[2])
//! return 1
//! ```

use std::time::Duration;

use crate::error::NodeError;
use crate::node::NodeResult;

mod accessors;
mod decide;
mod round;
mod scripts;

/// What sets a counter key apart from every lock key of the same prefix: lock keys continue
/// after the prefix with `{` (cluster mode) or with the resource name, which is UTF-8; `0xFF`
/// never occurs in UTF-8 and is no brace.
const FENCE_MARK: &[u8] = b"\xfffence:";

/// The fencing counter key of a voter's lock key: `prefix 0xFF "fence:" rest`, where `rest`
/// is the lock key after the prefix.
///
/// - Same slot: the prefix and the mark hold no brace, so the first `{...}` (the cluster hash
///   tag) is the lock key's own.
/// - Injective, and never another resource's lock key (for the same prefix): the lock key is
///   recovered by dropping the mark, and no lock key has `0xFF` right after the prefix.
pub(crate) fn fence_key(prefix: &str, lock_key: &[u8]) -> Vec<u8> {
    let rest = lock_key.strip_prefix(prefix.as_bytes()).unwrap_or(lock_key);
    let mut key = Vec::with_capacity(prefix.len() + FENCE_MARK.len() + rest.len());
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(FENCE_MARK);
    key.extend_from_slice(rest);
    key
}

/// A node's answer to the fenced acquire script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FencedReply {
    /// The key was set with our token; the voter's fencing counter.
    Granted(u64),
    /// Someone else holds the key; their remaining time (`None`: the key has no expiry).
    Held(Option<Duration>),
}

/// The default of the fencing methods of [`crate::node::Node`].
pub(crate) fn fencing_unsupported<'a, T: Send + 'static>(addr: &str) -> NodeResult<'a, T> {
    let error = NodeError::Server(format!("{addr} cannot run fencing scripts"));
    Box::pin(async move { Err(error) })
}

#[cfg(test)]
mod tests;
