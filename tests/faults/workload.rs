//! The workload: contending clients, each with its own `LockManager`, doing a non-atomic
//! read-modify-write of a counter inside each critical section, while a fault thread runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::{Standalone, raw_async};

use super::record::{Attempt, Outcome, Run, classify};

/// Per-node timeout of the lock clients: generous, so a loaded CI machine is not a fault.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(250);
/// Lock TTL of the workload.
pub const TTL: Duration = Duration::from_millis(1500);
/// Contending clients, each with its own `LockManager`.
pub const CLIENTS: usize = 8;
/// Resources they contend for.
pub const RESOURCES: usize = 3;
/// How long a failover (or a whole-cluster restart) may take before the test fails.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the clients keep going after the fault thread is done (to see the recovery).
pub const AFTER_FAULT: Duration = Duration::from_secs(2);

/// The lock configuration of every client: one round per call (the workload retries itself).
pub fn lock_config() -> LockConfig {
    LockConfig::new()
        .node_timeout(NODE_TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::once())
}

/// How a run contends.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Number of clients.
    pub clients: usize,
    /// Number of resources.
    pub resources: usize,
    /// Acquire attempts per client, at most.
    pub ops_per_client: usize,
    /// Wall time of the run: at least this, and until the fault is [`AFTER_FAULT`] behind
    /// it, but never more than this plus [`FAILOVER_TIMEOUT`].
    pub duration: Duration,
    /// Lock TTL.
    pub ttl: Duration,
    /// The sleep between GET and SET inside a critical section.
    pub hold: Duration,
    /// Every client's lock configuration ([`lock_config`] unless a scenario changes it).
    pub config: LockConfig,
}

impl Workload {
    /// [`CLIENTS`] clients on [`RESOURCES`] resources for at most `duration`.
    pub fn new(duration: Duration) -> Self {
        Workload {
            clients: CLIENTS,
            resources: RESOURCES,
            ops_per_client: 2000,
            duration,
            ttl: TTL,
            hold: Duration::from_millis(5),
            config: lock_config(),
        }
    }
}

/// The lock name of resource `resource`.
pub(super) fn resource_name(resource: usize) -> String {
    format!("faults/resource-{resource}")
}

fn counter_key(resource: usize) -> String {
    format!("faults:counter:{resource}")
}

/// Runs `workload` against `urls` while `fault` runs on a blocking thread; `fault` gets the
/// run's start instant (to sleep until its moment) and its result is returned with the run.
pub async fn run_with_fault<T: Send + 'static>(
    urls: Vec<String>,
    counter: &Standalone,
    workload: &Workload,
    fault: impl FnOnce(Instant) -> T + Send + 'static,
) -> (Run, T) {
    run_with_fault_for(move |_| urls.clone(), counter, workload, fault).await
}

/// Like [`run_with_fault`], with each client's URLs chosen by `urls_of(client)`: clients in
/// different groups reach the voters through different proxy ports.
pub async fn run_with_fault_for<T: Send + 'static>(
    urls_of: impl Fn(usize) -> Vec<String>,
    counter: &Standalone,
    workload: &Workload,
    fault: impl FnOnce(Instant) -> T + Send + 'static,
) -> (Run, T) {
    let counter_url = counter.urls()[0].clone();
    let start = Instant::now();
    let fault_done: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let fault = tokio::task::spawn_blocking({
        let fault_done = fault_done.clone();
        move || {
            let result = fault(start);
            *fault_done.lock().expect("fault_done") = Some(Instant::now());
            result
        }
    });
    let clients: Vec<_> = (0..workload.clients)
        .map(|client| {
            let (urls, counter_url, workload) =
                (urls_of(client), counter_url.clone(), workload.clone());
            let fault_done = fault_done.clone();
            let ended = move || {
                let elapsed = start.elapsed();
                let settled = fault_done
                    .lock()
                    .expect("fault_done")
                    .is_some_and(|done| done.elapsed() >= AFTER_FAULT);
                (elapsed >= workload.duration && settled)
                    || elapsed >= workload.duration + FAILOVER_TIMEOUT
            };
            let workload = workload.clone();
            tokio::spawn(
                async move { client_loop(client, urls, counter_url, workload, ended).await },
            )
        })
        .collect();
    let mut attempts = Vec::new();
    for client in clients {
        attempts.extend(client.await.expect("client task"));
    }
    let fault_result = fault.await.expect("fault thread");
    let mut con = counter_connection(&counter_url).await;
    let mut counters = Vec::new();
    for resource in 0..workload.resources {
        let value: Option<i64> = redis::cmd("GET")
            .arg(counter_key(resource))
            .query_async(&mut con)
            .await
            .expect("GET counter");
        counters.push(value.unwrap_or(0));
    }
    let run = Run {
        attempts,
        counters: Some(counters),
    };
    (run, fault_result)
}

async fn counter_connection(url: &str) -> redis::aio::MultiplexedConnection {
    raw_async(url).await.expect("counter connection")
}

async fn client_loop(
    client: usize,
    urls: Vec<String>,
    counter_url: String,
    workload: Workload,
    ended: impl Fn() -> bool,
) -> Vec<Attempt> {
    let manager = LockManager::connect(&urls, workload.config.clone())
        .await
        .expect("lock manager");
    let mut counter = counter_connection(&counter_url).await;
    let mut attempts = Vec::new();
    for op in 0..workload.ops_per_client {
        if ended() {
            break;
        }
        let resource = (client + op) % workload.resources;
        let requested = Instant::now();
        let result = manager
            .try_acquire(&resource_name(resource), workload.ttl)
            .await;
        let returned = Instant::now();
        // A small spread so that the clients do not move in lockstep.
        let jitter = Duration::from_millis(((client * 7 + op * 13) % 15) as u64 + 2);
        let outcome = match result {
            Ok(Some(mut lock)) => {
                let key = counter_key(resource);
                let value: Option<i64> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut counter)
                    .await
                    .expect("GET counter");
                tokio::time::sleep(workload.hold).await;
                let outcome = if lock.is_valid() {
                    let () = redis::cmd("SET")
                        .arg(&key)
                        .arg(value.unwrap_or(0) + 1)
                        .query_async(&mut counter)
                        .await
                        .expect("SET counter");
                    let end = Instant::now().min(lock.validity_deadline());
                    Outcome::Section {
                        end,
                        votes: lock.granted_by().len(),
                    }
                } else {
                    Outcome::Abandoned
                };
                // A failed release (a voter down) is fine: the keys expire with their TTL.
                let _ = manager.release(&mut lock).await;
                outcome
            }
            Ok(None) => {
                tokio::time::sleep(jitter).await;
                Outcome::Contended
            }
            Err(error) => {
                tokio::time::sleep(jitter * 4).await;
                classify(&error)
            }
        };
        attempts.push(Attempt {
            client,
            resource,
            requested,
            returned,
            outcome,
        });
    }
    attempts
}
