//! Fuzzes the duration forms of the spec (crates/core/src/spec/duration.rs): Go's
//! `time.ParseDuration` grammar (`parse_go`), the proto3 JSON form written
//! back (`to_proto_json`) and the rewrite of a policy in a document
//! (`normalize`).
//!
//! The input is the duration text. Checked: nothing panics or overflows
//! (built with overflow checks); a duration read is within the proto
//! Duration range of ±10,000 years; its proto3 JSON form reads back to the
//! same nanoseconds both through `parse_go` and, differentially, through
//! pbjson's proto3-JSON Duration parser (what the config finally goes
//! through); `normalize` accepts the text exactly when `parse_go` reads it
//! (after trimming), and its error quotes at most 64 characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_health::spec::duration::{normalize, parse_go, to_proto_json};
use serde_yaml_ng::{Mapping, Value};

const MAX: i128 = 315_576_000_000 * 1_000_000_000;

fn round_trips(nanos: i128) {
    let proto = to_proto_json(nanos);
    assert_eq!(parse_go(&proto), Some(nanos), "{proto} does not read back");
    let d: pbjson_types::Duration = serde_json::from_value(serde_json::Value::from(proto.clone())).unwrap_or_else(|e| panic!("pbjson refuses {proto}: {e}"));
    assert_eq!(
        i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos),
        nanos,
        "pbjson reads {proto} otherwise"
    );
}

fuzz_target!(|input: &[u8]| {
    // Any nanosecond count within the range writes and reads back.
    if let Some(bytes) = input.first_chunk::<16>() {
        round_trips(i128::from_le_bytes(*bytes) % (MAX + 1));
    }
    let Ok(text) = std::str::from_utf8(input) else { return };
    let read = parse_go(text);
    if let Some(nanos) = read {
        assert!((-MAX..=MAX).contains(&nanos), "{text:?} read as {nanos} ns, out of range");
        round_trips(nanos);
    }
    let mut policy = Mapping::new();
    policy.insert("interval".into(), Value::String(text.to_owned()));
    let mut doc = Mapping::new();
    doc.insert("policy".into(), Value::Mapping(policy));
    let mut doc = Value::Mapping(doc);
    match normalize(&mut doc, "") {
        Ok(()) => {
            let nanos = parse_go(text.trim()).expect("normalize accepted what parse_go refuses");
            assert_eq!(doc["policy"]["interval"].as_str(), Some(to_proto_json(nanos).as_str()));
        }
        Err(e) => {
            assert!(parse_go(text.trim()).is_none(), "normalize refused what parse_go reads");
            assert_eq!(e.field, "policy.interval");
            assert!(e.input.chars().count() <= 64, "the error quotes {} characters", e.input.chars().count());
        }
    }
});
