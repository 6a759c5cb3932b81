//! rustls configurations for skiff's servers and clients, all on the ring provider.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::pem::{certificates, private_key};
use crate::PkiResult;

/// Whether a server asks clients for a certificate, and what it does without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates (the server authenticates some other way, or not at all).
    None,
    /// A certificate signed by the client CA is verified when sent; clients may instead send a
    /// bearer token (the apiserver).
    Optional,
    /// Only clients with a certificate signed by the client CA get through the handshake (an
    /// agent's API).
    Required,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA certificates in a PEM bundle as a trust store.
pub fn root_store(ca_pem: &str, what: &str) -> PkiResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, what)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A server presenting `cert_pem`/`key_pem`, speaking HTTP/2 and HTTP/1.1 (ALPN).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
    client_auth: ClientAuth,
) -> PkiResult<ServerConfig> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (client_auth, client_ca_pem) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let roots = Arc::new(root_store(ca, "the client CA")?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(
        certificates(cert_pem, "the serving certificate")?,
        private_key(key_pem, "the serving key")?,
    )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client trusting `ca_pem`, presenting `identity` (certificate and key PEM) when given.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> PkiResult<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(ca_pem, "the server CA")?);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            certificates(cert, "the client certificate")?,
            private_key(key, "the client key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client presenting `identity` that does not verify the server's certificate: how
/// kube-apiserver reaches kubelets unless `--kubelet-certificate-authority` is set (an agent's
/// serving certificate is self-signed). The connection is still encrypted and the server
/// still verifies the client. No ALPN protocols: the HTTP client sets them (hyper-rustls
/// insists on that).
pub fn client_config_unverified_server(identity: (&str, &str)) -> PkiResult<ClientConfig> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(
            certificates(identity.0, "the client certificate")?,
            private_key(identity.1, "the client key")?,
        )?;
    Ok(config)
}

/// Accepts any server certificate (signatures are still checked, so the handshake is sound).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
