//! Errors: what went wrong, on which node, and what to do next.
//!
//! Contention is *not* an error: a lock held by someone else is reported as `Ok(None)` /
//! `Ok(false)`. Errors are for bad input and for infrastructure that cannot reach a decision.
//!
//! [`LockError`] is here; the per-node [`NodeError`] and [`NodeFailures`] are in `node`.

use std::time::Duration;

mod node;

pub use node::{NodeError, NodeFailure, NodeFailures};

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
         check that a majority of the voting Redis masters is up and reachable"
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
    /// Fewer than a majority of the configured nodes (the seeds) answered, so neither the mode
    /// (cluster or independent) nor the voters could be decided yet. Seeds are not voters: this
    /// says nothing yet about the masters that vote. Retryable.
    #[error(
        "only {answered} of {seeds} seeds answered, {needed} needed to decide the mode and the \
         voters ({failures}); check that most of the configured nodes are up and reachable (a \
         minority of dead seeds costs nothing), or list more nodes of the cluster"
    )]
    SeedsUnavailable {
        /// Seeds that gave a usable answer.
        answered: usize,
        /// Number of configured seeds.
        seeds: usize,
        /// Answers needed: more than half of the seeds.
        needed: usize,
        /// The seeds that failed and why (a seed still silent at the deadline timed out).
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
    /// Our ACL user may not access the lock keys (`NOPERM` on keys): its key patterns
    /// (`~pattern`) do not cover them. Not retried.
    #[error(
        "{node} does not let our ACL user access the lock key {key:?} ({detail}); grant the lock          keys' pattern, for example `ACL SETUSER <user> ~redlock:*` for the default key prefix          (`~<prefix>*` with LockConfig::key_prefix), or `%RW~<prefix>*` at the least"
    )]
    KeyPermission {
        /// The node that refused.
        node: String,
        /// The lock key it refused (lossy UTF-8), when known.
        key: String,
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
    /// The manager was closed ([`LockManager::close`](crate::LockManager::close)): it takes no
    /// new work (acquire, extend, inspect, health). Releases still run, so that a lock held at
    /// shutdown can still be freed. Not retried.
    #[error(
        "this LockManager was closed (LockManager::close) and takes no new work; release what \
         you hold, or make a new manager"
    )]
    Closed,
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
    /// Whether this is an infrastructure failure: not enough voters answered
    /// ([`LockError::Unavailable`]), or not enough seeds to decide who votes
    /// ([`LockError::SeedsUnavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LockError::Unavailable { .. } | LockError::SeedsUnavailable { .. }
        )
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

    /// The per-node failures behind an [`LockError::Unavailable`] or
    /// [`LockError::SeedsUnavailable`], empty otherwise.
    pub fn failures(&self) -> &[NodeFailure] {
        match self {
            LockError::Unavailable { failures, .. }
            | LockError::SeedsUnavailable { failures, .. } => &failures.0,
            _ => &[],
        }
    }

    /// Whether trying again may help: too few voters answered, or a round ran out of time.
    /// Credentials, permissions, foreign values and refused voters need a change first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LockError::Unavailable { .. }
                | LockError::SeedsUnavailable { .. }
                | LockError::ValidityExpired { .. }
        )
    }

    /// An [`LockError::Unavailable`] whose every failure needs a change before a retry can
    /// help (see [`NodeError::is_configuration`]) becomes the error that says which change:
    /// [`LockError::Auth`] first, then [`LockError::Permission`], [`LockError::KeyPermission`],
    /// [`LockError::WrongType`]
    /// (`key_of` names the key a node stores) and [`LockError::VoterRefused`]. Anything else
    /// is returned as it is: with one node merely down, the round may succeed later.
    pub(crate) fn explained(self, key_of: impl Fn(&str) -> Option<String>) -> LockError {
        let (LockError::Unavailable { failures, .. }
        | LockError::SeedsUnavailable { failures, .. }) = &self
        else {
            return self;
        };
        if failures.is_empty() || !failures.iter().all(|f| f.error.is_configuration()) {
            return self;
        }
        let rank = |e: &NodeError| match e {
            NodeError::Auth(_) => 0,
            NodeError::Permission { .. } => 1,
            NodeError::KeyPermission(_) => 2,
            NodeError::WrongType(_) => 3,
            _ => 4,
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
            NodeError::KeyPermission(detail) => LockError::KeyPermission {
                key: key_of(&node).unwrap_or_default(),
                node,
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
mod tests;
