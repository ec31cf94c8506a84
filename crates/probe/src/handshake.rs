//! The one handshake finisher every transport shares, in the way Envoy's
//! `HealthCheckerImplBase` is built (a protocol session implements only the
//! exchange; the base decides the rest): the server's facts from the
//! `initialize` or `server/discover` answer, then at depth TOOLS, when due,
//! `notifications/initialized`, the tool catalog over every page and the due
//! synthetic checks' `tools/call`, and what each answer means for the probe
//! (NO_TOOLS, DEGRADED on a JSON-RPC error to `tools/list`). A transport
//! implements only [`Exchange`]: how it says it is initialized and how it
//! sends one request after the handshake and reads its answer.

use serde_json::{Value, json};

use super::exchange::{self, Answer, Exchange, ToolsRead};
use super::{Ctx, Ready, Stop, checks};
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_proto::v1::{ProbeDepth, ReasonCode};

/// What a transport's handshake (`initialize` or `server/discover`) answered.
#[derive(Debug)]
pub struct Handshake {
    pub facts: ServerFacts,
    /// The result advertises the `tools` capability: only then is `tools/list` asked.
    pub offers_tools: bool,
}

impl Handshake {
    /// The handshake `result` that negotiated `version`, with the server's
    /// name and version from `info` (its serverInfo object).
    pub fn new(version: &str, info: Option<&Value>, result: &Value) -> Handshake {
        Handshake {
            facts: ServerFacts {
                protocol_version: version.chars().take(32).collect(),
                server_name: exchange::short_text(info, "name"),
                server_version: exchange::short_text(info, "version"),
                ..ServerFacts::default()
            },
            offers_tools: exchange::offers_tools(result),
        }
    }
}

/// The `initialize` params offering revision `offer`.
pub fn initialize_params(offer: &str) -> Value {
    json!({
        "protocolVersion": offer,
        "capabilities": {},
        "clientInfo": {"name": "mcp-health", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The version an `initialize` result negotiated (at most 32 characters).
/// With `pinned`, a server that negotiates another version than `offer` fails
/// the probe.
pub fn negotiated(result: &Value, offer: &str, pinned: bool) -> Result<String, Reason> {
    let Some(version) = result.get("protocolVersion").and_then(Value::as_str).filter(|v| !v.is_empty()) else {
        return Err(Reason::new(ReasonCode::Protocol, "initialize result has no protocolVersion"));
    };
    let version: String = version.chars().take(32).collect();
    if pinned && version != offer {
        return Err(Reason::new(
            ReasonCode::Protocol,
            format!("server negotiated {version}; the backend is pinned to {offer}"),
        ));
    }
    Ok(version)
}

/// Finishes a probe whose handshake answered. At depth TOOLS: a server without
/// the `tools` capability is healthy with reason NO_TOOLS and is asked
/// nothing more; otherwise, when the catalog or a check is due, the
/// transport says it is initialized, the catalog is read (a JSON-RPC error is
/// DEGRADED: routable, reason JSON_RPC_ERROR), and unless that failed the due
/// checks run on the same session.
pub async fn finish(ctx: &Ctx<'_>, exchange: &mut impl Exchange, handshake: Handshake) -> Result<Ready, Stop> {
    let Handshake { mut facts, offers_tools } = handshake;
    let mut degraded = None;
    let mut note = None;
    let mut catalog_ttl = None;
    let mut checks = Vec::new();
    if ctx.backend().depth == ProbeDepth::Tools && !offers_tools {
        note = Some(no_tools());
        facts.catalog = ctx.read_catalog.then(exchange::no_catalog);
    } else if ctx.read_catalog || !ctx.checks_due.is_empty() {
        exchange.initialized(ctx).await?;
        if ctx.read_catalog {
            match list_tools(ctx, exchange).await? {
                Ok(read) => catalog_ttl = read.into_facts(&mut facts),
                Err(reason) => degraded = Some(reason),
            }
        }
        if degraded.is_none() {
            checks = checks::run(ctx, Ready::catalog_for_checks(&facts, ctx), exchange).await;
        }
    }
    Ok(Ready {
        facts,
        degraded,
        note,
        catalog_ttl,
        checks,
    })
}

/// Reads the tool catalog over every page (within the bounds of
/// [`exchange::CatalogPages`]). `Ok(Err(reason))` is a JSON-RPC error answer:
/// the server serves MCP but its tools do not.
async fn list_tools(ctx: &Ctx<'_>, exchange: &mut impl Exchange) -> Result<Result<ToolsRead, Reason>, Stop> {
    let mut pages = exchange::CatalogPages::default();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let result = match exchange.request(ctx, "tools/list", params).await? {
            Answer::Result(r) => r,
            Answer::Error { code, .. } => return Ok(Err(tools_error(code))),
            Answer::Accepted => return Err(Stop::Failed(Reason::new(ReasonCode::Protocol, "tools/list got no response"))),
        };
        cursor = pages.take(&result)?;
        if cursor.is_none() {
            return Ok(Ok(pages.finish()));
        }
    }
}

/// The reason of a healthy depth-TOOLS probe of a server without tools.
fn no_tools() -> Reason {
    Reason::new(ReasonCode::NoTools, "handshake succeeded; the server offers no tools")
}

/// Maps a tools/list JSON-RPC error to the DEGRADED reason.
fn tools_error(code: i64) -> Reason {
    Reason::new(ReasonCode::JsonRpcError, format!("tools/list failed with JSON-RPC error {code}"))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::{ClientCache, HttpProber, ProbeTarget};
    use mcp_health_core::catalog::CatalogRead;
    use mcp_health_core::spec::{Limits, validate_group};
    use mcp_health_proto::v1::GroupSpec;

    /// An exchange that answers from a script and records what was sent.
    struct Scripted {
        answers: VecDeque<Result<Answer, Stop>>,
        sent: Vec<String>,
    }

    impl Exchange for Scripted {
        async fn initialized(&mut self, _ctx: &Ctx<'_>) -> Result<(), Stop> {
            self.sent.push("initialized".to_owned());
            Ok(())
        }

        async fn request(&mut self, _ctx: &Ctx<'_>, method: &'static str, params: Value) -> Result<Answer, Stop> {
            self.sent.push(format!("{method} {params}"));
            self.answers.pop_front().unwrap_or_else(|| panic!("no answer scripted for {method}"))
        }
    }

    fn target(backend: Value) -> ProbeTarget {
        let spec: GroupSpec = serde_json::from_value(json!({"name": "g", "backends": [backend]})).expect("group spec");
        let group = validate_group(&spec, "spec", &Limits::default()).unwrap_or_else(|v| panic!("invalid spec: {v:?}"));
        let backend = group.backends.into_iter().next().expect("one backend");
        ProbeTarget::new("g", backend, &Arc::new(ClientCache::default())).expect("clients")
    }

    fn page(tools: Value, next: Option<&str>) -> Result<Answer, Stop> {
        Ok(Answer::Result(match next {
            Some(c) => json!({"tools": tools, "nextCursor": c}),
            None => json!({"tools": tools}),
        }))
    }

    /// What a finished probe came to, in one line.
    fn summary(ready: Result<Ready, Stop>) -> String {
        match ready {
            Ok(r) => {
                let catalog = match &r.facts.catalog {
                    None => "none".to_owned(),
                    Some(CatalogRead::Whole(c)) => format!("{} tools", c.len()),
                    Some(CatalogRead::GaveUp(why)) => format!("gave up: {why}"),
                };
                let code = |r: &Option<Reason>| r.as_ref().map(|r| r.code.as_str_name().trim_start_matches("REASON_CODE_"));
                let checks: Vec<String> = r
                    .checks
                    .iter()
                    .map(|(j, c)| format!("{j}:{}", c.as_ref().map_or_else(|f| format!("{:?}", f.class), |()| "ok".to_owned())))
                    .collect();
                format!(
                    "ready catalog={catalog} note={:?} degraded={:?} ttl={:?} checks={checks:?}",
                    code(&r.note),
                    code(&r.degraded),
                    r.catalog_ttl
                )
            }
            Err(Stop::Failed(r)) => format!("failed {}: {}", r.code.as_str_name().trim_start_matches("REASON_CODE_"), r.message),
            Err(other) => format!("stopped {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_finisher_asks_what_is_due_and_judges_the_answers() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tools = json!({"name": "b"});
        let handshake_only = json!({"name": "b", "url": "http://127.0.0.1:9/mcp"});
        let at_tools = json!({"name": "b", "url": "http://127.0.0.1:9/mcp", "depth": "PROBE_DEPTH_TOOLS"});
        let with_check = json!({"name": "b", "url": "http://127.0.0.1:9/mcp", "depth": "PROBE_DEPTH_TOOLS",
            "checks": [{"tool": "status"}]});
        let read_only = json!([{"name": "status", "annotations": {"readOnlyHint": true}}]);
        let call_ok = || Ok(Answer::Result(json!({"content": [{"type": "text", "text": "fine"}]})));
        // (case, backend, offers tools, read the catalog, checks due, answers, want sent, want summary)
        type Case = (
            &'static str,
            Value,
            bool,
            bool,
            Vec<usize>,
            Vec<Result<Answer, Stop>>,
            Vec<&'static str>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "handshake depth asks nothing",
                handshake_only.clone(),
                true,
                false,
                vec![],
                vec![],
                vec![],
                "ready catalog=none note=None degraded=None ttl=None checks=[]",
            ),
            (
                "no tools capability: NO_TOOLS, an empty catalog, nothing asked",
                at_tools.clone(),
                false,
                true,
                vec![],
                vec![],
                vec![],
                "ready catalog=0 tools note=Some(\"NO_TOOLS\") degraded=None ttl=None checks=[]",
            ),
            (
                "no tools capability between catalog reads: no catalog",
                at_tools.clone(),
                false,
                false,
                vec![],
                vec![],
                vec![],
                "ready catalog=none note=Some(\"NO_TOOLS\") degraded=None ttl=None checks=[]",
            ),
            (
                "catalog not due and no check due: handshake only",
                at_tools.clone(),
                true,
                false,
                vec![],
                vec![],
                vec![],
                "ready catalog=none note=None degraded=None ttl=None checks=[]",
            ),
            (
                "catalog over two pages, the smaller ttl kept",
                at_tools.clone(),
                true,
                true,
                vec![],
                vec![
                    Ok(Answer::Result(json!({"tools": [tools.clone()], "nextCursor": "p2", "ttlMs": 9000}))),
                    Ok(Answer::Result(json!({"tools": [{"name": "c"}], "ttlMs": 4000}))),
                ],
                vec!["initialized", "tools/list {}", "tools/list {\"cursor\":\"p2\"}"],
                "ready catalog=2 tools note=None degraded=None ttl=Some(4s) checks=[]",
            ),
            (
                "a JSON-RPC error to tools/list is DEGRADED and no check runs",
                with_check.clone(),
                true,
                true,
                vec![0],
                vec![Ok(Answer::Error {
                    code: -32603,
                    http_status: 200,
                })],
                vec!["initialized", "tools/list {}"],
                "ready catalog=none note=None degraded=Some(\"JSON_RPC_ERROR\") ttl=None checks=[]",
            ),
            (
                "tools/list without a response fails the probe",
                at_tools.clone(),
                true,
                true,
                vec![],
                vec![Ok(Answer::Accepted)],
                vec!["initialized", "tools/list {}"],
                "failed PROTOCOL: tools/list got no response",
            ),
            (
                "a page without a tools array fails the probe",
                at_tools.clone(),
                true,
                true,
                vec![],
                vec![Ok(Answer::Result(json!({"nextCursor": "x"})))],
                vec!["initialized", "tools/list {}"],
                "failed PROTOCOL: tools/list result has no tools array",
            ),
            (
                "a due check calls its read-only tool after the catalog read",
                with_check.clone(),
                true,
                true,
                vec![0],
                vec![page(read_only.clone(), None), call_ok()],
                vec!["initialized", "tools/list {}", "tools/call {\"arguments\":{},\"name\":\"status\"}"],
                "ready catalog=1 tools note=None degraded=None ttl=None checks=[\"0:ok\"]",
            ),
            (
                "a check due without a catalog read is judged by the known catalog",
                with_check.clone(),
                true,
                false,
                vec![0],
                vec![call_ok()],
                vec!["initialized", "tools/call {\"arguments\":{},\"name\":\"status\"}"],
                "ready catalog=none note=None degraded=None ttl=None checks=[\"0:ok\"]",
            ),
            (
                "a tool the catalog does not mark read-only is not called",
                with_check.clone(),
                true,
                true,
                vec![0],
                vec![page(json!([{"name": "status"}]), None)],
                vec!["initialized", "tools/list {}"],
                "ready catalog=1 tools note=None degraded=None ttl=None checks=[\"0:NotReadOnly\"]",
            ),
            (
                "a check's JSON-RPC error fails the check, not the probe",
                with_check.clone(),
                true,
                true,
                vec![0],
                vec![
                    page(read_only.clone(), None),
                    Ok(Answer::Error {
                        code: -32602,
                        http_status: 200,
                    }),
                ],
                vec!["initialized", "tools/list {}", "tools/call {\"arguments\":{},\"name\":\"status\"}"],
                "ready catalog=1 tools note=None degraded=None ttl=None checks=[\"0:JsonRpc\"]",
            ),
        ];
        let prober = HttpProber::default();
        for (case, backend, offers_tools, read_catalog, checks_due, answers, want_sent, want) in cases {
            let target = target(backend);
            // The catalog a check is judged by when this probe reads none.
            let known = json!({"tools": read_only.clone()});
            let mut known_pages = exchange::CatalogPages::default();
            known_pages.take(&known).expect("a tools page");
            let known_catalog = match known_pages.finish().catalog {
                CatalogRead::Whole(c) => Some(c),
                CatalogRead::GaveUp(why) => panic!("{why}"),
            };
            let ctx = Ctx {
                prober: &prober,
                target: &target,
                auth: None,
                peer: Mutex::new(None),
                retry_after: Mutex::new(None),
                read_catalog,
                checks_due,
                known_catalog,
                deadline: tokio::time::Instant::now() + Duration::from_secs(5),
            };
            let mut exchange = Scripted {
                answers: answers.into(),
                sent: Vec::new(),
            };
            let result = json!({"protocolVersion": "2025-06-18", "serverInfo": {"name": "s", "version": "1"},
                "capabilities": if offers_tools { json!({"tools": {}}) } else { json!({}) }});
            let handshake = Handshake::new("2025-06-18", result.get("serverInfo"), &result);
            let got = summary(finish(&ctx, &mut exchange, handshake).await);
            assert_eq!(exchange.sent, want_sent, "{case}: sent");
            assert_eq!(got, want, "{case}");
            assert!(exchange.answers.is_empty(), "{case}: answers left over");
        }
    }

    #[test]
    fn negotiated_versions() {
        let r = |v: Value| json!({ "protocolVersion": v });
        assert_eq!(negotiated(&r(json!("2025-06-18")), "2025-11-25", false).unwrap(), "2025-06-18");
        assert_eq!(negotiated(&r(json!("x".repeat(40))), "2025-11-25", false).unwrap().len(), 32);
        for (result, pinned, says) in [
            (json!({}), false, "initialize result has no protocolVersion"),
            (r(json!("")), false, "initialize result has no protocolVersion"),
            (r(json!(7)), false, "initialize result has no protocolVersion"),
            (
                r(json!("2025-06-18")),
                true,
                "server negotiated 2025-06-18; the backend is pinned to 2025-11-25",
            ),
        ] {
            let reason = negotiated(&result, "2025-11-25", pinned).unwrap_err();
            assert_eq!((reason.code, reason.message.as_str()), (ReasonCode::Protocol, says), "{result}");
        }
    }
}
