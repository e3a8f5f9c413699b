//! TLS (`rediss://`, crate feature `tls`): which rustls crypto provider is used, and the root
//! CA a user can give.
//!
//! redis-rs builds its rustls `ClientConfig` with `ClientConfig::builder()`, which takes the
//! process-level [`CryptoProvider`]. redis-rs enables no provider feature of rustls, so unless
//! the application installed a provider (or its own rustls features name exactly one), rustls
//! *panics* at the first TLS connection. A library must not panic in its user's process, nor
//! overwrite a choice the application made: so before every TLS connection we install rustls's
//! `ring` provider once, and only if no provider is installed yet.

use std::fmt;
use std::sync::Once;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::LockError;

/// Make sure rustls has a process-level [`CryptoProvider`]: keep the application's if it
/// installed one, otherwise install `ring`'s. Cheap after the first call.
pub(crate) fn ensure_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if CryptoProvider::get_default().is_none() {
            // An error means another thread installed a provider since the check: that one
            // stays, which is what we want.
            let installed = rustls::crypto::ring::default_provider().install_default();
            tracing::debug!(
                installed = installed.is_ok(),
                "no rustls CryptoProvider was installed: installing ring's (kept the one another \
                 thread installed meanwhile if `installed` is false)"
            );
        }
    });
}

/// A root CA certificate bundle in PEM, checked to hold at least one certificate.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RootCa(Vec<u8>);

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootCa({} bytes of PEM)", self.0.len())
    }
}

impl RootCa {
    pub(crate) fn new(pem: Vec<u8>) -> Self {
        RootCa(pem)
    }

    /// Check that the PEM parses and holds at least one certificate.
    pub(crate) fn validate(&self) -> Result<(), LockError> {
        let invalid = |why: String| {
            LockError::InvalidConfig(format!(
                "the TLS root CA {why}: pass the CA's certificate(s) in PEM \
                 (-----BEGIN CERTIFICATE-----)"
            ))
        };
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(&self.0) {
            cert.map_err(|e| invalid(format!("is not valid PEM ({e})")))?;
            count += 1;
        }
        if count == 0 {
            return Err(invalid("holds no certificate".into()));
        }
        Ok(())
    }

    /// `info` with this CA as the only trusted root, if it is a `rediss://` address; other
    /// addresses are returned unchanged. Discovered cluster masters inherit it from their seed.
    pub(crate) fn apply(
        &self,
        info: redis::ConnectionInfo,
    ) -> Result<redis::ConnectionInfo, LockError> {
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Ok(info);
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(self.0.clone()),
        };
        let client = redis::Client::build_with_tls(info, certificates)
            .map_err(|e| LockError::InvalidConfig(format!("the TLS root CA was refused: {e}")))?;
        Ok(client.get_connection_info().clone())
    }
}

/// `infos` with the CA of [`LockConfig::tls_root_ca`](crate::LockConfig::tls_root_ca), if
/// one was given, as the only trusted root of their `rediss://` addresses.
pub(crate) fn with_root_ca(
    infos: Vec<redis::ConnectionInfo>,
    config: &crate::LockConfig,
) -> Result<Vec<redis::ConnectionInfo>, LockError> {
    match config.tls_root_ca_value() {
        Some(ca) => {
            ca.validate()?;
            infos.into_iter().map(|info| ca.apply(info)).collect()
        }
        None => Ok(infos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ca_must_hold_a_certificate() {
        assert!(RootCa::new(Vec::new()).validate().is_err());
        assert!(RootCa::new(b"not a pem".to_vec()).validate().is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(RootCa::new(broken.to_vec()).validate().is_err());
        assert_eq!(
            format!("{:?}", RootCa::new(vec![0; 7])),
            "RootCa(7 bytes of PEM)"
        );
    }

    #[test]
    fn installs_a_provider_only_when_none_is_installed() {
        // The unit-test process installs no provider of its own.
        ensure_crypto_provider();
        let first = CryptoProvider::get_default().expect("a provider after the call");
        ensure_crypto_provider();
        let second = CryptoProvider::get_default().expect("still one");
        assert!(std::sync::Arc::ptr_eq(first, second));
    }
}
