//! The parsers of the fencing scripts' replies (fenced acquire, commit, counter read; see
//! `features::fencing` for the protocol). The scripts are in the one registry, `scripts`,
//! preloaded on connect, and run through the port's `Node::run`.

use std::time::Duration;

use redis::Value;

use crate::error::NodeError;
use crate::node::FencedReply;

use super::replies::{parse_acquire, parse_flag};

/// How far ahead of its voter's clock a counter may be: tokens never run ahead of the fastest
/// voter's clock by more than the clock offset between voters, so a counter further ahead
/// than this was not written by a fencing commit (or a clock was stepped back by more than a
/// day). Such a counter, up to `u64::MAX`, makes its voter's vote fail
/// ([`NodeError::FencingCounter`]) instead of blocking the resource for good.
pub(crate) const MAX_COUNTER_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Check a counter read next to a voter's clock (see [`MAX_COUNTER_LEAD`]).
pub(crate) fn check_counter_lead(counter: u64, time: u64, key: &[u8]) -> Result<u64, NodeError> {
    let lead = MAX_COUNTER_LEAD.as_micros() as u64;
    if counter > time.saturating_add(lead) {
        return Err(NodeError::FencingCounter {
            key: display_key(key),
            found: format!("{counter}, more than a day ahead of the server's clock ({time} us)"),
        });
    }
    Ok(counter)
}

/// A key for error messages: printable ASCII as is, other bytes as `\xNN` (as `redis-cli`
/// shows them), so that the key can be typed back.
pub(crate) fn display_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for &byte in key {
        if byte.is_ascii_graphic() && byte != b'\\' && byte != b'"' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    format!("\"{out}\"")
}

/// A counter value as stored, parsed as the commit script writes it: canonical decimal
/// digits (`0`, or no leading zero), within `u64`. A missing counter reads as 0. Anything
/// else is [`NodeError::FencingCounter`] naming `key`, so that the vote fails with a repair
/// hint instead of being compared as a string or a double.
pub(crate) fn parse_counter_bytes(bytes: Option<&[u8]>, key: &[u8]) -> Result<u64, NodeError> {
    let Some(bytes) = bytes else { return Ok(0) };
    let bad = |why: &str| NodeError::FencingCounter {
        key: display_key(key),
        found: format!("the string {} ({why})", display_key(bytes)),
    };
    if bytes.is_empty() {
        return Err(bad("empty"));
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        let why = match bytes[0] {
            b'+' | b'-' => "a sign",
            _ if bytes.iter().any(u8::is_ascii_whitespace) => "spaces",
            _ => "not decimal digits",
        };
        return Err(bad(why));
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(bad("leading zeros"));
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| bad("above u64::MAX"))
}

/// A counter in a script reply: a bulk string, or nil when there is none.
fn parse_counter(value: &Value, key: &[u8]) -> Result<u64, NodeError> {
    match value {
        Value::Nil => Ok(0),
        Value::BulkString(bytes) => parse_counter_bytes(Some(bytes), key),
        other => Err(NodeError::Protocol(format!(
            "fencing counter reply {other:?}"
        ))),
    }
}

/// `TIME`'s two parts (seconds, microseconds, as bulk strings) in microseconds.
fn parse_time(seconds: &Value, micros: &Value) -> Result<u64, NodeError> {
    let part = |value: &Value| match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok()),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    };
    match (part(seconds), part(micros)) {
        (Some(s), Some(us)) if us < 1_000_000 => s
            .checked_mul(1_000_000)
            .and_then(|s| s.checked_add(us))
            .ok_or_else(|| NodeError::Protocol(format!("TIME {s} s out of range"))),
        _ => Err(NodeError::Protocol(format!(
            "TIME reply {seconds:?} {micros:?}"
        ))),
    }
}

/// A counter key that holds another type (the scripts' `{2, type}` and friends).
fn wrong_type(kind: &Value, key: &[u8]) -> NodeError {
    let kind = match kind {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    NodeError::FencingCounter {
        key: display_key(key),
        found: format!("a {kind} (WRONGTYPE)"),
    }
}

/// The reply of `acquire_fenced.lua` for the counter `key`: `{1, counter, s, us}`,
/// `{2, type}`, or, as the plain acquire, `{0, pttl}`. A granted vote whose counter is
/// unusable is an error: the key was set, so it is released with the failed attempt's keys
/// or expires, and the vote does not count.
pub(crate) fn parse_acquire_fenced(value: &Value, key: &[u8]) -> Result<FencedReply, NodeError> {
    match value {
        Value::Array(items) if items.len() == 4 && items[0] == Value::Int(1) => {
            let time = parse_time(&items[2], &items[3])?;
            let counter = parse_counter(&items[1], key)?;
            let counter = check_counter_lead(counter, time, key)?;
            Ok(FencedReply::Granted { counter, time })
        }
        Value::Array(items) if items.len() == 2 && items[0] == Value::Int(2) => {
            Err(wrong_type(&items[1], key))
        }
        other => match parse_acquire(other)? {
            crate::node::AcquireReply::Held(left) => Ok(FencedReply::Held(left)),
            crate::node::AcquireReply::Granted => Err(NodeError::Protocol(format!(
                "fenced acquire script returned {other:?}"
            ))),
        },
    }
}

/// The reply of `fence_commit.lua`: 1 or 0, or a description of a counter it refused to
/// touch.
pub(crate) fn parse_commit(value: &Value, key: &[u8]) -> Result<bool, NodeError> {
    match value {
        Value::BulkString(found) => Err(NodeError::FencingCounter {
            key: display_key(key),
            found: String::from_utf8_lossy(found).into_owned(),
        }),
        other => parse_flag(other),
    }
}

/// The reply of `fence_read.lua`: what the voter guarantees every later token exceeds,
/// `max(counter, time)`.
pub(crate) fn parse_read(value: &Value, key: &[u8]) -> Result<u64, NodeError> {
    match value {
        Value::Array(items) if items.len() == 3 => {
            // The counter, checked against the clock like a grant's. Not its max with the
            // clock: while a lock is held, the quorum's counter is the holder's token, which
            // is what a status read must show (`redlock status` next to `REDLOCK_FENCING_TOKEN`).
            let time = parse_time(&items[1], &items[2])?;
            check_counter_lead(parse_counter(&items[0], key)?, time, key)
        }
        Value::Array(items) if items.len() == 4 => Err(wrong_type(&items[3], key)),
        other => {
            parse_flag(other)?;
            Err(NodeError::Protocol(format!(
                "fencing read script returned {other:?}"
            )))
        }
    }
}
