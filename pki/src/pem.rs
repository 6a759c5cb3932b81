//! PEM in and out: certificates and private keys as rustls takes them.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{PkiError, PkiResult};

/// Every certificate in a PEM bundle, in order (a chain, or a set of CAs).
pub fn certificates(pem: &str, what: &str) -> PkiResult<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Parse {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Parse {
            what: what.to_string(),
            reason: "no CERTIFICATE block in the PEM".into(),
        });
    }
    Ok(certs)
}

/// PEM text of DER certificates (what a kubeconfig's `certificate-authority-data` decodes to
/// arrives as DER through kube's client configuration).
pub fn encode_certificates(ders: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The first private key in a PEM document (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(pem: &str, what: &str) -> PkiResult<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Parse {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_certificates_parse_back() {
        let ca = crate::Authority::generate("test-ca").unwrap();
        let ders: Vec<Vec<u8>> = certificates(ca.cert_pem(), "ca")
            .unwrap()
            .into_iter()
            .map(|c| c.to_vec())
            .collect();
        let pem = encode_certificates(&ders);
        let again = certificates(&pem, "again").unwrap();
        assert_eq!(again[0].as_ref(), ders[0].as_slice());
    }
}
