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
//! The layers, from the top: the handles above, the features, the round engine, the voter
//! port, and the Redis adapter below it. Nothing imports a layer above its own, and `src/`
//! has no import circle.
//!
//! How a vote is run and decided (`engine`):
//! - `input`: every check of user input, done once per call (URLs, resource names, TTLs).
//! - `engine::round`: one mechanism for every round kind (`Round::ask`): a turn of the
//!   in-flight bound, each call sent once its voter's connection is open, answers admitted
//!   (one vote per server) as they arrive and decided as soon as the outcome is known,
//!   under one per-node deadline; what is left goes to a background task that a cancelled
//!   caller cannot stop. `round::answers`: admission and the gathering of answers;
//!   `round::acquire`, `round::extend`, `round::release`, `round::inspect`: one vote and one
//!   decision each; `round::votes`: every plain vote as one script call of the port
//!   (acquire and extend followed by `WAIT` when replicas must acknowledge them);
//!   `round::cleanup`: what is left of a round, finished in the background.
//! - `engine::flight`: a manager's bound on rounds in flight, and its background tasks, which
//!   [`LockManager::close`] waits for ([`CloseReport`]).
//! - `engine::quorum`: how a round is decided (quorum, drift, validity), pure and
//!   property-tested.
//! - `retry`: [`RetryPolicy`], exponential backoff with full jitter.
//!
//! The opt-in features (`features`), on the engine and the port:
//! - `features::fencing`: fencing tokens: the fenced acquire and its commit round on the
//!   engine, their decisions, the counter keys.
//! - `features::acks`: replica-acknowledged votes (`LockConfig::replica_acks`): why `WAIT`
//!   runs on connections of its own, and the connect-time check that voters have replicas.
//! - `features::notify`: notified waits: release notices over sharded pub/sub, and the
//!   per-manager FIFO queue of waiters that a notice wakes before their backoff timer.
//! - `features::quarantine`: delayed restarts, enforced (`LockConfig::delayed_restart`): the
//!   pure rule that keeps a voter that may have lost its keys from voting until the longest
//!   TTL passed, handed to admission by the manager as a veto (`server::Veto`).
//! - `features::health`: [`HealthReport`], every voter probed at once (facts, round trip,
//!   clock rate) and judged by pure functions into findings with a severity and a fix.
//!
//! Who votes, and the port to them:
//! - `topology`: the voters (cluster masters or independent masters) and which key each
//!   stores; `topology::mode`: cluster or independent, decided from the seeds' answers;
//!   `topology::discovery`: reading the voters from the seeds; `topology_cache`: the cached
//!   view and its background refresh.
//! - `keys`: the cluster key scheme (one slot window per voter), public as [`cluster`].
//! - `node`: the voter port, what the engine and the features ask of one voter (run a
//!   script, optionally followed by `WAIT`; read server facts; subscribe).
//! - `server`: what a voter's server says about itself (`run_id`, `cluster_enabled`, eviction
//!   policy), read once per connection; `server::admit`: the rule of who may vote on it (one
//!   vote per server); `server::cell`: a node's current facts and what changed at its address;
//!   `server::info`: the parser of `INFO`.
//! - `adapter`: all redis-rs code. `adapter::redis_node`: the real voter over one multiplexed
//!   connection (`connection`: opening it; `acked`: connections of its own for acknowledged
//!   writes; `fenced`: the fencing scripts' calls and replies; `replies`: the lock scripts'
//!   replies; `seeds`: the nodes kept by address, the seeds of discovery);
//!   `adapter::scripts`: the one registry of Lua scripts, preloaded on connect;
//!   `adapter::cluster_replies`: parsers of `CLUSTER SHARDS` / `CLUSTER SLOTS`;
//!   `redis_node::facts`: reading a server's facts (`INFO`, `CONFIG GET`).
//! - `mutex`: the one poison-tolerant lock of a std mutex.
//! - `tls` (feature `tls`): the rustls crypto provider (the application's if it installed
//!   one, else ring's) and the root CA given with `LockConfig::tls_root_ca`.
//!
//! Configuration and errors:
//! - `config`: [`LockConfig`], timing allowances, retries, key naming, mode, with its getters;
//!   its checks in `config::validate`. It imports no feature.
//! - `error`: [`LockError`]; `error::node`: the per-node [`NodeError`] and [`NodeFailures`].
//! - `sim` (tests only): the engine over simulated in-memory nodes, for model-based property
//!   tests (`sim::fencing`: fencing; `sim::delayed_restart`: the delayed-restart rule).
//!
//! The workspace around this crate holds what is not the library: `harness/` (real
//! `redis-server` processes, clusters and Docker containers for tests), `demo/` (the three
//! demos, `cargo run --release`), `bench/` (benchmarks) and `tls-tests/` (the TLS tests, a crate of
//! their own so that a plain `cargo test` runs them with the `tls` feature on).
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adapter;
mod config;
mod distributed_lock;
mod engine;
mod error;
mod features;
mod guard;
mod input;
mod keys;
mod lock;
mod manager;
mod mutex;
mod node;
mod retry;
mod server;
#[cfg(test)]
mod sim;
#[cfg(feature = "tls")]
mod tls;
mod topology;
mod topology_cache;

// The lock types a user holds and the handles that make them.
pub use distributed_lock::RedisDistributedLock;
pub use engine::flight::CloseReport;
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
pub use features::health::{
    ClockOffset, ClockRate, Finding, HealthReport, ReplicaLag, Severity, VoterHealth,
};

/// For cluster operators: which slot, and so which master, holds each voter's key.
///
/// In cluster mode voter `i` of `V` stores its key in a hash slot of band `i`, so that under
/// `redis-cli --cluster create`'s even split the `V` keys of a resource live on `V` different
/// masters. These functions let an operator check where a resource's keys are, or lay out
/// slots to match.
pub mod cluster {
    pub use crate::keys::{
        MAX_CLUSTER_VOTERS, SLOT_COUNT, cluster_voter_keys, even_slot_ranges, key_slot, slot_band,
    };
}
