//! Fault injection against real `redis-server` processes started by the harness: 3 independent
//! masters and a 3+3 cluster. Run with `cargo test --test faults_process -- --nocapture` to see
//! each scenario's results line; docs/fault-injection.md explains the scenarios.

mod faults;

use std::time::Duration;

use faults::{FAILOVER_TIMEOUT, TTL, Target};
use redlock_harness::{Cluster, ClusterOptions, RedisServer, Standalone};

/// The harness's deployments, hurt through their `RedisServer`s.
enum Process {
    Masters(Standalone),
    Cluster(Cluster),
}

impl Process {
    fn nodes(&self) -> &[RedisServer] {
        match self {
            Process::Masters(masters) => masters.nodes(),
            Process::Cluster(cluster) => cluster.nodes(),
        }
    }

    fn node_mut(&mut self, node: usize) -> &mut RedisServer {
        match self {
            Process::Masters(masters) => masters.node_mut(node),
            Process::Cluster(cluster) => cluster.node_mut(node),
        }
    }
}

impl Target for Process {
    fn backend(&self) -> String {
        match self {
            Process::Masters(_) => "process, 3 masters".into(),
            Process::Cluster(_) => "process, 3+3 cluster".into(),
        }
    }
    fn lock_urls(&self) -> Vec<String> {
        self.nodes().iter().map(RedisServer::url).collect()
    }
    fn is_cluster(&self) -> bool {
        matches!(self, Process::Cluster(_))
    }
    fn masters(&self) -> Vec<usize> {
        match self {
            Process::Masters(masters) => (0..masters.nodes().len()).collect(),
            Process::Cluster(cluster) => cluster.master_indices().expect("masters"),
        }
    }
    fn all_nodes(&self) -> Vec<usize> {
        (0..self.nodes().len()).collect()
    }
    fn url_of(&self, node: usize) -> String {
        self.nodes()[node].url()
    }
    fn kill(&mut self, node: usize) {
        self.node_mut(node).kill().expect("kill");
    }
    fn restart(&mut self, node: usize) {
        self.node_mut(node).restart().expect("restart");
    }
    fn restart_empty(&mut self, node: usize) {
        self.node_mut(node).restart_empty().expect("restart_empty");
    }
    fn pause(&self, node: usize) {
        self.nodes()[node].pause().expect("pause");
    }
    fn resume(&self, node: usize) {
        self.nodes()[node].resume().expect("resume");
    }
    fn fail_over(&mut self, master: usize) -> usize {
        match self {
            Process::Masters(_) => panic!("independent masters have no replicas to fail over to"),
            Process::Cluster(cluster) => cluster
                .kill_and_fail_over(master, FAILOVER_TIMEOUT)
                .expect("failover"),
        }
    }
    fn restart_all(&mut self) {
        for node in self.all_nodes() {
            self.restart(node);
        }
        self.wait_healthy();
    }
    fn wait_healthy(&self) {
        if let Process::Cluster(cluster) = self {
            cluster
                .wait_healthy(FAILOVER_TIMEOUT)
                .expect("healthy cluster");
        }
    }
}

fn masters() -> Process {
    Process::Masters(Standalone::start(3).expect("3 masters"))
}

/// 3 masters without AOF: a restart comes back empty, and nothing in their configuration
/// says otherwise.
fn masters_without_aof() -> Process {
    Process::Masters(Standalone::start_with_appendonly(3, false).expect("3 masters"))
}

/// A 3+3 cluster whose replicas take over about 2 s after their master dies.
fn cluster() -> Process {
    Process::Cluster(Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster"))
}

/// A 3+3 cluster with Redis's default node timeout (5 s): a SIGSTOP of a few seconds stays a
/// pause and does not turn into a failover.
fn slow_failover_cluster() -> Process {
    Process::Cluster(Cluster::start(ClusterOptions::default()).expect("3+3 cluster"))
}

/// Shorter than the TTL.
const SHORT_PAUSE: Duration = Duration::from_secs(1);

fn long_pause() -> Duration {
    TTL + Duration::from_secs(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_kill_one() {
    faults::kill_one(masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_kill_one_and_fail_over() {
    faults::kill_one(cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_kill_two_then_restart() {
    faults::kill_two(masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_kill_two_then_restart() {
    faults::kill_two(cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_pause_one() {
    faults::pause_one(masters(), SHORT_PAUSE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_pause_one() {
    faults::pause_one(slow_failover_cluster(), SHORT_PAUSE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_pause_one_longer_than_ttl() {
    faults::pause_one(masters(), long_pause()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_pause_one_longer_than_ttl() {
    faults::pause_one(slow_failover_cluster(), long_pause()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_restart_one_from_aof() {
    faults::restart_one(masters(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restart_one_from_aof() {
    faults::restart_one(cluster(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_delayed_restart_one_empty() {
    faults::restart_one(masters(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_delayed_restart_one_empty() {
    faults::restart_one(cluster(), true).await;
}

/// Restarted empty before the TTL ran out: refused with `delayed_restart`, a second holder
/// without it (see `faults/early_restart.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_early_restart_one_empty() {
    faults::restart_empty_early(masters_without_aof(), faults::HELD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_fail_over_while_held() {
    faults::failover_while_held(cluster(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_script_flush_and_restart_all() {
    faults::flush_and_restart_all(masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_script_flush_and_restart_all() {
    faults::flush_and_restart_all(cluster()).await;
}
