//! A harness that runs real `redis-server` processes for tests, examples, benchmarks and the
//! demo binary.
//!
//! Everything here but [`raw_async`] is synchronous (processes, blocking sockets,
//! `thread::sleep`), so it works from `Drop`, from plain `#[test]`s and from inside a tokio
//! runtime alike, and every wait has a deadline. Servers bind 127.0.0.1 only, and the raw
//! connections refuse any other address.
//!
//! # Layout
//! - [`RedisServer`] (`node.rs`): one server process: start, kill, pause, resume, restart.
//! - [`Standalone`] (`standalone.rs`): N independent masters for classic Redlock, plain or
//!   TLS ([`Standalone::start_tls`]).
//! - [`TlsFiles`] (`tls.rs`): a throwaway CA and server certificate for TLS nodes.
//! - [`Cluster`] and [`ClusterOptions`] (`cluster.rs`): a cluster formed by hand so its
//!   layout is known, plus failover helpers; `topology.rs` reads `CLUSTER NODES`.
//! - [`demo_cluster`] (`demo.rs`): the user's cluster on 7000-7005 or a throwaway one.
//! - [`DockerCluster`] (`docker.rs`): the docker-compose cluster on 7000-7005 for the
//!   fault-injection suite, its containers killed, paused and restarted by port.
//! - [`FaultProxy`] (`proxy.rs`): a loopback TCP proxy in front of one server, per client
//!   group and direction: latency, blackholes, resets, refusals, flapping; bounded faults
//!   undone when their [`FaultGuard`] drops; per-group port translation so a cluster's
//!   announced addresses keep each client group on its own ports.
//! - [`raw_connection`] and [`raw_async`] (`raw.rs`): a connection to one node by URL, with
//!   deadlines, for tests that read or plant keys; [`info_field`] (`info.rs`): the one reader
//!   of `INFO` text.
//! - `ports.rs`: free ports that hold across threads and processes; `workdir.rs`: each
//!   node's temp directory and the sweep of orphans; `config.rs`: the redis.conf written;
//!   `binary.rs`: finding `redis-server` or `valkey-server` ([`ServerBinary`]);
//!   `clock.rs`: a node's clock under libfaketime ([`Clock`]); `wait.rs`: bounded polling; `error.rs`.
//!
//! # Nothing left running
//! Dropping a node kills its server (SIGCONT first if paused, then SIGKILL), reaps it and
//! deletes its directory. If the test process dies before its destructors run (SIGKILL, abort),
//! its servers survive it; the next process that uses the harness kills them and deletes their
//! directories (see `workdir.rs`: ownership is an `flock` the kernel releases at process death).
//!
//! # Example
//! ```no_run
//! use redlock_harness::{Cluster, ClusterOptions};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), redlock_harness::HarnessError> {
//! let mut cluster = Cluster::start(ClusterOptions::fast_failover())?;
//! let masters = cluster.master_indices()?;
//! let new_master = cluster.kill_and_fail_over(masters[0], Duration::from_secs(20))?;
//! assert!(cluster.master_indices()?.contains(&new_master));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod binary;
mod clock;
mod cluster;
mod config;
mod demo;
mod docker;
mod error;
mod info;
mod node;
mod ports;
mod proxy;
mod raw;
mod standalone;
mod tls;
mod topology;
mod wait;
mod workdir;

pub use binary::{
    REDIS_SERVER_BIN_ENV, REQUIRE_VALKEY_ENV, ServerBinary, VALKEY_SERVER_BIN_ENV,
    find_redis_server, find_valkey_server, redis_server_path, valkey_gate,
};
pub use clock::{Clock, FAKETIME_LIB_ENV, libfaketime_path};
pub use cluster::{Cluster, ClusterOptions, FORM_TIMEOUT};
pub use demo::{DEMO_PORTS, DemoCluster, demo_cluster};
pub use docker::{
    DOCKER_PROJECT, DockerCluster, LOCAL_IMAGE, REDIS_IMAGE_ENV, REQUIRE_DOCKER_ENV,
    SKIP_DOCKER_ENV, docker_available, docker_gate, docker_lock_path,
};
pub use error::HarnessError;
pub use info::info_field;
pub use node::{IO_TIMEOUT, RedisServer, START_TIMEOUT};
pub use ports::{BUS_PORT_OFFSET, FIRST_PORT, LAST_PORT};
pub use proxy::{Direction, Fault, FaultGuard, FaultProxy};
pub use raw::{raw_async, raw_connection};
pub use standalone::{NodeOptions, Standalone};
pub use tls::{TLS_SERVER_NAMES, TlsFiles};
pub use topology::{SLOTS, even_slot_ranges};
