//! The opt-in features, layered above the engine and the voter port: nothing below imports
//! them.
//!
//! - `acks`: replica-acknowledged votes (`LockConfig::replica_acks`).
//! - `fencing`: fencing tokens by quorum (`LockConfig::fencing`).
//! - `notify`: notified waits over sharded pub/sub.
//! - `quarantine`: delayed restarts, enforced (`LockConfig::delayed_restart`).
//! - `health`: the voter health report.

pub(crate) mod acks;
pub(crate) mod fencing;
pub(crate) mod health;
pub(crate) mod notify;
pub(crate) mod quarantine;
