//! A rustls `CryptoProvider` installed by the application is kept: the library installs its
//! own (ring's) only when none is installed. A test binary of its own, because the provider is
//! process-wide and `tls.rs` checks the case where the application installs none.

use std::sync::Arc;
use std::time::Duration;

use redlock_cluster::{LockConfig, RedisDistributedLock};
use redlock_harness::{Standalone, TlsFiles};
use rustls::crypto::{CryptoProvider, ring};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_provider_is_kept() {
    // What an application might do first thing in main: its own provider, here recognisable by
    // offering a single cipher suite.
    let mut provider = ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    assert_eq!(provider.cipher_suites.len(), 1);
    provider
        .install_default()
        .expect("nothing installed a provider before main");
    let ours = Arc::clone(CryptoProvider::get_default().expect("just installed"));

    let tls = TlsFiles::generate().expect("certificates");
    let masters = Standalone::start_tls(3, &tls).expect("three TLS masters");
    let config = LockConfig::new()
        .node_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(3))
        .tls_root_ca(tls.ca_pem());
    let mut lock = RedisDistributedLock::with_config(
        masters.tls_urls(),
        "tls/app-provider".to_string(),
        Duration::from_secs(10),
        config,
    )
    .expect("valid lock");
    assert!(
        lock.acquire()
            .await
            .expect("acquire with the app's provider")
    );
    assert!(lock.release().await.expect("release"));

    let after = CryptoProvider::get_default().expect("still installed");
    assert!(
        Arc::ptr_eq(&ours, after),
        "the library replaced the application's CryptoProvider"
    );
    assert_eq!(after.cipher_suites.len(), 1);
}
