//! The votes of the lock scripts, each one call of the port's one script call (`Node::run`)
//! with its reply parsed: acquire and extend followed by `WAIT` when replicas must
//! acknowledge them (`LockConfig::replica_acks`, see `features::acks`), release and inspect
//! plain. The fenced votes are in `features::fencing`, on the same call.

use std::time::Duration;

use crate::adapter::redis_node::{parse_acquire, parse_flag, parse_inspect};
use crate::adapter::scripts::{SCRIPTS, ttl_millis};
use crate::config::{LockConfig, ReplicaAcks};
use crate::error::NodeError;
use crate::node::{AcquireReply, KeyState, Node, ScriptCall, ScriptReply};

use super::Shared;

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

/// A writing script on `node`, followed by `WAIT` when `config` asks replicas to
/// acknowledge it (capped by the vote's deadline `per_call`): every write vote, plain or
/// fenced, is this one call.
pub(crate) async fn write_vote(
    node: &dyn Node,
    script: &'static redis::Script,
    (keys, args): (&[&[u8]], &[&[u8]]),
    (config, per_call): (&LockConfig, Duration),
) -> Result<ScriptReply, NodeError> {
    let wait = wait_of(config, per_call);
    node.run(ScriptCall {
        script,
        keys,
        args,
        wait,
    })
    .await
}

/// A script whose arguments are our token and a TTL (acquire, extend) on voter `i` of
/// `shared`, written as [`write_vote`] does.
async fn token_ttl(
    (shared, i): (&Shared, usize),
    script: &'static redis::Script,
    (ttl, per_call): (Duration, Duration),
) -> Result<ScriptReply, NodeError> {
    let voter = shared.voters.get(i).ok_or_else(no_voter)?;
    let ttl = ttl_millis(ttl);
    let args: &[&[u8]] = &[shared.token.as_str().as_bytes(), &ttl];
    let keys: &[&[u8]] = &[&voter.key];
    write_vote(
        voter.node.as_ref(),
        script,
        (keys, args),
        (&shared.config, per_call),
    )
    .await
}

/// Voter `i`'s acquire vote: acknowledged by replicas when the configuration asks for it
/// (then `per_call`, the vote's deadline, caps the `WAIT`), plain otherwise.
pub(crate) async fn acquire(
    shared: &Shared,
    i: usize,
    ttl: Duration,
    per_call: Duration,
) -> Vote<AcquireReply> {
    let (reply, acked) = token_ttl((shared, i), &SCRIPTS.acquire, (ttl, per_call)).await?;
    let reply = parse_acquire(&reply)?;
    if reply != AcquireReply::Granted {
        // Our keys always expire: a key without expiry may be a foreign value (a list, a
        // hash) that SET NX cannot tell apart from a held lock. Nothing was written:
        // replication is beside the point.
        if let (AcquireReply::Held(None), Some(voter)) = (reply, shared.voters.get(i)) {
            voter.node.check_string_key(&voter.key).await?;
        }
        return Ok(reply);
    }
    confirmed(reply, acked, &shared.config)
}

/// Voter `i`'s extend vote, acknowledged by replicas when configured (see [`acquire`]): an
/// extend that replicas did not acknowledge counts as failed.
pub(crate) async fn extend(
    shared: &Shared,
    i: usize,
    ttl: Duration,
    per_call: Duration,
) -> Vote<bool> {
    let (reply, acked) = token_ttl((shared, i), &SCRIPTS.extend, (ttl, per_call)).await?;
    match parse_flag(&reply)? {
        true => confirmed(true, acked, &shared.config),
        false => Ok(false),
    }
}

/// A vote's outcome.
type Vote<T> = Result<T, NodeError>;

/// Compare-and-delete `token` at `key`; `true` when the key held it.
pub(crate) async fn release(node: &dyn Node, key: &[u8], token: &str) -> Result<bool, NodeError> {
    let (reply, _) = node
        .run(ScriptCall {
            script: &SCRIPTS.release,
            keys: &[key],
            args: &[token.as_bytes()],
            wait: None,
        })
        .await?;
    parse_flag(&reply)
}

/// Read the token at `key` and its remaining time.
pub(crate) async fn inspect(node: &dyn Node, key: &[u8]) -> Result<KeyState, NodeError> {
    let (reply, _) = node
        .run(ScriptCall {
            script: &SCRIPTS.inspect,
            keys: &[key],
            args: &[],
            wait: None,
        })
        .await?;
    parse_inspect(&reply)
}

/// A voter index out of range (never: the calls are made from the voters).
pub(crate) fn no_voter() -> NodeError {
    NodeError::Protocol("no such voter".into())
}
