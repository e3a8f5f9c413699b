//! Parsers of the lock scripts' replies (acquire, extend/release flags, inspect).

use std::time::Duration;

use redis::Value;

use crate::error::NodeError;
use crate::node::{AcquireReply, KeyState};

/// A PTTL value as a remaining time: `None` for "no expiry" (-1); a missing key (-2) and any
/// other negative value count as zero.
fn pttl(value: i64) -> Option<Duration> {
    match value {
        -1 => None,
        ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    }
}

fn int(value: &Value) -> Result<i64, NodeError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(NodeError::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

fn server_error(value: &Value) -> Option<NodeError> {
    match value {
        Value::ServerError(e) => Some(NodeError::from_redis(&redis::RedisError::from(e.clone()))),
        _ => None,
    }
}

pub(crate) fn parse_acquire(value: &Value) -> Result<AcquireReply, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    match value {
        Value::Array(items) if items.len() == 2 => match int(&items[0])? {
            1 => Ok(AcquireReply::Granted),
            0 => Ok(AcquireReply::Held(pttl(int(&items[1])?))),
            n => Err(NodeError::Protocol(format!("acquire status {n}"))),
        },
        other => Err(NodeError::Protocol(format!(
            "acquire script returned {other:?}"
        ))),
    }
}

pub(crate) fn parse_flag(value: &Value) -> Result<bool, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    Ok(int(value)? == 1)
}

pub(crate) fn parse_inspect(value: &Value) -> Result<KeyState, NodeError> {
    if let Some(err) = server_error(value) {
        return Err(err);
    }
    match value {
        Value::Array(items) if items.len() == 2 => {
            let token = match &items[0] {
                Value::Nil => None,
                Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                other => {
                    return Err(NodeError::Protocol(format!("token reply {other:?}")));
                }
            };
            let remaining = pttl(int(&items[1])?);
            Ok(match token {
                None => (None, Some(Duration::ZERO)),
                Some(token) => (Some(token), remaining),
            })
        }
        other => Err(NodeError::Protocol(format!(
            "inspect script returned {other:?}"
        ))),
    }
}
