//! RFC 9728 protected-resource metadata, checked after an anonymous probe got
//! 401: the URL from the challenge's `resource_metadata`, else the well-known
//! URLs (`/.well-known/oauth-protected-resource` plus the path, then without).
//! Reads are bounded (size cap, the probe deadline), redirects are not
//! followed, and only the backend's own host is ever asked (no SSRF through a
//! hostile challenge). The OAuth client-credentials token URL discovery
//! (`oauth_discovery`) reads the document through [`document`] too.

use reqwest::header::ACCEPT;
use serde_json::Value;
use url::Url;

use super::{ClientHandle, Ctx, body};
use mcp_health_proto::v1::ResourceMetadataState;

/// Cap on a metadata document.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The `resource_metadata` parameter of a `WWW-Authenticate` challenge.
/// Quoted strings are skipped when looking for the parameter (a name inside
/// another parameter's value is no parameter) and unescaped when they are its
/// value (RFC 9110 §11.2, §5.6.4). Leniently, an unquoted value may be any
/// run of characters up to a comma, space or tab: servers send bare URLs,
/// which are not tokens.
pub fn challenge_url(header: &str) -> Option<String> {
    const NAME: &str = "resource_metadata";
    let bytes = header.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            i += 1 + quoted_string(&header[i + 1..]).1;
            continue;
        }
        let start = i;
        i += 1;
        // A parameter name starts the header or follows a separator.
        let boundary = start == 0 || matches!(bytes[start - 1], b' ' | b',' | b'\t');
        let Some(name) = header.get(start..start + NAME.len()) else { continue };
        if !boundary || !name.eq_ignore_ascii_case(NAME) {
            continue;
        }
        let rest = header[start + NAME.len()..].trim_start_matches([' ', '\t']);
        let Some(rest) = rest.strip_prefix('=') else { continue };
        let rest = rest.trim_start_matches([' ', '\t']);
        let value = match rest.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted).0,
            None => rest.split([',', ' ', '\t']).next().unwrap_or_default().to_owned(),
        };
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// The unescaped content of a quoted string whose opening quote is already
/// consumed, and the bytes it spans with its closing quote (to the end when
/// it is not closed).
fn quoted_string(s: &str) -> (String, usize) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (value, at + 1),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    (value, s.len())
}

/// Whether metadata at `url` may be fetched for a backend at `backend`: the
/// same host (any port), over the same scheme or https.
pub fn allowed(url: &Url, backend: &Url) -> bool {
    url.host() == backend.host() && (url.scheme() == backend.scheme() || url.scheme() == "https")
}

/// Some(valid) when metadata was advertised, None when it was not.
pub async fn check(ctx: &Ctx<'_>, advertised: Option<&str>) -> ResourceMetadataState {
    match document(&ctx.target.client, &ctx.backend().url, advertised, ctx.cap()).await {
        Ok(_) => ResourceMetadataState::Valid,
        Err(MetadataError::NotAdvertised) => ResourceMetadataState::NotAdvertised,
        Err(MetadataError::OtherHost) => {
            tracing::warn!("resource metadata is advertised on another host; not fetched");
            ResourceMetadataState::Invalid
        }
        Err(_) => ResourceMetadataState::Invalid,
    }
}

/// Why no valid metadata document was read. Messages name the step, never a
/// credential.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the advertised resource metadata URL is not a valid URL")]
    BadUrl,
    #[error("the resource metadata is advertised on another host (not fetched)")]
    OtherHost,
    #[error("no resource metadata at the well-known URLs")]
    NotAdvertised,
    #[error("the resource metadata could not be read")]
    Unreadable,
    #[error("the resource metadata does not name this server or lists no authorization server")]
    Invalid,
}

/// The backend's valid metadata document: at `advertised` (a 401's
/// `resource_metadata`, resolved against the backend URL) when given, else at
/// the first well-known URL that has one. Fetched with `client` (the
/// backend's, with its SSRF guard), at most `cap` bytes (and
/// [`MAX_METADATA_BYTES`]), never on another host.
pub async fn document(client: &ClientHandle, backend: &Url, advertised: Option<&str>, cap: usize) -> Result<Value, MetadataError> {
    let doc = if let Some(raw) = advertised {
        let url = backend.join(raw).map_err(|_| MetadataError::BadUrl)?;
        if !allowed(&url, backend) {
            return Err(MetadataError::OtherHost);
        }
        match fetch(client, &url, cap).await {
            Fetched::Doc(doc) => doc,
            Fetched::NotFound | Fetched::Failed => return Err(MetadataError::Unreadable),
        }
    } else {
        let mut found = None;
        for url in well_known(backend) {
            match fetch(client, &url, cap).await {
                Fetched::NotFound => continue,
                Fetched::Failed => return Err(MetadataError::Unreadable),
                Fetched::Doc(doc) => {
                    found = Some(doc);
                    break;
                }
            }
        }
        found.ok_or(MetadataError::NotAdvertised)?
    };
    if valid(&doc, backend) { Ok(doc) } else { Err(MetadataError::Invalid) }
}

/// RFC 9728 §3.1: the well-known segment goes between the host and the path.
fn well_known(backend: &Url) -> Vec<Url> {
    let mut urls = Vec::new();
    let path = backend.path().trim_end_matches('/');
    let mut with = backend.clone();
    with.set_query(None);
    with.set_fragment(None);
    if !path.is_empty() {
        with.set_path(&format!("{WELL_KNOWN}{path}"));
        urls.push(with.clone());
    }
    with.set_path(WELL_KNOWN);
    urls.push(with);
    urls
}

enum Fetched {
    Doc(Value),
    NotFound,
    Failed,
}

async fn fetch(client: &ClientHandle, url: &Url, cap: usize) -> Fetched {
    let Ok(mut resp) = client.get(url.clone()).header(ACCEPT, "application/json").send().await else {
        return Fetched::Failed;
    };
    match resp.status().as_u16() {
        200 => {}
        404 | 410 => return Fetched::NotFound,
        _ => return Fetched::Failed,
    }
    let Ok(bytes) = body::read_all(&mut resp, MAX_METADATA_BYTES.min(cap)).await else {
        return Fetched::Failed;
    };
    serde_json::from_slice(&bytes).map_or(Fetched::Failed, Fetched::Doc)
}

/// A JSON object whose `resource` names this backend (its URL or its origin)
/// and whose `authorization_servers` is a non-empty array of URLs.
pub fn valid(doc: &Value, backend: &Url) -> bool {
    let Some(resource) = doc.get("resource").and_then(Value::as_str) else {
        return false;
    };
    let Ok(resource) = Url::parse(resource) else { return false };
    let trimmed = |u: &Url| {
        let mut u = u.clone();
        u.set_fragment(None);
        u.as_str().trim_end_matches('/').to_owned()
    };
    let names_backend = trimmed(&resource) == trimmed(backend) || (resource.path() == "/" && resource.origin() == backend.origin());
    let servers_ok = doc
        .get("authorization_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s.as_str().is_some_and(|s| Url::parse(s).is_ok())));
    names_backend && servers_ok
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn challenges() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"Bearer resource_metadata="http://h/.well-known/oauth-protected-resource/mcp""#,
                Some("http://h/.well-known/oauth-protected-resource/mcp"),
            ),
            (
                r#"Bearer error="invalid_token", error_description="x", resource_metadata="http://h/m""#,
                Some("http://h/m"),
            ),
            (r#"Bearer Resource_Metadata=http://h/m, realm="r""#, Some("http://h/m")),
            (r#"Bearer realm="mcp-fixture""#, None),
            (r#"Bearer x_resource_metadata="http://evil/""#, None),
            (r#"Bearer resource_metadata="""#, None),
            // Found by fuzz/fuzz_targets/www_authenticate.rs against http-auth:
            // a quoted-string's escapes are taken out (RFC 9110 §5.6.4),
            (r#"Bearer resource_metadata="http://h/a\\b\"c""#, Some(r#"http://h/a\b"c"#)),
            // a parameter written inside another one's quoted value is no parameter,
            (r#"Bearer realm="x, resource_metadata=http://evil/", scope="s""#, None),
            (
                r#"Bearer realm="a\", resource_metadata=\"http://evil/", resource_metadata="http://h/m""#,
                Some("http://h/m"),
            ),
            // and a tab ends an unquoted value as a space does.
            ("Bearer resource_metadata=http://h/m\t, realm=\"r\"", Some("http://h/m")),
        ];
        for (header, want) in cases {
            assert_eq!(challenge_url(header).as_deref(), *want, "{header}");
        }
    }

    #[test]
    fn well_known_urls() {
        let u = |s: &str| Url::parse(s).unwrap();
        let got: Vec<String> = well_known(&u("http://h:1/mcp?x=1")).iter().map(Url::to_string).collect();
        assert_eq!(
            got,
            [
                "http://h:1/.well-known/oauth-protected-resource/mcp",
                "http://h:1/.well-known/oauth-protected-resource"
            ]
        );
        let got: Vec<String> = well_known(&u("http://h:1/")).iter().map(Url::to_string).collect();
        assert_eq!(got, ["http://h:1/.well-known/oauth-protected-resource"]);
    }

    #[test]
    fn only_the_backends_host() {
        let backend = Url::parse("http://127.0.0.1:8000/mcp").unwrap();
        let ok = |s: &str| allowed(&Url::parse(s).unwrap(), &backend);
        assert!(ok("http://127.0.0.1:8000/.well-known/oauth-protected-resource"));
        assert!(ok("http://127.0.0.1:9000/meta"));
        assert!(ok("https://127.0.0.1/meta"));
        assert!(!ok("http://169.254.169.254/latest/meta-data"));
        assert!(!ok("http://localhost:8000/meta"));
        let tls = Url::parse("https://mcp.example.com/mcp").unwrap();
        assert!(!allowed(&Url::parse("http://mcp.example.com/meta").unwrap(), &tls));
    }

    #[test]
    fn documents() {
        let backend = Url::parse("http://127.0.0.1:8000/mcp").unwrap();
        let cases = [
            (
                json!({"resource": "http://127.0.0.1:8000/mcp", "authorization_servers": ["http://127.0.0.1:8000/issuer"]}),
                true,
            ),
            (
                json!({"resource": "http://127.0.0.1:8000/mcp/", "authorization_servers": ["https://as.example"]}),
                true,
            ),
            (
                json!({"resource": "http://127.0.0.1:8000", "authorization_servers": ["https://as.example"]}),
                true,
            ),
            (
                json!({"resource": "http://127.0.0.1:8000/other", "authorization_servers": ["https://as.example"]}),
                false,
            ),
            (
                json!({"resource": "http://evil.example/mcp", "authorization_servers": ["https://as.example"]}),
                false,
            ),
            (json!({"resource": "http://127.0.0.1:8000/mcp", "authorization_servers": []}), false),
            (json!({"resource": "http://127.0.0.1:8000/mcp", "authorization_servers": [3]}), false),
            (json!({"resource": "http://127.0.0.1:8000/mcp"}), false),
            (json!({"authorization_servers": ["https://as.example"]}), false),
            (json!(["not", "an", "object"]), false),
        ];
        for (doc, want) in cases {
            assert_eq!(valid(&doc, &backend), want, "{doc}");
        }
    }
}
