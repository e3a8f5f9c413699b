//! Network and clock faults (issue 17): partitions by client group, slow and flapping links, a
//! blackholed voter that is also the first seed (all through one loopback `FaultProxy` per
//! voter), skewed server clocks (Valkey under libfaketime), and a holder process paused past
//! its validity, with and without fencing. Each runs on 3 independent masters and on a 3+3
//! cluster, through the checker of `tests/faults/`. Run with
//! `cargo test --test faults_net -- --nocapture` to see each scenario's results line;
//! docs/fault-injection.md explains them.
//!
//! The link faults run on whatever server the harness runs (`REDIS_SERVER_BIN`: Redis, or
//! Valkey in CI's second pass); the clock faults need Valkey and libfaketime and skip with one
//! line on stderr where they are missing (`REDLOCK_REQUIRE_VALKEY=1` fails instead).
//!
//! In a cluster the voters are discovered by address, so each master announces its proxy's
//! group-0 port (`Cluster::announce_through`: `cluster-announce-ip 127.0.0.1`,
//! `cluster-announce-port`). The library has no per-client address map, so the proxies
//! translate: in group 1's replies they rewrite every announced port into the same master's
//! group-1 port (`FaultProxy::translate_ports`), and a client that came in through group 1
//! stays in group 1.

mod faults;

use std::time::Duration;

use faults::{ClockFault, Proxied, Skewed};
use redlock_harness::{
    Clock, Cluster, ClusterOptions, FaultProxy, NodeOptions, ServerBinary, Standalone, valkey_gate,
};

/// `redis 7.0.15` or `valkey 8.1.8`: which server the harness runs (`REDIS_SERVER_BIN`).
fn server() -> String {
    let version = ServerBinary::Default.version().expect("server version");
    let mut words = version.split_whitespace();
    let name = words.next().unwrap_or("?").to_lowercase();
    let v = words
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or("?")
        .to_owned();
    format!("{name} {v}")
}

/// 3 masters, each behind a proxy with 2 client groups.
fn proxied_masters() -> Proxied {
    let masters = Standalone::start(3).expect("3 masters");
    let proxies = masters
        .nodes()
        .iter()
        .map(|n| FaultProxy::start(n.port(), 2).expect("proxy"))
        .collect();
    Proxied {
        backend: format!("{}, proxied, 3 masters", server()),
        proxies,
        groups: 2,
        servers: Box::new(masters),
    }
}

/// A 3+3 cluster (default 5 s node timeout: link faults never look like a dead node to the
/// cluster, whose bus is direct) whose masters announce their proxies' group-0 ports; each
/// proxy rewrites those ports into group 1's in group 1's replies, so a client that came in
/// through group 1 discovers every master at its group-1 port and stays in its group.
fn proxied_cluster() -> Proxied {
    let mut cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let mut proxies: Vec<FaultProxy> = Vec::new();
    for master in cluster.master_indices().expect("masters") {
        let proxy = FaultProxy::start(cluster.nodes()[master].port(), 2).expect("proxy");
        cluster
            .announce_through(master, proxy.port(0))
            .expect("announce the proxy");
        proxies.push(proxy);
    }
    let group_1: Vec<(u16, u16)> = proxies.iter().map(|p| (p.port(0), p.port(1))).collect();
    for proxy in &proxies {
        proxy.translate_ports(1, &group_1).expect("translation");
    }
    Proxied {
        backend: format!("{}, proxied, 3+3 cluster", server()),
        proxies,
        groups: 2,
        servers: Box::new(cluster),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_asymmetric_partition() {
    faults::asymmetric_partition(proxied_masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_asymmetric_partition() {
    faults::asymmetric_partition(proxied_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_majority_partition() {
    faults::majority_partition(proxied_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_majority_partition() {
    faults::majority_partition(proxied_masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_slow_link() {
    faults::slow_link(proxied_masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_slow_link() {
    faults::slow_link(proxied_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_flapping_link() {
    faults::flapping_link(proxied_masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_flapping_link() {
    faults::flapping_link(proxied_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_blackholed_voter_and_seed() {
    faults::blackholed_voter_and_seed(proxied_masters()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_blackholed_voter_and_seed() {
    faults::blackholed_voter_and_seed(proxied_cluster()).await;
}

/// 3 Valkey masters, those in `fast` on a faked clock at `rate`.
fn skewed_masters(fast: &[usize], rate: f64) -> Skewed {
    let nodes: Vec<NodeOptions> = (0..3)
        .map(|i| {
            let node = NodeOptions::default().binary(ServerBinary::Valkey);
            if fast.contains(&i) {
                node.clock(Clock::rate(rate))
            } else {
                node
            }
        })
        .collect();
    Skewed::Masters(Standalone::start_each(&nodes).expect("3 Valkey masters"))
}

/// A 3+3 Valkey cluster, the masters in `fast` (nodes 0..3 are the masters) at `rate`.
fn skewed_cluster(fast: &[usize], rate: f64) -> Skewed {
    let mut options = ClusterOptions::default().binary(ServerBinary::Valkey);
    for &node in fast {
        options = options.clock(node, Clock::rate(rate));
    }
    Skewed::Cluster(Cluster::start(options).expect("3+3 Valkey cluster"))
}

fn clock(name: &'static str, fast: &[usize], jump: Option<Duration>, safe: bool) -> ClockFault {
    ClockFault {
        name,
        fast: fast.to_vec(),
        // A clock that only jumps later runs at the real rate when health() looks.
        flagged: if jump.is_some() {
            Vec::new()
        } else {
            fast.to_vec()
        },
        jump,
        drift_factor: None,
        hold: faults::HOLD,
        safe,
    }
}

/// 2 % fast on voter 0, holders working until just before their deadline, with the drift
/// factor raised to 0.02 (what docs/fault-injection.md tells users to do for a 2 % clock):
/// the key outlives the validity on every voter, so safety is guaranteed and asserted.
/// health() flags the clock first (it runs with the default 0.01).
fn two_percent_fast(drift_factor: Option<f64>, safe: bool) -> ClockFault {
    ClockFault {
        drift_factor,
        hold: faults::FULL_HOLD,
        ..clock(
            if safe {
                "voter 0's clock x1.02, drift factor 0.02"
            } else {
                "voter 0's clock x1.02, default drift factor 0.01"
            },
            &[0],
            None,
            safe,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_clock_2_percent_fast_with_drift_allowance() {
    if !valkey_gate("masters_clock_2_percent_fast_with_drift_allowance", true).unwrap() {
        return;
    }
    let fault = two_percent_fast(Some(0.02), true);
    faults::skewed_clock(skewed_masters(&[0], 1.02), fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_clock_2_percent_fast_with_drift_allowance() {
    if !valkey_gate("cluster_clock_2_percent_fast_with_drift_allowance", true).unwrap() {
        return;
    }
    let fault = two_percent_fast(Some(0.02), true);
    faults::skewed_clock(skewed_cluster(&[0], 1.02), fault).await;
}

/// The same with the default drift factor (0.01, less than the 2 %): not guaranteed, so
/// measured and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_clock_2_percent_fast_default_drift() {
    if !valkey_gate("masters_clock_2_percent_fast_default_drift", true).unwrap() {
        return;
    }
    let fault = two_percent_fast(None, false);
    faults::skewed_clock(skewed_masters(&[0], 1.02), fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_clock_2_percent_fast_default_drift() {
    if !valkey_gate("cluster_clock_2_percent_fast_default_drift", true).unwrap() {
        return;
    }
    let fault = two_percent_fast(None, false);
    faults::skewed_clock(skewed_cluster(&[0], 1.02), fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_clock_twice_as_fast_on_one_voter() {
    if !valkey_gate("cluster_clock_twice_as_fast_on_one_voter", true).unwrap() {
        return;
    }
    let fault = clock("voter 0's clock x2", &[0], None, false);
    faults::skewed_clock(skewed_cluster(&[0], 2.0), fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_clock_jump_on_two_voters() {
    if !valkey_gate("cluster_clock_jump_on_two_voters", true).unwrap() {
        return;
    }
    let fault = clock(
        "voters 0 and 1 clocks jump +3 s at 2 s",
        &[0, 1],
        Some(Duration::from_secs(3)),
        false,
    );
    faults::skewed_clock(skewed_cluster(&[0, 1], 1.0), fault).await;
}

/// x2 on one voter: measured. A holder granted by a bare majority that includes the fast
/// voter loses it halfway through its validity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_clock_twice_as_fast_on_one_voter() {
    if !valkey_gate("masters_clock_twice_as_fast_on_one_voter", true).unwrap() {
        return;
    }
    let fault = clock("voter 0's clock x2", &[0], None, false);
    faults::skewed_clock(skewed_masters(&[0], 2.0), fault).await;
}

/// x2 on two voters of three: a majority frees keys early; overlaps measured and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_clock_twice_as_fast_on_two_voters() {
    if !valkey_gate("masters_clock_twice_as_fast_on_two_voters", true).unwrap() {
        return;
    }
    let fault = clock("voters 0 and 1 clocks x2", &[0, 1], None, false);
    faults::skewed_clock(skewed_masters(&[0, 1], 2.0), fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_clock_twice_as_fast_on_two_voters() {
    if !valkey_gate("cluster_clock_twice_as_fast_on_two_voters", true).unwrap() {
        return;
    }
    let fault = clock("voters 0 and 1 clocks x2", &[0, 1], None, false);
    faults::skewed_clock(skewed_cluster(&[0, 1], 2.0), fault).await;
}

/// Two voters' clocks jump 3 s ahead (twice the TTL) mid-run: every key they hold expires
/// at once. Overlaps measured and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_clock_jump_on_two_voters() {
    if !valkey_gate("masters_clock_jump_on_two_voters", true).unwrap() {
        return;
    }
    let fault = clock(
        "voters 0 and 1 clocks jump +3 s at 2 s",
        &[0, 1],
        Some(Duration::from_secs(3)),
        false,
    );
    faults::skewed_clock(skewed_masters(&[0, 1], 1.0), fault).await;
}

const PAUSED_ROUNDS: usize = 3;

/// The holder's side of the paused-holder scenarios: runs only in the child process the
/// scenario starts (see `faults/paused_holder.rs`); in a normal run it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_child() {
    faults::child_main().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_paused_holder_with_fencing() {
    let masters = Standalone::start(3).expect("3 masters");
    let (report, stale) = faults::paused_holder(
        &format!("{}, 3 masters", server()),
        masters.urls(),
        true,
        PAUSED_ROUNDS,
    )
    .await;
    assert_eq!(
        stale, 0,
        "{report}\na stale write was accepted despite fencing"
    );
    assert_eq!(report.overlaps, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_paused_holder_without_fencing() {
    let masters = Standalone::start(3).expect("3 masters");
    let (report, stale) = faults::paused_holder(
        &format!("{}, 3 masters", server()),
        masters.urls(),
        false,
        PAUSED_ROUNDS,
    )
    .await;
    eprintln!("MEASURED without fencing: {stale} of {PAUSED_ROUNDS} stale writes landed");
    // Measured, not asserted: the documented limit. What is asserted: every round ran.
    assert_eq!(report.operations, PAUSED_ROUNDS * 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_paused_holder_with_fencing() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let (report, stale) = faults::paused_holder(
        &format!("{}, 3+3 cluster", server()),
        cluster.urls(),
        true,
        PAUSED_ROUNDS,
    )
    .await;
    assert_eq!(
        stale, 0,
        "{report}\na stale write was accepted despite fencing"
    );
    assert_eq!(report.overlaps, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_paused_holder_without_fencing() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let (report, stale) = faults::paused_holder(
        &format!("{}, 3+3 cluster", server()),
        cluster.urls(),
        false,
        PAUSED_ROUNDS,
    )
    .await;
    eprintln!("MEASURED without fencing: {stale} of {PAUSED_ROUNDS} stale writes landed");
    assert_eq!(report.operations, PAUSED_ROUNDS * 2, "{report}");
}
