//! Replica-acknowledged votes (opt-in, [`crate::LockConfig::replica_acks`]): a vote counts only
//! after `n` replicas of the voter's master acknowledged the write, so that a failover to an
//! acknowledged replica keeps the key.
//!
//! `WAIT n timeout` acknowledges the writes of the connection it is sent on, and blocks that
//! connection until it answers. So an acknowledged vote never goes over a node's shared
//! multiplexed connection (every other lock's commands would queue behind the `WAIT`): it takes
//! a connection of its own from a small per-node pool (`adapter::redis_node::acked`), sends
//! the script and the `WAIT` pipelined in one round trip, and gives the connection back only
//! after both answered. A vote whose `WAIT` counts fewer than `n` replicas fails with
//! `NodeError::NotReplicated`; its key is cleaned up like that of any failed vote.
//!
//! The votes themselves are the engine's (`engine::round::votes`): the port's one script call
//! carries the `WAIT`, capped by the per-node deadline of the round, so no round waits longer
//! than `node_timeout` for one voter. What is left here is the check at connect time that
//! the voters have the replicas the acknowledgements need.

use crate::config::{LockConfig, Mode, ReplicaAcks};
use crate::error::LockError;
use crate::node::SharedNode;
use crate::server::ServerFacts;

/// With replica acks configured, the voters whose server reported fewer connected replicas
/// than needed when its connection opened (`connected_slaves` of `INFO replication`): such a
/// master cannot give an acknowledged vote until replicas attach.
///
/// Independent masters: an error naming each of them (a standalone master without replicas
/// is a configuration mistake). Cluster masters: a warning, since a master is often without
/// its replica for a while after a failover, until the old master comes back as one.
pub(crate) fn check_replicas(
    config: &LockConfig,
    mode: Mode,
    nodes: &[SharedNode],
) -> Result<(), LockError> {
    let Some(acks) = config.replica_acks_value() else {
        return Ok(());
    };
    let short: Vec<String> = nodes
        .iter()
        .filter_map(|node| {
            let facts = node.facts()?;
            too_few_replicas(&facts, acks).then(|| {
                format!(
                    "{} (connected_slaves:{} < {})",
                    node.addr(),
                    facts.connected_replicas,
                    acks.replicas
                )
            })
        })
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    let problem = format!(
        "replica_acks({}) needs {} replica(s) per voter, but {} had fewer: their votes fail \
         until enough replicas attach; attach replicas to these masters or lower replica_acks",
        acks.replicas,
        acks.replicas,
        short.join(", ")
    );
    if mode == Mode::Cluster {
        tracing::warn!("{problem}");
        return Ok(());
    }
    Err(LockError::InvalidConfig(problem))
}

/// Whether a server has fewer replicas attached than the acks need.
fn too_few_replicas(facts: &ServerFacts, acks: &ReplicaAcks) -> bool {
    usize::try_from(facts.connected_replicas).unwrap_or(usize::MAX) < acks.replicas
}

#[cfg(test)]
mod tests;
