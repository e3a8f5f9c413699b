//! The simulated network: one in-memory Redis master per voter (with its clock rate and its
//! crashes), one client's ordered, lossy link to it, and the seeds a client's manager starts
//! from.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::time::{Instant, sleep};

use crate::adapter::cluster_replies::SlotRange;
use crate::error::NodeError;
use crate::node::{AcquireReply, KeyState, Node, NodeResult, SharedNode, UnservedSlot};
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
}

impl Node for SimLink {
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
            if keys.get(key).is_some_and(|(holder, _)| holder == token) {
                keys.remove(key);
                true
            } else {
                false
            }
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

    // Discovery reads only these, answered at once outside the lossy link (the model tests
    // the votes): each simulated node is its own standalone server.
    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        Some(std::sync::Arc::new(self.node.facts()))
    }
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
