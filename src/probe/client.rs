//! HTTP clients for probes: one per distinct TLS setting, shared by every
//! backend with that setting, none keeping idle connections; and the verified
//! clients of OAuth 2.0 token endpoints, which never inherit a backend's
//! `dangerousSkipVerification` or client certificate. They share one caching
//! DNS resolver (`dns`) and one TLS session store (`tls_sessions`), scoped per
//! TLS setting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::dns::{Dns, DnsResolver, DnsSettings};
use super::tls_sessions::{self, SessionStore};
use crate::proto::v1::TlsSpec;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {field} {path:?}: {reason}")]
    File { field: &'static str, path: String, reason: String },
    #[error("invalid tls settings: {0}")]
    Tls(String),
    #[error("cannot build the http client: {0}")]
    Build(String),
}

/// Builds and caches probe clients keyed by TLS settings, so 10,000 backends
/// with default TLS share one root store instead of 10,000 copies.
pub struct ClientCache {
    clients: Mutex<HashMap<TlsKey, reqwest::Client>>,
    dns: Arc<Dns>,
    sessions: Arc<SessionStore>,
}

impl Default for ClientCache {
    /// The system's DNS configuration; link-local and metadata addresses refused.
    fn default() -> Self {
        ClientCache::new(false, &DnsSettings::default())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TlsKey(String, String, String, bool, bool, Purpose);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    Probe,
    /// A token endpoint: the client secret travels only over verified TLS.
    TokenEndpoint,
}

impl ClientCache {
    /// A cache whose clients resolve per `dns` and refuse link-local and
    /// metadata addresses unless `allow_link_local` (see `ssrf`).
    pub fn new(allow_link_local: bool, dns: &DnsSettings) -> ClientCache {
        ClientCache {
            clients: Mutex::default(),
            dns: Dns::new(dns, allow_link_local),
            sessions: SessionStore::new(tls_sessions::DEFAULT_CAPACITY),
        }
    }

    /// The resolver every client of this cache uses.
    pub fn dns(&self) -> Arc<Dns> {
        self.dns.clone()
    }

    /// The TLS session store every client of this cache uses.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The probe client for a backend's TLS settings. Blocking on a cache
    /// miss (reads the CA and key files): call it off the async workers.
    pub fn client_for(&self, tls: Option<&TlsSpec>) -> Result<reqwest::Client, ClientError> {
        let tls = tls.cloned().unwrap_or_default();
        let key = TlsKey(
            tls.ca_file.clone(),
            tls.client_cert_file.clone(),
            tls.client_key_file.clone(),
            tls.dangerous_skip_verification,
            tls.resumption.unwrap_or(true),
            Purpose::Probe,
        );
        self.cached(key, |resumption| tls_config(&tls, resumption))
    }

    /// The client for the OAuth 2.0 token endpoint of a backend with these
    /// TLS settings: it verifies the endpoint against the webpki roots plus
    /// the backend's `caFile`, whatever `dangerousSkipVerification` says, and
    /// presents no client certificate. Blocking on a cache miss, like [`Self::client_for`].
    pub fn token_client_for(&self, tls: Option<&TlsSpec>) -> Result<reqwest::Client, ClientError> {
        let ca_file = tls.map(|t| t.ca_file.clone()).unwrap_or_default();
        let key = TlsKey(ca_file.clone(), String::new(), String::new(), false, true, Purpose::TokenEndpoint);
        self.cached(key, |resumption| {
            let mut config = token_tls_config(&ca_file)?;
            config.resumption = resumption;
            Ok(config)
        })
    }

    fn cached(
        &self,
        key: TlsKey,
        config: impl FnOnce(rustls::client::Resumption) -> Result<rustls::ClientConfig, ClientError>,
    ) -> Result<reqwest::Client, ClientError> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        // Each TLS setting resumes only its own sessions. Scope ids are never
        // reused: the map only grows (one entry per distinct setting).
        let scope = u32::try_from(clients.len()).unwrap_or(u32::MAX);
        let resumption = if key.4 {
            rustls::client::Resumption::store(self.sessions.scope(scope))
        } else {
            rustls::client::Resumption::disabled()
        };
        let client = build_client(config(resumption)?, &self.dns)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn read_file(field: &'static str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        field,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Adds the certificates of a PEM CA file to `roots`.
fn add_ca_file(roots: &mut rustls::RootCertStore, ca_file: &str) -> Result<(), ClientError> {
    let pem = read_file("caFile", ca_file)?;
    let before = roots.len();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ClientError::Tls(format!("caFile: {e}")))?;
        roots.add(cert).map_err(|e| ClientError::Tls(format!("caFile: {e}")))?;
    }
    if roots.len() == before {
        return Err(ClientError::Tls("caFile holds no certificate".into()));
    }
    Ok(())
}

/// The TLS settings of a token endpoint's client: always verified.
fn token_tls_config(ca_file: &str) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ca_file.is_empty() {
        add_ca_file(&mut roots, ca_file)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_config(tls: &TlsSpec, resumption: rustls::client::Resumption) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = if tls.dangerous_skip_verification {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(danger::AcceptAnyCert(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if tls.ca_file.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            add_ca_file(&mut roots, &tls.ca_file)?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = if tls.client_cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let pem = read_file("clientCertFile", &tls.client_cert_file)?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Tls(format!("clientCertFile: {e}")))?;
        let key_pem = read_file("clientKeyFile", &tls.client_key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ClientError::Tls(format!("clientKeyFile: {e}")))?;
        builder.with_client_auth_cert(chain, key).map_err(|e| ClientError::Tls(e.to_string()))?
    };
    // Probes speak HTTP/1.1 only: no connection multiplexing between probes.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = resumption;
    Ok(config)
}

fn build_client(tls: rustls::ClientConfig, dns: &Arc<Dns>) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .dns_resolver(DnsResolver(dns.clone()))
        .tls_backend_preconfigured(tls)
        // No idle connections: each probe gets a fresh TCP (and TLS) connection,
        // so a backend probed before it was up recovers at the next probe.
        // (A resumed TLS session carries keys, never a connection or HTTP state.)
        .pool_max_idle_per_host(0)
        .http1_only()
        // Redirects are classified, never followed; proxies from the environment never apply.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .user_agent(concat!("mcp-health/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

mod danger {
    //! The verifier behind `dangerousSkipVerification`: accepts any certificate.

    use std::sync::Arc;

    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub struct AcceptAnyCert(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
