//! The registry that keeps the real nodes' connections across topology refreshes, and the
//! [`Seeds`] source that hands them to discovery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::node::{Node, SharedNode, UnservedSlot};
use crate::topology::Seeds;

use super::{RedisNode, addr_string};

/// The connections of the real nodes, kept across topology refreshes by address so that a
/// refresh does not reopen every connection.
#[derive(Debug, Default)]
pub(crate) struct NodeRegistry {
    nodes: std::sync::Mutex<HashMap<String, Arc<RedisNode>>>,
}

impl NodeRegistry {
    pub(crate) fn node(
        &self,
        info: &redis::ConnectionInfo,
        connect_timeout: Duration,
    ) -> Arc<RedisNode> {
        let addr = addr_string(info.addr());
        let mut nodes = crate::mutex::lock(&self.nodes);
        nodes
            .entry(addr)
            .or_insert_with(|| Arc::new(RedisNode::new(info.clone(), connect_timeout)))
            .clone()
    }

    /// The connection settings of the node at `addr`, if it is known.
    fn settings(&self, addr: &str) -> Option<redis::ConnectionInfo> {
        let nodes = crate::mutex::lock(&self.nodes);
        nodes.get(addr).map(|node| node.info.clone())
    }
}

/// The connection info of a discovered master: the seed's settings (credentials, TLS, db)
/// with the master's address.
fn master_info(seed: &redis::ConnectionInfo, host: &str, port: u16) -> redis::ConnectionInfo {
    let addr = match seed.addr() {
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => redis::ConnectionAddr::Tcp(host.to_string(), port),
    };
    seed.clone().set_addr(addr)
}

/// The configured Redis nodes and the registry of every node discovered from them.
#[derive(Debug)]
pub(crate) struct RedisSeeds {
    /// The nodes of the configured URLs, in order.
    seeds: Vec<SharedNode>,
    registry: NodeRegistry,
    connect_timeout: Duration,
}

impl RedisSeeds {
    /// The nodes of `urls` (already parsed and checked); nothing is connected yet.
    pub(crate) fn new(urls: &[redis::ConnectionInfo], connect_timeout: Duration) -> Self {
        let registry = NodeRegistry::default();
        let seeds = urls
            .iter()
            .map(|info| registry.node(info, connect_timeout) as SharedNode)
            .collect();
        RedisSeeds {
            seeds,
            registry,
            connect_timeout,
        }
    }
}

impl Seeds for RedisSeeds {
    fn seeds(&self) -> &[SharedNode] {
        &self.seeds
    }

    fn master(&self, via: &dyn Node, host: &str, port: u16) -> SharedNode {
        // `via` is always one of our registry's nodes; the fallback only keeps this total.
        match self.registry.settings(via.addr()) {
            Some(settings) => self
                .registry
                .node(&master_info(&settings, host, port), self.connect_timeout),
            None => Arc::new(UnservedSlot {
                label: format!("{host}:{port}"),
            }),
        }
    }
}
