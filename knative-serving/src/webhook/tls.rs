//! Certificates for the webhook's HTTPS: from PEM files, or generated for given names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The PEM holds no certificate, or no valid one.
    #[error("no certificate in the PEM: {0}")]
    Certificate(String),
    /// The PEM holds no private key, or no valid one.
    #[error("no private key in the PEM: {0}")]
    Key(String),
    /// rustls refused the certificate and key (they do not match, say).
    #[error("unusable certificate and key: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
    /// A certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A server certificate and key, and the CA that signed it: register `ca_pem` as the
/// webhook's `caBundle`, serve with `cert_pem` and `key_pem`.
#[derive(Clone)]
pub struct SelfSigned {
    /// The CA certificate (PEM): the `caBundle` of the webhook configurations.
    pub ca_pem: String,
    /// The server certificate (PEM), valid for the names given.
    pub cert_pem: String,
    /// The server's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// The rustls configuration serving this certificate.
    ///
    /// # Errors
    /// Never in practice: the certificate and key were generated together.
    pub fn tls_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        tls_config(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// Generates a CA and a server certificate signed by it, valid for `names`: DNS names
/// (`knative-webhook.knative-serving.svc`) or IP addresses (`127.0.0.1`).
///
/// Each call makes a new CA, so a webhook that generates its certificate at start must
/// register the new `ca_pem` each time.
///
/// # Errors
/// When a name is neither a valid DNS name nor an IP address.
///
/// ```
/// let certs = knative_serving::webhook::self_signed(&["127.0.0.1", "localhost"]).unwrap();
/// assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// certs.tls_config().unwrap();
/// ```
pub fn self_signed(names: &[&str]) -> Result<SelfSigned, TlsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "knative-rs webhook CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut server = CertificateParams::new(names.clone())?;
    if let Some(first) = names.first() {
        server
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    Ok(SelfSigned {
        ca_pem: ca_cert.pem(),
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
}

/// A rustls server configuration for a certificate chain and private key in PEM (the server's
/// certificate first), speaking HTTP/1.1.
///
/// # Errors
/// When the PEM holds no certificate or no key, or they do not match.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    // The provider is named, not taken from the process default, which is ambiguous when
    // more than one is compiled in.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`tls_config`] from PEM files, such as a mounted `kubernetes.io/tls` Secret's `tls.crt`
/// and `tls.key`.
///
/// # Errors
/// When a file cannot be read, or as [`tls_config`].
pub fn load_tls_config(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    tls_config(&read(cert_path.as_ref())?, &read(key_path.as_ref())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_a_certificate_or_key_is_refused() {
        let certs = self_signed(&["localhost"]).unwrap();
        assert!(matches!(
            tls_config(b"", certs.key_pem.as_bytes()),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            tls_config(certs.cert_pem.as_bytes(), b"not a key"),
            Err(TlsError::Key(_))
        ));
        let other = self_signed(&["localhost"]).unwrap();
        assert!(matches!(
            tls_config(certs.cert_pem.as_bytes(), other.key_pem.as_bytes()),
            Err(TlsError::Rustls(_))
        ));
    }

    #[test]
    fn names_must_be_dns_names_or_addresses() {
        assert!(matches!(
            self_signed(&["bücher.example"]),
            Err(TlsError::Generate(_))
        ));
    }

    #[test]
    fn files_that_cannot_be_read_are_named() {
        let err = load_tls_config("/nonexistent/tls.crt", "/nonexistent/tls.key").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/tls.crt"),
            "{err}"
        );
    }
}
