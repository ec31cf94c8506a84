//! TLS of the gRPC server (rustls via tonic): the server identity from
//! `--tls-cert`/`--tls-key`, and optional client-certificate verification
//! against `--tls-client-ca` (mTLS). Client certificates are optional at the
//! handshake so read RPCs and grpc.health stay open; the admin guard requires
//! one for mutating RPCs.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    #[error("cannot read {flag} {path}")]
    Read {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {path} is not a usable PEM {what}: {reason}")]
    Parse {
        flag: &'static str,
        path: String,
        what: &'static str,
        reason: String,
    },
}

/// Reads on tokio's blocking pool, so a slow disk never stalls the runtime.
async fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path).await.map_err(|source| TlsError::Read {
        flag,
        path: path.display().to_string(),
        source,
    })
}

/// Checks that `pem` holds at least one certificate, naming the file if not.
fn certificates(flag: &'static str, path: &Path, pem: &[u8]) -> Result<(), TlsError> {
    let parse = |reason: String| TlsError::Parse {
        flag,
        path: path.display().to_string(),
        what: "certificate",
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| parse(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        Err(parse("no CERTIFICATE block found".to_owned()))
    } else {
        Ok(())
    }
}

impl ServerTls {
    /// Reads and parses the PEM files, naming the file that is unusable. tonic
    /// parses them again when the server is built.
    pub async fn config(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert = read("--tls-cert", &self.cert).await?;
        certificates("--tls-cert", &self.cert, &cert)?;
        let key = read("--tls-key", &self.key).await?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsError::Parse {
            flag: "--tls-key",
            path: self.key.display().to_string(),
            what: "private key",
            reason: e.to_string(),
        })?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            let pem = read("--tls-client-ca", ca).await?;
            certificates("--tls-client-ca", ca, &pem)?;
            config = config.client_ca_root(Certificate::from_pem(pem)).client_auth_optional(true);
        }
        Ok(config)
    }
}
