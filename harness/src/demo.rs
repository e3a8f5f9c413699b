//! The cluster the demos run against: the user's own on 7000-7005, or a throwaway one.

use std::time::Duration;

use super::HarnessError;
use super::cluster::{Cluster, ClusterOptions};
use super::info::info_field;
use super::raw::query_port;

/// The demo cluster's ports (the docker-compose cluster and the `redis-conf/` files).
pub const DEMO_PORTS: std::ops::RangeInclusive<u16> = 7000..=7005;

/// How long the probe of 127.0.0.1:7000 may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the demos run.
#[derive(Debug)]
pub enum DemoCluster {
    /// A healthy cluster already answers on 127.0.0.1:7000; these are its URLs (7000-7005).
    Existing(Vec<String>),
    /// A 3 + 3 cluster the harness started on free ports; it stops when this is dropped.
    Throwaway(Cluster),
}

impl DemoCluster {
    /// URLs to seed a client with.
    #[must_use]
    pub fn seed_urls(&self) -> Vec<String> {
        match self {
            Self::Existing(urls) => urls.clone(),
            Self::Throwaway(cluster) => cluster.urls(),
        }
    }

    /// Whether the harness started this cluster (and will stop it).
    #[must_use]
    pub fn is_throwaway(&self) -> bool {
        matches!(self, Self::Throwaway(_))
    }
}

/// Uses the cluster on 127.0.0.1:7000-7005 if 7000 reports `cluster_state:ok`; otherwise
/// starts a throwaway 3 + 3 cluster on free ports (never 7000-7005, which the user may be
/// about to use). Prints nothing: the caller says which it got.
///
/// # Errors
/// As [`Cluster::start`], notably [`HarnessError::RedisServerNotFound`].
pub fn demo_cluster() -> Result<DemoCluster, HarnessError> {
    if cluster_ok_at(*DEMO_PORTS.start()) {
        let urls = DEMO_PORTS
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect();
        return Ok(DemoCluster::Existing(urls));
    }
    Cluster::start(ClusterOptions::default()).map(DemoCluster::Throwaway)
}

fn cluster_ok_at(port: u16) -> bool {
    query_port(port, &["CLUSTER", "INFO"], PROBE_TIMEOUT)
        .is_ok_and(|info| info_field(&info, "cluster_state") == Some("ok"))
}
