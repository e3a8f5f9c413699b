//! The bound on rounds in flight (`LockConfig::max_rounds_in_flight`) holds for every round
//! kind, the fenced acquire's two rounds included: seen from the server's side, through a
//! loopback proxy that counts the lock scripts sent and not yet answered.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager, RetryPolicy};
use redlock_harness::Standalone;

/// How many scripts (`EVAL`/`EVALSHA`) are outstanding at the server now, and the most seen.
#[derive(Default)]
struct Outstanding {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Outstanding {
    fn sent(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }
    fn answered(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The length of the first complete RESP2 frame in `buf` (`None`: not complete yet).
fn frame_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(buf.get(1..line_end)?).ok()?;
    let after = line_end + 2;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(after);
            }
            let end = after + usize::try_from(len).ok()? + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let count: i64 = line.parse().ok()?;
            let mut at = after;
            for _ in 0..count.max(0) {
                at += frame_len(buf.get(at..)?)?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// Whether a command frame (an array of bulk strings) is a script call.
fn is_script(frame: &[u8]) -> bool {
    let head = frame.get(..frame.len().min(64)).unwrap_or(frame);
    let text = String::from_utf8_lossy(head).to_ascii_uppercase();
    text.contains("\r\nEVALSHA\r\n") || text.contains("\r\nEVAL\r\n")
}

/// A loopback proxy in front of one server that counts outstanding scripts: a request is
/// counted before it is forwarded, its reply uncounted before it is forwarded back, so that
/// the count is never below what the client has in flight. Replies are held back by
/// `delay`, so that requests that are not bounded pile up. Plain threads and blocking
/// sockets (the dev tokio has no `net`); it serves at most 16 connections.
fn counting_proxy(upstream_port: u16, delay: Duration, count: Arc<Outstanding>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().take(16) {
            let Ok(client) = client else { return };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream_port)) else {
                return;
            };
            let (mut client_read, mut server_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut server_read, mut client_write) = (server, client);
            // Whether each request still unanswered on this connection is a script.
            let pending = Arc::new(Mutex::new(VecDeque::<bool>::new()));
            let (requests, count_up) = (pending.clone(), count.clone());
            std::thread::spawn(move || {
                let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 16 * 1024]);
                loop {
                    let n = match client_read.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(len) = frame_len(&buf) {
                        let script = is_script(&buf[..len]);
                        if script {
                            count_up.sent();
                        }
                        requests.lock().expect("pending").push_back(script);
                        buf.drain(..len);
                    }
                    if server_write.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
            });
            let count_down = count.clone();
            std::thread::spawn(move || {
                let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 16 * 1024]);
                loop {
                    let n = match server_read.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    std::thread::sleep(delay);
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(len) = frame_len(&buf) {
                        if pending.lock().expect("pending").pop_front() == Some(true) {
                            count_down.answered();
                        }
                        buf.drain(..len);
                    }
                    if client_write.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// `acquires` locks on distinct resources at once through one voter behind the counting
/// proxy; the most scripts the server had outstanding at once.
async fn most_in_flight(fencing: bool, rounds: usize, acquires: usize) -> usize {
    let server = Standalone::start(1).expect("1 master");
    let count = Arc::new(Outstanding::default());
    let proxy = counting_proxy(
        server.nodes()[0].port(),
        Duration::from_millis(5),
        count.clone(),
    );
    let config = LockConfig::new()
        .node_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::once())
        .max_rounds_in_flight(rounds)
        .fencing(fencing);
    let manager = tokio::time::timeout(
        Duration::from_secs(20),
        LockManager::connect(&[format!("redis://127.0.0.1:{proxy}")], config),
    )
    .await
    .expect("connect in time")
    .expect("manager");
    let tries = (0..acquires).map(|i| {
        let manager = manager.clone();
        tokio::spawn(async move {
            manager
                .acquire(&format!("overload/{i}"), Duration::from_secs(20))
                .await
        })
    });
    let results = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tries))
        .await
        .expect("acquires in time");
    let acquired = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(Some(_)))))
        .count();
    assert_eq!(acquired, acquires, "every distinct resource is granted");
    count.most.load(Ordering::SeqCst)
}

/// With `max_rounds_in_flight(2)`, 24 concurrent fenced acquires never have more than 2
/// rounds (so 2 scripts on the one voter) in flight: both rounds of a fenced acquire wait
/// for a permit, like every other round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_acquires_respect_the_round_bound() {
    let most = most_in_flight(true, 2, 24).await;
    println!("fenced: at most {most} scripts outstanding");
    assert!(most <= 2, "{most} scripts outstanding, bound 2");
    assert!(most >= 1, "the proxy saw the scripts");
}

/// The same bound on plain acquires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_acquires_respect_the_round_bound() {
    let most = most_in_flight(false, 2, 24).await;
    println!("plain: at most {most} scripts outstanding");
    assert!(most <= 2, "{most} scripts outstanding, bound 2");
    assert!(most >= 1, "the proxy saw the scripts");
}
