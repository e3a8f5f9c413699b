//! The simulated network: one in-memory Redis master per voter (with its clock rate and its
//! crashes), one client's ordered, lossy link to it, and the seeds a client's manager starts
//! from.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use redis::Value;
use tokio::time::{Instant, sleep};

use crate::adapter::scripts::SCRIPTS;
use crate::error::NodeError;
use crate::node::{Node, NodeResult, ScriptCall, ScriptReply, SharedNode, SlotRange, UnservedSlot};
use crate::server::ServerFacts;
use crate::topology::Seeds;

use super::Crash;

#[derive(Default)]
pub(super) struct NodeData {
    pub(super) keys: HashMap<Vec<u8>, (String, Instant)>,
    pub(super) wiped: Vec<bool>,
}

/// The shared state of one simulated Redis master.
pub(super) struct SimNode {
    pub(super) name: String,
    pub(super) clock_rate: f64,
    pub(super) crashes: Vec<Crash>,
    pub(super) epoch: Instant,
    pub(super) data: Mutex<NodeData>,
}

impl SimNode {
    /// Apply `op` at `now` if the node is up, wiping the data of crashes that lose it.
    pub(super) fn apply<T>(
        &self,
        op: impl FnOnce(&mut HashMap<Vec<u8>, (String, Instant)>, Instant) -> T,
    ) -> Result<T, NodeError> {
        let now = Instant::now();
        let since = now.duration_since(self.epoch).as_millis() as u64;
        let mut data = crate::mutex::lock(&self.data);
        data.wiped.resize(self.crashes.len(), false);
        for (i, crash) in self.crashes.iter().enumerate() {
            if crash.loses_data && since >= crash.at_ms && !data.wiped[i] {
                data.wiped[i] = true;
                data.keys.clear();
            }
            if (crash.at_ms..crash.at_ms + crash.down_ms).contains(&since) {
                return Err(NodeError::Connect("simulated node is down".into()));
            }
        }
        data.keys.retain(|_, (_, expires)| *expires > now);
        Ok(op(&mut data.keys, now))
    }

    /// What the node says about itself: a node whose crashes lose data runs without AOF
    /// (the others with `appendfsync always`), and its uptime restarts when it comes back
    /// from a crash, measured on its own clock.
    pub(super) fn facts(&self) -> ServerFacts {
        let now = Instant::now();
        let since = now.duration_since(self.epoch).as_millis() as u64;
        let mut facts = ServerFacts::simulated(&self.name);
        facts.read_at = now;
        if self.crashes.iter().any(|c| c.loses_data) {
            facts.aof_enabled = false;
            facts.appendfsync = Some("everysec".into());
        }
        let back = self
            .crashes
            .iter()
            .filter(|c| c.at_ms <= since)
            .map(|c| c.at_ms + c.down_ms)
            .max();
        if let Some(back) = back {
            let up = Duration::from_millis(since.saturating_sub(back));
            facts.uptime = up.mul_f64(self.clock_rate);
        }
        facts
    }

    pub(super) fn expiry(&self, now: Instant, ttl: Duration) -> Instant {
        now + ttl.div_f64(self.clock_rate)
    }
}

/// One client's ordered link to one node: requests apply in the order they were sent (as on
/// one TCP connection), each after a random delay, and requests or replies may be lost.
pub(super) struct SimLink {
    pub(super) node: Arc<SimNode>,
    pub(super) order: tokio::sync::Mutex<()>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) max_delay: Duration,
    pub(super) loss_percent: u32,
    pub(super) hung: bool,
}

impl fmt::Debug for SimLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimLink({})", self.node.name)
    }
}

impl SimLink {
    async fn call<T: Send>(
        &self,
        op: impl FnOnce(&mut HashMap<Vec<u8>, (String, Instant)>, Instant) -> T + Send,
    ) -> Result<T, NodeError> {
        let (to_node, to_client, lose_request, lose_reply) = {
            let mut rng = crate::mutex::lock(&self.rng);
            let max = self.max_delay.as_millis() as u64;
            (
                Duration::from_millis(rng.random_range(0..=max)),
                Duration::from_millis(rng.random_range(0..=max)),
                rng.random_ratio(self.loss_percent, 100),
                rng.random_ratio(self.loss_percent, 100),
            )
        };
        if self.hung {
            return std::future::pending().await;
        }
        let lost = (lose_request, lose_reply);
        deliver(&self.node, &self.order, (to_node, to_client), lost, op).await
    }
}

impl Node for SimLink {
    fn addr(&self) -> &str {
        &self.node.name
    }

    fn connect(&self) -> NodeResult<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn run<'a>(&'a self, call: ScriptCall<'a>) -> NodeResult<'a, ScriptReply> {
        let node = &self.node;
        let ScriptCall {
            script, keys, args, ..
        } = call;
        Box::pin(async move {
            let reply = self.call(move |map, now| lock_script(node, script, keys, args, map, now));
            answered(reply.await?)
        })
    }

    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server(NOT_A_CLUSTER.into())) })
    }

    // Discovery reads only these, answered at once outside the lossy link (the model tests
    // the votes): each simulated node is its own standalone server.
    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        Some(std::sync::Arc::new(self.node.facts()))
    }
}

/// One request over an ordered, lossy link to `node`: it applies after `to_node`, in the order
/// the requests were sent (as on one TCP connection, `order`), and its reply arrives
/// `to_client` later; a lost request or reply never answers.
pub(super) async fn deliver<T>(
    node: &SimNode,
    order: &tokio::sync::Mutex<()>,
    (to_node, to_client): (Duration, Duration),
    (lose_request, lose_reply): (bool, bool),
    op: impl FnOnce(&mut HashMap<Vec<u8>, (String, Instant)>, Instant) -> T,
) -> Result<T, NodeError> {
    let order = order.lock().await;
    sleep(to_node).await;
    if lose_request {
        drop(order);
        return std::future::pending().await;
    }
    let result = node.apply(op);
    drop(order);
    sleep(to_client).await;
    if lose_reply {
        return std::future::pending().await;
    }
    result
}

/// The lock scripts on the model's keys, with the replies the real scripts give, so that the
/// real parsers read them; `None` for any other script.
pub(super) fn lock_script(
    node: &SimNode,
    script: &redis::Script,
    keys: &[&[u8]],
    args: &[&[u8]],
    map: &mut HashMap<Vec<u8>, (String, Instant)>,
    now: Instant,
) -> Option<Value> {
    let key = keys.first().copied().unwrap_or_default();
    let token = args
        .first()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    let ttl = args
        .get(1)
        .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    let ours = map.get(key).is_some_and(|(holder, _)| *holder == token);
    let hash = script.get_hash();
    Some(if hash == SCRIPTS.acquire.get_hash() {
        match map.get(key) {
            Some((_, expires)) => Value::Array(vec![Value::Int(0), pttl(*expires - now)]),
            None => {
                map.insert(key.to_vec(), (token, node.expiry(now, ttl)));
                Value::Array(vec![Value::Int(1), Value::Int(0)])
            }
        }
    } else if hash == SCRIPTS.extend.get_hash() {
        if let (true, Some((_, expires))) = (ours, map.get_mut(key)) {
            *expires = node.expiry(now, ttl);
        }
        Value::Int(i64::from(ours))
    } else if hash == SCRIPTS.release.get_hash() {
        if ours {
            map.remove(key);
        }
        Value::Int(i64::from(ours))
    } else if hash == SCRIPTS.inspect.get_hash() {
        match map.get(key) {
            Some((holder, expires)) => Value::Array(vec![
                Value::BulkString(holder.clone().into_bytes()),
                pttl(*expires - now),
            ]),
            None => Value::Array(vec![Value::Nil, Value::Int(-2)]),
        }
    } else {
        return None;
    })
}

/// A remaining time as `PTTL` gives it, rounded up to a millisecond.
pub(super) fn pttl(left: Duration) -> Value {
    Value::Int(i64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i64::MAX))
}

/// A script's reply from the model, or why it has none.
pub(super) fn answered(reply: Option<Value>) -> Result<(Value, Option<i64>), NodeError> {
    reply
        .map(|value| (value, None))
        .ok_or_else(|| NodeError::Server("the model does not run this script".into()))
}

pub(super) const NOT_A_CLUSTER: &str = "ERR This instance has cluster support disabled";

/// One client's links, handed to its manager as the configured seeds.
#[derive(Debug)]
pub(super) struct SimSeeds(pub(super) Vec<SharedNode>);

impl Seeds for SimSeeds {
    fn seeds(&self) -> &[SharedNode] {
        &self.0
    }

    fn master(&self, _: &dyn Node, host: &str, port: u16) -> SharedNode {
        Arc::new(UnservedSlot {
            label: format!("{host}:{port}"),
        })
    }
}
