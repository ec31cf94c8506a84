//! TLS of the gRPC server (rustls via tonic): the server identity from
//! `--tls-cert`/`--tls-key`, and optional client-certificate verification
//! against `--tls-client-ca` (mTLS). Client certificates are optional at the
//! handshake so read RPCs and grpc.health stay open; the admin guard requires
//! one for mutating RPCs.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Files of the server's TLS setup.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle that signs client certificates; enables mTLS for mutations.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {reason}")]
    Read { flag: &'static str, path: String, reason: String },
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        flag,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl ServerTls {
    /// Reads the PEM files; tonic parses them when the server is built.
    pub fn config(&self) -> Result<ServerTlsConfig, TlsError> {
        let identity = Identity::from_pem(read("--tls-cert", &self.cert)?, read("--tls-key", &self.key)?);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read("--tls-client-ca", ca)?))
                .client_auth_optional(true);
        }
        Ok(config)
    }
}
