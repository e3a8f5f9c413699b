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
    /// The node did not answer within the per-node timeout (or the connect timeout). A zero
    /// duration means the connection's own reply timeout fired first: it is the connect
    /// timeout, so it cuts short a per-node timeout set above it.
    #[error("no answer {}", within(*.0))]
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
    /// The node refused our credentials (`NOAUTH`, `WRONGPASS`): retrying cannot help.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Our ACL user may not run a command the lock needs (`NOPERM`): retrying cannot help.
    #[error("the ACL user may not run {command}: {detail}")]
    Permission {
        /// The refused command, as the server named it (for example `evalsha`).
        command: String,
        /// The server's message.
        detail: String,
    },
    /// A lock key holds a value that is not a string (`WRONGTYPE`): something other than
    /// the lock wrote it.
    #[error("the lock key holds a value that is not a string: {0}")]
    WrongType(String),
    /// The node answered but may not vote: a cluster node in independent mode, a server
    /// already voting under another name, or (when refused by configuration) a server that
    /// can evict keys. The message says why and what to change.
    #[error("refused as a voter: {0}")]
    Refused(String),
    /// With [`crate::LockConfig::replica_acks`]: the write was not acknowledged by enough
    /// replicas of this master within the timeout (`WAIT`), so a failover could lose it; the
    /// vote counts as failed. Check the replicas' links (`INFO replication`) and lag.
    #[error(
        "the write was acknowledged by {acked} replica(s), {needed} needed (replica_acks); check \
         that this master has {needed} replica(s) with master_link_status:up"
    )]
    NotReplicated {
        /// How many replicas acknowledged the write.
        acked: usize,
        /// How many were needed.
        needed: usize,
    },
    /// The node answered but is quarantined by
    /// [`LockConfig::delayed_restart`](crate::LockConfig::delayed_restart): it started, or was
    /// seen to restart or change role, less than the longest TTL ago and may have lost lock
    /// keys, so its votes count as failed until `remaining` has passed. Temporary: retrying
    /// after that helps.
    #[error("quarantined for another {:.1}s (delayed restart): {reason}", remaining.as_secs_f64())]
    Quarantined {
        /// How long until it votes again, from when the vote was counted.
        remaining: Duration,
        /// Why, and when it ends.
        reason: String,
    },
}

/// How long a [`NodeError::Timeout`] waited, in words.
fn within(limit: Duration) -> String {
    if limit.is_zero() {
        "within the connection's reply timeout (the connect timeout, which also bounds every \
         reply)"
            .to_string()
    } else {
        format!("within {limit:?}")
    }
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

    /// Whether the node is quarantined after a restart or role change (see
    /// [`LockConfig::delayed_restart`](crate::LockConfig::delayed_restart)).
    pub fn is_quarantined(&self) -> bool {
        matches!(self, NodeError::Quarantined { .. })
    }

    /// Whether retrying cannot help: bad credentials, a missing ACL permission, a foreign
    /// value at a lock key, or a voter refused by rule or configuration.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            NodeError::Auth(_)
                | NodeError::Permission { .. }
                | NodeError::WrongType(_)
                | NodeError::Refused(_)
        )
    }

    /// The error of a connection that could not be opened: an authentication failure is
    /// [`NodeError::Auth`], anything else [`NodeError::Connect`].
    pub(crate) fn from_connect(err: &redis::RedisError) -> Self {
        match Self::from_redis(err) {
            error @ (NodeError::Auth(_) | NodeError::Permission { .. }) => error,
            _ => NodeError::Connect(err.to_string()),
        }
    }

    pub(crate) fn from_redis(err: &redis::RedisError) -> Self {
        match err.code() {
            Some("NOAUTH" | "WRONGPASS") => return NodeError::Auth(err.to_string()),
            Some("NOPERM") => {
                return NodeError::Permission {
                    command: refused_command(err.detail().unwrap_or_default()),
                    detail: err.to_string(),
                };
            }
            Some("WRONGTYPE") => return NodeError::WrongType(err.to_string()),
            _ => {}
        }
        if err.kind() == redis::ErrorKind::AuthenticationFailed {
            return NodeError::Auth(err.to_string());
        }
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
            _ if err.is_timeout() => NodeError::Timeout(Duration::ZERO),
            _ => NodeError::Io(err.to_string()),
        }
    }
}

/// The command a `NOPERM` message names (`... permissions to run the 'evalsha' command`), or
/// `"a command"` when it names none (a key or channel permission).
fn refused_command(detail: &str) -> String {
    let mut quoted = detail.split('\'');
    match (quoted.next(), quoted.next(), quoted.next()) {
        (Some(_), Some(command), Some(_)) if !command.is_empty() => command.to_uppercase(),
        _ => "a command".to_string(),
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
    /// A node refused our credentials (`NOAUTH`, `WRONGPASS`). Not retried.
    #[error(
        "{node} refused our credentials ({detail}); check the user name and password in the node \
         URLs (redis://user:password@host:port) against the server's ACL users or requirepass"
    )]
    Auth {
        /// The node that refused.
        node: String,
        /// The server's message.
        detail: String,
    },
    /// Our ACL user may not run a command the lock needs (`NOPERM`). Not retried.
    #[error(
        "{node} does not let our ACL user run {command} ({detail}); grant it, for example \
         `ACL SETUSER <user> +{command_lower}`: the lock needs EVALSHA, EVAL, SCRIPT LOAD and \
         INFO, and in cluster mode CLUSTER SHARDS or CLUSTER SLOTS",
        command_lower = command.to_lowercase()
    )]
    Permission {
        /// The node that refused.
        node: String,
        /// The refused command (for example `EVALSHA`).
        command: String,
        /// The server's message.
        detail: String,
    },
    /// A lock key holds a value that is not a string (`WRONGTYPE`): something other than the
    /// lock wrote it. Not retried.
    #[error(
        "{node} holds a value that is not a string at the lock key {key:?}; something other than \
         the lock uses this key: delete it (DEL) or choose another key prefix"
    )]
    WrongType {
        /// The node holding the value.
        node: String,
        /// The lock key (lossy UTF-8), when known.
        key: String,
    },
    /// A node answered but may not vote, and without it no quorum is possible: a cluster node
    /// listed as an independent master, one server under two names, or a server that can evict
    /// keys while [`LockConfig::refuse_evicting_voters`](crate::LockConfig::refuse_evicting_voters)
    /// is on. Not retried.
    #[error("{node} cannot vote: {reason}")]
    VoterRefused {
        /// The refused node.
        node: String,
        /// Why, and what to change.
        reason: String,
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
    /// The lock was acquired through another `LockManager`, which may have other voters,
    /// another key prefix or another voter count: extending or releasing it here could keep
    /// alive (or miss) keys its quorum does not hold. Use the manager that acquired it.
    #[error(
        "the lock on {resource:?} was acquired through another LockManager; extend, release or \
         guard it through the manager that acquired it"
    )]
    ForeignLock {
        /// The locked resource.
        resource: String,
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
                | LockError::ForeignLock { .. }
        )
    }

    /// The per-node failures behind an [`LockError::Unavailable`], empty otherwise.
    pub fn failures(&self) -> &[NodeFailure] {
        match self {
            LockError::Unavailable { failures, .. } => &failures.0,
            _ => &[],
        }
    }

    /// Whether trying again may help: too few voters answered, or a round ran out of time.
    /// Credentials, permissions, foreign values and refused voters need a change first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LockError::Unavailable { .. } | LockError::ValidityExpired { .. }
        )
    }

    /// An [`LockError::Unavailable`] whose every failure needs a change before a retry can
    /// help (see [`NodeError::is_configuration`]) becomes the error that says which change:
    /// [`LockError::Auth`] first, then [`LockError::Permission`], [`LockError::WrongType`]
    /// (`key_of` names the key a node stores) and [`LockError::VoterRefused`]. Anything else
    /// is returned as it is: with one node merely down, the round may succeed later.
    pub(crate) fn explained(self, key_of: impl Fn(&str) -> Option<String>) -> LockError {
        let LockError::Unavailable { failures, .. } = &self else {
            return self;
        };
        if failures.is_empty() || !failures.iter().all(|f| f.error.is_configuration()) {
            return self;
        }
        let rank = |e: &NodeError| match e {
            NodeError::Auth(_) => 0,
            NodeError::Permission { .. } => 1,
            NodeError::WrongType(_) => 2,
            _ => 3,
        };
        let Some(first) = failures.iter().min_by_key(|f| rank(&f.error)) else {
            return self;
        };
        let node = first.node.clone();
        match &first.error {
            NodeError::Auth(detail) => LockError::Auth {
                node,
                detail: detail.clone(),
            },
            NodeError::Permission { command, detail } => LockError::Permission {
                node,
                command: command.clone(),
                detail: detail.clone(),
            },
            NodeError::WrongType(_) => LockError::WrongType {
                key: key_of(&node).unwrap_or_default(),
                node,
            },
            NodeError::Refused(reason) => LockError::VoterRefused {
                node,
                reason: reason.clone(),
            },
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_timeout_does_not_read_as_zero() {
        let message = NodeError::Timeout(Duration::ZERO).to_string();
        assert!(!message.contains("0ns"), "{message}");
        assert!(message.contains("connect timeout"), "{message}");
        assert_eq!(
            NodeError::Timeout(Duration::from_millis(100)).to_string(),
            "no answer within 100ms"
        );
    }

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

    fn unavailable_with(errors: Vec<NodeError>) -> LockError {
        LockError::Unavailable {
            answered: 0,
            voters: errors.len(),
            quorum: errors.len() / 2 + 1,
            failures: NodeFailures(
                errors
                    .into_iter()
                    .enumerate()
                    .map(|(i, error)| NodeFailure {
                        node: format!("127.0.0.1:{}", 7000 + i),
                        error,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn configuration_failures_become_the_error_that_says_what_to_change() {
        let perm = NodeError::Permission {
            command: "EVALSHA".into(),
            detail: "NOPERM".into(),
        };
        let auth = NodeError::Auth("WRONGPASS".into());
        let err = unavailable_with(vec![perm.clone(), auth]).explained(|_| None);
        assert!(
            matches!(&err, LockError::Auth { node, .. } if node == "127.0.0.1:7001"),
            "{err}"
        );
        assert!(!err.is_retryable());
        let err = unavailable_with(vec![perm.clone(), perm.clone()]).explained(|_| None);
        assert!(err.to_string().contains("+evalsha"), "{err}");
        let err = unavailable_with(vec![NodeError::WrongType("WRONGTYPE".into())])
            .explained(|node| Some(format!("key on {node}")));
        assert!(
            matches!(&err, LockError::WrongType { key, .. } if key == "key on 127.0.0.1:7000"),
            "{err}"
        );
        // With one node merely down, a retry may still succeed: stay Unavailable.
        let err = unavailable_with(vec![perm, NodeError::Timeout(Duration::from_millis(1))])
            .explained(|_| None);
        assert!(err.is_unavailable() && err.is_retryable(), "{err}");
    }

    #[test]
    fn noperm_names_the_refused_command() {
        assert_eq!(
            refused_command("this user has no permissions to run the 'evalsha' command"),
            "EVALSHA"
        );
        assert_eq!(
            refused_command("this user has no permissions to access one of the keys"),
            "a command"
        );
    }
}
