//! Redlock-style quorum locks over Redis, for tokio.
//!
//! A lock is granted when a majority of independent Redis masters accept it within a
//! drift-adjusted validity window. The masters are either the masters of one Redis Cluster
//! (discovered from any node, each reached directly by address, each storing its own key in a
//! slot it owns) or a list of standalone masters (classic Redlock).
//!
//! ```no_run
//! use std::time::Duration;
//! use redlock_cluster::{LockConfig, LockManager};
//!
//! # async fn demo() -> Result<(), redlock_cluster::LockError> {
//! let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
//! if let Some(lock) = manager.acquire("invoice/17", Duration::from_secs(5)).await? {
//!     assert!(lock.is_valid());
//!     manager.release(&lock).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`](LockConfig): timing allowances, retries, key naming, mode.
//! - `topology`: who votes (cluster masters or independent masters) and which key each stores.
//! - `keys`: the cluster key scheme (CRC16 slots, one slot band per voter).
//! - `scripts`: the Lua scripts each node runs; `node`: one voter's connection.
//! - `quorum`: how a round is decided (quorum, drift, validity), pure and property-tested.
//! - `engine`: [`LockManager`], which runs the rounds in parallel under deadlines.
//! - `lock`: what a user holds ([`Lock`]) and what an info read reports ([`LockInfo`]).
//! - `guard`: [`LockGuard`], a lock released on drop, with an optional auto-extending
//!   watchdog and a lost-lock signal ([`GuardOptions`], [`LostReason`]).
//! - `distributed_lock`: [`RedisDistributedLock`], the simple one-resource facade over
//!   [`LockManager`].
//! - `retry`: [`RetryPolicy`], exponential backoff with full jitter.
//! - `error`: [`LockError`] and the per-node [`NodeError`].
//! - `harness` (feature `harness`, on by default): real `redis-server` processes for tests,
//!   examples, benchmarks and the demo binary.
#![deny(missing_docs, missing_debug_implementations)]

mod cluster_replies;
mod config;
mod distributed_lock;
mod error;
mod guard;
mod info;
mod input;
mod keys;
mod lock;
mod manager;
mod node;
mod quorum;
mod redis_node;
mod retry;
mod round;
mod scripts;
#[cfg(test)]
mod sim;
mod topology;
mod topology_cache;

#[cfg(feature = "harness")]
pub mod harness;

pub use config::{LockConfig, MAX_TTL, Mode};
pub use distributed_lock::{MAX_BACKOFF_FACTOR, RedisDistributedLock};
pub use error::{LockError, NodeError, NodeFailure, NodeFailures};
pub use guard::{DEFAULT_EXTEND_FRACTION, GuardOptions, LockGuard, LostReason};
pub use input::MAX_RESOURCE_LEN;
pub use keys::{
    MAX_CLUSTER_VOTERS, SLOT_COUNT, cluster_voter_keys, crc16, even_slot_ranges, key_slot,
    slot_band,
};
pub use lock::{Lock, LockInfo, LockToken, NodeLockState};
pub use manager::LockManager;
pub use quorum::{DRIFT_FIXED, drift, quorum, validity};
pub use retry::RetryPolicy;
pub use topology_cache::REFRESH_INTERVAL;
