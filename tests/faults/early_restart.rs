//! A voter restarted without its data *before* the TTL ran out: Redlock's data-loss
//! counterexample on real servers, with and without `LockConfig::delayed_restart`.

use std::time::{Duration, Instant};

use redlock_cluster::{LockManager, Mode, NodeError};
use redlock_harness::{info_field, raw_async};

use super::Target;
use super::workload::lock_config;

/// The lock's TTL, and the longest TTL given to `delayed_restart`, for server processes
/// (a restart takes well under a second). Docker restarts take seconds: it passes more.
pub const HELD: Duration = Duration::from_secs(6);
/// How long the voters may take to reach an uptime above [`HELD`].
const UPTIME_TIMEOUT: Duration = Duration::from_secs(60);

/// What the scenario saw.
#[derive(Debug)]
pub struct EarlyRestart {
    /// The restarted voter's error in the guarded client's view (`Quarantined` expected).
    pub quarantine: Option<NodeError>,
    /// Whether the client without the rule got the lock while the first was still valid.
    pub second_holder_without_rule: bool,
}

/// The bare-majority counterexample: voters A, B, C of one resource. B is paused while the
/// first client takes the lock, so only A and C hold it. C is restarted without its data.
/// A second client with `delayed_restart(HELD)` asks: B grants, A is held, C (empty) would
/// grant, but it is quarantined, so the second client must be refused, and C's failure must
/// name the quarantine and when it ends. Then a client without the rule asks: B and the empty
/// C grant, a second holder while the first lock is valid. The refusal is asserted; the second
/// holder is asserted too when the first lock was still valid at that point (a slow restart
/// under load may outlast it; the test then says so).
pub async fn restart_empty_early<T: Target>(target: T, held: Duration) -> EarlyRestart {
    let mut target = target;
    let urls = target.lock_urls();
    let resource = "faults/early-restart";
    // A fresh deployment is quarantined as a whole under the rule: wait until every master
    // has been up for longer than the TTL (uptime is rounded down and allowed 1 % drift).
    wait_for_uptime(&target, held + Duration::from_secs(1)).await;
    let voters = LockManager::connect(&urls, lock_config())
        .await
        .expect("probe")
        .voters_of(resource)
        .await
        .expect("voters");
    let node_of = |addr: &str| {
        target
            .all_nodes()
            .into_iter()
            .find(|n| target.url_of(*n).ends_with(addr))
            .unwrap_or_else(|| panic!("no node at {addr}"))
    };
    let (b, c) = (node_of(&voters[1].0), node_of(&voters[2].0));
    let (b_addr, c_addr) = (voters[1].0.clone(), voters[2].0.clone());

    // The holder first connects while B is paused, and B stays paused until the holder's
    // connection to it gave up opening (the connect timeout, 500 ms): the holder's vote for B
    // waits for that connection and is sent as soon as it opens (a late vote belongs to the
    // lock), so B must never see it open. Then only A and C hold the lock.
    let mode = if target.is_cluster() {
        Mode::Cluster
    } else {
        Mode::Independent
    };
    target.pause(b);
    let holder = LockManager::new(&urls, lock_config().mode(mode)).expect("holder");
    let first = holder.try_acquire(resource, held).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    target.resume(b);
    let lock = first
        .expect("first acquire")
        .expect("A and C grant the free lock");
    assert!(
        !lock.granted_by().contains(&b_addr),
        "B was paused: {:?}",
        lock.granted_by()
    );
    target.restart_empty(c);
    target.wait_healthy();

    let guarded = LockManager::connect(&urls, lock_config().delayed_restart(held))
        .await
        .expect("guarded client");
    let refused = guarded.try_acquire(resource, held).await;
    // The refusal means something only while the first lock is valid: a restart slower than
    // the TTL would make any grant legitimate. Fail loudly rather than check nothing.
    assert!(
        lock.is_valid(),
        "the restart of {c_addr} outlasted the first lock's TTL ({held:?}): pass a longer TTL"
    );
    assert!(
        !matches!(refused, Ok(Some(_))),
        "with delayed restarts the empty voter must not vote: {refused:?}"
    );
    let quarantine = match guarded.inspect(resource, None).await {
        Ok(info) => info
            .nodes
            .into_iter()
            .find(|n| n.node == c_addr)
            .and_then(|n| n.error),
        Err(error) => error
            .failures()
            .iter()
            .find(|f| f.node == c_addr)
            .map(|f| f.error.clone()),
    };
    eprintln!(
        "early restart of {c_addr} with delayed_restart({held:?}): acquire {refused:?}; \
         {c_addr}: {quarantine:?}"
    );
    match &quarantine {
        Some(error @ NodeError::Quarantined { remaining, .. }) => {
            assert!(*remaining <= held && !remaining.is_zero(), "{error}");
            let text = error.to_string();
            assert!(
                text.contains("quarantined for another") && text.contains("votes again"),
                "{text}"
            );
        }
        other => panic!("{c_addr} should be quarantined, got {other:?}"),
    }

    let bare = LockManager::connect(&urls, lock_config())
        .await
        .expect("bare client");
    // The guarded client's refused attempt left its key on B until its spawned cleanup
    // runs: try a few times (bounded) while the first lock is valid.
    let mut second = bare.try_acquire(resource, held).await;
    for _ in 0..10 {
        if !matches!(second, Ok(None)) || !lock.is_valid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        second = bare.try_acquire(resource, held).await;
    }
    let first_still_valid = lock.is_valid();
    let second_holder_without_rule = matches!(second, Ok(Some(_))) && first_still_valid;
    eprintln!(
        "early restart without the rule: second acquire {second:?}, first lock valid: \
         {first_still_valid} (left {:?})",
        lock.remaining()
    );
    if first_still_valid {
        assert!(
            second_holder_without_rule,
            "without the rule B and the empty C should grant a second holder: {second:?}"
        );
    } else {
        eprintln!("the first lock expired before the check (slow restart): not asserted");
    }
    EarlyRestart {
        quarantine,
        second_holder_without_rule,
    }
}

/// Wait until every master reports `uptime_in_seconds` of at least `uptime`.
async fn wait_for_uptime<T: Target>(target: &T, uptime: Duration) {
    let deadline = Instant::now() + UPTIME_TIMEOUT;
    for node in target.masters() {
        let url = target.url_of(node);
        loop {
            let mut conn = raw_async(&url).await.expect("connection");
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await
                .expect("INFO");
            let up = info_field(&info, "uptime_in_seconds")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if up >= uptime.as_secs() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} still up only {up}s after {UPTIME_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
