//! The fault-injection scenarios, shared by `tests/faults_process.rs` (redis-server processes
//! started by the harness) and `tests/faults_docker.rs` (the docker-compose cluster).
//!
//! A scenario runs a [`Workload`](workload::Workload): [`CLIENTS`](workload::CLIENTS)
//! clients, each with its own [`LockManager`](redlock_cluster::LockManager) (as separate
//! processes would), contend for a few resources for a bounded number of operations and a
//! bounded time. Each critical section does a deliberately non-atomic read-modify-write (GET,
//! short sleep, SET) of a counter in a separate standalone Redis, and records its hold interval
//! on one monotonic clock. A fault is injected from a blocking thread in the middle of the run.
//! The checker ([`Report`](report::Report)) counts lost updates (successful sections minus the
//! counter) and overlapping hold intervals on the same resource. See docs/fault-injection.md.
//!
//! # Layout
//! - [`Target`] (here): what a scenario can do to a deployment; the two test binaries
//!   implement it.
//! - `workload.rs`: the contending clients and the fault thread
//!   ([`run_with_fault`](workload::run_with_fault)).
//! - `record.rs`: what a run records ([`Run`](record::Run), [`Attempt`](record::Attempt),
//!   [`Outcome`](record::Outcome)).
//! - `checker.rs`: overlapping holds and lost updates, unit-tested with a made-up overlap.
//! - `report.rs`: one results-table line per run ([`Report`](report::Report)).
//! - `under_load.rs`: kill, pause and restart while the workload runs.
//! - `stepwise.rs`: fail over while a lock is held; `SCRIPT FLUSH` and restart everything.
//! - `early_restart.rs`: a voter restarted empty before the TTL ran out, with and without
//!   `LockConfig::delayed_restart`.
//! - `network.rs`: link faults through one `FaultProxy` per voter (partitions by client
//!   group, slow and flapping links, a blackholed voter that is also the first seed).
//! - `skew.rs`: voters whose server clock runs fast or jumps (Valkey under libfaketime).
//! - `paused_holder.rs`: a holder process stopped past its validity, with and without fencing.
// Each test binary uses a subset of the scenarios and backends.
#![allow(dead_code, unused_imports)]

mod checker;
mod early_restart;
mod network;
mod paused_holder;
mod record;
mod report;
mod skew;
mod stepwise;
mod under_load;
mod workload;

// What the two test binaries name; the rest is reached through its module.
pub use early_restart::{HELD, restart_empty_early};
pub use network::{
    Proxied, asymmetric_partition, blackholed_voter_and_seed, flapping_link, majority_partition,
    slow_link,
};
pub use paused_holder::{child_main, paused_holder};
pub use skew::{ClockFault, FULL_HOLD, HOLD, Skewed, skewed_clock};
pub use stepwise::{failover_while_held, flush_and_restart_all};
pub use under_load::{kill_one, kill_two, pause_one, restart_one};
pub use workload::{FAILOVER_TIMEOUT, TTL};

/// A deployment the scenarios can hurt. Nodes are named by index; the harness and Docker
/// implementations live in the two test binaries. Every method panics on failure (tests).
pub trait Target: Send + 'static {
    /// `"process 3 masters"`, `"process cluster"`, `"docker cluster"`.
    fn backend(&self) -> String;
    /// The URLs the lock clients are given.
    fn lock_urls(&self) -> Vec<String>;
    /// Whether this is a Redis Cluster (masters with replicas).
    fn is_cluster(&self) -> bool;
    /// The nodes that vote now (masters), in slot order.
    fn masters(&self) -> Vec<usize>;
    /// Every node.
    fn all_nodes(&self) -> Vec<usize>;
    /// `redis://127.0.0.1:port` of a node.
    fn url_of(&self, node: usize) -> String;
    /// SIGKILL.
    fn kill(&mut self, node: usize);
    /// Start a killed node again with its data (AOF), or kill and restart a running one.
    fn restart(&mut self, node: usize);
    /// Start a killed node again without its data.
    fn restart_empty(&mut self, node: usize);
    /// SIGSTOP.
    fn pause(&self, node: usize);
    /// SIGCONT.
    fn resume(&self, node: usize);
    /// Kill a master and wait until its replica has taken over (cluster only). Returns the
    /// new master.
    fn fail_over(&mut self, master: usize) -> usize;
    /// Restart every node (with its data) and wait until the deployment is healthy.
    fn restart_all(&mut self);
    /// Wait until every running node is healthy (cluster: state ok, replicas linked).
    fn wait_healthy(&self);
}
