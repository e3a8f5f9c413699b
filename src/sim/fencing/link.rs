//! The fenced model's network: each node's counter keys next to its lock keys, and one
//! client's ordered link with a slow tail, serving the fenced scripts as the real node does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::time::{Instant, sleep};

use crate::cluster_replies::SlotRange;
use crate::error::NodeError;
use crate::fencing::FencedReply;
use crate::node::{AcquireReply, KeyState, Node, NodeResult};
use crate::server::ServerFacts;
use crate::sim::{NOT_A_CLUSTER, SimNode, TTL};

/// A counter has no TTL; the model stores it with an expiry far past the end of any run (a
/// run lasts seconds of simulated time). A crash that loses data wipes it like any key.
const NO_TTL: Duration = Duration::from_secs(1_000_000);

type Keys = std::collections::HashMap<Vec<u8>, (String, Instant)>;

fn counter_of(keys: &Keys, counter: &[u8]) -> u64 {
    keys.get(counter)
        .and_then(|(value, _)| value.parse().ok())
        .unwrap_or(0)
}

fn set_counter(keys: &mut Keys, counter: &[u8], value: u64, now: Instant) {
    keys.insert(counter.to_vec(), (value.to_string(), now + NO_TTL));
}

/// One client's ordered link to one node, as `SimLink` but with the delays of a network with
/// a tail: most messages take at most [`FAST_MS`], one in [`SLOW_PERCENT`] takes up to the
/// scenario's `max_delay_ms`. That makes races where one slow message spans another client's
/// whole round trip common enough to find. Messages are still applied in the order sent (as
/// on one TCP connection) and may be lost.
pub(super) struct FencedLink {
    pub(super) node: Arc<SimNode>,
    pub(super) order: tokio::sync::Mutex<()>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) slow_ms: u64,
    pub(super) loss_percent: u32,
}

impl std::fmt::Debug for FencedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FencedLink({})", self.node.name)
    }
}

const FAST_MS: u64 = 5;
const SLOW_PERCENT: u32 = 20;

impl FencedLink {
    fn delay(&self, rng: &mut StdRng) -> Duration {
        let max = if rng.random_ratio(SLOW_PERCENT, 100) {
            self.slow_ms
        } else {
            FAST_MS.min(self.slow_ms)
        };
        Duration::from_millis(rng.random_range(0..=max))
    }

    async fn call<T: Send>(
        &self,
        op: impl FnOnce(&mut Keys, Instant) -> T + Send,
    ) -> Result<T, NodeError> {
        let (to_node, to_client, lose_request, lose_reply) = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            (
                self.delay(&mut rng),
                self.delay(&mut rng),
                rng.random_ratio(self.loss_percent, 100),
                rng.random_ratio(self.loss_percent, 100),
            )
        };
        let order = self.order.lock().await;
        sleep(to_node).await;
        if lose_request {
            drop(order);
            return std::future::pending().await;
        }
        let result = self.node.apply(op);
        drop(order);
        sleep(to_client).await;
        if lose_reply {
            return std::future::pending().await;
        }
        result
    }

    /// The one-round variant's acquire: `SET NX PX`, then `INCR` the counter and return it.
    pub(super) async fn acquire_incr(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
    ) -> Result<FencedReply, NodeError> {
        let node = &self.node;
        self.call(move |keys, now| {
            if let Some((_, expires)) = keys.get(key) {
                return FencedReply::Held(Some(expires.duration_since(now)));
            }
            keys.insert(key.to_vec(), (token.to_string(), node.expiry(now, TTL)));
            let value = counter_of(keys, counter) + 1;
            set_counter(keys, counter, value, now);
            FencedReply::Granted(value)
        })
        .await
    }

    /// The any-majority variant's commit: `counter = max(counter, t)`, whoever holds the key.
    pub(super) async fn commit_unchecked(&self, counter: &[u8], t: u64) -> Result<bool, NodeError> {
        self.call(move |keys, now| {
            let value = counter_of(keys, counter).max(t);
            set_counter(keys, counter, value, now);
            true
        })
        .await
    }
}

/// The lock scripts as `SimLink` runs them, and the fencing scripts.
impl Node for FencedLink {
    fn addr(&self) -> &str {
        &self.node.name
    }

    fn connect(&self) -> NodeResult<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn acquire<'a>(
        &'a self,
        key: &'a [u8],
        token: &'a str,
        ttl: Duration,
    ) -> NodeResult<'a, AcquireReply> {
        Box::pin(self.call(move |keys, now| match keys.get(key) {
            Some((_, expires)) => AcquireReply::Held(Some(expires.duration_since(now))),
            None => {
                keys.insert(
                    key.to_vec(),
                    (token.to_string(), self.node.expiry(now, ttl)),
                );
                AcquireReply::Granted
            }
        }))
    }

    fn extend<'a>(&'a self, key: &'a [u8], token: &'a str, ttl: Duration) -> NodeResult<'a, bool> {
        Box::pin(self.call(move |keys, now| match keys.get_mut(key) {
            Some((holder, expires)) if holder == token => {
                *expires = self.node.expiry(now, ttl);
                true
            }
            _ => false,
        }))
    }

    fn release<'a>(&'a self, key: &'a [u8], token: &'a str) -> NodeResult<'a, bool> {
        Box::pin(self.call(move |keys, _| {
            let ours = keys.get(key).is_some_and(|(holder, _)| holder == token);
            if ours {
                keys.remove(key);
            }
            ours
        }))
    }

    fn inspect<'a>(&'a self, key: &'a [u8]) -> NodeResult<'a, KeyState> {
        Box::pin(self.call(move |keys, now| match keys.get(key) {
            Some((holder, expires)) => (Some(holder.clone()), Some(expires.duration_since(now))),
            None => (None, Some(Duration::ZERO)),
        }))
    }

    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        Some(std::sync::Arc::new(ServerFacts::simulated(&self.node.name)))
    }

    /// `acquire_fenced.lua`.
    fn acquire_fenced<'a>(
        &'a self,
        key: &'a [u8],
        counter: &'a [u8],
        token: &'a str,
        ttl: Duration,
    ) -> NodeResult<'a, FencedReply> {
        let node = &self.node;
        Box::pin(self.call(move |keys, now| {
            if let Some((_, expires)) = keys.get(key) {
                return FencedReply::Held(Some(expires.duration_since(now)));
            }
            keys.insert(key.to_vec(), (token.to_string(), node.expiry(now, ttl)));
            FencedReply::Granted(counter_of(keys, counter))
        }))
    }

    /// `fence_commit.lua`.
    fn fence_commit<'a>(
        &'a self,
        key: &'a [u8],
        counter: &'a [u8],
        token: &'a str,
        fencing_token: u64,
    ) -> NodeResult<'a, bool> {
        Box::pin(self.call(move |keys, now| {
            if keys.get(key).is_none_or(|(holder, _)| holder != token) {
                return false;
            }
            let value = counter_of(keys, counter).max(fencing_token);
            set_counter(keys, counter, value, now);
            true
        }))
    }

    fn read_fence<'a>(&'a self, counter: &'a [u8]) -> NodeResult<'a, u64> {
        Box::pin(self.call(move |keys, _| counter_of(keys, counter)))
    }
}
