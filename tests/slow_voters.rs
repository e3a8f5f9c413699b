//! Slow and hung voters against real `redis-server` processes (3 independent masters, started
//! by the harness on free loopback ports): a hung voter does not tax fresh managers, an
//! extend that runs out of time leaves no lengthened key, and the late grants of a slow voter
//! are cleaned up.

use std::time::{Duration, Instant};

use redlock_cluster::{LockConfig, LockManager, Mode, RetryPolicy};
use redlock_harness::Standalone;
use tokio::time::sleep;

mod support;
use support::{bounded, eventually, key_count};

/// Item 6 of issue 8: a voter that accepts TCP but never answers (SIGSTOP) costs a fresh
/// manager's round at most the node timeout, connecting included: the connection keeps
/// opening in the background. (The first topology read asks every seed for its server facts,
/// under the connect timeout; it is done before the clock starts here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_voter_does_not_tax_fresh_managers() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let connect_timeout = Duration::from_secs(3);
    let config = LockConfig::new()
        .mode(Mode::Independent)
        .node_timeout(Duration::from_millis(200))
        .connect_timeout(connect_timeout)
        .retry(RetryPolicy::once());
    servers.nodes()[0].pause().expect("pause");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (urls, config) = (urls.clone(), config.clone());
            tokio::spawn(async move {
                let manager = LockManager::new(&urls, config).expect("manager");
                manager.mode().await.expect("topology");
                let started = Instant::now();
                let mut lock = manager
                    .try_acquire(&format!("fresh/{i}"), Duration::from_secs(10))
                    .await
                    .expect("acquire")
                    .expect("granted by the two live voters");
                let took = started.elapsed();
                manager.release(&mut lock).await.expect("release");
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for task in tasks {
        took.push(task.await.expect("task"));
    }
    servers.nodes()[0].resume().expect("resume");
    eprintln!("fresh managers next to a hung voter: {took:?}");
    assert!(
        took.iter().all(|t| *t < connect_timeout),
        "a round waited for the hung voter's connection: {took:?}"
    );
}

/// Item 12 of issue 8: an extend that runs out of time while its `PEXPIRE`s are on their way
/// ends the lock, and the keys it lengthened do not stay behind with the new TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_extend_leaves_no_lengthened_key() {
    let servers = Standalone::start(3).expect("3 masters");
    let urls = servers.urls();
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(400))
        .retry(RetryPolicy::once());
    let manager = LockManager::connect(&urls, config).await.expect("manager");
    let mut lock = manager
        .try_acquire("extend/late", Duration::from_secs(1))
        .await
        .expect("acquire")
        .expect("granted");
    // Two voters stop answering with the lock's validity nearly spent: their PEXPIREs are
    // written but run only after the round, which the old validity does not outlive.
    tokio::time::sleep(lock.remaining().saturating_sub(Duration::from_millis(150))).await;
    servers.nodes()[1].pause().expect("pause");
    servers.nodes()[2].pause().expect("pause");
    let extended = manager.extend(&mut lock, Duration::from_secs(60)).await;
    servers.nodes()[1].resume().expect("resume");
    servers.nodes()[2].resume().expect("resume");
    assert!(!matches!(extended, Ok(true)), "{extended:?}");
    assert!(
        !lock.is_valid(),
        "a failed extend past the validity ends the lock"
    );
    eventually("no lengthened key is left", Duration::from_secs(5), || {
        urls.iter().all(|u| key_count(u) == 0)
    })
    .await;
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
