//! The real-Redis harness against real `redis-server` processes.
//!
//! Needs `redis-server` on PATH (or `REDIS_SERVER_BIN`). Run with
//! `cargo test -p redlock-harness --test servers -- --nocapture` to see the measured cluster
//! formation and failover times.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use redis::Value;
use redlock_harness::{
    Cluster, ClusterOptions, HarnessError, RedisServer, SLOTS, Standalone, even_slot_ranges,
    find_redis_server, info_field,
};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

fn query<T: redis::FromRedisValue>(node: &RedisServer, cmd: &redis::Cmd) -> T {
    let mut con = node.connection().unwrap();
    cmd.query(&mut con).unwrap()
}

/// `(first, last, master port)` for every range in `CLUSTER SLOTS`, sorted.
fn cluster_slots(node: &RedisServer) -> Vec<(u16, u16, u16)> {
    let entries: Vec<Vec<Value>> = query(node, redis::cmd("CLUSTER").arg("SLOTS"));
    let mut ranges: Vec<(u16, u16, u16)> = entries
        .iter()
        .map(|entry| {
            let master: Vec<Value> = redis::from_redis_value_ref(&entry[2]).unwrap();
            (
                redis::from_redis_value_ref(&entry[0]).unwrap(),
                redis::from_redis_value_ref(&entry[1]).unwrap(),
                redis::from_redis_value_ref(&master[1]).unwrap(),
            )
        })
        .collect();
    ranges.sort_unstable();
    ranges
}

fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_3_plus_3_cluster_serves_every_slot_with_master_i_owning_band_i() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    eprintln!(
        "cluster formation (3+3, start to healthy): {:?}",
        started.elapsed()
    );

    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    let expected: Vec<(u16, u16, u16)> = even_slot_ranges(3)
        .into_iter()
        .zip(nodes)
        .map(|(range, master)| (*range.start(), *range.end(), master.port()))
        .collect();
    for node in nodes {
        let info: String = query(node, redis::cmd("CLUSTER").arg("INFO"));
        assert_eq!(info_field(&info, "cluster_state"), Some("ok"));
        assert_eq!(
            info_field(&info, "cluster_slots_ok"),
            Some(SLOTS.to_string().as_str())
        );
        assert_eq!(
            cluster_slots(node),
            expected,
            "view of port {}",
            node.port()
        );
    }
    assert_eq!(cluster.master_indices().unwrap(), vec![0, 1, 2]);
    for master in 0..3 {
        assert_eq!(cluster.replica_of(master).unwrap(), 3 + master);
        let replication: String = query(&nodes[3 + master], redis::cmd("INFO").arg("replication"));
        assert_eq!(
            info_field(&replication, "master_port"),
            Some(nodes[master].port().to_string().as_str())
        );
    }
    assert_eq!(cluster.index_of_slot_owner(0).unwrap(), 0);
    assert_eq!(cluster.index_of_slot_owner(10922).unwrap(), 1);
    assert_eq!(cluster.index_of_slot_owner(10923).unwrap(), 2);
    assert_eq!(cluster.index_of_slot_owner(SLOTS - 1).unwrap(), 2);
    assert_eq!(cluster.seed_url(), nodes[0].url());
}

#[test]
fn a_killed_master_is_replaced_by_its_replica_and_rejoins_as_its_replica() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions::fast_failover()).unwrap();
    eprintln!(
        "cluster formation (3+3, fast failover): {:?}",
        started.elapsed()
    );
    let old_pid = cluster.nodes()[0].pid().unwrap();

    let started = Instant::now();
    let new_master = cluster.kill_and_fail_over(0, FAILOVER_TIMEOUT).unwrap();
    eprintln!(
        "failover (SIGKILL master to healthy cluster, node timeout 1000 ms): {:?}",
        started.elapsed()
    );
    assert_eq!(new_master, 3);
    assert!(!cluster.nodes()[0].is_running() && !is_alive(old_pid));
    assert_eq!(cluster.master_indices().unwrap(), vec![3, 1, 2]);
    assert_eq!(cluster.index_of_slot_owner(0).unwrap(), 3);
    let role: String = query(&cluster.nodes()[3], redis::cmd("INFO").arg("replication"));
    assert_eq!(info_field(&role, "role"), Some("master"));

    // The old master comes back with its nodes.conf and follows the new one.
    cluster.node_mut(0).restart().unwrap();
    cluster.wait_healthy(FAILOVER_TIMEOUT).unwrap();
    assert_eq!(cluster.replica_of(3).unwrap(), 0);

    // A coordinated failover swaps them back.
    let started = Instant::now();
    assert_eq!(cluster.failover_graceful(3, FAILOVER_TIMEOUT).unwrap(), 0);
    eprintln!(
        "graceful failover (CLUSTER FAILOVER to healthy): {:?}",
        started.elapsed()
    );
    assert_eq!(cluster.master_indices().unwrap(), vec![0, 1, 2]);
    assert_eq!(cluster.replica_of(0).unwrap(), 3);
}

#[test]
fn a_restarted_standalone_node_keeps_its_keys_and_an_emptied_one_does_not() {
    let mut nodes = Standalone::start(1).unwrap();
    let node = nodes.node_mut(0);
    let _: () = query(node, redis::cmd("SET").arg("lock").arg("token-1"));
    node.kill().unwrap();
    assert!(!node.is_running());
    assert_eq!(node.pid(), None);
    assert!(matches!(node.pause(), Err(HarnessError::NotRunning { .. })));

    node.restart().unwrap();
    let value: Option<String> = query(node, redis::cmd("GET").arg("lock"));
    assert_eq!(value.as_deref(), Some("token-1"), "AOF was not reloaded");

    node.restart_empty().unwrap();
    let value: Option<String> = query(node, redis::cmd("GET").arg("lock"));
    assert_eq!(value, None, "restart_empty kept the data");
}

#[test]
fn a_paused_node_does_not_answer_until_resumed() {
    let nodes = Standalone::start(1).unwrap();
    let node = &nodes.nodes()[0];
    let short = Duration::from_millis(300);

    node.pause().unwrap();
    assert!(node.is_paused() && node.is_running());
    let started = Instant::now();
    let answer = node.connection_with_timeout(short).and_then(|mut con| {
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| HarnessError::Redis {
                port: node.port(),
                context: "PING".into(),
                source: e,
            })
    });
    assert!(answer.is_err(), "a paused node answered: {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout was not honoured"
    );

    node.resume().unwrap();
    assert!(!node.is_paused());
    let pong: String = query(node, &redis::cmd("PING"));
    assert_eq!(pong, "PONG");
}

#[test]
fn parallel_starts_get_distinct_ports_and_all_work() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let urls_and_pings = |nodes: &[RedisServer]| -> Vec<(String, String)> {
                    nodes
                        .iter()
                        .map(|n| (n.url(), query::<String>(n, &redis::cmd("PING"))))
                        .collect()
                };
                if i % 2 == 0 {
                    let cluster =
                        Cluster::start(ClusterOptions::default().replicas_per_master(0)).unwrap();
                    urls_and_pings(cluster.nodes())
                } else {
                    urls_and_pings(Standalone::start(3).unwrap().nodes())
                }
            })
        })
        .collect();
    let mut urls: Vec<String> = Vec::new();
    for handle in handles {
        for (url, pong) in handle.join().unwrap() {
            assert_eq!(pong, "PONG", "{url}");
            urls.push(url);
        }
    }
    let total = urls.len();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), total, "two nodes got the same port");
    assert_eq!(total, 12);
}

#[test]
fn nothing_is_left_running_after_drop() {
    let mut pids = Vec::new();
    let mut dirs = Vec::new();
    {
        let standalone = Standalone::start(2).unwrap();
        let cluster = Cluster::start(ClusterOptions::default().replicas_per_master(0)).unwrap();
        // A paused node must be killed too.
        standalone.nodes()[1].pause().unwrap();
        for node in standalone.nodes().iter().chain(cluster.nodes()) {
            pids.push(node.pid().unwrap());
            dirs.push(node.dir().to_owned());
        }
        assert!(pids.iter().all(|&pid| is_alive(pid)));
    }
    for pid in pids {
        assert!(!is_alive(pid), "redis-server {pid} survived its drop");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} survived its drop", dir.display());
    }
}

#[test]
fn fixed_ports_that_are_taken_or_miscounted_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().port();
    let err = Cluster::start_on_ports(
        &[taken],
        ClusterOptions::default().masters(1).replicas_per_master(0),
    )
    .unwrap_err();
    assert!(
        matches!(err, HarnessError::PortInUse { port } if port == taken),
        "{err}"
    );
    assert!(err.is_port_in_use());

    let err = Cluster::start_on_ports(&[taken, taken], ClusterOptions::default()).unwrap_err();
    assert!(matches!(err, HarnessError::InvalidOptions { .. }), "{err}");
}

#[test]
fn redis_server_bin_pointing_nowhere_gives_a_clear_error() {
    let err = find_redis_server(Some(OsStr::new("/nonexistent/redis-server")), None).unwrap_err();
    assert!(
        matches!(err, HarnessError::RedisServerBinInvalid { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("REDIS_SERVER_BIN is set to `/nonexistent/redis-server`")
    );

    let empty_dir = std::env::temp_dir();
    let err = find_redis_server(None, Some(empty_dir.as_os_str())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "redis-server not found on PATH: install it with `sudo apt-get install redis-server` \
         (Debian/Ubuntu) or `brew install redis` (macOS)"
    );

    let real = find_redis_server(None, std::env::var_os("PATH").as_deref()).unwrap();
    assert_eq!(
        find_redis_server(Some(real.as_os_str()), None).unwrap(),
        real
    );
}
