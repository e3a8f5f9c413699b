//! Fencing tokens by quorum (opt-in: [`LockConfig::fencing`](crate::LockConfig::fencing)):
//! every granted lock carries a `u64` strictly greater than the token of every earlier holder
//! of the resource, under the lock's own assumptions, and also when a voter restarts empty
//! (with `delayed_restart`), a voter fails over to a replica that lacks the latest counter,
//! or every voter is restarted in turn (the exact conditions are below).
//!
//! A lock's validity is only as good as its holder's clock and scheduler: a holder paused
//! past its deadline (GC, swap, `SIGSTOP`) wakes up believing it still holds the lock. A
//! fencing token lets the protected resource itself refuse such a holder: it remembers the
//! highest token it has seen and rejects any write that carries a lower one.
//!
//! # The construction: a hybrid logical clock in two rounds
//! Each voter keeps, next to its lock key, a counter key in the same hash slot
//! ([`fence_key`]), which expires [`fencing_retention`](crate::LockConfig::fencing_retention)
//! after the last commit that wrote it.
//! 1. **Acquire** (`scripts/acquire_fenced.lua`): the usual `SET NX PX`; a voter that grants
//!    also returns its counter and its clock (`TIME`, in microseconds).
//! 2. **Commit** (`scripts/fence_commit.lua`): with a quorum of grants, the client takes
//!    `t = max(1 + max(counters), max(times))` over the voters that granted, and sends
//!    `counter = max(counter, t)` to them; a voter writes it only while our lock key still
//!    holds our lock token.
//!
//! The lock is granted only if the voters that granted in round 1 **and** acknowledged round
//! 2 form a quorum, with validity left after both rounds (the clock starts before round 1).
//! Otherwise every key of the attempt is released; a counter write that landed is harmless,
//! since counters only grow.
//!
//! # Why it is enough
//! Let `S` be our granted-and-acknowledged quorum and `B` any later holder (one whose
//! acquisition started after ours was decided). `B`'s counted grants form a quorum, so they
//! include some voter `v` in `S`, where `B` read after our commit landed.
//! - **`v` kept our counter**: `B` reads a counter `>= t` and takes a token `> t`.
//! - **`v` lost it** (restarted empty, failed over to a replica without it, or the counter's
//!   retention ran out): that happened after our commit, and `v` granted `B` only after a gap
//!   `g`: the quarantine (`delayed_restart`), the failover time, or the retention. No token
//!   ever runs ahead of the fastest voter's clock (each token is either some voter's `TIME`,
//!   or one more than an earlier token, and a round takes more than a microsecond), so `B`'s
//!   time term, `v`'s clock at its grant, exceeds `t` as long as the voters' clocks disagree
//!   by less than `g`.
//!
//! The time term is why counters may expire: after the retention the clock alone is ahead of
//! every token the counter held. What still breaks it: a voter clock stepped back (or two
//! voters disagreeing) by more than the quarantine, the failover time or the retention; a
//! failover forced (`CLUSTER FAILOVER FORCE`/`TAKEOVER`) to a replica that lacks the counter,
//! within the clock offset of our commit; a voter restarted empty without `delayed_restart`
//! faster than the clock offset. See `docs/design.md`.
//!
//! # Why the cheaper variants are not
//! - One round, "`INCR` in the acquire script and take the max": grant sets `{1,2}`, then
//!   `{2,3}`, then `{1,3}` on fresh counters give tokens 1, 2, 2 — the third holder is not
//!   ahead of the second, because they met on voter 3, whose counter was still low.
//! - Two rounds, "commit to any majority": acknowledgements from voters that did not grant
//!   prove nothing about order, since a later holder may have been granted there before our
//!   write landed, and then met our grant set only on voters our write never reached.
//! - The counter alone (the construction before this one): a voter that loses its counter
//!   hands out a token again. The time alone: a voter whose clock is behind does.
//!
//! The model test (`sim::fencing`) finds all four failures and shows the construction holds
//! under message delays, loss, crashes with and without data loss, failovers, rolling
//! restarts, counter expiry and clock offsets within the bound.
//!
//! # Using the token
//! The protected resource must keep the highest token it has seen, durably, and compare
//! tokens atomically with the write. For a Redis store, a script like the one in
//! `examples/fencing.rs` (tokens are below 2^53, so Lua numbers hold them exactly):
//!
//! ```lua
//! -- KEYS[1]: the data, KEYS[2]: the highest token seen. ARGV[1]: token, ARGV[2]: value.
//! local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
//! if tonumber(ARGV[1]) < seen then return 0 end
//! redis.call('SET', KEYS[2], ARGV[1])
//! redis.call('SET', KEYS[1], ARGV[2])
//! return 1
//! ```

mod acked;
mod decide;
mod round;

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

#[cfg(test)]
mod tests;
