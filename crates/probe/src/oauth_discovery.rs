//! Discovery of an OAuth client-credentials backend's token endpoint when its
//! spec gives no `tokenUrl`, in the order the MCP authorization spec gives:
//! an anonymous request for the 401's `resource_metadata` (else the RFC 9728
//! well-known URLs, read by `resource_metadata::document`), then the first
//! authorization server's RFC 8414 metadata (else OpenID Connect discovery).
//!
//! Every URL asked passes the probe's SSRF rule (names through the clients'
//! guarded resolver, literal addresses here), every read is capped, no
//! redirect is followed, and the token endpoint must be one a secret may
//! travel to (`secret_may_travel_to`). Errors name the step that failed,
//! never a credential.

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use url::Url;

use super::credentials::unavailable;
use super::resource_metadata::{self, MAX_METADATA_BYTES};
use super::{ProbeTarget, body, classify};
use mcp_health_core::outcome::Reason;

/// A discovered token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEndpoint {
    pub token_url: Url,
    /// The authorization server's issuer identifier (RFC 8414 §2): the
    /// audience of a private_key_jwt assertion.
    pub issuer: String,
}

/// Discovers the token endpoint of `target`'s backend; replies are read up to `cap` bytes.
pub async fn discover(target: &ProbeTarget, cap: usize) -> Result<TokenEndpoint, Reason> {
    let backend = &target.backend.url;
    let advertised = challenge(target).await?;
    let prm = resource_metadata::document(&target.client, backend, advertised.as_deref(), cap)
        .await
        .map_err(|e| unavailable(format!("token url discovery, protected-resource metadata: {e}")))?;
    // `document` accepts only metadata with a non-empty list of URLs.
    let issuer = prm
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let issuer_url = Url::parse(issuer).map_err(|_| unavailable("token url discovery: the authorization server is not a valid URL".to_owned()))?;
    permitted(target, &issuer_url).map_err(|why| unavailable(format!("token url discovery: the authorization server {why}")))?;
    let client = target
        .token_client
        .as_ref()
        .ok_or_else(|| unavailable("no verified client for the token endpoint".to_owned()))?;
    let mut last = "no metadata at any of its well-known URLs".to_owned();
    for url in metadata_urls(&issuer_url) {
        let doc = match fetch(client, &url, cap).await {
            Ok(doc) => doc,
            Err(why) => {
                last = why;
                continue;
            }
        };
        // RFC 8414 §3.3: the metadata must be the issuer's own.
        let same_issuer = doc.get("issuer").and_then(Value::as_str).is_some_and(|i| trim(i) == trim(issuer));
        if !same_issuer {
            last = "its metadata names another issuer".to_owned();
            continue;
        }
        let token_url = doc
            .get("token_endpoint")
            .and_then(Value::as_str)
            .and_then(|t| Url::parse(t).ok())
            .ok_or_else(|| unavailable("token url discovery: the authorization server metadata has no valid token_endpoint".to_owned()))?;
        permitted(target, &token_url).map_err(|why| unavailable(format!("token url discovery: the token endpoint {why}")))?;
        return Ok(TokenEndpoint {
            token_url,
            issuer: issuer.to_owned(),
        });
    }
    Err(unavailable(format!("token url discovery, authorization server metadata: {last}")))
}

fn trim(s: &str) -> &str {
    s.trim_end_matches('/')
}

/// The `resource_metadata` of the 401 an anonymous request gets, if any. A
/// backend that cannot be reached fails the probe as any probe would.
async fn challenge(target: &ProbeTarget) -> Result<Option<String>, Reason> {
    // A ping without a session: it opens none, and an OAuth-protected server
    // refuses it with its challenge before reading it.
    let resp = target
        .client
        .post(target.backend.url.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
        .send()
        .await
        .map_err(|e| {
            let mut reason = classify::transport_error(&e);
            reason.message = format!("token url discovery, anonymous request: {}", reason.message);
            reason
        })?;
    if resp.status().as_u16() != 401 {
        return Ok(None);
    }
    Ok(resp
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(resource_metadata::challenge_url))
}

/// Whether a discovered URL may be asked: the rule of a backend URL (no
/// link-local or cloud-metadata literal address unless the daemon allows
/// them; names are checked by the guarded resolver), and https, or http only
/// to a loopback host, since what it says decides where the secret goes.
fn permitted(target: &ProbeTarget, url: &Url) -> Result<(), &'static str> {
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if literal.is_some_and(mcp_health_core::ssrf::is_forbidden) && !target.dns.allows_link_local() {
        return Err("is a link-local, cloud-metadata or unspecified address");
    }
    if !mcp_health_core::spec::secret_may_travel_to(url) {
        return Err("must be https (http only to a loopback address)");
    }
    Ok(())
}

/// The MCP authorization spec's order: RFC 8414 with the path inserted, then
/// OpenID Connect discovery with the path inserted, then appended; an issuer
/// without a path has one of each.
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut base = issuer.clone();
    base.set_query(None);
    base.set_fragment(None);
    let at = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u
    };
    if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".to_owned()),
            at("/.well-known/openid-configuration".to_owned()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

/// One metadata document, or why not (for the error of the last step).
async fn fetch(client: &super::ClientHandle, url: &Url, cap: usize) -> Result<Value, String> {
    let mut resp = client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", classify::transport_error(&e).message))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("answered HTTP {status}"));
    }
    let bytes = body::read_all(&mut resp, MAX_METADATA_BYTES.min(cap))
        .await
        .map_err(|r| format!("unreadable: {}", r.message))?;
    serde_json::from_slice(&bytes).map_err(|_| "not JSON".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_server_metadata_urls_in_the_mcp_order() {
        let cases: &[(&str, &[&str])] = &[
            (
                "https://auth.example.com",
                &[
                    "https://auth.example.com/.well-known/oauth-authorization-server",
                    "https://auth.example.com/.well-known/openid-configuration",
                ],
            ),
            (
                "https://auth.example.com/tenant1/",
                &[
                    "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                    "https://auth.example.com/.well-known/openid-configuration/tenant1",
                    "https://auth.example.com/tenant1/.well-known/openid-configuration",
                ],
            ),
        ];
        for (issuer, want) in cases {
            let got: Vec<String> = metadata_urls(&Url::parse(issuer).unwrap()).iter().map(Url::to_string).collect();
            assert_eq!(got, *want, "{issuer}");
        }
    }
}
