//! Fuzzes how a probe reads the `resource_metadata` URL from a 401's
//! `WWW-Authenticate` header (crates/probe/src/resource_metadata.rs
//! `challenge_url`), differentially against `http-auth`'s RFC 7235
//! challenge-list parser.
//!
//! The input is the header value, as reqwest hands it over (`to_str`: visible
//! ASCII, space and tab). Whenever the oracle parses the header, ours must
//! find the same first `resource_metadata` parameter (any challenge, name
//! matched case-insensitively), its quoted-string unescaped. Where the oracle
//! refuses the header (ours is lenient: servers send unquoted URLs, which are
//! not tokens), ours must still not panic, and what it returns is bounded by
//! the header. And whatever it returns, the URL the probe would fetch is on
//! the backend's own host (no SSRF through a hostile challenge).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_health::probe::fuzzing::{challenge_url, metadata_url_allowed};

fn oracle(header: &str) -> Option<Option<String>> {
    let mut found = None;
    for challenge in http_auth::parser::ChallengeParser::new(header) {
        let challenge = challenge.ok()?;
        if found.is_none() {
            found = challenge
                .params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("resource_metadata"))
                .map(|(_, value)| value.to_unescaped());
        }
    }
    Some(found.filter(|v| !v.is_empty()))
}

fuzz_target!(|input: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(input) else { return };
    let Ok(header) = value.to_str() else { return };
    let got = challenge_url(header);
    if let Some(url) = &got {
        assert!(!url.is_empty() && url.len() <= header.len(), "{url:?} is not bounded by the header");
        let backend = url::Url::parse("http://127.0.0.1:8000/mcp").expect("a valid URL");
        if let Ok(target) = backend.join(url) {
            if metadata_url_allowed(&target, &backend) {
                assert_eq!(target.host(), backend.host(), "metadata fetched from another host");
            }
        }
    }
    if let Some(want) = oracle(header) {
        assert_eq!(got, want, "differs from http-auth on {header:?}");
    }
});
