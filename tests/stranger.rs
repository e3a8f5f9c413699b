//! A stranger's probes: the public API only, every configuration the docs allow, looking for
//! double grants, ownership leaks, panics, hangs and misleading errors. Real `redis-server`
//! processes on loopback ports (the harness); every wait is bounded.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager, Mode, RetryPolicy};
use redlock_harness::{Cluster, ClusterOptions, Standalone};
use tokio::time::{sleep, timeout};

/// Generous per-node timeout: these probes check decisions, not speed, on a loaded machine.
fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::once())
}

/// Bound every library call: a probe must fail, never hang.
async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    timeout(Duration::from_secs(15), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 15 s (a hang)"))
}

/// Two clusters, and two clients whose seed lists name a node of each, in a different order.
/// Whatever the library decides (refuse the list, or pick one cluster for both), the two
/// clients must not both hold the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_of_two_clusters_never_make_two_lock_spaces() {
    let x = Cluster::start(ClusterOptions::default().replicas_per_master(0)).expect("cluster x");
    let y = Cluster::start(ClusterOptions::default().replicas_per_master(0)).expect("cluster y");
    let a = LockManager::new(&[x.seed_url(), y.seed_url()], config()).expect("a");
    let b = LockManager::new(&[y.seed_url(), x.seed_url()], config()).expect("b");
    let ttl = Duration::from_secs(10);
    let first = bounded("a", a.try_acquire("two-clusters", ttl)).await;
    let second = bounded("b", b.try_acquire("two-clusters", ttl)).await;
    println!("a: {first:?}\nb: {second:?}");
    assert!(
        !(matches!(first, Ok(Some(_))) && matches!(second, Ok(Some(_)))),
        "two holders of one lock: {first:?} and {second:?}"
    );
}

/// A node timeout above the connect timeout (allowed by `validate`): how long a round waits for
/// a paused voter and what the error says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_of_a_paused_voter_is_reported_as_configured() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(1500))
        .connect_timeout(Duration::from_millis(400))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    servers.nodes()[0].pause().expect("pause");
    servers.nodes()[1].pause().expect("pause");
    let started = std::time::Instant::now();
    let outcome = bounded(
        "acquire",
        manager.try_acquire("slow", Duration::from_secs(10)),
    )
    .await;
    let took = started.elapsed();
    servers.nodes()[0].resume().expect("resume");
    servers.nodes()[1].resume().expect("resume");
    let message = match &outcome {
        Err(error) => error.to_string(),
        Ok(lock) => panic!("granted with 2 of 3 voters paused: {lock:?}"),
    };
    println!("after {took:?}: {message}");
    assert!(
        !message.contains("0ns"),
        "says the node answered nothing within 0 ns: {message}"
    );
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

/// URL variants the docs allow or a user would try: each is accepted or refused with a
/// message, never a panic or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_variants_are_accepted_or_refused_clearly() {
    let servers = Standalone::start(1).expect("1 master");
    let port = servers.nodes()[0].port();
    let variants = [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}/"),
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/3"),
        format!("redis://127.0.0.1:{port}/99999"),
        format!("redis://localhost:{port}"),
        format!("redis://[::1]:{port}"),
        format!("redis://default:wrong@127.0.0.1:{port}"),
        format!("redis://nobody:pw@127.0.0.1:{port}"),
        format!("redis://:pw@127.0.0.1:{port}"),
        format!("rediss://127.0.0.1:{port}"),
        "redis+unix:///tmp/nothing.sock".to_string(),
        "unix:///tmp/nothing.sock".to_string(),
        format!("redis://127.0.0.1:{port}?protocol=resp3"),
        format!("REDIS://127.0.0.1:{port}"),
        "redis://127.0.0.1".to_string(),
        "redis://127.0.0.1:0".to_string(),
        "redis://".to_string(),
    ];
    for url in &variants {
        let config = config().connect_timeout(Duration::from_millis(500));
        let outcome = match LockManager::new(std::slice::from_ref(url), config) {
            Err(error) => format!("new: {error}"),
            Ok(manager) => {
                match bounded(url, manager.try_acquire("url", Duration::from_secs(2))).await {
                    Ok(Some(mut lock)) => {
                        let released = bounded(url, manager.release(&mut lock)).await;
                        format!("granted, released {released:?}")
                    }
                    other => format!("{other:?}"),
                }
            }
        };
        println!("{url}\n    -> {outcome}");
    }
}

/// A lock can be extended, released or guarded only through the manager that made it. Before
/// the owner check, manager B over 1 of A's 3 masters (quorum 1) kept A's lock alive
/// (`extend` returned `Ok(true)` four times) while the keys on the other two expired and a
/// third client acquired there: two valid holders in 1 of 1 runs. (A guard's lock is no
/// longer handed out as a copy, and `Lock` is not `Clone`: see the `compile_fail` doctest on
/// `Lock`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_extended_and_released_only_through_its_own_manager() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let a = LockManager::new(&urls, config()).expect("a");
    let a_clone = a.clone();
    let b = LockManager::new(&urls[..1], config()).expect("b");
    let c = LockManager::new(&urls, config()).expect("c");
    let mut lock = bounded("a", a.try_acquire("cross", Duration::from_millis(800)))
        .await
        .expect("acquire")
        .expect("free");
    for _ in 0..4 {
        sleep(Duration::from_millis(300)).await;
        let through_b = bounded("b extend", b.extend(&mut lock, Duration::from_millis(800))).await;
        assert!(
            matches!(through_b, Err(LockError::ForeignLock { .. })),
            "{through_b:?}"
        );
    }
    let other = bounded("c", c.try_acquire("cross", Duration::from_secs(5))).await;
    assert!(
        !(lock.is_valid() && matches!(other, Ok(Some(_)))),
        "two valid holders: {other:?}"
    );
    assert!(matches!(
        bounded("b release", b.release(&mut lock)).await,
        Err(LockError::ForeignLock { .. })
    ));
    let options = redlock_cluster::GuardOptions::new();
    assert!(matches!(
        b.guard(lock, options),
        Err(LockError::ForeignLock { .. })
    ));
    // A clone of the manager that made a lock is the same manager.
    let mut own = bounded("a again", a.try_acquire("own", Duration::from_secs(5)))
        .await
        .expect("acquire")
        .expect("free");
    assert!(matches!(
        bounded(
            "clone extend",
            a_clone.extend(&mut own, Duration::from_secs(5))
        )
        .await,
        Ok(true)
    ));
    assert!(matches!(
        bounded("clone release", a_clone.release(&mut own)).await,
        Ok(true)
    ));
}

/// Acquires cancelled at random points (tiny timeouts): 1 s later, no key is left but those
/// of the locks that were granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_orphan_keys() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    let mut granted = Vec::new();
    let (mut cancelled, mut failed) = (0, 0);
    for i in 0..150u64 {
        let limit = Duration::from_micros((i * 7919) % 3000);
        match timeout(
            limit,
            manager.try_acquire(&format!("cancel-{i}"), Duration::from_secs(20)),
        )
        .await
        {
            Err(_) => cancelled += 1,
            Ok(Ok(Some(lock))) => granted.push(lock),
            Ok(_) => failed += 1,
        }
    }
    sleep(Duration::from_secs(1)).await;
    let granted_names: std::collections::BTreeSet<String> = granted
        .iter()
        .map(|l| format!("redlock:{}", l.resource()))
        .collect();
    let mut orphans = Vec::new();
    for url in &urls {
        let mut con = redlock_harness::raw_connection(url).expect("raw");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
        orphans.extend(keys.into_iter().filter(|k| !granted_names.contains(k)));
    }
    println!(
        "granted {}, cancelled {cancelled}, failed {failed}; orphan keys: {}",
        granted.len(),
        orphans.len()
    );
    assert!(orphans.is_empty(), "orphans: {orphans:?}");
}

/// Many tasks on one resource over one manager: the holding intervals (from the grant to the
/// release, cut at the lock's own deadline) never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_one_resource_never_overlap() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let manager = LockManager::connect(&urls, config())
        .await
        .expect("manager");
    let intervals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let manager = manager.clone();
        let intervals = intervals.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let retry = RetryPolicy::new()
                    .max_attempts(20)
                    .base_delay(Duration::from_millis(5));
                if let Ok(Some(mut lock)) = manager
                    .acquire_with("shared", Duration::from_millis(300), &retry)
                    .await
                {
                    let start = std::time::Instant::now();
                    sleep(Duration::from_millis(3)).await;
                    let end = std::time::Instant::now().min(lock.validity_deadline());
                    intervals.lock().unwrap().push((start, end));
                    let _ = manager.release(&mut lock).await;
                }
            }
        }));
    }
    for task in tasks {
        bounded("task", task).await.expect("task");
    }
    let mut intervals = intervals.lock().unwrap().clone();
    intervals.sort();
    let overlaps = intervals.windows(2).filter(|w| w[1].0 < w[0].1).count();
    println!("{} holds, {overlaps} overlaps", intervals.len());
    assert_eq!(overlaps, 0);
}

/// Forced modes against the wrong servers, and cluster voter counts against a 3-master
/// cluster: refused with a clear error or locked safely; printed for the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_modes_and_voter_counts() {
    let cluster =
        Cluster::start(ClusterOptions::default().replicas_per_master(0)).expect("cluster");
    let servers = Standalone::start(1).expect("1 master");
    let cases: Vec<(&str, Vec<String>, LockConfig)> = vec![
        (
            "independent over a cluster node",
            vec![cluster.seed_url()],
            config().mode(Mode::Independent),
        ),
        (
            "cluster over a standalone",
            servers.urls(),
            config().mode(Mode::Cluster),
        ),
        (
            "voters 1",
            vec![cluster.seed_url()],
            config().cluster_voters(1),
        ),
        (
            "voters 2",
            vec![cluster.seed_url()],
            config().cluster_voters(2),
        ),
        (
            "voters 4",
            vec![cluster.seed_url()],
            config().cluster_voters(4),
        ),
        (
            "voters 5",
            vec![cluster.seed_url()],
            config().cluster_voters(5),
        ),
        (
            "voters 64",
            vec![cluster.seed_url()],
            config().cluster_voters(64),
        ),
    ];
    for (what, urls, config) in cases {
        let outcome = match LockManager::new(&urls, config) {
            Err(error) => format!("new: {error}"),
            Ok(manager) => {
                let mut first =
                    bounded(what, manager.try_acquire("modes", Duration::from_secs(5))).await;
                let second =
                    bounded(what, manager.try_acquire("modes", Duration::from_secs(5))).await;
                assert!(
                    !(matches!(first, Ok(Some(_))) && matches!(second, Ok(Some(_)))),
                    "{what}: two holders"
                );
                if let Ok(Some(lock)) = &mut first {
                    let _ = bounded(what, manager.release(lock)).await;
                }
                format!("first {first:?}\n    second {second:?}")
            }
        };
        println!("{what}:\n    {outcome}");
    }
    assert!(LockConfig::new().cluster_voters(65).validate().is_err());
}

/// A loopback proxy in front of one server that holds every reply back by `delay`: the
/// request reaches the server at once, its answer arrives late. Plain threads and blocking
/// sockets (the dev tokio has no `net`); it serves at most 32 connections.
fn slow_reply_proxy(upstream_port: u16, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().take(32) {
            let Ok(client) = client else { return };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream_port)) else {
                return;
            };
            let (mut client_read, mut server_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut server_read, mut client_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_read, &mut server_write);
            });
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match server_read.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    std::thread::sleep(delay);
                    if client_write.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Keys left on `urls` (every key: the probes use fresh servers).
fn keys_on(urls: &[String]) -> usize {
    urls.iter()
        .map(|url| {
            let mut con = redlock_harness::raw_connection(url).expect("raw");
            let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
            keys.len()
        })
        .sum()
}

/// One voter answers 300 ms late (node timeout 100 ms): its late grant is cleaned up after a
/// failed round, and released with the lock after a granted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_grants_of_a_slow_voter_leave_no_keys() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let proxy = slow_reply_proxy(servers.nodes()[0].port(), Duration::from_millis(300));
    let voters = vec![
        format!("redis://127.0.0.1:{proxy}"),
        urls[1].clone(),
        urls[2].clone(),
    ];
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_secs(3))
        .retry(RetryPolicy::once());
    let manager = bounded("connect", LockManager::connect(&voters, config))
        .await
        .expect("manager");
    // Granted by the two fast voters; the slow one's key lands too and must go with the lock.
    let mut lock = bounded(
        "acquire",
        manager.try_acquire("late", Duration::from_secs(20)),
    )
    .await
    .expect("acquire")
    .expect("free");
    println!("granted by {:?}", lock.granted_by());
    let released = bounded("release", manager.release(&mut lock)).await;
    sleep(Duration::from_secs(1)).await;
    let after_release = keys_on(&urls);
    // A failed round: one fast voter paused, the slow one late.
    servers.nodes()[2].pause().expect("pause");
    let failed = bounded(
        "acquire",
        manager.try_acquire("late-2", Duration::from_secs(20)),
    )
    .await;
    servers.nodes()[2].resume().expect("resume");
    sleep(Duration::from_millis(1500)).await;
    let after_failure = keys_on(&urls);
    println!(
        "release: {released:?}, keys left {after_release}; failed round: {failed:?}, keys left \
         {after_failure}"
    );
    assert!(failed.is_err());
    assert_eq!((after_release, after_failure), (0, 0));
}

/// TTL and drift edges: tiny TTLs, the longest TTL, an extend shorter than the drift, a
/// resource of the largest size and odd bytes. Printed for the report; never two holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_and_resource_edges() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let cases: Vec<(&str, LockConfig, Duration)> = vec![
        (
            "ttl 3 ms, drift 0",
            config().drift_factor(0.0),
            Duration::from_millis(3),
        ),
        (
            "ttl 1 ms, drift 0",
            config().drift_factor(0.0),
            Duration::from_millis(1),
        ),
        (
            "ttl 5 ms, drift 0.49",
            config().drift_factor(0.49),
            Duration::from_millis(5),
        ),
        ("ttl MAX_TTL", config(), redlock_cluster::MAX_TTL),
        (
            "ttl 50 ms, node timeout 10 s",
            config().node_timeout(Duration::from_secs(10)),
            Duration::from_millis(50),
        ),
    ];
    for (i, (what, config, ttl)) in cases.into_iter().enumerate() {
        let manager = LockManager::new(&urls, config).expect("manager");
        let resource = format!("edge-{i}");
        let first = bounded(what, manager.try_acquire(&resource, ttl)).await;
        let second = bounded(what, manager.try_acquire(&resource, ttl)).await;
        println!("{what}: first {first:?}\n    second {second:?}");
        assert!(
            !(matches!(first, Ok(Some(ref l)) if l.is_valid()) && matches!(second, Ok(Some(_))))
        );
        if let Ok(Some(mut lock)) = first {
            let short = bounded(what, manager.extend(&mut lock, Duration::from_millis(2))).await;
            println!("    extend to 2 ms: {short:?}");
            let _ = bounded(what, manager.release(&mut lock)).await;
        }
    }
    let manager = LockManager::new(&urls, config()).expect("manager");
    let huge = "\u{0}{}}{".repeat(redlock_cluster::MAX_RESOURCE_LEN / 5);
    for resource in [huge.as_str(), "\n", " ", "{", "}", "{}", "ü"] {
        let first = bounded("odd", manager.try_acquire(resource, Duration::from_secs(5))).await;
        let second = bounded("odd", manager.try_acquire(resource, Duration::from_secs(5))).await;
        assert!(matches!(first, Ok(Some(_))), "{resource:?}: {first:?}");
        assert!(matches!(second, Ok(None)), "{resource:?}: {second:?}");
    }
    let too_long = "x".repeat(redlock_cluster::MAX_RESOURCE_LEN + 1);
    println!(
        "too long: {:?}",
        manager
            .try_acquire(&too_long, Duration::from_secs(1))
            .await
            .map(|_| ())
    );
    println!(
        "empty: {:?}",
        manager
            .try_acquire("", Duration::from_secs(1))
            .await
            .map(|_| ())
    );
}
