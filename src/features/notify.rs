//! Notified waits: a waiter retries when a release of its resource is noticed, or when its
//! backoff timer fires, whichever comes first.
//!
//! The release script publishes the released token on a sharded channel derived from the
//! voter's key ([`channel_of`]: the key plus a fixed suffix, so the channel keeps the key's
//! hash tag and lives in the key's slot, on the master that ran the script). A manager keeps
//! one RESP3 connection per voter for these notices, opened when its first acquire has to
//! wait, and subscribes to a resource's channels while it has waiters for that resource.
//!
//! A notice is only a hint: the waiter runs an ordinary vote, which decides. Anything that goes
//! wrong here (no Redis 7, a killed subscriber connection, a lost notice, a topology change)
//! only means the waiter retries on its backoff timer, as without notices; no waiter ever
//! awaits the network here.
//!
//! Fairness within a manager: the waiters of a resource form a FIFO queue and a notice wakes
//! only the longest-waiting one (the others keep their backoff timers, so everyone still retries
//! at least once per backoff cap). A notice counts once a quorum of voters published it (a
//! single voter's key going away does not free the lock), and a release made by this manager
//! wakes the queue directly, without waiting for the notices. New acquires of a resource that
//! already has waiters queue behind them instead of barging in (see `LockManager`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::mutex::lock;
use std::time::Duration;

use rand::RngExt;
use tokio::sync::Notify;

use crate::engine::quorum::quorum;
use crate::topology::Voter;

mod subscriber;

use subscriber::Subscriber;

/// Appended to a voter's key to name its release channel. `release.lua` appends the same.
const CHANNEL_SUFFIX: &[u8] = b":released";

/// How many recently handled tokens each queue remembers, to drop the late notices of a
/// release that already woke a waiter.
const RECENT_TOKENS: usize = 16;

/// Upper bound of the random pause after a notice from another client (2 ms): long next to
/// one vote on a LAN, short next to any backoff.
const NOTICE_SPREAD_NANOS: u64 = 2_000_000;

/// The channel a release of `key` publishes on: the key with a fixed suffix. Appending a fixed
/// suffix is injective, and the suffix has no `{`, so the channel hashes to the key's slot
/// (Redis hashes the first `{...}` tag, which the key already has in cluster mode).
pub(crate) fn channel_of(key: &[u8]) -> Vec<u8> {
    let mut channel = Vec::with_capacity(key.len() + CHANNEL_SUFFIX.len());
    channel.extend_from_slice(key);
    channel.extend_from_slice(CHANNEL_SUFFIX);
    channel
}

/// The release notices of one manager: its wait queues and its subscriber connections.
pub(crate) struct Notifier {
    shared: Arc<Shared>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

struct Shared {
    /// Bound of every subscriber call (connecting, `SSUBSCRIBE`, `SUNSUBSCRIBE`).
    timeout: Duration,
    state: Mutex<State>,
    /// One subscriber per voter address, created on first use and kept.
    subscribers: Mutex<HashMap<String, Arc<Subscriber>>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// The wait queue of each resource that has waiters.
    queues: HashMap<String, Queue>,
    /// Which resource each subscribed channel belongs to.
    channels: HashMap<Vec<u8>, String>,
}

struct Queue {
    /// Oldest first.
    waiters: VecDeque<Slot>,
    /// `(address, channel)` of every voter, as of the first waiter.
    voters: Vec<(String, Vec<u8>)>,
    /// Votes needed to win the resource: a release noticed on fewer voters frees nothing.
    quorum: usize,
    /// Voters (indexes into `voters`) that published a release since the last wake.
    freed: HashSet<usize>,
    /// Tokens whose release already woke a waiter.
    recent: VecDeque<String>,
}

struct Slot {
    id: u64,
    notify: Arc<Notify>,
    /// Woken and not yet back from the wait: if it leaves now, the wake passes on.
    woken: bool,
    /// The wake came from another client's release, whose other waiters were woken too.
    spread: bool,
}

impl Queue {
    /// Wake the longest-waiting waiter (a stored permit if it is not waiting right now);
    /// `spread` when other clients' waiters hear the same notice.
    fn wake_front(&mut self, token: &str, spread: bool) {
        self.freed.clear();
        if self.recent.len() == RECENT_TOKENS {
            self.recent.pop_front();
        }
        self.recent.push_back(token.to_string());
        if let Some(front) = self.waiters.front_mut() {
            front.woken = true;
            front.spread = spread;
            front.notify.notify_one();
        }
    }
}

impl Notifier {
    /// A notifier whose network calls are each bounded by `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Notifier {
            shared: Arc::new(Shared {
                timeout,
                state: Mutex::new(State::default()),
                subscribers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether some acquire of this manager is waiting for `resource`.
    pub(crate) fn has_waiters(&self, resource: &str) -> bool {
        lock(&self.shared.state).queues.contains_key(resource)
    }

    /// Join the back of `resource`'s queue; the first waiter subscribes to the channels of
    /// `voters` (in the background).
    pub(crate) fn join(&self, resource: &str, voters: &[Voter]) -> Waiter {
        let notify = Arc::new(Notify::new());
        let id = {
            let mut state = lock(&self.shared.state);
            let id = state.next_id;
            state.next_id += 1;
            if !state.queues.contains_key(resource) {
                let mut subscribers = lock(&self.shared.subscribers);
                let mut subscribed = Vec::with_capacity(voters.len());
                for voter in voters {
                    // Nodes without connection settings (the simulation's) publish nothing.
                    let Some(info) = voter.node.subscriber_info() else {
                        continue;
                    };
                    let addr = voter.node.addr().to_string();
                    subscribers.entry(addr.clone()).or_insert_with(|| {
                        Arc::new(Subscriber::new(
                            addr.clone(),
                            info,
                            Arc::downgrade(&self.shared),
                        ))
                    });
                    let channel = channel_of(&voter.key);
                    state.channels.insert(channel.clone(), resource.to_string());
                    subscribed.push((addr, channel));
                }
                drop(subscribers);
                state.queues.insert(
                    resource.to_string(),
                    Queue {
                        waiters: VecDeque::new(),
                        quorum: quorum(voters.len()),
                        voters: subscribed,
                        freed: HashSet::new(),
                        recent: VecDeque::new(),
                    },
                );
            }
            if let Some(queue) = state.queues.get_mut(resource) {
                queue.waiters.push_back(Slot {
                    id,
                    notify: notify.clone(),
                    woken: false,
                    spread: false,
                });
            }
            id
        };
        let waiter = Waiter {
            shared: self.shared.clone(),
            resource: resource.to_string(),
            id,
            notify,
        };
        waiter.subscribe();
        waiter
    }

    /// This manager released `token`'s lock on `resource`: wake the resource's next waiter now
    /// rather than when the notices arrive.
    pub(crate) fn released(&self, resource: &str, token: &str) {
        let mut state = lock(&self.shared.state);
        if let Some(queue) = state.queues.get_mut(resource)
            && !queue.recent.iter().any(|t| t == token)
        {
            queue.wake_front(token, false);
        }
    }
}

impl Shared {
    /// A release of `token`'s lock was published on `channel` by the voter at `addr`.
    fn on_notice(&self, addr: &str, channel: &[u8], token: &str) {
        let mut state = lock(&self.state);
        let Some(resource) = state.channels.get(channel).cloned() else {
            return;
        };
        let Some(queue) = state.queues.get_mut(&resource) else {
            return;
        };
        if queue.recent.iter().any(|t| t == token) {
            return;
        }
        let Some(index) = queue
            .voters
            .iter()
            .position(|(a, c)| a == addr && c.as_slice() == channel)
        else {
            return;
        };
        queue.freed.insert(index);
        // Voters freed by different tokens count together: after a split vote, each loser
        // releases its own keys, and together they free the resource.
        if queue.freed.len() >= queue.quorum {
            queue.wake_front(token, true);
        }
    }

    /// Whether the voter at `addr` should be subscribed to `channel`.
    fn wants(&self, addr: &str, channel: &[u8]) -> bool {
        let state = lock(&self.state);
        state
            .channels
            .get(channel)
            .and_then(|resource| state.queues.get(resource))
            .is_some_and(|queue| {
                queue
                    .voters
                    .iter()
                    .any(|(a, c)| a == addr && c.as_slice() == channel)
            })
    }

    fn subscriber(&self, addr: &str) -> Option<Arc<Subscriber>> {
        lock(&self.subscribers).get(addr).cloned()
    }

    /// Bring the subscriptions of `voters` in line with the queues, in the background.
    fn sync_all(&self, voters: &[(String, Vec<u8>)]) {
        for (addr, channel) in voters {
            if let Some(subscriber) = self.subscriber(addr) {
                subscriber.ensure(channel, self.timeout);
            }
        }
    }
}

/// One acquire's place in its resource's wait queue, from its first contended attempt until
/// it returns. Dropping it leaves the queue (passing on a wake it did not use); the last waiter
/// out unsubscribes.
pub(crate) struct Waiter {
    shared: Arc<Shared>,
    resource: String,
    id: u64,
    notify: Arc<Notify>,
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("resource", &self.resource)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Waiter {
    /// Make sure the resource's channels are subscribed (or being subscribed); after a dropped
    /// subscriber connection this resubscribes on the next wait.
    fn subscribe(&self) {
        let voters = {
            let state = lock(&self.shared.state);
            match state.queues.get(&self.resource) {
                Some(queue) => queue.voters.clone(),
                None => return,
            }
        };
        self.shared.sync_all(&voters);
    }

    /// Wait until `delay` has passed or this waiter is woken by a release, whichever comes
    /// first. Never longer than `delay`.
    pub(crate) async fn wait(&mut self, delay: Duration) {
        self.subscribe();
        let start = tokio::time::Instant::now();
        if tokio::time::timeout(delay, self.notify.notified())
            .await
            .is_err()
        {
            return;
        }
        let spread = {
            let mut state = lock(&self.shared.state);
            match state
                .queues
                .get_mut(&self.resource)
                .and_then(|q| q.waiters.iter_mut().find(|s| s.id == self.id))
            {
                Some(slot) => {
                    slot.woken = false;
                    std::mem::take(&mut slot.spread)
                }
                None => false,
            }
        };
        if spread {
            // Every other client's first waiter heard this notice too: a small random
            // spread lets one of them win cleanly instead of all splitting the votes.
            let left = delay.saturating_sub(start.elapsed());
            let nanos = rand::rng().random_range(0..=NOTICE_SPREAD_NANOS);
            tokio::time::sleep(Duration::from_nanos(nanos).min(left)).await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        let Some(queue) = state.queues.get_mut(&self.resource) else {
            return;
        };
        let slot = queue
            .waiters
            .iter()
            .position(|s| s.id == self.id)
            .and_then(|i| queue.waiters.remove(i));
        if !queue.waiters.is_empty() {
            // A wake this waiter did not use belongs to the next one.
            if slot.is_some_and(|s| s.woken)
                && let Some(front) = queue.waiters.front_mut()
            {
                front.woken = true;
                front.notify.notify_one();
            }
            return;
        }
        let Some(queue) = state.queues.remove(&self.resource) else {
            return;
        };
        for (_, channel) in &queue.voters {
            state.channels.remove(channel);
        }
        drop(state);
        self.shared.sync_all(&queue.voters);
    }
}

#[cfg(test)]
mod tests;
