//! An OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4) at
//! `/oauth/token`, for probes that fetch their own token. It issues the
//! server's required bearer token to the configured client, authenticated by
//! HTTP Basic or by `client_id`/`client_secret` form fields.

use base64::Engine;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::reply::{self, Resp};
use crate::state::{Shared, inc};

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";

/// The client the token endpoint knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub secret: String,
    /// `expires_in` of issued tokens, in seconds.
    pub expires_in: u64,
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client id and secret from an HTTP Basic header (form-urlencoded inside, RFC 6749 §2.3.1).
fn basic(parts: &Parts) -> Option<(String, String)> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((decode(id), decode(secret)))
}

pub(crate) async fn token(shared: &Shared, parts: Parts, body: Incoming) -> Resp {
    inc(&shared.stats.token_requests);
    let Some(client) = &shared.opts.oauth_client else {
        return reply::status(404);
    };
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return reply::status(400),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // Recorded without the secret, so tests can check scopes and audience.
    let recorded: Vec<(String, String)> = form.iter().filter(|(n, _)| n != "client_secret").cloned().collect();
    *shared.last_token_form.lock().unwrap_or_else(|p| p.into_inner()) = Some(recorded);
    let creds = basic(&parts).or_else(|| Some((field("client_id")?, field("client_secret")?)));
    if field("grant_type").as_deref() != Some("client_credentials") {
        return reply::json(400, r#"{"error":"unsupported_grant_type"}"#);
    }
    match creds {
        Some((id, secret)) if id == client.id && secret == client.secret => {}
        _ => return reply::json(401, r#"{"error":"invalid_client"}"#),
    }
    let token = shared.opts.required_bearer.clone().unwrap_or_else(|| "fixture-token".to_owned());
    let doc = json!({"access_token": token, "token_type": "Bearer", "expires_in": client.expires_in});
    reply::json(200, doc.to_string())
}
