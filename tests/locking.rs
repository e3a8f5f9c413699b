//! Locking against real `redis-server` processes (3 and 5 independent masters and a 3+3
//! cluster, all started by the harness on free loopback ports): mutual exclusion, a strict
//! majority decides, the rules of extend and release, voters down or paused, a failover
//! followed by the voters, credentials in URLs, and bad input refused clearly.

use std::time::{Duration, Instant};

use redlock_cluster::cluster::key_slot;
use redlock_cluster::{LockError, LockManager, Mode, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

mod support;
use support::{bounded, config, del, eventually, get, raw};

/// A strict majority, written out here rather than taken from the crate under test.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn set_foreign(addr: &str, key: &[u8], token: &str, ttl_ms: u64) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("PX")
        .arg(ttl_ms)
        .query(&mut raw(addr))
        .expect("SET");
}

async fn two_managers_exclude_each_other(urls: &[String]) {
    let a = LockManager::connect(urls, config())
        .await
        .expect("manager a");
    let b = LockManager::connect(urls, config())
        .await
        .expect("manager b");
    let ttl = Duration::from_secs(10);
    let mut lock = a
        .try_acquire("exclusive", ttl)
        .await
        .expect("a")
        .expect("a wins");
    assert!(lock.is_valid());
    assert!(lock.remaining() <= ttl);
    assert!(b.try_acquire("exclusive", ttl).await.expect("b").is_none());
    let info = b.inspect("exclusive", None).await.expect("info");
    assert!(info.locked && !info.held_by_caller);
    assert_eq!(info.holder.as_deref(), Some(lock.token().as_str()));
    assert!(
        a.inspect("exclusive", Some(lock.token()))
            .await
            .expect("info")
            .held_by_caller
    );
    assert!(a.release(&mut lock).await.expect("release"));
    let mut again = b
        .try_acquire("exclusive", ttl)
        .await
        .expect("b")
        .expect("b after release");
    assert!(!a.is_locked("other").await.expect("is_locked"));
    assert!(b.is_locked("exclusive").await.expect("is_locked"));
    assert!(b.release(&mut again).await.expect("release"));
    assert!(!a.release(&mut lock).await.expect("second release is a no"));
}

/// For every subset of voters already holding the resource under a foreign token, acquire
/// succeeds exactly when the free voters reach a majority, and a failed attempt leaves no key
/// of its own behind.
async fn subsets_decide_by_majority(urls: &[String]) {
    let manager = LockManager::connect(urls, config()).await.expect("manager");
    let voters = manager.voters_of("subset").await.expect("voters");
    let n = voters.len();
    for mask in 0u32..(1 << n) {
        let held: Vec<bool> = (0..n).map(|i| mask & (1 << i) != 0).collect();
        for (i, (addr, key)) in voters.iter().enumerate() {
            if held[i] {
                set_foreign(addr, key, "foreign", 60_000);
            } else {
                del(addr, key);
            }
        }
        let free = held.iter().filter(|h| !**h).count();
        let outcome = manager.try_acquire("subset", Duration::from_secs(10)).await;
        match outcome {
            Ok(Some(mut lock)) => {
                assert!(free >= majority(n), "granted with only {free} of {n} free");
                for (i, (addr, key)) in voters.iter().enumerate() {
                    let want = if held[i] {
                        "foreign"
                    } else {
                        lock.token().as_str()
                    };
                    assert_eq!(get(addr, key).as_deref(), Some(want));
                }
                assert!(manager.release(&mut lock).await.expect("release"));
            }
            Ok(None) => {
                assert!(free < majority(n), "refused with {free} of {n} free");
                eventually(
                    "the failed attempt's keys are released",
                    Duration::from_secs(5),
                    || {
                        voters.iter().enumerate().all(|(i, (addr, key))| {
                            get(addr, key) == held[i].then(|| "foreign".to_string())
                        })
                    },
                )
                .await;
            }
            Err(e) => panic!("mask {mask:b}: unexpected error {e}"),
        }
    }
    for (addr, key) in &voters {
        del(addr, key);
    }
}

async fn extend_and_release_rules(urls: &[String]) {
    let manager = LockManager::connect(urls, config()).await.expect("manager");
    // Extending after expiry fails.
    let mut short = manager
        .try_acquire("expiring", Duration::from_millis(200))
        .await
        .expect("acquire")
        .expect("granted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!short.is_valid());
    assert!(
        !manager
            .extend(&mut short, Duration::from_secs(5))
            .await
            .expect("extend")
    );

    // Extend while valid: the new remaining time is just under the new TTL.
    let mut lock = manager
        .try_acquire("extended", Duration::from_secs(2))
        .await
        .expect("acquire")
        .expect("granted");
    assert!(
        manager
            .extend(&mut lock, Duration::from_secs(30))
            .await
            .expect("extend")
    );
    assert!(lock.remaining() > Duration::from_secs(20));
    assert!(lock.remaining() <= Duration::from_secs(30));

    // Somebody else's token on every voter: extend and release by us change nothing.
    let voters = manager.voters_of("extended").await.expect("voters");
    for (addr, key) in &voters {
        set_foreign(addr, key, "intruder", 60_000);
    }
    assert!(
        !manager
            .extend(&mut lock, Duration::from_secs(5))
            .await
            .expect("extend")
    );
    assert!(!manager.release(&mut lock).await.expect("release"));
    for (addr, key) in &voters {
        assert_eq!(get(addr, key).as_deref(), Some("intruder"));
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query(&mut raw(addr))
            .expect("PTTL");
        assert!(pttl > 50_000, "foreign TTL was changed: {pttl}");
        del(addr, key);
    }
}

async fn script_flush_does_not_break_locking(urls: &[String], all_nodes: &[String]) {
    let manager = LockManager::connect(urls, config()).await.expect("manager");
    let mut lock = manager
        .try_acquire("flushed", Duration::from_secs(5))
        .await
        .expect("acquire")
        .expect("granted");
    for url in all_nodes {
        let addr = url.trim_start_matches("redis://");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut raw(addr))
            .expect("flush");
    }
    assert!(
        manager
            .release(&mut lock)
            .await
            .expect("release after flush")
    );
    let mut again = manager
        .try_acquire("flushed", Duration::from_secs(5))
        .await
        .expect("acquire after flush")
        .expect("granted after flush");
    assert!(manager.release(&mut again).await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_three_masters() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    assert_eq!(
        LockManager::connect(&urls, config())
            .await
            .expect("m")
            .mode()
            .await
            .expect("mode"),
        Mode::Independent
    );
    two_managers_exclude_each_other(&urls).await;
    subsets_decide_by_majority(&urls).await;
    extend_and_release_rules(&urls).await;
    script_flush_does_not_break_locking(&urls, &urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_five_masters() {
    let servers = Standalone::start(5).expect("5 masters");
    let urls = servers.urls();
    two_managers_exclude_each_other(&urls).await;
    subsets_decide_by_majority(&urls).await;
    extend_and_release_rules(&urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_three_masters() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let seed = vec![cluster.seed_url()];
    let manager = LockManager::connect(&seed, config())
        .await
        .expect("manager");
    assert_eq!(manager.mode().await.expect("mode"), Mode::Cluster);

    // The default layout puts the three voter keys on three distinct masters, each in the
    // slot band of its index, and our CRC16 agrees with CLUSTER KEYSLOT.
    let voters = manager.voters_of("orders/42").await.expect("voters");
    assert_eq!(voters.len(), 3);
    let masters: std::collections::HashSet<&String> = voters.iter().map(|(a, _)| a).collect();
    assert_eq!(masters.len(), 3, "voter keys share a master: {voters:?}");
    let mut seed_con = cluster.nodes()[0].connection().expect("seed connection");
    for (i, (addr, key)) in voters.iter().enumerate() {
        let server_slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut seed_con)
            .expect("KEYSLOT");
        assert_eq!(server_slot, key_slot(key));
        let owner = cluster.index_of_slot_owner(server_slot).expect("owner");
        assert_eq!(
            cluster.nodes()[owner].port().to_string(),
            addr.rsplit(':').next().unwrap()
        );
        assert_eq!(cluster.master_indices().expect("masters")[i], owner);
    }
    for name in [
        "a",
        "{weird}",
        "}{",
        "ünïcødé/ключ",
        "with space\nand newline",
        "x".repeat(300).as_str(),
    ] {
        let sample = cluster_voter_sample(&manager, name).await;
        for key in sample {
            let server_slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query(&mut seed_con)
                .expect("KEYSLOT");
            assert_eq!(server_slot, key_slot(&key), "resource {name:?}");
        }
    }
    let info = manager.inspect("orders/42", None).await.expect("info");
    assert!(!info.voters_share_master);
    assert_eq!(info.mode, Mode::Cluster);

    two_managers_exclude_each_other(&seed).await;
    subsets_decide_by_majority(&seed).await;
    extend_and_release_rules(&seed).await;
    script_flush_does_not_break_locking(&seed, &cluster.urls()).await;
}

async fn cluster_voter_sample(manager: &LockManager, resource: &str) -> Vec<Vec<u8>> {
    let voters = manager.voters_of(resource).await.expect("voters");
    voters.into_iter().map(|(_, key)| key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_down_still_locks_two_down_is_unavailable() {
    let mut servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    servers.node_mut(2).kill().expect("kill");
    let mut lock = manager
        .try_acquire("degraded", Duration::from_secs(5))
        .await
        .expect("acquire with one voter down")
        .expect("granted by 2 of 3");
    assert_eq!(lock.granted_by().len(), 2);
    assert!(manager.release(&mut lock).await.expect("release"));

    servers.node_mut(1).kill().expect("kill");
    let started = Instant::now();
    let err = manager
        .acquire_with(
            "degraded",
            Duration::from_secs(5),
            &RetryPolicy::new()
                .max_attempts(3)
                .base_delay(Duration::from_millis(20)),
        )
        .await
        .expect_err("two of three down must be an error");
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(err.failures().len(), 2, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        manager
            .is_locked("degraded")
            .await
            .unwrap_err()
            .is_unavailable()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_voter_costs_at_most_the_node_timeout() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = config().node_timeout(Duration::from_millis(200));
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    servers.nodes()[0].pause().expect("pause");
    let started = Instant::now();
    let mut lock = manager
        .try_acquire("paused", Duration::from_secs(5))
        .await
        .expect("acquire")
        .expect("granted by the two live voters");
    let took = started.elapsed();
    servers.nodes()[0].resume().expect("resume");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(lock.remaining() < Duration::from_secs(5));
    assert!(manager.release(&mut lock).await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_acquire_mid_flight_leaves_no_key() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    // Pause two nodes so the round cannot be decided, then cancel the acquire while it
    // waits: the one key that landed, and any that land when the nodes resume, must go.
    servers.nodes()[1].pause().expect("pause");
    servers.nodes()[2].pause().expect("pause");
    let attempt = manager.try_acquire("cancelled", Duration::from_secs(60));
    let cancelled = tokio::time::timeout(Duration::from_millis(50), attempt).await;
    assert!(
        cancelled.is_err(),
        "the round cannot be decided: {cancelled:?}"
    );
    servers.nodes()[1].resume().expect("resume");
    servers.nodes()[2].resume().expect("resume");
    let voters = manager.voters_of("cancelled").await.expect("voters");
    eventually(
        "the cancelled attempt's keys are gone",
        Duration::from_secs(5),
        || voters.iter().all(|(addr, key)| get(addr, key).is_none()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let servers = Standalone::start(1).expect("1 master");
    let urls = servers.urls();
    let manager = LockManager::new(&urls, config()).expect("manager");
    let ttl = Duration::from_secs(1);
    let check = |r: Result<Option<redlock_cluster::Lock>, LockError>, what: &str| {
        let err = r.expect_err(what);
        assert!(err.is_invalid_input(), "{what}: {err}");
        assert!(!err.to_string().is_empty());
    };
    check(manager.try_acquire("", ttl).await, "empty resource");
    check(manager.try_acquire("r", Duration::ZERO).await, "zero TTL");
    check(
        manager.try_acquire("r", Duration::from_millis(2)).await,
        "TTL under the drift",
    );
    check(
        manager
            .try_acquire("r", Duration::from_millis(u64::MAX))
            .await,
        "huge TTL",
    );
    check(
        manager.try_acquire("r", Duration::MAX).await,
        "Duration::MAX",
    );
    check(
        manager
            .try_acquire(&"x".repeat(redlock_cluster::MAX_RESOURCE_LEN + 1), ttl)
            .await,
        "overlong resource",
    );
    // Odd names are fine.
    for name in ["{", "}", "{}", "a b\tc\n", "ключ", "\u{0}"] {
        let mut lock = manager
            .try_acquire(name, ttl)
            .await
            .expect(name)
            .expect(name);
        assert!(manager.release(&mut lock).await.expect(name));
    }

    for url in [
        "",
        "localhost:6379",
        "http://127.0.0.1:1",
        "redis://",
        "redis://127.0.0.1:notaport",
        "redis://[::1",
    ] {
        let err = LockManager::new(&[url], config()).expect_err(url);
        assert!(matches!(err, LockError::InvalidUrl { .. }), "{url}: {err}");
    }
    assert!(LockManager::new::<&str>(&[], config()).is_err());
    let dup = [urls[0].clone(), urls[0].clone()];
    assert!(LockManager::new(&dup, config()).is_err());

    // Cluster mode against a standalone node.
    let err = LockManager::connect(&urls, config().mode(Mode::Cluster))
        .await
        .expect_err("standalone node in cluster mode");
    assert!(matches!(err, LockError::NotACluster { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_non_redis_ports_fail_fast() {
    // A port nobody listens on: reserve one, then close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    // A port that accepts connections but never speaks Redis.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    for port in [closed_port, silent_port] {
        let url = format!("redis://127.0.0.1:{port}");
        let config = config().connect_timeout(Duration::from_millis(500));
        let started = Instant::now();
        let manager = LockManager::new(&[url.as_str()], config).expect("valid URL");
        let err = manager
            .try_acquire("r", Duration::from_secs(1))
            .await
            .expect_err("nothing to vote with");
        assert!(err.is_unavailable(), "port {port}: {err}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "port {port} hung"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_is_followed_by_the_voters() {
    let mut cluster = Cluster::start(ClusterOptions::fast_failover()).expect("3+3 cluster");
    let manager = LockManager::connect(&[cluster.seed_url()], config())
        .await
        .expect("manager");
    let before = manager.voters_of("failover").await.expect("voters");
    let victim = cluster.master_indices().expect("masters")[0];
    let dead_addr = format!("127.0.0.1:{}", cluster.nodes()[victim].port());
    assert_eq!(before[0].0, dead_addr);
    let (cluster, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = cluster
            .kill_and_fail_over(victim, Duration::from_secs(30))
            .expect("failover");
        (cluster, promoted)
    })
    .await
    .expect("join");
    let promoted_addr = format!("127.0.0.1:{}", cluster.nodes()[promoted].port());
    // Locking goes on (2 of 3 voters are untouched) and the lost voter makes the manager
    // re-read the topology in the background until voter 0 is the promoted replica.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut lock = manager
            .try_acquire("failover", Duration::from_secs(5))
            .await
            .expect("acquire during failover")
            .expect("granted");
        assert!(manager.release(&mut lock).await.expect("release"));
        assert!(
            !lock.granted_by().contains(&dead_addr),
            "the dead master cannot have voted: {:?}",
            lock.granted_by()
        );
        if manager.voters_of("failover").await.expect("voters")[0].0 == promoted_addr {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "voter 0 never moved to {promoted_addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One read opens the connection to the promoted master: a round does not wait for a
    // connection, and a vote whose connection opens only after the decision is not sent.
    let _ = manager.inspect("failover", None).await;
    let lock = manager
        .try_acquire("failover", Duration::from_secs(5))
        .await
        .expect("acquire after failover")
        .expect("granted");
    // The round is decided by the first two grants; the third vote still lands, so the
    // promoted master holds its key of the lock.
    assert!(lock.granted_by().len() >= 2, "{:?}", lock.granted_by());
    let (addr, key) = manager.voters_of("failover").await.expect("voters")[0].clone();
    assert_eq!(addr, promoted_addr);
    let token = lock.token().to_string();
    eventually(
        "the promoted master holds its key of the lock",
        Duration::from_secs(5),
        || get(&addr, &key).as_deref() == Some(token.as_str()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_password_in_urls() {
    let servers = Standalone::start(3).expect("3 masters");
    for node in servers.nodes() {
        let mut con = node.connection().expect("connection");
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", "locker", "on", ">s3cret", "~*", "+@all"])
            .query(&mut con)
            .expect("ACL SETUSER");
    }
    let urls: Vec<String> = servers
        .nodes()
        .iter()
        .map(|n| format!("redis://locker:s3cret@127.0.0.1:{}", n.port()))
        .collect();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    let mut lock = manager
        .try_acquire("acl", Duration::from_secs(5))
        .await
        .expect("acquire as locker")
        .expect("granted");
    // Decided by the first two grants (the round does not wait for the third).
    assert!(lock.granted_by().len() >= 2);
    assert!(manager.release(&mut lock).await.expect("release"));

    let wrong: Vec<String> = urls.iter().map(|u| u.replace("s3cret", "wrong")).collect();
    let manager = LockManager::new(&wrong, config()).expect("valid URLs");
    let err = manager
        .try_acquire("acl", Duration::from_secs(5))
        .await
        .expect_err("a wrong password cannot lock");
    // Bad credentials are their own error, not "check that a majority is up".
    assert!(matches!(err, LockError::Auth { .. }), "{err}");
    assert!(err.to_string().to_lowercase().contains("pass"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_at_first_use_is_retried_until_it_answers() {
    let mut servers = Standalone::start(1).expect("1 master");
    let urls = servers.urls();
    servers.node_mut(0).kill().expect("kill");
    let manager = LockManager::new(&urls, config()).expect("manager");
    // With no retry the first-use topology read fails at once.
    let err = manager
        .try_acquire("late", Duration::from_secs(5))
        .await
        .expect_err("nothing answers yet");
    assert!(err.is_unavailable(), "{err}");
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        servers.node_mut(0).restart().expect("restart");
        servers
    });
    let retry = RetryPolicy::new()
        .max_attempts(40)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(200));
    let mut lock = manager
        .acquire_with("late", Duration::from_secs(5), &retry)
        .await
        .expect("retried until the node answered")
        .expect("granted");
    let _servers = restarter.join().expect("restarter");
    assert!(manager.release(&mut lock).await.expect("release"));
}

/// Even and tiny independent-master counts: the quorum is a strict majority, and two clients
/// over the same masters never both win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_master_counts_get_a_strict_majority() {
    let servers = Standalone::start(4).expect("4 masters");
    let urls = servers.urls();
    for n in [1usize, 2, 4] {
        let a = LockManager::new(&urls[..n], config()).expect("a");
        let b = LockManager::new(&urls[..n], config()).expect("b");
        let resource = format!("even-{n}");
        let first = bounded("a", a.try_acquire(&resource, Duration::from_secs(5)))
            .await
            .expect("a");
        let second = bounded("b", b.try_acquire(&resource, Duration::from_secs(5)))
            .await
            .expect("b");
        let info = bounded("inspect", a.inspect(&resource, None))
            .await
            .expect("info");
        println!(
            "{n} masters: quorum {}, first {}, second {}",
            info.quorum,
            first.is_some(),
            second.is_some()
        );
        assert_eq!(info.quorum, n / 2 + 1);
        assert!(first.is_some() && second.is_none());
    }
}
