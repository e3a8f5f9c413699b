//! Fault injection against the docker-compose cluster (docker-compose.yml: 3 masters + 3
//! replicas on 127.0.0.1:7000-7005, host networking), faults done with `docker kill`,
//! `docker start`, `docker pause` and `docker unpause` on the containers.
//!
//! Needs Docker and the image of `REDIS_IMAGE` (default `redlock-redis:local`, built from the
//! host's redis binaries by docker/build-image.sh when missing). The tests take turns (they all
//! use ports 7000-7005): see `harness::DockerCluster`. Without a working Docker each test skips
//! with one line on stderr saying why and how to run it; with `REDLOCK_REQUIRE_DOCKER=1` (CI)
//! a missing Docker fails them instead. Run with
//! `cargo test --test faults_docker -- --nocapture` to see each scenario's results line.

mod faults;

use std::time::Duration;

use faults::{FAILOVER_TIMEOUT, TTL, Target};
use redlock_harness::{DockerCluster, docker_gate, raw_connection};

/// The override that makes failover fast (1000 ms node timeout, validity factor 0).
const FAST_FAILOVER: &[&str] = &["docker/compose.faults.yml"];
/// No override: docker-compose.yml as users run it (5000 ms node timeout), so that a pause of
/// a few seconds stays a pause instead of turning into a failover.
const AS_SHIPPED: &[&str] = &[];

/// The docker cluster, with nodes named by index (port 7000 + index).
struct Docker(DockerCluster);

fn port(node: usize) -> u16 {
    7000 + u16::try_from(node).expect("node index")
}

fn node(port: u16) -> usize {
    usize::from(port - 7000)
}

impl Target for Docker {
    fn backend(&self) -> String {
        "docker, 3+3 cluster".into()
    }
    fn lock_urls(&self) -> Vec<String> {
        self.0.urls()
    }
    fn is_cluster(&self) -> bool {
        true
    }
    fn masters(&self) -> Vec<usize> {
        let ports = self.0.master_ports().expect("masters");
        ports.into_iter().map(node).collect()
    }
    fn all_nodes(&self) -> Vec<usize> {
        self.0.ports().into_iter().map(node).collect()
    }
    fn url_of(&self, node: usize) -> String {
        format!("redis://127.0.0.1:{}", port(node))
    }
    fn kill(&mut self, node: usize) {
        self.0.kill(port(node)).expect("docker kill");
    }
    fn restart(&mut self, node: usize) {
        self.0.restart(port(node)).expect("docker kill + start");
    }
    fn restart_empty(&mut self, node: usize) {
        self.0
            .restart_empty(port(node))
            .expect("docker kill + wipe + start");
    }
    fn pause(&self, node: usize) {
        self.0.pause(port(node)).expect("docker pause");
    }
    fn resume(&self, node: usize) {
        self.0.unpause(port(node)).expect("docker unpause");
    }
    fn fail_over(&mut self, master: usize) -> usize {
        let promoted = self
            .0
            .kill_and_fail_over(port(master), FAILOVER_TIMEOUT)
            .expect("failover");
        node(promoted)
    }
    fn restart_all(&mut self) {
        self.0.restart_all().expect("docker-compose restart");
    }
    fn wait_healthy(&self) {
        self.0
            .wait_healthy(FAILOVER_TIMEOUT)
            .expect("healthy docker cluster");
    }
}

/// The docker cluster with `overrides`, or `None` (after saying so) when the suite is skipped.
fn docker(test: &str, overrides: &[&str]) -> Option<Docker> {
    match docker_gate(test) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => panic!("{e}"),
    }
    match DockerCluster::start(env!("CARGO_MANIFEST_DIR"), overrides) {
        Ok(cluster) => {
            eprintln!("docker cluster up (image {})", cluster.image());
            Some(Docker(cluster))
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_and_fail_over() {
    if let Some(target) = docker("kill_one_and_fail_over", FAST_FAILOVER) {
        faults::kill_one(target).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_two_then_restart() {
    if let Some(target) = docker("kill_two_then_restart", FAST_FAILOVER) {
        faults::kill_two(target).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_one() {
    if let Some(target) = docker("pause_one", AS_SHIPPED) {
        faults::pause_one(target, Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_one_longer_than_ttl() {
    if let Some(target) = docker("pause_one_longer_than_ttl", AS_SHIPPED) {
        faults::pause_one(target, TTL + Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_one_from_aof() {
    if let Some(target) = docker("restart_one_from_aof", FAST_FAILOVER) {
        faults::restart_one(target, false).await;
    }
}

/// Down for longer than the TTL, then back without data. As shipped (5000 ms node timeout),
/// so the master is not failed over while down and comes back empty, owning its slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_restart_one_empty() {
    if let Some(target) = docker("delayed_restart_one_empty", AS_SHIPPED) {
        faults::restart_one(target, true).await;
    }
}

/// Back without data *before* the TTL ran out (as shipped: `appendfsync everysec`, so the
/// restarted master does not persist every write): with `LockConfig::delayed_restart` the
/// second client is refused, the restarted master quarantined; without it, a second holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_restart_one_empty() {
    if let Some(target) = docker("early_restart_one_empty", AS_SHIPPED) {
        // A container restart plus the wait for a healthy cluster takes seconds.
        faults::restart_empty_early(target, faults::HELD * 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_over_while_held() {
    if let Some(target) = docker("fail_over_while_held", FAST_FAILOVER) {
        faults::failover_while_held(target, 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_and_restart_all() {
    if let Some(target) = docker("script_flush_and_restart_all", FAST_FAILOVER) {
        faults::flush_and_restart_all(target).await;
    }
}

/// The two restart faults really differ: a key written to master 7000 survives `restart` (its
/// AOF is replayed) and is gone after `restart_empty`.
#[test]
fn restart_keeps_the_aof_and_restart_empty_loses_it() {
    let Some(Docker(cluster)) = docker(
        "restart_keeps_the_aof_and_restart_empty_loses_it",
        AS_SHIPPED,
    ) else {
        return;
    };
    // A key in the first third of the slots, which redis-cli gives to 7000.
    let key = redlock_cluster::cluster::cluster_voter_keys("wipe-probe:", b"k", 3).expect("key")[0]
        .clone();
    let connect = || raw_connection("redis://127.0.0.1:7000").expect("connection to 7000");
    // A container restart can take longer than the 5 s node timeout on a loaded machine, and
    // a failover to 7000's replica would answer for the key instead (MOVED, seen once): this
    // test is about what a restart keeps, so no replica may take over meanwhile.
    for replica in 7003..=7005 {
        let mut con = raw_connection(&format!("redis://127.0.0.1:{replica}")).expect("replica");
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-replica-no-failover")
            .arg("yes")
            .query(&mut con)
            .expect("CONFIG SET cluster-replica-no-failover");
    }
    let get = |key: &[u8]| -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut connect())
            .expect("GET")
    };
    {
        let mut con = connect();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("kept")
            .query(&mut con)
            .expect("SET on 7000");
        // appendfsync is everysec in redis-conf/: give the AOF a moment to reach the disk.
        std::thread::sleep(Duration::from_millis(1500));
    }
    cluster.restart(7000).expect("restart from the AOF");
    cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
    assert_eq!(
        get(&key).as_deref(),
        Some("kept"),
        "the AOF was not replayed"
    );
    cluster.restart_empty(7000).expect("restart without data");
    cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
    assert_eq!(get(&key), None, "the data survived restart_empty");
}
