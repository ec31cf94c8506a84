//! OAuth 2.0 client credentials (RFC 6749 §4.4) for probes: a token from the
//! backend's token endpoint, cached per (token URL, client id, scopes,
//! audience) until shortly before it expires, and dropped when a backend
//! rejects it or no live backend uses it any more. The client authenticates
//! with HTTP Basic (client_secret_basic, RFC 6749 §2.3.1, which every token
//! endpoint must support).
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
use super::{ProbeTarget, body, classify};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::{AuthMode, OAuth2ClientCredentials};

/// Cap on a token endpoint's reply.
const MAX_TOKEN_REPLY: usize = 64 * 1024;
/// Lifetime assumed when the endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is refreshed this long before it expires (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    client_id: String,
    scopes: String,
    audience: String,
}

struct Cached {
    /// `Bearer <token>`, marked sensitive.
    value: HeaderValue,
    refresh_at: Instant,
    /// The targets (`ProbeTarget::alive`) that used it. Once all are gone (their
    /// backends removed or changed), the token goes at the next insert.
    users: Vec<Weak<()>>,
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

/// Tokens by client. Shared by every backend of one prober.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<Key, Cached>>,
}

impl std::fmt::Debug for TokenCache {
    // Never prints a token: only how many are cached.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("cached", &self.lock().len()).finish()
    }
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        // A poisoned lock only means another thread panicked mid-update; the map is still usable.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many tokens are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn spec(target: &ProbeTarget) -> Option<&OAuth2ClientCredentials> {
    let auth = target.backend.spec.auth.as_ref()?;
    if auth.mode() != AuthMode::Oauth2ClientCredentials {
        return None;
    }
    auth.oauth2_client_credentials.as_ref()
}

async fn key(spec: &OAuth2ClientCredentials) -> Result<Key, Reason> {
    Ok(Key {
        token_url: spec.token_url.clone(),
        client_id: read_secret(spec.client_id.as_ref()).await?,
        scopes: spec.scopes.join(" "),
        audience: spec.audience.clone(),
    })
}

/// The `Authorization: Bearer` header for a client-credentials backend:
/// cached, or fetched now. Failures are CREDENTIALS_UNAVAILABLE.
pub async fn bearer(tokens: &TokenCache, target: &ProbeTarget) -> Result<AuthHeader, Reason> {
    let spec = spec(target).ok_or_else(|| unavailable("no oauth2 client credentials configured".to_owned()))?;
    let key = key(spec).await?;
    if let Some(c) = tokens.lock().get_mut(&key)
        && Instant::now() < c.refresh_at
    {
        c.used_by(&target.alive);
        return Ok((AUTHORIZATION, c.value.clone()));
    }
    let secret = read_secret(spec.client_secret.as_ref()).await?;
    let (value, lifetime) = fetch(target, &key, &secret).await?;
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    if lifetime > margin {
        let mut tokens = tokens.lock();
        // The users of the token this one replaces still use it.
        let mut users = tokens.remove(&key).map(|c| c.users).unwrap_or_default();
        // Tokens no live backend uses (removed or changed since) go; the map stays
        // bounded by the live backends' clients.
        tokens.retain(|_, c| c.used());
        users.retain(|u| u.strong_count() > 0);
        let mut cached = Cached {
            value: value.clone(),
            refresh_at: Instant::now() + lifetime - margin,
            users,
        };
        cached.used_by(&target.alive);
        tokens.insert(key, cached);
    }
    Ok((AUTHORIZATION, value))
}

/// Drops the cached token of a backend whose credential was rejected, so
/// the next probe fetches a fresh one.
pub async fn forget_token(prober: &super::HttpProber, target: &ProbeTarget) {
    let Some(spec) = spec(target) else { return };
    if let Ok(key) = key(spec).await {
        prober.tokens.lock().remove(&key);
    }
}

async fn fetch(target: &ProbeTarget, key: &Key, secret: &str) -> Result<(HeaderValue, Duration), Reason> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !key.scopes.is_empty() {
            form.append_pair("scope", &key.scopes);
        }
        if !key.audience.is_empty() {
            form.append_pair("audience", &key.audience);
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
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut resp = client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .basic_auth(enc(&key.client_id), Some(enc(secret)))
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
