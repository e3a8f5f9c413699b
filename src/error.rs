//! Errors: what went wrong, on which node, and what to do next.
//!
//! Contention is *not* an error: a lock held by someone else is reported as `Ok(None)` /
//! `Ok(false)`. Errors are for bad input and for infrastructure that cannot reach a decision.

use std::fmt;
use std::time::Duration;

/// Why one voter (one Redis master) did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node did not answer within the per-node timeout (or the connect timeout).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A connection could not be opened (refused, unreachable, TLS or auth failure).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke while a command was in flight.
    #[error("I/O error: {0}")]
    Io(String),
    /// The node no longer serves the key's slot (MOVED/ASK); the topology is refreshed for
    /// the next attempt and this vote counts as failed.
    #[error("slot redirected ({0}); topology will be refreshed")]
    Redirected(String),
    /// The node answered with an error (for example `LOADING`, `CLUSTERDOWN`, `NOPERM`).
    #[error("server error: {0}")]
    Server(String),
    /// The node answered something the lock scripts never return: it is probably not Redis.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl NodeError {
    /// Whether the node did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, NodeError::Timeout(_))
    }

    /// Whether the node could not be connected to at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, NodeError::Connect(_))
    }

    pub(crate) fn from_redis(err: &redis::RedisError) -> Self {
        if err.redirect_node().is_some()
            || matches!(
                err.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
                    | redis::ErrorKind::Server(redis::ServerErrorKind::Ask)
            )
        {
            return NodeError::Redirected(err.to_string());
        }
        match err.kind() {
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => {
                NodeError::Server(err.to_string())
            }
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
                NodeError::Protocol(err.to_string())
            }
            redis::ErrorKind::AuthenticationFailed => NodeError::Connect(err.to_string()),
            _ if err.is_timeout() => NodeError::Timeout(Duration::ZERO),
            _ => NodeError::Io(err.to_string()),
        }
    }
}

/// One voter's failure: which node, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// The node's address, `host:port`.
    pub node: String,
    /// What went wrong there.
    pub error: NodeError,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.error)
    }
}

/// A list of node failures, displayed as `a: why; b: why`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFailures(pub(crate) Vec<NodeFailure>);

impl NodeFailures {
    /// The failures, one per node, in voter order.
    pub fn iter(&self) -> std::slice::Iter<'_, NodeFailure> {
        self.0.iter()
    }

    /// How many nodes failed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no node failed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The failure of the node at `addr` (`host:port`), if it failed.
    #[must_use]
    pub fn get(&self, addr: &str) -> Option<&NodeFailure> {
        self.0.iter().find(|f| f.node == addr)
    }
}

impl<'a> IntoIterator for &'a NodeFailures {
    type Item = &'a NodeFailure;
    type IntoIter = std::slice::Iter<'a, NodeFailure>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for NodeFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no node reported an error");
        }
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong with a lock operation, other than plain contention.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The resource name is unusable (empty, or too long).
    #[error("invalid resource name: {0}")]
    InvalidResource(String),
    /// The TTL is zero, too large, or not longer than the clock-drift allowance.
    #[error("invalid TTL {ttl:?}: {reason}")]
    InvalidTtl {
        /// The TTL that was asked for.
        ttl: Duration,
        /// Why it cannot be used, and what range is accepted.
        reason: String,
    },
    /// A node URL could not be parsed or uses an unsupported scheme.
    #[error("invalid node URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Cluster mode was requested but the node answered `cluster_enabled:0`.
    #[error(
        "{node} is not a Redis Cluster node (cluster_enabled:0); pass several standalone masters \
         for independent mode, or point at a cluster node"
    )]
    NotACluster {
        /// The node that answered.
        node: String,
    },
    /// The cluster topology could not be read from any seed node.
    #[error("cannot read the cluster topology: {0}")]
    Topology(String),
    /// Fewer than a quorum of voters answered, so no decision could be made. Nothing is
    /// granted; keys written on the nodes that did answer have been released.
    #[error(
        "only {answered} of {voters} voters answered, {quorum} needed ({failures}); \
         check that a majority of the Redis masters is up and reachable"
    )]
    Unavailable {
        /// Voters that gave a usable answer.
        answered: usize,
        /// Number of voters.
        voters: usize,
        /// Votes needed for a decision.
        quorum: usize,
        /// The failed voters and why.
        failures: NodeFailures,
    },
    /// A quorum granted the lock but the round took so long that no validity was left; the
    /// keys were released. Raise the TTL or lower the per-node timeout.
    #[error(
        "a quorum granted the lock but the round took {elapsed:?}, leaving no validity out of \
         the {ttl:?} TTL; use a longer TTL or a shorter node timeout"
    )]
    ValidityExpired {
        /// How long the voting round took.
        elapsed: Duration,
        /// The TTL that was asked for.
        ttl: Duration,
    },
}

impl LockError {
    /// Whether this is an infrastructure failure (not enough voters answered).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, LockError::Unavailable { .. })
    }

    /// Whether the caller's input (resource, TTL, URL, configuration) was rejected.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            LockError::InvalidResource(_)
                | LockError::InvalidTtl { .. }
                | LockError::InvalidUrl { .. }
                | LockError::InvalidConfig(_)
                | LockError::NotACluster { .. }
        )
    }

    /// The per-node failures behind an [`LockError::Unavailable`], empty otherwise.
    pub fn failures(&self) -> &[NodeFailure] {
        match self {
            LockError::Unavailable { failures, .. } => &failures.0,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_message_names_nodes_and_advice() {
        let err = LockError::Unavailable {
            answered: 1,
            voters: 3,
            quorum: 2,
            failures: NodeFailures(vec![NodeFailure {
                node: "127.0.0.1:7001".into(),
                error: NodeError::Connect("connection refused".into()),
            }]),
        };
        let text = err.to_string();
        assert!(text.contains("127.0.0.1:7001: cannot connect: connection refused"));
        assert!(text.contains("only 1 of 3 voters answered, 2 needed"));
        assert!(err.is_unavailable());
        assert_eq!(err.failures().len(), 1);
        assert!(!err.is_invalid_input());
    }
}
