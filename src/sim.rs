//! Model-based property tests: the real [`LockManager`] voting over in-memory nodes, with
//! paused tokio time, random message delays and loss, node crashes with and without data loss,
//! and node clocks that run fast within the drift factor.
//!
//! These complement the real-Redis tests under `tests/`: they explore thousands of
//! interleavings that real processes would take hours to hit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::{Instant, sleep};

use crate::config::LockConfig;
use crate::error::NodeError;
use crate::manager::LockManager;
use crate::node::SharedNode;
use crate::retry::RetryPolicy;

mod fencing;
mod node;

use node::{NOT_A_CLUSTER, NodeData, SimLink, SimNode, SimSeeds};

/// A crash window of one node, in ms from the start of the run.
#[derive(Debug, Clone, Copy)]
struct Crash {
    at_ms: u64,
    down_ms: u64,
    /// The node comes back without its data (no AOF, or a replica that never got the key).
    loses_data: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Per node: how fast its clock runs relative to real time, in `[1, 1 + drift]`: a fast
    /// clock expires keys early, which the drift allowance must cover.
    clock_rates: Vec<f64>,
    crashes: Vec<Vec<Crash>>,
    max_delay_ms: u64,
    loss_percent: u32,
    /// A node that accepts every request and never answers (a SIGSTOPped master): rounds
    /// must decide without it.
    hung: Option<usize>,
    clients: usize,
    ops_per_client: usize,
    seed: u64,
}

/// A hold interval: from the moment the client learned it holds the lock to the moment it
/// stopped relying on it (release started, or validity ran out).
#[derive(Debug, Clone, Copy)]
struct Hold {
    client: usize,
    /// How long the winning `try_acquire` took.
    took: Duration,
    from: Instant,
    until: Instant,
}

const TTL: Duration = Duration::from_millis(1000);

/// Run the scenario on a paused clock; return every hold interval.
fn run(scenario: &Scenario) -> Vec<Hold> {
    run_with(
        scenario,
        LockConfig::new()
            .node_timeout(Duration::from_millis(100))
            .retry(RetryPolicy::once()),
    )
}

/// A current-thread runtime on a paused clock, for one replay.
fn paused_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

/// The simulated masters of `scenario`, their clocks started at `epoch`.
fn sim_nodes(scenario: &Scenario, epoch: Instant) -> Vec<Arc<SimNode>> {
    scenario
        .clock_rates
        .iter()
        .zip(&scenario.crashes)
        .enumerate()
        .map(|(i, (rate, crashes))| {
            Arc::new(SimNode {
                name: format!("sim{i}"),
                clock_rate: *rate,
                crashes: crashes.clone(),
                epoch,
                data: Mutex::new(NodeData::default()),
            })
        })
        .collect()
}

/// The randomness of one client's link to node `i`: one stream per link, from the seed.
fn link_rng(seed: u64, client: usize, i: usize) -> Mutex<StdRng> {
    Mutex::new(StdRng::seed_from_u64(
        seed ^ ((client as u64) << 32) ^ i as u64,
    ))
}

/// A client's manager over its links to the simulated masters.
fn client_manager(config: &LockConfig, links: Vec<SharedNode>) -> LockManager {
    match LockManager::with_seeds(config.clone(), Box::new(SimSeeds(links))) {
        Ok(manager) => manager,
        Err(e) => panic!("invalid simulation config: {e}"),
    }
}

/// [`run`] with the clients' configuration.
fn run_with(scenario: &Scenario, config: LockConfig) -> Vec<Hold> {
    let runtime = paused_runtime();
    runtime.block_on(async {
        let epoch = Instant::now();
        let nodes = sim_nodes(scenario, epoch);
        let holds = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for client in 0..scenario.clients {
            let links: Vec<SharedNode> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    Arc::new(SimLink {
                        node: node.clone(),
                        order: tokio::sync::Mutex::new(()),
                        rng: link_rng(scenario.seed, client, i),
                        max_delay: Duration::from_millis(scenario.max_delay_ms),
                        loss_percent: scenario.loss_percent,
                        hung: scenario.hung == Some(i),
                    }) as SharedNode
                })
                .collect();
            let manager = client_manager(&config, links);
            let holds = holds.clone();
            let ops = scenario.ops_per_client;
            let mut rng = StdRng::seed_from_u64(scenario.seed.wrapping_add(client as u64));
            clients.push(tokio::spawn(async move {
                for _ in 0..ops {
                    let asked = Instant::now();
                    match manager.try_acquire("resource", TTL).await {
                        Ok(Some(mut lock)) => {
                            let from = Instant::now();
                            let took = from.duration_since(asked);
                            // Hold for up to 1.5 TTL: sometimes past validity, which the
                            // holder must then stop relying on.
                            sleep(Duration::from_millis(rng.random_range(0..1500))).await;
                            if rng.random_bool(0.3) && lock.is_valid() {
                                let _ = manager.extend(&mut lock, TTL).await;
                                sleep(Duration::from_millis(rng.random_range(0..600))).await;
                            }
                            let until = Instant::now().min(lock.deadline);
                            crate::mutex::lock(&holds).push(Hold {
                                client,
                                took,
                                from,
                                until,
                            });
                            let _ = manager.release(&mut lock).await;
                        }
                        // Back off about as long as a holder holds: rounds decide early, so a
                        // short backoff would spend every attempt while one holder holds.
                        _ => sleep(Duration::from_millis(rng.random_range(0..1000))).await,
                    }
                }
            }));
        }
        for client in clients {
            let _ = client.await;
        }
        crate::mutex::lock(&holds).clone()
    })
}

/// The first pair of overlapping hold intervals, if any.
fn overlap(holds: &[Hold]) -> Option<(Hold, Hold)> {
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if a.from < b.until && b.from < a.until {
                return Some((*a, *b));
            }
        }
    }
    None
}

/// Random scenarios on 3 or 5 nodes; `crashes_per_node` and `down_ms` shape the faults.
fn scenario(
    loses_data: impl Strategy<Value = bool> + Clone,
    crashes_per_node: std::ops::Range<usize>,
    down_ms: std::ops::Range<u64>,
) -> impl Strategy<Value = Scenario> {
    let crash = (0u64..6000, down_ms, loses_data).prop_map(|(at_ms, down_ms, loses_data)| Crash {
        at_ms,
        down_ms,
        loses_data,
    });
    prop_oneof![Just(3usize), Just(5usize)].prop_flat_map(move |n| {
        (
            prop::collection::vec(1.0f64..=1.01, n),
            prop::collection::vec(
                prop::collection::vec(crash.clone(), crashes_per_node.clone()),
                n,
            ),
            0u64..150,
            0u32..20,
            prop::option::weighted(0.3, 0..n),
            2usize..5,
            3usize..8,
            any::<u64>(),
        )
            .prop_map(
                |(
                    clock_rates,
                    crashes,
                    max_delay_ms,
                    loss_percent,
                    hung,
                    clients,
                    ops_per_client,
                    seed,
                )| {
                    Scenario {
                        clock_rates,
                        crashes,
                        max_delay_ms,
                        loss_percent,
                        hung,
                        clients,
                        ops_per_client,
                        seed,
                    }
                },
            )
    })
}

proptest! {
    #![proptest_config(Config { cases: 128, ..Config::default() })]

    /// Without data loss, no two clients ever hold overlapping validity windows, whatever
    /// the delays, losses, crashes and clock drift (within the factor).
    #[test]
    fn no_overlap_without_data_loss(s in scenario(Just(false), 0..3, 100..3000)) {
        let holds = run(&s);
        prop_assert!(overlap(&holds).is_none(), "overlap: {:?}", overlap(&holds));
    }
}

/// Acquisitions do happen in the model: a property that never grants anything proves
/// nothing.
#[test]
fn the_model_grants_locks() {
    let holds = run(&Scenario {
        clock_rates: vec![1.0, 1.005, 1.01],
        crashes: vec![vec![]; 3],
        max_delay_ms: 20,
        loss_percent: 5,
        hung: None,
        clients: 3,
        ops_per_client: 6,
        seed: 7,
    });
    assert!(holds.len() >= 3, "only {} holds", holds.len());
    let clients: std::collections::HashSet<usize> = holds.iter().map(|h| h.client).collect();
    assert!(clients.len() >= 2, "only one client ever won: {clients:?}");
}

/// Rounds decide as soon as the outcome is known: with one voter that never answers, a
/// granted lock comes back after the two others answered (at most two 20 ms hops each way
/// in this scenario), never after the 100 ms node timeout; and locks are still exclusive.
#[test]
fn a_hung_voter_does_not_delay_decided_rounds() {
    let holds = run(&Scenario {
        clock_rates: vec![1.0, 1.0, 1.0],
        crashes: vec![vec![]; 3],
        max_delay_ms: 20,
        loss_percent: 0,
        hung: Some(1),
        clients: 3,
        ops_per_client: 6,
        seed: 11,
    });
    assert!(holds.len() >= 3, "only {} holds", holds.len());
    assert!(overlap(&holds).is_none(), "overlap: {:?}", overlap(&holds));
    for hold in &holds {
        assert!(
            hold.took <= Duration::from_millis(80),
            "a won round waited for the hung voter: {hold:?}"
        );
    }
}

/// Three masters whose clocks run twice as fast, three clients, no faults.
fn fast_clocks(seed: u64) -> Scenario {
    Scenario {
        clock_rates: vec![2.0, 2.0, 2.0],
        crashes: vec![vec![]; 3],
        max_delay_ms: 5,
        loss_percent: 0,
        hung: None,
        clients: 3,
        ops_per_client: 6,
        seed,
    }
}

/// A clock faster than the drift factor allows breaks safety: the model is sensitive enough
/// to see a violated assumption.
#[test]
fn clocks_beyond_the_drift_factor_break_safety() {
    let found = (0..64u64).any(|seed| overlap(&run(&fast_clocks(seed))).is_some());
    assert!(
        found,
        "nodes whose clocks run twice as fast should let locks overlap"
    );
}

/// With data loss (a master restarting empty), Redlock's safety does not hold: proptest finds
/// and shrinks a counterexample. The shrunk case is printed; docs/design.md explains it.
#[test]
fn data_loss_yields_a_shrunk_counterexample() {
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&scenario(any::<bool>(), 1..4, 20..600), |s| {
        let holds = run(&s);
        prop_assert!(overlap(&holds).is_none(), "overlap: {:?}", overlap(&holds));
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            eprintln!("counterexample with data loss: {minimal:#?}\n{reason}");
            assert!(
                minimal.crashes.iter().flatten().any(|c| c.loses_data),
                "the counterexample must involve a crash that loses data: {minimal:?}"
            );
        }
        other => panic!("expected a counterexample with data loss, got {other:?}"),
    }
}

// The delayed-restart rule in the model: the data-loss counterexample, closed.
#[cfg(test)]
mod delayed_restart;
