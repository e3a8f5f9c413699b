//! The fault proxy's own tests, against a real `redis-server` behind it. Plain blocking sockets
//! speak RESP inline commands, so nothing but the proxy sits between test and server.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redlock_harness::{Direction, Fault, FaultProxy, Standalone};

const LONG: Duration = Duration::from_secs(30);

fn setup(groups: usize) -> (Standalone, FaultProxy) {
    let server = Standalone::start_with_appendonly(1, false).expect("redis-server");
    let proxy = FaultProxy::start(server.nodes()[0].port(), groups).expect("proxy");
    (server, proxy)
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().expect("addr"),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends an inline command and reads one reply line.
fn ask(stream: &mut TcpStream, command: &str) -> std::io::Result<String> {
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    read_line(stream)
}

fn read_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

fn direct(server: &Standalone) -> TcpStream {
    connect(server.nodes()[0].port()).expect("direct connection")
}

#[test]
fn traffic_passes_through_every_group() {
    let (_server, proxy) = setup(2);
    for group in 0..2 {
        let mut stream = connect(proxy.port(group)).expect("connect");
        assert_eq!(ask(&mut stream, "PING").unwrap(), "+PONG");
        assert_eq!(proxy.accepted(group), 1);
    }
    assert_ne!(proxy.port(0), proxy.port(1));
    assert!(proxy.url(1).starts_with("redis://127.0.0.1:"));
}

#[test]
fn a_delay_slows_its_group_and_direction_only() {
    let (_server, proxy) = setup(2);
    let fixed = Duration::from_millis(800);
    let _slow = proxy.inject(
        &[0],
        Direction::ToClient,
        Fault::Delay {
            fixed,
            jitter: Duration::from_millis(100),
        },
        LONG,
    );
    let mut slow = connect(proxy.port(0)).unwrap();
    let mut fast = connect(proxy.port(1)).unwrap();
    let start = Instant::now();
    assert_eq!(ask(&mut slow, "PING").unwrap(), "+PONG");
    let slow_took = start.elapsed();
    let start = Instant::now();
    assert_eq!(ask(&mut fast, "PING").unwrap(), "+PONG");
    let fast_took = start.elapsed();
    // The delayed reply cannot come sooner than the delay; the other group has no delay
    // (generous: anything under the delay itself).
    assert!(
        slow_took >= fixed,
        "delayed group answered in {slow_took:?}"
    );
    assert!(fast_took < fixed, "untouched group took {fast_took:?}");
}

#[test]
fn a_blackhole_holds_requests_until_healed_then_delivers_them() {
    let (server, proxy) = setup(2);
    let mut cut = connect(proxy.port(0)).unwrap();
    let mut other = connect(proxy.port(1)).unwrap();
    let hole = proxy.inject(&[0], Direction::ToServer, Fault::Blackhole, LONG);
    assert!(hole.is_active());
    cut.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    cut.write_all(b"SET proxy:held 1\r\n").unwrap();
    let err = read_line(&mut cut).expect_err("no reply through a blackhole");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    // The request never reached the server; the other group's link works.
    let mut check = direct(&server);
    assert_eq!(ask(&mut check, "EXISTS proxy:held").unwrap(), ":0");
    assert_eq!(ask(&mut other, "PING").unwrap(), "+PONG");
    drop(hole);
    cut.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_line(&mut cut).unwrap(), "+OK");
    assert_eq!(ask(&mut check, "EXISTS proxy:held").unwrap(), ":1");
}

#[test]
fn a_reply_blackhole_lets_the_request_land() {
    let (server, proxy) = setup(1);
    let mut cut = connect(proxy.port(0)).unwrap();
    let _hole = proxy.inject(&[0], Direction::ToClient, Fault::Blackhole, LONG);
    cut.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    cut.write_all(b"SET proxy:landed 1\r\n").unwrap();
    assert!(read_line(&mut cut).is_err(), "no reply through a blackhole");
    let mut check = direct(&server);
    assert_eq!(ask(&mut check, "EXISTS proxy:landed").unwrap(), ":1");
}

#[test]
fn faults_end_by_themselves_when_their_bound_is_up() {
    let (_server, proxy) = setup(1);
    let hole = proxy.inject(
        &[0],
        Direction::Both,
        Fault::Blackhole,
        Duration::from_millis(300),
    );
    let mut stream = connect(proxy.port(0)).unwrap();
    // Held while the fault lasts, delivered when it ends, without dropping the guard.
    assert_eq!(ask(&mut stream, "PING").unwrap(), "+PONG");
    assert!(!hole.is_active());
}

#[test]
fn a_refusal_closes_the_port_and_reopens_it() {
    let (_server, proxy) = setup(2);
    let mut open = connect(proxy.port(0)).unwrap();
    // Answered, so the proxy has accepted it (a connection still in the kernel's backlog
    // is reset when the port closes).
    assert_eq!(ask(&mut open, "PING").unwrap(), "+PONG");
    let refusal = proxy.inject(&[0], Direction::Both, Fault::Refuse, LONG);
    let refused = poll(|| match connect(proxy.port(0)) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
        _ => None,
    });
    assert!(refused.is_some(), "group 0's port still accepts");
    // Open connections keep working; the other group is untouched.
    assert_eq!(ask(&mut open, "PING").unwrap(), "+PONG");
    assert_eq!(
        ask(&mut connect(proxy.port(1)).unwrap(), "PING").unwrap(),
        "+PONG"
    );
    drop(refusal);
    let back = poll(|| connect(proxy.port(0)).ok());
    assert_eq!(ask(&mut back.expect("reopened"), "PING").unwrap(), "+PONG");
}

#[test]
fn a_reset_breaks_open_and_new_connections_of_its_group() {
    let (_server, proxy) = setup(2);
    let mut victim = connect(proxy.port(0)).unwrap();
    let mut bystander = connect(proxy.port(1)).unwrap();
    assert_eq!(ask(&mut victim, "PING").unwrap(), "+PONG");
    let reset = proxy.inject(&[0], Direction::Both, Fault::Reset, LONG);
    assert!(
        poll(|| ask(&mut victim, "PING").err()).is_some(),
        "an open connection survived the reset"
    );
    let fresh = connect(proxy.port(0)).and_then(|mut s| ask(&mut s, "PING"));
    assert!(fresh.is_err(), "a new connection got {fresh:?}");
    assert_eq!(ask(&mut bystander, "PING").unwrap(), "+PONG");
    drop(reset);
    let mut again = connect(proxy.port(0)).unwrap();
    assert_eq!(ask(&mut again, "PING").unwrap(), "+PONG");
}

#[test]
fn a_flapping_link_resets_connections_again_and_again() {
    let (_server, proxy) = setup(1);
    let _flap = proxy.inject(
        &[0],
        Direction::Both,
        Fault::Flap {
            every: Duration::from_millis(150),
        },
        LONG,
    );
    // Two connections opened one after the other both die: the link resets repeatedly, and
    // new connections are accepted in between.
    for round in 0..2 {
        let mut stream = connect(proxy.port(0)).unwrap();
        let died = poll(|| {
            std::thread::sleep(Duration::from_millis(20));
            ask(&mut stream, "PING").err()
        });
        assert!(died.is_some(), "connection {round} survived the flapping");
    }
    assert!(proxy.accepted(0) >= 2);
}

#[test]
fn dropping_the_proxy_closes_its_ports() {
    let (_server, proxy) = setup(1);
    let port = proxy.port(0);
    let mut stream = connect(port).unwrap();
    assert_eq!(ask(&mut stream, "PING").unwrap(), "+PONG");
    drop(proxy);
    let err = connect(port).expect_err("the port is closed");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(ask(&mut stream, "PING").is_err());
}

/// Calls `f` every 20 ms for up to 3 s until it gives something.
fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(found) = f() {
            return Some(found);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_cluster_master_announced_through_the_proxy_is_reached_through_it() {
    use redlock_harness::{Cluster, ClusterOptions};
    let mut cluster = Cluster::start(ClusterOptions::default()).expect("3+3 cluster");
    let master = cluster.master_indices().unwrap()[0];
    let proxy = FaultProxy::start(cluster.nodes()[master].port(), 2).unwrap();
    cluster.announce_through(master, proxy.port(0)).unwrap();
    // Group 1 is told the master is at its own port (a per-group address translation).
    proxy
        .translate_ports(1, &[(proxy.port(0), proxy.port(1))])
        .unwrap();
    for (group, shown, hidden) in [(0, 0, 1), (1, 1, 0)] {
        let mut con = connect(proxy.port(group)).unwrap();
        con.write_all(b"CLUSTER NODES\r\n").unwrap();
        let header = read_line(&mut con).unwrap();
        let len: usize = header.trim_start_matches('$').parse().unwrap();
        let mut body = vec![0u8; len + 2];
        con.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(&format!("127.0.0.1:{}@", proxy.port(shown))),
            "{body}"
        );
        assert!(
            !body.contains(&format!(":{}@", proxy.port(hidden))),
            "{body}"
        );
    }
    // Every node names the proxy's port for that master; the harness still knows the node.
    for node in cluster.nodes() {
        let mut con = node.connection().unwrap();
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con).unwrap();
        assert!(
            nodes.contains(&format!("127.0.0.1:{}@", proxy.port(0))),
            "{nodes}"
        );
    }
    assert_eq!(cluster.master_indices().unwrap()[0], master);
    // The master's replica follows the announced address: it replicates through the proxy.
    let replica = cluster.replica_of(master).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut con = cluster.nodes()[replica].connection().unwrap();
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        if info.contains(&format!("master_port:{}", proxy.port(0)))
            && info.contains("master_link_status:up")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(proxy.accepted(0) >= 1);
}
