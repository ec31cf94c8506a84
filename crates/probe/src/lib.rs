//! Probing one MCP backend over HTTP: the transport and protocol revision,
//! the probe's own credentials, bounded reading of replies, JSON-RPC checks and
//! classification into a `ProbeOutcome`.
//!
//! Map: `revision` picks and remembers the revision (Streamable HTTP), which
//! runs `streamable` (initialize, 2025 revisions) or `discover` (2026-07-28);
//! `legacy_sse` is the HTTP+SSE transport; `exchange` sends one JSON-RPC
//! message and reads its reply through `body`/`sse`/`jsonrpc`; `handshake`
//! is the finisher all three share (facts, then at depth TOOLS the catalog
//! and the synthetic checks of `checks`), so each transport implements only
//! its exchange; `credentials`
//! and `oauth2` supply the probe's own credentials (`oauth_discovery` finds a
//! token endpoint the spec leaves out); `resource_metadata` checks
//! RFC 9728 metadata after a 401; `classify` turns errors into reason codes.

mod body;
mod checks;
mod classify;
pub mod client;
mod credentials;
mod discover;
pub mod dns;
mod exchange;
mod handshake;
mod jsonrpc;
mod legacy_sse;
mod oauth2;
mod oauth_discovery;
mod resource_metadata;
pub mod retry_after;
mod revision;
pub mod sse;
/// The SSRF guard lives in the core (spec validation uses it too).
pub use mcp_health_core::ssrf;
mod streamable;
pub mod tls_sessions;

/// The parsers of untrusted replies that are private to the prober, opened
/// for the cargo-fuzz targets in fuzz/ only: not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::body::{EventReader, Framing, read_all, read_reply};
    pub use super::discover::read_result as read_discover_result;
    pub use super::exchange::{offers_tools, short_text, tools_page};
    pub use super::jsonrpc::{Message, parse as parse_jsonrpc};
    pub use super::resource_metadata::{MAX_METADATA_BYTES, allowed as metadata_url_allowed, challenge_url, valid as metadata_valid};
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use mcp_health_core::outcome::{OutcomeClass, ProbeOutcome, Reason, ServerFacts};
use mcp_health_core::spec::ValidBackend;
use mcp_health_proto::v1::{AuthMode, ProbeDepth, ReasonCode, ResourceMetadataState, Transport};

pub use client::{ClientCache, ClientError, ClientHandle};
pub use dns::{Dns, DnsSettings};
pub use oauth_discovery::TokenEndpoint;
pub use oauth2::TokenCache;

/// Default cap on the bytes one probe reads from a backend, per reply.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Everything needed to probe one backend. Built once per backend spec.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// The group the backend belongs to, for the probe's trace span.
    pub group: String,
    pub backend: ValidBackend,
    /// A client that never keeps idle connections, so every probe opens its
    /// own connection and no pooled state survives from one probe to the next.
    /// Refreshed before each probe: a rotated CA or client certificate is
    /// read again.
    pub client: ClientHandle,
    /// The resolver `client` uses: a probe whose connection failed makes it
    /// forget the host's answer.
    pub dns: Arc<Dns>,
    /// For OAuth 2.0 client-credentials backends: the verified client of the
    /// token endpoint (see [`ClientCache::token_client_for`]); None otherwise.
    pub token_client: Option<ClientHandle>,
    /// Alive as long as this target (and its clones): the token cache keeps a
    /// token only while a target that used it lives.
    pub(crate) alive: Arc<()>,
    /// A discovered endpoint's address (issue 23): every probe connects
    /// there, with the URL's host name in the Host header and TLS SNI.
    pub pin: Option<std::net::SocketAddr>,
}

impl ProbeTarget {
    /// A target with the clients its TLS settings and auth mode call for.
    /// Blocking (it may read CA and key files): the engine calls it off the
    /// async workers.
    pub fn new(group: &str, backend: ValidBackend, clients: &Arc<ClientCache>) -> Result<ProbeTarget, ClientError> {
        let tls = backend.spec.tls.as_ref();
        let client = clients.client_for(tls)?;
        let token_client = if backend.auth_mode == AuthMode::Oauth2ClientCredentials {
            Some(clients.token_client_for(tls)?)
        } else {
            None
        };
        Ok(ProbeTarget {
            group: group.to_owned(),
            backend,
            client,
            dns: clients.dns(),
            token_client,
            alive: Arc::new(()),
            pin: None,
        })
    }

    /// This target for one discovered endpoint: probes connect to `addr`
    /// (its port replaces the URL's, for SRV targets) and keep the host name.
    /// The probe memory stays the caller's to keep per endpoint.
    pub fn pinned_to(&self, addr: std::net::SocketAddr) -> ProbeTarget {
        let mut t = self.clone();
        // Cannot fail: a validated backend URL is http(s) with a host.
        let _ = t.backend.url.set_port(Some(addr.port()));
        t.pin = Some(addr);
        t
    }

    /// Looks up every address of this discovered backend now: its policy's
    /// SRV name, or else the URL's host with the URL's port (`Dns::discover`).
    pub async fn discover(&self) -> mcp_health_core::discovery::Lookup {
        let url = &self.backend.url;
        let name = match self.backend.discovery.as_ref().and_then(|d| d.srv.as_deref()) {
            Some(srv) => dns::DiscoverName::Srv(srv),
            None => dns::DiscoverName::Host {
                // A validated backend URL is http(s) with a host, so both are there.
                name: url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']'),
                port: url.port_or_known_default().unwrap_or(80),
            },
        };
        self.dns.discover(name).await
    }

    /// Takes the clients of the TLS files as they are now (see [`ClientHandle::refresh`]).
    async fn refresh_clients(&self) -> Result<(), ClientError> {
        self.client.refresh().await?;
        if let Some(token_client) = &self.token_client {
            token_client.refresh().await?;
        }
        Ok(())
    }
}

/// What a prober learns and keeps across probes of one backend.
#[derive(Clone, Debug, Default)]
pub struct ProbeMemory {
    /// The protocol revision detected on an earlier probe: "2026-07-28" for the
    /// stateless revision, else the version the last `initialize` negotiated.
    /// Kept until the backend's answer refutes it.
    pub detected_revision: Option<String>,
    /// At depth TOOLS: when the tool catalog is due to be read again (the
    /// policy's `catalogInterval` after the last read, or sooner by the
    /// `ttlMs` it carried). None: read it at the next probe.
    pub catalog_due: Option<Instant>,
    /// The last whole tool catalog read, against which every probe until the
    /// next read judges the required tools (`engine::scheduler::probe_once`).
    pub catalog: Option<Arc<mcp_health_core::catalog::Catalog>>,
    /// The last catalog read whose fingerprint the backend's BLOCK policy
    /// accepts: what a refused catalog is diffed against.
    pub accepted_catalog: Option<Arc<mcp_health_core::catalog::Catalog>>,
    /// Synthetic checks that ran, by their index in the backend's spec: when
    /// each is due again and how it last ended. Every probe until a check's
    /// next run is judged by its last result (`engine::scheduler::probe_once`).
    pub checks: std::collections::BTreeMap<usize, CheckMemory>,
    /// The token endpoint discovered for an OAuth client-credentials backend
    /// without a `tokenUrl`, with the backend URL it was discovered for.
    pub token_endpoint: Option<(url::Url, TokenEndpoint)>,
}

/// How a synthetic check last ended, and when it runs again.
#[derive(Clone, Debug)]
pub struct CheckMemory {
    pub due: Instant,
    /// None: it passed.
    pub failure: Option<mcp_health_core::check::CheckFailure>,
}

/// The outcome of a probe and how long the readiness call took.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub outcome: ProbeOutcome,
    pub latency: Duration,
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeReport> + Send + 'a>>;

/// Something that can probe a backend. The engine holds an `Arc<dyn Probe>`,
/// so scheduler tests can script outcomes without a network.
pub trait Probe: Send + Sync + 'static {
    /// Probes `target`, finishing by `deadline`.
    fn probe<'a>(&'a self, target: &'a ProbeTarget, memory: &'a mut ProbeMemory, deadline: Instant) -> ProbeFuture<'a>;

    /// Resolves a discovered backend's name now (issue 23): the real prober
    /// asks the target's resolver ([`ProbeTarget::discover`]); engine tests
    /// script the answers here, beside the probes.
    fn discover<'a>(&'a self, target: &'a ProbeTarget) -> DiscoverFuture<'a> {
        Box::pin(target.discover())
    }
}

pub type DiscoverFuture<'a> = Pin<Box<dyn Future<Output = mcp_health_core::discovery::Lookup> + Send + 'a>>;

/// The real prober: MCP over HTTP(S).
#[derive(Clone, Debug)]
pub struct HttpProber {
    pub max_response_bytes: usize,
    /// OAuth 2.0 client-credentials tokens, shared by every backend that uses
    /// the same token endpoint and client.
    pub tokens: Arc<TokenCache>,
}

impl Default for HttpProber {
    fn default() -> Self {
        HttpProber {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tokens: Arc::default(),
        }
    }
}

impl HttpProber {
    /// A prober with a different byte cap per reply.
    pub fn with_max_response_bytes(max_response_bytes: usize) -> Self {
        HttpProber {
            max_response_bytes,
            ..Self::default()
        }
    }
}

impl Probe for HttpProber {
    fn probe<'a>(&'a self, target: &'a ProbeTarget, memory: &'a mut ProbeMemory, deadline: Instant) -> ProbeFuture<'a> {
        let b = &target.backend;
        let span = tracing::info_span!(
            "probe",
            group = %target.group,
            backend = %b.spec.name,
            transport = transport_name(b.transport),
            probe_type = probe_type(b.auth_mode),
            revision = tracing::field::Empty,
            outcome = tracing::field::Empty,
            reason = tracing::field::Empty,
        );
        let pin = target.pin.zip(
            target
                .backend
                .url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned()),
        );
        match pin {
            Some((addr, host)) => Box::pin(dns::pinned(host, addr, run(self, target, memory, deadline)).instrument(span)),
            None => Box::pin(run(self, target, memory, deadline).instrument(span)),
        }
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Sse => "sse",
        Transport::StreamableHttp | Transport::Unspecified => "streamable_http",
    }
}

/// What kind of probe this is, as its trace span records it.
fn probe_type(mode: AuthMode) -> &'static str {
    match mode {
        // Real traffic carries each user's token; the probe only proves liveness.
        AuthMode::PerUser => "unauthenticated_liveness",
        AuthMode::StaticHeader | AuthMode::Oauth2ClientCredentials => "authenticated",
        AuthMode::None | AuthMode::Unspecified => "anonymous",
    }
}

/// Shared by every step of one probe.
pub(crate) struct Ctx<'a> {
    pub prober: &'a HttpProber,
    pub target: &'a ProbeTarget,
    /// The probe's own credential, read once per probe.
    pub auth: Option<credentials::AuthHeader>,
    /// The address the last MCP answer of this probe came from (see [`Ctx::answered`]).
    pub peer: std::sync::Mutex<Option<std::net::SocketAddr>>,
    /// The wait the backend asked for (Retry-After of a 429 or 503,
    /// retryAfterMs of a -32023 error), set by the step that got it.
    pub retry_after: std::sync::Mutex<Option<Duration>>,
    /// Whether this probe reads the tool catalog (depth TOOLS, and due);
    /// otherwise it is handshake-only.
    pub read_catalog: bool,
    /// The synthetic checks due at this probe, by index in the spec.
    pub checks_due: Vec<usize>,
    /// The last whole catalog read before this probe: a check's tool must be
    /// read-only in it (or in this probe's own read).
    pub known_catalog: Option<Arc<mcp_health_core::catalog::Catalog>>,
    /// The probe's deadline: no check's call outlasts it.
    pub deadline: Instant,
}

impl Ctx<'_> {
    /// Notes the address an MCP exchange's answer came over: a connection made
    /// through the target's resolver and SSRF guard.
    pub fn answered(&self, resp: &reqwest::Response) {
        if let Some(addr) = resp.remote_addr() {
            // A poisoned lock only means another step of this probe panicked; the value is a plain address.
            *self.peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(addr);
        }
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        *self.peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the wait a backend asked for, for the outcome.
    pub fn ask_to_wait(&self, wait: Option<Duration>) {
        if wait.is_some() {
            // Poisoning needs a panic while holding the lock; the value is still whole.
            *self.retry_after.lock().unwrap_or_else(|p| p.into_inner()) = wait;
        }
    }

    pub fn cap(&self) -> usize {
        self.prober.max_response_bytes
    }

    pub fn backend(&self) -> &ValidBackend {
        &self.target.backend
    }
}

/// The handshake answered (and tools/list, at depth TOOLS).
#[derive(Debug)]
pub(crate) struct Ready {
    pub facts: ServerFacts,
    /// Set when tools/list answered with a JSON-RPC error: DEGRADED.
    pub degraded: Option<Reason>,
    /// The reason of a success other than the plain OK (a server without tools at depth TOOLS).
    pub note: Option<Reason>,
    /// The smallest `ttlMs` of the catalog read's pages, if any.
    pub catalog_ttl: Option<Duration>,
    /// The synthetic checks that ran, by index in the spec.
    pub checks: Vec<(usize, Result<(), mcp_health_core::check::CheckFailure>)>,
}

impl Ready {
    /// The catalog a check's tool is judged read-only in: this probe's whole
    /// read, else the last one before it.
    pub fn catalog_for_checks<'c>(facts: &'c ServerFacts, ctx: &'c Ctx<'_>) -> Option<&'c mcp_health_core::catalog::Catalog> {
        match &facts.catalog {
            Some(mcp_health_core::catalog::CatalogRead::Whole(c)) => Some(c),
            _ => ctx.known_catalog.as_deref(),
        }
    }
}

/// Why a probe step stopped short of `Ready`.
#[derive(Debug)]
pub(crate) enum Stop {
    Failed(Reason),
    /// 401/403. `metadata_url` is the `resource_metadata` of a 401's challenge.
    Auth {
        reason: Reason,
        metadata_url: Option<String>,
    },
    /// The answer says the backend does not speak the revision we tried.
    Refuted(Reason),
    /// The probe was rate-limited: `alive` when the MCP server itself
    /// answered JSON-RPC error -32023, false for a bare HTTP 429.
    RateLimited {
        reason: Reason,
        alive: bool,
    },
}

impl From<Reason> for Stop {
    fn from(r: Reason) -> Self {
        Stop::Failed(r)
    }
}

/// The credential one probe of `target` carries, if its auth mode has one:
/// none for NONE and PER_USER (anonymous probes), the header for
/// STATIC_HEADER, a token for OAUTH2_CLIENT_CREDENTIALS.
async fn credential(prober: &HttpProber, target: &ProbeTarget, memory: &mut ProbeMemory) -> Result<Option<credentials::AuthHeader>, Reason> {
    match target.backend.auth_mode {
        AuthMode::StaticHeader => credentials::static_header(target.backend.spec.auth.as_ref()).await,
        AuthMode::Oauth2ClientCredentials => oauth2::bearer(prober, target, memory).await.map(Some),
        AuthMode::None | AuthMode::PerUser | AuthMode::Unspecified => Ok(None),
    }
}

async fn run(prober: &HttpProber, target: &ProbeTarget, memory: &mut ProbeMemory, deadline: Instant) -> ProbeReport {
    let start = Instant::now();
    let span = tracing::Span::current();
    // A rotated CA, certificate or key is read here; one that cannot be read fails the probe.
    let refreshed = match tokio::time::timeout_at(deadline, target.refresh_clients()).await {
        Ok(refreshed) => refreshed.map_err(|e| e.to_string()),
        Err(_) => Err("the tls files could not be read within the probe timeout".to_owned()),
    };
    if let Err(message) = refreshed {
        return finish(&span, ProbeOutcome::failure(Reason::new(ReasonCode::Tls, message)), start.elapsed(), memory);
    }
    let auth = match tokio::time::timeout_at(deadline, credential(prober, target, memory)).await {
        Ok(Ok(a)) => a,
        Ok(Err(reason)) => return finish(&span, ProbeOutcome::failure(reason), start.elapsed(), memory),
        Err(_) => {
            let reason = Reason::new(ReasonCode::CredentialsUnavailable, "the token endpoint did not answer within the probe timeout");
            return finish(&span, ProbeOutcome::failure(reason), start.elapsed(), memory);
        }
    };
    let credentials_sent = auth.is_some();
    let read_catalog = target.backend.depth == ProbeDepth::Tools && memory.catalog_due.is_none_or(|due| start >= due);
    let checks_due = if target.backend.depth == ProbeDepth::Tools {
        (0..target.backend.spec.checks.len())
            .filter(|j| memory.checks.get(j).is_none_or(|m| start >= m.due))
            .collect()
    } else {
        Vec::new()
    };
    let ctx = Ctx {
        prober,
        target,
        auth,
        peer: std::sync::Mutex::new(None),
        retry_after: std::sync::Mutex::new(None),
        read_catalog,
        checks_due,
        known_catalog: memory.catalog.clone(),
        deadline,
    };
    let mut session = None;
    let timed = match target.backend.transport {
        Transport::Sse => tokio::time::timeout_at(deadline, legacy_sse::probe(&ctx)).await,
        Transport::StreamableHttp | Transport::Unspecified => tokio::time::timeout_at(deadline, revision::probe(&ctx, memory, &mut session)).await,
    };
    let latency = start.elapsed();
    if let Some(s) = session {
        streamable::end_session(&ctx, &s).await;
    }
    let mut timed = timed;
    if let Ok(Ok(ready)) = &mut timed {
        for (j, result) in ready.checks.drain(..) {
            let Some(c) = target.backend.spec.checks.get(j) else { continue };
            let (interval, _) = mcp_health_core::check::timing(c, &target.backend.policy);
            memory.checks.insert(
                j,
                CheckMemory {
                    due: start + interval,
                    failure: result.err(),
                },
            );
        }
    }
    let mut outcome = match timed {
        Err(_) => ProbeOutcome::failure(Reason::new(ReasonCode::Timeout, format!("no reply within {} ms", latency.as_millis()))),
        Ok(Ok(Ready {
            facts,
            degraded: None,
            note,
            catalog_ttl,
            ..
        })) => {
            if facts.catalog.is_some() {
                memory.catalog_due = Some(start + catalog_wait(target.backend.policy.catalog_interval, catalog_ttl));
            }
            let mut outcome = ProbeOutcome::success(facts);
            if let Some(reason) = note {
                outcome.reason = reason;
            }
            outcome
        }
        Ok(Ok(Ready {
            facts, degraded: Some(reason), ..
        })) => ProbeOutcome::tools_failing(reason, facts),
        Ok(Err(Stop::Failed(reason) | Stop::Refuted(reason))) => ProbeOutcome::failure(reason),
        Ok(Err(Stop::RateLimited { reason, alive: true })) => ProbeOutcome::rate_limited(reason, ServerFacts::default()),
        Ok(Err(Stop::RateLimited { reason, alive: false })) => ProbeOutcome::throttled(reason),
        Ok(Err(Stop::Auth { reason, metadata_url })) => {
            if credentials_sent {
                oauth2::forget_token(prober, target, memory).await;
            }
            let mut facts = ServerFacts::default();
            if reason.http_status == Some(401) && !credentials_sent {
                // Bounded by the same deadline; a metadata fetch that runs out of
                // time counts as invalid metadata, not as a timeout of the server.
                facts.resource_metadata = tokio::time::timeout_at(deadline, resource_metadata::check(&ctx, metadata_url.as_deref()))
                    .await
                    .unwrap_or(ResourceMetadataState::Invalid);
            }
            ProbeOutcome::auth_required(reason, facts)
        }
    };
    outcome.peer = ctx.peer();
    if let Some(pin) = target.pin
        && let Some(peer) = outcome.peer.filter(|p| *p != pin)
    {
        // Cannot happen while the resolver sees the pin (`dns::pinned`); if it ever
        // did, the verdict would belong to another endpoint, so it is not taken.
        outcome = ProbeOutcome::failure(Reason::new(
            ReasonCode::Connection,
            format!("the answer came from {peer}, not the endpoint's address {pin}"),
        ));
    }
    if matches!(outcome.class, OutcomeClass::Failure | OutcomeClass::RateLimited | OutcomeClass::Throttled) {
        // Only an answer that did not succeed asks the schedule to wait.
        outcome.retry_after = ctx.retry_after.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    if outcome.class == OutcomeClass::Failure
        && matches!(
            outcome.reason.code,
            ReasonCode::ConnectionRefused | ReasonCode::Connection | ReasonCode::Timeout | ReasonCode::Tls
        )
    {
        // The cached address may be stale (the backend moved): ask again next time.
        // (A pinned endpoint's probe used no cached answer.)
        if target.pin.is_none()
            && let Some(url::Host::Domain(host)) = target.backend.url.host()
        {
            target.dns.forget(host);
        }
    }
    finish(&span, outcome, latency, memory)
}

/// How long after a catalog read the next one is due: `catalogInterval`, or
/// sooner when the server's `ttlMs` says so.
fn catalog_wait(interval: Duration, ttl: Option<Duration>) -> Duration {
    ttl.map_or(interval, |ttl| ttl.min(interval))
}

fn finish(span: &tracing::Span, outcome: ProbeOutcome, latency: Duration, memory: &ProbeMemory) -> ProbeReport {
    span.record("outcome", outcome.class.label());
    span.record("reason", outcome.reason.code.as_str_name());
    let revision = if outcome.facts.protocol_version.is_empty() {
        memory.detected_revision.as_deref().unwrap_or("")
    } else {
        &outcome.facts.protocol_version
    };
    span.record("revision", revision);
    tracing::debug!(latency_ms = latency.as_millis() as u64, detail = %outcome.reason.message, "probe finished");
    ProbeReport { outcome, latency }
}

/// Shared handle to a prober.
pub type SharedProbe = Arc<dyn Probe>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_catalog_read_comes_at_the_interval_or_sooner_by_ttl() {
        let five_min = Duration::from_secs(300);
        let cases = [
            (None, five_min),
            (Some(Duration::from_secs(30)), Duration::from_secs(30)),
            (Some(Duration::from_secs(3600)), five_min),
            (Some(Duration::ZERO), Duration::ZERO),
        ];
        for (ttl, want) in cases {
            assert_eq!(catalog_wait(five_min, ttl), want, "{ttl:?}");
        }
    }
}
