//! OAuth 2.0 client credentials (RFC 6749 §4.4) for probes: a token from the
//! backend's token endpoint, for the backend's canonical resource URI (the
//! `resource` parameter of RFC 8707, as the MCP authorization spec requires),
//! cached per (token URL, client id, scopes, audience, resource) until
//! shortly before it expires, and dropped when a backend
//! rejects it or no live backend uses it any more; at most
//! `MAX_CACHED_TOKENS` of them, the least recently used evicted first. The client authenticates
//! with HTTP Basic (client_secret_basic, RFC 6749 §2.3.1, which every token
//! endpoint must support), or with a JWT it signs (private_key_jwt, RFC 7523
//! §2.2). Without a configured token URL, `oauth_discovery` finds it.
//!
//! Secrets (the client secret, the token) live only in sensitive header
//! values; no error, log line or Debug output carries them. The client secret
//! travels only over verified TLS (or to a loopback address): the token
//! endpoint has its own client, never the backend's, so a backend's
//! `dangerousSkipVerification` or client certificate never applies to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::HeaderValue;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use tokio::time::Instant;

use super::credentials::{AuthHeader, read_secret, unavailable};
use super::{ProbeMemory, ProbeTarget, body, classify, oauth_discovery};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::{AuthMode, OAuth2ClientCredentials};

/// Cap on a token endpoint's reply.
const MAX_TOKEN_REPLY: usize = 64 * 1024;
/// Lifetime assumed when the endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is refreshed this long before it expires (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Most tokens a [`TokenCache`] keeps. Past it the least recently used one
/// goes (its backends fetch a new one at their next probe). Live backends
/// hold far fewer: one token per distinct client, not per backend.
pub const MAX_CACHED_TOKENS: usize = 1024;

/// Not Debug: the client id may be a secret read from a file.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    client_id: String,
    scopes: String,
    audience: String,
    /// The backend's canonical resource URI (RFC 8707): a token is bound to it.
    resource: String,
}

struct Cached {
    /// `Bearer <token>`, marked sensitive.
    value: HeaderValue,
    refresh_at: Instant,
    /// The targets (`ProbeTarget::alive`) that used it. Once all are gone (their
    /// backends removed or changed), the token goes at the next insert.
    users: Vec<Weak<()>>,
    /// When it was last inserted or served, in [`Tokens::tick`]s: the least
    /// recently used token goes first past the cap.
    last_used: u64,
}

impl Cached {
    fn used(&self) -> bool {
        self.users.iter().any(|u| u.strong_count() > 0)
    }

    /// Records `alive` as a user (once), forgetting users that are gone.
    fn used_by(&mut self, alive: &Arc<()>) {
        self.users.retain(|u| u.strong_count() > 0);
        if !self.users.iter().any(|u| std::ptr::eq(u.as_ptr(), Arc::as_ptr(alive))) {
            self.users.push(Arc::downgrade(alive));
        }
    }
}

#[derive(Default)]
struct Tokens {
    by_client: HashMap<Key, Cached>,
    /// Counts inserts and hits: the order of use, without reading a clock.
    tick: u64,
}

impl Tokens {
    fn tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

/// Tokens by client. Shared by every backend of one prober. Bounded: at most
/// `capacity` tokens (least recently used evicted), and a token no live
/// backend uses, or past its refresh time, goes at the next insert.
pub struct TokenCache {
    tokens: Mutex<Tokens>,
    capacity: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::with_capacity(MAX_CACHED_TOKENS)
    }
}

impl std::fmt::Debug for TokenCache {
    // Never prints a token: only how many are cached.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("cached", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (at least one).
    pub fn with_capacity(capacity: usize) -> TokenCache {
        TokenCache {
            tokens: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // A poisoned lock only means another thread panicked mid-update; the map is still usable.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many tokens are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached token of `key` if it is not due for refresh, recording
    /// `alive` as its user.
    fn get(&self, key: &Key, alive: &Arc<()>) -> Option<HeaderValue> {
        let mut tokens = self.lock();
        let tick = tokens.tick();
        let c = tokens.by_client.get_mut(key).filter(|c| Instant::now() < c.refresh_at)?;
        c.used_by(alive);
        c.last_used = tick;
        Some(c.value.clone())
    }

    /// Caches a token fetched now for `key`, served until `refresh_at`. Drops
    /// first the tokens no live backend uses and those past their refresh
    /// time (never served again), then, at the cap, the least recently used.
    fn insert(&self, key: Key, value: HeaderValue, refresh_at: Instant, alive: &Arc<()>) {
        let now = Instant::now();
        let mut tokens = self.lock();
        let tick = tokens.tick();
        // The users of the token this one replaces still use it.
        let mut users = tokens.by_client.remove(&key).map(|c| c.users).unwrap_or_default();
        tokens.by_client.retain(|_, c| c.used() && now < c.refresh_at);
        while tokens.by_client.len() >= self.capacity {
            let Some(oldest) = tokens.by_client.iter().min_by_key(|(_, c)| c.last_used).map(|(k, _)| k.clone()) else {
                break;
            };
            tokens.by_client.remove(&oldest);
        }
        users.retain(|u| u.strong_count() > 0);
        let mut cached = Cached {
            value,
            refresh_at,
            users,
            last_used: tick,
        };
        cached.used_by(alive);
        tokens.by_client.insert(key, cached);
    }

    /// Drops the token of `key` (its backend rejected it).
    fn remove(&self, key: &Key) {
        self.lock().by_client.remove(key);
    }
}

fn spec(target: &ProbeTarget) -> Option<&OAuth2ClientCredentials> {
    let auth = target.backend.spec.auth.as_ref()?;
    if auth.mode() != AuthMode::Oauth2ClientCredentials {
        return None;
    }
    auth.oauth2_client_credentials.as_ref()
}

/// Where tokens come from: the spec's `tokenUrl`, or the one discovered.
struct Endpoint {
    token_url: String,
    /// The issuer of a discovered endpoint: a JWT assertion's audience.
    issuer: Option<String>,
    /// Taken from the backend's memory rather than discovered by this probe.
    from_memory: bool,
}

/// The token endpoint of a backend: the configured one, else the one
/// discovered earlier for its URL, else discovered now (and remembered).
async fn endpoint(prober: &super::HttpProber, spec: &OAuth2ClientCredentials, target: &ProbeTarget, memory: &mut ProbeMemory) -> Result<Endpoint, Reason> {
    if !spec.token_url.is_empty() {
        return Ok(Endpoint {
            token_url: spec.token_url.clone(),
            issuer: None,
            from_memory: false,
        });
    }
    if let Some((url, found)) = &memory.token_endpoint
        && *url == target.backend.url
    {
        return Ok(Endpoint {
            token_url: found.token_url.to_string(),
            issuer: Some(found.issuer.clone()),
            from_memory: true,
        });
    }
    let found = oauth_discovery::discover(target, prober.max_response_bytes).await?;
    let endpoint = Endpoint {
        token_url: found.token_url.to_string(),
        issuer: Some(found.issuer.clone()),
        from_memory: false,
    };
    memory.token_endpoint = Some((target.backend.url.clone(), found));
    Ok(endpoint)
}

async fn key(spec: &OAuth2ClientCredentials, token_url: &str, backend: &url::Url) -> Result<Key, Reason> {
    Ok(Key {
        token_url: token_url.to_owned(),
        client_id: read_secret(spec.client_id.as_ref()).await?,
        scopes: spec.scopes.join(" "),
        audience: spec.audience.clone(),
        resource: resource_uri(backend),
    })
}

/// The canonical URI of the MCP server at `backend` (MCP authorization spec,
/// "Canonical Server URI"; RFC 8707 §2): its URL without a fragment, and
/// without the lone `/` of an empty path. `Url` already lowercases the scheme
/// and host.
pub fn resource_uri(backend: &url::Url) -> String {
    let mut u = backend.clone();
    u.set_fragment(None);
    let s = u.as_str();
    if u.path() == "/" && u.query().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s.to_owned()
    }
}

/// The `Authorization: Bearer` header for a client-credentials backend:
/// cached, or fetched now. Failures are CREDENTIALS_UNAVAILABLE. A
/// discovered token endpoint that fails is forgotten; one remembered from an
/// earlier probe is discovered again at once and, if it moved, asked once more.
pub async fn bearer(prober: &super::HttpProber, target: &ProbeTarget, memory: &mut ProbeMemory) -> Result<AuthHeader, Reason> {
    let spec = spec(target).ok_or_else(|| unavailable("no oauth2 client credentials configured".to_owned()))?;
    let mut endpoint = endpoint(prober, spec, target, memory).await?;
    loop {
        match token(&prober.tokens, spec, target, &endpoint).await {
            Ok(header) => return Ok(header),
            // A secret that cannot be read says nothing about the endpoint.
            Err(TokenError::Local(reason)) => return Err(reason),
            Err(TokenError::Endpoint(reason)) if endpoint.issuer.is_some() => {
                memory.token_endpoint = None;
                if !endpoint.from_memory {
                    return Err(reason);
                }
                let again = self::endpoint(prober, spec, target, memory).await?;
                if again.token_url == endpoint.token_url {
                    return Err(reason);
                }
                endpoint = again;
            }
            Err(TokenError::Endpoint(reason)) => return Err(reason),
        }
    }
}

/// Why no token: something on this side (a secret, the key), or the token endpoint.
enum TokenError {
    Local(Reason),
    Endpoint(Reason),
}

async fn token(tokens: &TokenCache, spec: &OAuth2ClientCredentials, target: &ProbeTarget, endpoint: &Endpoint) -> Result<AuthHeader, TokenError> {
    let key = key(spec, &endpoint.token_url, &target.backend.url).await.map_err(TokenError::Local)?;
    if let Some(value) = tokens.get(&key, &target.alive) {
        return Ok((AUTHORIZATION, value));
    }
    let auth = match &spec.private_key_jwt {
        Some(jwt) => {
            let key_pem = read_secret(jwt.private_key.as_ref()).await.map_err(TokenError::Local)?;
            let audience = endpoint.issuer.clone().unwrap_or_else(|| endpoint.token_url.clone());
            ClientAuth::Jwt(assertion(&key.client_id, &key_pem, &jwt.algorithm, &audience).map_err(TokenError::Local)?)
        }
        None => ClientAuth::Basic(read_secret(spec.client_secret.as_ref()).await.map_err(TokenError::Local)?),
    };
    let (value, lifetime) = fetch(target, &key, &auth).await.map_err(TokenError::Endpoint)?;
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    if lifetime > margin {
        tokens.insert(key, value.clone(), Instant::now() + lifetime - margin, &target.alive);
    }
    Ok((AUTHORIZATION, value))
}

/// Drops the cached token of a backend whose credential was rejected, so
/// the next probe fetches a fresh one.
pub async fn forget_token(prober: &super::HttpProber, target: &ProbeTarget, memory: &ProbeMemory) {
    let Some(spec) = spec(target) else { return };
    let token_url = if spec.token_url.is_empty() {
        match &memory.token_endpoint {
            Some((_, found)) => found.token_url.to_string(),
            None => return,
        }
    } else {
        spec.token_url.clone()
    };
    if let Ok(key) = key(spec, &token_url, &target.backend.url).await {
        prober.tokens.remove(&key);
    }
}

/// How the client authenticates at the token endpoint. Not Debug: it holds secrets.
enum ClientAuth {
    /// client_secret_basic (RFC 6749 §2.3.1).
    Basic(String),
    /// private_key_jwt (RFC 7523 §2.2): the signed client assertion.
    Jwt(String),
}

/// How long a client assertion is valid: one token request.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// A client assertion signed with the client's key (RFC 7523 §3): iss = sub =
/// the client id, aud, a random jti, iat now and exp shortly after.
fn assertion(client_id: &str, key_pem: &str, algorithm: &str, audience: &str) -> Result<String, Reason> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (alg, key) = match algorithm {
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(key_pem.as_bytes())),
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(key_pem.as_bytes())),
        _ => return Err(unavailable("privateKeyJwt.algorithm must be ES256 or RS256".to_owned())),
    };
    let key = key.map_err(|_| unavailable(format!("privateKeyJwt.privateKey is not a PEM {algorithm} private key")))?;
    // The claims are wall-clock times the authorization server checks, so they
    // come from the system clock, not tokio's.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let jti: String = {
        use rand::Rng;
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
    });
    // An invalid key was refused above; signing itself fails only on a key the algorithm cannot use.
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(|_| unavailable(format!("privateKeyJwt.privateKey cannot sign {algorithm}")))
}

async fn fetch(target: &ProbeTarget, key: &Key, auth: &ClientAuth) -> Result<(HeaderValue, Duration), Reason> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !key.scopes.is_empty() {
            form.append_pair("scope", &key.scopes);
        }
        if !key.audience.is_empty() {
            form.append_pair("audience", &key.audience);
        }
        form.append_pair("resource", &key.resource);
        if let ClientAuth::Jwt(assertion) = auth {
            form.append_pair("client_id", &key.client_id);
            form.append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            form.append_pair("client_assertion", assertion);
        }
        form.finish()
    };
    // Validation refuses these too; checked again here, where the secret leaves.
    let url = url::Url::parse(&key.token_url).map_err(|_| unavailable("the token URL is not a valid URL".to_owned()))?;
    if !mcp_health_core::spec::secret_may_travel_to(&url) {
        return Err(unavailable("the token URL must be https (http only to a loopback address)".to_owned()));
    }
    let client = target
        .token_client
        .as_ref()
        .ok_or_else(|| unavailable("no verified client for the token endpoint".to_owned()))?;
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    if let ClientAuth::Basic(secret) = auth {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(enc(&key.client_id), Some(enc(secret)));
    }
    let mut resp = request
        .body(form)
        .send()
        .await
        .map_err(|e| unavailable(format!("token endpoint unreachable: {}", classify::transport_error(&e).message)))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(unavailable(format!("token endpoint answered HTTP {status}")));
    }
    let bytes = body::read_all(&mut resp, MAX_TOKEN_REPLY)
        .await
        .map_err(|r| unavailable(format!("token endpoint reply unreadable: {}", r.message)))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| unavailable("token endpoint reply is not JSON".to_owned()))?;
    let token = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unavailable("token endpoint reply has no access_token".to_owned()))?;
    if let Some(kind) = doc.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(unavailable(format!("token endpoint issued a {:.32} token, not a bearer token", kind)));
    }
    let lifetime = doc.get("expires_in").and_then(Value::as_u64).map_or(DEFAULT_LIFETIME, Duration::from_secs);
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| unavailable("the access token is not a valid header value".to_owned()))?;
    value.set_sensitive(true);
    Ok((value, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            token_url: "https://auth.example/token".to_owned(),
            client_id: name.to_owned(),
            scopes: String::new(),
            audience: String::new(),
            resource: "https://mcp.example/mcp".to_owned(),
        }
    }

    #[test]
    fn the_resource_is_the_canonical_server_uri() {
        let cases = [
            ("https://MCP.Example.com/mcp", "https://mcp.example.com/mcp"),
            ("https://mcp.example.com/", "https://mcp.example.com"),
            ("https://mcp.example.com", "https://mcp.example.com"),
            ("https://mcp.example.com:8443/a/b/#frag", "https://mcp.example.com:8443/a/b/"),
            ("http://127.0.0.1:9/mcp?tenant=1", "http://127.0.0.1:9/mcp?tenant=1"),
        ];
        for (url, want) in cases {
            assert_eq!(resource_uri(&url::Url::parse(url).unwrap()), want, "{url}");
        }
    }

    fn bearer_value(name: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {name}")).expect("a header value")
    }

    /// One step of a cache's life; users are `ProbeTarget::alive` stand-ins by index.
    enum Step {
        /// A token for client `.0` fetched now by user `.2`, served for `.1` seconds.
        Put(&'static str, u64, usize),
        /// User `.1` asks for client `.0`'s token; `.2`: it is served from the cache.
        Get(&'static str, usize, bool),
        Advance(u64),
        /// The backend of user `.0` is removed.
        Drop(usize),
    }

    /// Runs `steps` on a cache of `capacity` and returns the clients whose tokens it holds.
    async fn run(capacity: usize, steps: &[Step]) -> Vec<String> {
        let cache = TokenCache::with_capacity(capacity);
        let mut users: Vec<Option<Arc<()>>> = (0..8).map(|_| Some(Arc::new(()))).collect();
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Put(name, secs, user) => {
                    let alive = users[user].as_ref().expect("a live user");
                    cache.insert(key(name), bearer_value(name), Instant::now() + Duration::from_secs(secs), alive);
                }
                Step::Get(name, user, hit) => {
                    let alive = users[user].as_ref().expect("a live user");
                    let got = cache.get(&key(name), alive);
                    assert_eq!(got.is_some(), hit, "step {i}: get {name}");
                    if let Some(v) = got {
                        assert_eq!(v, bearer_value(name));
                    }
                }
                Step::Advance(secs) => tokio::time::advance(Duration::from_secs(secs)).await,
                Step::Drop(user) => users[user] = None,
            }
        }
        let mut held: Vec<String> = cache.lock().by_client.keys().map(|k| k.client_id.clone()).collect();
        held.sort();
        held
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_cache_is_bounded_and_forgets_what_no_backend_uses() {
        use Step::*;
        let cases: Vec<(&str, usize, Vec<Step>, Vec<&str>)> = vec![
            (
                "tokens under the cap stay",
                3,
                vec![Put("a", 600, 0), Put("b", 600, 1), Put("c", 600, 2)],
                vec!["a", "b", "c"],
            ),
            (
                "at the cap the least recently inserted goes",
                3,
                vec![Put("a", 600, 0), Put("b", 600, 1), Put("c", 600, 2), Put("d", 600, 3)],
                vec!["b", "c", "d"],
            ),
            (
                "at the cap the least recently served goes",
                3,
                vec![Put("a", 600, 0), Put("b", 600, 1), Put("c", 600, 2), Get("a", 0, true), Put("d", 600, 3)],
                vec!["a", "c", "d"],
            ),
            (
                "a token past its refresh time is not served, and goes at the next insert",
                3,
                vec![Put("a", 60, 0), Put("b", 600, 1), Advance(61), Get("a", 0, false), Put("c", 600, 2)],
                vec!["b", "c"],
            ),
            (
                "a token no live backend uses goes at the next insert",
                3,
                vec![Put("a", 600, 0), Put("b", 600, 1), Drop(0), Put("c", 600, 2)],
                vec!["b", "c"],
            ),
            (
                "a token another live backend uses stays",
                3,
                vec![Put("a", 600, 0), Get("a", 1, true), Drop(0), Put("b", 600, 2)],
                vec!["a", "b"],
            ),
            (
                "a refreshed token replaces the old one and keeps its users",
                3,
                vec![Put("a", 60, 0), Get("a", 1, true), Advance(61), Put("a", 600, 2), Drop(2), Put("b", 600, 3)],
                vec!["a", "b"],
            ),
            ("a cache of one holds the last token", 1, vec![Put("a", 600, 0), Put("b", 600, 1)], vec!["b"]),
        ];
        for (case, capacity, steps, want) in cases {
            assert_eq!(run(capacity, &steps).await, want, "{case}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_cache_holds_at_most_max_cached_tokens() {
        let cache = TokenCache::default();
        let alive = Arc::new(());
        for i in 0..MAX_CACHED_TOKENS + 10 {
            let name = format!("client-{i}");
            cache.insert(key(&name), bearer_value(&name), Instant::now() + Duration::from_secs(600), &alive);
        }
        assert_eq!(cache.len(), MAX_CACHED_TOKENS);
        // The newest is kept, the first ones went.
        assert!(cache.get(&key(&format!("client-{}", MAX_CACHED_TOKENS + 9)), &alive).is_some());
        assert!(cache.get(&key("client-0"), &alive).is_none());
    }
}
