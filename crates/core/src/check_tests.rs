//! Table tests for synthetic checks: judging results, the read-only rule, and
//! excerpts (bounded, redacted).

use serde_json::{Value, json};

use super::catalog::Catalog;
use super::check::{CheckFailure, FailureClass, MAX_EXCERPT_BYTES, excerpt, judge, may_call, rpc_error};
use mcp_health_proto::v1::{CheckExpectation, ReasonCode, ToolCheck};

fn expect(is_error: bool, text_contains: &str, json_path: &str) -> CheckExpectation {
    CheckExpectation {
        is_error,
        text_contains: text_contains.into(),
        json_path: json_path.into(),
    }
}

fn text(t: &str) -> Value {
    json!({"content": [{"type": "text", "text": t}]})
}

#[test]
fn results_are_judged_against_the_expectation() {
    let ok = json!({"content": [{"type": "text", "text": "status: ok"}], "structuredContent": {"status": "ok", "n": 3}});
    let failed = json!({"content": [{"type": "text", "text": "upstream down"}], "isError": true});
    // (result, expectation, failure class or None)
    let cases: Vec<(Value, Option<CheckExpectation>, Option<FailureClass>)> = vec![
        (ok.clone(), None, None),
        (failed.clone(), None, Some(FailureClass::IsError)),
        (failed.clone(), Some(expect(true, "", "")), None),
        (ok.clone(), Some(expect(true, "", "")), Some(FailureClass::IsError)),
        (ok.clone(), Some(expect(false, "ok", "")), None),
        (ok.clone(), Some(expect(false, "OK", "")), Some(FailureClass::Expectation)),
        (json!({}), Some(expect(false, "ok", "")), Some(FailureClass::Expectation)),
        (ok.clone(), Some(expect(false, "", "$[?@.status == 'ok']")), None),
        (ok.clone(), Some(expect(false, "", "$.structuredContent.n")), None),
        (ok.clone(), Some(expect(false, "", "$[?@.status == 'down']")), Some(FailureClass::Expectation)),
        (ok.clone(), Some(expect(false, "", "$.nothing")), Some(FailureClass::Expectation)),
        (ok.clone(), Some(expect(false, "status", "$.structuredContent.n")), None),
        (ok.clone(), Some(expect(false, "", "$[")), Some(FailureClass::Expectation)),
        // Non-text content never matches textContains.
        (
            json!({"content": [{"type": "image", "data": "ok"}]}),
            Some(expect(false, "ok", "")),
            Some(FailureClass::Expectation),
        ),
    ];
    for (result, e, want) in cases {
        let got = judge(&result, e.as_ref(), &[]).err().map(|f| f.class);
        assert_eq!(got, want, "{result} {e:?}");
    }
}

#[test]
fn failures_name_the_check_and_the_class_with_a_bounded_redacted_excerpt() {
    let long = "x".repeat(10_000);
    let f = judge(&text(&long), Some(&expect(false, "ok", "")), &[]).unwrap_err();
    assert!(f.detail.len() < 2 * MAX_EXCERPT_BYTES, "{}", f.detail);
    let r = f.reason("billing");
    assert_eq!(r.code, ReasonCode::CheckFailed);
    assert!(
        r.message
            .starts_with("check billing failed (unmet expectation): no text content contains \"ok\""),
        "{}",
        r.message
    );

    let leak = "token sk_live_4eC39HqLyjWDarjtT1zdp7dc and Bearer abc and hunter2";
    let f = judge(&json!({"content": [{"type": "text", "text": leak}], "isError": true}), None, &["hunter2"]).unwrap_err();
    assert_eq!(f.class, FailureClass::IsError);
    for secret in ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "abc", "hunter2"] {
        assert!(!f.detail.contains(secret), "{secret} in {}", f.detail);
    }
    assert!(f.detail.contains("token [redacted] and Bearer [redacted] and [redacted]"), "{}", f.detail);

    let e = rpc_error(-32603, "db password=Sup3rSecretPassw0rdValue!! failed", &[]);
    assert_eq!(e.class, FailureClass::JsonRpc);
    assert_eq!(e.detail, "tools/call failed with JSON-RPC error -32603: \"db password=[redacted]!! failed\"");
    assert_eq!(
        CheckFailure::new(FailureClass::Timeout, "no answer within 500 ms").reason("c").message,
        "check c failed (timeout): no answer within 500 ms"
    );
}

#[test]
fn excerpts_are_bounded_on_a_character_boundary_and_keep_plain_words() {
    // (text, excerpt)
    let cases: &[(&str, &str)] = &[
        ("all good", "all good"),
        ("line1\nline2\ttab", "line1 line2 tab"),
        ("2026-12-05T11:50:05Z", "2026-12-05T11:50:05Z"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "[redacted]"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"),
        ("", ""),
    ];
    for (t, want) in cases {
        assert_eq!(excerpt(t, &[]), *want, "{t:?}");
    }
    let wide = "é".repeat(300);
    let e = excerpt(&wide, &[]);
    assert!(e.ends_with('…') && e.len() <= MAX_EXCERPT_BYTES + '…'.len_utf8(), "{}", e.len());
}

#[test]
fn only_tools_the_catalog_marks_read_only_are_called_unless_side_effects_are_allowed() {
    let catalog = Catalog::from_tools(&[
        json!({"name": "status", "annotations": {"readOnlyHint": true}}),
        json!({"name": "wipe", "annotations": {"readOnlyHint": false, "destructiveHint": true}}),
        json!({"name": "plain"}),
    ])
    .expect("hashable");
    let check = |tool: &str, allow: bool| ToolCheck {
        tool: tool.into(),
        allow_side_effects: allow,
        ..ToolCheck::default()
    };
    // (tool, allowSideEffects, may call)
    let cases = [
        ("status", false, true),
        ("wipe", false, false),
        ("plain", false, false),
        ("absent", false, false),
        ("wipe", true, true),
        ("plain", true, true),
        ("absent", true, true),
    ];
    for (tool, allow, want) in cases {
        let got = may_call(&check(tool, allow), &catalog);
        assert_eq!(got.is_ok(), want, "{tool} {allow}: {got:?}");
        if let Err(f) = got {
            assert_eq!(f.class, FailureClass::NotReadOnly);
            assert!(f.reason(tool).message.contains("(not read-only)"), "{f:?}");
        }
    }
}
