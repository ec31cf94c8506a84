//! Every reason code, produced by a real server (or a real network failure)
//! rather than a mock: the integration half of the classification tables
//! (the unit tables are in crates/probe/src/classify.rs and jsonrpc.rs).

use crate::probe_support;

use std::time::Duration;

use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, reserve_port};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::{HttpProber, ProbeMemory};
use mcp_health::proto::v1::ReasonCode;
use probe_support::*;
use serde_json::json;

async fn with_behavior(b: Behavior) -> FixtureServer {
    let f = FixtureServer::start().await.expect("fixture");
    f.set_behavior(b);
    f
}

#[tokio::test]
async fn ok() {
    let f = FixtureServer::start().await.unwrap();
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_success(&r);
    assert_eq!(r.outcome.reason.code, ReasonCode::Ok);
}

#[tokio::test]
async fn timeout() {
    let f = with_behavior(Behavior::Hang).await;
    let r = probe_with(
        &HttpProber::default(),
        &target(plain(&f.url())),
        &mut ProbeMemory::default(),
        Duration::from_millis(300),
    )
    .await;
    assert_failure(&r, ReasonCode::Timeout);
}

#[tokio::test]
async fn connection_refused() {
    let addr = reserve_port();
    assert_failure(&probe_once(&target(plain(&format!("http://{addr}/mcp")))).await, ReasonCode::ConnectionRefused);
}

#[tokio::test]
async fn dns() {
    // .invalid never resolves (RFC 6761); nothing leaves the machine.
    assert_failure(&probe_once(&target(plain("http://does-not-exist.invalid/mcp"))).await, ReasonCode::Dns);
}

#[tokio::test]
async fn tls() {
    // https to a server that speaks plain HTTP: the TLS handshake fails.
    let f = FixtureServer::start().await.unwrap();
    let url = f.url().replace("http://", "https://");
    assert_failure(&probe_once(&target(plain(&url))).await, ReasonCode::Tls);
}

#[tokio::test]
async fn http_status_with_the_code() {
    for code in [404u16, 500, 503] {
        let f = with_behavior(Behavior::Status(code)).await;
        let r = probe_once(&target(plain(&f.url()))).await;
        assert_failure(&r, ReasonCode::HttpStatus);
        assert_eq!(r.outcome.reason.http_status, Some(code));
    }
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let f = with_behavior(Behavior::Redirect).await;
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_failure(&r, ReasonCode::Redirect);
    assert_eq!(r.outcome.reason.http_status, Some(307));
    // One request, to the original URL; nothing went to the redirect target.
    assert_eq!(f.stats().posts, 1);
}

#[tokio::test]
async fn protocol() {
    for b in [
        Behavior::InvalidJson,
        Behavior::InvalidUtf8,
        Behavior::WrongId,
        Behavior::WrongContentType,
        Behavior::MissingProtocolVersion,
        Behavior::SseWithoutResponse,
        Behavior::EndpointOnly,
    ] {
        let f = with_behavior(b.clone()).await;
        let r = probe_once(&target(plain(&f.url()))).await;
        assert_eq!(
            (r.outcome.class, r.outcome.reason.code),
            (OutcomeClass::Failure, ReasonCode::Protocol),
            "{b:?}: {:#?}",
            r.outcome
        );
    }
}

#[tokio::test]
async fn json_rpc_error() {
    let f = with_behavior(Behavior::JsonRpcError).await;
    assert_failure(&probe_once(&target(plain(&f.url()))).await, ReasonCode::JsonRpcError);
}

#[tokio::test]
async fn response_too_large() {
    let f = with_behavior(Behavior::HugeBody(1 << 30)).await;
    assert_failure(&probe_once(&target(plain(&f.url()))).await, ReasonCode::ResponseTooLarge);
}

#[tokio::test]
async fn auth_required() {
    let f = with_behavior(Behavior::Unauthorized { resource_metadata: false }).await;
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_eq!(
        (r.outcome.class, r.outcome.reason.code, r.outcome.reason.http_status),
        (OutcomeClass::AuthRequired, ReasonCode::AuthRequired, Some(401))
    );
    let f = with_behavior(Behavior::Forbidden).await;
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_eq!(
        (r.outcome.class, r.outcome.reason.code, r.outcome.reason.http_status),
        (OutcomeClass::AuthRequired, ReasonCode::AuthRequired, Some(403))
    );
}

#[tokio::test]
async fn credentials_rejected() {
    let f = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("right".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "wrong\n").unwrap();
    let t = target(
        json!({"name": "b", "url": f.url(), "auth": {"mode": "AUTH_MODE_STATIC_HEADER", "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": file}}}}),
    );
    let r = probe_once(&t).await;
    assert_eq!(
        (r.outcome.class, r.outcome.reason.code, r.outcome.reason.http_status),
        (OutcomeClass::AuthRequired, ReasonCode::CredentialsRejected, Some(401))
    );
}

#[tokio::test]
async fn credentials_unavailable() {
    let f = FixtureServer::start().await.unwrap();
    let t = target(
        json!({"name": "b", "url": f.url(), "auth": {"mode": "AUTH_MODE_STATIC_HEADER", "staticHeader": {"header": "Authorization", "value": {"env": "MCP_HEALTH_TEST_UNSET_VARIABLE"}}}}),
    );
    let r = probe_once(&t).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert_eq!(f.stats().posts, 0, "no probe without its credential");
}

#[tokio::test]
async fn connection_closed_early() {
    let s = RawServer::start(|_| RawReply::close("")).await;
    assert_failure(&probe_once(&target(plain(&s.url("/mcp")))).await, ReasonCode::Connection);
}
