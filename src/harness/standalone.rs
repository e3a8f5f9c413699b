//! N independent Redis masters, for classic Redlock.

use super::HarnessError;
use super::config::NodeConfig;
use super::node::RedisNode;

/// `n` independent masters on free ports, each with `appendonly yes` and `appendfsync always`
/// so that [`RedisNode::restart`] keeps every acknowledged write.
#[derive(Debug)]
pub struct Standalone {
    nodes: Vec<RedisNode>,
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
            .map(|_| RedisNode::start_on_free_port(&config))
            .collect::<Result<_, _>>()?;
        Ok(Self { nodes })
    }

    /// The nodes' URLs, in node order.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// The nodes.
    #[must_use]
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// Node `i`, to kill, pause or restart it.
    ///
    /// # Panics
    /// If `i` is out of range, like slice indexing.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisNode {
        &mut self.nodes[i]
    }
}
