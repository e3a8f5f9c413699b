//! Fencing tokens against real `redis-server` processes: a holder that stalls past its
//! validity (it simply waits without extending: to the lock, that is a paused process) is
//! refused by the protected store once a later holder has written with its greater token.
//! On 3 independent masters and on a 3+3 cluster; the protected store is another server.

use std::time::Duration;

use redlock_cluster::{GuardOptions, LockConfig, LockManager, RedisDistributedLock, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

/// The protected store's write: refused when the token is lower than the highest seen.
const FENCED_WRITE: &str = r"
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < seen then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// Write `value` to the store with `token`; whether the store accepted it.
async fn fenced_write(store: &str, token: u64, value: &str) -> bool {
    let client = redis::Client::open(store).expect("store client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("store connection");
    let accepted: i64 = redis::Script::new(FENCED_WRITE)
        .key("data")
        .key("data:token")
        .arg(token)
        .arg(value)
        .invoke_async(&mut conn)
        .await
        .expect("fenced write");
    accepted == 1
}

async fn stored(store: &str) -> Option<String> {
    let client = redis::Client::open(store).expect("store client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("store connection");
    redis::cmd("GET")
        .arg("data")
        .query_async(&mut conn)
        .await
        .expect("GET")
}

/// Generous timeouts: the machine is loaded; these tests check decisions, not speed.
fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::new().max_attempts(20))
        .fencing(true)
}

/// A acquires and writes, then stalls past its validity; B acquires, gets a greater token and
/// writes; A's late write with its old token is refused.
async fn stalled_holder_is_fenced_off(urls: &[String], store: &str) {
    let ttl = Duration::from_millis(1500);
    let a = LockManager::connect(urls, config()).await.expect("A");
    let b = LockManager::connect(urls, config()).await.expect("B");

    let lock_a = a
        .acquire("ledger", ttl)
        .await
        .expect("A acquires")
        .expect("free");
    let token_a = lock_a.fencing_token().expect("A's token");
    assert!(fenced_write(store, token_a, "A1").await, "A's first write");

    // A stalls: no extension, no release, until well past its validity and the key TTL.
    tokio::time::sleep(lock_a.remaining() + Duration::from_millis(300)).await;
    assert!(!lock_a.is_valid());

    let mut lock_b = b
        .acquire("ledger", ttl)
        .await
        .expect("B acquires")
        .expect("A's keys expired");
    let token_b = lock_b.fencing_token().expect("B's token");
    assert!(token_b > token_a, "B's token {token_b} after A's {token_a}");
    assert!(fenced_write(store, token_b, "B1").await, "B's write");

    // A wakes up and writes with its old token: refused.
    assert!(!fenced_write(store, token_a, "A2").await, "A's stale write");
    assert_eq!(stored(store).await.as_deref(), Some("B1"));

    // Every lock granted after this read carries a greater token; B's is no greater.
    let info = b
        .inspect("ledger", Some(lock_b.token()))
        .await
        .expect("info");
    assert!(info.held_by_caller);
    let floor = info.fencing_token.expect("a quorum read the counters");
    assert!(floor >= token_b, "floor {floor} below B's token {token_b}");
    assert!(b.release(&mut lock_b).await.expect("release"));

    // The guard and the facade carry the token too, and it keeps growing.
    let guard = a
        .lock_guard("ledger", ttl, GuardOptions::new())
        .await
        .expect("guard")
        .expect("free");
    let token_guard = guard.fencing_token().expect("guard's token");
    assert!(token_guard > floor);
    guard.release().await.expect("release guard");
    let mut facade =
        RedisDistributedLock::with_manager(b.clone(), "ledger".into(), ttl).expect("facade");
    assert_eq!(facade.fencing_token(), None, "nothing held yet");
    assert!(facade.acquire().await.expect("facade acquires"));
    let token_facade = facade.fencing_token().expect("facade's token");
    assert!(token_facade > token_guard);
    facade.release().await.expect("release facade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_holder_is_fenced_off_on_independent_masters() {
    let masters = Standalone::start(3).expect("3 masters");
    let store = Standalone::start(1).expect("store");
    stalled_holder_is_fenced_off(&masters.urls(), &store.urls()[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_holder_is_fenced_off_on_a_cluster() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let store = Standalone::start(1).expect("store");
    stalled_holder_is_fenced_off(&[cluster.seed_url()], &store.urls()[0]).await;
}

/// Without fencing, locks carry no token and info reads no counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_without_fencing() {
    let masters = Standalone::start(3).expect("3 masters");
    let manager = LockManager::connect(&masters.urls(), config().fencing(false))
        .await
        .expect("manager");
    let mut lock = manager
        .acquire("plain", Duration::from_secs(2))
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(lock.fencing_token(), None);
    let info = manager.inspect("plain", None).await.expect("info");
    assert_eq!(info.fencing_token, None);
    manager.release(&mut lock).await.expect("release");
}
