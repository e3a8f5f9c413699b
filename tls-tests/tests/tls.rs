//! Locks over three TLS-only voters: `redis-server`s serving TLS with a certificate made by the
//! harness (a throwaway CA, names 127.0.0.1 and localhost), reached with `rediss://` URLs.
//!
//! Covers issue 8 item 15: the first lock used to panic inside rustls ("Could not automatically
//! determine the process-level CryptoProvider"); now certificates are verified against a given
//! CA, `#insecure` skips verification, and a wrong CA is a clear error, not a panic.
//!
//! No test here installs a rustls provider, so the library's own choice (ring, installed once)
//! is what runs; `app_provider.rs` checks that an application's provider is kept.

use std::time::Duration;

use redlock_cluster::{LockConfig, LockError, LockManager, RedisDistributedLock};
use redlock_harness::{Standalone, TlsFiles};

/// Generous timeouts: a TLS handshake in a debug build on a loaded machine.
fn config() -> LockConfig {
    LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(3))
}

/// Acquire, is_locked, extend, release: each must succeed over TLS.
async fn lock_round_trip(urls: Vec<String>, config: LockConfig, resource: &str) {
    let ttl = Duration::from_secs(10);
    let mut lock =
        RedisDistributedLock::with_config(urls.clone(), resource.to_string(), ttl, config)
            .expect("valid lock");
    assert!(lock.acquire().await.expect("acquire over TLS"));
    assert!(lock.is_locked().await.expect("is_locked over TLS"));
    let info = lock.get_lock_info().await.expect("lock info over TLS");
    assert!(info.locked && info.held_by_caller);
    assert_eq!(info.nodes.len(), 3);
    assert!(lock.extend(ttl).await.expect("extend over TLS"));
    assert!(lock.release().await.expect("release over TLS"));
    assert!(!lock.is_locked().await.expect("is_locked after release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_over_tls_verifying_the_given_ca() {
    let tls = TlsFiles::generate().expect("certificates");
    let masters = Standalone::start_tls(3, &tls).expect("three TLS masters");
    let urls = masters.tls_urls();
    assert_eq!(urls.len(), 3);
    assert!(urls.iter().all(|u| u.starts_with("rediss://127.0.0.1:")));
    lock_round_trip(urls, config().tls_root_ca(tls.ca_pem()), "tls/verified").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_over_tls_with_insecure_and_no_ca() {
    let tls = TlsFiles::generate().expect("certificates");
    let masters = Standalone::start_tls(3, &tls).expect("three TLS masters");
    let urls = masters
        .tls_urls()
        .into_iter()
        .map(|url| format!("{url}/#insecure"))
        .collect();
    lock_round_trip(urls, config(), "tls/insecure").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_clear_error_not_a_panic() {
    let tls = TlsFiles::generate().expect("certificates");
    let other = TlsFiles::generate().expect("another CA");
    let masters = Standalone::start_tls(3, &tls).expect("three TLS masters");
    let manager = LockManager::new(&masters.tls_urls(), config().tls_root_ca(other.ca_pem()))
        .expect("manager");
    let error = manager
        .try_acquire("tls/wrong-ca", Duration::from_secs(10))
        .await
        .expect_err("no voter can be verified");
    let text = error.to_string();
    // No seed can be verified, so not even the mode can be decided (the seeds' error, since
    // issue 14: seeds are not voters).
    assert!(
        matches!(error, LockError::SeedsUnavailable { .. }),
        "unexpected error: {text}"
    );
    assert!(
        error.failures().len() == 3 && error.failures().iter().all(|f| f.error.is_connect()),
        "every voter must fail to connect: {text}"
    );
    assert!(
        text.contains("certificate"),
        "the error must say why: {text}"
    );
}

#[test]
fn a_root_ca_without_certificates_is_refused_up_front() {
    let error = LockManager::new(
        &["rediss://127.0.0.1:1"],
        LockConfig::new().tls_root_ca("not a certificate"),
    )
    .expect_err("no certificate in the PEM");
    assert!(matches!(error, LockError::InvalidConfig(_)), "{error}");
}
