//! Connection settings of `mcp-healthctl` (flags or environment variables):
//! the server address, TLS material and the admin token for mutating calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::CliError;
use crate::proto::grpc_health_v1::health_client::HealthClient;
use crate::proto::v1::group_health_service_client::GroupHealthServiceClient;

#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// Daemon address: http://HOST:PORT, https://HOST:PORT or HOST:PORT.
    #[arg(long, global = true, env = "MCP_HEALTH_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// PEM CA certificates to verify the server with (implies TLS); the
    /// built-in web roots otherwise, for https:// addresses.
    #[arg(long, global = true, env = "MCP_HEALTH_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (with --client-key).
    #[arg(long, global = true, env = "MCP_HEALTH_CLIENT_CERT", value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "MCP_HEALTH_CLIENT_KEY", value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Name to verify the server certificate against, if not the host of --server.
    #[arg(long, global = true, env = "MCP_HEALTH_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// File holding the admin token, sent as `authorization: Bearer` on apply, delete, probe, drain, undrain, catalog accept and report.
    #[arg(long, global = true, env = "MCP_HEALTH_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds to wait for the connection.
    #[arg(long, global = true, env = "MCP_HEALTH_CONNECT_TIMEOUT", default_value_t = 5.0, value_name = "SECONDS")]
    pub connect_timeout: f64,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

impl Connection {
    fn tls_wanted(&self) -> bool {
        self.server.starts_with("https://") || self.ca_cert.is_some() || self.client_cert.is_some()
    }

    /// The address as a URL, with a scheme added to a bare HOST:PORT.
    pub fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else if self.tls_wanted() {
            format!("https://{}", self.server)
        } else {
            format!("http://{}", self.server)
        }
    }

    fn endpoint(&self) -> Result<Endpoint, CliError> {
        let url = self.url();
        let timeout = Duration::try_from_secs_f64(self.connect_timeout)
            .map_err(|_| CliError::Usage(format!("--connect-timeout must be a positive number of seconds, not {}", self.connect_timeout)))?;
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| CliError::Usage(format!("bad --server {url:?}: {e}")))?
            .connect_timeout(timeout);
        if url.starts_with("https://") || self.tls_wanted() {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_cert {
                Some(path) => tls.ca_certificate(Certificate::from_pem(read(path, "--ca-cert")?)),
                None => tls.trust_anchors(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            };
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(read(cert, "--client-cert")?, read(key, "--client-key")?));
            }
            if let Some(name) = &self.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| CliError::Usage(format!("bad TLS settings: {e}")))?;
        }
        Ok(endpoint)
    }

    /// Connects now, so an unreachable server is told apart from a failed call.
    pub async fn channel(&self) -> Result<Channel, CliError> {
        let endpoint = self.endpoint()?;
        endpoint.connect().await.map_err(|e| {
            // tonic's transport error hides the cause (refused, TLS) in its source chain.
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if !reason.ends_with(&text) {
                    reason = format!("{reason}: {text}");
                }
                source = s.source();
            }
            CliError::Connect { server: self.url(), reason }
        })
    }

    pub async fn group_client(&self) -> Result<GroupHealthServiceClient<Channel>, CliError> {
        Ok(GroupHealthServiceClient::new(self.channel().await?))
    }

    pub async fn health_client(&self) -> Result<HealthClient<Channel>, CliError> {
        Ok(HealthClient::new(self.channel().await?))
    }

    /// Adds the admin token, when a token file is set. The token is never printed.
    pub fn authorize<T>(&self, mut req: tonic::Request<T>) -> Result<tonic::Request<T>, CliError> {
        let Some(path) = &self.token_file else { return Ok(req) };
        let raw = read(path, "--token-file")?;
        let token = String::from_utf8(raw).map_err(|_| CliError::Usage(format!("--token-file {} is not UTF-8", path.display())))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CliError::Usage(format!("--token-file {} is empty", path.display())));
        }
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| CliError::Usage(format!("--token-file {} holds characters not allowed in a header", path.display())))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}
