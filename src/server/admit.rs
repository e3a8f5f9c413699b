//! The admission rule: who may vote in a round, given each voter's facts (one vote per
//! server, no cluster node in independent mode, optionally no evicting or quarantined server).

#[cfg(test)]
use std::borrow::Borrow;

use tokio::time::Instant;

use crate::config::{LockConfig, Mode};
use crate::error::NodeError;

use super::ServerFacts;

/// A rule a feature adds to admission (the layer above hands it down, so that admission
/// imports no feature): why a server with these facts may not vote now, if it may not.
pub(crate) type Veto = fn(&LockConfig, &ServerFacts, Instant) -> Option<NodeError>;

/// The [`Veto`] of no feature.
#[cfg(test)]
fn no_veto(_: &LockConfig, _: &ServerFacts, _: Instant) -> Option<NodeError> {
    None
}

/// Who may vote in one round, given each connected voter's facts (in voter order): the
/// reason a voter may not, or `None` when it may. A voter may not vote
/// - without facts (its connection has not confirmed what it is),
/// - in independent mode, when it is a cluster node (`cluster_enabled:1`),
/// - when `refuse_evicting_voters` is set and it can evict keys,
/// - when a feature's [`Veto`] refuses it (`features::quarantine`: `delayed_restart` is set
///   and it started, or was seen to restart or change role, less than the longest TTL ago,
///   and may have lost keys),
/// - when an earlier voter is the same server (same `run_id`): one server never votes twice,
///   whether it was listed under two names or two voter keys moved onto one master.
#[cfg(test)]
pub(crate) fn admit<F: Borrow<ServerFacts>>(
    mode: Mode,
    config: &LockConfig,
    facts: &[Option<F>],
) -> Vec<Option<NodeError>> {
    admit_at(mode, config, facts, Instant::now())
}

/// [`admit`] at `now`.
#[cfg(test)]
pub(crate) fn admit_at<F: Borrow<ServerFacts>>(
    mode: Mode,
    config: &LockConfig,
    facts: &[Option<F>],
    now: Instant,
) -> Vec<Option<NodeError>> {
    facts
        .iter()
        .enumerate()
        .map(|(i, own)| {
            let earlier = facts[..i].iter().flatten().map(Borrow::borrow);
            let own = own.as_ref().map(Borrow::borrow);
            admit_one(mode, config, no_veto, earlier, own, now)
        })
        .collect()
}

/// The verdict of [`admit`] on one voter's facts (`own`), given the facts of the voters
/// admitted before it (`earlier`), at `now`.
pub(crate) fn admit_one<'f>(
    mode: Mode,
    config: &LockConfig,
    veto: Veto,
    mut earlier: impl Iterator<Item = &'f ServerFacts>,
    own: Option<&ServerFacts>,
    now: Instant,
) -> Option<NodeError> {
    let Some(own) = own else {
        return Some(NodeError::Refused(
            "its server facts (INFO) were not read yet, so it cannot vote".into(),
        ));
    };
    if let Some(reason) = refusal(mode, config, own) {
        return Some(reason);
    }
    if let Some(vetoed) = veto(config, own, now) {
        return Some(vetoed);
    }
    let same_server = earlier.any(|earlier| earlier.run_id == own.run_id);
    if same_server {
        return Some(NodeError::Refused(format!(
            "it is the same server (run_id {}) as an earlier voter, and one server never \
             votes twice: in independent mode list each master once, by one name; in \
             cluster mode keep cluster_voters at most the number of masters and the slot \
             layout of `redis-cli --cluster create`",
            own.run_id
        )));
    }
    None
}

/// Why a server may never vote in this configuration, whatever the others are: a cluster node
/// in independent mode, or an evicting server when `refuse_evicting_voters` is set.
pub(crate) fn refusal(mode: Mode, config: &LockConfig, facts: &ServerFacts) -> Option<NodeError> {
    if mode == Mode::Independent && facts.cluster_enabled {
        return Some(NodeError::Refused(
            "it is a Redis Cluster node (cluster_enabled:1) and cannot vote as an independent \
             master; list only standalone masters, or only nodes of one cluster"
                .into(),
        ));
    }
    if config.refuses_evicting_voters() && facts.can_evict() {
        return Some(NodeError::Refused(facts.eviction_reason()));
    }
    None
}
