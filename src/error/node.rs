//! `NodeError`, why one voter gave no usable answer, with its classification (timeout,
//! configuration, ...) and its mapping from Redis errors; `NodeFailure(s)`, which node failed
//! and why.

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
    /// Our ACL user may not access the lock keys (`NOPERM` on keys: the user's key patterns
    /// do not match them): retrying cannot help.
    #[error("the ACL user may not access the lock keys: {0}")]
    KeyPermission(String),
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
    /// With [`crate::LockConfig::fencing`]: the resource's fencing counter on this voter holds
    /// something the fencing scripts never write (another type, leading zeros, a sign,
    /// spaces, a value out of range or far ahead of the server's clock). The voter's vote
    /// does not count until the key is repaired; the other voters still decide.
    #[error(
        "the fencing counter {key} holds {found}, not a canonical decimal u64 at most a day \
         ahead of the server's clock; repair: delete it (redis-cli DEL on this server): \
         tokens also carry the voters' server time, so they keep increasing without it"
    )]
    FencingCounter {
        /// The counter key, with bytes outside printable ASCII escaped as `\xNN`.
        key: String,
        /// What it holds.
        found: String,
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
                | NodeError::KeyPermission(_)
                | NodeError::WrongType(_)
                | NodeError::Refused(_)
                | NodeError::FencingCounter { .. }
        )
    }

    /// The error of a connection that could not be opened: an authentication failure is
    /// [`NodeError::Auth`], anything else [`NodeError::Connect`].
    pub(crate) fn from_connect(err: &redis::RedisError) -> Self {
        match Self::from_redis(err) {
            error @ (NodeError::Auth(_)
            | NodeError::Permission { .. }
            | NodeError::KeyPermission(_)) => error,
            _ => NodeError::Connect(err.to_string()),
        }
    }

    pub(crate) fn from_redis(err: &redis::RedisError) -> Self {
        match err.code() {
            Some("NOAUTH" | "WRONGPASS") => return NodeError::Auth(err.to_string()),
            // Keys outside the user's `~pattern`s: "NOPERM this user has no permissions to
            // access one of the keys used as arguments" (or, from inside a script, an ERR
            // saying that the user "can't access at least one of the keys").
            Some("NOPERM") if is_key_refusal(&err.to_string()) => {
                return NodeError::KeyPermission(err.to_string());
            }
            _ if err.code() == Some("ERR") && is_key_refusal(&err.to_string()) => {
                return NodeError::KeyPermission(err.to_string());
            }
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
/// Whether an ACL refusal is about keys, not about a command.
fn is_key_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("access one of the keys")
        || message.contains("access at least one of the keys")
        || message.contains("access a key")
}

pub(super) fn refused_command(detail: &str) -> String {
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
