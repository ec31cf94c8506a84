//! Synthetic tool checks on the probe's own transport and session (the
//! handshake's [`Exchange`]): each due check's `tools/call`, bounded by its
//! timeout and the probe's deadline, judged by `core::check`. A tool the
//! catalog does not mark read-only is never called unless the check allows
//! side effects.

use serde_json::json;
use tokio::time::Instant;

use super::exchange::{Answer, Exchange};
use super::{Ctx, Stop};
use mcp_health_core::catalog::Catalog;
use mcp_health_core::check::{self, CheckFailure, FailureClass};
use mcp_health_proto::v1::ToolCheck;

/// The result of each due check that ran (by its index in the spec). Without
/// a known catalog none runs: whether a tool is read-only is unknown, so the
/// checks stay due for the next probe.
pub async fn run(ctx: &Ctx<'_>, catalog: Option<&Catalog>, exchange: &mut impl Exchange) -> Vec<(usize, Result<(), CheckFailure>)> {
    let Some(catalog) = catalog else { return Vec::new() };
    let mut results = Vec::with_capacity(ctx.checks_due.len());
    for &j in &ctx.checks_due {
        let Some(c) = ctx.backend().spec.checks.get(j) else { continue };
        let result = match check::may_call(c, catalog) {
            Ok(()) => call(ctx, c, exchange).await,
            Err(refused) => Err(refused),
        };
        results.push((j, result));
    }
    results
}

/// The probe's own credential value: redacted from any excerpt.
fn secrets(ctx: &Ctx<'_>) -> Vec<String> {
    ctx.auth
        .as_ref()
        .and_then(|(_, v)| v.to_str().ok())
        .map(|v| {
            // Both the whole header value and its token after a scheme word.
            let mut s = vec![v.to_owned()];
            if let Some((_, token)) = v.split_once(' ') {
                s.push(token.to_owned());
            }
            s
        })
        .unwrap_or_default()
}

async fn call(ctx: &Ctx<'_>, c: &ToolCheck, exchange: &mut impl Exchange) -> Result<(), CheckFailure> {
    let (_, timeout) = check::timing(c, &ctx.backend().policy);
    let until = (Instant::now() + timeout).min(ctx.deadline);
    let secrets = secrets(ctx);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    // A Struct serializes as its JSON object; an unset one is no arguments.
    let arguments = c.arguments.as_ref().and_then(|a| serde_json::to_value(a).ok()).unwrap_or_else(|| json!({}));
    let params = json!({"name": c.tool, "arguments": arguments});
    let started = Instant::now();
    let answer = match tokio::time::timeout_at(until, exchange.request(ctx, "tools/call", params)).await {
        Err(_) => {
            return Err(CheckFailure::new(
                FailureClass::Timeout,
                format!("no answer within {} ms", until.saturating_duration_since(started).as_millis()),
            ));
        }
        Ok(Err(stop)) => return Err(CheckFailure::new(FailureClass::Transport, stop_message(stop))),
        Ok(Ok(answer)) => answer,
    };
    match answer {
        Answer::Result(result) => check::judge(&result, c.expect.as_ref(), &secrets),
        Answer::Error { code, .. } => Err(check::rpc_error(code, "", &secrets)),
        Answer::Accepted => Err(CheckFailure::new(FailureClass::Transport, "tools/call got no response")),
    }
}

/// What stopped a call, in our own words (a reason's message never carries a body).
fn stop_message(stop: Stop) -> String {
    match stop {
        Stop::Failed(r) | Stop::Refuted(r) | Stop::Auth { reason: r, .. } | Stop::RateLimited { reason: r, .. } => r.message,
    }
}
