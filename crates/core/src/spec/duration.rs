//! Durations as people write them in config files and `mcp-healthctl apply`:
//! Go's and Kubernetes' `time.ParseDuration` forms (`500ms`, `1m30s`, `2h`,
//! `1.5h`) and the canonical proto3 JSON form (`0.5s`), rewritten to the
//! proto3 JSON form before the pbjson deserialization sees them.
//!
//! A hand-written parser: the crates that port Go's parser (go-parse-duration
//! 0.1) mis-slice multi-byte units (`µs`) and get the overflow bound wrong, and
//! humantime accepts a different grammar (`1 day`, no fractions).

use serde_yaml_ng::Value;

/// What an error says is accepted.
pub const ACCEPTED_FORMS: &str = "a duration like 500ms, 1m30s, 2h or 0.5s (units ns, us, ms, s, m, h)";

/// The duration fields of a `ProbePolicy`, by their JSON and proto names. A
/// field missing here reaches pbjson unconverted, which takes only the proto3
/// form (`1m` fails with "missing 's' suffix"): the tests check this list
/// against every Duration field of the config messages' descriptors.
const POLICY_DURATION_FIELDS: &[&str] = &[
    "interval",
    "timeout",
    "degradedLatency",
    "degraded_latency",
    "initialSpread",
    "initial_spread",
    "rateLimitHold",
    "rate_limit_hold",
    "edgeInterval",
    "edge_interval",
    "catalogInterval",
    "catalog_interval",
];

/// The duration fields of an `OutlierPolicy` (a policy's `outlier`).
const OUTLIER_DURATION_FIELDS: &[&str] = &["baseEjectionTime", "base_ejection_time", "maxEjectionTime", "max_ejection_time"];
/// The duration fields of a `DnsDiscovery` (a backend's `discovery.dns`).
const DNS_DURATION_FIELDS: &[&str] = &["minTtl", "min_ttl", "maxTtl", "max_ttl", "removalGrace", "removal_grace"];

/// The duration fields of a `ToolCheck` (each entry of a backend's `checks`).
const CHECK_DURATION_FIELDS: &[&str] = &["interval", "timeout"];

/// A duration that could not be read, with the field it was in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {input:?} is not {ACCEPTED_FORMS}")]
pub struct DurationError {
    pub field: String,
    /// What was written, cut to 64 characters.
    pub input: String,
}

/// A signed duration in whole nanoseconds.
type Nanos = i128;

const UNITS: &[(&str, Nanos)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.ParseDuration` grammar, `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or
/// `0`, into nanoseconds. Fractions are exact (Go rounds through a float64).
/// None for anything else, or past ±10,000 years (the proto Duration range).
pub fn parse_go(text: &str) -> Option<Nanos> {
    const MAX: Nanos = 315_576_000_000 * 1_000_000_000;
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: Nanos = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = UNITS.iter().find(|(u, _)| *u == unit)?.1;
        // Digits past the 30th cannot matter (and would overflow): cut them.
        let int: Nanos = if int.is_empty() { 0 } else { int.get(..int.len().min(30))?.parse().ok()? };
        if int.checked_mul(scale)? > MAX {
            return None;
        }
        let frac = &frac[..frac.len().min(18)];
        let frac_nanos = if frac.is_empty() {
            0
        } else {
            // Rounded to the nearest nanosecond, as Go's float64 arithmetic does.
            let denominator = 10_i128.pow(u32::try_from(frac.len()).ok()?);
            (frac.parse::<Nanos>().ok()? * scale + denominator / 2) / denominator
        };
        total += int * scale + frac_nanos;
        if total > MAX {
            return None;
        }
        rest = after;
    }
    Some(if negative { -total } else { total })
}

/// The proto3 JSON form of a duration: seconds with up to 9 fraction digits.
pub fn to_proto_json(nanos: Nanos) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let (secs, frac) = (nanos.abs() / 1_000_000_000, nanos.abs() % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{secs}s")
    } else {
        let digits = format!("{frac:09}");
        format!("{sign}{secs}.{}s", digits.trim_end_matches('0'))
    }
}

/// Rewrites every policy, check and discovery duration in a config document (a
/// `HealthConfig`, a `GroupSpec` or any tree holding `policy` and `discovery`
/// mappings and `checks` sequences) to its proto3 JSON form. `path` names the document's root in errors ("" for none).
pub fn normalize(value: &mut Value, path: &str) -> Result<(), DurationError> {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let Some(key) = key.as_str() else { continue };
                let child_path = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
                if key == "policy" {
                    normalize_fields(child, &child_path, POLICY_DURATION_FIELDS)?;
                    if let Value::Mapping(policy) = child
                        && let Some(outlier) = policy.get_mut("outlier")
                    {
                        normalize_fields(outlier, &format!("{child_path}.outlier"), OUTLIER_DURATION_FIELDS)?;
                    }
                }
                if key == "discovery"
                    && let Value::Mapping(discovery) = child
                    && let Some(dns) = discovery.get_mut("dns")
                {
                    normalize_fields(dns, &format!("{child_path}.dns"), DNS_DURATION_FIELDS)?;
                }
                if key == "checks"
                    && let Value::Sequence(checks) = child
                {
                    for (i, check) in checks.iter_mut().enumerate() {
                        normalize_fields(check, &format!("{child_path}[{i}]"), CHECK_DURATION_FIELDS)?;
                    }
                }
                normalize(child, &child_path)?;
            }
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().enumerate().try_for_each(|(i, item)| normalize(item, &format!("{path}[{i}]"))),
        Value::Tagged(tagged) => normalize(&mut tagged.value, path),
        _ => Ok(()),
    }
}

fn normalize_fields(mapping: &mut Value, path: &str, fields: &[&str]) -> Result<(), DurationError> {
    let Value::Mapping(map) = mapping else { return Ok(()) };
    for field in fields {
        let Some(value) = map.get_mut(*field) else { continue };
        let error = |input: String| DurationError {
            field: format!("{path}.{field}"),
            input: input.chars().take(64).collect(),
        };
        match value {
            Value::Null => {}
            Value::String(text) => {
                let nanos = parse_go(text.trim()).ok_or_else(|| error(text.clone()))?;
                *text = to_proto_json(nanos);
            }
            other => {
                let shown = serde_yaml_ng::to_string(other).unwrap_or_default();
                return Err(error(shown.trim_end().to_owned()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_proto_forms() {
        // (input, nanoseconds): Go's own test table (time/time_test.go) and the proto3 JSON form.
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("1.0040s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("500ms", 500_000_000),
            ("1m30s", 90_000_000_000),
            ("2h", 7_200_000_000_000),
            ("0.5s", 500_000_000),
            ("0.000000001s", 1),
            ("1.5h", 5_400_000_000_000),
            ("0s", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go(text), Some(*want), "{text}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for text in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1 s",
            " 1s",
            "1s ",
            "1S",
            "1sec",
            "1.5.5s",
            "1e3s",
            "0x1s",
            "\u{b5}",
            "1\u{b5}",
            "-1s-1s",
            "99999999999999999999999h",
            "100000000h",
        ] {
            assert_eq!(parse_go(text), None, "{text:?}");
        }
    }

    #[test]
    fn proto_json_form() {
        for (nanos, want) in [
            (0, "0s"),
            (500_000_000, "0.5s"),
            (90_000_000_000, "90s"),
            (1, "0.000000001s"),
            (-1_500_000_000, "-1.5s"),
            (7_200_000_000_000, "7200s"),
        ] {
            assert_eq!(to_proto_json(nanos), want);
        }
    }

    #[test]
    fn the_rate_limit_hold_takes_the_same_forms() {
        let mut doc: Value =
            serde_yaml_ng::from_str("name: a\npolicy: {rateLimitHold: 5m}\nbackends: [{name: b, policy: {rate_limit_hold: 1m30s}}]\n").unwrap();
        normalize(&mut doc, "").unwrap();
        assert_eq!(doc["policy"]["rateLimitHold"].as_str(), Some("300s"));
        assert_eq!(doc["backends"][0]["policy"]["rate_limit_hold"].as_str(), Some("90s"));
        let mut doc: Value = serde_yaml_ng::from_str("name: a\npolicy: {rateLimitHold: soon}\n").unwrap();
        assert_eq!(normalize(&mut doc, "").unwrap_err().field, "policy.rateLimitHold");
    }

    #[test]
    fn policy_durations_are_rewritten_and_errors_name_the_field_and_the_forms() {
        let mut doc: Value = serde_yaml_ng::from_str(
            "groups:\n- name: a\n  policy: {interval: 1m30s, timeout: 500ms, degradedLatency: 0.25s}\n  backends:\n  - {name: timeout, url: 'http://h/2h', policy: {timeout: 2h}}\n",
        )
        .unwrap();
        normalize(&mut doc, "").unwrap();
        let policy = &doc["groups"][0]["policy"];
        assert_eq!(
            (policy["interval"].as_str(), policy["timeout"].as_str(), policy["degradedLatency"].as_str()),
            (Some("90s"), Some("0.5s"), Some("0.25s"))
        );
        let backend = &doc["groups"][0]["backends"][0];
        assert_eq!(backend["policy"]["timeout"].as_str(), Some("7200s"));
        assert_eq!(
            (backend["name"].as_str(), backend["url"].as_str()),
            (Some("timeout"), Some("http://h/2h")),
            "only policy fields change"
        );

        // (document, field named in the error)
        let cases = [
            ("groups:\n- name: a\n  policy: {timeout: 5 minutes}\n", "groups[0].policy.timeout"),
            (
                "groups:\n- name: a\n  backends: [{name: b, policy: {interval: 3}}]\n",
                "groups[0].backends[0].policy.interval",
            ),
            ("name: a\npolicy: {degraded_latency: 1d}\n", "policy.degraded_latency"),
        ];
        for (text, field) in cases {
            let mut doc: Value = serde_yaml_ng::from_str(text).unwrap();
            let err = normalize(&mut doc, "").unwrap_err();
            assert_eq!(err.field, field);
            let message = err.to_string();
            assert!(message.starts_with(field) && message.contains("500ms, 1m30s, 2h or 0.5s"), "{message}");
        }
    }
}
