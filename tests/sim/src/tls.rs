//! The simulator's test TLS PKI: a generated CA and a server certificate for loopback.
//!
//! Contract: [`TestCa::generate`] makes a fresh ECDSA P-256 CA; [`TestCa::from_pem`] restores one
//! from its persisted PEM (so clients that trust it keep working after a restart);
//! [`TestCa::server_config`] issues a leaf for `localhost`, `127.0.0.1` and `::1` signed by the CA
//! and returns a rustls server configuration (ring provider, HTTP/1.1 ALPN for the media endpoint).
//! Clients are configured with [`TestCa::cert_pem`] (Node: `NODE_EXTRA_CA_CERTS`).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Building or using the test PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to generate or sign.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the generated material.
    #[error("rustls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A test certificate authority.
pub(crate) struct TestCa {
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// The CA's parameters. They are rebuilt identically on restore, which is all an [`Issuer`] needs.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "wasmeow-sim test CA (loopback only)");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl TestCa {
    /// A fresh CA.
    pub(crate) fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(Self {
            key,
            cert_pem: cert.pem(),
        })
    }

    /// Restores a CA from [`TestCa::key_pem`] and [`TestCa::cert_pem`].
    pub(crate) fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, TlsError> {
        Ok(Self {
            key: KeyPair::from_pem(key_pem)?,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM. Give this to clients.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (persisted with the state).
    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A rustls server configuration with a fresh leaf for the loopback names.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let issuer = Issuer::new(ca_params()?, &self.key);
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "wasmeow-sim");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|_| rustls::Error::General("CA PEM does not parse".into()))?;
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca_der];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_ca_issues_servers() {
        let ca = TestCa::generate().unwrap();
        let again = TestCa::from_pem(&ca.key_pem(), ca.cert_pem()).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        again.server_config().unwrap();
    }
}
