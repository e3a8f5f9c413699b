//! Fencing tokens against real `redis-server` processes: a holder that stalls past its
//! validity (it simply waits without extending: to the lock, that is a paused process) is
//! refused by the protected store once a later holder has written with its greater token.
//! On 3 independent masters and on a 3+3 cluster; the protected store is another server.

use std::time::Duration;

use redlock_cluster::{
    GuardOptions, Lock, LockConfig, LockManager, Mode, RedisDistributedLock, RetryPolicy,
};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

mod support;
use support::{addr_of, index_of, raw, role};

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

// Issue 16: the three sequences in which the counter-only token went backwards, on real
// servers. Each asserts: no token repeats, no token regresses, every stale write after a later
// holder's write is refused, and the next holder's writes are accepted.

/// The TTL of the sequences, as in the issue.
const SEQUENCE_TTL: Duration = Duration::from_millis(400);
/// `delayed_restart`'s longest TTL, and how long a test waits for a quarantine to end.
const QUARANTINE: Duration = Duration::from_millis(500);
const QUARANTINE_WAIT: Duration = Duration::from_millis(700);

/// One holder's manager for the sequences: fenced, independent or cluster mode.
fn sequence_config(mode: Mode, delayed_restart: bool) -> LockConfig {
    let config = LockConfig::new()
        .mode(mode)
        .node_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::new().max_attempts(30))
        .fencing(true);
    if delayed_restart {
        config.delayed_restart(QUARANTINE)
    } else {
        config
    }
}

/// Acquire with bounded patience (a voter may still hold a late key of an earlier holder, or
/// be quarantined for a moment): the lock and its token.
async fn take(manager: &LockManager, resource: &str) -> (Lock, u64) {
    let mut seen = Vec::new();
    for _ in 0..10 {
        match manager.acquire(resource, SEQUENCE_TTL).await {
            Ok(Some(lock)) => {
                let token = lock.fencing_token().expect("fencing is on");
                return (lock, token);
            }
            other => seen.push(format!("{other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{resource} was not granted in 10 tries: {seen:?}");
}

/// The checks every sequence ends with: tokens strictly increasing in the order the holders
/// acquired (so none repeats or regresses).
fn assert_increasing(tokens: &[u64]) {
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens out of order: {tokens:?}"
    );
}

/// Sequence 1, a lost voter (three masters without persistence): X writes with token 1;
/// C stops; X writes with token 2, takes token 3 and stalls past its validity; B is killed
/// and restarted empty (its quarantine waited out when `delayed_restart` is on); C resumes
/// and A stops; Y is granted by B and C and writes; X wakes and writes with token 3.
async fn lost_voter(delayed_restart: bool) {
    let mut masters = Standalone::start_with_appendonly(3, false).expect("3 masters");
    let store = Standalone::start(1).expect("store");
    let store = &store.urls()[0];
    let urls = masters.urls();
    let config = sequence_config(Mode::Independent, delayed_restart);
    let x = LockManager::connect(&urls, config.clone())
        .await
        .expect("X");
    let y = LockManager::connect(&urls, config).await.expect("Y");
    if delayed_restart {
        // Fresh servers are quarantined too.
        tokio::time::sleep(QUARANTINE_WAIT).await;
    }
    let resource = "seq1";

    let (mut lock, t1) = take(&x, resource).await;
    assert!(fenced_write(store, t1, "X1").await, "X's first write");
    x.release(&mut lock).await.expect("release");

    masters.nodes()[2].pause().expect("stop C");
    let (mut lock, t2) = take(&x, resource).await;
    assert!(fenced_write(store, t2, "X2").await, "X's second write");
    x.release(&mut lock).await.expect("release");
    let (stalled, t3) = take(&x, resource).await;
    tokio::time::sleep(stalled.remaining() + Duration::from_millis(100)).await;
    assert!(!stalled.is_valid());

    masters
        .node_mut(1)
        .restart_empty()
        .expect("B restarts empty");
    if delayed_restart {
        tokio::time::sleep(QUARANTINE_WAIT).await;
    }
    masters.nodes()[2].resume().expect("resume C");
    masters.nodes()[0].pause().expect("stop A");

    let (mut lock, ty) = take(&y, resource).await;
    eprintln!(
        "lost voter (delayed_restart {delayed_restart}): X {t1} {t2} {t3}, Y {ty} granted by {:?}",
        lock.granted_by()
    );
    assert_increasing(&[t1, t2, t3, ty]);
    assert!(fenced_write(store, ty, "Y1").await, "Y's write");
    assert!(
        !fenced_write(store, t3, "X3").await,
        "X's stale write with token {t3} was accepted after Y's with {ty}"
    );
    assert_eq!(stored(store).await.as_deref(), Some("Y1"));
    masters.nodes()[0].resume().expect("resume A");
    let _ = y.release(&mut lock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_voter_does_not_repeat_a_token_with_delayed_restart() {
    lost_voter(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_voter_does_not_repeat_a_token_without_delayed_restart() {
    lost_voter(false).await;
}

/// Sequence 2, a rolling restart by the book on an idle resource: five holders write; each
/// voter in turn is restarted empty and its quarantine waited out; the next holder's token is
/// above all five, and its writes are accepted.
async fn rolling_restart(delayed_restart: bool) {
    let mut masters = Standalone::start_with_appendonly(3, false).expect("3 masters");
    let store = Standalone::start(1).expect("store");
    let store = &store.urls()[0];
    let urls = masters.urls();
    let config = sequence_config(Mode::Independent, delayed_restart);
    let x = LockManager::connect(&urls, config.clone())
        .await
        .expect("X");
    if delayed_restart {
        tokio::time::sleep(QUARANTINE_WAIT).await;
    }
    let resource = "seq2";
    let mut tokens = Vec::new();
    for i in 0..5 {
        let (mut lock, token) = take(&x, resource).await;
        assert!(fenced_write(store, token, &format!("X{i}")).await);
        x.release(&mut lock).await.expect("release");
        tokens.push(token);
    }
    for i in 0..3 {
        masters.node_mut(i).restart_empty().expect("restart empty");
        tokio::time::sleep(QUARANTINE_WAIT).await;
    }
    let y = LockManager::connect(&urls, config).await.expect("Y");
    for i in 0..2 {
        let (mut lock, token) = take(&y, resource).await;
        tokens.push(token);
        assert!(
            fenced_write(store, token, &format!("Y{i}")).await,
            "after a rolling restart, Y's write with {token} was refused ({tokens:?})"
        );
        y.release(&mut lock).await.expect("release");
    }
    eprintln!("rolling restart (delayed_restart {delayed_restart}): tokens {tokens:?}");
    assert_increasing(&tokens);
    assert_eq!(stored(store).await.as_deref(), Some("Y1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_keeps_tokens_increasing_with_delayed_restart() {
    rolling_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_keeps_tokens_increasing_without_delayed_restart() {
    rolling_restart(false).await;
}

/// Make a voter refuse every holder for `ttl`: a foreign value in its lock key (as a vote
/// lost to a third party would), so that the others decide.
fn block_voter(addr: &str, key: &[u8], ttl: Duration) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("someone-else")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query(&mut raw(addr))
        .expect("SET");
}

fn unblock_voter(addr: &str, key: &[u8]) {
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query(&mut raw(addr))
        .expect("DEL");
}

/// A voter's fencing counter key for its lock key (see `fencing::fence_key`): the default
/// prefix, `0xFF "fence:"`, then the lock key after the prefix.
fn counter_key(lock_key: &[u8]) -> Vec<u8> {
    let prefix = b"redlock:";
    [&prefix[..], b"\xfffence:", &lock_key[prefix.len()..]].concat()
}

fn counter(addr: &str, lock_key: &[u8]) -> Option<u64> {
    let value: Option<String> = redis::cmd("GET")
        .arg(counter_key(lock_key))
        .query(&mut raw(addr))
        .expect("GET counter");
    value.map(|v| v.parse().expect("a decimal counter"))
}

/// How long a failover and the return to health may take on a loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(45);

/// Sequence 3, a failover to a lagging replica (3+3 cluster): X writes with token 1; B's
/// replica is cut off (paused, its link dropped with `CLIENT KILL TYPE replica`); C refuses
/// for a while (a foreign key); X writes with token 2 and takes token 3 on A and B, then
/// stalls; B's master is killed and the cut-off replica, which lacks both counters, is
/// promoted; A refuses (a foreign key); Y is granted by the promoted replica and C, writes;
/// X wakes and writes with token 3. Without `replica_acks`: the promoted replica comes
/// `cluster-node-timeout` (1 s) or more after X's commit, longer than any clock offset here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_replica_does_not_repeat_a_token() {
    let cluster = Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster");
    let store = Standalone::start(1).expect("store");
    let store = store.urls()[0].clone();
    let config = sequence_config(Mode::Cluster, false);
    let x = LockManager::connect(&cluster.urls(), config.clone())
        .await
        .expect("X");
    let resource = "seq3";
    let voters = x.voters_of(resource).await.expect("voters");
    let (a, b, c) = (&voters[0], &voters[1], &voters[2]);

    let (mut lock, t1) = take(&x, resource).await;
    assert!(fenced_write(&store, t1, "X1").await, "X's first write");
    x.release(&mut lock).await.expect("release");
    // Let token 1's counter reach B's replica before the cut.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let master_b = index_of(&cluster, &b.0);
    let replica_b = cluster.replica_of(master_b).expect("B has a replica");
    cluster.nodes()[replica_b]
        .pause()
        .expect("pause B's replica");
    let dropped: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut raw(&b.0))
        .expect("CLIENT KILL TYPE replica");
    assert!(dropped >= 1, "B's master had no replica link to drop");
    block_voter(&c.0, &c.1, Duration::from_secs(30));

    let (mut lock, t2) = take(&x, resource).await;
    assert!(fenced_write(&store, t2, "X2").await, "X's second write");
    x.release(&mut lock).await.expect("release");
    let (stalled, t3) = take(&x, resource).await;
    assert!(!stalled.granted_by().contains(&c.0), "C was blocked");

    let (cluster, promoted) = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.node_mut(master_b).kill().expect("kill B's master");
        cluster.nodes()[replica_b]
            .resume()
            .expect("resume B's replica");
        let addr = addr_of(&cluster, replica_b);
        let deadline = std::time::Instant::now() + FAILOVER_TIMEOUT;
        while role(&addr).as_deref() != Some("master") {
            assert!(
                std::time::Instant::now() < deadline,
                "B's replica was not promoted in time"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
        (cluster, addr)
    })
    .await
    .expect("failover thread");
    let lagging = counter(&promoted, &b.1);
    assert!(
        lagging.is_none_or(|value| value < t2),
        "the promoted replica got X's counter after all: {lagging:?}"
    );
    assert!(!stalled.is_valid());

    unblock_voter(&c.0, &c.1);
    block_voter(&a.0, &a.1, Duration::from_secs(30));
    let y = LockManager::connect(&cluster.urls(), config)
        .await
        .expect("Y");
    let (mut lock, ty) = take(&y, resource).await;
    eprintln!(
        "lagging failover: X {t1} {t2} {t3}; promoted replica's counter {lagging:?}; Y {ty} \
         granted by {:?}",
        lock.granted_by()
    );
    assert!(!lock.granted_by().contains(&a.0), "A was blocked");
    assert!(
        lock.granted_by().contains(&promoted),
        "the promoted replica voted"
    );
    assert_increasing(&[t1, t2, t3, ty]);
    assert!(fenced_write(&store, ty, "Y1").await, "Y's write");
    assert!(
        !fenced_write(&store, t3, "X3").await,
        "X's stale write with token {t3} was accepted after Y's with {ty}"
    );
    assert_eq!(stored(&store).await.as_deref(), Some("Y1"));
    let _ = y.release(&mut lock).await;
    unblock_voter(&a.0, &a.1);
    drop(cluster);
}

/// Put `value` (a string, or a list when `None`) at a voter's counter key.
fn spoil_counter(addr: &str, lock_key: &[u8], value: Option<&str>) {
    let key = counter_key(lock_key);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query(&mut raw(addr))
        .expect("DEL");
    let _: () = match value {
        Some(value) => redis::cmd("SET").arg(&key).arg(value).query(&mut raw(addr)),
        None => redis::cmd("RPUSH")
            .arg(&key)
            .arg("x")
            .query::<i64>(&mut raw(addr))
            .map(|_| ()),
    }
    .expect("spoil the counter");
}

/// Counter values the commit script never writes (issue 16, item 6): on one voter they fail
/// that voter's vote only, so the others still grant, with increasing tokens; on a majority
/// the error names the counter key and the repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_counter_values_fail_one_vote_with_a_clear_error() {
    let masters = Standalone::start_with_appendonly(3, false).expect("3 masters");
    let urls = masters.urls();
    let manager = LockManager::connect(&urls, sequence_config(Mode::Independent, false))
        .await
        .expect("manager");
    let resource = "odd";
    let voters = manager.voters_of(resource).await.expect("voters");
    let odd = [
        Some("00000000000099"),
        Some("-5"),
        Some(" 7"),
        Some("18446744073709551616"),
        Some("18446744073709551615"),
        None,
    ];
    let mut last = 0;
    for value in odd {
        spoil_counter(&voters[0].0, &voters[0].1, value);
        for _ in 0..2 {
            let (mut lock, token) = take(&manager, resource).await;
            assert!(
                !lock.granted_by().contains(&voters[0].0),
                "{value:?}: the odd counter's voter counted"
            );
            assert!(token > last, "{value:?}: token {token} after {last}");
            last = token;
            manager.release(&mut lock).await.expect("release");
        }
    }
    // On two voters of three: no quorum, and the error says which key and what to do.
    spoil_counter(&voters[0].0, &voters[0].1, Some("00000000000099"));
    spoil_counter(&voters[1].0, &voters[1].1, None);
    let refused = manager
        .try_acquire(resource, SEQUENCE_TTL)
        .await
        .expect_err("a majority of odd counters");
    let message = refused.to_string();
    eprintln!("{message}");
    assert!(message.contains(r"\xfffence:odd"), "{message}");
    assert!(
        message.contains("leading zeros") && message.contains("list"),
        "{message}"
    );
    assert!(message.contains("DEL"), "{message}");
    // The repair works.
    for (addr, key) in &voters[..2] {
        let _: i64 = redis::cmd("DEL")
            .arg(counter_key(key))
            .query(&mut raw(addr))
            .expect("DEL");
    }
    let (mut lock, token) = take(&manager, resource).await;
    assert!(token > last, "after the repair: {token} after {last}");
    // Any quorum of the three holds voter 0 or voter 1: a repaired voter counted.
    assert!(
        lock.granted_by()
            .iter()
            .any(|a| *a == voters[0].0 || *a == voters[1].0),
        "{lock:?}"
    );
    manager.release(&mut lock).await.expect("release");
}

fn dbsize(addr: &str) -> u64 {
    redis::cmd("DBSIZE").query(&mut raw(addr)).expect("DBSIZE")
}

/// Counter keys expire `fencing_retention` after the last commit that wrote them (issue 16,
/// item 4): 2,000 distinct fenced resources leave 2,000 counter keys per voter (no lock key:
/// each was released), with a TTL, and none once the retention (2 s here) has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_keys_expire_after_the_retention() {
    const RESOURCES: usize = 2_000;
    let retention = Duration::from_secs(2);
    let masters = Standalone::start_with_appendonly(3, false).expect("3 masters");
    let urls = masters.urls();
    let addrs: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_string())
        .collect();
    let manager = LockManager::connect(
        &urls,
        sequence_config(Mode::Independent, false).fencing_retention(retention),
    )
    .await
    .expect("manager");
    let started = std::time::Instant::now();
    for chunk in (0..RESOURCES).collect::<Vec<_>>().chunks(50) {
        let rounds = chunk.iter().map(|i| {
            let manager = &manager;
            async move {
                let resource = format!("order-{i}");
                let mut lock = manager
                    .acquire(&resource, Duration::from_secs(5))
                    .await
                    .expect("acquire")
                    .expect("a fresh resource is free");
                assert!(lock.fencing_token().is_some());
                manager.release(&mut lock).await.expect("release");
            }
        });
        futures::future::join_all(rounds).await;
    }
    let took = started.elapsed();
    let mut after: Vec<u64> = addrs.iter().map(|a| dbsize(a)).collect();
    let total_after: u64 = after.iter().sum();
    // The last resource's counter: the earliest ones may have expired already on a slow run.
    let last = format!("order-{}", RESOURCES - 1);
    let sample = manager.voters_of(&last).await.expect("voters");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(counter_key(&sample[0].1))
        .query(&mut raw(&sample[0].0))
        .expect("PTTL");
    assert!(
        pttl > 0 && pttl <= retention.as_millis() as i64,
        "a counter key's PTTL is {pttl}"
    );
    // Bounded wait: Redis expires keys lazily and in its active cycle (10 times a second).
    let deadline = std::time::Instant::now() + retention + Duration::from_secs(10);
    tokio::time::sleep(retention).await;
    loop {
        after = addrs.iter().map(|a| dbsize(a)).collect();
        if after.iter().all(|n| *n == 0) || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = started.elapsed() - took;
    eprintln!(
        "{RESOURCES} fenced resources in {took:?}: {total_after} keys on 3 voters right after \
         (PTTL of one counter {pttl} ms); {} left {waited:?} later (retention {retention:?})",
        after.iter().sum::<u64>()
    );
    if took < retention {
        // Nothing expired yet: one counter key per resource and voter, no lock key left.
        assert_eq!(total_after, 3 * RESOURCES as u64);
    }
    assert_eq!(after, [0, 0, 0], "counter keys left after the retention");
}

/// Fencing with replica acks on a 3+3 cluster (issue 16, item 5): the fenced acquire and its
/// commit wait for a replica like the plain votes. A voter whose replica is cut off does not
/// count; a voter that counted keeps the counter through a failover to its replica, so the
/// counter alone orders the next token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_with_replica_acks_keeps_the_counter_through_a_failover() {
    let ttl = Duration::from_secs(2);
    let cluster = Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster");
    let store = Standalone::start(1).expect("store");
    let store = store.urls()[0].clone();
    let config = sequence_config(Mode::Cluster, false)
        .node_timeout(Duration::from_millis(1000))
        .replica_acks(1, Duration::from_millis(500));
    let x = LockManager::connect(&cluster.urls(), config.clone())
        .await
        .expect("X");
    let resource = "acked";
    let voters = x.voters_of(resource).await.expect("voters");

    // A cut-off replica: its master's fenced votes are not acknowledged, so they do not count.
    let master = index_of(&cluster, &voters[0].0);
    let replica = cluster.replica_of(master).expect("a replica");
    cluster.nodes()[replica].pause().expect("pause replica");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut raw(&voters[0].0))
        .expect("CLIENT KILL TYPE replica");
    let mut lock = x
        .acquire(resource, ttl)
        .await
        .expect("acquire")
        .expect("voters 1 and 2 grant");
    cluster.nodes()[replica].resume().expect("resume replica");
    assert!(
        !lock.granted_by().contains(&voters[0].0),
        "an unacknowledged fenced vote counted: {lock:?}"
    );
    let t1 = lock.fencing_token().expect("token");
    assert!(fenced_write(&store, t1, "X1").await);
    x.release(&mut lock).await.expect("release");
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_healthy(FAILOVER_TIMEOUT).expect("healthy");
        cluster
    })
    .await
    .expect("wait thread");

    // A counted voter fails over: its replica acknowledged the counter.
    let mut stalled = None;
    for _ in 0..10 {
        match x.acquire(resource, ttl).await {
            Ok(Some(lock)) => {
                stalled = Some(lock);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let stalled = stalled.expect("X acquires again");
    let t2 = stalled.fencing_token().expect("token");
    assert!(t2 > t1);
    assert!(fenced_write(&store, t2, "X2").await);
    let counted = voters
        .iter()
        .position(|(addr, _)| stalled.granted_by().contains(addr))
        .expect("a counted voter");
    let victim = index_of(&cluster, &voters[counted].0);
    let (cluster, promoted) = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        let promoted = cluster
            .kill_and_fail_over(victim, FAILOVER_TIMEOUT)
            .expect("failover");
        (cluster, promoted)
    })
    .await
    .expect("failover thread");
    let promoted = addr_of(&cluster, promoted);
    let kept = counter(&promoted, &voters[counted].1);
    assert_eq!(kept, Some(t2), "the acknowledging replica lost the counter");

    tokio::time::sleep(stalled.remaining() + Duration::from_millis(100)).await;
    let y = LockManager::connect(&cluster.urls(), config)
        .await
        .expect("Y");
    let mut next = None;
    for _ in 0..10 {
        match y.acquire(resource, ttl).await {
            Ok(Some(lock)) => {
                next = Some(lock);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let mut next = next.expect("Y acquires after the failover");
    let ty = next.fencing_token().expect("token");
    eprintln!(
        "replica acks + fencing: X {t1} {t2}; promoted replica's counter {kept:?}; Y {ty} granted \
         by {:?}",
        next.granted_by()
    );
    assert!(ty > t2, "Y's token {ty} after X's {t2}");
    assert!(fenced_write(&store, ty, "Y1").await);
    assert!(!fenced_write(&store, t2, "X3").await, "X's stale write");
    let _ = y.release(&mut next).await;
    drop(cluster);
}

/// The health report gives each voter's clock offset and the spread between voters, which
/// fencing tokens rely on after a lost counter; voters on one host agree within milliseconds,
/// so there is no spread finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_report_measures_the_clock_spread() {
    let masters = Standalone::start(3).expect("3 masters");
    let manager = LockManager::connect(&masters.urls(), sequence_config(Mode::Independent, true))
        .await
        .expect("manager");
    let report = manager.health().await.expect("health");
    eprintln!("{report}");
    let spread = report.clock_spread.expect("three clocks read");
    assert!(spread < Duration::from_millis(100), "{spread:?}");
    for voter in &report.voters {
        let offset = voter.clock_offset.expect("an offset");
        assert!(offset.seconds.abs() < 0.1, "{voter:?}");
        assert!(
            !voter
                .findings
                .iter()
                .any(|f| f.message.contains("clocks are up to")),
            "{:?}",
            voter.findings
        );
    }
}
