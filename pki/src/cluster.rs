//! The cluster's certificate directory, created on first start and reused after:
//!
//! ```text
//! ca.crt ca.key                         the cluster CA (clients trust ca.crt)
//! apiserver.crt apiserver.key           the apiserver's serving certificate
//! apiserver-kubelet-client.{crt,key}    the apiserver's identity towards agents' APIs
//! service-account.key                   signs ServiceAccount tokens
//! admin.kubeconfig                      system:admin in system:masters
//! scheduler.kubeconfig                  system:kube-scheduler
//! controllers.kubeconfig                system:kube-controller-manager
//! ```
//!
//! Private keys are written readable by their owner only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::kubeconfig::{self, Credentials};
use crate::{Authority, CertRequest, IssuedCert, PkiError, PkiResult};

pub const ADMIN_USER: &str = "system:admin";
pub const MASTERS_GROUP: &str = "system:masters";
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
pub const CONTROLLERS_USER: &str = "system:kube-controller-manager";
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
pub const NODES_GROUP: &str = "system:nodes";

/// A node's user name, as the Node authorizer expects it.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// The names the apiserver's serving certificate must cover.
#[derive(Debug, Clone, Default)]
pub struct ServingNames {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl ServingNames {
    /// `localhost`, `127.0.0.1`, the `kubernetes` Service's ClusterIP and DNS names, and
    /// whatever else the host is known by.
    pub fn for_apiserver(
        service_ip: IpAddr,
        cluster_domain: &str,
        extra_dns: &[String],
        extra_ips: &[IpAddr],
    ) -> ServingNames {
        let mut dns_names: Vec<String> = ["localhost", "kubernetes", "kubernetes.default"]
            .into_iter()
            .map(str::to_string)
            .collect();
        dns_names.push("kubernetes.default.svc".into());
        dns_names.push(format!("kubernetes.default.svc.{cluster_domain}"));
        dns_names.extend(extra_dns.iter().cloned());
        let mut ip_addresses = vec![IpAddr::from([127, 0, 0, 1]), service_ip];
        ip_addresses.extend(extra_ips.iter().copied());
        dns_names.dedup();
        ip_addresses.sort();
        ip_addresses.dedup();
        ServingNames {
            dns_names,
            ip_addresses,
        }
    }
}

/// The certificate directory, with its CA loaded.
pub struct ClusterPki {
    dir: PathBuf,
    authority: Authority,
}

impl ClusterPki {
    /// Load the directory, creating what is missing: the CA first, then the serving
    /// certificate (reissued when it does not cover `names`), the apiserver's agent client
    /// certificate, the ServiceAccount signing key and the components' kubeconfigs (whose
    /// server is `server_url`).
    pub fn ensure(dir: &Path, names: &ServingNames, server_url: &str) -> PkiResult<ClusterPki> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let pki = ClusterPki {
            dir: dir.to_path_buf(),
            authority: load_or_create_ca(dir)?,
        };
        let serving = pki.path("apiserver.crt");
        if !serving.exists() || !covers(&read(&serving)?, names)? {
            let cert = pki.authority.issue(&CertRequest::server(
                "kube-apiserver",
                names.dns_names.clone(),
                names.ip_addresses.clone(),
            ))?;
            pki.write_pair("apiserver", &cert)?;
        }
        if !pki.path("apiserver-kubelet-client.crt").exists() {
            let cert = pki.authority.issue(&CertRequest::client(
                KUBELET_CLIENT_USER,
                Some(MASTERS_GROUP),
            ))?;
            pki.write_pair("apiserver-kubelet-client", &cert)?;
        }
        if !pki.path("service-account.key").exists() {
            let key = rcgen::KeyPair::generate()?;
            write_private(&pki.path("service-account.key"), &key.serialize_pem())?;
        }
        for (file, user, group) in [
            ("admin.kubeconfig", ADMIN_USER, Some(MASTERS_GROUP)),
            ("scheduler.kubeconfig", SCHEDULER_USER, None),
            ("controllers.kubeconfig", CONTROLLERS_USER, None),
        ] {
            if !pki.path(file).exists() {
                let config = pki.kubeconfig_for(server_url, user, group)?;
                write_private(&pki.path(file), &config)?;
            }
        }
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn ca_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    /// The serving certificate and key.
    pub fn serving(&self) -> PkiResult<IssuedCert> {
        self.read_pair("apiserver")
    }

    /// The apiserver's client certificate towards agents.
    pub fn kubelet_client(&self) -> PkiResult<IssuedCert> {
        self.read_pair("apiserver-kubelet-client")
    }

    /// The PEM of the ServiceAccount token signing key.
    pub fn service_account_key(&self) -> PkiResult<String> {
        read(&self.path("service-account.key"))
    }

    /// A kubeconfig for `user` (in `group`) with a fresh client certificate.
    pub fn kubeconfig_for(
        &self,
        server_url: &str,
        user: &str,
        group: Option<&str>,
    ) -> PkiResult<String> {
        let cert = self.authority.issue(&CertRequest::client(user, group))?;
        Ok(kubeconfig::render(
            "skiff",
            server_url,
            self.ca_pem(),
            Credentials::Certificate(&cert),
        ))
    }

    fn write_pair(&self, name: &str, cert: &IssuedCert) -> PkiResult<()> {
        write_public(&self.path(&format!("{name}.crt")), &cert.cert_pem)?;
        write_private(&self.path(&format!("{name}.key")), &cert.key_pem)
    }

    fn read_pair(&self, name: &str) -> PkiResult<IssuedCert> {
        Ok(IssuedCert {
            cert_pem: read(&self.path(&format!("{name}.crt")))?,
            key_pem: read(&self.path(&format!("{name}.key")))?,
        })
    }
}

fn load_or_create_ca(dir: &Path) -> PkiResult<Authority> {
    let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if cert.exists() && key.exists() {
        return Authority::from_pem(&read(&cert)?, &read(&key)?);
    }
    let ca = Authority::generate("skiff-ca")?;
    write_private(&key, &ca.key_pem())?;
    write_public(&cert, ca.cert_pem())?;
    Ok(ca)
}

/// Whether the certificate's subject alternative names include every name in `names`.
fn covers(cert_pem: &str, names: &ServingNames) -> PkiResult<bool> {
    use x509_parser::extensions::GeneralName;
    let der = crate::pem::certificates(cert_pem, "the serving certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).map_err(|e| PkiError::Parse {
        what: "the serving certificate".into(),
        reason: e.to_string(),
    })?;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Ok(false);
    };
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes"))),
                16 => ips.push(IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).expect("16 bytes"),
                )),
                _ => {}
            },
            _ => {}
        }
    }
    Ok(names.dns_names.iter().all(|d| dns.contains(d))
        && names.ip_addresses.iter().all(|ip| ips.contains(ip)))
}

fn read(path: &Path) -> PkiResult<String> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, contents: &str) -> PkiResult<()> {
    write_mode(path, contents, 0o644)
}

fn write_private(path: &Path, contents: &str) -> PkiResult<()> {
    write_mode(path, contents, 0o600)
}

/// Write through a temporary file and rename, so a reader never sees half a key.
fn write_mode(path: &Path, contents: &str, mode: u32) -> PkiResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        ServingNames::for_apiserver(IpAddr::from([10, 96, 0, 1]), "cluster.local", &[], &[])
    }

    #[test]
    fn a_second_start_reuses_the_ca_and_reissues_only_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::ensure(dir.path(), &names(), "https://127.0.0.1:6443").unwrap();
        let serving = first.serving().unwrap().cert_pem;
        let again = ClusterPki::ensure(dir.path(), &names(), "https://127.0.0.1:6443").unwrap();
        assert_eq!(first.ca_pem(), again.ca_pem());
        assert_eq!(again.serving().unwrap().cert_pem, serving);

        let mut wider = names();
        wider.ip_addresses.push(IpAddr::from([192, 168, 1, 5]));
        let reissued = ClusterPki::ensure(dir.path(), &wider, "https://127.0.0.1:6443").unwrap();
        let new_serving = reissued.serving().unwrap().cert_pem;
        assert_ne!(new_serving, serving);
        assert!(covers(&new_serving, &wider).unwrap());
        assert!(!covers(&serving, &wider).unwrap());
    }

    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ClusterPki::ensure(dir.path(), &names(), "https://127.0.0.1:6443").unwrap();
        for file in [
            "ca.key",
            "apiserver.key",
            "service-account.key",
            "admin.kubeconfig",
        ] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is readable by others");
        }
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_for_rustls() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::ensure(dir.path(), &names(), "https://127.0.0.1:6443").unwrap();
        let roots = std::sync::Arc::new(crate::tls::root_store(pki.ca_pem(), "ca").unwrap());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots,
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let chain = crate::pem::certificates(&pki.serving().unwrap().cert_pem, "s").unwrap();
        for name in [
            "localhost",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ] {
            verifier
                .verify_server_cert(
                    &chain[0],
                    &[],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = ServerName::try_from("example.com").unwrap();
        assert!(verifier
            .verify_server_cert(&chain[0], &[], &other, &[], UnixTime::now())
            .is_err());
    }
}
