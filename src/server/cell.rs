//! `FactsCell`: the facts of one node's current connection, with what this client saw change
//! at the address before (restarts, role changes) and the warnings already logged.

use std::sync::{Arc, Mutex};

use super::ServerFacts;

/// The facts of one node's current connection, and what was already logged about it. A std
/// mutex: it is never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct FactsCell {
    state: Mutex<FactsState>,
}

#[derive(Debug, Default)]
struct FactsState {
    /// Shared, never copied: every round's admission check reads it.
    facts: Option<Arc<ServerFacts>>,
    warned_evicting: bool,
    warned_volatile: bool,
}

impl FactsCell {
    /// The facts read when the current connection opened; `None` before the first one.
    pub(crate) fn get(&self) -> Option<Arc<ServerFacts>> {
        crate::mutex::lock(&self.state).facts.clone()
    }

    /// Record the facts of a freshly opened connection to `addr` (or of a fresh read on an
    /// open one): note a restart (a new `run_id`) or a new role as seen now, keep what was
    /// seen before, and log, once per node, a server that can evict keys or that does not
    /// persist them.
    pub(crate) fn record(&self, addr: &str, mut facts: ServerFacts) {
        let mut state = crate::mutex::lock(&self.state);
        if let Some(old) = &state.facts {
            facts.restart_seen_at = old.restart_seen_at;
            facts.role_change_seen_at = old.role_change_seen_at;
            if old.run_id != facts.run_id {
                facts.restart_seen_at = Some(facts.read_at);
                tracing::warn!(
                    node = addr,
                    old_run_id = %old.run_id,
                    new_run_id = %facts.run_id,
                    "voter restarted (its run_id changed): keys it held may be lost unless it \
                     persists them (appendonly yes, appendfsync always)"
                );
            }
            if old.role != facts.role {
                facts.role_change_seen_at = Some(facts.read_at);
                tracing::warn!(
                    node = addr,
                    old_role = %old.role,
                    new_role = %facts.role,
                    "voter changed role (failover or REPLICAOF): it may not have the keys its \
                     predecessor granted"
                );
            }
        }
        if facts.can_evict() && !state.warned_evicting {
            state.warned_evicting = true;
            tracing::warn!(
                node = addr,
                maxmemory = facts.maxmemory,
                maxmemory_policy = %facts.maxmemory_policy,
                "voter {addr} can evict lock keys under memory pressure, which can hand one lock \
                 to two clients; set `maxmemory-policy noeviction` on it (its votes are refused \
                 unless LockConfig::refuse_evicting_voters(false) accepts the risk)"
            );
        }
        if !facts.aof_enabled && !state.warned_volatile {
            state.warned_volatile = true;
            tracing::warn!(
                node = addr,
                "voter {addr} does not persist lock keys (appendonly no): restarted, it comes \
                 back empty and can hand a held lock to a second client; set `appendonly yes` \
                 with `appendfsync always`, keep it down longer than the longest TTL, or let \
                 the client enforce that with LockConfig::delayed_restart"
            );
        }
        state.facts = Some(Arc::new(facts));
    }
}
