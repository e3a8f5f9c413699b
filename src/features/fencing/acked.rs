//! The fenced scripts acknowledged by replicas ([`crate::LockConfig::replica_acks`]): each
//! vote runs its script and `WAIT` on a connection of its own, as the plain acquire and
//! extend do (see `acks`). An acknowledged commit means the counter is in `n` replicas'
//! memory: a failover to one of them keeps it, and the counter term alone orders the next
//! token, whatever the clocks say.

use std::time::Duration;

use crate::config::LockConfig;
use crate::error::NodeError;
use crate::features::acks::{judged, write};
use crate::topology::Voter;

use crate::adapter::redis_node::{parse_acquire_fenced, parse_commit};
use crate::adapter::scripts::{SCRIPTS, ttl_millis};
use crate::node::FencedReply;

/// The fenced acquire on `node`: acknowledged by replicas when configured (a grant counts
/// only once `n` replicas have the key), plain otherwise. `per_call` caps the `WAIT`.
pub(super) async fn acquire_fenced(
    voter: &Voter,
    counter: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<FencedReply, NodeError> {
    let (node, key) = (&voter.node, &voter.key[..]);
    let Some(acks) = config.replica_acks_value() else {
        return node.acquire_fenced(key, counter, token, ttl).await;
    };
    let ttl = ttl_millis(ttl);
    let args: &[&[u8]] = &[token.as_bytes(), &ttl];
    let script = &SCRIPTS.fence_acquire;
    let (reply, acked) = write(node, script, &[key, counter], args, acks, per_call).await?;
    match parse_acquire_fenced(&reply, counter)? {
        granted @ FencedReply::Granted { .. } => judged(granted, acked, acks.replicas),
        // Nothing was written: replication is beside the point.
        held @ FencedReply::Held(_) => Ok(held),
    }
}

/// The commit on `node`, acknowledged by replicas when configured: an acknowledgement that
/// replicas did not confirm does not count.
pub(super) async fn fence_commit(
    voter: &Voter,
    counter: &[u8],
    token: &str,
    fencing_token: u64,
    retention: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<bool, NodeError> {
    let (node, key) = (&voter.node, &voter.key[..]);
    let Some(acks) = config.replica_acks_value() else {
        return node
            .fence_commit(key, counter, token, fencing_token, retention)
            .await;
    };
    let (fencing_token, retention) = (
        fencing_token.to_string(),
        retention.as_millis().max(1).to_string(),
    );
    let args: &[&[u8]] = &[
        token.as_bytes(),
        fencing_token.as_bytes(),
        retention.as_bytes(),
    ];
    let script = &SCRIPTS.fence_commit;
    let (reply, acked) = write(node, script, &[key, counter], args, acks, per_call).await?;
    match parse_commit(&reply, counter)? {
        true => judged(true, acked, acks.replicas),
        false => Ok(false),
    }
}
