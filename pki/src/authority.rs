//! The cluster's certificate authority: a self-signed CA that issues every serving and client
//! certificate. Keys are ECDSA P-256 (fast to make and to verify; every client here takes them).

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::{PkiError, PkiResult};

/// How long the CA is valid (as k3s and kubeadm: ten years).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long issued certificates are valid by default (as k3s: one year).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start an hour in the past, so a host whose clock is a little behind accepts them.
const BACKDATE: Duration = Duration::from_secs(3600);

/// What a certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (the apiserver, an agent's API).
    Server,
    /// A TLS client (a user or a component calling the apiserver).
    Client,
}

/// One certificate to issue: a Kubernetes identity (user and group) and, for servers, the names
/// it answers to.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub common_name: String,
    /// The certificate's Organization: the user's group (skiff issues at most one; certificates
    /// made elsewhere may carry several, and all of them count).
    pub group: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub usage: Usage,
    pub valid_for: Duration,
}

impl CertRequest {
    pub fn client(user: &str, group: Option<&str>) -> CertRequest {
        CertRequest {
            common_name: user.to_string(),
            group: group.map(str::to_string),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: Usage::Client,
            valid_for: LEAF_VALIDITY,
        }
    }

    pub fn server(common_name: &str, dns_names: Vec<String>, ip_addresses: Vec<IpAddr>) -> Self {
        CertRequest {
            common_name: common_name.to_string(),
            group: None,
            dns_names,
            ip_addresses,
            usage: Usage::Server,
            valid_for: LEAF_VALIDITY,
        }
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA: its certificate (handed to every client and server) and its signing key.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> PkiResult<Authority> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA a previous run wrote. Issuing reads the subject and key identifier from the CA
    /// certificate itself, so new certificates chain to exactly what clients trust.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> PkiResult<Authority> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Parse {
            what: "the CA key".into(),
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| PkiError::Parse {
            what: "the CA certificate".into(),
            reason: e.to_string(),
        })?;
        Ok(Authority {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issue one certificate with a fresh key.
    pub fn issue(&self, request: &CertRequest) -> PkiResult<IssuedCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name =
            distinguished_name(&request.common_name, request.group.as_deref());
        params.subject_alt_names = subject_alt_names(request)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match request.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, request.valid_for);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn distinguished_name(common_name: &str, group: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(group) = group {
        dn.push(DnType::OrganizationName, group);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn subject_alt_names(request: &CertRequest) -> PkiResult<Vec<SanType>> {
    let mut sans = Vec::new();
    for name in &request.dns_names {
        let name = name
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| PkiError::Parse {
                what: format!("DNS name {name:?}"),
                reason: e.to_string(),
            })?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(request.ip_addresses.iter().copied().map(SanType::IpAddress));
    Ok(sans)
}

fn set_validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A positive 16-byte serial, unique with overwhelming probability (RFC 5280 asks for at most
/// 20 bytes and uniqueness per CA).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring_fill(&mut bytes);
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn ring_fill(bytes: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(bytes)
        .expect("the system random number generator works");
}
