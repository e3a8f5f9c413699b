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
//! if let Some(mut lock) = manager.acquire("invoice/17", Duration::from_secs(5)).await? {
//!     assert!(lock.is_valid());
//!     manager.release(&mut lock).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Where to start
//! - [`RedisDistributedLock`]: one resource, the seed's API (`acquire`, `release`, `extend`,
//!   `is_locked`, `get_lock_info`), for a single owner.
//! - [`LockManager`]: many locks over shared connections; [`Lock`] values that only their
//!   owner can extend or release, and [`LockGuard`] that releases on drop.
//! - [`LockConfig`]: timeouts, drift, retries ([`RetryPolicy`]), mode ([`Mode`]).
//! - [`LockError`]: what went wrong and on which node ([`NodeError`], [`NodeFailures`]).
//! - [`LockManager::health`]: a [`HealthReport`] on every voter, with findings and fixes.
//! - [`cluster`]: for operators: where each voter's key lives (slot math, key derivation).
//!
//! # Layout
//! What a user holds:
//! - `manager`: [`LockManager`], the API: acquire (with the retry loop), extend, release,
//!   inspect; `manager::acquire`: one attempt or the retry loop; `manager::operations`:
//!   extend, release, inspect; `manager::admin`: voters, close, health, mode.
//! - `lock`: what a user holds ([`Lock`]) and what an info read reports ([`LockInfo`]).
//! - `guard`: [`LockGuard`], a lock released on drop, with an optional auto-extending
//!   watchdog and a lost-lock signal ([`LostReason`]); `guard::options`: [`GuardOptions`];
//!   `guard::watchdog`: the task that extends it and raises the signal.
//! - `distributed_lock`: [`RedisDistributedLock`], the simple one-resource facade over
//!   [`LockManager`].
//!
//! How a vote is run and decided:
//! - `input`: every check of user input, done once per call (URLs, resource names, TTLs).
//! - `round`: one round (acquire, extend, release, inspect) on all voters under one deadline,
//!   decided as soon as the outcome is known, in a task of its own that goes on with the
//!   slower answers and the cleanup of a failed round, so a cancelled caller cannot stop it;
//!   `round::answers`: who may vote and the gathering of answers; `round::acquire`,
//!   `round::extend`, `round::release`, `round::inspect`: one kind of round each;
//!   `round::cleanup`: what is left of a round, finished in the background.
//! - `flight`: a manager's bound on rounds in flight, and its background tasks, which
//!   [`LockManager::close`] waits for ([`CloseReport`]).
//! - `quorum`: how a round is decided (quorum, drift, validity), pure and property-tested.
//! - `fencing`: opt-in fencing tokens: a commit round after the acquire round, its decision,
//!   the counter keys and scripts, and the token accessors of each lock handle.
//! - `retry`: [`RetryPolicy`], exponential backoff with full jitter.
//! - `acks`: replica-acknowledged votes (`LockConfig::replica_acks`): the script and `WAIT`
//!   pipelined on connections of their own, and the rule that an unacknowledged vote fails.
//! - `notify`: notified waits: release notices over sharded pub/sub, and the per-manager FIFO
//!   queue of waiters that a notice wakes before their backoff timer.
//!
//! Who votes:
//! - `topology`: the voters (cluster masters or independent masters) and which key each
//!   stores, and which answers may count as votes; `topology::mode`: cluster or independent,
//!   decided from the seeds' answers; `topology::discovery`: reading the voters from the
//!   seeds; `topology_cache`: the cached view and its background refresh.
//! - `keys`: the cluster key scheme (one slot window per voter), public as [`cluster`].
//! - `node`: what the engine asks of one voter; `redis_node`: the real one, over one
//!   multiplexed connection (`redis_node::connection`: opening it; `redis_node::replies`: the
//!   parsers of the scripts' replies; `redis_node::seeds`: the nodes kept by address, the
//!   seeds of discovery); `scripts`: the Lua it runs; `cluster_replies`: parsers of
//!   `CLUSTER SHARDS` / `CLUSTER SLOTS`; `info`: the parser of `INFO`; `server`: what a
//!   voter's server says about itself (`run_id`, `cluster_enabled`, eviction policy), read once
//!   per connection; `server::admit`: the rule of who may vote on it (one vote per server);
//!   `server::cell`: a node's current facts and what changed at its address before.
//! - `quarantine`: delayed restarts, enforced (`LockConfig::delayed_restart`): the pure rule
//!   that keeps a voter that may have lost its keys from voting until the longest TTL passed.
//! - `health`: [`HealthReport`], every voter probed at once (facts, round trip, clock rate)
//!   and judged by pure functions into findings with a severity and a fix.
//! - `tls` (feature `tls`): the rustls crypto provider (the application's if it installed
//!   one, else ring's) and the root CA given with `LockConfig::tls_root_ca`.
//!
//! Configuration and errors:
//! - `config`: [`LockConfig`], timing allowances, retries, key naming, mode; its getters in
//!   `config::getters`, its checks in `config::validate`.
//! - `error`: [`LockError`]; `error::node`: the per-node [`NodeError`] and [`NodeFailures`].
//! - `sim` (tests only): the engine over simulated in-memory nodes, for model-based property
//!   tests.
//!
//! The workspace around this crate holds what is not the library: `harness/` (real
//! `redis-server` processes, clusters and Docker containers for tests), `demo/` (the three
//! demos, `cargo run --release`), `bench/` (benchmarks) and `tls-tests/` (the TLS tests, a crate of
//! their own so that a plain `cargo test` runs them with the `tls` feature on).
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acks;
mod cluster_replies;
mod config;
mod distributed_lock;
mod error;
mod fencing;
mod flight;
mod guard;
mod health;
mod info;
mod input;
mod keys;
mod lock;
mod manager;
mod node;
mod notify;
mod quarantine;
mod quorum;
mod redis_node;
mod retry;
mod round;
mod scripts;
mod server;
#[cfg(test)]
mod sim;
#[cfg(feature = "tls")]
mod tls;
mod topology;
mod topology_cache;

// The lock types a user holds and the handles that make them.
pub use distributed_lock::RedisDistributedLock;
pub use flight::CloseReport;
pub use guard::{GuardOptions, LockGuard, LostReason};
pub use lock::{Lock, LockInfo, LockToken, NodeLockState};
pub use manager::LockManager;

// Configuration and its limits.
pub use config::{DEFAULT_MAX_ROUNDS_IN_FLIGHT, LockConfig, MAX_TTL, Mode};
pub use input::MAX_RESOURCE_LEN;
pub use retry::RetryPolicy;

// Errors.
pub use error::{LockError, NodeError, NodeFailure, NodeFailures};

// The voter health report.
pub use health::{
    ClockOffset, ClockRate, Finding, HealthReport, ReplicaLag, Severity, VoterHealth,
};

/// For cluster operators: which slot, and so which master, holds each voter's key.
///
/// In cluster mode voter `i` of `V` stores its key in a hash slot of band `i`, so that under
/// `redis-cli --cluster create`'s even split the `V` keys of a resource live on `V` different
/// masters. These functions let an operator check where a resource's keys are, or lay out
/// slots to match.
pub mod cluster {
    pub use crate::info::parse_info;
    pub use crate::keys::{
        MAX_CLUSTER_VOTERS, SLOT_COUNT, cluster_voter_keys, even_slot_ranges, key_slot, slot_band,
    };
}
