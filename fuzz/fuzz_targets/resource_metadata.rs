//! Fuzzes how a probe reads an RFC 9728 protected-resource metadata document
//! (crates/probe/src/resource_metadata.rs): the bounded read of the body
//! (`body::read_all` with the metadata cap), the JSON parse and `valid`.
//!
//! Input: two bytes of cap (the probe's reply cap, which the metadata cap of
//! 64 KiB further bounds), one byte of chunk size, then an optional backend
//! URL line (a fixed backend if it is not an http(s) URL with a host), then
//! the document. Checked: a body over the cap is refused as too large and any
//! body within it is read; the verdict agrees with a typed serde reading of
//! RFC 9728 §2 (`resource` a URL, `authorization_servers` a non-empty array of
//! URLs): a valid document names this backend's origin, and a document whose
//! `resource` is the backend's URL is valid.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mcp_health::probe::fuzzing::{MAX_METADATA_BYTES, metadata_valid, read_all};
use mcp_health::proto::v1::ReasonCode;
use url::Url;

/// RFC 9728 §2, the two members a probe relies on.
#[derive(serde::Deserialize)]
struct Metadata {
    resource: String,
    authorization_servers: Vec<String>,
}

fn backend_and_doc(rest: &[u8]) -> (Url, &[u8]) {
    if let Some(at) = rest.iter().position(|b| *b == b'\n') {
        if let Some(u) = std::str::from_utf8(&rest[..at]).ok().and_then(|s| Url::parse(s).ok()) {
            if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) {
                return (u, &rest[at + 1..]);
            }
        }
    }
    (Url::parse("http://127.0.0.1:8000/mcp").expect("a valid URL"), rest)
}

fuzz_target!(|input: &[u8]| {
    let Some((cap, rest)) = common::cap_and_rest(input) else { return };
    let Some((&chunk, rest)) = rest.split_first() else { return };
    let (backend, doc) = backend_and_doc(rest);
    let cap = cap.min(MAX_METADATA_BYTES);
    let mut resp = common::response("application/json", doc, usize::from(chunk));
    let read = futures::executor::block_on(read_all(&mut resp, cap));
    let bytes = match read {
        Ok(bytes) => {
            assert!(doc.len() <= cap, "{} bytes read past a cap of {cap}", doc.len());
            assert_eq!(bytes, doc, "the body read is not the body sent");
            bytes
        }
        Err(reason) => {
            assert!(doc.len() > cap, "a body within the cap was refused: {reason:?}");
            assert_eq!(reason.code, ReasonCode::ResponseTooLarge);
            return;
        }
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return;
    };
    let valid = metadata_valid(&doc, &backend);
    let typed = serde_json::from_value::<Metadata>(doc.clone())
        .ok()
        .filter(|m| !m.authorization_servers.is_empty() && m.authorization_servers.iter().all(|s| Url::parse(s).is_ok()));
    let resource = typed.as_ref().and_then(|m| Url::parse(&m.resource).ok());
    if valid {
        let resource = resource.expect("a valid document is valid RFC 9728 metadata");
        assert_eq!(resource.origin(), backend.origin(), "valid metadata names another origin");
    } else if let Some(resource) = resource {
        let mut bare = resource.clone();
        bare.set_fragment(None);
        assert_ne!(bare, backend, "metadata naming the backend's own URL was refused");
    }
});
