//! Client bootstrap: the same `--kubeconfig` / `--server` flags on every binary.

use std::path::PathBuf;

/// How a component reaches the apiserver. Flatten it into a binary's clap arguments.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClientArgs {
    /// kubeconfig file to reach the apiserver (default: $KUBECONFIG, ~/.kube/config or in-cluster)
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// apiserver URL (e.g. http://127.0.0.1:6443); overrides the kubeconfig's server
    #[arg(long, alias = "master", env = "SKIFF_APISERVER")]
    pub server: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {url:?} is not a valid URL: {source}")]
    InvalidServer {
        url: String,
        source: http::uri::InvalidUri,
    },
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("inferring the client configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("building the client: {0}")]
    Build(#[from] kube::Error),
}

/// Where the client configuration comes from, decided from the flags alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// Only a server URL: no credentials (the local insecure port).
    Server(&'a str),
    /// A kubeconfig file, its server optionally overridden.
    Kubeconfig(&'a std::path::Path, Option<&'a str>),
    /// kube's default inference ($KUBECONFIG, ~/.kube/config, in-cluster), server optionally
    /// overridden.
    Infer,
}

impl ClientArgs {
    /// `--server` wins over the kubeconfig's server; credentials come from `--kubeconfig` when
    /// given; with neither flag, kube's default inference applies.
    pub fn source(&self) -> Source<'_> {
        match (&self.kubeconfig, &self.server) {
            (Some(path), server) => Source::Kubeconfig(path, server.as_deref()),
            (None, Some(server)) => Source::Server(server),
            (None, None) => Source::Infer,
        }
    }

    /// The kube client configuration these flags describe.
    pub async fn config(&self) -> Result<kube::Config, ClientError> {
        let (mut config, server) = match self.source() {
            Source::Server(url) => (kube::Config::new(parse_url(url)?), None),
            Source::Kubeconfig(path, server) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                    ClientError::Kubeconfig {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|source| ClientError::Kubeconfig {
                        path: path.to_path_buf(),
                        source,
                    })?;
                (config, server)
            }
            Source::Infer => (kube::Config::infer().await?, None),
        };
        if let Some(url) = server {
            config.cluster_url = parse_url(url)?;
        }
        Ok(config)
    }

    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }
}

fn parse_url(url: &str) -> Result<http::Uri, ClientError> {
    url.parse().map_err(|source| ClientError::InvalidServer {
        url: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    #[test]
    fn master_is_an_alias_of_server() {
        let cli = Cli::parse_from(["x", "--master", "http://a:1"]);
        assert_eq!(cli.client.server.as_deref(), Some("http://a:1"));
        let cli = Cli::parse_from(["x", "--server", "http://b:2"]);
        assert_eq!(cli.client.server.as_deref(), Some("http://b:2"));
    }

    #[test]
    fn server_overrides_the_kubeconfig() {
        let cli = Cli::parse_from(["x", "--kubeconfig", "/k", "--server", "http://b:2"]);
        assert_eq!(
            cli.client.source(),
            Source::Kubeconfig(std::path::Path::new("/k"), Some("http://b:2"))
        );
    }

    #[tokio::test]
    async fn a_server_alone_needs_no_kubeconfig() {
        let args = ClientArgs {
            kubeconfig: None,
            server: Some("http://127.0.0.1:6443".into()),
        };
        let config = args.config().await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "http://127.0.0.1:6443/");
        let bad = ClientArgs {
            kubeconfig: None,
            server: Some("not a url".into()),
        };
        assert!(matches!(
            bad.config().await,
            Err(ClientError::InvalidServer { .. })
        ));
    }
}
