//! Redlock-style quorum locks over Redis.
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(feature = "harness")]
pub mod harness;
