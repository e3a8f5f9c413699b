//! The three sequences of issue 16, replayed step by step in the model on lossless, instant
//! links: a lost voter, a rolling restart, and a failover to a replica that lacks the latest
//! counter. The counter alone (the construction before the clock term) hands the later holder
//! a token no greater than the stale holder's in each; the hybrid clock does not, and the
//! sensitivity check shows where its assumption (clock offset below the gap) is needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::{Instant, sleep_until};

use super::link::{FencedLink, Terms};
use super::{PREFIX, RESOURCE};
use crate::config::LockConfig;
use crate::manager::LockManager;
use crate::node::SharedNode;
use crate::retry::RetryPolicy;
use crate::sim::Crash;
use crate::sim::node::{NodeData, SimNode, SimSeeds};

/// The TTL of every acquisition in the sequences, as in the issue.
const TTL: Duration = Duration::from_millis(400);
/// `delayed_restart`'s longest TTL when on.
const QUARANTINE: Duration = Duration::from_millis(500);

/// One acquisition: when (ms from the start), and whether the holder releases at once (else
/// it stalls without writing, and its keys expire).
#[derive(Debug, Clone, Copy)]
struct Acquire {
    at_ms: u64,
    release: bool,
}

fn acquire(at_ms: u64) -> Acquire {
    Acquire {
        at_ms,
        release: true,
    }
}

fn stall(at_ms: u64) -> Acquire {
    Acquire {
        at_ms,
        release: false,
    }
}

/// How the nodes and the client are set up for one replay.
#[derive(Debug, Clone)]
struct World {
    crashes: [Vec<Crash>; 3],
    offsets_ms: [i64; 3],
    terms: Terms,
    delayed_restart: bool,
    sees_restarts: bool,
}

fn down(at_ms: u64, down_ms: u64) -> Crash {
    Crash {
        at_ms,
        down_ms,
        loses_data: false,
    }
}

fn empty(at_ms: u64, down_ms: u64) -> Crash {
    Crash {
        at_ms,
        down_ms,
        loses_data: true,
    }
}

/// Run the acquisitions in order on a paused clock; each one's token (`None`: not granted).
fn replay(world: &World, acquires: &[Acquire]) -> Vec<Option<u64>> {
    let runtime = crate::sim::paused_runtime();
    runtime.block_on(async {
        let epoch = Instant::now();
        let links: Vec<SharedNode> = world
            .crashes
            .iter()
            .zip(world.offsets_ms)
            .enumerate()
            .map(|(i, (crashes, offset_ms))| {
                let node = Arc::new(SimNode {
                    name: format!("{}", char::from(b'A' + i as u8)),
                    clock_rate: 1.0,
                    crashes: crashes.clone(),
                    epoch,
                    data: Mutex::new(NodeData::default()),
                });
                Arc::new(FencedLink {
                    node,
                    order: tokio::sync::Mutex::new(()),
                    rng: Mutex::new(StdRng::seed_from_u64(1)),
                    slow_ms: 0,
                    loss_percent: 0,
                    clock_offset_us: offset_ms * 1000,
                    terms: world.terms,
                    sees_restarts: world.sees_restarts,
                }) as SharedNode
            })
            .collect();
        let mut config = LockConfig::new()
            .node_timeout(Duration::from_millis(50))
            .key_prefix(PREFIX)
            .retry(RetryPolicy::once())
            .fencing(true);
        if world.delayed_restart {
            config = config.delayed_restart(QUARANTINE);
        }
        let manager = match LockManager::with_seeds(config, Box::new(SimSeeds(links))) {
            Ok(manager) => manager,
            Err(e) => panic!("invalid config: {e}"),
        };
        let mut tokens = Vec::new();
        for step in acquires {
            sleep_until(epoch + Duration::from_millis(step.at_ms)).await;
            let token = match manager.try_acquire(RESOURCE, TTL).await {
                Ok(Some(mut lock)) => {
                    if step.release {
                        let _ = manager.release(&mut lock).await;
                    }
                    lock.fencing_token()
                }
                _ => None,
            };
            tokens.push(token);
        }
        tokens
    })
}

/// Sequence 1, a lost voter: X takes token 1 on A, B, C; C stops (1-2 s); X takes tokens 2
/// (released) and 3 (stalled) on A and B; B restarts empty at 0.8 s (back at 0.9 s, its
/// quarantine, when on, over at 1.4 s); A stops at 2 s, C resumes: Y is granted by B and C.
fn lost_voter(terms: Terms, delayed_restart: bool, offsets_ms: [i64; 3]) -> Vec<Option<u64>> {
    let world = World {
        crashes: [
            vec![down(2000, 60_000)],
            vec![empty(800, 100)],
            vec![down(100, 1900)],
        ],
        offsets_ms,
        terms,
        delayed_restart,
        sees_restarts: true,
    };
    replay(
        &world,
        &[acquire(0), acquire(200), stall(300), acquire(2100)],
    )
}

/// Sequence 2, a rolling restart by the book on an idle resource: five holds, then each voter
/// restarts empty in turn and its quarantine is waited out; then one more holder.
fn rolling_restart(terms: Terms) -> Vec<Option<u64>> {
    let world = World {
        crashes: [
            vec![empty(1000, 100)],
            vec![empty(2000, 100)],
            vec![empty(3000, 100)],
        ],
        offsets_ms: [0, 0, 0],
        terms,
        delayed_restart: true,
        sees_restarts: true,
    };
    replay(
        &world,
        &[
            acquire(0),
            acquire(100),
            acquire(200),
            acquire(300),
            acquire(400),
            acquire(4000),
        ],
    )
}

/// Sequence 3, a failover to a lagging replica that the client never saw (another address,
/// no quarantine): C stops; X takes tokens 2 and 3 on A and B; B's master dies at 0.6 s and
/// its replica, without the counter, serves `failover_ms` later; C resumes and A stops; Y
/// is granted by the new B and C.
fn lagging_failover(terms: Terms, failover_ms: u64, offsets_ms: [i64; 3]) -> Vec<Option<u64>> {
    let back = 600 + failover_ms;
    let world = World {
        crashes: [
            vec![down(back, 60_000)],
            vec![empty(600, failover_ms)],
            vec![down(100, back - 100)],
        ],
        offsets_ms,
        terms,
        delayed_restart: false,
        sees_restarts: false,
    };
    replay(
        &world,
        &[acquire(0), acquire(200), stall(300), acquire(back + 100)],
    )
}

/// Every holder got a token, and each is greater than the one before.
fn increasing(tokens: &[Option<u64>]) -> bool {
    tokens.iter().all(Option::is_some) && tokens.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn a_lost_voter_repeats_the_counter_alone_not_the_hybrid_clock() {
    for delayed_restart in [true, false] {
        let before = lost_voter(Terms::CounterOnly, delayed_restart, [0; 3]);
        assert_eq!(
            before,
            [Some(1), Some(2), Some(3), Some(2)],
            "the issue's sequence 1 (delayed_restart {delayed_restart})"
        );
        // Clocks that disagree by up to 800 ms, less than the 1.2 s between X's last token
        // and B's first grant after its restart.
        for offsets in [[0, 0, 0], [400, -400, 0], [-400, 400, -400]] {
            let after = lost_voter(Terms::Both, delayed_restart, offsets);
            assert!(
                increasing(&after),
                "{offsets:?} {delayed_restart}: {after:?}"
            );
        }
    }
}

#[test]
fn a_rolling_restart_resets_the_counter_alone_not_the_hybrid_clock() {
    let before = rolling_restart(Terms::CounterOnly);
    assert_eq!(before[4], Some(5));
    assert_eq!(before[5], Some(1), "the issue's sequence 2: back to 1");
    let after = rolling_restart(Terms::Both);
    assert!(increasing(&after), "{after:?}");
}

#[test]
fn a_lagging_failover_repeats_the_counter_alone_not_the_hybrid_clock() {
    let before = lagging_failover(Terms::CounterOnly, 2000, [0; 3]);
    assert_eq!(before, [Some(1), Some(2), Some(3), Some(2)], "sequence 3");
    for offsets in [[0, 0, 0], [400, -400, 0], [-400, 400, 400]] {
        let after = lagging_failover(Terms::Both, 2000, offsets);
        assert!(increasing(&after), "{offsets:?}: {after:?}");
    }
}

/// The hybrid clock's assumption is real, and the replay sees it broken: a promoted replica
/// whose clock is 1.5 s behind, serving 300 ms after the failure (a forced failover), hands Y
/// a token below X's.
#[test]
fn a_failover_faster_than_the_clock_offset_breaks_the_hybrid_clock() {
    let tokens = lagging_failover(Terms::Both, 300, [0, -1500, -1500]);
    assert!(tokens.iter().all(Option::is_some), "{tokens:?}");
    assert!(!increasing(&tokens), "{tokens:?}");
}
