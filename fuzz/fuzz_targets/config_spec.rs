//! Fuzzes the `--config` document (crates/engine/src/config.rs `parse` and `validate`:
//! YAML or JSON, policy durations normalized by crates/core/src/spec/duration.rs, every
//! group through crates/core/src/spec/validate.rs `validate_group`).
//!
//! The input is the document. It must never panic; a document that validates
//! must round-trip: written back as JSON (the proto3-JSON mapping) and as
//! YAML, it parses to the same `HealthConfig` and validates to the same
//! groups.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mcp_health::config::{parse, validate};
use mcp_health::spec::Limits;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let path = Path::new("fuzz.yaml");
    let limits = Limits::default();
    let Ok(config) = parse(text, path) else { return };
    let Ok(groups) = validate(&config, path, &limits) else { return };
    let json = serde_json::to_string(&config).expect("a parsed config serializes");
    let yaml = serde_yaml_ng::to_string(&config).expect("a parsed config serializes");
    for written in [json, yaml] {
        let again = parse(&written, path).unwrap_or_else(|e| panic!("{written:?} does not parse again: {e}"));
        assert_eq!(again, config, "{written:?} parses to another config");
        let valid = validate(&again, path, &limits).unwrap_or_else(|e| panic!("{written:?} does not validate again: {e}"));
        assert_eq!(valid, groups, "{written:?} validates to other groups");
    }
});
