//! Who a client certificate says its holder is: Common Name = user, each Organization = a group,
//! as kube-apiserver's x509 authenticator reads it.

use crate::{PkiError, PkiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl CertIdentity {
    /// The identity in a (verified) DER certificate. A certificate without a Common Name names
    /// nobody and is refused, as Kubernetes refuses it.
    pub fn from_der(der: &[u8]) -> PkiResult<CertIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse {
            what: "the client certificate".into(),
            reason: e.to_string(),
        })?;
        let subject = cert.subject();
        let text = |attr: &x509_parser::x509::AttributeTypeAndValue| {
            attr.as_str()
                .map(str::to_string)
                .map_err(|e| PkiError::Parse {
                    what: "the client certificate's subject".into(),
                    reason: e.to_string(),
                })
        };
        let user = match subject.iter_common_name().next() {
            Some(cn) => text(cn)?,
            None => String::new(),
        };
        if user.is_empty() {
            return Err(PkiError::Parse {
                what: "the client certificate".into(),
                reason: "its subject has no Common Name (the user name)".into(),
            });
        }
        let groups = subject
            .iter_organization()
            .map(text)
            .collect::<PkiResult<Vec<_>>>()?;
        Ok(CertIdentity { user, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, CertRequest};

    #[test]
    fn user_and_group_come_from_the_subject() {
        let ca = Authority::generate("test-ca").unwrap();
        let issued = ca
            .issue(&CertRequest::client("system:node:n1", Some("system:nodes")))
            .unwrap();
        let der = crate::pem::certificates(&issued.cert_pem, "cert").unwrap();
        assert_eq!(
            CertIdentity::from_der(&der[0]).unwrap(),
            CertIdentity {
                user: "system:node:n1".into(),
                groups: vec!["system:nodes".into()],
            }
        );
    }
}
