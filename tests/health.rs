//! The voter health report against real `redis-server` processes started by the harness:
//! a healthy set of masters, and masters with dangerous settings. Run with `--nocapture` to
//! see the reports (docs/operations.md shows one).

use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager, Severity, VoterHealth};
use redlock_harness::Standalone;

fn config() -> LockConfig {
    // Generous timeouts: the build machine is shared and loaded.
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
}

fn dangers(voter: &VoterHealth) -> Vec<&str> {
    voter
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Danger)
        .map(|f| f.message.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_masters_report_every_field_and_no_danger() {
    let masters = Standalone::start(3).expect("3 masters");
    let manager = LockManager::connect(&masters.urls(), config())
        .await
        .expect("manager");
    let report = manager.health().await.expect("report");
    eprintln!("{report}");
    assert_eq!(report.voters.len(), 3);
    assert_ne!(report.worst(), Some(Severity::Danger), "{report}");
    for voter in &report.voters {
        assert_eq!(voter.error, None, "{report}");
        assert_eq!(voter.role.as_deref(), Some("master"));
        assert_eq!(voter.run_id.as_ref().map(String::len), Some(40));
        assert!(
            voter
                .redis_version
                .as_deref()
                .is_some_and(|v| !v.is_empty())
        );
        assert_eq!(voter.appendonly, Some(true));
        assert_eq!(voter.appendfsync.as_deref(), Some("always"));
        assert_eq!(voter.maxmemory, Some(0));
        assert_eq!(voter.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(voter.connected_replicas, Some(0));
        assert_eq!(voter.cluster_require_full_coverage, None, "standalone");
        assert!(voter.rtt.is_some_and(|rtt| rtt < Duration::from_secs(2)));
        // Same machine, same clock: the bounds hold the true rate 1 (whatever the load).
        let clock = voter.clock_rate.expect("clock rate");
        assert!(clock.low <= 1.0 && clock.high >= 1.0, "{clock:?}");
        assert_eq!(voter.quarantined_for, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_and_volatile_masters_are_dangers_with_fixes() {
    let masters = Standalone::start_with_appendonly(3, false).expect("3 masters");
    let mut evicting = masters.nodes()[2].connection().expect("connection");
    let _: () = redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("100mb")
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .ignore()
        .query(&mut evicting)
        .expect("CONFIG SET");
    let manager = LockManager::connect(&masters.urls(), config())
        .await
        .expect("manager");
    let report = manager.health().await.expect("report");
    eprintln!("{report}");
    assert_eq!(report.worst(), Some(Severity::Danger));
    for (i, voter) in report.voters.iter().enumerate() {
        assert_eq!(voter.appendonly, Some(false));
        let dangers = dangers(voter);
        assert!(
            dangers.iter().any(|m| m.contains("appendonly no")),
            "{report}"
        );
        assert_eq!(
            dangers.iter().any(|m| m.contains("allkeys-lru")),
            i == 2,
            "{report}"
        );
    }
    let eviction = report
        .findings()
        .into_iter()
        .find(|(_, f)| f.message.contains("can evict"))
        .expect("an eviction finding");
    assert_eq!(eviction.0, report.voters[2].addr);
    assert!(eviction.1.fix.contains("maxmemory-policy noeviction"));
    assert!(
        report
            .to_string()
            .contains("fix: CONFIG SET maxmemory-policy noeviction")
    );

    // With delayed restarts the missing AOF is covered (information only), and these
    // just-started servers are quarantined, which the report shows.
    let delayed = LockManager::connect(
        &masters.urls(),
        config().delayed_restart(Duration::from_secs(60)),
    )
    .await
    .expect("manager");
    let report = delayed.health().await.expect("report");
    eprintln!("{report}");
    for voter in &report.voters {
        assert!(
            !dangers(voter).iter().any(|m| m.contains("appendonly")),
            "{report}"
        );
        assert!(
            voter
                .quarantined_for
                .is_some_and(|left| left > Duration::ZERO && left <= Duration::from_secs(60)),
            "{report}"
        );
    }
}
