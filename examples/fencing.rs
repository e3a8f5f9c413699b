//! Fencing tokens: a protected store (a counter in a separate Redis) that refuses writes
//! carrying a token lower than the highest it has seen, so that a lock holder paused past its
//! validity cannot overwrite the work of the holder after it.
//!
//! What the token promises: a holder whose acquisition started after another holder's was
//! granted gets a strictly greater token, also across a voter restarted empty (with
//! `delayed_restart`), a failover to a lagging replica, or a rolling restart, as long as the
//! voters' clocks agree within the quarantine, the failover time and the counters' retention
//! (`docs/design.md`, "Fencing tokens"). Tokens are about the Unix time in microseconds,
//! below 2^53, so the Lua numbers of the store's script hold them exactly.
//!
//! What the store must do: keep the highest token it has seen **durably** (here the store
//! should run with `appendonly yes` and `appendfsync always`: a store that forgets the highest
//! token accepts stale writes again), and compare and write atomically (one script).
//!
//! The voters are the lock URLs; the protected store is another server:
//!
//! ```sh
//! REDLOCK_URLS=redis://127.0.0.1:7000 STORE_URL=redis://127.0.0.1:6379 \
//!     cargo run --release --example fencing
//! ```
//!
//! `REDLOCK_URLS` is one cluster node, or several comma-separated standalone masters.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager};

/// The store's side of fencing: one atomic script that compares the token with the highest
/// seen and applies the update only when the token is not lower (the same holder may write
/// several times with its token).
const FENCED_INCR: &str = r"
-- KEYS[1]: the counter, KEYS[2]: the highest token seen. ARGV[1]: the writer's token.
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < seen then
  return redis.error_reply('STALE token ' .. ARGV[1] .. ' < ' .. seen)
end
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[1])
";

async fn fenced_incr(
    store: &mut redis::aio::MultiplexedConnection,
    token: u64,
) -> redis::RedisResult<i64> {
    redis::Script::new(FENCED_INCR)
        .key("fencing-example:counter")
        .key("fencing-example:counter:token")
        .arg(token)
        .invoke_async(store)
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::var("REDLOCK_URLS")
        .unwrap_or_else(|_| "redis://127.0.0.1:7000".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let store_url = std::env::var("STORE_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut store = redis::Client::open(store_url)?
        .get_multiplexed_async_connection()
        .await?;

    // Fencing is opt-in: one more round per acquisition.
    let config = LockConfig::new().fencing(true);
    let (a, b) = (
        LockManager::connect(&urls, config.clone()).await?,
        LockManager::connect(&urls, config).await?,
    );
    let ttl = Duration::from_secs(1);

    let Some(old) = a.acquire("fencing-example", ttl).await? else {
        return Err("the resource is held by someone else".into());
    };
    let old_token = old
        .fencing_token()
        .ok_or("fencing is on, so there is a token")?;
    println!(
        "A holds token {old_token}: counter = {}",
        fenced_incr(&mut store, old_token).await?
    );

    // A stalls (a GC pause, a SIGSTOP...) past its validity, without knowing it.
    tokio::time::sleep(old.remaining() + Duration::from_millis(200)).await;

    let Some(mut new) = b.acquire("fencing-example", ttl).await? else {
        return Err("B could not take the expired lock".into());
    };
    let new_token = new
        .fencing_token()
        .ok_or("fencing is on, so there is a token")?;
    println!(
        "B holds token {new_token}: counter = {}",
        fenced_incr(&mut store, new_token).await?
    );

    // A wakes up and writes with its old token: the store refuses.
    match fenced_incr(&mut store, old_token).await {
        Ok(value) => println!("A's stale write went through (counter = {value}): not fenced!"),
        Err(refused) => println!("A's stale write was refused: {refused}"),
    }
    b.release(&mut new).await?;
    // Wait (bounded) for background releases before the process exits.
    a.close(Duration::from_secs(2)).await;
    b.close(Duration::from_secs(2)).await;
    Ok(())
}
