//! What a run records: one [`Attempt`] per acquire call, on one monotonic clock.

use std::time::Instant;

use redlock_cluster::LockError;

/// How one acquire attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Granted, and the counter was written while the lock was valid. `end` is
    /// min(release start, validity deadline).
    Section { end: Instant, votes: usize },
    /// Granted, but the validity ran out before the write: nothing was written.
    Abandoned,
    /// `Ok(None)`: others hold it.
    Contended,
    /// `LockError::Unavailable`, with its message.
    Unavailable(String),
    /// Any other error, with its message.
    Other(String),
}

/// One acquire attempt on the shared clock.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Which client.
    pub client: usize,
    /// Which resource.
    pub resource: usize,
    /// When the acquire call started.
    pub requested: Instant,
    /// When it returned (for a grant: the start of the hold interval).
    pub returned: Instant,
    /// What happened.
    pub outcome: Outcome,
}

impl Attempt {
    /// The hold interval `[returned, end)` of a successful section.
    pub fn hold(&self) -> Option<(Instant, Instant)> {
        match self.outcome {
            Outcome::Section { end, .. } => Some((self.returned, end)),
            _ => None,
        }
    }

    /// Whether the call lies entirely inside `[from, until]`.
    pub fn within(&self, from: Instant, until: Instant) -> bool {
        self.requested >= from && self.returned <= until
    }
}

/// What a run recorded.
#[derive(Debug, Clone)]
pub struct Run {
    /// Every attempt, in no particular order.
    pub attempts: Vec<Attempt>,
    /// The counter of each resource at the end (`None` when the scenario has no counter).
    pub counters: Option<Vec<i64>>,
}

impl Run {
    /// Successful sections.
    pub fn sections(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| a.hold().is_some())
    }

    /// Successful sections whose acquire started after `t`.
    pub fn sections_after(&self, t: Instant) -> usize {
        self.sections().filter(|a| a.requested > t).count()
    }
}

/// The failure kind of an error.
pub fn classify(error: &LockError) -> Outcome {
    if error.is_unavailable() {
        Outcome::Unavailable(error.to_string())
    } else {
        Outcome::Other(error.to_string())
    }
}
