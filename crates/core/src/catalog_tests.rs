//! Table tests for tool catalogs: fingerprints, diffs by name, the
//! required-tools rule. One helper per table.

use serde_json::{Value, json};

use super::catalog::{Catalog, CatalogDiff, diff, is_fingerprint, missing_tools};
use super::outcome::OutcomeClass::{self, AuthRequired, Failure, RateLimited, Refused, Slow, Success, Throttled, ToolsFailing};
use super::outcome::{ProbeOutcome, Reason, ServerFacts};
use mcp_health_proto::v1::ReasonCode;

fn catalog(tools: Value) -> Catalog {
    Catalog::from_tools(tools.as_array().expect("an array of tools")).expect("hashable tools")
}

/// Whether two catalogs get the same fingerprint.
#[track_caller]
fn check_same(cases: &[(&str, Value, Value, bool)]) {
    for (what, a, b, same) in cases {
        let (fa, fb) = (catalog(a.clone()).fingerprint, catalog(b.clone()).fingerprint);
        assert_eq!(fa == fb, *same, "{what}: {fa} vs {fb}");
        assert!(is_fingerprint(&fa), "{what}: {fa}");
    }
}

#[test]
fn fingerprints() {
    let echo = json!({"name": "echo", "description": "Echo the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}});
    check_same(&[
        (
            "key order, top level and nested",
            json!([echo]),
            json!([{"inputSchema": {"properties": {"text": {"type": "string"}}, "type": "object"}, "description": "Echo the text.", "name": "echo"}]),
            true,
        ),
        (
            "_meta is left out",
            json!([echo]),
            json!([{"name": "echo", "description": "Echo the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "_meta": {"x": 1}}]),
            true,
        ),
        (
            "tool order",
            json!([echo, {"name": "add", "inputSchema": {}}]),
            json!([{"name": "add", "inputSchema": {}}, echo]),
            true,
        ),
        (
            "numbers in canonical form (1.0 is 1)",
            json!([{"name": "n", "inputSchema": {"maximum": 1.0}}]),
            json!([{"name": "n", "inputSchema": {"maximum": 1}}]),
            true,
        ),
        (
            "a description",
            json!([echo]),
            json!([{"name": "echo", "description": "Echo the text!", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]),
            false,
        ),
        (
            "a new field",
            json!([echo]),
            json!([{"name": "echo", "description": "Echo the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "annotations": {"readOnlyHint": true}}]),
            false,
        ),
        (
            "a rename with an identical definition",
            json!([echo]),
            json!([{"name": "echo2", "description": "Echo the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]),
            false,
        ),
        ("a tool more", json!([echo]), json!([echo, {"name": "add"}]), false),
        (
            "_meta only inside is kept",
            json!([{"name": "a", "x": {"_meta": 1}}]),
            json!([{"name": "a", "x": {"_meta": 2}}]),
            false,
        ),
    ]);
}

#[test]
fn fingerprint_is_sha256_over_sorted_jcs_hashes() {
    // Pinned: sha256 of the JCS text {"inputSchema":{"type":"object"},"name":"echo"}
    // is a85008ed...; the catalog's is sha256 over that hash's 32 bytes.
    let c = catalog(json!([{"name": "echo", "inputSchema": {"type": "object"}}]));
    assert_eq!(c.fingerprint, "sha256:818fc5e6c11a0e2756f29de8946c7f426f7e14b96bac85068cb794bb7f4da807");
    let c = catalog(json!([]));
    assert_eq!(c.fingerprint, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#[test]
fn a_paginated_catalog_hashes_like_the_whole() {
    let tools = json!([{"name": "a"}, {"name": "b", "description": "x"}, {"name": "c"}]);
    let pages = [json!([{"name": "a"}]), json!([{"description": "x", "name": "b"}, {"name": "c"}])];
    let paged = Catalog::from_tools(pages.iter().flat_map(|p| p.as_array().expect("page"))).expect("hashable");
    assert_eq!(paged, catalog(tools));
}

#[test]
fn tools_without_a_name_are_refused() {
    for bad in [json!(["echo"]), json!([{"description": "no name"}]), json!([{"name": 3}])] {
        assert!(Catalog::from_tools(bad.as_array().expect("array")).is_err(), "{bad}");
    }
}

#[track_caller]
fn check_diffs(cases: &[(&str, Value, Value, CatalogDiff)]) {
    for (what, old, new, want) in cases {
        assert_eq!(&diff(&catalog(old.clone()), &catalog(new.clone())), want, "{what}");
    }
}

fn d(added: &[&str], removed: &[&str], changed: &[&str]) -> CatalogDiff {
    let v = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect();
    CatalogDiff {
        added: v(added),
        removed: v(removed),
        changed: v(changed),
    }
}

#[test]
fn diffs_by_name() {
    let a = json!({"name": "a", "description": "A"});
    let b = json!({"name": "b", "description": "B"});
    check_diffs(&[
        ("nothing", json!([a, b]), json!([b, a]), d(&[], &[], &[])),
        ("added", json!([a]), json!([a, b]), d(&["b"], &[], &[])),
        ("removed", json!([a, b]), json!([a]), d(&[], &["b"], &[])),
        (
            "description changed",
            json!([a]),
            json!([{"name": "a", "description": "A!"}]),
            d(&[], &[], &["a"]),
        ),
        (
            "renamed, same description",
            json!([a]),
            json!([{"name": "z", "description": "A"}]),
            d(&["z"], &["a"], &[]),
        ),
        (
            "_meta only",
            json!([a]),
            json!([{"name": "a", "description": "A", "_meta": {"v": 2}}]),
            d(&[], &[], &[]),
        ),
        (
            "all at once, sorted",
            json!([a, b, {"name": "c"}]),
            json!([{"name": "y"}, {"name": "b", "description": "B2"}, {"name": "x"}]),
            d(&["x", "y"], &["a", "c"], &["b"]),
        ),
    ]);
}

#[test]
fn missing_required_tools() {
    let c = catalog(json!([{"name": "search"}, {"name": "fetch"}, {"name": "fetch", "x": 1}]));
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["search"], &[]),
        (&["fetch", "search"], &[]),
        (&["write"], &["write"]),
        (&["write", "search", "delete"], &["write", "delete"]),
        (&["Search"], &["Search"]),
    ];
    for (required, want) in cases {
        let required: Vec<String> = required.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(missing_tools(&required, &c), *want, "{required:?}");
    }
}

#[test]
fn required_tools_turn_live_answers_into_failures() {
    let cases: &[(OutcomeClass, &[&str], OutcomeClass)] = &[
        (Success, &[], Success),
        (Success, &["a"], Refused),
        (Slow, &["a"], Refused),
        (ToolsFailing, &["a"], Refused),
        (RateLimited, &["a"], Refused),
        // These say more than a missing tool does, and are kept.
        (Failure, &["a"], Failure),
        (Refused, &["a"], Refused),
        (AuthRequired, &["a"], AuthRequired),
        (Throttled, &["a"], Throttled),
    ];
    for (class, missing, want) in cases {
        let mut o = ProbeOutcome::success(ServerFacts::default());
        o.class = *class;
        o.reason = Reason::new(ReasonCode::Ok, "before");
        let judged = o.clone().judge_required(missing);
        assert_eq!(judged.class, *want, "{class:?} {missing:?}");
        if *class != *want {
            assert_eq!(judged.reason.code, ReasonCode::RequiredToolMissing);
            assert!(judged.reason.message.ends_with(&missing.join(", ")), "{}", judged.reason.message);
        } else if !matches!(class, Failure | Refused) || missing.is_empty() {
            assert_eq!(judged.reason, o.reason, "{class:?} {missing:?}");
        }
    }
    let two = ProbeOutcome::success(ServerFacts::default()).judge_required(&["search", "fetch"]);
    assert_eq!(two.reason.message, "required tools missing from the catalog: search, fetch");
}

#[test]
fn fingerprint_form() {
    let hex64 = "0123456789abcdef".repeat(4);
    for (s, ok) in [
        (format!("sha256:{hex64}"), true),
        (format!("sha256:{}", hex64.to_uppercase()), false),
        (format!("sha512:{hex64}"), false),
        (format!("sha256:{}", &hex64[1..]), false),
        (format!("sha256:{hex64}0"), false),
        (hex64.clone(), false),
        (String::new(), false),
        (format!("sha256:{}g", &hex64[1..]), false),
    ] {
        assert_eq!(is_fingerprint(&s), ok, "{s}");
    }
}

#[test]
fn known_catalog_takes_reads_in_turn() {
    use super::catalog::{CatalogRead, KnownCatalog};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};
    let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let whole = |v: Value| CatalogRead::Whole(Arc::new(catalog(v)));
    let (a, b) = (json!([{"name": "a"}]), json!([{"name": "a", "description": "new"}]));
    let (fa, fb) = (catalog(a.clone()).fingerprint, catalog(b.clone()).fingerprint);
    let mut k = KnownCatalog::default();
    // (read at second s, shown changed, the change's (from, to, changed names), fingerprint after, changed_at after, note after)
    type Step = (
        u64,
        Option<CatalogRead>,
        bool,
        Option<(String, String, Vec<String>)>,
        String,
        Option<u64>,
        &'static str,
    );
    let steps: Vec<Step> = vec![
        (1, None, false, None, String::new(), None, ""),
        (2, Some(whole(a.clone())), true, None, fa.clone(), Some(2), ""),
        (3, Some(whole(a.clone())), false, None, fa.clone(), Some(2), ""),
        (4, None, false, None, fa.clone(), Some(2), ""),
        (5, Some(CatalogRead::GaveUp("too big".into())), true, None, fa.clone(), Some(2), "too big"),
        (6, Some(CatalogRead::GaveUp("too big".into())), false, None, fa.clone(), Some(2), "too big"),
        (7, Some(whole(a.clone())), true, None, fa.clone(), Some(2), ""),
        (
            8,
            Some(whole(b.clone())),
            true,
            Some((fa.clone(), fb.clone(), vec!["a".to_owned()])),
            fb.clone(),
            Some(8),
            "",
        ),
    ];
    for (s, read, shown, change, fingerprint, changed_at, note) in steps {
        let taken = k.take(read.as_ref(), t(s));
        assert_eq!(taken.shown, shown, "second {s}");
        let got = taken.change.map(|c| (c.from, c.to, c.diff.expect("tools known").changed));
        assert_eq!(got, change, "second {s}");
        assert_eq!(
            (&k.fingerprint, k.changed_at, k.note.as_str()),
            (&fingerprint, changed_at.map(t), note),
            "second {s}"
        );
    }
    // A fingerprint another replica shared: the tools read here no longer match it.
    k.take_shared(&fa, Some(t(9)), "");
    assert_eq!((k.fingerprint.as_str(), k.tools.is_none()), (fa.as_str(), true));
    let taken = k.take(Some(&whole(b)), t(10));
    assert_eq!(taken.change.map(|c| (c.from, c.to, c.diff)), Some((fa, fb, None)));
}

#[test]
fn blocked_catalogs_turn_live_answers_into_failures_naming_the_tools() {
    use super::catalog::{blocked, describe};
    let c = catalog(json!([{"name": "a"}]));
    assert!(!blocked(std::slice::from_ref(&c.fingerprint), &c));
    assert!(blocked(&[], &c));
    assert!(blocked(&["sha256:other".to_owned()], &c));
    let many: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let cases = [
        (d(&[], &[], &[]), ""),
        (d(&["b"], &["a"], &[]), "added b; removed a"),
        (d(&[], &[], &["echo"]), "changed echo"),
        (
            CatalogDiff {
                added: many,
                ..CatalogDiff::default()
            },
            "added t0, t1, t2, t3, t4, t5, t6, t7 and 2 more",
        ),
    ];
    for (diff, want) in &cases {
        assert_eq!(describe(diff), *want);
    }
    // (class, diff since the last accepted read, class after, message)
    let fp = "sha256:ff";
    let judge: &[(OutcomeClass, Option<CatalogDiff>, OutcomeClass, &str)] = &[
        (Success, None, Refused, "catalog sha256:ff is not accepted"),
        (Slow, Some(d(&[], &[], &[])), Refused, "catalog sha256:ff is not accepted"),
        (
            ToolsFailing,
            Some(d(&["x"], &[], &["echo"])),
            Refused,
            "catalog sha256:ff is not accepted; since the last accepted catalog: added x; changed echo",
        ),
        (RateLimited, None, Refused, "catalog sha256:ff is not accepted"),
        (Failure, None, Failure, "before"),
        (AuthRequired, None, AuthRequired, "before"),
        (Throttled, None, Throttled, "before"),
    ];
    for (class, diff, want, message) in judge {
        let mut o = ProbeOutcome::success(ServerFacts::default());
        o.class = *class;
        o.reason = Reason::new(ReasonCode::Ok, "before");
        let judged = o.judge_blocked(fp, diff.as_ref());
        assert_eq!((judged.class, judged.reason.message.as_str()), (*want, *message), "{class:?}");
        if *message != "before" {
            assert_eq!(judged.reason.code, ReasonCode::CatalogChanged);
        }
    }
}
