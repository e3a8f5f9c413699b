//! N independent Redis masters, for classic Redlock.

use super::HarnessError;
use super::config::NodeConfig;
use super::node::RedisServer;

/// `n` independent masters on free ports, each with `appendonly yes` and `appendfsync always`
/// so that [`RedisServer::restart`] keeps every acknowledged write.
#[derive(Debug)]
pub struct Standalone {
    nodes: Vec<RedisServer>,
}

impl Standalone {
    /// Starts `n` masters and waits until each answers.
    ///
    /// # Errors
    /// Any start error of a node ([`HarnessError::RedisServerNotFound`] first of all); the
    /// nodes already started are stopped again.
    pub fn start(n: usize) -> Result<Self, HarnessError> {
        let config = NodeConfig {
            appendonly: true,
            cluster: None,
        };
        let nodes = (0..n)
            .map(|_| RedisServer::start_on_free_port(&config))
            .collect::<Result<_, _>>()?;
        Ok(Self { nodes })
    }

    /// The nodes' URLs, in node order.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, to kill, pause or restart it.
    ///
    /// # Panics
    /// If `i` is out of range, like slice indexing.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }
}
