//! Replica-acknowledged votes (opt-in, [`crate::LockConfig::replica_acks`]): a vote counts only
//! after `n` replicas of the voter's master acknowledged the write, so that a failover to an
//! acknowledged replica keeps the key.
//!
//! `WAIT n timeout` acknowledges the writes of the connection it is sent on, and blocks that
//! connection until it answers. So an acknowledged vote never goes over a node's shared
//! multiplexed connection (every other lock's commands would queue behind the `WAIT`): it takes
//! a connection of its own from a small per-node pool ([`AckedConnections`]), sends the script
//! and the `WAIT` pipelined in one round trip, and gives the connection back only after both
//! answered. A vote whose `WAIT` counts fewer than `n` replicas fails with
//! [`NodeError::NotReplicated`]; its key is cleaned up like that of any failed vote.
//!
//! The `WAIT` timeout is capped by the per-node deadline of the round (see [`wait_limit`]):
//! no round waits longer than `node_timeout` for one voter.

use std::time::Duration;

use crate::adapter::redis_node::{parse_acquire, parse_flag};
use crate::adapter::scripts::{SCRIPTS, ttl_millis};
use crate::config::{LockConfig, Mode, ReplicaAcks};
use crate::error::{LockError, NodeError};
use crate::node::{AcquireReply, ScriptCall, ScriptReply, SharedNode};
use crate::server::ServerFacts;

/// The `WAIT` timeout in whole milliseconds: the configured timeout, capped by the vote's
/// deadline `per_call`, and never 0 (which would make `WAIT` block forever).
pub(crate) fn wait_limit(acks: &ReplicaAcks, per_call: Duration) -> u64 {
    let limit = acks.timeout.min(per_call).as_millis();
    u64::try_from(limit).unwrap_or(u64::MAX).max(1)
}

/// The vote of a write that `acked` replicas acknowledged when `needed` were asked for.
pub(crate) fn judged<T>(reply: T, acked: i64, needed: usize) -> Result<T, NodeError> {
    match usize::try_from(acked) {
        Ok(acked) if acked >= needed => Ok(reply),
        _ => Err(NodeError::NotReplicated {
            acked: usize::try_from(acked).unwrap_or(0),
            needed,
        }),
    }
}

/// The `WAIT` a vote asks for under `config` (`None`: no replica acks), capped by the vote's
/// deadline `per_call`.
pub(crate) fn wait_of(config: &LockConfig, per_call: Duration) -> Option<(usize, u64)> {
    let acks = config.replica_acks_value()?;
    Some((acks.replicas, wait_limit(acks, per_call)))
}

/// A write's reply once replicas were asked: counted only when `acked` reached what
/// `config` asks for (a write sent without `WAIT` needs none).
pub(crate) fn confirmed<T>(
    reply: T,
    acked: Option<i64>,
    config: &LockConfig,
) -> Result<T, NodeError> {
    match (acked, config.replica_acks_value()) {
        (Some(acked), Some(acks)) => judged(reply, acked, acks.replicas),
        _ => Ok(reply),
    }
}

/// A script whose arguments are our token and a TTL (acquire, extend) on `node`, followed by
/// `WAIT` when `config` asks replicas to acknowledge (capped by the vote's deadline
/// `per_call`).
async fn token_ttl(
    node: &SharedNode,
    script: &'static redis::Script,
    (key, token, ttl): (&[u8], &str, Duration),
    config: &LockConfig,
    per_call: Duration,
) -> Result<ScriptReply, NodeError> {
    let ttl = ttl_millis(ttl);
    let args: &[&[u8]] = &[token.as_bytes(), &ttl];
    let wait = wait_of(config, per_call);
    let keys: &[&[u8]] = &[key];
    node.run(ScriptCall {
        script,
        keys,
        args,
        wait,
    })
    .await
}

/// Run the acquire script on `node`: acknowledged by replicas when the configuration asks for
/// it (then `per_call` is the vote's deadline, which caps the `WAIT`), plain otherwise.
pub(crate) async fn acquire(
    node: &SharedNode,
    key: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<AcquireReply, NodeError> {
    let script = &SCRIPTS.acquire;
    let (reply, acked) = token_ttl(node, script, (key, token, ttl), config, per_call).await?;
    let reply = parse_acquire(&reply)?;
    if reply != AcquireReply::Granted {
        // Our keys always expire: a key without expiry may be a foreign value (a list, a
        // hash) that SET NX cannot tell apart from a held lock. Nothing was written:
        // replication is beside the point.
        if reply == AcquireReply::Held(None) {
            node.check_string_key(key).await?;
        }
        return Ok(reply);
    }
    confirmed(reply, acked, config)
}

/// Run the extend script on `node`, acknowledged by replicas when configured (see
/// [`acquire`]). An extend that replicas did not acknowledge counts as failed.
pub(crate) async fn extend(
    node: &SharedNode,
    key: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<bool, NodeError> {
    let script = &SCRIPTS.extend;
    let (reply, acked) = token_ttl(node, script, (key, token, ttl), config, per_call).await?;
    match parse_flag(&reply)? {
        true => confirmed(true, acked, config),
        false => Ok(false),
    }
}

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
