//! Issue 8, item 3: on a 5-master cluster with the default 3 voters, every resource's voter
//! keys must sit on 3 distinct masters. Before the fix, voter bands straddled master
//! boundaries and about 18% of resources had two voter keys on one master, so losing that
//! master's keys (a failover to a replica that never got them) cost two votes at once.
//!
//! The slot of each key is asked of Redis itself (`CLUSTER KEYSLOT`) and its owner of the
//! cluster's own view (through the harness), not of the crate under test; the crate's
//! `voters_of` must agree with both.

use std::collections::BTreeSet;
use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions};

const RESOURCES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_voters_sit_on_distinct_masters_of_a_five_master_cluster() {
    let cluster = Cluster::start(ClusterOptions::default().masters(5).replicas_per_master(0))
        .expect("5-master cluster");
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&[cluster.seed_url()], config)
        .await
        .expect("manager");
    let mut con = cluster.nodes()[0].connection().expect("connection");

    let mut shared = Vec::new();
    let mut masters_used = BTreeSet::new();
    for r in 0..RESOURCES {
        // Names with braces and odd bytes too: the key scheme must not care.
        let resource = match r % 4 {
            0 => format!("orders/{r}"),
            1 => format!("{{user{r}}}.cart"),
            2 => format!("job}}{{{r} with spaces"),
            _ => format!("ünïcödé-{r}"),
        };
        let voters = manager.voters_of(&resource).await.expect("voters");
        assert_eq!(voters.len(), 3, "{resource}: default cluster_voters is 3");
        let mut owners = Vec::with_capacity(voters.len());
        for (addr, key) in &voters {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut con)
                .expect("CLUSTER KEYSLOT");
            let owner = cluster.index_of_slot_owner(slot).expect("slot owner");
            let port = cluster.nodes()[owner].port();
            assert!(
                addr.ends_with(&format!(":{port}")),
                "{resource}: voters_of says {addr}, the cluster says slot {slot} is on port {port}"
            );
            owners.push(owner);
        }
        masters_used.extend(owners.iter().copied());
        let distinct: BTreeSet<usize> = owners.iter().copied().collect();
        if distinct.len() != owners.len() {
            shared.push(format!("{resource:?} -> masters {owners:?}"));
        }
    }
    println!(
        "{} of {RESOURCES} resources had two voter keys on one master; masters used: {masters_used:?}",
        shared.len()
    );
    assert!(
        shared.is_empty(),
        "{} of {RESOURCES} resources shared a master, e.g. {:?}",
        shared.len(),
        &shared[..shared.len().min(5)]
    );
}
