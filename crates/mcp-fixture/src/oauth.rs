//! An OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4) at
//! `/oauth/token` (movable at runtime), for probes that fetch their own token.
//! It issues the server's required bearer token to the configured client,
//! authenticated by HTTP Basic or by `client_id`/`client_secret` form fields,
//! or, with an assertion key, only by a signed JWT (private_key_jwt, RFC 7523).
//! The server is its own authorization server: its metadata (RFC 8414, or
//! OpenID Connect discovery) names it as issuer and the token endpoint.

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub secret: String,
    /// `expires_in` of issued tokens, in seconds.
    pub expires_in: u64,
    /// Where the authorization server's metadata is served. Default RFC 8414.
    pub metadata: AuthServerMetadata,
    /// With a key, the client authenticates only by a JWT assertion (RFC 7523
    /// §2.2) this key verifies, whose iss and sub are `id` and aud the issuer
    /// or the token endpoint URL; `secret` is not accepted.
    pub assertion_key: Option<AssertionKey>,
}

/// Which well-known URL serves the authorization server metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthServerMetadata {
    /// `/.well-known/oauth-authorization-server` (RFC 8414).
    #[default]
    OAuth,
    /// Only `/.well-known/openid-configuration` (OpenID Connect discovery).
    OpenIdConnect,
    /// None.
    Absent,
}

/// The public key client assertions are verified with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionKey {
    /// "ES256" or "RS256".
    pub algorithm: String,
    /// SPKI PEM ("PUBLIC KEY"; "RSA PUBLIC KEY" too for RS256).
    pub public_key_pem: String,
}

pub(crate) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub(crate) const OPENID_METADATA_PATH: &str = "/.well-known/openid-configuration";

/// The authorization server metadata at `path`, if this server serves it there.
pub(crate) fn metadata(shared: &Shared, path: &str) -> Option<Resp> {
    let client = shared.opts.oauth_client.as_ref()?;
    let served = match client.metadata {
        AuthServerMetadata::OAuth => OAUTH_METADATA_PATH,
        AuthServerMetadata::OpenIdConnect => OPENID_METADATA_PATH,
        AuthServerMetadata::Absent => return None,
    };
    if path != OAUTH_METADATA_PATH && path != OPENID_METADATA_PATH {
        return None;
    }
    inc(&shared.stats.auth_server_metadata_requests);
    if path != served {
        return Some(reply::status(404));
    }
    let doc = json!({
        "issuer": shared.base,
        "token_endpoint": format!("{}{}", shared.base, shared.token_path()),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": if client.assertion_key.is_some() { ["private_key_jwt"] } else { ["client_secret_basic"] },
    });
    Some(reply::json(200, doc.to_string()))
}

/// Whether `assertion` is a JWT `key` verifies for `client` at this server.
fn assertion_valid(shared: &Shared, client: &OAuthClient, key: &AssertionKey, assertion: &str) -> bool {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let (alg, decoding) = match key.algorithm.as_str() {
        "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(key.public_key_pem.as_bytes())),
        "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(key.public_key_pem.as_bytes())),
        _ => return false,
    };
    let Ok(decoding) = decoding else { return false };
    let mut validation = Validation::new(alg);
    let token_url = format!("{}{}", shared.base, shared.token_path());
    validation.set_audience(&[shared.base.as_str(), token_url.as_str()]);
    validation.set_issuer(&[client.id.as_str()]);
    validation.sub = Some(client.id.clone());
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub", "jti"]);
    jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &validation).is_ok()
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
    if field("grant_type").as_deref() != Some("client_credentials") {
        return reply::json(400, r#"{"error":"unsupported_grant_type"}"#);
    }
    let authenticated = match &client.assertion_key {
        Some(key) => {
            field("client_assertion_type").as_deref() == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && field("client_assertion").is_some_and(|a| assertion_valid(shared, client, key, &a))
        }
        None => {
            let creds = basic(&parts).or_else(|| Some((field("client_id")?, field("client_secret")?)));
            creds.is_some_and(|(id, secret)| id == client.id && secret == client.secret)
        }
    };
    if !authenticated {
        return reply::json(401, r#"{"error":"invalid_client"}"#);
    }
    let token = shared.opts.required_bearer.clone().unwrap_or_else(|| "fixture-token".to_owned());
    let doc = json!({"access_token": token, "token_type": "Bearer", "expires_in": client.expires_in});
    reply::json(200, doc.to_string())
}
