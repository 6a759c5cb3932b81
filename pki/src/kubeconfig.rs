//! Kubeconfigs that embed the CA and a client certificate (or a token), so a file alone is
//! enough for kubectl, skiffctl, kube-rs and the official clients.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::IssuedCert;

/// How the kubeconfig's user proves who it is.
pub enum Credentials<'a> {
    Certificate(&'a IssuedCert),
    Token(&'a str),
}

/// A kubeconfig with one cluster, one user and one context, all named `context`.
pub fn render(context: &str, server: &str, ca_pem: &str, credentials: Credentials) -> String {
    let user = match credentials {
        Credentials::Certificate(cert) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(&cert.cert_pem),
            STANDARD.encode(&cert.key_pem)
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}
    namespace: default
current-context: {context}
users:
- name: {context}
  user:
{user}",
        ca = STANDARD.encode(ca_pem),
    )
}
