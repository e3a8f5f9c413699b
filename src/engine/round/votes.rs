//! The votes of the lock scripts that no feature changes (release, inspect), each one call of
//! the port's one script call (`Node::run`) with its reply parsed. The acquire and extend
//! votes are in `features::acks` (the same call, with `WAIT` when replicas must acknowledge),
//! the fenced ones in `features::fencing`.

use crate::adapter::redis_node::{parse_flag, parse_inspect};
use crate::adapter::scripts::SCRIPTS;
use crate::error::NodeError;
use crate::node::{KeyState, Node, ScriptCall};

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
