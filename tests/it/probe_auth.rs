//! Auth modes: anonymous per-user liveness probes (span field, RFC 9728
//! metadata), static headers re-read at each use, OAuth 2.0 client
//! credentials (token cache, rejection, endpoint failure, the RFC 8707
//! resource, token URL discovery, private_key_jwt), auth changes in the
//! spec, and secrets kept out of statuses and logs.

use crate::common;
use crate::probe_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDaemon, backend, reason, status};
use mcp_fixture::{AssertionKey, AuthServerMetadata, Behavior, FixtureOptions, FixtureServer, OAuthClient, reserve_port};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::{HttpProber, ProbeMemory, ProbeTarget};
use mcp_health::proto::v1::{BackendStatus, ReasonCode, ResourceMetadataState};
use probe_support::*;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

fn per_user(url: &str) -> Value {
    json!({"name": "b", "url": url, "auth": {"mode": "AUTH_MODE_PER_USER"}})
}

fn static_file(url: &str, file: &std::path::Path) -> Value {
    json!({"name": "b", "url": url, "auth": {"mode": "AUTH_MODE_STATIC_HEADER", "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": file}}}})
}

// ---- span fields -------------------------------------------------------

#[derive(Clone, Default)]
struct ProbeSpans(Arc<Mutex<HashMap<u64, BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProbeSpans {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "probe" {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().insert(id.into_u64(), fields);
        }
    }
    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, _: Context<'_, S>) {
        if let Some(fields) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[tokio::test]
async fn per_user_probes_are_unauthenticated_liveness_probes_on_their_span() {
    let spans = ProbeSpans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let f = FixtureServer::start().await.unwrap();
    f.set_behavior(Behavior::Unauthorized { resource_metadata: true });
    let r = probe_once(&target(per_user(&f.url()))).await;
    assert_eq!((r.outcome.class, r.outcome.reason.code), (OutcomeClass::AuthRequired, ReasonCode::AuthRequired));
    assert_eq!(r.outcome.facts.resource_metadata, ResourceMetadataState::Valid);
    let f2 = FixtureServer::start().await.unwrap();
    assert_success(&probe_once(&target(plain(&f2.url()))).await);

    let spans: Vec<BTreeMap<String, String>> = spans.0.lock().unwrap().values().cloned().collect();
    let field = |s: &BTreeMap<String, String>, k: &str| s.get(k).cloned().unwrap_or_default();
    let liveness: Vec<_> = spans.iter().filter(|s| field(s, "probe_type") == "unauthenticated_liveness").collect();
    assert_eq!(liveness.len(), 1, "{spans:#?}");
    assert_eq!(field(liveness[0], "backend"), "b");
    assert_eq!(field(liveness[0], "group"), "g");
    assert_eq!(field(liveness[0], "transport"), "streamable_http");
    assert_eq!(field(liveness[0], "outcome"), "auth");
    assert_eq!(field(liveness[0], "reason"), "REASON_CODE_AUTH_REQUIRED");
    let anonymous: Vec<_> = spans.iter().filter(|s| field(s, "probe_type") == "anonymous").collect();
    assert_eq!(anonymous.len(), 1, "{spans:#?}");
    assert_eq!(field(anonymous[0], "revision"), "2025-11-25");
    assert_eq!(field(anonymous[0], "outcome"), "healthy");
}

// ---- RFC 9728 resource metadata -----------------------------------------

#[tokio::test]
async fn resource_metadata_is_checked_after_a_401() {
    let f = FixtureServer::start().await.unwrap();
    let t = target(per_user(&f.url()));
    // Advertised in WWW-Authenticate, valid.
    f.set_behavior(Behavior::Unauthorized { resource_metadata: true });
    assert_eq!(probe_once(&t).await.outcome.facts.resource_metadata, ResourceMetadataState::Valid);
    // Advertised, but garbage.
    f.set_behavior(Behavior::InvalidResourceMetadata);
    assert_eq!(probe_once(&t).await.outcome.facts.resource_metadata, ResourceMetadataState::Invalid);
    // Not in the challenge: found at the well-known URL.
    f.set_behavior(Behavior::Unauthorized { resource_metadata: false });
    let before = f.stats().metadata_requests;
    assert_eq!(probe_once(&t).await.outcome.facts.resource_metadata, ResourceMetadataState::Valid);
    assert!(f.stats().metadata_requests > before);
    // 403 is not a 401: no metadata check.
    f.set_behavior(Behavior::Forbidden);
    assert_eq!(probe_once(&t).await.outcome.facts.resource_metadata, ResourceMetadataState::Unspecified);
}

#[tokio::test]
async fn resource_metadata_not_advertised_anywhere() {
    let s = RawServer::start(|line| {
        if line.contains("/.well-known/") {
            RawReply::close("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        } else {
            RawReply::close("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"x\"\r\ncontent-length: 0\r\n\r\n")
        }
    })
    .await;
    let r = probe_once(&target(per_user(&s.url("/mcp")))).await;
    assert_eq!(r.outcome.class, OutcomeClass::AuthRequired);
    assert_eq!(r.outcome.facts.resource_metadata, ResourceMetadataState::NotAdvertised);
    let seen = s.seen();
    assert!(seen.iter().any(|l| l.starts_with("GET /.well-known/oauth-protected-resource/mcp ")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("GET /.well-known/oauth-protected-resource ")), "{seen:?}");
}

#[tokio::test]
async fn resource_metadata_on_another_host_is_never_fetched() {
    let port = reserve_port().port();
    let challenge =
        format!("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer resource_metadata=\"http://localhost:{port}/meta\"\r\ncontent-length: 0\r\n\r\n");
    let s = RawServer::start(move |_| RawReply::close(challenge.clone())).await;
    let r = probe_once(&target(per_user(&s.url("/mcp")))).await;
    assert_eq!(r.outcome.facts.resource_metadata, ResourceMetadataState::Invalid);
    assert!(s.seen().iter().all(|l| !l.starts_with("GET")), "{:?}", s.seen());
}

#[tokio::test]
async fn resource_metadata_reads_are_bounded() {
    let huge = format!("{{\"resource\":\"{}\"}}", "a".repeat(200_000));
    let s = RawServer::start(move |line| {
        if line.starts_with("GET /meta") {
            RawReply::close(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{huge}",
                huge.len()
            ))
        } else {
            RawReply::close("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer resource_metadata=\"/meta\"\r\ncontent-length: 0\r\n\r\n")
        }
    })
    .await;
    assert_eq!(
        probe_once(&target(per_user(&s.url("/mcp")))).await.outcome.facts.resource_metadata,
        ResourceMetadataState::Invalid
    );
    // A metadata URL that never answers cannot turn the 401 into a timeout.
    let s = RawServer::start(|line| {
        if line.starts_with("GET /meta") {
            RawReply::hold("")
        } else {
            RawReply::close("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer resource_metadata=\"/meta\"\r\ncontent-length: 0\r\n\r\n")
        }
    })
    .await;
    let r = probe_with(
        &HttpProber::default(),
        &target(per_user(&s.url("/mcp"))),
        &mut ProbeMemory::default(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(
        (r.outcome.class, r.outcome.facts.resource_metadata),
        (OutcomeClass::AuthRequired, ResourceMetadataState::Invalid)
    );
}

// ---- static header ------------------------------------------------------

#[tokio::test]
async fn a_rotated_static_header_file_is_picked_up() {
    let f = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("second".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first\n").unwrap();
    let t = target(static_file(&f.url(), &file));
    let r = probe_once(&t).await;
    assert_eq!(r.outcome.reason.code, ReasonCode::CredentialsRejected);
    std::fs::write(&file, "second\n").unwrap();
    assert_success(&probe_once(&t).await);
    std::fs::remove_file(&file).unwrap();
    assert_failure(&probe_once(&t).await, ReasonCode::CredentialsUnavailable);
}

// ---- OAuth 2.0 client credentials ---------------------------------------

struct OAuthSetup {
    fixture: FixtureServer,
    _dir: tempfile::TempDir,
    id_file: std::path::PathBuf,
    secret_file: std::path::PathBuf,
}

async fn oauth_fixture(expires_in: u64) -> OAuthSetup {
    oauth_fixture_with(OAuthClient {
        expires_in,
        ..Default::default()
    })
    .await
}

/// A fixture that requires a token its own token endpoint issues to `client`
/// (whose id and secret are always the ones of the id and secret files).
async fn oauth_fixture_with(client: OAuthClient) -> OAuthSetup {
    let fixture = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("issued-token".into()),
        oauth_client: Some(OAuthClient {
            id: "probe client".into(),
            secret: "s3cret:&=".into(),
            ..client
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id_file = dir.path().join("id");
    let secret_file = dir.path().join("secret");
    std::fs::write(&id_file, "probe client").unwrap();
    std::fs::write(&secret_file, "s3cret:&=\n").unwrap();
    OAuthSetup {
        fixture,
        _dir: dir,
        id_file,
        secret_file,
    }
}

fn oauth_backend(s: &OAuthSetup, token_url: &str) -> Value {
    json!({"name": "b", "url": s.fixture.url(), "auth": {"mode": "AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS", "oauth2ClientCredentials": {
        "tokenUrl": token_url, "clientId": {"file": s.id_file}, "clientSecret": {"file": s.secret_file},
        "scopes": ["mcp:read", "mcp:probe"], "audience": "https://mcp.example"}}})
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_cached_and_dropped_when_rejected() {
    let s = oauth_fixture(3600).await;
    let t = target(oauth_backend(&s, &s.fixture.url_for("/oauth/token")));
    let prober = HttpProber::default();
    let mut mem = ProbeMemory::default();
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    assert_eq!(s.fixture.stats().token_requests, 1);
    let form: BTreeMap<String, String> = s.fixture.last_token_form().unwrap().into_iter().collect();
    assert_eq!(form.get("grant_type").map(String::as_str), Some("client_credentials"));
    assert_eq!(form.get("scope").map(String::as_str), Some("mcp:read mcp:probe"));
    assert_eq!(form.get("audience").map(String::as_str), Some("https://mcp.example"));
    // RFC 8707: the token is asked for this MCP server, by its canonical URI.
    assert_eq!(form.get("resource"), Some(&s.fixture.url()));
    // Cached: the next probe needs no token request.
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    assert_eq!(s.fixture.stats().token_requests, 1);
    assert_eq!(prober.tokens.len(), 1);
    // The backend rejects the token: CREDENTIALS_REJECTED, and the cache drops it.
    s.fixture.set_behavior(Behavior::Unauthorized { resource_metadata: true });
    let r = probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await;
    assert_eq!(
        (r.outcome.class, r.outcome.reason.code),
        (OutcomeClass::AuthRequired, ReasonCode::CredentialsRejected)
    );
    assert!(prober.tokens.is_empty());
    s.fixture.set_behavior(Behavior::Healthy);
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    assert_eq!(s.fixture.stats().token_requests, 2);
}

#[tokio::test]
async fn oauth2_tokens_of_removed_backends_are_evicted() {
    let s = oauth_fixture(3600).await;
    let token_url = s.fixture.url_for("/oauth/token");
    // One token endpoint, three clients (the audience is part of a token's key).
    let backend = |audience: &str| {
        let mut b = oauth_backend(&s, &token_url);
        b["auth"]["oauth2ClientCredentials"]["audience"] = json!(audience);
        target(b)
    };
    let prober = HttpProber::default();
    let prober = &prober;
    let probe = |t: &ProbeTarget| {
        let t = t.clone();
        async move { probe_with(prober, &t, &mut ProbeMemory::default(), Duration::from_secs(5)).await }
    };
    let (a, b) = (backend("https://a.example"), backend("https://b.example"));
    assert_success(&probe(&a).await);
    assert_success(&probe(&b).await);
    assert_eq!((prober.tokens.len(), s.fixture.stats().token_requests), (2, 2));
    // a is removed; the next token fetched evicts its token, never b's.
    drop(a);
    let c = backend("https://c.example");
    assert_success(&probe(&c).await);
    assert_eq!(prober.tokens.len(), 2);
    assert_success(&probe(&b).await);
    assert_success(&probe(&c).await);
    assert_eq!(s.fixture.stats().token_requests, 3, "b and c still use their cached tokens");
}

#[tokio::test]
async fn oauth2_tokens_are_not_kept_past_their_lifetime() {
    let s = oauth_fixture(0).await;
    let t = target(oauth_backend(&s, &s.fixture.url_for("/oauth/token")));
    let prober = HttpProber::default();
    for n in 1..=2 {
        assert_success(&probe_with(&prober, &t, &mut ProbeMemory::default(), Duration::from_secs(5)).await);
        assert_eq!(s.fixture.stats().token_requests, n);
    }
}

#[tokio::test]
async fn oauth2_token_endpoint_failures_are_credentials_unavailable() {
    let s = oauth_fixture(3600).await;
    std::fs::write(&s.secret_file, "not-the-secret").unwrap();
    let r = probe_once(&target(oauth_backend(&s, &s.fixture.url_for("/oauth/token")))).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(r.outcome.reason.message.contains("HTTP 401"), "{}", r.outcome.reason.message);
    assert!(!r.outcome.reason.message.contains("not-the-secret"));
    let refused = format!("http://{}/token", reserve_port());
    assert_failure(&probe_once(&target(oauth_backend(&s, &refused))).await, ReasonCode::CredentialsUnavailable);
    // A token endpoint that never answers: still CREDENTIALS_UNAVAILABLE.
    let hang = RawServer::start(|_| RawReply::hold("")).await;
    let t = target(oauth_backend(&s, &hang.url("/token")));
    let r = probe_with(&HttpProber::default(), &t, &mut ProbeMemory::default(), Duration::from_millis(400)).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert_eq!(s.fixture.stats().posts, 0, "the backend is never probed without its token");
}

/// A backend of `s` whose token URL is discovered.
fn discovered_backend(s: &OAuthSetup) -> Value {
    let mut b = oauth_backend(s, "");
    b["auth"]["oauth2ClientCredentials"].as_object_mut().unwrap().remove("tokenUrl");
    b
}

/// "METHOD /path" of each request the fixture saw since the last call.
fn requests(f: &FixtureServer) -> Vec<String> {
    f.drain_requests().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

#[tokio::test]
async fn oauth2_token_url_is_discovered_from_the_backends_metadata_and_kept() {
    // Tokens live 0 s, so each probe asks the token endpoint: discovery is
    // what must not repeat.
    let s = oauth_fixture(0).await;
    let t = target(discovered_backend(&s));
    let prober = HttpProber::default();
    let mut mem = ProbeMemory::default();
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    let seen = requests(&s.fixture);
    // The MCP spec's order: the 401's resource_metadata, the authorization
    // server's RFC 8414 metadata, then the token, then the probe itself.
    assert_eq!(
        seen[..4],
        [
            "POST /mcp",
            "GET /.well-known/oauth-protected-resource",
            "GET /.well-known/oauth-authorization-server",
            "POST /oauth/token"
        ],
        "{seen:?}"
    );
    assert_eq!(seen[4], "POST /mcp", "{seen:?}");
    let form: BTreeMap<String, String> = s.fixture.last_token_form().unwrap().into_iter().collect();
    assert_eq!(form.get("resource"), Some(&s.fixture.url()));
    // Kept for the backend: the next probe goes straight to the token endpoint.
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    let seen = requests(&s.fixture);
    assert_eq!(seen[0], "POST /oauth/token", "{seen:?}");
    assert_eq!((s.fixture.stats().auth_server_metadata_requests, s.fixture.stats().token_requests), (1, 2));
}

#[tokio::test]
async fn oauth2_token_url_discovery_falls_back_to_openid_connect() {
    let s = oauth_fixture_with(OAuthClient {
        expires_in: 3600,
        metadata: AuthServerMetadata::OpenIdConnect,
        ..Default::default()
    })
    .await;
    assert_success(&probe_once(&target(discovered_backend(&s))).await);
    let seen = requests(&s.fixture);
    let at = seen
        .iter()
        .position(|r| r == "GET /.well-known/oauth-authorization-server")
        .expect("RFC 8414 first");
    assert_eq!(seen[at + 1], "GET /.well-known/openid-configuration", "{seen:?}");
    assert_eq!(seen[at + 2], "POST /oauth/token", "{seen:?}");
}

#[tokio::test]
async fn oauth2_token_url_is_discovered_again_when_the_token_endpoint_fails() {
    let s = oauth_fixture(0).await;
    let t = target(discovered_backend(&s));
    let prober = HttpProber::default();
    let mut mem = ProbeMemory::default();
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    // The authorization server moves its token endpoint: the remembered one
    // fails, and the same probe discovers the new one and gets its token there.
    s.fixture.move_token_endpoint("/oauth/v2/token");
    requests(&s.fixture);
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    let seen = requests(&s.fixture);
    assert_eq!(seen[0], "POST /oauth/token", "{seen:?}");
    assert!(seen.contains(&"GET /.well-known/oauth-authorization-server".to_owned()), "{seen:?}");
    assert!(seen.contains(&"POST /oauth/v2/token".to_owned()), "{seen:?}");
    assert_eq!(s.fixture.stats().auth_server_metadata_requests, 2);
}

#[tokio::test]
async fn an_unreadable_secret_does_not_send_the_probe_discovering_again() {
    let s = oauth_fixture(0).await;
    let t = target(discovered_backend(&s));
    let prober = HttpProber::default();
    let mut mem = ProbeMemory::default();
    assert_success(&probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await);
    std::fs::remove_file(&s.secret_file).unwrap();
    let r = probe_with(&prober, &t, &mut mem, Duration::from_secs(5)).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(r.outcome.reason.message.contains("cannot read secret file"), "{}", r.outcome.reason.message);
    // The endpoint did not fail: it stays remembered, and nothing was asked again.
    assert_eq!((s.fixture.stats().auth_server_metadata_requests, s.fixture.stats().token_requests), (1, 1));
    assert!(mem.token_endpoint.is_some());
}

#[tokio::test]
async fn oauth2_token_url_discovery_failures_name_the_step() {
    // No authorization server metadata anywhere.
    let s = oauth_fixture_with(OAuthClient {
        expires_in: 3600,
        metadata: AuthServerMetadata::Absent,
        ..Default::default()
    })
    .await;
    let r = probe_once(&target(discovered_backend(&s))).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(
        r.outcome.reason.message.contains("authorization server metadata"),
        "{}",
        r.outcome.reason.message
    );
    assert!(!r.outcome.reason.message.contains("s3cret"));
    assert_eq!(s.fixture.stats().token_requests, 0);
    // No protected-resource metadata: a server that answers 404 to everything.
    let bare = RawServer::start(|_| RawReply::close("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")).await;
    let mut b = discovered_backend(&s);
    b["url"] = json!(bare.url("/mcp"));
    let r = probe_once(&target(b)).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(r.outcome.reason.message.contains("protected-resource metadata"), "{}", r.outcome.reason.message);
}

/// A backend whose metadata is all served by one raw server: a 401 with
/// `resource_metadata`, its protected-resource metadata naming the raw server
/// as authorization server, and that server's metadata naming `token_endpoint`.
async fn raw_authorization_server(token_endpoint: &'static str, issuer: Option<&'static str>) -> RawServer {
    let base: Arc<Mutex<String>> = Arc::default();
    let at = base.clone();
    let server = RawServer::start(move |line| {
        let base = at.lock().unwrap().clone();
        let json = |doc: Value| {
            let body = doc.to_string();
            RawReply::close(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ))
        };
        if line.starts_with("POST /mcp ") {
            return RawReply::close(format!(
                "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer resource_metadata=\"{base}/prm\"\r\ncontent-length: 0\r\n\r\n"
            ));
        }
        if line.starts_with("GET /prm ") {
            return json(json!({"resource": format!("{base}/mcp"), "authorization_servers": [issuer.map_or(base.clone(), str::to_owned)]}));
        }
        if line.starts_with("GET /.well-known/oauth-authorization-server ") {
            return json(json!({"issuer": base, "token_endpoint": token_endpoint}));
        }
        RawReply::close("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    })
    .await;
    *base.lock().unwrap() = format!("http://{}", server.addr);
    server
}

#[tokio::test]
async fn discovered_urls_pass_the_ssrf_rule_and_the_secret_rule() {
    let s = oauth_fixture(3600).await;
    // (token endpoint or authorization server the metadata names, what the reason says)
    let cases: [(&'static str, Option<&'static str>, &str); 3] = [
        ("http://169.254.169.254/token", None, "the token endpoint is a link-local"),
        ("http://auth.example.com/token", None, "the token endpoint must be https"),
        (
            "http://127.0.0.1:1/token",
            Some("http://169.254.169.254"),
            "the authorization server is a link-local",
        ),
    ];
    for (token_endpoint, issuer, want) in cases {
        let raw = raw_authorization_server(token_endpoint, issuer).await;
        let mut b = discovered_backend(&s);
        b["url"] = json!(raw.url("/mcp"));
        let r = probe_once(&target(b)).await;
        assert_failure(&r, ReasonCode::CredentialsUnavailable);
        assert!(r.outcome.reason.message.contains(want), "{token_endpoint}: {}", r.outcome.reason.message);
    }
}

// ---- private_key_jwt ----------------------------------------------------

const RS256_KEY: &str = include_str!("data/rs256-test-only.key.pem");
const RS256_PUBLIC: &str = include_str!("data/rs256-test-only.pub.pem");

/// A fixture whose client authenticates by a JWT that `public_key_pem` verifies,
/// and a backend spec with `key_pem` as its private key.
async fn jwt_setup(algorithm: &str, public_key_pem: &str, key_pem: &str, token_url: Option<&str>) -> (OAuthSetup, Value) {
    let s = oauth_fixture_with(OAuthClient {
        expires_in: 3600,
        assertion_key: Some(AssertionKey {
            algorithm: algorithm.into(),
            public_key_pem: public_key_pem.into(),
        }),
        ..Default::default()
    })
    .await;
    let key_file = s._dir.path().join("key.pem");
    std::fs::write(&key_file, key_pem).unwrap();
    let mut b = match token_url {
        Some(u) => oauth_backend(&s, &s.fixture.url_for(u)),
        None => discovered_backend(&s),
    };
    let o = b["auth"]["oauth2ClientCredentials"].as_object_mut().unwrap();
    o.remove("clientSecret");
    o.insert("privateKeyJwt".into(), json!({"privateKey": {"file": key_file}, "algorithm": algorithm}));
    (s, b)
}

#[tokio::test]
async fn private_key_jwt_authenticates_with_es256_and_rs256() {
    let ec = rcgen::KeyPair::generate().unwrap();
    let (ec_key, ec_public) = (ec.serialize_pem(), ec.public_key_pem());
    // (algorithm, public key, private key, token URL: None discovered (aud = issuer), else configured (aud = token URL))
    let cases = [
        ("ES256", ec_public.as_str(), ec_key.as_str(), None),
        ("ES256", ec_public.as_str(), ec_key.as_str(), Some("/oauth/token")),
        ("RS256", RS256_PUBLIC, RS256_KEY, None),
        ("RS256", RS256_PUBLIC, RS256_KEY, Some("/oauth/token")),
    ];
    for (alg, public, key, token_url) in cases {
        let (s, b) = jwt_setup(alg, public, key, token_url).await;
        assert_success(&probe_once(&target(b)).await);
        let form: BTreeMap<String, String> = s.fixture.last_token_form().unwrap().into_iter().collect();
        assert_eq!(
            form.get("client_assertion_type").map(String::as_str),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            "{alg} {token_url:?}"
        );
        assert_eq!(form.get("resource"), Some(&s.fixture.url()), "{alg} {token_url:?}");
    }
}

#[tokio::test]
async fn private_key_jwt_with_a_wrong_or_unparsable_key_is_credentials_unavailable() {
    let ec = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    // Signed by a key the server does not know: the token endpoint refuses it.
    let (s, b) = jwt_setup("ES256", &ec.public_key_pem(), &other.serialize_pem(), Some("/oauth/token")).await;
    let r = probe_once(&target(b)).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(r.outcome.reason.message.contains("HTTP 401"), "{}", r.outcome.reason.message);
    assert_eq!(s.fixture.stats().token_requests, 1);
    // Not a key at all, or an EC key named RS256: refused before any request, naming the field.
    for (alg, key) in [("ES256", "not a key".to_owned()), ("RS256", ec.serialize_pem())] {
        let (s, b) = jwt_setup(alg, &ec.public_key_pem(), &key, Some("/oauth/token")).await;
        let r = probe_once(&target(b)).await;
        assert_failure(&r, ReasonCode::CredentialsUnavailable);
        assert!(r.outcome.reason.message.contains("privateKeyJwt.privateKey"), "{}", r.outcome.reason.message);
        assert!(!r.outcome.reason.message.contains("PRIVATE KEY"));
        assert_eq!(s.fixture.stats().token_requests, 0);
    }
}

// ---- through the daemon -------------------------------------------------

#[tokio::test]
async fn per_user_and_none_verdicts_and_an_auth_change_is_a_backend_change() {
    let f = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("tok".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    std::fs::write(&file, "tok").unwrap();
    let mut d = TestDaemon::empty().await;
    let spec = |second: Value| {
        serde_json::from_value(json!({"name": "auth", "policy": {"interval": "1s", "timeout": "0.8s"}, "backends": [
            {"name": "per-user", "url": f.url(), "auth": {"mode": "AUTH_MODE_PER_USER"}},
            second,
        ]}))
        .unwrap()
    };
    d.apply(spec(json!({"name": "second", "url": f.url()}))).await;
    let h = d
        .wait_group("auth", "both UNAUTHENTICATED", |h| {
            h.backends.iter().all(|b| status(b) == BackendStatus::Unauthenticated)
        })
        .await;
    let pu = backend(&h, "per-user");
    assert!(pu.routable);
    assert_eq!(pu.resource_metadata, ResourceMetadataState::Valid as i32);
    assert!(!backend(&h, "second").routable);
    assert_eq!(reason(backend(&h, "second")), ReasonCode::AuthRequired);
    // Only the auth of "second" changes: it is probed with the header now.
    d.apply(spec(json!({"name": "second", "url": f.url(), "auth": {"mode": "AUTH_MODE_STATIC_HEADER",
        "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": file}}}})))
        .await;
    let h = d
        .wait_group("auth", "second HEALTHY", |h| status(backend(h, "second")) == BackendStatus::Healthy)
        .await;
    assert!(backend(&h, "second").routable);
    d.stop().await;
}

// ---- secrets ------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const STATIC_SECRET: &str = "static-SECRET-7f3a91";
const WRONG_STATIC_SECRET: &str = "wrong-SECRET-91bc22";
const CLIENT_SECRET: &str = "client-SECRET-c0ffee";
const WRONG_CLIENT_SECRET: &str = "bad-client-SECRET-dead";
const ACCESS_TOKEN: &str = "token-SECRET-beef77";

/// Every log line (TRACE, all targets, on this single-threaded runtime) and
/// every status the API returns, checked for every secret in play.
#[tokio::test]
async fn secrets_never_reach_statuses_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let static_fx = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some(STATIC_SECRET.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let oauth_fx = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some(ACCESS_TOKEN.into()),
        oauth_client: Some(OAuthClient {
            id: "probe".into(),
            secret: CLIENT_SECRET.into(),
            expires_in: 3600,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, value: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        p
    };
    let header = |name: &str, path: std::path::PathBuf| {
        json!({"name": name, "url": static_fx.url(), "auth": {"mode": "AUTH_MODE_STATIC_HEADER",
            "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": path}}}})
    };
    let oauth = |name: &str, secret: std::path::PathBuf| {
        json!({"name": name, "url": oauth_fx.url(), "auth": {"mode": "AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS", "oauth2ClientCredentials": {
            "tokenUrl": oauth_fx.url_for("/oauth/token"), "clientId": {"file": file("id", "probe")}, "clientSecret": {"file": secret}}}})
    };
    let spec = json!({"name": "secrets", "policy": {"interval": "1s", "timeout": "0.8s"}, "backends": [
        header("static-ok", file("s1", STATIC_SECRET)),
        header("static-bad", file("s2", WRONG_STATIC_SECRET)),
        oauth("oauth-ok", file("c1", CLIENT_SECRET)),
        oauth("oauth-bad", file("c2", WRONG_CLIENT_SECRET)),
    ]});
    let mut d = TestDaemon::empty().await;
    d.apply(serde_json::from_value(spec).unwrap()).await;
    let h = d
        .wait_group("secrets", "verdicts on all four", |h| {
            h.backends.iter().all(|b| status(b) != BackendStatus::Unknown)
        })
        .await;
    let want = [
        ("static-ok", ReasonCode::Ok),
        ("static-bad", ReasonCode::CredentialsRejected),
        ("oauth-ok", ReasonCode::Ok),
        ("oauth-bad", ReasonCode::CredentialsUnavailable),
    ];
    for (name, code) in want {
        assert_eq!(reason(backend(&h, name)), code, "{name}: {:#?}", backend(&h, name));
    }
    let listed = format!(
        "{:?}",
        d.client
            .list_groups(mcp_health::proto::v1::ListGroupsRequest::default())
            .await
            .unwrap()
            .into_inner()
    );
    let statuses = format!("{h:?}{listed}");
    d.stop().await;
    drop(_guard);

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    // The capture works: the probes' spans and events are in it.
    assert!(logs.contains("probe_type=\"authenticated\""), "no probe spans captured:\n{logs}");
    for secret in [STATIC_SECRET, WRONG_STATIC_SECRET, CLIENT_SECRET, WRONG_CLIENT_SECRET, ACCESS_TOKEN] {
        assert!(!statuses.contains(secret), "{secret} in a status: {statuses}");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
