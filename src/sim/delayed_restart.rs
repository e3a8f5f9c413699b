//! The delayed-restart rule in the model (`LockConfig::delayed_restart`): the data-loss
//! counterexample of the parent module (a voter restarting empty while a bare majority holds
//! a lock) yields two holders without the rule and none with it.

use super::*;

/// The longest TTL of the step-by-step scenario below.
const HELD: Duration = Duration::from_secs(5);

fn node(name: &str, epoch: Instant, crashes: Vec<Crash>) -> Arc<SimNode> {
    Arc::new(SimNode {
        name: name.into(),
        clock_rate: 1.0,
        crashes,
        epoch,
        data: Mutex::new(NodeData::default()),
    })
}

/// A client over `nodes` with lossless, instant links.
fn client(nodes: &[Arc<SimNode>], config: &LockConfig) -> LockManager {
    let links: Vec<SharedNode> = nodes
        .iter()
        .map(|node| {
            Arc::new(SimLink {
                node: node.clone(),
                order: tokio::sync::Mutex::new(()),
                rng: Mutex::new(StdRng::seed_from_u64(1)),
                max_delay: Duration::ZERO,
                loss_percent: 0,
                hung: false,
            }) as SharedNode
        })
        .collect();
    match LockManager::with_seeds(config.clone(), Box::new(SimSeeds(links))) {
        Ok(manager) => manager,
        Err(e) => panic!("invalid config: {e}"),
    }
}

/// What the second client got in the counterexample: its lock (while the first was still
/// valid), and what `inspect` said about the restarted voter.
struct Outcome {
    second_holder: bool,
    restarted_voter_error: Option<NodeError>,
    later_acquire: bool,
}

/// The counterexample, step by step on a paused clock: A, B, C; B is down while the first
/// client takes the lock (A and C grant: a bare majority); C crashes at 1 s and comes back
/// empty 100 ms later; at 1.2 s a second client asks, and B and C (empty) would grant it.
/// `later_acquire`: whether the second client gets the lock once the first lock's TTL and
/// C's quarantine are over (liveness).
fn counterexample(config: LockConfig) -> Outcome {
    let runtime = crate::sim::paused_runtime();
    runtime.block_on(async {
        let epoch = Instant::now();
        let crash = |at_ms, down_ms, loses_data| Crash {
            at_ms,
            down_ms,
            loses_data,
        };
        let nodes = [
            node("A", epoch, vec![]),
            node("B", epoch, vec![crash(0, 500, false)]),
            node("C", epoch, vec![crash(1000, 100, true)]),
        ];
        let first = client(&nodes, &config);
        let second = client(&nodes, &config);
        let lock = first
            .try_acquire("resource", HELD)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the first client should win A and C"));
        assert_eq!(lock.granted_by(), ["A", "C"]);
        tokio::time::sleep_until(epoch + Duration::from_millis(1200)).await;
        let got = second.try_acquire("resource", HELD).await;
        let second_holder = matches!(&got, Ok(Some(_))) && lock.is_valid();
        // Undecided (A holds, B is free, C does not count) is an error naming each failure.
        let restarted_voter_error = match second.inspect("resource", None).await {
            Ok(info) => info
                .nodes
                .into_iter()
                .find(|n| n.node == "C")
                .and_then(|n| n.error),
            Err(error) => error
                .failures()
                .iter()
                .find(|f| f.node == "C")
                .map(|f| f.error.clone()),
        };
        if let Ok(Some(mut lock)) = got {
            let _ = second.release(&mut lock).await;
        }
        // After the first lock's TTL and C's quarantine (1.1 s + 5 s).
        tokio::time::sleep_until(epoch + Duration::from_millis(6200)).await;
        let later_acquire = matches!(second.try_acquire("resource", HELD).await, Ok(Some(_)));
        Outcome {
            second_holder,
            restarted_voter_error,
            later_acquire,
        }
    })
}

fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(100))
        .retry(RetryPolicy::once())
}

/// Sensitivity: without the rule the counterexample hands the lock to a second client while
/// the first one's validity runs.
#[test]
fn without_delayed_restarts_an_empty_voter_makes_a_second_holder() {
    let outcome = counterexample(config());
    assert!(
        outcome.second_holder,
        "expected two holders without the rule"
    );
    assert_eq!(outcome.restarted_voter_error, None);
}

/// With the rule, the restarted voter is quarantined (a vote counted as failed, naming why
/// and when it ends), so the second client is refused; once the quarantine is over it gets
/// the lock.
#[test]
fn delayed_restarts_close_the_counterexample() {
    let outcome = counterexample(config().delayed_restart(HELD));
    assert!(!outcome.second_holder, "two holders with delayed restarts");
    let error = outcome
        .restarted_voter_error
        .unwrap_or_else(|| panic!("C should be reported as quarantined"));
    let NodeError::Quarantined { remaining, reason } = &error else {
        panic!("C should be quarantined, got {error}");
    };
    // Back at 1.1 s, quarantined until 6.1 s (plus the 1 % its 100 ms uptime is shrunk by
    // for drift), asked at 1.2 s.
    assert!(
        (Duration::from_millis(4900)..Duration::from_millis(4902)).contains(remaining),
        "{error}"
    );
    assert!(reason.contains("started 0s ago"), "{error}");
    assert!(error.to_string().contains("in 4.9s"), "{error}");
    assert!(
        outcome.later_acquire,
        "the lock should be free again after 6.1 s"
    );
}

proptest! {
    #![proptest_config(Config { cases: 64, ..Config::default() })]

    /// The random scenarios of `data_loss_yields_a_shrunk_counterexample` (crashes that lose
    /// data, delays, losses, drift within the factor): with delayed restarts over the TTL the
    /// clients use, no two holds overlap.
    #[test]
    fn no_overlap_with_data_loss_and_delayed_restarts(
        s in scenario(any::<bool>(), 1..4, 20..600)
    ) {
        let holds = run_with(&s, config().delayed_restart(TTL));
        prop_assert!(overlap(&holds).is_none(), "overlap: {:?}", overlap(&holds));
    }
}
