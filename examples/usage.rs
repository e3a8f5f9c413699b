//! The README's usage example, compiled with the crate so that it cannot rot (a test checks the
//! README holds this exact code). Needs a Redis Cluster on 127.0.0.1:7000 (`docker-compose up -d`):
//!
//! ```sh
//! cargo run --release --example usage
//! ```

use std::time::Duration;

use redlock_cluster::{GuardOptions, LockConfig, RedisDistributedLock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One node of a cluster: the voters are its masters. Several standalone
    // URLs would mean classic Redlock over independent masters.
    // The handle has one owner (acquire, extend and release take `&mut self`).
    // Tasks that contend each build their own handle, over one shared
    // `LockManager` with `RedisDistributedLock::with_manager`.
    // Fencing on: every grant carries a token greater than every earlier holder's.
    let config = LockConfig::new().fencing(true);
    let mut lock = RedisDistributedLock::with_config(
        vec!["redis://127.0.0.1:7000".to_string()],
        "invoices/2024-06".to_string(),
        Duration::from_secs(10),
        config,
    )?;

    // Up to 5 retries, exponential backoff with full jitter from 100 ms.
    if lock
        .acquire_with_retry(5, Duration::from_millis(100))
        .await?
    {
        println!("held until {:?}", lock.validity_deadline());
        // Send the token with every write to the protected resource, which
        // refuses tokens lower than the highest it has seen (examples/fencing.rs):
        // a holder paused past its validity can then no longer overwrite.
        let token = lock.fencing_token();
        println!("fencing token: {token:?}");
        // Keep it 10 s from now (replaces the remaining time, not added to it).
        lock.extend(Duration::from_secs(10)).await?;
        println!("held by us: {}", lock.get_lock_info().await?.held_by_caller);
        lock.release().await?;
    }

    // Or a guard: released on drop, kept alive by a watchdog, with a lost signal.
    let options = GuardOptions::new().auto_extend(true);
    if let Some(guard) = lock.acquire_guard(options).await? {
        tokio::select! {
            reason = guard.lost() => println!("lost the lock: {reason}"),
            () = tokio::time::sleep(Duration::from_secs(30)) => println!("work done"),
        }
        guard.release().await?;
    }

    // Before exiting, wait (at most 2 s) for releases still running in the
    // background (a dropped guard's, a cancelled acquire's cleanup); without
    // it their keys stay until the TTL.
    lock.manager().close(Duration::from_secs(2)).await;
    Ok(())
}
