//! The info round: every voter's token and remaining time, decided by quorum.

use futures::future::join_all;

use crate::error::{LockError, NodeError};
use crate::input::Resource;
use crate::lock::{LockInfo, LockToken, NodeLockState};
use crate::node::{KeyState, with_deadline};
use crate::quorum::{InfoDecision, collect_failures, decide_info, quorum, unavailable};
use crate::topology::{admit_votes, voters_share_master};

use super::Round;

impl Round<'_> {
    /// One info round: every voter's token and remaining time, decided by quorum.
    pub(crate) async fn inspect(
        &self,
        resource: Resource<'_>,
        token: Option<&LockToken>,
    ) -> Result<LockInfo, LockError> {
        let voters = &self.voters;
        let limit = self.config.node_timeout_value();
        let results: Vec<Result<KeyState, NodeError>> = join_all(
            voters
                .iter()
                .map(|v| with_deadline(limit, v.node.inspect(&v.key))),
        )
        .await;
        let results = admit_votes(self.mode, self.config, voters, results);
        let answers: Vec<Option<KeyState>> =
            results.iter().map(|r| r.as_ref().ok().cloned()).collect();
        let nodes: Vec<NodeLockState> = voters
            .iter()
            .zip(&results)
            .map(|(voter, result)| {
                let (holder, remaining, error) = match result {
                    Ok((holder, remaining)) => (holder.clone(), *remaining, None),
                    Err(error) => (None, None, Some(error.clone())),
                };
                NodeLockState {
                    node: voter.node.addr().to_string(),
                    key: String::from_utf8_lossy(&voter.key).into_owned(),
                    holder,
                    remaining,
                    error,
                }
            })
            .collect();
        self.note_errors(nodes.iter().filter_map(|n| n.error.as_ref()));
        let (locked, holder, remaining) =
            match decide_info(&answers, self.config.drift_factor_value()) {
                InfoDecision::Locked { token, remaining } => (true, Some(token), remaining),
                InfoDecision::Free => (false, None, None),
                InfoDecision::Unknown => {
                    return Err(unavailable(
                        voters.len(),
                        answers.iter().flatten().count(),
                        collect_failures(
                            nodes
                                .iter()
                                .filter_map(|n| n.error.as_ref().map(|e| (&n.node, e))),
                        ),
                    ));
                }
            };
        Ok(LockInfo {
            resource: resource.as_str().to_string(),
            locked,
            held_by_caller: token.is_some_and(|t| holder.as_deref() == Some(t.as_str())),
            holder,
            remaining,
            quorum: quorum(voters.len()),
            mode: self.mode,
            voters_share_master: voters_share_master(voters),
            nodes,
            fencing_token: None,
        })
    }
}
