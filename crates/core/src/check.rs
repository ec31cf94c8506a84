//! Synthetic tool checks as values: whether the catalog lets a check call its
//! tool, the judgement of a `tools/call` answer against the check's
//! expectation, the failure classes, and the bounded, redacted excerpt of a
//! result that a reason may carry. The prober makes the call; nothing here
//! does I/O.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::catalog::Catalog;
use crate::outcome::Reason;
use crate::spec::Policy;
use crate::spec::policy::duration;
use mcp_health_proto::v1::{CheckExpectation, ReasonCode, ToolCheck};

/// The most bytes of a result (or a server's error message) a reason carries.
pub const MAX_EXCERPT_BYTES: usize = 200;
/// The longest `textContains` and `jsonPath` a spec may set.
pub const MAX_EXPECT_BYTES: usize = 256;
/// The most checks one backend may have.
pub const MAX_CHECKS: usize = 16;
/// A check's interval when its spec sets none.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub const MIN_CHECK_TIMEOUT: Duration = Duration::from_millis(10);
/// The shortest run of token characters (letters, digits, `-_.+/~`) with both
/// a letter and a digit that an excerpt redacts: API keys, bearer tokens,
/// JWTs and session ids are longer; words and timestamps are shorter.
const MIN_SECRET_RUN: usize = 20;
const REDACTED: &str = "[redacted]";

/// Why a check failed, as its reason names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The call got no JSON-RPC answer: connection, TLS, HTTP status, protocol.
    Transport,
    /// The server answered the call with a JSON-RPC error.
    JsonRpc,
    /// The result's `isError` is not what the check expects.
    IsError,
    /// The result does not meet `textContains` or `jsonPath`.
    Expectation,
    /// No answer within the check's timeout.
    Timeout,
    /// The catalog does not mark the tool `readOnlyHint: true` (or does not
    /// list it), and the check does not set `allowSideEffects`: never called.
    NotReadOnly,
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureClass::Transport => "transport error",
            FailureClass::JsonRpc => "JSON-RPC error",
            FailureClass::IsError => "isError",
            FailureClass::Expectation => "unmet expectation",
            FailureClass::Timeout => "timeout",
            FailureClass::NotReadOnly => "not read-only",
        })
    }
}

/// A failed check: its class and what we say about it (written by us, with at
/// most an [`excerpt`] of what the server sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    pub class: FailureClass,
    pub detail: String,
}

impl CheckFailure {
    pub fn new(class: FailureClass, detail: impl Into<String>) -> Self {
        CheckFailure { class, detail: detail.into() }
    }

    /// The probe's reason while this failure stands: CHECK_FAILED naming the
    /// check and the class.
    pub fn reason(&self, check: &str) -> Reason {
        Reason::new(ReasonCode::CheckFailed, format!("check {check} failed ({}): {}", self.class, self.detail))
    }
}

/// A check's interval and timeout: as its spec sets them, else 60s and the
/// backend's probe timeout (the call runs within a probe, so it never waits
/// longer than the probe's own deadline either).
pub fn timing(check: &ToolCheck, policy: &Policy) -> (Duration, Duration) {
    let interval = check.interval.as_ref().and_then(duration).unwrap_or(DEFAULT_CHECK_INTERVAL);
    let timeout = check.timeout.as_ref().and_then(duration).unwrap_or(policy.timeout);
    (interval, timeout)
}

/// The name a check goes by: its own, else its tool's.
pub fn check_name(check: &ToolCheck) -> &str {
    if check.name.is_empty() { &check.tool } else { &check.name }
}

/// Whether the check may call its tool: the catalog marks it
/// `readOnlyHint: true`, or the check allows side effects. Spec validation
/// cannot see the catalog, so this is enforced before every call.
pub fn may_call(check: &ToolCheck, catalog: &Catalog) -> Result<(), CheckFailure> {
    if check.allow_side_effects {
        return Ok(());
    }
    let listed: Vec<_> = catalog.tools.iter().filter(|t| t.name == check.tool).collect();
    if listed.is_empty() {
        return Err(CheckFailure::new(
            FailureClass::NotReadOnly,
            format!("the catalog does not list tool {}, so it cannot be known read-only; not called", check.tool),
        ));
    }
    if listed.iter().all(|t| t.read_only) {
        Ok(())
    } else {
        Err(CheckFailure::new(
            FailureClass::NotReadOnly,
            format!(
                "tool {} is not marked annotations.readOnlyHint: true in the catalog, and the check does not set allowSideEffects; not called",
                check.tool
            ),
        ))
    }
}

/// Parses a `jsonPath` expectation (RFC 9535); the parser's message on error.
pub fn parse_json_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| e.to_string())
}

/// The text of a result's text content items, joined by newlines.
fn result_text(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// What an excerpt of a result shows: its text content, else its structured
/// content as compact JSON.
fn shown(result: &Value) -> String {
    let text = result_text(result);
    if !text.is_empty() {
        return text;
    }
    result.get("structuredContent").map(Value::to_string).unwrap_or_default()
}

/// Judges the result of a `tools/call` against the check's expectation (none
/// set: `isError` false). `secrets` are redacted from any excerpt.
pub fn judge(result: &Value, expect: Option<&CheckExpectation>, secrets: &[&str]) -> Result<(), CheckFailure> {
    let default = CheckExpectation::default();
    let expect = expect.unwrap_or(&default);
    let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
    if is_error != expect.is_error {
        return Err(CheckFailure::new(
            FailureClass::IsError,
            format!(
                "isError is {is_error}, expected {}; result: {:?}",
                expect.is_error,
                excerpt(&shown(result), secrets)
            ),
        ));
    }
    if !expect.text_contains.is_empty() && !result_text(result).contains(&expect.text_contains) {
        return Err(CheckFailure::new(
            FailureClass::Expectation,
            format!(
                "no text content contains {:?}; result: {:?}",
                excerpt(&expect.text_contains, secrets),
                excerpt(&shown(result), secrets)
            ),
        ));
    }
    if !expect.json_path.is_empty() {
        // Validation parsed it already; a spec that did not pass it is refused here too.
        let path = parse_json_path(&expect.json_path)
            .map_err(|e| CheckFailure::new(FailureClass::Expectation, format!("jsonPath does not parse: {}", excerpt(&e, secrets))))?;
        if path.query(result).is_empty() {
            return Err(CheckFailure::new(
                FailureClass::Expectation,
                format!("jsonPath {} selects nothing; result: {:?}", expect.json_path, excerpt(&shown(result), secrets)),
            ));
        }
    }
    Ok(())
}

/// The failure of a JSON-RPC error answer to the call, with an excerpt of the
/// server's message.
pub fn rpc_error(code: i64, message: &str, secrets: &[&str]) -> CheckFailure {
    let mut detail = format!("tools/call failed with JSON-RPC error {code}");
    if !message.is_empty() {
        detail.push_str(&format!(": {:?}", excerpt(message, secrets)));
    }
    CheckFailure::new(FailureClass::JsonRpc, detail)
}

fn is_token_char(c: char) -> bool {
    // Not '=': `key=value` keeps its key, and base64 padding its own run.
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '~')
}

/// `text` as a reason may carry it: `secrets` (the probe's own credential
/// values) and anything shaped like one (the word after `Bearer`, a run of
/// at least 20 token characters with a letter and a digit) replaced by
/// `[redacted]`, control characters by spaces, cut to at most
/// [`MAX_EXCERPT_BYTES`] on a character boundary (with `…` when cut).
pub fn excerpt(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s, REDACTED);
    }
    let mut out = String::with_capacity(text.len().min(MAX_EXCERPT_BYTES * 2));
    let mut after_bearer = false;
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if is_token_char(c) {
            let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
            let run = &rest[..end];
            let secret_shaped = run.len() >= MIN_SECRET_RUN && run.chars().any(|c| c.is_ascii_alphabetic()) && run.chars().any(|c| c.is_ascii_digit());
            if after_bearer || secret_shaped {
                out.push_str(REDACTED);
            } else {
                out.push_str(run);
            }
            after_bearer = run.eq_ignore_ascii_case("bearer") || run.eq_ignore_ascii_case("basic");
            rest = &rest[end..];
        } else {
            out.push(if c.is_control() { ' ' } else { c });
            if !c.is_whitespace() {
                after_bearer = false;
            }
            rest = &rest[c.len_utf8()..];
        }
        if out.len() > MAX_EXCERPT_BYTES {
            break;
        }
    }
    if out.len() > MAX_EXCERPT_BYTES {
        let mut cut = MAX_EXCERPT_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}
