//! The fenced model's network: each node's counter keys next to its lock keys, and one
//! client's ordered link with a slow tail, serving the fenced scripts as the real node does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::error::NodeError;
use redis::Value;

use crate::adapter::scripts::SCRIPTS;
use crate::node::{FencedReply, Node, NodeResult, ScriptCall, ScriptReply, SlotRange};
use crate::server::ServerFacts;
use crate::sim::node::{answered, deliver, lock_script, pttl};
use crate::sim::{NOT_A_CLUSTER, SimNode, TTL};

/// The broken variants' counters have no TTL; the model stores them with an expiry far past
/// the end of any run (a run lasts seconds of simulated time). A crash that loses data wipes
/// them like any key.
const NO_TTL: Duration = Duration::from_secs(1_000_000);

/// What every node's clock read (`TIME`, microseconds since the Unix epoch) at the start of a
/// run, before its offset: late 2023.
const WALL_AT_EPOCH_US: u64 = 1_700_000_000_000_000;

/// Which terms of the token the nodes report: the engine runs unchanged, so its construction
/// is the hybrid clock; the others are what it degrades to when a node reports a term as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Terms {
    /// Counter and clock: the crate's construction.
    Both,
    /// The counter alone (the clock reads 0): the construction before the clock term.
    CounterOnly,
    /// The clock alone (the counter reads 0).
    TimeOnly,
}

type Keys = std::collections::HashMap<Vec<u8>, (String, Instant)>;

fn counter_of(keys: &Keys, counter: &[u8]) -> u64 {
    keys.get(counter)
        .and_then(|(value, _)| value.parse().ok())
        .unwrap_or(0)
}

fn set_counter(keys: &mut Keys, counter: &[u8], value: u64, expires: Instant) {
    keys.insert(counter.to_vec(), (value.to_string(), expires));
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
    /// How far this node's clock is ahead of the true time (negative: behind), in us.
    pub(super) clock_offset_us: i64,
    /// Which terms of the token the node reports.
    pub(super) terms: Terms,
    /// Whether this client sees the node's restarts (its uptime and persistence), so that
    /// `delayed_restart` can quarantine it; `false` models a failover to another address
    /// that the client never knew as a replica.
    pub(super) sees_restarts: bool,
}

impl std::fmt::Debug for FencedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FencedLink({})", self.node.name)
    }
}

const FAST_MS: u64 = 5;
const SLOW_PERCENT: u32 = 20;

impl FencedLink {
    /// The node's clock at `now` (`TIME` in microseconds): it runs at the node's clock rate,
    /// from its offset.
    fn time_us(&self, now: Instant) -> u64 {
        let since = now
            .duration_since(self.node.epoch)
            .mul_f64(self.node.clock_rate);
        let wall = WALL_AT_EPOCH_US.saturating_add(since.as_micros() as u64);
        wall.saturating_add_signed(self.clock_offset_us)
    }

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
            let mut rng = crate::mutex::lock(&self.rng);
            (
                self.delay(&mut rng),
                self.delay(&mut rng),
                rng.random_ratio(self.loss_percent, 100),
                rng.random_ratio(self.loss_percent, 100),
            )
        };
        let lost = (lose_request, lose_reply);
        deliver(&self.node, &self.order, (to_node, to_client), lost, op).await
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
            set_counter(keys, counter, value, now + NO_TTL);
            FencedReply::Granted {
                counter: value,
                time: 0,
            }
        })
        .await
    }

    /// The any-majority variant's commit: `counter = max(counter, t)`, whoever holds the key.
    pub(super) async fn commit_unchecked(&self, counter: &[u8], t: u64) -> Result<bool, NodeError> {
        self.call(move |keys, now| {
            let value = counter_of(keys, counter).max(t);
            set_counter(keys, counter, value, now + NO_TTL);
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

    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        Some(std::sync::Arc::new(if self.sees_restarts {
            self.node.facts()
        } else {
            ServerFacts::simulated(&self.node.name)
        }))
    }

    /// The fencing scripts, as the real node runs them (by the registry's script), with the
    /// replies the real scripts give, so that the real parsers read them.
    fn run<'a>(&'a self, call: ScriptCall<'a>) -> NodeResult<'a, ScriptReply> {
        let ScriptCall {
            script, keys, args, ..
        } = call;
        Box::pin(async move {
            let text = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
            let number = |i: usize| text(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
            let (key, counter) = (keys.first().copied(), keys.get(1).copied());
            let hash = script.get_hash();
            let reply = if hash == SCRIPTS.fence_acquire.get_hash() {
                let (key, counter) = (key.unwrap_or_default(), counter.unwrap_or_default());
                let ttl = Duration::from_millis(number(1));
                match self
                    .acquire_fenced(key, counter, &text(0).unwrap_or_default(), ttl)
                    .await?
                {
                    FencedReply::Granted { counter, time } => {
                        let mut reply = vec![Value::Int(1), bulk(counter)];
                        reply.extend(time_parts(time));
                        Value::Array(reply)
                    }
                    FencedReply::Held(left) => {
                        let left = pttl(left.unwrap_or_default());
                        Value::Array(vec![Value::Int(0), left])
                    }
                }
            } else if hash == SCRIPTS.fence_commit.get_hash() {
                let (key, counter) = (key.unwrap_or_default(), counter.unwrap_or_default());
                let fence = (number(1), Duration::from_millis(number(2)));
                let token = text(0).unwrap_or_default();
                let done = self.fence_commit(key, counter, &token, fence).await?;
                Value::Int(i64::from(done))
            } else if hash == SCRIPTS.fence_read.get_hash() {
                let counter = key.unwrap_or_default();
                let (value, time) = self.read_fence(counter).await?;
                let mut reply = vec![bulk(value)];
                reply.extend(time_parts(time));
                Value::Array(reply)
            } else {
                // The lock scripts, as `SimLink` runs them.
                let node = &self.node;
                let reply =
                    self.call(move |map, now| lock_script(node, script, keys, args, map, now));
                return answered(reply.await?);
            };
            Ok((reply, None))
        })
    }
}

/// A counter as the scripts return it.
fn bulk(value: u64) -> Value {
    Value::BulkString(value.to_string().into_bytes())
}

/// `TIME`'s two parts (seconds, microseconds) of a time in microseconds.
fn time_parts(us: u64) -> [Value; 2] {
    [bulk(us / 1_000_000), bulk(us % 1_000_000)]
}

/// The fencing scripts' work on the model's keys.
impl FencedLink {
    /// `acquire_fenced.lua`.
    pub(super) async fn acquire_fenced(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        ttl: Duration,
    ) -> Result<FencedReply, NodeError> {
        let node = &self.node;
        self.call(move |keys, now| {
            if let Some((_, expires)) = keys.get(key) {
                return FencedReply::Held(Some(expires.duration_since(now)));
            }
            keys.insert(key.to_vec(), (token.to_string(), node.expiry(now, ttl)));
            let (counter, time) = (counter_of(keys, counter), self.time_us(now));
            match self.terms {
                Terms::Both => FencedReply::Granted { counter, time },
                Terms::CounterOnly => FencedReply::Granted { counter, time: 0 },
                Terms::TimeOnly => FencedReply::Granted { counter: 0, time },
            }
        })
        .await
    }

    /// `fence_commit.lua`.
    async fn fence_commit(
        &self,
        key: &[u8],
        counter: &[u8],
        token: &str,
        (fencing_token, retention): (u64, Duration),
    ) -> Result<bool, NodeError> {
        let node = &self.node;
        self.call(move |keys, now| {
            if keys.get(key).is_none_or(|(holder, _)| holder != token) {
                return false;
            }
            let value = counter_of(keys, counter).max(fencing_token);
            set_counter(keys, counter, value, node.expiry(now, retention));
            true
        })
        .await
    }

    /// `fence_read.lua`: the counter and the clock.
    async fn read_fence(&self, counter: &[u8]) -> Result<(u64, u64), NodeError> {
        self.call(move |keys, now| (counter_of(keys, counter), self.time_us(now)))
            .await
    }
}
