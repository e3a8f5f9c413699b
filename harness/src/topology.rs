//! Reading the cluster's own view of itself (`CLUSTER NODES`), and the slot split.

use std::ops::RangeInclusive;

pub use redlock_cluster::cluster::{SLOT_COUNT as SLOTS, even_slot_ranges};

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeEntry {
    pub(crate) id: String,
    pub(crate) port: u16,
    pub(crate) flags: Vec<String>,
    /// The master's id, for a replica.
    pub(crate) master_id: Option<String>,
    pub(crate) slots: Vec<RangeInclusive<u16>>,
}

impl NodeEntry {
    pub(crate) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub(crate) fn is_master(&self) -> bool {
        self.has_flag("master")
    }

    pub(crate) fn is_replica(&self) -> bool {
        self.has_flag("slave")
    }

    /// Failed, suspected, or not yet a full member: not part of a settled view.
    pub(crate) fn is_unsettled(&self) -> bool {
        ["fail", "fail?", "handshake", "noaddr"]
            .iter()
            .any(|flag| self.has_flag(flag))
    }

    pub(crate) fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| range.contains(&slot))
    }
}

/// The masters that serve slots and are not marked failed, ordered by their lowest slot.
pub(crate) fn serving_masters(view: &[NodeEntry]) -> Vec<&NodeEntry> {
    let mut masters: Vec<(u16, &NodeEntry)> = view
        .iter()
        .filter(|e| e.is_master() && !e.has_flag("fail"))
        .filter_map(|e| Some((e.slots.iter().map(|r| *r.start()).min()?, e)))
        .collect();
    masters.sort_unstable_by_key(|(lowest, _)| *lowest);
    masters.into_iter().map(|(_, entry)| entry).collect()
}

/// The replicas of `master` that are settled members (not failed or suspected).
pub(crate) fn healthy_replicas<'a>(
    view: &'a [NodeEntry],
    master: &NodeEntry,
) -> Vec<&'a NodeEntry> {
    view.iter()
        .filter(|e| e.is_replica() && !e.is_unsettled())
        .filter(|e| e.master_id.as_deref() == Some(master.id.as_str()))
        .collect()
}

/// Parses `CLUSTER NODES` output; lines that do not parse are skipped.
pub(crate) fn parse_cluster_nodes(text: &str) -> Vec<NodeEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<NodeEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [
        id,
        addr,
        flags,
        master,
        _ping,
        _pong,
        _epoch,
        _link,
        slots @ ..,
    ] = fields.as_slice()
    else {
        return None;
    };
    // ip:port@cport[,hostname]
    let host_port = addr.split('@').next()?;
    let port = host_port.rsplit(':').next()?.parse().ok()?;
    let slots = slots
        .iter()
        .filter(|s| !s.starts_with('[')) // migrating/importing markers
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some(a.parse().ok()?..=b.parse().ok()?),
            None => s.parse().ok().map(|a| a..=a),
        })
        .collect();
    Some(NodeEntry {
        id: (*id).to_owned(),
        port,
        flags: flags.split(',').map(str::to_owned).collect(),
        master_id: (*master != "-").then(|| (*master).to_owned()),
        slots,
    })
}

/// A view reduced to what must agree across nodes once the cluster has settled: who owns
/// which slots, and who replicates whom (by port). Unsettled entries are left out.
pub(crate) fn settled_signature(view: &[NodeEntry]) -> Vec<String> {
    let port_of = |id: &str| view.iter().find(|e| e.id == id).map(|e| e.port);
    let mut signature: Vec<String> = view
        .iter()
        .filter(|e| !e.is_unsettled())
        .filter_map(|e| {
            if e.is_replica() {
                let master = port_of(e.master_id.as_deref()?)?;
                Some(format!("{} replicates {master}", e.port))
            } else if e.slots.is_empty() {
                None
            } else {
                Some(format!("{} owns {:?}", e.port, e.slots))
            }
        })
        .collect();
    signature.sort();
    signature
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
e7d1 127.0.0.1:30004@40004,host slave e1a2 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
e1a2 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed]
9922 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected 10923-16383
";

    #[test]
    fn parses_cluster_nodes_lines() {
        let view = parse_cluster_nodes(NODES);
        assert_eq!(view.len(), 4);
        assert_eq!(view[0].port, 30004);
        assert!(view[0].is_replica());
        assert_eq!(view[0].master_id.as_deref(), Some("e1a2"));
        assert_eq!(view[2].slots, vec![0..=5460]);
        assert!(view[2].has_flag("myself") && view[2].is_master());
        assert!(view[3].is_unsettled() && view[3].owns(16383));
    }

    #[test]
    fn signature_leaves_out_failed_nodes() {
        let signature = settled_signature(&parse_cluster_nodes(NODES));
        assert_eq!(
            signature,
            vec![
                "30001 owns [0..=5460]",
                "30002 owns [5461..=10922]",
                "30004 replicates 30001"
            ]
        );
    }

    #[test]
    fn even_split_matches_redis_cli() {
        // What `redis-cli --cluster create` prints for 3 and 5 masters.
        assert_eq!(
            even_slot_ranges(3),
            vec![0..=5460, 5461..=10922, 10923..=16383]
        );
        assert_eq!(
            even_slot_ranges(5),
            vec![
                0..=3276,
                3277..=6553,
                6554..=9829,
                9830..=13106,
                13107..=16383
            ]
        );
        assert_eq!(even_slot_ranges(1), vec![0..=16383]);
    }

    #[test]
    fn even_split_covers_every_slot_once() {
        for masters in 1..=64 {
            let ranges = even_slot_ranges(masters);
            assert_eq!(ranges.len(), masters);
            assert_eq!(*ranges[0].start(), 0);
            assert_eq!(*ranges[masters - 1].end(), SLOTS - 1);
            for pair in ranges.windows(2) {
                assert_eq!(*pair[0].end() + 1, *pair[1].start(), "{masters} masters");
            }
        }
    }
}
