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

/// The first private key in a PEM document (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(pem: &str, what: &str) -> PkiResult<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Parse {
        what: what.to_string(),
        reason: e.to_string(),
    })
}
