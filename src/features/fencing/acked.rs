//! The fenced votes through the port's one script call (`Node::run`): the fenced acquire and
//! the commit, each acknowledged by replicas when configured
//! ([`crate::LockConfig::replica_acks`]: the script and `WAIT` on a connection of its own, as
//! the plain acquire and extend do, see `acks`). An acknowledged commit means the counter is
//! in `n` replicas' memory: a failover to one of them keeps it, and the counter term alone
//! orders the next token, whatever the clocks say.

use std::time::Duration;

use crate::adapter::redis_node::{parse_acquire_fenced, parse_commit, parse_read};
use crate::adapter::scripts::{SCRIPTS, ttl_millis};
use crate::config::LockConfig;
use crate::engine::round::votes::{confirmed, write_vote};
use crate::error::NodeError;
use crate::node::FencedReply;
use crate::node::ScriptCall;
use crate::topology::Voter;

/// The fenced acquire on `voter`: acknowledged by replicas when configured (a grant counts
/// only once `n` replicas have the key). `per_call` caps the `WAIT`.
pub(super) async fn acquire_fenced(
    voter: &Voter,
    counter: &[u8],
    token: &str,
    ttl: Duration,
    config: &LockConfig,
    per_call: Duration,
) -> Result<FencedReply, NodeError> {
    let ttl = ttl_millis(ttl);
    let (keys, args): (&[&[u8]], &[&[u8]]) = (&[&voter.key, counter], &[token.as_bytes(), &ttl]);
    let (reply, acked) = write_vote(
        voter.node.as_ref(),
        &SCRIPTS.fence_acquire,
        (keys, args),
        (config, per_call),
    )
    .await?;
    match parse_acquire_fenced(&reply, counter)? {
        granted @ FencedReply::Granted { .. } => confirmed(granted, acked, config),
        // Nothing was written: replication is beside the point.
        held @ FencedReply::Held(_) => Ok(held),
    }
}

/// The commit on `voter`, acknowledged by replicas when configured: an acknowledgement that
/// replicas did not confirm does not count.
pub(super) async fn fence_commit(
    voter: &Voter,
    counter: &[u8],
    token: &str,
    (fencing_token, retention): (u64, Duration),
    config: &LockConfig,
    per_call: Duration,
) -> Result<bool, NodeError> {
    let (fencing_token, retention) = (
        fencing_token.to_string(),
        retention.as_millis().max(1).to_string(),
    );
    let args: &[&[u8]] = &[
        token.as_bytes(),
        fencing_token.as_bytes(),
        retention.as_bytes(),
    ];
    let keys: &[&[u8]] = &[&voter.key, counter];
    let (reply, acked) = write_vote(
        voter.node.as_ref(),
        &SCRIPTS.fence_commit,
        (keys, args),
        (config, per_call),
    )
    .await?;
    match parse_commit(&reply, counter)? {
        true => confirmed(true, acked, config),
        false => Ok(false),
    }
}

/// The fencing counter `voter` recorded (checked against its clock like a grant's): the
/// holder's token while a lock is held, and a floor every later token exceeds.
pub(super) async fn read_fence(voter: &Voter, counter: &[u8]) -> Result<u64, NodeError> {
    let (reply, _) = voter
        .node
        .run(ScriptCall {
            script: &SCRIPTS.fence_read,
            keys: &[counter],
            args: &[],
            wait: None,
        })
        .await?;
    parse_read(&reply, counter)
}
