//! Who votes, on real `redis-server` processes (loopback, started by the harness): it depends
//! only on the configuration and the servers. Mixed seeds, aliases of one server, voter keys
//! sharing a master, one-node clusters, the seeds of two clusters, forced modes and voter
//! counts; servers that can evict keys are reported or refused.
//!
//! "Item N" in a test's comment is item N of issue 8: the test asserts a decision that the
//! code before that fix got wrong, and the figure measured on that code is in the comment.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager, Mode, NodeError};
use redlock_harness::{Cluster, ClusterOptions, Standalone};

mod support;
use support::{addr, bounded, command, config, patient_config};

fn masters_only(masters: usize) -> ClusterOptions {
    ClusterOptions::default()
        .masters(masters)
        .replicas_per_master(0)
        .appendonly(false)
}

fn invalid_config_naming(err: &LockError, node: &str) -> bool {
    matches!(err, LockError::InvalidConfig(why) if why.contains(node))
}

/// Item 1. Before: with the cluster seed paused at first use, the client settled on
/// independent mode over both seeds (1 of 1 runs); mixed lists were accepted in every mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_seeds_never_decide_the_mode_by_timing() {
    let cluster = Cluster::start(masters_only(3)).expect("cluster");
    let solo = Standalone::start(2).expect("standalone");
    let cluster_node = &cluster.nodes()[0];
    let mixed = [cluster.seed_url(), solo.urls()[0].clone()];

    // Every mode refuses the mixed list and names the odd node.
    let err = LockManager::connect(&mixed, patient_config())
        .await
        .unwrap_err();
    assert!(
        invalid_config_naming(&err, &addr(&solo.nodes()[0])),
        "{err}"
    );
    let err = LockManager::connect(&mixed, patient_config().mode(Mode::Cluster))
        .await
        .unwrap_err();
    assert!(
        invalid_config_naming(&err, &addr(&solo.nodes()[0])),
        "{err}"
    );
    let err = LockManager::connect(&mixed, patient_config().mode(Mode::Independent))
        .await
        .unwrap_err();
    assert!(invalid_config_naming(&err, &addr(cluster_node)), "{err}");

    // The old timing bug: the cluster seed does not answer at first use.
    cluster_node.pause().expect("pause");
    let manager = LockManager::new(&mixed, patient_config()).expect("manager");
    let paused = manager.mode().await;
    let acquired = manager.try_acquire("mixed", Duration::from_secs(5)).await;
    // A list of one cluster's nodes waits for its paused seed as well.
    let same_cluster = [cluster.seed_url(), cluster.urls()[1].clone()];
    let cluster_manager = LockManager::new(&same_cluster, patient_config()).expect("manager");
    let cluster_paused = cluster_manager.mode().await;
    cluster_node.resume().expect("resume");
    assert!(
        matches!(paused, Err(ref e) if e.is_unavailable()),
        "mode with the cluster seed paused: {paused:?}"
    );
    assert!(
        matches!(acquired, Err(ref e) if e.is_unavailable()),
        "{acquired:?}"
    );
    assert!(
        matches!(cluster_paused, Err(ref e) if e.is_unavailable()),
        "{cluster_paused:?}"
    );
    // Once it answers, the same managers decide from every seed.
    let err = manager.mode().await.unwrap_err();
    assert!(
        invalid_config_naming(&err, &addr(&solo.nodes()[0])),
        "{err}"
    );
    assert_eq!(cluster_manager.mode().await.expect("mode"), Mode::Cluster);

    // Forced independent with the cluster node silent at discovery: the two standalone
    // masters are a majority of the seeds and decide, but the cluster node never votes (its
    // connection shows cluster_enabled:1 before its first vote counts), and once it answers,
    // the late check turns the manager's calls into the configuration error naming it.
    let seeds = [
        solo.urls()[0].clone(),
        solo.urls()[1].clone(),
        cluster.seed_url(),
    ];
    cluster_node.pause().expect("pause");
    let manager =
        LockManager::new(&seeds, patient_config().mode(Mode::Independent)).expect("manager");
    let mode = manager.mode().await;
    cluster_node.resume().expect("resume");
    assert_eq!(mode.expect("forced mode"), Mode::Independent);
    match manager.try_acquire("forced", Duration::from_secs(10)).await {
        // Before the late check has run: the standalone masters grant, the cluster node's
        // vote is refused.
        Ok(Some(lock)) => assert_eq!(
            lock.granted_by(),
            [addr(&solo.nodes()[0]), addr(&solo.nodes()[1])]
        ),
        Err(err) => assert!(invalid_config_naming(&err, &addr(cluster_node)), "{err}"),
        other => panic!("{other:?}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let err = loop {
        match manager.inspect("forced", None).await {
            Err(err @ LockError::InvalidConfig(_)) => break err,
            Ok(info) => {
                let refused = &info.nodes[2];
                assert!(
                    matches!(&refused.error, Some(NodeError::Refused(why)) if why.contains("cluster_enabled:1")),
                    "{refused:?}"
                );
            }
            Err(other) => panic!("{other}"),
        }
        assert!(std::time::Instant::now() < deadline, "no late check");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(invalid_config_naming(&err, &addr(cluster_node)), "{err}");
}

/// Items 5 and 3(b), independent mode. Before: `localhost:P/1`, `127.0.0.1:P/2` and a third
/// node were three voters, and with the third stopped, P alone granted the lock (two votes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_never_votes_twice() {
    let servers = Standalone::start(2).expect("2 masters");
    let (p, q) = (servers.nodes()[0].port(), servers.nodes()[1].port());
    let third = format!("redis://127.0.0.1:{q}");
    for aliases in [
        [
            format!("redis://localhost:{p}/1"),
            format!("redis://127.0.0.1:{p}/2"),
        ],
        [
            format!("redis://127.1:{p}"),
            format!("redis://LOCALHOST:{p}"),
        ],
        [
            format!("redis://LOCALHOST:{p}"),
            format!("redis://127.0.0.1:{p}/3"),
        ],
    ] {
        let urls = [aliases[0].clone(), aliases[1].clone(), third.clone()];
        // Some aliases are already one address once parsed (127.1 is 127.0.0.1); the others
        // are one server by run_id. Either way the list is refused, in every mode.
        for mode in [Mode::Auto, Mode::Independent] {
            let err = match LockManager::new(&urls, patient_config().mode(mode)) {
                Err(err) => err,
                Ok(manager) => manager.mode().await.unwrap_err(),
            };
            assert!(err.is_invalid_input(), "{urls:?}: {err}");
            if let LockError::InvalidConfig(why) = &err {
                assert!(why.contains("same Redis server"), "{why}");
            }
        }
    }

    // Defence in depth: P silent at discovery (so the list check cannot see the alias; the
    // other three of five seeds are a majority and decide), then back, with two of the
    // others stopped: P's two names are one vote, not a quorum (3 of 5 would be).
    drop(servers);
    let mut servers = Standalone::start(4).expect("4 masters");
    let p = servers.nodes()[0].port();
    let others: Vec<String> = servers.urls()[1..].to_vec();
    let mut urls = vec![
        format!("redis://localhost:{p}/1"),
        format!("redis://127.0.0.1:{p}/2"),
    ];
    urls.extend(others);
    servers.nodes()[0].pause().expect("pause");
    let manager =
        LockManager::new(&urls, patient_config().mode(Mode::Independent)).expect("manager");
    let mode = manager.mode().await;
    servers.nodes()[0].resume().expect("resume");
    assert_eq!(mode.expect("forced mode"), Mode::Independent);
    servers.node_mut(2).kill().expect("kill a third");
    servers.node_mut(3).kill().expect("kill a fourth");
    let outcome = manager.try_acquire("alias", Duration::from_secs(10)).await;
    let err = outcome.expect_err("one server alone must not grant the lock");
    assert!(err.is_unavailable(), "{err}");
    // Answers are admitted as they arrive, so whichever of P's two names answered second is
    // the one refused.
    let names = [format!("localhost:{p}"), format!("127.0.0.1:{p}")];
    let duplicate = err
        .failures()
        .iter()
        .find(|f| names.contains(&f.node) && matches!(&f.error, NodeError::Refused(_)));
    assert!(
        matches!(duplicate, Some(f) if matches!(&f.error, NodeError::Refused(why) if why.contains("same server"))),
        "{err}"
    );
    // And the seeds that were silent at discovery are checked once they answer: the alias
    // turns the manager's later calls into the configuration error (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let refused = loop {
        match manager.mode().await {
            Err(LockError::InvalidConfig(why)) => break why,
            other => {
                assert!(std::time::Instant::now() < deadline, "still {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(refused.contains("same Redis server"), "{refused}");
}

/// Item 3(b), cluster mode. Three voter keys on a two-master cluster: two keys share a master.
/// Before: with the other master paused, the shared master alone granted the lock (2 of 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_voter_keys_on_one_master_count_once() {
    let cluster = Cluster::start(masters_only(2)).expect("cluster");
    let manager = LockManager::connect(&[cluster.seed_url()], patient_config())
        .await
        .expect("manager");
    let resource = "shared/master";
    let voters = manager.voters_of(resource).await.expect("voters");
    let addrs: Vec<&str> = voters.iter().map(|(a, _)| a.as_str()).collect();
    let shared = addrs
        .iter()
        .find(|a| addrs.iter().filter(|b| b == a).count() == 2)
        .expect("two of three keys on one of two masters")
        .to_string();
    let info = manager.inspect(resource, None).await.expect("inspect");
    assert!(info.voters_share_master);

    // Both masters up: one vote each, 2 of 3, granted by two distinct masters.
    let mut lock = manager
        .try_acquire(resource, Duration::from_secs(10))
        .await
        .expect("acquire")
        .expect("granted");
    let mut granted = lock.granted_by().to_vec();
    granted.dedup();
    assert_eq!(granted.len(), 2, "{:?}", lock.granted_by());
    assert!(manager.release(&mut lock).await.expect("release"));

    let other = cluster
        .nodes()
        .iter()
        .find(|n| addr(n) != shared)
        .expect("the other master");
    other.pause().expect("pause");
    let outcome = manager.try_acquire(resource, Duration::from_secs(10)).await;
    other.resume().expect("resume");
    assert!(
        matches!(outcome, Err(ref e) if e.is_unavailable()),
        "one master must not grant two votes: {outcome:?}"
    );
}

/// Item 10. Before: the voter of a one-node cluster was ":PORT" and every lock failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_cluster_votes_at_the_address_it_was_reached_at() {
    let cluster = Cluster::start(masters_only(1)).expect("one-node cluster");
    let node = addr(&cluster.nodes()[0]);
    let manager = LockManager::connect(&[cluster.seed_url()], patient_config().cluster_voters(1))
        .await
        .expect("manager");
    let voters = manager.voters_of("solo").await.expect("voters");
    assert_eq!(voters.len(), 1);
    assert_eq!(voters[0].0, node);
    let mut lock = manager
        .try_acquire("solo", Duration::from_secs(10))
        .await
        .expect("acquire")
        .expect("granted");
    assert_eq!(lock.granted_by(), std::slice::from_ref(&node));
    assert!(manager.release(&mut lock).await.expect("release"));

    // With three voter keys on its one master, one server cannot make a quorum: a clear error.
    let manager = LockManager::connect(&[cluster.seed_url()], patient_config())
        .await
        .expect("manager");
    let err = manager
        .try_acquire("solo", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::VoterRefused { node: n, reason } if *n == node && reason.contains("cluster_voters")),
        "{err}"
    );
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Item 4. Before: an evicting voter was neither reported nor refusable (0 warnings).
/// Current-thread runtime: the connection (and its warning) runs on this thread, under the
/// thread's capturing subscriber.
#[tokio::test(flavor = "current_thread")]
async fn evicting_voters_are_warned_about_and_refusable() {
    let servers = Standalone::start(1).expect("1 master");
    let node = &servers.nodes()[0];
    command(node, &["CONFIG", "SET", "maxmemory", "10mb"]);
    command(node, &["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"]);
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    // Refused by default (issue 14.9: before, it voted with a warning only, and a second
    // client acquired while the first held, 3 of 3 tries under `volatile-ttl`).
    let refusing = LockManager::new(&servers.urls(), patient_config()).expect("manager");
    let err = refusing
        .try_acquire("evict", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::VoterRefused { node: n, reason } if *n == addr(node) && reason.contains("noeviction")),
        "{err}"
    );

    let warning = LockManager::new(
        &servers.urls(),
        patient_config().refuse_evicting_voters(false),
    )
    .expect("manager");
    for _ in 0..2 {
        let mut lock = warning
            .try_acquire("evict", Duration::from_secs(10))
            .await
            .expect("acquire")
            .expect("an evicting voter votes once the risk is accepted");
        assert!(warning.release(&mut lock).await.expect("release"));
    }
    let text = log.text();
    let warned = text.matches("can evict lock keys").count();
    // Once per voter and manager (each manager has its own connection to the node).
    assert_eq!(warned, 2, "{text}");
    assert!(text.contains(&addr(node)), "{text}");
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
