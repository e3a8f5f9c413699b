//! N independent Redis masters, for classic Redlock.

use super::HarnessError;
use super::binary::ServerBinary;
use super::clock::Clock;
use super::config::NodeConfig;
use super::node::RedisServer;
use super::tls::TlsFiles;

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
        Self::start_with(n, true, None)
    }

    /// Like [`start`](Self::start), but each master also serves TLS with `tls`'s certificate
    /// on its [`tls_port`](RedisServer::tls_port) (no client certificates asked); use
    /// [`tls_urls`](Self::tls_urls) to reach them over TLS only.
    ///
    /// # Errors
    /// As [`start`](Self::start), plus [`HarnessError::Io`] if the certificate files cannot be
    /// written.
    pub fn start_tls(n: usize, tls: &TlsFiles) -> Result<Self, HarnessError> {
        Self::start_with(n, true, Some(tls.clone()))
    }

    /// Like [`start`](Self::start), choosing persistence: `appendonly yes` with `appendfsync
    /// always` (what [`start`](Self::start) does), or with `false` no AOF at all (and no RDB
    /// snapshots either), so no write waits for the disk; a restart then comes back empty.
    /// Benchmarks use `false`.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with_appendonly(n: usize, appendonly: bool) -> Result<Self, HarnessError> {
        Self::start_with(n, appendonly, None)
    }

    fn start_with(n: usize, appendonly: bool, tls: Option<TlsFiles>) -> Result<Self, HarnessError> {
        let config = NodeConfig {
            appendonly,
            cluster: None,
            tls,
            binary: ServerBinary::Default,
            clock: Clock::Real,
        };
        let nodes = (0..n)
            .map(|_| RedisServer::start_on_free_port(&config))
            .collect::<Result<_, _>>()?;
        Ok(Self { nodes })
    }

    /// One master per entry of `nodes`, each with its own server program, clock and
    /// persistence (for example three Valkey masters, one of them with a fast clock).
    ///
    /// # Errors
    /// As [`start`](Self::start), plus [`HarnessError::ValkeyNotFound`] and
    /// [`HarnessError::FaketimeNotFound`] when a node needs what is missing.
    pub fn start_each(nodes: &[NodeOptions]) -> Result<Self, HarnessError> {
        let nodes = nodes
            .iter()
            .map(|options| {
                RedisServer::start_on_free_port(&NodeConfig {
                    appendonly: options.appendonly,
                    cluster: None,
                    tls: None,
                    binary: options.binary.clone(),
                    clock: options.clock,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nodes })
    }

    /// The nodes' URLs, in node order.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes' `rediss://127.0.0.1:{tls_port}` URLs, in node order; empty unless started
    /// with [`start_tls`](Self::start_tls).
    #[must_use]
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().filter_map(RedisServer::tls_url).collect()
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

/// How one independent master of [`Standalone::start_each`] runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    binary: ServerBinary,
    clock: Clock,
    appendonly: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            binary: ServerBinary::Default,
            clock: Clock::Real,
            appendonly: true,
        }
    }
}

impl NodeOptions {
    /// The server program. Defaults to [`ServerBinary::Default`].
    #[must_use]
    pub fn binary(mut self, binary: ServerBinary) -> Self {
        self.binary = binary;
        self
    }

    /// The server's clock. Defaults to [`Clock::Real`].
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// `appendonly yes` with `appendfsync always`. Defaults to true.
    #[must_use]
    pub fn appendonly(mut self, appendonly: bool) -> Self {
        self.appendonly = appendonly;
        self
    }
}
