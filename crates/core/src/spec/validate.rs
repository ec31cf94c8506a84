//! Validation of a `GroupSpec`: names, URLs, transports, auth and TLS settings,
//! revision pins, policies and size limits. Every offending field is reported.

use std::collections::HashSet;

use url::Url;

use super::{FieldViolation, Policy, Violations, join, policy};
use crate::discovery::{DnsPolicy, MAX_TTL_CEILING, MIN_TTL_FLOOR};
use mcp_health_proto::v1::{
    AuthMode, AuthSpec, BackendSpec, CatalogOnChange, CatalogPolicy, DiscoverySpec, GroupSpec, ProbeDepth, TlsSpec, Transport, secret_source,
};

/// MCP protocol revisions a backend can be pinned to.
pub const KNOWN_REVISIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// What validation accepts: configurable size limits, and whether backend
/// URLs may point at link-local and cloud-metadata addresses.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_backends_per_group: usize,
    pub max_groups: usize,
    /// Off by default: a URL whose host is such an address is a field
    /// violation, and a hostname resolving only to such addresses is refused
    /// at connect time (`probe::ssrf`).
    pub allow_link_local_backends: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_backends_per_group: 1000,
            max_groups: 1000,
            allow_link_local_backends: false,
        }
    }
}

/// A backend whose spec passed validation, with its effective policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidBackend {
    pub spec: BackendSpec,
    pub url: Url,
    pub transport: Transport,
    pub auth_mode: AuthMode,
    pub depth: ProbeDepth,
    pub pinned_revision: Option<String>,
    pub policy: Policy,
    /// DNS discovery (issue 23): every address is an endpoint; None: one endpoint.
    pub discovery: Option<DnsPolicy>,
}

/// A group whose spec passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGroup {
    pub spec: GroupSpec,
    pub backends: Vec<ValidBackend>,
}

/// Whether `name` is a DNS-1123 label of at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn check_name(name: &str, field: String, v: &mut Violations) {
    if !is_dns_label(name) {
        v.add(
            field,
            "must be a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        );
    }
}

/// Validates a group. `prefix` names the spec in error paths (`spec` for an
/// ApplyGroup request, `groups[2]` for the config file).
pub fn validate_group(spec: &GroupSpec, prefix: &str, limits: &Limits) -> Result<ValidGroup, Vec<FieldViolation>> {
    let mut v = Violations::default();
    check_name(&spec.name, join(prefix, "name"), &mut v);
    if spec.backends.len() > limits.max_backends_per_group {
        v.add(
            join(prefix, "backends"),
            format!("has {} backends; the limit is {}", spec.backends.len(), limits.max_backends_per_group),
        );
    }
    let group_policy = policy::group(spec.policy.as_ref(), &join(prefix, "policy"), &mut v);
    let mut seen = HashSet::new();
    let mut backends = Vec::with_capacity(spec.backends.len());
    for (i, b) in spec.backends.iter().enumerate() {
        let path = join(prefix, &format!("backends[{i}]"));
        if !seen.insert(b.name.as_str()) {
            v.add(join(&path, "name"), format!("duplicate backend name {:?}", b.name));
        }
        let policy = policy::resolve(group_policy, b.policy.as_ref(), &join(&path, "policy"), &mut v);
        if let Some(backend) = validate_backend(b, &path, policy, limits.allow_link_local_backends, &mut v) {
            backends.push(backend);
        }
    }
    if v.0.is_empty() {
        Ok(ValidGroup { spec: spec.clone(), backends })
    } else {
        Err(v.0)
    }
}

fn validate_backend(b: &BackendSpec, path: &str, policy: Policy, allow_link_local: bool, v: &mut Violations) -> Option<ValidBackend> {
    let before = v.0.len();
    check_name(&b.name, join(path, "name"), v);
    let url = match parse_url(&b.url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            v.add(join(path, "url"), "scheme must be http or https");
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            v.add(join(path, "url"), "must have a host");
            None
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            v.add(join(path, "url"), "must not embed credentials; use auth instead");
            None
        }
        Ok(u) if !allow_link_local && forbidden_host(&u).is_some() => {
            v.add(join(path, "url"), forbidden_message(&u));
            None
        }
        Ok(u) => Some(u),
        Err(why) => {
            v.add(join(path, "url"), why);
            None
        }
    };
    let transport = match Transport::try_from(b.transport) {
        Ok(Transport::Unspecified) => Transport::StreamableHttp,
        Ok(t) => t,
        Err(_) => {
            v.add(join(path, "transport"), "unknown transport");
            Transport::StreamableHttp
        }
    };
    let depth = match ProbeDepth::try_from(b.depth) {
        Ok(ProbeDepth::Unspecified) => ProbeDepth::Handshake,
        Ok(d) => d,
        Err(_) => {
            v.add(join(path, "depth"), "unknown probe depth");
            ProbeDepth::Handshake
        }
    };
    let auth_mode = validate_auth(b.auth.as_ref(), &join(path, "auth"), allow_link_local, v);
    validate_catalog_fields(b, path, depth, auth_mode, v);
    validate_checks(b, path, depth, auth_mode, transport, &policy, v);
    if let Some(tls) = &b.tls {
        validate_tls(tls, url.as_ref(), &join(path, "tls"), v);
    }
    let discovery = b
        .discovery
        .as_ref()
        .and_then(|d| validate_discovery(d, url.as_ref(), &join(path, "discovery"), v));
    validate_drained_endpoints(b, path, v);
    let pinned_revision = (!b.protocol_version.is_empty()).then(|| b.protocol_version.clone());
    if let Some(rev) = &pinned_revision {
        let field = join(path, "protocolVersion");
        if !KNOWN_REVISIONS.contains(&rev.as_str()) {
            v.add(field, format!("unknown MCP protocol revision; known: {}", KNOWN_REVISIONS.join(", ")));
        } else if (rev == "2024-11-05") != (transport == Transport::Sse) {
            v.add(field, "revision 2024-11-05 goes with transport TRANSPORT_SSE, and only it");
        }
    }
    (v.0.len() == before).then(|| ValidBackend {
        spec: b.clone(),
        url: url.expect("checked: no violation means the url parsed"),
        transport,
        auth_mode,
        depth,
        pinned_revision,
        policy,
        discovery,
    })
}

/// Most entries of `drainedEndpoints`.
pub const MAX_DRAINED_ENDPOINTS: usize = 1024;

/// `drainedEndpoints`: a discovered backend's endpoints by address, each
/// written as `EndpointHealth.address` shows it (`IP:port`, an IPv6 address
/// in brackets), so that the engine matches them as text is shown, once each.
fn validate_drained_endpoints(b: &BackendSpec, path: &str, v: &mut Violations) {
    if b.drained_endpoints.is_empty() {
        return;
    }
    let field = join(path, "drainedEndpoints");
    if b.discovery.is_none() {
        v.add(
            field,
            "needs discovery: a backend without it has one endpoint; drain the backend instead (drain: true)",
        );
        return;
    }
    if b.drained_endpoints.len() > MAX_DRAINED_ENDPOINTS {
        v.add(field, format!("at most {MAX_DRAINED_ENDPOINTS} addresses"));
        return;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, text) in b.drained_endpoints.iter().enumerate() {
        let at = format!("{field}[{i}]");
        match text.parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.to_string() != *text => v.add(at, format!("write it {addr}, as the endpoint's address is shown")),
            Ok(addr) if !seen.insert(addr) => v.add(at, "is listed twice"),
            Ok(_) => {}
            Err(_) => v.add(at, format!("{text:?} is not an endpoint address: IP:port, an IPv6 address in brackets")),
        }
    }
}

/// Longest SRV name (a DNS name: 253 characters, labels of at most 63).
const MAX_DNS_NAME: usize = 253;

/// DNS discovery: a host name to resolve (a literal address has nothing to
/// discover, and the name is what the probes' Host and SNI carry), an SRV name
/// that is a DNS name, TTL bounds in range and in order, a grace and a share in range.
fn validate_discovery(d: &DiscoverySpec, url: Option<&Url>, path: &str, v: &mut Violations) -> Option<DnsPolicy> {
    let before = v.0.len();
    let Some(dns) = &d.dns else {
        v.add(join(path, "dns"), "is required: the only discovery there is");
        return None;
    };
    let path = join(path, "dns");
    if let Some(u) = url
        && !matches!(u.host(), Some(url::Host::Domain(_)))
    {
        v.add(
            path.clone(),
            format!(
                "needs a host name in the url, not the literal address {}: a literal address has nothing to discover",
                u.host_str().unwrap_or_default()
            ),
        );
    }
    let srv = dns.srv.trim_end_matches('.');
    if !dns.srv.is_empty() && !is_dns_name(srv) {
        v.add(
            join(&path, "srv"),
            format!(
                "{:?} is not a DNS name: labels of 1 to 63 letters, digits, '-' or '_', dot-separated, at most {MAX_DNS_NAME} characters",
                dns.srv
            ),
        );
    }
    let mut policy = DnsPolicy {
        srv: (!dns.srv.is_empty()).then(|| srv.to_owned()),
        ..DnsPolicy::default()
    };
    let mut dur = |field: &str, value: &Option<pbjson_types::Duration>, min: std::time::Duration| {
        let value = value.as_ref()?;
        match policy::duration(value) {
            Some(d) if d >= min && d <= MAX_TTL_CEILING => Some(d),
            _ => {
                v.add(join(&path, field), format!("must be between {min:?} and {MAX_TTL_CEILING:?}"));
                None
            }
        }
    };
    let min_ttl = dur("minTtl", &dns.min_ttl, MIN_TTL_FLOOR);
    let max_ttl = dur("maxTtl", &dns.max_ttl, MIN_TTL_FLOOR);
    policy.removal_grace = dur("removalGrace", &dns.removal_grace, std::time::Duration::ZERO);
    policy.min_ttl = min_ttl.unwrap_or(policy.min_ttl);
    policy.max_ttl = max_ttl.unwrap_or(policy.max_ttl);
    if policy.min_ttl > policy.max_ttl {
        // Named at the field set: both, or the one that leaves the other's default behind.
        let field = if max_ttl.is_some() { "maxTtl" } else { "minTtl" };
        v.add(
            join(&path, field),
            format!("minTtl ({:?}) must not be longer than maxTtl ({:?})", policy.min_ttl, policy.max_ttl),
        );
    }
    if let Some(pct) = dns.min_healthy_percent {
        if (1..=100).contains(&pct) {
            policy.min_healthy_percent = Some(pct);
        } else {
            v.add(join(&path, "minHealthyPercent"), "must be between 1 and 100");
        }
    }
    (v.0.len() == before).then_some(policy)
}

/// Whether `name` is a DNS name an SRV lookup can take (RFC 2782 names have
/// `_service._proto.` labels, so '_' is allowed).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DNS_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Longest tool name `requiredTools` takes (the MCP spec advises at most 128).
pub const MAX_TOOL_NAME_CHARS: usize = 128;
/// Most entries of `requiredTools`.
pub const MAX_REQUIRED_TOOLS: usize = 256;

/// The fields that judge a backend's tool catalog (`requiredTools`, the
/// backend's own `policy.catalogInterval`) need depth TOOLS, and a catalog an
/// anonymous probe of a per-user backend can see (it gets a 401, never tools).
fn validate_catalog_fields(b: &BackendSpec, path: &str, depth: ProbeDepth, auth: AuthMode, v: &mut Violations) {
    let field = join(path, "requiredTools");
    if !b.required_tools.is_empty() {
        if depth != ProbeDepth::Tools {
            v.add(field.clone(), "needs depth PROBE_DEPTH_TOOLS: only a catalog read can show a tool is there");
        } else if auth == AuthMode::PerUser {
            v.add(
                field.clone(),
                "cannot be judged for an AUTH_MODE_PER_USER backend: its anonymous probe never sees the catalog",
            );
        }
        if b.required_tools.len() > MAX_REQUIRED_TOOLS {
            v.add(
                field.clone(),
                format!("has {} names; the limit is {MAX_REQUIRED_TOOLS}", b.required_tools.len()),
            );
        }
    }
    let mut seen = HashSet::new();
    for (j, name) in b.required_tools.iter().enumerate() {
        let at = format!("{field}[{j}]");
        if name.trim().is_empty() {
            v.add(at, "must be a tool name, not empty");
        } else if name.chars().count() > MAX_TOOL_NAME_CHARS || name.chars().any(char::is_control) {
            v.add(at, format!("must be at most {MAX_TOOL_NAME_CHARS} characters, without control characters"));
        } else if !seen.insert(name.as_str()) {
            v.add(at, format!("duplicate tool name {name:?}"));
        }
    }
    if let Some(c) = &b.catalog {
        validate_catalog_policy(c, &join(path, "catalog"), depth, auth, v);
    }
    if depth != ProbeDepth::Tools && b.policy.as_ref().is_some_and(|p| p.catalog_interval.is_some()) {
        v.add(
            join(path, "policy.catalogInterval"),
            "needs depth PROBE_DEPTH_TOOLS: a backend probed at depth HANDSHAKE never reads its catalog",
        );
    }
}

/// Most bytes of a check's arguments (protobuf-encoded).
pub const MAX_CHECK_ARGUMENTS_BYTES: usize = 16 * 1024;

/// Synthetic checks: depth TOOLS, a catalog the probe can see, a transport
/// whose session the call can share (not legacy SSE, whose replies ride the
/// event stream), names, timing within the probe's, and expectations that
/// parse. Whether the tool is read-only is for the catalog to say, at probe
/// time (`check::may_call`).
fn validate_checks(b: &BackendSpec, path: &str, depth: ProbeDepth, auth: AuthMode, transport: Transport, policy: &Policy, v: &mut Violations) {
    use crate::check::{self, MAX_CHECK_INTERVAL, MAX_CHECKS, MAX_EXPECT_BYTES, MIN_CHECK_INTERVAL, MIN_CHECK_TIMEOUT};
    use prost::Message as _;
    if b.checks.is_empty() {
        return;
    }
    let field = join(path, "checks");
    if depth != ProbeDepth::Tools {
        v.add(
            field.clone(),
            "needs depth PROBE_DEPTH_TOOLS: only a catalog read can show the tool is read-only",
        );
    } else if auth == AuthMode::PerUser {
        v.add(
            field.clone(),
            "cannot run for an AUTH_MODE_PER_USER backend: its anonymous probe can call no tool",
        );
    }
    if transport == Transport::Sse {
        v.add(field.clone(), "are not supported over TRANSPORT_SSE (legacy HTTP+SSE) yet");
    }
    if b.checks.len() > MAX_CHECKS {
        v.add(field.clone(), format!("has {} checks; the limit is {MAX_CHECKS}", b.checks.len()));
    }
    let mut names = HashSet::new();
    for (j, c) in b.checks.iter().enumerate() {
        let at = |f: &str| format!("{field}[{j}].{f}");
        if c.tool.trim().is_empty() {
            v.add(at("tool"), "must be a tool name, not empty");
        } else if c.tool.chars().count() > MAX_TOOL_NAME_CHARS || c.tool.chars().any(char::is_control) {
            v.add(
                at("tool"),
                format!("must be at most {MAX_TOOL_NAME_CHARS} characters, without control characters"),
            );
        }
        if !c.name.is_empty() {
            check_name(&c.name, at("name"), v);
        }
        let name = check::check_name(c);
        if !name.is_empty() && !names.insert(name) {
            v.add(at("name"), format!("duplicate check name {name:?} (a check without a name goes by its tool's)"));
        }
        if c.arguments.as_ref().is_some_and(|a| a.encoded_len() > MAX_CHECK_ARGUMENTS_BYTES) {
            v.add(at("arguments"), format!("must be at most {} KiB", MAX_CHECK_ARGUMENTS_BYTES / 1024));
        }
        let interval = c.interval.as_ref().map(super::policy::duration);
        let timeout = c.timeout.as_ref().map(super::policy::duration);
        let interval_ok = interval.is_none_or(|i| i.is_some_and(|i| (MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&i)));
        if !interval_ok {
            v.add(at("interval"), format!("must be between {MIN_CHECK_INTERVAL:?} and {MAX_CHECK_INTERVAL:?}"));
        }
        if let Some(t) = timeout
            && !t.is_some_and(|t| t >= MIN_CHECK_TIMEOUT && t <= policy.timeout)
        {
            v.add(
                at("timeout"),
                format!(
                    "must be between {MIN_CHECK_TIMEOUT:?} and the backend's probe timeout ({:?}): the call runs within a probe",
                    policy.timeout
                ),
            );
        }
        let (i, t) = check::timing(c, policy);
        if interval_ok && t >= i {
            v.add(at("timeout"), "must be shorter than the check's interval");
        }
        if let Some(e) = &c.expect {
            if e.text_contains.len() > MAX_EXPECT_BYTES {
                v.add(at("expect.textContains"), format!("must be at most {MAX_EXPECT_BYTES} bytes"));
            }
            if e.json_path.len() > MAX_EXPECT_BYTES {
                v.add(at("expect.jsonPath"), format!("must be at most {MAX_EXPECT_BYTES} bytes"));
            } else if !e.json_path.is_empty()
                && let Err(why) = check::parse_json_path(&e.json_path)
            {
                v.add(at("expect.jsonPath"), format!("must be an RFC 9535 JSONPath query: {why}"));
            }
        }
    }
}

/// Most fingerprints a catalog policy accepts.
pub const MAX_ACCEPTED_FINGERPRINTS: usize = 64;

/// A catalog policy: depth TOOLS; BLOCK only with a catalog the probe can see
/// and a trust anchor in the spec; fingerprints in the form BackendHealth shows.
fn validate_catalog_policy(c: &CatalogPolicy, path: &str, depth: ProbeDepth, auth: AuthMode, v: &mut Violations) {
    if depth != ProbeDepth::Tools {
        v.add(path.to_owned(), "needs depth PROBE_DEPTH_TOOLS: only a catalog read can see a change");
    }
    let on_change = join(path, "onChange");
    match CatalogOnChange::try_from(c.on_change) {
        Err(_) => v.add(on_change, "unknown catalog policy"),
        Ok(CatalogOnChange::Block) => {
            if auth == AuthMode::PerUser {
                v.add(
                    on_change,
                    "BLOCK cannot hold an AUTH_MODE_PER_USER backend: its anonymous probe never sees the catalog",
                );
            }
            if c.accepted.is_empty() {
                v.add(
                    join(path, "accepted"),
                    "BLOCK needs at least one accepted fingerprint: the trust anchor is the spec, never the first catalog seen",
                );
            }
        }
        Ok(CatalogOnChange::Alert | CatalogOnChange::Unspecified) => {}
    }
    if c.accepted.len() > MAX_ACCEPTED_FINGERPRINTS {
        v.add(
            join(path, "accepted"),
            format!("has {} fingerprints; the limit is {MAX_ACCEPTED_FINGERPRINTS}", c.accepted.len()),
        );
    }
    for (i, f) in c.accepted.iter().enumerate() {
        if !crate::catalog::is_fingerprint(f) {
            v.add(
                format!("{path}.accepted[{i}]"),
                "must be a catalog fingerprint: \"sha256:\" and 64 lowercase hex digits",
            );
        }
    }
}

/// The literal IP host of a URL when probes must not connect to it
/// (link-local, cloud metadata, unspecified). Hostnames are checked when they
/// resolve, by the probes' resolver (`probe::dns`, through `probe::ssrf::guard`).
fn forbidden_host(u: &Url) -> Option<std::net::IpAddr> {
    let ip = match u.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    crate::ssrf::is_forbidden(ip).then_some(ip)
}

/// The URL as an error quotes it: its query (which may carry a key) elided.
fn quoted_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{:?}", format!("{base}?…")),
        None => format!("{url:?}"),
    }
}

/// Parses a backend URL; the error quotes it and says what is wrong. A space
/// or control character inside is named as such: the url crate would drop a
/// tab silently, and calls `http://host:1 /mcp` an "invalid port number".
/// Only ASCII white space may surround it, which the url crate trims too
/// (other white space there would be percent-encoded into the path, or make
/// the URL relative).
fn parse_url(url: &str) -> Result<Url, String> {
    let trimmed = url.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some((at, c)) = trimmed.char_indices().find(|(_, c)| c.is_whitespace() || c.is_control()) {
        let what = match c {
            ' ' => "a space".to_owned(),
            '\t' => "a tab".to_owned(),
            c => format!("the character {c:?}"),
        };
        return Err(format!(
            "{} is not a valid URL: it contains {what} at character {}; percent-encode it (a space is %20)",
            quoted_url(url),
            trimmed[..at].chars().count() + 1
        ));
    }
    Url::parse(url).map_err(|e| format!("{} is not a valid URL: {e}", quoted_url(url)))
}

fn forbidden_message(u: &Url) -> String {
    let ip = forbidden_host(u).map(|ip| ip.to_string()).unwrap_or_default();
    format!("host {ip} is a link-local, cloud-metadata or unspecified address; the daemon accepts it only with --allow-link-local-backends")
}

/// Whether a client secret may be sent to `url`: https (the token client
/// verifies the certificate), or http to a loopback host (127.0.0.0/8, ::1,
/// localhost), which never leaves the machine.
pub fn secret_may_travel_to(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return false,
    };
    match url.scheme() {
        "https" => url.host_str().is_some_and(|h| !h.is_empty()),
        "http" => loopback,
        _ => false,
    }
}

fn check_secret(source: Option<&mcp_health_proto::v1::SecretSource>, field: String, v: &mut Violations) {
    match source.and_then(|s| s.source.as_ref()) {
        Some(secret_source::Source::Env(name)) if !name.is_empty() => {}
        Some(secret_source::Source::File(path)) if !path.is_empty() => {}
        _ => v.add(field, "must name an environment variable (env) or a file (file)"),
    }
}

fn validate_auth(auth: Option<&AuthSpec>, path: &str, allow_link_local: bool, v: &mut Violations) -> AuthMode {
    let Some(auth) = auth else { return AuthMode::None };
    let mode = match AuthMode::try_from(auth.mode) {
        Ok(AuthMode::Unspecified) => AuthMode::None,
        Ok(m) => m,
        Err(_) => {
            v.add(join(path, "mode"), "unknown auth mode");
            return AuthMode::None;
        }
    };
    match mode {
        AuthMode::StaticHeader => match &auth.static_header {
            None => v.add(join(path, "staticHeader"), "is required when mode is AUTH_MODE_STATIC_HEADER"),
            Some(h) => {
                let field = join(path, "staticHeader");
                if http::HeaderName::from_bytes(h.header.as_bytes()).is_err() {
                    v.add(join(&field, "header"), "must be a valid HTTP header name");
                }
                if http::HeaderValue::from_str(&h.value_prefix).is_err() {
                    v.add(join(&field, "valuePrefix"), "must be a valid HTTP header value");
                }
                check_secret(h.value.as_ref(), join(&field, "value"), v);
            }
        },
        AuthMode::Oauth2ClientCredentials => match &auth.oauth2_client_credentials {
            None => v.add(
                join(path, "oauth2ClientCredentials"),
                "is required when mode is AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS",
            ),
            Some(o) => {
                let field = join(path, "oauth2ClientCredentials");
                // Empty: discovered from the backend's metadata by the probe.
                if !o.token_url.is_empty() {
                    match Url::parse(&o.token_url) {
                        Ok(u) if !allow_link_local && forbidden_host(&u).is_some() => v.add(join(&field, "tokenUrl"), forbidden_message(&u)),
                        Ok(u) if u.scheme() == "http" && u.host_str().is_some() && !secret_may_travel_to(&u) => v.add(
                            join(&field, "tokenUrl"),
                            "must be an https URL: the client secret travels only over verified TLS (http is accepted only for a loopback host)",
                        ),
                        Ok(u) if secret_may_travel_to(&u) => {}
                        _ => v.add(join(&field, "tokenUrl"), "must be an https URL with a host"),
                    }
                }
                check_secret(o.client_id.as_ref(), join(&field, "clientId"), v);
                match (&o.client_secret, &o.private_key_jwt) {
                    (Some(_), Some(_)) => v.add(
                        join(&field, "privateKeyJwt"),
                        "must not be set with clientSecret: the client authenticates one way",
                    ),
                    (None, Some(jwt)) => {
                        let jwt_field = join(&field, "privateKeyJwt");
                        check_secret(jwt.private_key.as_ref(), join(&jwt_field, "privateKey"), v);
                        if !matches!(jwt.algorithm.as_str(), "ES256" | "RS256") {
                            v.add(join(&jwt_field, "algorithm"), "must be ES256 or RS256");
                        }
                    }
                    (_, None) => check_secret(o.client_secret.as_ref(), join(&field, "clientSecret"), v),
                }
            }
        },
        AuthMode::None | AuthMode::PerUser | AuthMode::Unspecified => {}
    }
    mode
}

fn validate_tls(tls: &TlsSpec, url: Option<&Url>, path: &str, v: &mut Violations) {
    let configured = *tls != TlsSpec::default();
    if configured && url.is_some_and(|u| u.scheme() == "http") {
        v.add(path.to_owned(), "is set, but the url is plain http");
    }
    if tls.client_cert_file.is_empty() != tls.client_key_file.is_empty() {
        v.add(join(path, "clientKeyFile"), "clientCertFile and clientKeyFile go together");
    }
    if tls.dangerous_skip_verification && !tls.ca_file.is_empty() {
        v.add(join(path, "dangerousSkipVerification"), "contradicts caFile");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_health_proto::v1::ProbePolicy;

    fn dur(seconds: i64) -> Option<pbjson_types::Duration> {
        Some(pbjson_types::Duration { seconds, nanos: 0 })
    }

    fn spec(policy: Option<ProbePolicy>, backends: usize) -> GroupSpec {
        GroupSpec {
            name: "g".into(),
            policy,
            backends: (0..backends)
                .map(|i| BackendSpec {
                    name: format!("b{i}"),
                    url: format!("http://127.0.0.1:{}/mcp", 1000 + i),
                    ..BackendSpec::default()
                })
                .collect(),
        }
    }

    /// One backend's `discovery` at `url`: the fields named (empty: valid)
    /// and, when valid, the policy validation produced.
    #[track_caller]
    fn check_discovery(url: &str, discovery: DiscoverySpec, want_fields: &[&str], want: Option<DnsPolicy>) {
        let mut v = Violations::default();
        let got = validate_discovery(&discovery, parse_url(url).ok().as_ref(), "spec.backends[0].discovery", &mut v);
        let fields: Vec<&str> = v.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, want_fields, "{url} {discovery:?}: {:?}", v.0);
        if want_fields.is_empty() {
            assert_eq!(got, want, "{url} {discovery:?}");
        }
        // Through the whole group: the same fields, or the same policy.
        let mut g = spec(None, 1);
        g.backends[0].url = url.into();
        g.backends[0].discovery = Some(discovery.clone());
        let whole = validate_group(&g, "spec", &Limits::default());
        match (&whole, want_fields.is_empty()) {
            (Ok(valid), true) => assert_eq!(valid.backends[0].discovery, want),
            (Err(violations), false) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(fields, want_fields, "{violations:?}");
            }
            _ => panic!("{url} {discovery:?}: {whole:?}"),
        }
    }

    #[test]
    fn dns_discovery_needs_a_name_and_ttls_in_range_and_in_order() {
        use mcp_health_proto::v1::DnsDiscovery;
        let d = |dns: DnsDiscovery| DiscoverySpec { dns: Some(dns) };
        let name = "http://pods.test:8080/mcp";
        let at = |f: &str| format!("spec.backends[0].discovery.dns{f}");
        let (dns, srv, min, max, grace, pct) = (at(""), at(".srv"), at(".minTtl"), at(".maxTtl"), at(".removalGrace"), at(".minHealthyPercent"));
        check_discovery(name, d(DnsDiscovery::default()), &[], Some(DnsPolicy::default()));
        let full = DnsDiscovery {
            srv: "_mcp._tcp.pods.test.".into(),
            min_ttl: dur(2),
            max_ttl: dur(60),
            removal_grace: dur(0),
            min_healthy_percent: Some(50),
        };
        let want = DnsPolicy {
            srv: Some("_mcp._tcp.pods.test".into()),
            min_ttl: std::time::Duration::from_secs(2),
            max_ttl: std::time::Duration::from_secs(60),
            removal_grace: Some(std::time::Duration::ZERO),
            min_healthy_percent: Some(50),
        };
        check_discovery(name, d(full.clone()), &[], Some(want));
        // The rows: (url, discovery, fields named)
        let rows: Vec<(&str, DiscoverySpec, Vec<&str>)> = vec![
            (name, DiscoverySpec { dns: None }, vec!["spec.backends[0].discovery.dns"]),
            ("http://127.0.0.2:8080/mcp", d(DnsDiscovery::default()), vec![&dns]),
            ("http://[::1]:8080/mcp", d(full.clone()), vec![&dns]),
            (
                name,
                d(DnsDiscovery {
                    srv: "_mcp._tcp..test".into(),
                    ..full.clone()
                }),
                vec![&srv],
            ),
            (
                name,
                d(DnsDiscovery {
                    srv: "pods test".into(),
                    ..full.clone()
                }),
                vec![&srv],
            ),
            (
                name,
                d(DnsDiscovery {
                    srv: "-a.test".into(),
                    ..full.clone()
                }),
                vec![&srv],
            ),
            (
                name,
                d(DnsDiscovery {
                    min_ttl: dur(0),
                    ..full.clone()
                }),
                vec![&min],
            ),
            (
                name,
                d(DnsDiscovery {
                    max_ttl: dur(90_000),
                    ..full.clone()
                }),
                vec![&max],
            ),
            (
                name,
                d(DnsDiscovery {
                    max_ttl: Some(pbjson_types::Duration { seconds: -1, nanos: 0 }),
                    ..full.clone()
                }),
                vec![&max],
            ),
            (
                name,
                d(DnsDiscovery {
                    removal_grace: dur(90_000),
                    ..full.clone()
                }),
                vec![&grace],
            ),
            (
                name,
                d(DnsDiscovery {
                    min_ttl: dur(120),
                    max_ttl: dur(60),
                    ..full.clone()
                }),
                vec![&max],
            ),
            // minTtl past the default maxTtl (5m): named at minTtl.
            (
                name,
                d(DnsDiscovery {
                    min_ttl: dur(600),
                    ..DnsDiscovery::default()
                }),
                vec![&min],
            ),
            (
                name,
                d(DnsDiscovery {
                    min_healthy_percent: Some(0),
                    ..full.clone()
                }),
                vec![&pct],
            ),
            (
                name,
                d(DnsDiscovery {
                    min_healthy_percent: Some(101),
                    ..full.clone()
                }),
                vec![&pct],
            ),
        ];
        for (url, discovery, fields) in rows {
            check_discovery(url, discovery, &fields, None);
        }
    }

    #[test]
    fn url_errors_quote_the_url_and_name_a_space_as_such() {
        // (url, the error's description; None: valid)
        let cases: [(&str, Option<&str>); 8] = [
            ("http://127.0.0.1:1/mcp", None),
            (" http://127.0.0.1:1/mcp\r\n", None),
            // Found by fuzz/fuzz_targets/backend_url.rs: only ASCII white space is
            // trimmed (the url crate trims it too); other white space at the ends
            // is named, not percent-encoded into the path or taken for a relative URL.
            (
                "http://host/mcp\u{85}",
                Some("\"http://host/mcp\\u{85}\" is not a valid URL: it contains the character '\\u{85}' at character 16; percent-encode it (a space is %20)"),
            ),
            (
                "\u{a0}http://host/mcp",
                Some("\"\\u{a0}http://host/mcp\" is not a valid URL: it contains the character '\\u{a0}' at character 1; percent-encode it (a space is %20)"),
            ),
            (
                "http://host:1 /mcp",
                Some("\"http://host:1 /mcp\" is not a valid URL: it contains a space at character 14; percent-encode it (a space is %20)"),
            ),
            (
                "http://host/m\tcp",
                Some("\"http://host/m\\tcp\" is not a valid URL: it contains a tab at character 14; percent-encode it (a space is %20)"),
            ),
            (
                "http://host:99999/mcp",
                Some("\"http://host:99999/mcp\" is not a valid URL: invalid port number"),
            ),
            (
                "http://host:x/mcp?key=s3cret",
                Some("\"http://host:x/mcp?…\" is not a valid URL: invalid port number"),
            ),
        ];
        for (url, want) in cases {
            let mut spec = spec(None, 1);
            spec.backends[0].url = url.into();
            let got = validate_group(&spec, "spec", &Limits::default()).err().map(|v| v[0].description.clone());
            assert_eq!(got.as_deref(), want, "{url}");
        }
    }

    /// The fields a validation reports, in order.
    fn fields(spec: &GroupSpec) -> Vec<String> {
        match validate_group(spec, "spec", &Limits::default()) {
            Ok(_) => Vec::new(),
            Err(v) => v.into_iter().map(|fv| fv.field).collect(),
        }
    }

    /// `drainedEndpoints` needs discovery and takes addresses as the
    /// endpoints show them, once each.
    #[test]
    fn drained_endpoints_need_discovery_and_addresses_as_shown() {
        let field = "spec.backends[0].drainedEndpoints";
        let at = |i: usize| format!("{field}[{i}]");
        // (discovered, addresses, fields named)
        let rows: Vec<(bool, Vec<&str>, Vec<String>)> = vec![
            (true, vec![], vec![]),
            (false, vec![], vec![]),
            (true, vec!["10.0.0.1:8080", "[fd00::1]:8080"], vec![]),
            (false, vec!["10.0.0.1:8080"], vec![field.to_owned()]),
            (true, vec!["10.0.0.1"], vec![at(0)]),
            (true, vec!["pods.test:8080"], vec![at(0)]),
            (true, vec!["10.0.0.1:8080", "010.0.0.2:8080"], vec![at(1)]),
            (true, vec!["[fd00:0::1]:8080"], vec![at(0)]),
            (true, vec!["10.0.0.1:8080", "10.0.0.1:8080"], vec![at(1)]),
        ];
        for (discovered, addresses, want) in rows {
            let mut s = spec(None, 1);
            s.backends[0].url = "http://pods.test:8080/mcp".into();
            s.backends[0].discovery = discovered.then(|| DiscoverySpec { dns: Some(Default::default()) });
            s.backends[0].drained_endpoints = addresses.iter().map(|a| (*a).to_owned()).collect();
            assert_eq!(fields(&s), want, "discovered={discovered} {addresses:?}");
        }
        let mut s = spec(None, 1);
        s.backends[0].url = "http://pods.test:8080/mcp".into();
        s.backends[0].discovery = Some(DiscoverySpec { dns: Some(Default::default()) });
        s.backends[0].drained_endpoints = (0..=MAX_DRAINED_ENDPOINTS).map(|i| format!("10.0.{}.{}:80", i / 256, i % 256)).collect();
        assert_eq!(fields(&s), [field]);
    }

    #[test]
    fn the_group_policy_is_checked_once_on_its_own() {
        let bad_timing = ProbePolicy {
            interval: dur(5),
            timeout: dur(10),
            ..ProbePolicy::default()
        };
        let bad_threshold = ProbePolicy {
            unhealthy_threshold: Some(0),
            jitter_percent: Some(99),
            ..ProbePolicy::default()
        };
        // (group policy, backends, expected fields)
        let cases: [(Option<ProbePolicy>, usize, &[&str]); 6] = [
            (None, 0, &[]),
            (None, 2, &[]),
            (Some(bad_timing), 0, &["spec.policy.timeout"]),
            (Some(bad_timing), 3, &["spec.policy.timeout"]),
            (Some(bad_threshold), 0, &["spec.policy.unhealthyThreshold", "spec.policy.jitterPercent"]),
            (Some(bad_threshold), 2, &["spec.policy.unhealthyThreshold", "spec.policy.jitterPercent"]),
        ];
        for (policy, backends, want) in cases {
            assert_eq!(fields(&spec(policy, backends)), want, "policy {policy:?} with {backends} backends");
        }
    }

    #[test]
    fn the_outlier_policy_is_the_groups_and_every_field_is_checked() {
        use crate::outlier::OutlierPolicy as Resolved;
        use mcp_health_proto::v1::OutlierPolicy;
        let on_group = |o: OutlierPolicy| {
            Some(ProbePolicy {
                outlier: Some(o),
                ..ProbePolicy::default()
            })
        };
        let resolved = |n: u32, base: u64, max: u64, pct: u32| Resolved {
            consecutive_failures: n,
            base_ejection_time: std::time::Duration::from_secs(base),
            max_ejection_time: std::time::Duration::from_secs(max),
            max_ejected_percent: pct,
        };
        // (group's outlier policy, violations, resolved policy when valid)
        let cases: Vec<(OutlierPolicy, &[&str], Option<Resolved>)> = vec![
            (OutlierPolicy::default(), &[], Some(resolved(5, 30, 300, 10))),
            (
                OutlierPolicy {
                    consecutive_failures: Some(2),
                    base_ejection_time: dur(5),
                    max_ejection_time: dur(60),
                    max_ejected_percent: Some(100),
                },
                &[],
                Some(resolved(2, 5, 60, 100)),
            ),
            // An unset maximum is at least the base.
            (
                OutlierPolicy {
                    base_ejection_time: dur(600),
                    ..OutlierPolicy::default()
                },
                &[],
                Some(resolved(5, 600, 600, 10)),
            ),
            (
                OutlierPolicy {
                    max_ejected_percent: Some(0),
                    ..OutlierPolicy::default()
                },
                &[],
                Some(resolved(5, 30, 300, 0)),
            ),
            (
                OutlierPolicy {
                    consecutive_failures: Some(0),
                    ..OutlierPolicy::default()
                },
                &["spec.policy.outlier.consecutiveFailures"],
                None,
            ),
            (
                OutlierPolicy {
                    base_ejection_time: dur(0),
                    max_ejected_percent: Some(101),
                    ..OutlierPolicy::default()
                },
                &["spec.policy.outlier.baseEjectionTime", "spec.policy.outlier.maxEjectedPercent"],
                None,
            ),
            (
                OutlierPolicy {
                    base_ejection_time: dur(60),
                    max_ejection_time: dur(30),
                    ..OutlierPolicy::default()
                },
                &["spec.policy.outlier.maxEjectionTime"],
                None,
            ),
            (
                OutlierPolicy {
                    max_ejection_time: dur(-1),
                    ..OutlierPolicy::default()
                },
                &["spec.policy.outlier.maxEjectionTime"],
                None,
            ),
        ];
        for (outlier, want, policy) in cases {
            let s = spec(on_group(outlier), 2);
            assert_eq!(fields(&s), want, "{outlier:?}");
            if let Some(policy) = policy {
                let valid = validate_group(&s, "spec", &Limits::default()).unwrap();
                assert!(valid.backends.iter().all(|b| b.policy.outlier == policy), "{outlier:?}");
            }
        }
        // The default without any policy; and a backend may not set its own.
        let valid = validate_group(&spec(None, 1), "spec", &Limits::default()).unwrap();
        assert_eq!(valid.backends[0].policy.outlier, resolved(5, 30, 300, 10));
        let mut s = spec(None, 2);
        s.backends[1].policy = on_group(OutlierPolicy::default());
        assert_eq!(fields(&s), ["spec.backends[1].policy.outlier"]);
    }

    #[test]
    fn the_rate_limit_hold_is_a_checked_duration_with_a_default() {
        let hold = |d: Option<pbjson_types::Duration>| ProbePolicy {
            rate_limit_hold: d,
            ..ProbePolicy::default()
        };
        // (rateLimitHold, accepted)
        let cases = [
            (None, true),
            (dur(0), true),
            (dur(30), true),
            (dur(24 * 3600), true),
            (dur(24 * 3600 + 1), false),
            (dur(-1), false),
        ];
        for (value, accepted) in cases {
            let want: &[&str] = if accepted { &[] } else { &["spec.policy.rateLimitHold"] };
            assert_eq!(fields(&spec(Some(hold(value)), 1)), want, "{value:?}");
        }
        let valid = validate_group(&spec(None, 1), "spec", &Limits::default()).unwrap();
        assert_eq!(valid.backends[0].policy.rate_limit_hold, crate::spec::policy::DEFAULT_RATE_LIMIT_HOLD);
        // A backend's own hold overrides the group's.
        let mut s = spec(Some(hold(dur(60))), 2);
        s.backends[1].policy = Some(hold(dur(7)));
        let valid = validate_group(&s, "spec", &Limits::default()).unwrap();
        let holds: Vec<u64> = valid.backends.iter().map(|b| b.policy.rate_limit_hold.as_secs()).collect();
        assert_eq!(holds, [60, 7]);
    }

    #[test]
    fn the_edge_interval_is_at_most_the_interval_with_a_default_from_it() {
        let ms = |n: i64| {
            Some(pbjson_types::Duration {
                seconds: n / 1000,
                nanos: (n % 1000) as i32 * 1_000_000,
            })
        };
        let policy = |interval: Option<i64>, timeout: Option<i64>, edge: Option<i64>| {
            Some(ProbePolicy {
                interval: interval.and_then(ms),
                timeout: timeout.and_then(ms),
                edge_interval: edge.and_then(ms),
                ..ProbePolicy::default()
            })
        };
        type Case = (&'static str, Option<ProbePolicy>, Option<ProbePolicy>, &'static [&'static str], u64);
        // (what, group policy, backend b0's policy, violations, b0's edge interval in ms)
        let cases: Vec<Case> = vec![
            ("default: a fifth of the default 10 s", None, None, &[], 2_000),
            ("default: a fifth of the interval", policy(Some(30_000), None, None), None, &[], 6_000),
            ("default: at least 250 ms", policy(Some(1_000), Some(500), None), None, &[], 250),
            ("default: never more than the interval", policy(Some(200), Some(100), None), None, &[], 200),
            ("set", policy(None, None, Some(500)), None, &[], 500),
            ("equal to the interval", policy(Some(1_000), Some(500), Some(1_000)), None, &[], 1_000),
            (
                "the backend's own default from its own interval",
                None,
                policy(Some(5_000), Some(1_000), None),
                &[],
                1_000,
            ),
            (
                "the backend's over the group's",
                policy(None, None, Some(500)),
                policy(None, None, Some(700)),
                &[],
                700,
            ),
            (
                "the group's kept under the backend's interval",
                policy(None, None, Some(500)),
                policy(Some(5_000), Some(1_000), None),
                &[],
                500,
            ),
            (
                "longer than the interval",
                policy(None, None, Some(10_001)),
                None,
                &["spec.policy.edgeInterval"],
                0,
            ),
            ("below 100 ms", policy(None, None, Some(99)), None, &["spec.policy.edgeInterval"], 0),
            ("zero", policy(None, None, Some(0)), None, &["spec.policy.edgeInterval"], 0),
            ("negative", policy(None, None, Some(-1_000)), None, &["spec.policy.edgeInterval"], 0),
            (
                "the group's edge over the backend's shorter interval: named at the backend",
                policy(None, None, Some(3_000)),
                policy(Some(2_000), Some(1_000), None),
                &["spec.backends[0].policy.edgeInterval"],
                0,
            ),
            (
                "the backend's edge over the group's interval",
                policy(Some(2_000), Some(1_000), None),
                policy(None, None, Some(3_000)),
                &["spec.backends[0].policy.edgeInterval"],
                0,
            ),
        ];
        for (what, group, backend, want, want_edge) in cases {
            let mut s = spec(group, 2);
            s.backends[0].policy = backend;
            assert_eq!(fields(&s), want, "{what}");
            if want.is_empty() {
                let valid = validate_group(&s, "spec", &Limits::default()).unwrap();
                assert_eq!(valid.backends[0].policy.edge_interval(), std::time::Duration::from_millis(want_edge), "{what}");
                assert!(valid.backends[1].policy.edge_interval() <= valid.backends[1].policy.interval, "{what}");
            }
        }
    }

    #[test]
    fn a_client_secret_goes_only_to_https_or_loopback_token_urls() {
        let field = "spec.backends[0].auth.oauth2ClientCredentials.tokenUrl";
        // (token URL, accepted)
        let cases = [
            ("https://auth.example.com/token", true),
            ("https://10.1.2.3:8443/token", true),
            ("http://127.0.0.1:8080/token", true),
            ("http://127.8.9.10/token", true),
            ("http://[::1]:9000/token", true),
            ("http://localhost/token", true),
            ("http://LOCALHOST:1/token", true),
            ("http://auth.example.com/token", false),
            ("http://10.1.2.3/token", false),
            ("http://localhost.example.com/token", false),
            ("http://[::2]/token", false),
            ("ftp://127.0.0.1/token", false),
            ("not a url", false),
            // Discovered from the backend's metadata.
            ("", true),
        ];
        for (url, accepted) in cases {
            let mut s = spec(None, 1);
            s.backends[0].auth = Some(AuthSpec {
                mode: AuthMode::Oauth2ClientCredentials as i32,
                oauth2_client_credentials: Some(mcp_health_proto::v1::OAuth2ClientCredentials {
                    token_url: url.into(),
                    client_id: Some(mcp_health_proto::v1::SecretSource {
                        source: Some(secret_source::Source::Env("ID".into())),
                    }),
                    client_secret: Some(mcp_health_proto::v1::SecretSource {
                        source: Some(secret_source::Source::Env("SECRET".into())),
                    }),
                    ..Default::default()
                }),
                ..AuthSpec::default()
            });
            let want: &[&str] = if accepted { &[] } else { &[field] };
            assert_eq!(fields(&s), want, "{url}");
        }
    }

    #[test]
    fn the_client_authenticates_with_a_secret_or_a_signed_jwt() {
        use mcp_health_proto::v1::{OAuth2ClientCredentials, PrivateKeyJwt, SecretSource};
        let env = |name: &str| {
            Some(SecretSource {
                source: Some(secret_source::Source::Env(name.into())),
            })
        };
        let jwt = |key: Option<SecretSource>, algorithm: &str| {
            Some(PrivateKeyJwt {
                private_key: key,
                algorithm: algorithm.into(),
            })
        };
        let field = "spec.backends[0].auth.oauth2ClientCredentials";
        // (client secret, private_key_jwt, the fields refused)
        let cases: Vec<(Option<SecretSource>, Option<PrivateKeyJwt>, Vec<String>)> = vec![
            (env("SECRET"), None, vec![]),
            (None, jwt(env("KEY"), "ES256"), vec![]),
            (None, jwt(env("KEY"), "RS256"), vec![]),
            (None, None, vec![format!("{field}.clientSecret")]),
            (env("SECRET"), jwt(env("KEY"), "ES256"), vec![format!("{field}.privateKeyJwt")]),
            (None, jwt(None, "ES256"), vec![format!("{field}.privateKeyJwt.privateKey")]),
            (None, jwt(env("KEY"), "HS256"), vec![format!("{field}.privateKeyJwt.algorithm")]),
            (None, jwt(env("KEY"), "es256"), vec![format!("{field}.privateKeyJwt.algorithm")]),
            (
                None,
                jwt(None, ""),
                vec![format!("{field}.privateKeyJwt.privateKey"), format!("{field}.privateKeyJwt.algorithm")],
            ),
        ];
        for (client_secret, private_key_jwt, want) in cases {
            let mut s = spec(None, 1);
            let what = format!("{client_secret:?} {private_key_jwt:?}");
            s.backends[0].auth = Some(AuthSpec {
                mode: AuthMode::Oauth2ClientCredentials as i32,
                oauth2_client_credentials: Some(OAuth2ClientCredentials {
                    client_id: env("ID"),
                    client_secret,
                    private_key_jwt,
                    ..Default::default()
                }),
                ..AuthSpec::default()
            });
            let mut got = fields(&s);
            got.sort();
            let mut want = want;
            want.sort();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_backend_policy_is_checked_at_the_backend() {
        let mut s = spec(
            Some(ProbePolicy {
                interval: dur(30),
                ..ProbePolicy::default()
            }),
            2,
        );
        // Valid over the group's 30 s interval, invalid over its own 5 s one.
        s.backends[1].policy = Some(ProbePolicy {
            interval: dur(5),
            timeout: dur(6),
            ..ProbePolicy::default()
        });
        assert_eq!(fields(&s), ["spec.backends[1].policy.timeout"]);
        // A backend that sets no timing inherits the group's, reported once for the group.
        s.policy = Some(ProbePolicy {
            interval: dur(5),
            timeout: dur(6),
            ..ProbePolicy::default()
        });
        s.backends[1].policy = None;
        assert_eq!(fields(&s), ["spec.policy.timeout"]);
    }

    #[test]
    fn catalog_fields_need_depth_tools_and_real_names() {
        use mcp_health_proto::v1::AuthSpec;
        let tools = ProbeDepth::Tools as i32;
        let per_user = Some(AuthSpec {
            mode: AuthMode::PerUser as i32,
            ..AuthSpec::default()
        });
        let interval = |seconds| {
            Some(ProbePolicy {
                catalog_interval: dur(seconds),
                ..ProbePolicy::default()
            })
        };
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let long = "t".repeat(MAX_TOOL_NAME_CHARS + 1);
        // (depth, required tools, auth, backend policy, expected fields)
        type Case = (i32, Vec<String>, Option<AuthSpec>, Option<ProbePolicy>, &'static [&'static str]);
        let cases: Vec<Case> = vec![
            (tools, names(&["search", "fetch"]), None, None, &[]),
            (0, names(&[]), None, None, &[]),
            (0, names(&["search"]), None, None, &["spec.backends[0].requiredTools"]),
            (
                ProbeDepth::Handshake as i32,
                names(&["search"]),
                None,
                None,
                &["spec.backends[0].requiredTools"],
            ),
            (tools, names(&["search"]), per_user.clone(), None, &["spec.backends[0].requiredTools"]),
            (tools, names(&["search", ""]), None, None, &["spec.backends[0].requiredTools[1]"]),
            (tools, names(&[" "]), None, None, &["spec.backends[0].requiredTools[0]"]),
            (tools, names(&["a", "b", "a"]), None, None, &["spec.backends[0].requiredTools[2]"]),
            (tools, vec![long], None, None, &["spec.backends[0].requiredTools[0]"]),
            (tools, names(&["a\nb"]), None, None, &["spec.backends[0].requiredTools[0]"]),
            (tools, names(&[]), None, interval(60), &[]),
            (tools, names(&[]), None, interval(0), &["spec.backends[0].policy.catalogInterval"]),
            (tools, names(&[]), None, interval(24 * 3600 + 1), &["spec.backends[0].policy.catalogInterval"]),
            (0, names(&[]), None, interval(60), &["spec.backends[0].policy.catalogInterval"]),
        ];
        for (depth, required, auth, policy, want) in cases {
            let mut s = spec(None, 1);
            s.backends[0].depth = depth;
            s.backends[0].required_tools = required.clone();
            s.backends[0].auth = auth;
            s.backends[0].policy = policy;
            assert_eq!(fields(&s), want, "depth {depth} required {required:?}");
        }
        // The group's catalogInterval applies to its TOOLS backends; others ignore it.
        let mut s = spec(interval(30), 2);
        s.backends[0].depth = tools;
        let valid = validate_group(&s, "spec", &Limits::default()).expect("valid");
        assert_eq!(valid.backends[0].policy.catalog_interval, std::time::Duration::from_secs(30));
        let valid = validate_group(&spec(None, 1), "spec", &Limits::default()).expect("valid");
        assert_eq!(valid.backends[0].policy.catalog_interval, crate::spec::policy::DEFAULT_CATALOG_INTERVAL);
    }

    #[test]
    fn catalog_policies_need_depth_tools_a_trust_anchor_and_real_fingerprints() {
        use mcp_health_proto::v1::{AuthSpec, CatalogPolicy};
        let good = format!("sha256:{}", "0a".repeat(32));
        let policy = |on_change: CatalogOnChange, accepted: &[&str]| CatalogPolicy {
            on_change: on_change as i32,
            accepted: accepted.iter().map(|s| (*s).to_owned()).collect(),
        };
        let tools = ProbeDepth::Tools as i32;
        let per_user = AuthMode::PerUser as i32;
        let upper = good.to_uppercase().replace("SHA256", "sha256");
        // (depth, auth mode, policy, expected fields)
        let cases: Vec<(i32, i32, CatalogPolicy, &[&str])> = vec![
            (tools, 0, policy(CatalogOnChange::Alert, &[]), &[]),
            (tools, 0, policy(CatalogOnChange::Unspecified, &[]), &[]),
            (tools, 0, policy(CatalogOnChange::Block, &[&good]), &[]),
            (tools, per_user, policy(CatalogOnChange::Alert, &[]), &[]),
            (0, 0, policy(CatalogOnChange::Alert, &[]), &["spec.backends[0].catalog"]),
            (tools, 0, policy(CatalogOnChange::Block, &[]), &["spec.backends[0].catalog.accepted"]),
            (
                tools,
                per_user,
                policy(CatalogOnChange::Block, &[&good]),
                &["spec.backends[0].catalog.onChange"],
            ),
            (
                tools,
                0,
                policy(CatalogOnChange::Block, &[&good, "sha256:abc", &upper, ""]),
                &[
                    "spec.backends[0].catalog.accepted[1]",
                    "spec.backends[0].catalog.accepted[2]",
                    "spec.backends[0].catalog.accepted[3]",
                ],
            ),
            (
                tools,
                0,
                CatalogPolicy {
                    on_change: 9,
                    accepted: vec![],
                },
                &["spec.backends[0].catalog.onChange"],
            ),
        ];
        for (depth, auth, catalog, want) in cases {
            let mut s = spec(None, 1);
            s.backends[0].depth = depth;
            s.backends[0].auth = (auth != 0).then(|| AuthSpec {
                mode: auth,
                ..AuthSpec::default()
            });
            s.backends[0].catalog = Some(catalog.clone());
            assert_eq!(fields(&s), want, "depth {depth} auth {auth} {catalog:?}");
        }
    }
}
