//! The probe's own credentials: read from their source at each use, so a
//! rotated file is picked up, and never written anywhere but the request.
//! Secrets and the STATIC_HEADER header are read here; `oauth2` builds on
//! these for OAUTH2_CLIENT_CREDENTIALS, and `mod.rs` picks by auth mode.

use http::{HeaderName, HeaderValue};

use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::{AuthMode, AuthSpec, ReasonCode, SecretSource, secret_source};

/// A header the probe attaches, marked sensitive so it is never logged.
pub type AuthHeader = (HeaderName, HeaderValue);

pub fn unavailable(message: String) -> Reason {
    Reason::new(ReasonCode::CredentialsUnavailable, message)
}

/// Reads a secret (files with tokio::fs, off the async workers). Errors name
/// the source, never the value.
pub async fn read_secret(source: Option<&SecretSource>) -> Result<String, Reason> {
    match source.and_then(|s| s.source.as_ref()) {
        Some(secret_source::Source::Env(name)) => std::env::var(name).map_err(|_| unavailable(format!("environment variable {name} is not set"))),
        Some(secret_source::Source::File(path)) => tokio::fs::read_to_string(path)
            .await
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| unavailable(format!("cannot read secret file {path}: {}", e.kind()))),
        None => Err(unavailable("no secret source".to_owned())),
    }
}

/// The header for a static-header backend, or None for modes that send no
/// credentials of their own.
pub async fn static_header(auth: Option<&AuthSpec>) -> Result<Option<AuthHeader>, Reason> {
    let Some(auth) = auth else { return Ok(None) };
    if auth.mode() != AuthMode::StaticHeader {
        return Ok(None);
    }
    let Some(h) = &auth.static_header else {
        return Err(unavailable("no static header configured".to_owned()));
    };
    let secret = read_secret(h.value.as_ref()).await?;
    let name = HeaderName::from_bytes(h.header.as_bytes()).map_err(|_| unavailable("invalid header name".to_owned()))?;
    let mut value =
        HeaderValue::from_str(&format!("{}{}", h.value_prefix, secret)).map_err(|_| unavailable("the secret is not a valid header value".to_owned()))?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}
