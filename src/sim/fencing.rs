//! Fencing tokens in the model: the real [`LockManager`] with fencing on, over the same
//! simulated nodes, delays, losses, crashes and drifting clocks as `sim`, checked for token
//! monotonicity among all holders; and two cheaper protocols the checker must reject.
//!
//! - [`Variant::Engine`]: the crate's two-round construction (see `crate::features::fencing`), with
//!   nodes that report their counter and clock ([`Terms`]); the same engine with nodes that
//!   report only one of them is the counter-only construction (the one before the clock term)
//!   or a clock-only one.
//! - [`Variant::IncrMax`]: one round, the acquire script `INCR`s the counter when it grants
//!   and the client takes the max.
//! - [`Variant::CommitAnyMajority`]: two rounds, but the write-back goes to every voter,
//!   unconditionally, and any majority of acknowledgements counts.
//!
//! The broken variants run as a small hand-written client over the same links, with the same
//! timeouts and validity rule as the engine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::{Instant, sleep};

mod link;
mod sequences;
mod variants;

use super::{Scenario, TTL, scenario};
use crate::config::LockConfig;
use crate::node::SharedNode;
use crate::retry::RetryPolicy;
use link::{FencedLink, Terms};
use variants::{hand_acquire, hand_release};

const DRIFT_FACTOR: f64 = 0.01;
const PREFIX: &str = "redlock:";
const RESOURCE: &str = "resource";

/// How long (simulated) a run may last, however few holds it got.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Which fencing protocol the clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Engine,
    IncrMax,
    CommitAnyMajority,
}

/// A hold interval (as in `sim`) with the token it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FencedHold {
    client: usize,
    /// When the winning attempt started.
    asked: Instant,
    from: Instant,
    until: Instant,
    token: u64,
}

/// How long a holder works: a third of the time briefly (so that rounds of the next holder
/// overlap the end of this one), otherwise up to 1.5 TTL (sometimes past validity).
fn hold_time(rng: &mut StdRng) -> Duration {
    if rng.random_bool(0.5) {
        Duration::from_millis(rng.random_range(0..10))
    } else {
        Duration::from_millis(rng.random_range(0..1500))
    }
}

/// How the fenced model is set up besides the scenario's network and faults.
#[derive(Debug, Clone)]
struct Setup {
    variant: Variant,
    terms: Terms,
    node_timeout: Duration,
    /// Per node, how far its clock is ahead of the true time, in ms (missing: 0).
    offsets_ms: Vec<i64>,
    /// `LockConfig::delayed_restart(TTL)`.
    delayed_restart: bool,
    /// Whether clients see restarts (see `FencedLink::sees_restarts`).
    sees_restarts: bool,
    retention: Duration,
}

impl Setup {
    /// The engine's construction, clocks in step, no quarantine, counters kept for 60 s.
    fn engine(node_timeout: Duration) -> Self {
        Setup {
            variant: Variant::Engine,
            terms: Terms::Both,
            node_timeout,
            offsets_ms: Vec::new(),
            delayed_restart: false,
            sees_restarts: true,
            retention: Duration::from_secs(60),
        }
    }

    fn variant(node_timeout: Duration, variant: Variant) -> Self {
        Setup {
            variant,
            ..Setup::engine(node_timeout)
        }
    }
}

/// Run the scenario with `variant` on a paused clock; return every hold with its token.
fn run(scenario: &Scenario, variant: Variant, node_timeout: Duration) -> Vec<FencedHold> {
    run_setup(scenario, &Setup::variant(node_timeout, variant))
}

/// Run the scenario as `setup` says on a paused clock; return every hold with its token.
fn run_setup(scenario: &Scenario, setup: &Setup) -> Vec<FencedHold> {
    let (variant, node_timeout) = (setup.variant, setup.node_timeout);
    let runtime = crate::sim::paused_runtime();
    runtime.block_on(async {
        let epoch = Instant::now();
        let nodes = crate::sim::sim_nodes(scenario, epoch);
        let mut config = LockConfig::new()
            .node_timeout(node_timeout)
            .drift_factor(DRIFT_FACTOR)
            .key_prefix(PREFIX)
            .retry(RetryPolicy::once())
            .fencing(true)
            .fencing_retention(setup.retention);
        if setup.delayed_restart {
            config = config.delayed_restart(TTL);
        }
        let holds = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for client in 0..scenario.clients {
            let links: Vec<Arc<FencedLink>> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    Arc::new(FencedLink {
                        node: node.clone(),
                        order: tokio::sync::Mutex::new(()),
                        rng: crate::sim::link_rng(scenario.seed, client, i),
                        slow_ms: scenario.max_delay_ms,
                        loss_percent: scenario.loss_percent,
                        clock_offset_us: setup.offsets_ms.get(i).copied().unwrap_or(0) * 1000,
                        terms: setup.terms,
                        sees_restarts: setup.sees_restarts,
                    })
                })
                .collect();
            let shared: Vec<SharedNode> = links.iter().map(|l| l.clone() as SharedNode).collect();
            let manager = crate::sim::client_manager(&config, shared);
            let holds = holds.clone();
            let ops = scenario.ops_per_client;
            let mut rng = StdRng::seed_from_u64(scenario.seed.wrapping_add(client as u64));
            clients.push(tokio::spawn(async move {
                // `ops` holds per client, or as many as fit in the time limit: failed
                // attempts (most of them, under contention) do not use up the budget.
                let (mut held_count, mut op) = (0, 0u64);
                while held_count < ops && Instant::now() < epoch + RUN_LIMIT {
                    op += 1;
                    let asked = Instant::now();
                    let held = if variant == Variant::Engine {
                        match manager.try_acquire(RESOURCE, TTL).await {
                            Ok(Some(mut lock)) => {
                                let Some(token) = lock.fencing_token() else {
                                    panic!("a fenced lock without a token: {lock:?}");
                                };
                                let from = Instant::now();
                                sleep(hold_time(&mut rng)).await;
                                let until = Instant::now().min(lock.deadline);
                                let _ = manager.release(&mut lock).await;
                                Some((from, until, token))
                            }
                            _ => None,
                        }
                    } else {
                        let token = format!("{client}.{op}");
                        match hand_acquire(&links, variant, &token, node_timeout, &mut rng).await {
                            Some((fencing_token, deadline)) => {
                                let from = Instant::now();
                                sleep(hold_time(&mut rng)).await;
                                let until = Instant::now().min(deadline);
                                let key = crate::keys::independent_key(PREFIX, RESOURCE.as_bytes());
                                hand_release(&links, &key, &token, node_timeout).await;
                                Some((from, until, fencing_token))
                            }
                            None => None,
                        }
                    };
                    match held {
                        Some((from, until, token)) => {
                            held_count += 1;
                            crate::mutex::lock(&holds).push(FencedHold {
                                client,
                                asked,
                                from,
                                until,
                                token,
                            });
                        }
                        None => sleep(Duration::from_millis(rng.random_range(0..200))).await,
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

/// The first pair of holds whose tokens are out of order: a hold that started later with a
/// token no greater than an earlier one's (or two holds that started together with one
/// token).
fn out_of_order(holds: &[FencedHold]) -> Option<(FencedHold, FencedHold)> {
    for a in holds {
        for b in holds {
            let later_not_greater = a.from < b.from && b.token <= a.token;
            let same_start_same_token =
                a.from == b.from && a.token == b.token && !std::ptr::eq(a, b);
            if later_not_greater || same_start_same_token {
                return Some((*a, *b));
            }
        }
    }
    None
}

/// The first pair of holds where the later one (its attempt started after the earlier one
/// was granted) has a token no greater: what a fenced store needs, since the earlier holder
/// may still write after the later one did. Holds that overlapped in their acquisitions (only
/// possible when data loss broke mutual exclusion) are not ordered.
fn regressed(holds: &[FencedHold]) -> Option<(FencedHold, FencedHold)> {
    holds.iter().find_map(|a| {
        holds
            .iter()
            .find(|b| a.from < b.asked && b.token <= a.token)
            .map(|b| (*a, *b))
    })
}

/// Two holds with the same token, if any.
fn duplicate_token(holds: &[FencedHold]) -> Option<(FencedHold, FencedHold)> {
    for (i, a) in holds.iter().enumerate() {
        if let Some(b) = holds[i + 1..].iter().find(|b| b.token == a.token) {
            return Some((*a, *b));
        }
    }
    None
}

proptest! {
    #![proptest_config(Config { cases: 64, ..Config::default() })]

    /// Without data loss, every holder's token is strictly greater than every earlier
    /// holder's, whatever the delays (with a slow tail), losses, crashes and clock drift
    /// (within the factor), with a short and a long node timeout.
    #[test]
    fn tokens_increase_without_data_loss(
        s in scenario(Just(false), 0..3, 100..3000),
        timeout_ms in prop_oneof![Just(100u64), Just(400u64)],
        offsets_ms in offsets(300),
    ) {
        // Counters expire after 1 s (the shortest retention allowed), often between holds.
        let setup = Setup {
            offsets_ms,
            retention: Duration::from_secs(1),
            ..Setup::engine(Duration::from_millis(timeout_ms))
        };
        let holds = run_setup(&s, &setup);
        prop_assert!(out_of_order(&holds).is_none(), "out of order: {:?}", out_of_order(&holds));
    }
}

/// Per node (up to 5), a clock offset in `-spread_ms..=spread_ms`: any two voters disagree by
/// less than `2 * spread_ms`.
fn offsets(spread_ms: i64) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(-spread_ms..=spread_ms, 5)
}

proptest! {
    #![proptest_config(Config { cases: 32, ..Config::default() })]

    /// Voters restart empty (any number of times, any of them, at any moment) and
    /// `delayed_restart(TTL)` quarantines them; clocks are up to 600 ms apart, plus up to 1 %
    /// rate drift over the run (< TTL), and counters expire after 1 s: no later holder's token
    /// is ever lower than or equal to an earlier holder's.
    #[test]
    fn tokens_increase_with_data_loss_and_delayed_restarts(
        s in scenario(any::<bool>(), 1..4, 20..600),
        offsets_ms in offsets(300),
    ) {
        let setup = Setup {
            offsets_ms,
            delayed_restart: true,
            retention: Duration::from_secs(1),
            ..Setup::engine(Duration::from_millis(100))
        };
        let holds = run_setup(&s, &setup);
        prop_assert!(regressed(&holds).is_none(), "regressed: {:?}", regressed(&holds));
    }

    /// Voters restart empty without `delayed_restart` (so a restarted voter can vote at once,
    /// and mutual exclusion can break), each restart taking 20-600 ms; clocks in step (no
    /// offset, no drift): no holder that asked after another was granted gets a lower token.
    #[test]
    fn tokens_increase_with_data_loss_without_quarantine_when_clocks_agree(
        s in scenario(any::<bool>(), 1..4, 20..600),
    ) {
        let s = Scenario { clock_rates: vec![1.0; s.clock_rates.len()], ..s };
        let setup = Setup {
            retention: Duration::from_secs(1),
            ..Setup::engine(Duration::from_millis(100))
        };
        let holds = run_setup(&s, &setup);
        prop_assert!(regressed(&holds).is_none(), "regressed: {:?}", regressed(&holds));
    }

    /// Voters fail over to replicas that lack everything (the worst lagging replica), unseen by
    /// the clients (no quarantine), each failover taking 1-3 s as an automatic one does (at
    /// least `cluster-node-timeout`); clocks up to 600 ms apart plus their drift: tokens still
    /// increase.
    #[test]
    fn tokens_increase_across_unseen_failovers_slower_than_the_clock_offset(
        s in scenario(Just(true), 1..3, 1000..3000),
        offsets_ms in offsets(300),
    ) {
        let setup = Setup {
            offsets_ms,
            sees_restarts: false,
            ..Setup::engine(Duration::from_millis(100))
        };
        let holds = run_setup(&s, &setup);
        prop_assert!(regressed(&holds).is_none(), "regressed: {:?}", regressed(&holds));
    }
}

/// The random scenarios of `tokens_increase_without_data_loss` (no data loss at all, counters
/// kept 1 s) with nodes that report only their counters: the checker finds a regression,
/// because an expired counter is a lost counter. The clock term is what makes expiry safe.
#[test]
fn the_counter_alone_regresses_once_counters_expire() {
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 64,
            failure_persistence: None,
            max_shrink_iters: 4,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let result = runner.run(&scenario(Just(false), 0..3, 100..3000), |s| {
        let setup = Setup {
            terms: Terms::CounterOnly,
            retention: Duration::from_secs(1),
            ..Setup::engine(Duration::from_millis(100))
        };
        let holds = run_setup(&s, &setup);
        prop_assert!(
            out_of_order(&holds).is_none(),
            "out of order: {:?}",
            out_of_order(&holds)
        );
        Ok(())
    });
    assert!(
        matches!(result, Err(TestError::Fail(..))),
        "expiring counters without the clock term should regress: {result:?}"
    );
}

/// The first of `seeds` random data-loss scenarios (quarantined restarts, as in
/// `tokens_increase_with_data_loss_and_delayed_restarts`) where `terms` lets a token regress.
fn data_loss_counterexample(
    terms: Terms,
    seeds: std::ops::Range<u64>,
) -> Option<(u64, FencedHold, FencedHold)> {
    seeds.into_iter().find_map(|seed| {
        let scenario = Scenario {
            clock_rates: vec![1.0; 3],
            crashes: (0..3u64)
                .map(|i| {
                    vec![super::Crash {
                        at_ms: 1500 + 2500 * i + seed % 7 * 100,
                        down_ms: 50,
                        loses_data: true,
                    }]
                })
                .collect(),
            max_delay_ms: 20,
            loss_percent: 2,
            hung: None,
            clients: 3,
            ops_per_client: 8,
            seed,
        };
        let setup = Setup {
            terms,
            delayed_restart: true,
            retention: Duration::from_secs(1),
            ..Setup::engine(Duration::from_millis(100))
        };
        regressed(&run_setup(&scenario, &setup)).map(|(a, b)| (seed, a, b))
    })
}

/// The checker sees data loss: on scenarios where every voter restarts empty in turn
/// (quarantined), the counter alone hands a later holder a lower token...
#[test]
fn the_counter_alone_regresses_after_data_loss() {
    let found = data_loss_counterexample(Terms::CounterOnly, 0..16);
    eprintln!("counter-only counterexample (seed, earlier, later): {found:#?}");
    assert!(
        found.is_some(),
        "the counter alone should regress after restarts"
    );
}

/// ...while the hybrid clock holds on the same scenarios.
#[test]
fn the_hybrid_clock_holds_on_the_data_loss_scenarios() {
    assert_eq!(data_loss_counterexample(Terms::Both, 0..16), None);
}

/// The property is not vacuous: the engine grants fenced locks in the model, to several
/// clients, with growing tokens.
#[test]
fn the_model_grants_fenced_locks() {
    let holds = run(&race(7), Variant::Engine, RACE_TIMEOUT);
    assert!(holds.len() >= 10, "only {} holds", holds.len());
    let clients: std::collections::HashSet<usize> = holds.iter().map(|h| h.client).collect();
    assert!(clients.len() >= 3, "only {clients:?} ever won");
    assert!(out_of_order(&holds).is_none());
}

/// The clock alone is not monotonic either: a granter whose clock is behind hands a later
/// holder a lower token, without any data loss.
#[test]
fn the_clock_alone_is_not_monotonic() {
    let found = (0..16u64).find_map(|seed| {
        let setup = Setup {
            terms: Terms::TimeOnly,
            offsets_ms: vec![0, -300, 300],
            ..Setup::engine(RACE_TIMEOUT)
        };
        out_of_order(&run_setup(&race(seed), &setup)).map(|(a, b)| (seed, a, b))
    });
    eprintln!("clock-only counterexample (seed, earlier, later): {found:#?}");
    assert!(found.is_some(), "the clock alone should break monotonicity");
}

/// The node timeout of the race scenarios: long enough for one slow message to span another
/// client's whole acquire-hold-release.
const RACE_TIMEOUT: Duration = Duration::from_millis(400);

/// A contended scenario on 3 voters: a slow tail up to 300 ms, little loss, no crash.
fn race(seed: u64) -> Scenario {
    Scenario {
        clock_rates: vec![1.0; 3],
        crashes: vec![vec![]; 3],
        max_delay_ms: 300,
        loss_percent: 5,
        hung: None,
        clients: 4,
        ops_per_client: 10,
        seed,
    }
}

/// The first of the race scenarios (seeds `0..64`, fixed, so the search is deterministic)
/// where `variant` hands out tokens out of order; the seed and the two holds.
fn counterexample(variant: Variant) -> Option<(u64, FencedHold, FencedHold)> {
    (0..64u64).find_map(|seed| {
        out_of_order(&run(&race(seed), variant, RACE_TIMEOUT)).map(|(a, b)| (seed, a, b))
    })
}

/// The checker is sensitive: on the same scenarios, one round "INCR and take the max" hands
/// a later holder a token no greater than an earlier one's, without any data loss...
#[test]
fn incr_and_max_in_one_round_is_not_monotonic() {
    let found = counterexample(Variant::IncrMax);
    eprintln!("IncrMax counterexample (seed, earlier, later): {found:#?}");
    assert!(
        found.is_some(),
        "one-round INCR-max should break monotonicity"
    );
}

/// ...and so does a write-back acknowledged by some majority rather than by a quorum of the
/// voters that granted...
#[test]
fn commit_to_any_majority_is_not_monotonic() {
    let found = counterexample(Variant::CommitAnyMajority);
    eprintln!("CommitAnyMajority counterexample (seed, earlier, later): {found:#?}");
    assert!(
        found.is_some(),
        "a commit to any majority should break monotonicity"
    );
}

/// ...while the engine's construction holds on every one of them.
#[test]
fn the_engine_holds_on_the_race_scenarios() {
    assert_eq!(counterexample(Variant::Engine), None);
}

/// Clocks twice as fast as the drift factor allows break mutual exclusion (the `sim` test
/// shows it), yet the engine's tokens stay distinct, because their order is decided by the
/// atomic scripts on a shared voter, not by clocks: a fenced resource still refuses the
/// stale holder.
#[test]
fn tokens_stay_distinct_when_clocks_break_mutual_exclusion() {
    let mut overlapped = false;
    for seed in 0..32u64 {
        let holds = run(
            &crate::sim::fast_clocks(seed),
            Variant::Engine,
            Duration::from_millis(100),
        );
        assert!(
            duplicate_token(&holds).is_none(),
            "seed {seed}: {:?}",
            duplicate_token(&holds)
        );
        overlapped |= holds.iter().enumerate().any(|(i, a)| {
            holds[i + 1..]
                .iter()
                .any(|b| a.from < b.until && b.from < a.until)
        });
    }
    assert!(overlapped, "fast clocks should let some holds overlap");
}
