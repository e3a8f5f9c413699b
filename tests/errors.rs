//! Errors on real `redis-server` processes (loopback, started by the harness): refusals that
//! need a change say which (credentials, ACL commands, ACL key patterns, a foreign value at a
//! lock key), URL variants and TTL or resource edges are accepted or refused clearly, and the
//! timeout of a paused voter is reported as configured. Every wait is bounded.
//!
//! "Item N" in a test's comment is item N of issue 8: the test asserts a decision that the
//! code before that fix got wrong, and the figure measured on that code is in the comment.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager, RetryPolicy};
use redlock_harness::{RedisServer, Standalone};

mod support;
use support::{addr, bounded, command, config, patient_config};

/// The `count` of the ACL LOG entries whose reason is `reason`.
fn acl_log_count(node: &RedisServer, reason: &str) -> i64 {
    let redis::Value::Array(entries) = command(node, &["ACL", "LOG"]) else {
        return 0;
    };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(kv) => Some(kv),
            redis::Value::Map(_) => None,
            _ => None,
        })
        .filter(|kv| {
            kv.chunks(2)
                .any(|p| text(&p[0]) == "reason" && text(&p[1]) == reason)
        })
        .map(|kv| {
            kv.chunks(2)
                .find(|p| text(&p[0]) == "count")
                .and_then(|p| match &p[1] {
                    redis::Value::Int(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0)
        })
        .sum()
}

/// Item 13. Before: NOPERM and WRONGPASS were `Unavailable`, retried, with the advice to check
/// that a majority of masters is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_acl_failures_are_typed_and_not_retried() {
    let servers = Standalone::start(1).expect("1 master");
    let node = &servers.nodes()[0];
    command(
        node,
        &[
            "ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-evalsha", "-eval",
        ],
    );
    let retrying = patient_config().retry(
        RetryPolicy::new()
            .max_attempts(3)
            .base_delay(Duration::from_millis(10)),
    );
    let url = |password: &str| vec![format!("redis://noeval:{password}@{}", addr(node))];

    let manager = LockManager::new(&url("pw"), retrying.clone()).expect("manager");
    let err = manager
        .acquire("acl", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Permission { command, .. } if command == "EVALSHA"),
        "{err}"
    );
    assert!(err.to_string().contains("+evalsha"), "{err}");
    assert!(!err.is_retryable());
    // One attempt is one refused EVALSHA, plus one for the release of its failed round (which
    // runs in a spawned task, so it may not be counted yet); three attempts would be 3 or more.
    let refused = acl_log_count(node, "command");
    assert!(
        (1..=2).contains(&refused),
        "{refused} refused commands: retried after NOPERM"
    );
    let err = manager.is_locked("acl").await.unwrap_err();
    assert!(matches!(err, LockError::Permission { .. }), "{err}");

    let manager = LockManager::new(&url("wrong"), retrying).expect("manager");
    let err = manager
        .acquire("acl", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Auth { node: n, .. } if *n == addr(node)),
        "{err}"
    );
    assert!(err.to_string().contains("password"), "{err}");
    assert_eq!(acl_log_count(node, "auth"), 1, "retried after WRONGPASS");
}

/// Item 13. Before: acquire saw a list at the lock key as a lock held forever (`Ok(None)`),
/// while `is_locked` reported `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_at_a_lock_key_is_one_clear_error() {
    let servers = Standalone::start(1).expect("1 master");
    let node = &servers.nodes()[0];
    command(node, &["RPUSH", "redlock:listed", "x"]);
    let manager = LockManager::new(&servers.urls(), patient_config()).expect("manager");
    let wrong_type = |err: &LockError| matches!(err, LockError::WrongType { node: n, key } if *n == addr(node) && key == "redlock:listed");
    let err = manager
        .try_acquire("listed", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(wrong_type(&err), "{err}");
    let err = manager.is_locked("listed").await.unwrap_err();
    assert!(wrong_type(&err), "{err}");
    let err = manager.inspect("listed", None).await.unwrap_err();
    assert!(wrong_type(&err), "{err}");
    assert!(err.to_string().contains("DEL"), "{err}");
}

/// Issue 14.10. Before: a user whose key patterns leave out the lock keys got `Permission`
/// naming "a command" with the advice `ACL SETUSER <user> +a command`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_pattern_refusal_names_the_keys_and_the_pattern_fix() {
    let servers = Standalone::start(1).expect("1 master");
    let node = &servers.nodes()[0];
    command(
        node,
        &["ACL", "SETUSER", "nokeys", "on", ">pw", "~other:*", "+@all"],
    );
    let url = vec![format!("redis://nokeys:pw@{}", addr(node))];
    let manager = LockManager::new(&url, patient_config()).expect("manager");
    let err = manager
        .acquire("acl-keys", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::KeyPermission { node: n, key, .. }
            if *n == addr(node) && key.starts_with("redlock:")),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("~redlock:*"), "{text}");
    assert!(!text.contains("a command"), "{text}");
    assert!(!err.is_retryable());
    let err = manager.is_locked("acl-keys").await.unwrap_err();
    assert!(matches!(err, LockError::KeyPermission { .. }), "{err}");
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
