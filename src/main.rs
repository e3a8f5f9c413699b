//! `redlock-cluster`: the demo binary. **Placeholder**: the lock demos come later; for now it
//! only shows which cluster the demos will use and that it is healthy.
//!
//! Run with `cargo run --release`. It uses the cluster on 127.0.0.1:7000-7005 when one is up
//! (see docker-compose.yml), otherwise it starts a throwaway 3 + 3 cluster on free ports and
//! stops it on exit.

use std::process::ExitCode;

use redlock_cluster::harness::{Cluster, DemoCluster, HarnessError, demo_cluster};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), HarnessError> {
    println!("redlock-cluster demo (placeholder: the lock demos are not written yet)");
    let demo = demo_cluster()?;
    match &demo {
        DemoCluster::Existing(urls) => {
            println!(
                "using the existing cluster on 127.0.0.1:7000-7005 ({} nodes)",
                urls.len()
            );
        }
        DemoCluster::Throwaway(cluster) => {
            println!(
                "no cluster on 127.0.0.1:7000, so started a throwaway 3+3 cluster at {} \
                 (stopped on exit; `docker-compose up -d` gives you a lasting one)",
                cluster.seed_url()
            );
            describe(cluster)?;
        }
    }
    println!("seed URLs: {}", demo.seed_urls().join(" "));
    Ok(())
}

/// Prints the masters and their slot ranges as the cluster reports them.
fn describe(cluster: &Cluster) -> Result<(), HarnessError> {
    for index in cluster.master_indices()? {
        let replica = cluster.replica_of(index)?;
        println!(
            "master {} (replica {})",
            cluster.nodes()[index].url(),
            cluster.nodes()[replica].url()
        );
    }
    println!("cluster_state:ok");
    Ok(())
}
