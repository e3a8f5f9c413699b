//! The info round: every voter's token and remaining time, decided by quorum.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::quorum::{InfoDecision, collect_failures, decide_info, quorum, unavailable};
use crate::error::LockError;
use crate::input::Resource;
use crate::lock::{LockInfo, LockToken, NodeLockState};
use crate::node::KeyState;
use crate::topology::voters_share_master;

use super::votes::no_voter;
use super::{Ask, Round, Shared, Vote};

impl Round<'_> {
    /// A read round: `vote` on every voter, every answer awaited (each voter is reported)
    /// until the node timeout; the answers in voter order, refused voters' as their reason.
    pub(crate) async fn read_all<T: Send + 'static>(
        &self,
        vote: &Vote<T>,
    ) -> Vec<(String, Result<T, crate::error::NodeError>)> {
        let turn = self.turn().await;
        let limit = self.config.node_timeout_value();
        // Reads write nothing and carry no token of ours.
        let shared = self.shared(LockToken::new());
        let ask = Ask {
            shared: &shared,
            targets: None,
            deadline: Instant::now() + limit,
            patience: Duration::ZERO,
            release_on_cancel: false,
            early: false,
        };
        let (answers, _rest) = self.ask(&turn, ask, vote, |_| true).await;
        answers
            .named(&self.voters, limit)
            .into_iter()
            .map(|(node, answer)| (node.to_string(), answer))
            .collect()
    }

    /// One info round: every voter's token and remaining time, decided by quorum.
    pub(crate) async fn inspect(
        &self,
        resource: Resource<'_>,
        token: Option<&LockToken>,
    ) -> Result<LockInfo, LockError> {
        let voters = &self.voters;
        let vote: &Vote<KeyState> = &|shared: Arc<Shared>, i| {
            Box::pin(async move {
                let voter = shared.voters.get(i).ok_or_else(no_voter)?;
                super::votes::inspect(voter.node.as_ref(), &voter.key).await
            })
        };
        let results = self.read_all(vote).await;
        let answers: Vec<Option<KeyState>> = results
            .iter()
            .map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let nodes: Vec<NodeLockState> = voters
            .iter()
            .zip(results)
            .map(|(voter, (node, result))| {
                let (holder, remaining, error) = match result {
                    Ok((holder, remaining)) => (holder, remaining, None),
                    Err(error) => (None, None, Some(error)),
                };
                NodeLockState {
                    node,
                    key: String::from_utf8_lossy(&voter.key).into_owned(),
                    holder,
                    remaining,
                    error,
                }
            })
            .collect();
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
