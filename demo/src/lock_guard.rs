//! `LockGuard`: a lock released when the guard goes out of scope (RAII), released explicitly
//! with a result, kept alive past several TTLs by the auto-extension watchdog, and the
//! lost-lock signal when a quorum of masters dies.
//!
//! ```sh
//! cargo run --release -- lock_guard
//! ```
//!
//! The last part kills two of the three masters, so it only runs on a throwaway cluster the
//! demo started itself; on your own cluster (127.0.0.1:7000-7005) it is skipped and says so.

use std::time::Duration;

use redlock_cluster::{GuardOptions, LockConfig, LockManager, LostReason};
use redlock_harness::Cluster;
use tokio::time::{Instant, sleep};

use crate::common::{CLOSE_TIMEOUT, DemoResult, Summary, say, secs};

/// Short, so that "more than three TTLs" takes under two seconds.
const TTL: Duration = Duration::from_millis(500);

/// Runs the demo; kills nodes only of `throwaway`, a cluster the demo started itself.
pub async fn run(seed_urls: &[String], throwaway: Option<&mut Cluster>) -> DemoResult {
    println!("--- lock_guard: RAII release, explicit release, auto-extension, lost signal");
    let config = LockConfig::new().node_timeout(Duration::from_millis(200));
    let holder = LockManager::new(seed_urls, config.clone())?;
    let other = LockManager::new(seed_urls, config)?;

    // 1. RAII: the lock is released when the guard goes out of scope.
    {
        let long_ttl = Duration::from_secs(30);
        let _guard = holder
            .lock_guard("demo/raii", long_ttl, GuardOptions::new())
            .await?
            .ok_or("demo/raii is held by someone else")?;
        say("holder", "holds demo/raii (TTL 30 s) inside a scope");
    }
    let freed_in = wait_until_free(&other, "demo/raii").await?;
    say(
        "other",
        format!(
            "got demo/raii {} after the guard was dropped",
            secs(freed_in)
        ),
    );

    // 2. Explicit release, with its result.
    let guard = holder
        .lock_guard("demo/explicit", TTL, GuardOptions::new())
        .await?
        .ok_or("demo/explicit is held by someone else")?;
    let released = guard.release().await?;
    say("holder", format!("released demo/explicit: {released}"));

    // 3. Auto-extension: held for more than three TTLs, checked from outside all along.
    let guard = holder
        .lock_guard("demo/watchdog", TTL, GuardOptions::new().auto_extend(true))
        .await?
        .ok_or("demo/watchdog is held by someone else")?;
    let first_deadline = guard.validity_deadline();
    let held_for = TTL * 7 / 2;
    say(
        "holder",
        format!(
            "holds demo/watchdog, TTL {}, extended every TTL/3; working {}",
            secs(TTL),
            secs(held_for)
        ),
    );
    let start = Instant::now();
    let mut stolen = 0;
    while start.elapsed() < held_for {
        sleep(TTL / 2).await;
        let info = other.inspect("demo/watchdog", Some(&guard.token())).await?;
        if !info.held_by_caller {
            stolen += 1;
        }
        say(
            "observer",
            format!(
                "demo/watchdog held by the guard: {}, quorum validity left {}",
                info.held_by_caller,
                info.remaining.map_or("-".to_string(), secs)
            ),
        );
    }
    let extended_by = guard
        .validity_deadline()
        .saturating_duration_since(first_deadline);
    let watchdog_lost = guard.is_lost();
    let watchdog_released = guard.release().await?;
    say(
        "holder",
        format!(
            "released demo/watchdog after {} (deadline moved {} by extensions): {watchdog_released}",
            secs(start.elapsed()),
            secs(extended_by)
        ),
    );

    // 4. The lost signal when a quorum of masters dies (throwaway cluster only).
    let lost = match throwaway {
        Some(cluster) => Some(lose_quorum(&holder, cluster).await?),
        None => {
            say(
                "demo",
                "SKIPPED the lost-signal part: it kills masters, and this cluster is yours",
            );
            None
        }
    };

    // Background releases (dropped guards, a lost guard's cleanup) done before the clients go
    // away, bounded: with two masters dead some cannot complete, and their keys expire.
    holder.close(CLOSE_TIMEOUT).await;
    other.close(CLOSE_TIMEOUT).await;

    let mut summary = Summary::new("lock_guard")
        .field("raii_freed_in", secs(freed_in))
        .field("explicit_release", released)
        .field("held", secs(held_for))
        .field("ttl", secs(TTL))
        .check(
            freed_in < Duration::from_secs(5),
            "dropped guard freed the lock",
        )
        .check(released, "explicit release reported the lock held")
        .check(
            stolen == 0 && !watchdog_lost && watchdog_released,
            "watchdog kept the lock",
        )
        .check(extended_by >= TTL * 2, "watchdog extended the deadline");
    summary = match lost {
        Some(after) => summary
            .field("lost_signal_after", secs(after))
            .check(after <= TTL, "lost signal within one TTL"),
        None => summary.field("lost_signal", "skipped"),
    };
    Ok(summary)
}

/// Polls until `resource` can be taken (and gives it back); how long that took.
async fn wait_until_free(
    manager: &LockManager,
    resource: &str,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(mut lock) = manager.try_acquire(resource, TTL).await? {
            manager.release(&mut lock).await?;
            return Ok(start.elapsed());
        }
        sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{resource} still held after 10 s").into())
}

/// Holds an auto-extending guard, kills two of the three masters, and waits for the signal.
async fn lose_quorum(
    holder: &LockManager,
    cluster: &mut Cluster,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let guard = holder
        .lock_guard("demo/lost", TTL, GuardOptions::new().auto_extend(true))
        .await?
        .ok_or("demo/lost is held by someone else")?;
    say("holder", "holds demo/lost with auto-extension");
    sleep(TTL).await;
    let masters = cluster.master_indices()?;
    for &index in masters.iter().take(2) {
        // A SIGKILL and a reap: brief enough to run on the runtime thread.
        cluster.node_mut(index).kill()?;
        say(
            "demo",
            format!("killed master {}", cluster.nodes()[index].url()),
        );
    }
    let killed = Instant::now();
    tokio::select! {
        reason = guard.lost() => {
            let after = killed.elapsed();
            let kind = match &reason {
                LostReason::ExtendFailed(_) => "extension failed",
                LostReason::Expired => "validity ran out",
                _ => "other",
            };
            say("holder", format!("LOST signal after {} ({kind}): {reason}", secs(after)));
            say("holder", "stops its critical section; the keys expire with their TTL");
            Ok(after)
        }
        () = sleep(TTL * 4) => Err("no lost signal within four TTLs".into()),
    }
}
