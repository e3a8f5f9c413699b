//! What a user holds: a granted lock with its token and validity deadline, and what a
//! lock-info read reports.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Mode;
use crate::error::NodeError;

/// The random value that identifies one acquisition: 128 random bits (UUID v4). Every write
/// to a lock key is conditional on it, so nobody else's release or extend can touch our keys.
///
/// Kept inline as its 32 lowercase hex digits (the value stored in Redis): no heap
/// allocation per lock.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LockToken([u8; uuid::fmt::Simple::LENGTH]);

impl LockToken {
    pub(crate) fn new() -> Self {
        let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
        uuid::Uuid::new_v4().simple().encode_lower(&mut hex);
        LockToken(hex)
    }

    /// The token as stored in Redis.
    pub fn as_str(&self) -> &str {
        // Always ASCII hex (written by `encode_lower` only).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockToken({})", self.as_str())
    }
}

/// A lock granted by a quorum of voters.
///
/// It is valid until [`Lock::validity_deadline`], a monotonic-clock instant computed as
/// `start + ttl - drift` (the start is taken before the first vote was sent). Past that
/// instant another client may hold the resource: check [`Lock::is_valid`] before acting on
/// shared state, and prefer short critical sections or an auto-extending guard.
///
/// A `Lock` is not `Clone`: the value is the acquisition, and only its holder extends or
/// releases it, through the manager that made it (another manager refuses it).
///
/// ```compile_fail
/// # fn copy(lock: &redlock_cluster::Lock) {
/// let copy: redlock_cluster::Lock = lock.clone(); // a second owner: refused at compile time
/// # }
/// ```
pub struct Lock {
    pub(crate) resource: Box<str>,
    pub(crate) token: LockToken,
    pub(crate) ttl: Duration,
    pub(crate) deadline: tokio::time::Instant,
    /// Shared with every lock granted by the same voters (see `GrantedSets`).
    pub(crate) granted_by: Arc<[String]>,
    /// The fencing token, when the manager has fencing on (see `fencing`).
    pub(crate) fencing_token: Option<u64>,
    /// The id of the manager that made it (see `LockManager::check_owner`); 0 until the
    /// manager stamps it.
    pub(crate) owner: u64,
    /// The votes of the acquire round still on their way when it was decided (see
    /// [`LateVotes`]); `None` when every voter had answered.
    pub(crate) late: Option<Arc<LateVotes>>,
}

/// The votes of a won acquire round that were still on their way at the decision. Each is
/// sent as soon as its voter's connection opens (a fresh manager's connections open while
/// the round runs), so a lock holds a key on every reachable voter, not only on the first
/// quorum: a lock on two keys of three would lose its majority to a single lost key.
///
/// A late grant belongs to the lock: it is listed in [`Lock::granted_by`], and the lock's
/// release deletes it. A release can overtake it (both wait for the same connection to open),
/// so the release first marks the lock ended, and a grant that lands after that is deleted
/// as soon as it lands.
///
/// Small on purpose (it lives as long as the lock): the late grants are bits over the round's
/// voter list, which is shared between locks (see [`GrantedSets`]), and the release wakes the
/// task through an [`AtomicWaker`](futures::task::AtomicWaker).
#[derive(Debug)]
pub(crate) struct LateVotes {
    /// The round's voters (`host:port`), in voter order; shared, not copied.
    voters: Arc<[String]>,
    /// Bit `i`: voter `i`'s grant landed after the decision, while the lock stood. (Voters
    /// past the 64th are not listed; their late grants are still deleted by the release.)
    granted: std::sync::atomic::AtomicU64,
    /// Set by the lock's release: a grant that lands later is deleted at once.
    ended: std::sync::atomic::AtomicBool,
    /// Set by a successful extend: [`Lock::granted_by`] then names the voters that extended.
    superseded: std::sync::atomic::AtomicBool,
    /// Wakes the task awaiting the late votes when the lock is released.
    released: futures::task::AtomicWaker,
}

impl LateVotes {
    /// No late grant yet, over the round's `voters`.
    pub(crate) fn new(voters: Arc<[String]>) -> Self {
        LateVotes {
            voters,
            granted: std::sync::atomic::AtomicU64::new(0),
            ended: std::sync::atomic::AtomicBool::new(false),
            superseded: std::sync::atomic::AtomicBool::new(false),
            released: futures::task::AtomicWaker::new(),
        }
    }

    /// Record a grant from voter `i` that landed after the decision. Returns `false` when
    /// the lock was released meanwhile: the caller deletes that key. The order that matters
    /// is this check against the release round, which starts after `ended` is set (SeqCst on
    /// both sides).
    pub(crate) fn landed(&self, i: usize) -> bool {
        use std::sync::atomic::Ordering;
        if self.ended.load(Ordering::SeqCst) {
            return false;
        }
        if let Some(bit) = u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
            self.granted.fetch_or(bit, Ordering::SeqCst);
        }
        true
    }

    /// Resolves once the lock's release started: the late votes not sent by then need not be
    /// sent at all (the release is queued behind any that were).
    pub(crate) async fn until_ended(&self) {
        use std::sync::atomic::Ordering;
        futures::future::poll_fn(|cx| {
            self.released.register(cx.waker());
            if self.ended.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// Drop the waker [`LateVotes::until_ended`] registered: once the late-vote task is done,
    /// a waker kept here would keep that finished task's memory alive as long as the lock.
    pub(crate) fn done_waiting(&self) {
        drop(self.released.take());
    }

    fn end(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        self.released.wake();
    }

    fn granted(&self) -> impl Iterator<Item = &String> {
        let bits = self.granted.load(std::sync::atomic::Ordering::SeqCst);
        self.voters
            .iter()
            .take(64)
            .enumerate()
            .filter(move |(i, _)| bits & (1u64 << i) != 0)
            .map(|(_, voter)| voter)
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("resource", &self.resource)
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .field("remaining", &self.remaining())
            .field("granted_by", &self.granted_by)
            .field("fencing_token", &self.fencing_token)
            .finish()
    }
}

impl Lock {
    /// A copy for the crate's own bookkeeping (a guard's state, a background release), never
    /// handed to users as a second owner.
    pub(crate) fn duplicate(&self) -> Lock {
        Lock {
            resource: self.resource.clone(),
            token: self.token.clone(),
            ttl: self.ttl,
            deadline: self.deadline,
            granted_by: self.granted_by.clone(),
            fencing_token: self.fencing_token,
            owner: self.owner,
            late: self.late.clone(),
        }
    }

    /// From now on a late vote of the acquire round is deleted when it lands (the lock is
    /// being released).
    pub(crate) fn end_late_votes(&self) {
        if let Some(late) = &self.late {
            late.end();
        }
    }

    /// A successful extend replaced the list of voters that hold the lock.
    pub(crate) fn supersede_late_votes(&self) {
        if let Some(late) = &self.late {
            late.superseded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The locked resource's name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// This acquisition's token.
    pub fn token(&self) -> &LockToken {
        &self.token
    }

    /// The TTL of the last successful acquire or extend.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The instant after which the lock must be presumed lost.
    pub fn validity_deadline(&self) -> Instant {
        self.deadline.into_std()
    }

    /// Validity left now (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Whether validity is left now.
    pub fn is_valid(&self) -> bool {
        tokio::time::Instant::now() < self.deadline
    }

    /// The voters (`host:port`) that granted the lock or its last extension, in voter order
    /// for the voters that decided the round, followed by those whose grant landed after
    /// the decision (a slower voter's vote is still sent and belongs to the lock).
    pub fn granted_by(&self) -> Vec<String> {
        let mut voters = self.granted_by.to_vec();
        if let Some(late) = &self.late
            && !late.superseded.load(std::sync::atomic::Ordering::Relaxed)
        {
            for voter in late.granted() {
                if !voters.contains(voter) {
                    voters.push(voter.clone());
                }
            }
        }
        voters
    }

    /// The fencing token: strictly greater than the token of every earlier holder of this
    /// resource. Send it with every write to the protected resource, which must refuse a
    /// write whose token is lower than the highest it has seen. `None` unless the manager
    /// was built with [`LockConfig::fencing`](crate::LockConfig::fencing). An extension
    /// keeps the token.
    pub fn fencing_token(&self) -> Option<u64> {
        self.fencing_token
    }
}

/// One voter's view in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeLockState {
    /// The voter's address, `host:port`.
    pub node: String,
    /// The key this voter stores for the resource (binary-safe; lossy UTF-8 here).
    pub key: String,
    /// The token found there, if any.
    pub holder: Option<String>,
    /// Remaining time of the key: `None` for "no expiry" or when the node did not answer.
    pub remaining: Option<Duration>,
    /// Why the node did not answer, if it did not.
    pub error: Option<NodeError>,
}

/// Who holds a resource, decided by quorum (never by the first node to answer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The resource's name.
    pub resource: String,
    /// Whether one token is held by at least a quorum of voters.
    pub locked: bool,
    /// That token, when locked.
    pub holder: Option<String>,
    /// Whether the holder is the token the caller asked about.
    pub held_by_caller: bool,
    /// Validity a quorum still guarantees: the quorum-th largest remaining time minus drift.
    /// `None` when not locked (or already spent); `Some(Duration::MAX)` for keys without
    /// expiry.
    pub remaining: Option<Duration>,
    /// Votes needed.
    pub quorum: usize,
    /// Cluster or independent.
    pub mode: Mode,
    /// Whether two voter keys currently live on one master (fault tolerance is reduced: one
    /// node failure costs two votes). Safety still holds.
    pub voters_share_master: bool,
    /// Every voter's view, in voter order.
    pub nodes: Vec<NodeLockState>,
    /// With fencing on: the highest fencing token that a quorum of voters has recorded (the
    /// quorum-th largest counter among the answers; 0 when none is recorded, for example after
    /// the counters' retention passed). While a lock is held this is its token, and every lock
    /// granted after this read carries a greater one (under the assumptions in
    /// docs/design.md, "Fencing tokens"). `None` with fencing off, or when fewer than a quorum
    /// of voters answered the counter read.
    pub fencing_token: Option<u64>,
}

/// The voter lists of granted locks, shared: the locks granted by the same voters hold one
/// `Arc<[String]>` between them instead of a list of strings each. Bounded: past
/// [`GrantedSets::LIMIT`] distinct lists, new ones are handed out unshared.
#[derive(Debug, Default)]
pub(crate) struct GrantedSets {
    /// A std mutex: never held across an `.await`, only for a short scan.
    sets: std::sync::Mutex<Vec<Arc<[String]>>>,
}

impl GrantedSets {
    /// How many distinct lists are kept.
    const LIMIT: usize = 64;

    /// The shared list of `addrs`, in order.
    pub(crate) fn get<'a, I>(&self, addrs: I) -> Arc<[String]>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        let addrs = addrs.into_iter();
        let mut sets = crate::mutex::lock(&self.sets);
        if let Some(found) = sets
            .iter()
            .find(|set| set.iter().map(String::as_str).eq(addrs.clone()))
        {
            return found.clone();
        }
        let set: Arc<[String]> = addrs.map(str::to_string).collect();
        if sets.len() < Self::LIMIT {
            sets.push(set.clone());
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_digits_inline() {
        let (a, b) = (LockToken::new(), LockToken::new());
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
        assert_eq!(a.to_string(), a.as_str());
        assert_eq!(std::mem::size_of::<LockToken>(), 32);
    }

    #[test]
    fn granted_lists_are_shared() {
        let sets = GrantedSets::default();
        let one = sets.get(["a:1", "b:2"]);
        let two = sets.get(["a:1", "b:2"]);
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(&*one, ["a:1", "b:2"]);
        assert!(!Arc::ptr_eq(&one, &sets.get(["a:1", "c:3"])));
    }
}
