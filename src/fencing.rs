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

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use redis::Value;
use tokio::time::Instant;

use crate::config::Mode;
use crate::distributed_lock::RedisDistributedLock;
use crate::error::{LockError, NodeError, NodeFailure, NodeFailures};
use crate::flight::InFlight;
use crate::guard::LockGuard;
use crate::input::{Resource, Ttl};
use crate::lock::{Lock, LockToken};
use crate::node::{NodeResult, with_deadline};
use crate::quorum::{
    AcquireDecision, AcquireVote, collect_failures, decide_acquire, drift, quorum, unavailable,
    validity,
};
use crate::redis_node::{RedisNode, parse_acquire, parse_flag};
use crate::round::{Attempt, Round, spawn_release};
use crate::topology::{Voter, admit_votes};

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

/// The fencing scripts, compiled once per process. They are not preloaded with the lock
/// scripts: the first fenced acquire on a server costs one `NOSCRIPT` round trip more.
struct FencingScripts {
    acquire: redis::Script,
    commit: redis::Script,
}

static SCRIPTS: std::sync::LazyLock<FencingScripts> = std::sync::LazyLock::new(|| FencingScripts {
    acquire: redis::Script::new(include_str!("scripts/acquire_fenced.lua")),
    commit: redis::Script::new(include_str!("scripts/fence_commit.lua")),
});

/// A counter as stored: decimal digits (a missing counter reads as 0).
fn parse_counter(value: &Value) -> Result<u64, NodeError> {
    let bad = || NodeError::Protocol(format!("fencing counter {value:?} is not a u64"));
    match value {
        Value::Nil => Ok(0),
        Value::Int(n) => u64::try_from(*n).map_err(|_| bad()),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad),
        Value::SimpleString(s) => s.parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// The reply of `acquire_fenced.lua`: `{1, counter}` or, as the plain acquire, `{0, pttl}`.
fn parse_acquire_fenced(value: &Value) -> Result<FencedReply, NodeError> {
    match value {
        Value::Array(items) if items.len() == 2 && items[0] == Value::Int(1) => {
            parse_counter(&items[1]).map(FencedReply::Granted)
        }
        other => match parse_acquire(other)? {
            crate::node::AcquireReply::Held(left) => Ok(FencedReply::Held(left)),
            crate::node::AcquireReply::Granted => Err(NodeError::Protocol(format!(
                "fenced acquire script returned {other:?}"
            ))),
        },
    }
}

/// The fencing scripts on a real node; its [`crate::node::Node`] methods call these.
impl RedisNode {
    pub(crate) async fn run_acquire_fenced(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        ttl: Duration,
    ) -> Result<FencedReply, NodeError> {
        let ttl = ttl.as_millis().to_string();
        let reply = self
            .query(async |conn| {
                let mut invocation = SCRIPTS.acquire.key(key);
                invocation.key(counter).arg(token).arg(&ttl);
                invocation.invoke_async::<Value>(conn).await
            })
            .await?;
        parse_acquire_fenced(&reply)
    }

    pub(crate) async fn run_fence_commit(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        fencing_token: u64,
    ) -> Result<bool, NodeError> {
        let reply = self
            .query(async |conn| {
                let mut invocation = SCRIPTS.commit.key(key);
                invocation
                    .key(counter)
                    .arg(token)
                    .arg(fencing_token.to_string());
                invocation.invoke_async::<Value>(conn).await
            })
            .await?;
        parse_flag(&reply)
    }

    pub(crate) async fn run_read_fence(&self, counter: &[u8]) -> Result<u64, NodeError> {
        let reply = self
            .query(async |conn| {
                redis::cmd("GET")
                    .arg(counter)
                    .query_async::<Value>(conn)
                    .await
            })
            .await?;
        parse_counter(&reply)
    }
}

/// The decision of the commit round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommitDecision {
    /// A quorum of round-1 granters recorded the token, with validity left; `by` names them.
    Acquired { validity: Duration, by: Vec<String> },
    /// A quorum recorded it but the two rounds took too long.
    Expired,
    /// Too few granters recorded it.
    Unavailable {
        answered: usize,
        failures: NodeFailures,
    },
}

/// Decide the commit round from the answers of the voters that granted in round 1 (only
/// those are asked: an acknowledgement from any other voter would prove nothing). `voters`
/// is the number of all voters; `elapsed` runs from before round 1 to after round 2.
pub(crate) fn decide_commit(
    answers: &[(String, Result<bool, NodeError>)],
    voters: usize,
    ttl: Duration,
    elapsed: Duration,
    drift: Duration,
) -> CommitDecision {
    let by: Vec<String> = answers
        .iter()
        .filter(|(_, answer)| *answer == Ok(true))
        .map(|(node, _)| node.clone())
        .collect();
    if by.len() >= quorum(voters) {
        return match validity(ttl, elapsed, drift) {
            Some(validity) => CommitDecision::Acquired { validity, by },
            None => CommitDecision::Expired,
        };
    }
    let gone = NodeError::Server("the lock key was gone before the fencing token landed".into());
    CommitDecision::Unavailable {
        answered: by.len(),
        failures: NodeFailures(
            answers
                .iter()
                .filter_map(|(node, answer)| match answer {
                    Ok(true) => None,
                    Ok(false) => Some((node, &gone)),
                    Err(error) => Some((node, error)),
                })
                .map(|(node, error)| NodeFailure {
                    node: node.clone(),
                    error: error.clone(),
                })
                .collect(),
        ),
    }
}

/// The highest counter value that at least a quorum of `voters` has reached, from the values
/// read (`None` when fewer than a quorum were read): the quorum-th largest.
pub(crate) fn quorum_floor(mut values: Vec<u64>, voters: usize) -> Option<u64> {
    let needed = quorum(voters);
    if values.len() < needed {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(needed - 1).copied()
}

/// Releases an attempt's keys on every voter when dropped armed, as the plain acquire round
/// does: after a failed round, or when the caller drops the future between the rounds.
struct ReleaseOnDrop {
    resource: String,
    voters: Arc<[Voter]>,
    token: LockToken,
    /// How long each release is awaited: the TTL, so that it is always sent (a request
    /// dropped before it was written never is) and runs after a slow `SET` on its connection.
    patience: Duration,
    /// Counts the release for `LockManager::close`.
    flight: Arc<InFlight>,
    armed: bool,
}

impl ReleaseOnDrop {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let voters = self.voters.clone();
        let token = self.token.clone();
        let limit = self.patience;
        spawn_release(
            &self.flight,
            &self.resource,
            "a failed fenced attempt's keys",
            async move {
                join_all(
                    voters
                        .iter()
                        .map(|v| with_deadline(limit, v.node.release(&v.key, token.as_str()))),
                )
                .await;
            },
        );
    }
}

impl Round<'_> {
    /// Mark the topology stale as the other rounds do: after a redirect, or in cluster mode
    /// after any failed voter (a failover moves a slot to another address).
    fn note_fencing_failures<'e>(&self, mut errors: impl Iterator<Item = &'e NodeError>) {
        let stale = match self.mode {
            Mode::Cluster => errors.next().is_some(),
            _ => errors.any(|e| matches!(e, NodeError::Redirected(_))),
        };
        if stale {
            self.topology.mark_stale();
        }
    }

    /// One fenced acquire: the acquire round, then the commit round on the voters that
    /// granted (see the module docs). Keys of a failed or abandoned attempt are released on
    /// every voter in a spawned task.
    pub(crate) async fn acquire_fenced(&self, resource: Resource<'_>, ttl: Ttl) -> Attempt {
        let (config, voters, ttl) = (self.config, &self.voters, ttl.get());
        let connect_limit = config.connect_timeout_value();
        // Connections open before the clock starts, as for the plain acquire.
        let connected = join_all(
            voters
                .iter()
                .map(|v| with_deadline(connect_limit, v.node.connect())),
        )
        .await;
        // Only voters that may vote are asked: one vote per server (see `server::admit`).
        let connected = admit_votes(self.mode, config, voters, connected);
        let allowance = drift(ttl, config.drift_factor_value());
        let per_call = config
            .node_timeout_value()
            .min(ttl.saturating_sub(allowance));
        let counters: Vec<Vec<u8>> = voters
            .iter()
            .map(|v| fence_key(config.key_prefix_str(), &v.key))
            .collect();
        let token = LockToken::new();
        let cleanup = ReleaseOnDrop {
            resource: resource.as_str().to_string(),
            voters: voters.clone(),
            token: token.clone(),
            patience: ttl,
            flight: self.flight.clone(),
            armed: true,
        };
        let start = Instant::now();

        // Round 1: take the keys, read the counters.
        let replies = join_all(voters.iter().zip(&counters).zip(connected).map(
            |((voter, counter), connected)| {
                let token = &token;
                async move {
                    connected?;
                    with_deadline(
                        per_call,
                        voter
                            .node
                            .acquire_fenced(&voter.key, counter, token.as_str(), ttl),
                    )
                    .await
                }
            },
        ))
        .await;
        let votes: Vec<(String, AcquireVote)> = voters
            .iter()
            .zip(&replies)
            .map(|(voter, reply)| {
                let vote = match reply {
                    Ok(FencedReply::Granted(_)) => AcquireVote::Granted,
                    Ok(FencedReply::Held(left)) => AcquireVote::Held(*left),
                    Err(error) => AcquireVote::Failed(error.clone()),
                };
                (voter.node.addr().to_string(), vote)
            })
            .collect();
        self.note_fencing_failures(replies.iter().filter_map(|r| r.as_ref().err()));
        let elapsed = start.elapsed();
        match decide_acquire(&votes, ttl, elapsed, allowance) {
            AcquireDecision::Acquired { .. } => {}
            AcquireDecision::Contended { retry_hint } => return Attempt::Contended(retry_hint),
            AcquireDecision::Expired => {
                return Attempt::Failed(LockError::ValidityExpired { elapsed, ttl });
            }
            AcquireDecision::Unavailable { answered, failures } => {
                return Attempt::Failed(unavailable(voters.len(), answered, failures));
            }
        }

        // Round 2: record t = 1 + max(counters) on the voters that granted.
        let granted: Vec<(usize, u64)> = replies
            .iter()
            .enumerate()
            .filter_map(|(i, reply)| match reply {
                Ok(FencedReply::Granted(counter)) => Some((i, *counter)),
                _ => None,
            })
            .collect();
        let Some(fencing_token) = granted
            .iter()
            .map(|(_, counter)| *counter)
            .max()
            .and_then(|max| max.checked_add(1))
        else {
            // Only a counter at u64::MAX gets here: no token can be greater.
            let full = NodeError::Protocol("the fencing counter is at u64::MAX".into());
            let names: Vec<String> = voters.iter().map(|v| v.node.addr().to_string()).collect();
            return Attempt::Failed(unavailable(
                voters.len(),
                0,
                collect_failures(names.iter().map(|n| (n, &full))),
            ));
        };
        let left = ttl.saturating_sub(allowance).saturating_sub(elapsed);
        let acks = join_all(granted.iter().map(|(i, _)| {
            let (voter, counter, token) = (&voters[*i], &counters[*i], &token);
            async move {
                let ack = with_deadline(
                    per_call.min(left),
                    voter
                        .node
                        .fence_commit(&voter.key, counter, token.as_str(), fencing_token),
                )
                .await;
                (voter.node.addr().to_string(), ack)
            }
        }))
        .await;
        let elapsed = start.elapsed();
        self.note_fencing_failures(acks.iter().filter_map(|(_, a)| a.as_ref().err()));
        let decision = decide_commit(&acks, voters.len(), ttl, elapsed, allowance);
        tracing::debug!(
            resource = resource.as_str(),
            fencing_token,
            ?elapsed,
            ?decision,
            "fenced acquire"
        );
        match decision {
            CommitDecision::Acquired { by, .. } => {
                cleanup.disarm();
                Attempt::Acquired(Lock {
                    resource: resource.as_str().into(),
                    token,
                    ttl,
                    deadline: start
                        .checked_add(ttl.saturating_sub(allowance))
                        .unwrap_or(start),
                    granted_by: self.topology.granted_by(by.iter().map(String::as_str)),
                    fencing_token: Some(fencing_token),
                })
            }
            CommitDecision::Expired => Attempt::Failed(LockError::ValidityExpired { elapsed, ttl }),
            CommitDecision::Unavailable { answered, failures } => {
                Attempt::Failed(unavailable(voters.len(), answered, failures))
            }
        }
    }

    /// The counter value a quorum of voters has reached ([`quorum_floor`]), for
    /// [`crate::LockInfo::fencing_token`]; `None` when fewer than a quorum answered.
    pub(crate) async fn fence_floor(&self) -> Option<u64> {
        let limit = self.config.node_timeout_value();
        let prefix = self.config.key_prefix_str();
        let reads = join_all(self.voters.iter().map(|v| async move {
            let counter = fence_key(prefix, &v.key);
            with_deadline(limit, v.node.read_fence(&counter)).await
        }))
        .await;
        let reads = admit_votes(self.mode, self.config, &self.voters, reads);
        self.note_fencing_failures(reads.iter().filter_map(|r| r.as_ref().err()));
        quorum_floor(reads.into_iter().flatten().collect(), self.voters.len())
    }
}

impl LockGuard {
    /// The lock's fencing token ([`Lock::fencing_token`]); `None` unless the manager has
    /// fencing on. Extensions keep it.
    pub fn fencing_token(&self) -> Option<u64> {
        self.lock().fencing_token()
    }
}

impl RedisDistributedLock {
    /// The fencing token of this handle's current acquisition ([`Lock::fencing_token`]):
    /// `None` when the handle holds nothing or its manager has fencing off. Send it with every
    /// write to the protected resource.
    pub fn fencing_token(&self) -> Option<u64> {
        self.lock().and_then(Lock::fencing_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
