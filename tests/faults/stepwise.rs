//! Step-by-step scenarios, one or two clients at a time: a failover while a lock is held, and
//! `SCRIPT FLUSH` followed by a restart of every node.

use std::time::{Duration, Instant};

use redlock_cluster::LockManager;
use redlock_harness::raw_async;

use super::Target;
use super::record::{Attempt, Outcome, Run, classify};
use super::report::Report;
use super::workload::{TTL, lock_config, resource_name};

/// Fail over a master while a lock is held on it, `rounds` times, and measure whether a second
/// client gets the lock inside the first one's validity. The test asserts what Redlock
/// guarantees with one vote lost: the other voters still hold the first token, so the second
/// client, needing 2 of 3, is refused. Whether the promoted replica had the key is measured
/// and printed, not asserted.
pub async fn failover_while_held<T: Target>(target: T, rounds: usize) -> Report {
    let mut target = target;
    let urls = target.lock_urls();
    let held_ttl = Duration::from_secs(12);
    let mut attempts = Vec::new();
    let mut replica_had_key = 0;
    for round in 0..rounds {
        // Fresh clients each round: they read the topology as the previous round's failover
        // left it. (A client kept from round 0 may still map voter 0 to the old master, now a
        // replica, until its background refresh lands; `voters_of` would then name a node
        // that is no longer a master.)
        let first = LockManager::connect(&urls, lock_config())
            .await
            .expect("first");
        let second = LockManager::connect(&urls, lock_config())
            .await
            .expect("second");
        let resource = format!("faults/held-{round}");
        let requested = Instant::now();
        let mut lock = first
            .try_acquire(&resource, held_ttl)
            .await
            .expect("first acquire")
            .expect("first client gets the free lock");
        let returned = Instant::now();
        let voters = first.voters_of(&resource).await.expect("voters");
        let victim_port = &voters[0].0;
        let victim = target
            .masters()
            .into_iter()
            .find(|&m| target.url_of(m).ends_with(victim_port.as_str()))
            .expect("voter 0's master is a known node");
        // Kill voter 0's master right after the grant and wait for its replica.
        let (back, new_master) = tokio::task::spawn_blocking(move || {
            let new_master = target.fail_over(victim);
            (target, new_master)
        })
        .await
        .expect("failover thread");
        target = back;
        let promoted = Instant::now();
        // Read voter 0's key on the promoted replica itself (a client's view may still point
        // at the dead master), and the other voters through the quorum read.
        let replica_value = get(&target.url_of(new_master), &voters[0].1).await;
        let on_replica = replica_value.as_deref() == Some(lock.token().as_str());
        if on_replica {
            replica_had_key += 1;
        }
        let info = second.inspect(&resource, None).await.expect("inspect");
        let holds_first: Vec<bool> = info
            .nodes
            .iter()
            .map(|n| n.holder.as_deref() == Some(lock.token().as_str()))
            .collect();
        eprintln!(
            "round {round}: failover took {:?}; the promoted replica (node {new_master}) has \
             the first token: {on_replica}; voters holding it per the second client's read: \
             {holds_first:?}",
            promoted - returned
        );
        assert!(
            lock.is_valid(),
            "the failover took longer than the held lock's validity; raise held_ttl"
        );
        assert!(
            holds_first[1] && holds_first[2],
            "the voters that were not failed over lost the first token: {info:#?}"
        );
        // The second client tries while the first lock is valid (bounded: 10 tries).
        for _ in 0..10 {
            if !lock.is_valid() {
                break;
            }
            let asked = Instant::now();
            let result = second.try_acquire(&resource, TTL).await;
            let answered = Instant::now();
            let outcome = match result {
                Ok(Some(mut other)) => {
                    let end = Instant::now().min(other.validity_deadline());
                    let _ = second.release(&mut other).await;
                    Outcome::Section {
                        end,
                        votes: other.granted_by().len(),
                    }
                }
                Ok(None) => Outcome::Contended,
                Err(error) => classify(&error),
            };
            attempts.push(Attempt {
                client: 1,
                resource: round,
                requested: asked,
                returned: answered,
                outcome,
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        attempts.push(Attempt {
            client: 0,
            resource: round,
            requested,
            returned,
            outcome: Outcome::Section {
                end: Instant::now().min(lock.validity_deadline()),
                votes: lock.granted_by().len(),
            },
        });
        let _ = first.release(&mut lock).await;
        // The killed master comes back as a replica of the promoted one.
        target = tokio::task::spawn_blocking(move || {
            target.restart(victim);
            target.wait_healthy();
            target
        })
        .await
        .expect("restart thread");
    }
    let run = Run {
        attempts,
        counters: None,
    };
    let report = Report::of(
        &target.backend(),
        &format!("fail over voter 0 while held ({rounds} rounds)"),
        2,
        &run,
    );
    report.print();
    eprintln!(
        "failover while held: the promoted replica had the first token in {replica_had_key} \
         of {rounds} rounds; second client granted inside the first's validity: {} times",
        report.overlaps
    );
    assert_eq!(
        report.overlaps, 0,
        "{report}\nwith one of three votes failed over, the second client still needed a vote \
         that the first holder keeps: {run:#?}"
    );
    assert!(
        report.contended > 0,
        "{report}\nthe second client was never refused by contention"
    );
    report
}

/// `SCRIPT FLUSH` on every node, then a restart of every node: the next acquire works each
/// time (the scripts are reloaded, the connections reopened, the topology re-read).
pub async fn flush_and_restart_all<T: Target>(target: T) -> Report {
    let mut target = target;
    let manager = LockManager::connect(&target.lock_urls(), lock_config())
        .await
        .expect("manager");
    let mut attempts = Vec::new();
    acquire_eventually(&manager, "before", &mut attempts).await;
    for node in target.all_nodes() {
        let mut con = raw_async(&target.url_of(node)).await.expect("connect");
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut con)
            .await
            .expect("SCRIPT FLUSH");
    }
    let tries = acquire_eventually(&manager, "after SCRIPT FLUSH", &mut attempts).await;
    assert_eq!(tries, 1, "the first acquire after SCRIPT FLUSH should work");
    target = tokio::task::spawn_blocking(move || {
        target.restart_all();
        target
    })
    .await
    .expect("restart thread");
    let tries = acquire_eventually(&manager, "after restarting every node", &mut attempts).await;
    eprintln!("acquire after restarting every node took {tries} attempt(s)");
    let run = Run {
        attempts,
        counters: None,
    };
    let report = Report::of(
        &target.backend(),
        "SCRIPT FLUSH, then restart every node",
        1,
        &run,
    );
    report.print();
    report
}

/// Acquires and releases `what`, retrying a bounded number of times; returns the attempts
/// it took. Panics when none succeeds.
async fn acquire_eventually(
    manager: &LockManager,
    what: &str,
    attempts: &mut Vec<Attempt>,
) -> usize {
    let resource = attempts.len() % 7;
    for tries in 1..=40 {
        let requested = Instant::now();
        let result = manager.try_acquire(&resource_name(resource), TTL).await;
        let returned = Instant::now();
        let outcome = match result {
            Ok(Some(mut lock)) => {
                let end = Instant::now().min(lock.validity_deadline());
                manager.release(&mut lock).await.expect("release");
                Outcome::Section {
                    end,
                    votes: lock.granted_by().len(),
                }
            }
            Ok(None) => Outcome::Contended,
            Err(error) => classify(&error),
        };
        let done = matches!(outcome, Outcome::Section { .. });
        attempts.push(Attempt {
            client: 0,
            resource,
            requested,
            returned,
            outcome,
        });
        if done {
            return tries;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no acquire succeeded {what} in 40 attempts over ~10 s: {attempts:#?}");
}

/// `GET key` on the node at `url`.
async fn get(url: &str, key: &[u8]) -> Option<String> {
    let mut con = raw_async(url).await.expect("connection");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut con)
        .await
        .expect("GET")
}
