//! Parsers of the replies that say which master serves which slots: `CLUSTER SHARDS` (Redis 7+)
//! and `CLUSTER SLOTS`. Pure, so that they are tested apart from any connection.

use redis::Value;

use crate::node::SlotRange;

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A node's announced address, with the forms Redis uses for "unknown" (nil, `""`, `"?"`)
/// as the empty string.
fn announced_host(value: Option<&Value>) -> String {
    match value.and_then(text) {
        Some(host) if host != "?" => host,
        _ => String::new(),
    }
}

fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

fn slot(value: &Value) -> Option<u16> {
    number(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n < crate::keys::SLOT_COUNT)
}

/// The entries of a RESP2 flat key/value array or a RESP3 map.
fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| text(k).map(|k| (k, v)))
            .collect(),
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|kv| text(&kv[0]).map(|k| (k, &kv[1])))
            .collect(),
        _ => None,
    }
}

fn field<'a>(entries: &'a [(String, &'a Value)], name: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// Parse a `CLUSTER SHARDS` reply into the slot ranges of each shard's master.
/// `tls` picks the `tls-port` field when the nodes announce one.
pub(crate) fn parse_cluster_shards(reply: &Value, tls: bool) -> Result<Vec<SlotRange>, String> {
    let Value::Array(shards) = reply else {
        return Err(format!("CLUSTER SHARDS returned {reply:?}"));
    };
    let mut ranges = Vec::new();
    for shard in shards {
        let shard = pairs(shard).ok_or("a shard is not a key/value list")?;
        let Some(Value::Array(bounds)) = field(&shard, "slots") else {
            return Err("a shard has no slots list".into());
        };
        let Some(Value::Array(nodes)) = field(&shard, "nodes") else {
            return Err("a shard has no nodes list".into());
        };
        if bounds.is_empty() {
            continue; // a shard without slots (for example a fresh empty master) votes on nothing
        }
        // Valkey 8 groups shards by shard id, so after a failover the dead old master is still
        // listed in its old shard, as `role master` with `health fail`, often before the
        // promoted replica (Redis 7.0 lists it in a shard of its own, without slots). The
        // shard's master is the healthiest master: online, then anything but failed.
        let master = nodes
            .iter()
            .filter_map(pairs)
            .filter(|node| field(node, "role").and_then(text).as_deref() == Some("master"))
            .min_by_key(
                |node| match field(node, "health").and_then(text).as_deref() {
                    Some("online") => 0,
                    Some("fail") => 2,
                    _ => 1,
                },
            )
            .ok_or("a shard with slots has no master")?;
        let host = match announced_host(field(&master, "ip")) {
            host if host.is_empty() => announced_host(field(&master, "endpoint")),
            host => host,
        };
        let port = tls
            .then(|| field(&master, "tls-port"))
            .flatten()
            .or_else(|| field(&master, "port"))
            .and_then(number)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("a master has no port")?;
        for pair in bounds.chunks(2) {
            match pair {
                [start, end] => ranges.push(SlotRange {
                    start: slot(start).ok_or("bad slot number")?,
                    end: slot(end).ok_or("bad slot number")?,
                    host: host.clone(),
                    port,
                }),
                _ => return Err("odd number of slot bounds".into()),
            }
        }
    }
    Ok(ranges)
}

/// Parse a `CLUSTER SLOTS` reply (`[[start, end, [ip, port, id, ...], replicas...], ...]`).
pub(crate) fn parse_cluster_slots(reply: &Value) -> Result<Vec<SlotRange>, String> {
    let Value::Array(entries) = reply else {
        return Err(format!("CLUSTER SLOTS returned {reply:?}"));
    };
    entries
        .iter()
        .map(|entry| {
            let Value::Array(fields) = entry else {
                return Err("a slot entry is not an array".to_string());
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err("a slot entry is too short".to_string());
            };
            let host = announced_host(master.first());
            let port = master
                .get(1)
                .and_then(number)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("master without port")?;
            Ok(SlotRange {
                start: slot(start).ok_or("bad slot number")?,
                end: slot(end).ok_or("bad slot number")?,
                host,
                port,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn shard(slots: &[i64], nodes: Vec<(&str, i64, &str)>) -> Value {
        shard_with_health(
            slots,
            nodes
                .into_iter()
                .map(|(ip, port, role)| (ip, port, role, "online"))
                .collect(),
        )
    }

    fn shard_with_health(slots: &[i64], nodes: Vec<(&str, i64, &str, &str)>) -> Value {
        Value::Array(vec![
            bulk("slots"),
            Value::Array(slots.iter().map(|s| Value::Int(*s)).collect()),
            bulk("nodes"),
            Value::Array(
                nodes
                    .into_iter()
                    .map(|(ip, port, role, health)| {
                        Value::Array(vec![
                            bulk("id"),
                            bulk("abc"),
                            bulk("port"),
                            Value::Int(port),
                            bulk("ip"),
                            bulk(ip),
                            bulk("role"),
                            bulk(role),
                            bulk("health"),
                            bulk(health),
                        ])
                    })
                    .collect(),
            ),
        ])
    }

    /// Valkey 8.1 after a failover: the dead old master stays in its shard (same shard id),
    /// listed first, still `master` but `health fail`; the promoted replica is the voter.
    #[test]
    fn a_failed_master_listed_beside_the_promoted_one_is_not_the_voter() {
        let reply = Value::Array(vec![shard_with_health(
            &[0, 5460],
            vec![
                ("127.0.0.1", 7000, "master", "fail"),
                ("127.0.0.1", 7003, "master", "online"),
                ("127.0.0.1", 7006, "replica", "online"),
            ],
        )]);
        let ranges = parse_cluster_shards(&reply, false).unwrap();
        assert_eq!(ranges[0].port, 7003);
        // Before the failover the dead master is the only one: still the shard's voter.
        let reply = Value::Array(vec![shard_with_health(
            &[0, 5460],
            vec![
                ("127.0.0.1", 7000, "master", "fail"),
                ("127.0.0.1", 7003, "replica", "online"),
            ],
        )]);
        assert_eq!(parse_cluster_shards(&reply, false).unwrap()[0].port, 7000);
    }

    #[test]
    fn parses_cluster_shards() {
        let reply = Value::Array(vec![
            shard(
                &[0, 5460],
                vec![
                    ("127.0.0.1", 7003, "replica"),
                    ("127.0.0.1", 7000, "master"),
                ],
            ),
            shard(
                &[5461, 10922, 16000, 16001],
                vec![("127.0.0.1", 7001, "master")],
            ),
            shard(&[], vec![("127.0.0.1", 7009, "master")]),
        ]);
        let ranges = parse_cluster_shards(&reply, false).unwrap();
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            SlotRange {
                start: 0,
                end: 5460,
                host: "127.0.0.1".into(),
                port: 7000
            }
        );
        assert_eq!(ranges[2].start, 16000);
        assert_eq!(ranges[2].port, 7001);
        assert!(parse_cluster_shards(&Value::Nil, false).is_err());
        assert!(
            parse_cluster_shards(
                &Value::Array(vec![shard(&[1], vec![("h", 1, "master")])]),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn parses_cluster_slots() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("id")]),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(7003), bulk("id2")]),
        ])]);
        let ranges = parse_cluster_slots(&reply).unwrap();
        assert_eq!(
            ranges,
            vec![SlotRange {
                start: 0,
                end: 5460,
                host: "127.0.0.1".into(),
                port: 7000
            }]
        );
        assert!(parse_cluster_slots(&Value::Array(vec![Value::Int(3)])).is_err());
    }

    #[test]
    fn a_node_that_never_met_a_peer_announces_no_address() {
        // A one-node cluster: CLUSTER SHARDS gives `ip ""`, CLUSTER SLOTS an empty string.
        let reply = Value::Array(vec![shard(&[0, 16383], vec![("", 7000, "master")])]);
        let ranges = parse_cluster_shards(&reply, false).unwrap();
        assert_eq!(ranges[0].host, "");
        assert_eq!(ranges[0].port, 7000);
        for host in [bulk(""), bulk("?"), Value::Nil] {
            let reply = Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(16383),
                Value::Array(vec![host, Value::Int(7000), bulk("id")]),
            ])]);
            let ranges = parse_cluster_slots(&reply).unwrap();
            assert_eq!((ranges[0].host.as_str(), ranges[0].port), ("", 7000));
        }
    }
}
