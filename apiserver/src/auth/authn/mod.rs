//! Authentication: who a request comes from. As kube-apiserver's union of authenticators: a
//! verified client certificate (`x509`), else a bearer token (the static token file,
//! ServiceAccount JWTs, bootstrap tokens). A token that no authenticator accepts is a 401, as
//! is a request with no credentials outside the public paths.

pub mod bootstrap_token;
pub mod jwt;
pub mod service_account;
pub mod token_file;

use axum::http::{header, HeaderMap};
use futures::future::BoxFuture;

use crate::auth::user::UserInfo;
use skiff_component::https::Connection;
use token_file::TokenFile;

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("the client certificate names no user: {0}")]
    Certificate(String),
    #[error("invalid bearer token")]
    InvalidToken,
}

/// The configured authenticators.
#[derive(Default)]
pub struct Authenticator {
    pub token_file: Option<TokenFile>,
    pub token_authenticators: Vec<Box<dyn TokenAuthenticator>>,
}

/// One kind of bearer token (ServiceAccount JWTs, bootstrap tokens). `None`: not this kind,
/// or not valid.
pub trait TokenAuthenticator: Send + Sync {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<UserInfo>>;
}

impl Authenticator {
    /// The user a request comes from; `Ok(None)` when it carries no credentials at all.
    pub async fn authenticate(
        &self,
        connection: Option<&Connection>,
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, AuthnError> {
        if let Some(cert) = connection.and_then(|c| c.certificate.as_ref()) {
            return match cert {
                Ok(identity) => Ok(Some(
                    UserInfo::new(identity.user.clone(), identity.groups.clone()).authenticated(),
                )),
                Err(e) => Err(AuthnError::Certificate(e.clone())),
            };
        }
        let Some(token) = bearer_token(headers) else {
            return Ok(None);
        };
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.user(token)) {
            return Ok(Some(user.clone()));
        }
        for authenticator in &self.token_authenticators {
            if let Some(user) = authenticator.authenticate(token).await {
                return Ok(Some(user));
            }
        }
        Err(AuthnError::InvalidToken)
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_pki::CertIdentity;

    fn connection(certificate: Option<Result<CertIdentity, String>>) -> Connection {
        Connection {
            peer: "127.0.0.1:1".parse().unwrap(),
            certificate,
        }
    }

    fn with_token(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn certificate_then_token_then_nothing() {
        let authn = Authenticator {
            token_file: Some(TokenFile::parse("t1,alice,1,dev").unwrap()),
            ..Default::default()
        };
        let cert = connection(Some(Ok(CertIdentity {
            user: "bob".into(),
            groups: vec!["ops".into()],
        })));
        let bob = authn
            .authenticate(Some(&cert), &HeaderMap::new())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((bob.name.as_str(), bob.groups.len()), ("bob", 2));
        let alice = authn
            .authenticate(Some(&connection(None)), &with_token("t1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.groups, ["dev", "system:authenticated"]);
        assert!(matches!(
            authn.authenticate(None, &with_token("nope")).await,
            Err(AuthnError::InvalidToken)
        ));
        assert_eq!(
            authn.authenticate(None, &HeaderMap::new()).await.unwrap(),
            None
        );
    }
}
