//! HTTP clients for probes: one per distinct TLS setting and content of its
//! files, shared by every backend with that setting, none keeping idle
//! connections; and the verified clients of OAuth 2.0 token endpoints, which
//! never inherit a backend's `dangerousSkipVerification` or client
//! certificate. They share one caching DNS resolver (`dns`) and one TLS
//! session store (`tls_sessions`), scoped per client.
//!
//! A backend holds a `ClientHandle`; before each probe `refresh` stats its
//! TLS files and, when one changed (rewritten, replaced, a symlink swapped),
//! takes the client built from them as they are now. The cache holds clients
//! weakly: one no backend uses any more is dropped at the next build; and it
//! holds at most `MAX_CACHED_CLIENTS`, the least recently used forgotten
//! first (its backends keep it; new backends get a client of their own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::dns::{Dns, DnsResolver, DnsSettings};
use super::tls_sessions::{self, SessionStore};
use mcp_health_proto::v1::TlsSpec;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {field} {path:?}: {reason}")]
    File { field: &'static str, path: String, reason: String },
    #[error("invalid tls settings: {0}")]
    Tls(String),
    #[error("cannot build the http client: {0}")]
    Build(String),
}

/// Most clients a [`ClientCache`] keeps for sharing. Each distinct TLS
/// setting (and version of its files) is one; past the cap the least
/// recently used is forgotten: the backends holding it keep it, and a new
/// backend with that setting gets a client of its own.
pub const MAX_CACHED_CLIENTS: usize = 1024;

/// Builds and caches probe clients keyed by TLS settings and the stamps of
/// their files, so 10,000 backends with default TLS share one root store
/// instead of 10,000 copies, and a rotated file gets a client of its own.
pub struct ClientCache {
    clients: Mutex<Clients>,
    dns: Arc<Dns>,
    sessions: Arc<SessionStore>,
    /// At most this many entries in `Clients::built`.
    capacity: usize,
}

#[derive(Default)]
struct Clients {
    /// Held weakly: the handles own the clients; dead entries are pruned on
    /// every build. Each with when it was last built or handed out, in
    /// `tick`s: the least recently used goes first past the cap.
    built: HashMap<TlsKey, (Weak<Built>, u64)>,
    /// Counts builds and hits: the order of use, without reading a clock.
    tick: u64,
    /// The session store scope of the next client. Never reused, so a new
    /// client (a rotated CA) never resumes a session its predecessor made.
    next_scope: u32,
}

/// One client and the stamps of the files it was built from.
struct Built {
    client: reqwest::Client,
    stamps: Stamps,
}

/// What tells a file's versions apart without reading it: a file rewritten in
/// place changes its size or modification (or change) time; one replaced by
/// a rename or a symlink swap (Kubernetes secrets) is another inode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let (device, inode, changed) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino(), (metadata.ctime(), metadata.ctime_nsec()))
        };
        // Elsewhere the size and modification time alone tell versions apart.
        #[cfg(not(unix))]
        let (device, inode, changed) = (0, 0, (0, 0));
        FileStamp {
            device,
            inode,
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed,
        }
    }
}

/// The stamps of a setting's files, in `TlsSettings::files` order.
type Stamps = Vec<FileStamp>;

/// A backend's probe client (or its token endpoint's), re-checked against
/// its TLS files by [`ClientHandle::refresh`]. Cheap to clone.
#[derive(Clone)]
pub struct ClientHandle(Arc<HandleInner>);

struct HandleInner {
    cache: Arc<ClientCache>,
    settings: TlsSettings,
    current: Mutex<Arc<Built>>,
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle").field("files", &self.0.settings.files()).finish()
    }
}

impl ClientHandle {
    fn current(&self) -> Arc<Built> {
        self.0.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The client as last refreshed.
    pub fn client(&self) -> reqwest::Client {
        self.current().client.clone()
    }

    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.current().client.get(url)
    }

    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.current().client.post(url)
    }

    pub fn delete(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.current().client.delete(url)
    }

    /// Takes the client of the TLS files as they are now, if one changed
    /// since the current client was built (a stat per file; files are read
    /// and the client built on a blocking thread, only after a change).
    /// A file that cannot be read or parsed any more is an error.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let files = self.0.settings.files();
        if files.is_empty() {
            return Ok(());
        }
        let mut stamps = Vec::with_capacity(files.len());
        for (field, path) in files {
            let metadata = tokio::fs::metadata(path).await.map_err(|e| file_error(field, path, &e))?;
            stamps.push(FileStamp::of(&metadata));
        }
        if stamps == self.current().stamps {
            return Ok(());
        }
        let inner = self.0.clone();
        let built = tokio::task::spawn_blocking(move || inner.cache.built(&inner.settings))
            .await
            .map_err(|_| ClientError::Build("the runtime is shutting down".into()))??;
        *self.0.current.lock().unwrap_or_else(PoisonError::into_inner) = built;
        // The client it replaced goes now, unless another backend still holds it.
        ClientCache::prune(&mut self.0.cache.lock());
        Ok(())
    }
}

impl Default for ClientCache {
    /// The system's DNS configuration; link-local and metadata addresses refused.
    fn default() -> Self {
        ClientCache::new(false, &DnsSettings::default())
    }
}

/// A client's TLS settings as the spec gives them (files by path).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TlsSettings {
    ca_file: String,
    client_cert_file: String,
    client_key_file: String,
    skip_verification: bool,
    resumption: bool,
    purpose: Purpose,
}

impl TlsSettings {
    /// The files the client is built from, by field name.
    fn files(&self) -> Vec<(&'static str, &str)> {
        [
            ("caFile", &self.ca_file),
            ("clientCertFile", &self.client_cert_file),
            ("clientKeyFile", &self.client_key_file),
        ]
        .into_iter()
        .filter(|(_, path)| !path.is_empty())
        .map(|(field, path)| (field, path.as_str()))
        .collect()
    }
}

/// A cached client: its settings and the stamps of its files when built.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TlsKey(TlsSettings, Stamps);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
            capacity: MAX_CACHED_CLIENTS,
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

    /// How many clients are cached (for tests): those some backend holds,
    /// until the next build or refresh drops the others.
    pub fn len(&self) -> usize {
        self.lock().built.len()
    }

    /// Drops the clients no backend holds any more (removed, or replaced by a rotation).
    fn prune(clients: &mut Clients) {
        clients.built.retain(|_, (c, _)| c.strong_count() > 0);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The probe client for a backend's TLS settings. Blocking on a cache
    /// miss (reads the CA and key files): call it off the async workers.
    pub fn client_for(self: &Arc<Self>, tls: Option<&TlsSpec>) -> Result<ClientHandle, ClientError> {
        let tls = tls.cloned().unwrap_or_default();
        self.handle(TlsSettings {
            ca_file: tls.ca_file,
            client_cert_file: tls.client_cert_file,
            client_key_file: tls.client_key_file,
            skip_verification: tls.dangerous_skip_verification,
            resumption: tls.resumption.unwrap_or(true),
            purpose: Purpose::Probe,
        })
    }

    /// The client for the OAuth 2.0 token endpoint of a backend with these
    /// TLS settings: it verifies the endpoint against the webpki roots plus
    /// the backend's `caFile`, whatever `dangerousSkipVerification` says, and
    /// presents no client certificate. Blocking on a cache miss, like [`Self::client_for`].
    pub fn token_client_for(self: &Arc<Self>, tls: Option<&TlsSpec>) -> Result<ClientHandle, ClientError> {
        self.handle(TlsSettings {
            ca_file: tls.map(|t| t.ca_file.clone()).unwrap_or_default(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            skip_verification: false,
            resumption: true,
            purpose: Purpose::TokenEndpoint,
        })
    }

    fn handle(self: &Arc<Self>, settings: TlsSettings) -> Result<ClientHandle, ClientError> {
        let built = self.built(&settings)?;
        Ok(ClientHandle(Arc::new(HandleInner {
            cache: self.clone(),
            settings,
            current: Mutex::new(built),
        })))
    }

    /// The client of `settings` with its files as they are now: the cached
    /// one if they have not changed, else a new one. Blocking (stats, and
    /// reads the files on a miss).
    fn built(&self, settings: &TlsSettings) -> Result<Arc<Built>, ClientError> {
        // Stamped before reading: a file that changes while it is read gets
        // an older stamp, so the next refresh builds again (never the reverse).
        let stamps = settings
            .files()
            .into_iter()
            .map(|(field, path)| std::fs::metadata(path).map(|m| FileStamp::of(&m)).map_err(|e| file_error(field, path, &e)))
            .collect::<Result<Stamps, _>>()?;
        let key = TlsKey(settings.clone(), stamps.clone());
        let mut clients = self.lock();
        clients.tick += 1;
        let tick = clients.tick;
        if let Some((weak, last_used)) = clients.built.get_mut(&key)
            && let Some(c) = weak.upgrade()
        {
            *last_used = tick;
            return Ok(c);
        }
        let scope = clients.next_scope;
        clients.next_scope = clients.next_scope.wrapping_add(1);
        let resumption = if settings.resumption {
            rustls::client::Resumption::store(self.sessions.scope(scope))
        } else {
            rustls::client::Resumption::disabled()
        };
        let config = match settings.purpose {
            Purpose::Probe => tls_config(settings, resumption)?,
            Purpose::TokenEndpoint => {
                let mut config = token_tls_config(&settings.ca_file)?;
                config.resumption = resumption;
                config
            }
        };
        let built = Arc::new(Built {
            client: build_client(config, &self.dns)?,
            stamps,
        });
        ClientCache::prune(&mut clients);
        while clients.built.len() >= self.capacity {
            let Some(oldest) = clients.built.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            clients.built.remove(&oldest);
        }
        clients.built.insert(key, (Arc::downgrade(&built), tick));
        Ok(built)
    }
}

fn file_error(field: &'static str, path: &str, e: &std::io::Error) -> ClientError {
    ClientError::File {
        field,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_file(field: &'static str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| file_error(field, path, &e))
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

fn tls_config(tls: &TlsSettings, resumption: rustls::client::Resumption) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = if tls.skip_verification {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS setting without files, by name: each is a client of its own.
    fn take(cache: &Arc<ClientCache>, name: &str) -> ClientHandle {
        let tls = |skip: bool, resumption: bool| TlsSpec {
            dangerous_skip_verification: skip,
            resumption: Some(resumption),
            ..TlsSpec::default()
        };
        match name {
            "default" => cache.client_for(None),
            "skip" => cache.client_for(Some(&tls(true, true))),
            "no-resumption" => cache.client_for(Some(&tls(false, false))),
            "skip-no-resumption" => cache.client_for(Some(&tls(true, false))),
            "token" => cache.token_client_for(None),
            other => panic!("no setting {other}"),
        }
        .expect("a client")
    }

    enum Step {
        /// A backend with this setting is built (and kept).
        Take(&'static str),
        /// Every backend with this setting is removed.
        Drop(&'static str),
    }

    /// Runs `steps` on a cache of `capacity`: how many entries it holds, and
    /// for each setting still held (sorted by name) whether a new backend
    /// would share its client.
    fn run(capacity: usize, steps: &[Step]) -> (usize, Vec<(&'static str, bool)>) {
        let cache = Arc::new(ClientCache {
            capacity,
            ..ClientCache::default()
        });
        let mut held: Vec<(&'static str, ClientHandle)> = Vec::new();
        for step in steps {
            match *step {
                Step::Take(name) => held.push((name, take(&cache, name))),
                Step::Drop(name) => held.retain(|(n, _)| *n != name),
            }
        }
        let clients = cache.lock();
        let mut shared: Vec<(&'static str, bool)> = held
            .iter()
            .map(|(name, h)| {
                let current = h.current();
                let key = TlsKey(h.0.settings.clone(), current.stamps.clone());
                let cached = clients.built.get(&key).and_then(|(w, _)| w.upgrade());
                (*name, cached.is_some_and(|c| Arc::ptr_eq(&c, &current)))
            })
            .collect();
        shared.sort_unstable();
        shared.dedup();
        (clients.built.len(), shared)
    }

    #[tokio::test]
    async fn the_client_cache_is_bounded_and_forgets_the_least_recently_used() {
        use Step::*;
        // (case, capacity, steps, entries held, whether each setting still held is shared)
        type Case = (&'static str, usize, Vec<Step>, usize, Vec<(&'static str, bool)>);
        let cases: Vec<Case> = vec![
            (
                "under the cap every setting is shared",
                3,
                vec![Take("default"), Take("skip"), Take("token")],
                3,
                vec![("default", true), ("skip", true), ("token", true)],
            ),
            (
                "at the cap the least recently built is forgotten, and its backends keep it",
                2,
                vec![Take("default"), Take("skip"), Take("token")],
                2,
                vec![("default", false), ("skip", true), ("token", true)],
            ),
            (
                "a setting handed out again is recently used",
                2,
                vec![Take("default"), Take("skip"), Take("default"), Take("token")],
                2,
                vec![("default", true), ("skip", false), ("token", true)],
            ),
            (
                "a client no backend holds goes first, before any eviction",
                2,
                vec![Take("default"), Take("skip"), Drop("skip"), Take("token")],
                2,
                vec![("default", true), ("token", true)],
            ),
            (
                "a forgotten setting taken again gets a client of its own, shared from then on",
                2,
                vec![Take("default"), Take("skip"), Take("token"), Drop("default"), Take("default")],
                2,
                vec![("default", true), ("skip", false), ("token", true)],
            ),
            (
                "a cache of one shares only the last setting",
                1,
                vec![Take("default"), Take("skip"), Take("no-resumption"), Take("skip-no-resumption")],
                1,
                vec![("default", false), ("no-resumption", false), ("skip", false), ("skip-no-resumption", true)],
            ),
        ];
        for (case, capacity, steps, want_len, want_shared) in cases {
            assert_eq!(run(capacity, &steps), (want_len, want_shared), "{case}");
        }
    }
}
