//! N independent Redis masters, for classic Redlock.

use super::HarnessError;
use super::config::NodeConfig;
use super::node::RedisServer;

/// `n` independent masters on free ports, each with `appendonly yes` and `appendfsync always`
/// so that [`RedisServer::restart`] keeps every acknowledged write (unless started with
/// [`Standalone::start_with_appendonly`]`(n, false)`).
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
        Self::start_with_appendonly(n, true)
    }

    /// Like [`start`](Self::start), choosing persistence: `appendonly yes` with `appendfsync
    /// always` (what [`start`](Self::start) does), or with `false` no AOF at all (and no RDB
    /// snapshots either), so no write waits for the disk; a restart then comes back empty.
    /// Benchmarks use `false`.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with_appendonly(n: usize, appendonly: bool) -> Result<Self, HarnessError> {
        let config = NodeConfig {
            appendonly,
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
