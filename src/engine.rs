//! The round engine: how a vote is run and decided, on the voter port (`node`), with no
//! feature and no Redis code of its own.
//!
//! - `round`: one mechanism for every round kind (`Round::ask`): a turn, the calls, admission
//!   as answers arrive, early decision, the leftovers handed to a counted task.
//! - `quorum`: the pure decisions (quorum, drift, validity), property-tested.
//! - `flight`: a manager's bound on rounds in flight and its background tasks.

pub(crate) mod flight;
pub(crate) mod quorum;
pub(crate) mod round;
