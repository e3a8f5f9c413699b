//! `redlock status`: who holds a resource, decided by a quorum of voters, as text or JSON.

use std::time::Duration;

use redlock_cluster::{LockInfo, LockManager};
use serde_json::{Value, json};

use crate::args::StatusArgs;
use crate::exit::Exit;

/// Read and print the quorum's view of `args.resource`.
pub async fn status(manager: &LockManager, args: &StatusArgs) -> Exit {
    match manager.inspect(&args.resource, None).await {
        Ok(info) => {
            if args.json {
                crate::exit::print(&format!("{}\n", to_json(&info)));
            } else {
                crate::exit::print(&to_text(&info));
            }
            Exit::status(0)
        }
        Err(error) => Exit::from_lock_error(&error),
    }
}

/// Milliseconds, `null` for "no expiry" (`Duration::MAX`).
fn millis(duration: Duration) -> Value {
    if duration == Duration::MAX {
        Value::Null
    } else {
        json!(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The mode's name.
pub fn mode_name(mode: impl std::fmt::Debug) -> String {
    format!("{mode:?}").to_lowercase()
}

/// One JSON object: `resource`, `locked`, `holder`, `remaining_ms`, `quorum`, `voters`, `mode`,
/// `voters_share_master`, `fencing_token`, and `nodes` (`node`, `key`, `holder`,
/// `remaining_ms`, `error`).
fn to_json(info: &LockInfo) -> Value {
    let nodes: Vec<Value> = info
        .nodes
        .iter()
        .map(|node| {
            json!({
                "node": node.node,
                "key": node.key,
                "holder": node.holder,
                "remaining_ms": node.remaining.map_or(Value::Null, millis),
                "error": node.error.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    json!({
        "resource": info.resource,
        "locked": info.locked,
        "holder": info.holder,
        "remaining_ms": info.remaining.map_or(Value::Null, millis),
        "quorum": info.quorum,
        "voters": info.nodes.len(),
        "mode": mode_name(info.mode),
        "voters_share_master": info.voters_share_master,
        "fencing_token": info.fencing_token,
        "nodes": nodes,
    })
}

/// A few lines: the decision, then one line a voter.
fn to_text(info: &LockInfo) -> String {
    let state = match (&info.holder, info.remaining) {
        (Some(holder), Some(left)) if info.locked => {
            format!("held by {holder}, {} left", left_text(left))
        }
        (Some(holder), _) if info.locked => format!("held by {holder}"),
        _ => "free".to_string(),
    };
    let mut text = format!(
        "{}: {state}\nquorum {} of {} voters ({} mode)\n",
        info.resource,
        info.quorum,
        info.nodes.len(),
        mode_name(info.mode)
    );
    if let Some(token) = info.fencing_token {
        text.push_str(&format!(
            "fencing token {token} (the highest a quorum recorded)\n"
        ));
    }
    if info.voters_share_master {
        text.push_str(
            "WARNING: two voter keys live on one master: one node failure costs two votes\n",
        );
    }
    for node in &info.nodes {
        let view = match (&node.error, &node.holder) {
            (Some(error), _) => format!("no answer: {}", crate::exit::one_line(&error.to_string())),
            (None, Some(holder)) => match node.remaining {
                Some(left) => format!("{holder}, {} left", left_text(left)),
                None => format!("{holder}, no expiry"),
            },
            (None, None) => "free".to_string(),
        };
        text.push_str(&format!("  {} {}: {view}\n", node.node, node.key));
    }
    text
}

/// `12.345s`, or `no expiry`.
fn left_text(left: Duration) -> String {
    if left == Duration::MAX {
        "no expiry".to_string()
    } else {
        format!("{:.3}s", left.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_expiry_is_null_in_json() {
        assert_eq!(millis(Duration::MAX), Value::Null);
        assert_eq!(millis(Duration::from_millis(1500)), json!(1500));
        assert_eq!(left_text(Duration::from_millis(1500)), "1.500s");
    }
}
