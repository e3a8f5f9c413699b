//! TLS for test servers: a throwaway CA and a server certificate it signs, made with `rcgen` at
//! run time (so no key material lives in the repository), and the redis.conf lines that use
//! them.
//!
//! A TLS node listens with TLS on its [`tls_port`](crate::RedisServer::tls_port) and keeps its
//! plain port too, bound to 127.0.0.1 like everything here, for the harness's own readiness
//! checks and admin commands; a client under test uses only the `rediss://` URL.

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::HarnessError;

/// The names the server certificate is valid for: loopback only.
pub const TLS_SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A freshly generated CA and a server certificate it signed for [`TLS_SERVER_NAMES`], in PEM.
///
/// Cheap to clone; every TLS node writes its own copy of the files into its directory.
///
/// ```no_run
/// use redlock_harness::{Standalone, TlsFiles};
///
/// # fn main() -> Result<(), redlock_harness::HarnessError> {
/// let tls = TlsFiles::generate()?;
/// let masters = Standalone::start_tls(3, &tls)?;
/// let urls = masters.tls_urls(); // rediss://127.0.0.1:<tls port>
/// let ca = tls.ca_pem(); // give this to the client as its root CA
/// # let _ = (urls, ca);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsFiles {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("names", &TLS_SERVER_NAMES)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Generates a new CA (ECDSA P-256) and a server certificate it signed for
    /// [`TLS_SERVER_NAMES`]. Two calls give two unrelated CAs, so one can serve as the wrong
    /// CA for the other's servers.
    ///
    /// # Errors
    /// [`HarnessError::Certificate`] if `rcgen` fails.
    pub fn generate() -> Result<Self, HarnessError> {
        let cert_err = |step: &str| {
            let step = step.to_owned();
            move |e: rcgen::Error| HarnessError::Certificate {
                detail: format!("{step}: {e}"),
            }
        };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_err("CA parameters"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "redlock-harness test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(cert_err("CA key"))?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(cert_err("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = TLS_SERVER_NAMES.iter().map(|&n| n.to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(cert_err("server parameters"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "redlock-harness test server");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(cert_err("server key"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(cert_err("server certificate"))?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate (PEM): the root a client verifies the servers against.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM), signed by [`ca_pem`](Self::ca_pem).
    #[must_use]
    pub fn server_cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `tls-ca.crt`, `tls-server.crt` and `tls-server.key` into `dir` and returns the
    /// redis.conf lines that serve TLS on `tls_port` with them (no client certificates asked).
    pub(crate) fn install(&self, dir: &Path, tls_port: u16) -> Result<String, HarnessError> {
        let mut conf = format!("tls-port {tls_port}\ntls-auth-clients no\n");
        for (directive, file, pem) in [
            ("tls-ca-cert-file", "tls-ca.crt", &self.ca_pem),
            ("tls-cert-file", "tls-server.crt", &self.cert_pem),
            ("tls-key-file", "tls-server.key", &self.key_pem),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, pem)
                .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
            conf.push_str(&format!(
                "{directive} {}\n",
                super::config::quote(&path.to_string_lossy())
            ));
        }
        Ok(conf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_distinct_cas_and_writes_the_config() {
        let a = TlsFiles::generate().unwrap();
        let b = TlsFiles::generate().unwrap();
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.ca_pem(), b.ca_pem());
        assert!(!format!("{a:?}").contains("PRIVATE"));
        let dir = std::env::temp_dir().join(format!("redlock-harness-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = a.install(&dir, 20123).unwrap();
        assert!(conf.starts_with("tls-port 20123\ntls-auth-clients no\n"));
        let key = std::fs::read_to_string(dir.join("tls-server.key")).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
