//! Fuzzes the backend URL rules (crates/core/src/spec/validate.rs, through
//! `validate_group`) differentially against the `url` crate.
//!
//! The input is the URL text of a backend in an otherwise valid group.
//! Ours must accept it exactly when the `url` crate parses it to an http or
//! https URL with a non-empty host and no credentials, it holds no space or
//! control character (other than ASCII white space at the ends, which the
//! URL parser trims too), and its host is not a forbidden literal address (link-local, cloud
//! metadata, unspecified) unless those are allowed; an accepted backend's URL
//! is the one the `url` crate parsed. A refusal names the url field only,
//! and never quotes the query (which may carry a key): only one
//! character of it, when that one is a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_health::probe::ssrf::is_forbidden;
use mcp_health::proto::v1::{BackendSpec, GroupSpec};
use mcp_health::spec::{Limits, validate_group};
use url::{Host, Url};

/// What may be written around a URL: ASCII white space (which the url crate
/// strips too, with the other C0 controls that ours refuses).
fn url_trimmed(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

fn oracle(s: &str, allow_link_local: bool) -> Option<Url> {
    if url_trimmed(s).chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let u = Url::parse(s).ok()?;
    let forbidden = match u.host() {
        Some(Host::Ipv4(ip)) => is_forbidden(ip.into()),
        Some(Host::Ipv6(ip)) => is_forbidden(ip.into()),
        _ => false,
    };
    let ok = matches!(u.scheme(), "http" | "https")
        && u.host_str().is_some_and(|h| !h.is_empty())
        && u.username().is_empty()
        && u.password().is_none()
        && (allow_link_local || !forbidden);
    ok.then_some(u)
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let allow_link_local = flags % 2 == 1;
    let spec = GroupSpec {
        name: "g".into(),
        backends: vec![BackendSpec {
            name: "b".into(),
            url: text.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let limits = Limits {
        allow_link_local_backends: allow_link_local,
        ..Limits::default()
    };
    let got = validate_group(&spec, "spec", &limits);
    let want = oracle(text, allow_link_local);
    match (got, want) {
        (Ok(group), Some(want)) => assert_eq!(group.backends[0].url, want),
        (Err(violations), None) => {
            assert!(violations.iter().all(|v| v.field == "spec.backends[0].url"), "{violations:?}");
            // A URL the url crate refuses is quoted with its query elided;
            // the other descriptions quote nothing of the URL.
            if let Some((base, _query)) = text.split_once('?') {
                let quoted = format!("{:?}", format!("{base}?…"));
                for v in violations.iter().filter(|v| v.description.contains(" is not a valid URL")) {
                    assert!(v.description.starts_with(&quoted), "the error quotes the query: {}", v.description);
                }
            }
        }
        (got, want) => panic!(
            "{text:?}: ours {:?}, url crate {:?}",
            got.map(|g| g.backends[0].url.to_string()),
            want.map(|u| u.to_string())
        ),
    }
});
