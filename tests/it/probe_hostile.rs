//! Hostile and broken backends, each next to a healthy one in the same group:
//! the hostile backend's verdict is a failure with the right reason, reached
//! within the policy timeout (time bounded) and the byte cap (memory bounded),
//! and the healthy backend keeps being probed HEALTHY meanwhile.

use crate::common;

use std::sync::Arc;

use common::{TestDaemon, backend, reason, status};
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::daemon::DaemonOptions;
use mcp_health::probe::{HttpProber, SharedProbe};
use mcp_health::proto::v1::{BackendStatus, GroupHealth, ReasonCode};
use serde_json::json;

fn last_probe(h: &GroupHealth, name: &str) -> Option<(i64, i32)> {
    backend(h, name).last_probe_time.as_ref().map(|t| (t.seconds, t.nanos))
}

/// Runs the hostile `behavior` at /bad next to a healthy /good and checks the
/// verdicts. `timeout` is the policy timeout in proto3 JSON (e.g. "1s").
async fn check(behavior: Behavior, want: ReasonCode, prober: Option<SharedProbe>, timeout: &str, interval: &str) {
    let f = FixtureServer::start().await.unwrap();
    f.set_path_behavior("/bad", behavior.clone());
    let mut d = TestDaemon::start(DaemonOptions { prober, ..Default::default() }).await;
    let spec = json!({"name": "hostile", "policy": {"interval": interval, "timeout": timeout, "unhealthyThreshold": 1}, "backends": [
        {"name": "good", "url": f.url_for("/good")},
        {"name": "bad", "url": f.url_for("/bad")},
    ]});
    d.apply(serde_json::from_value(spec).unwrap()).await;
    let settled = |h: &GroupHealth| status(backend(h, "bad")) == BackendStatus::Unhealthy && status(backend(h, "good")) == BackendStatus::Healthy;
    let h = d.wait_group("hostile", &format!("{behavior:?}: bad UNHEALTHY, good HEALTHY"), settled).await;
    assert_eq!(reason(backend(&h, "bad")), want, "{behavior:?}: {:#?}", backend(&h, "bad"));
    // The healthy backend keeps being probed, and stays HEALTHY, while the
    // hostile one keeps failing.
    let before = last_probe(&h, "good");
    let h = d
        .wait_group("hostile", "another probe of the healthy backend", |h| {
            last_probe(h, "good") > before && settled(h)
        })
        .await;
    assert_eq!(reason(backend(&h, "good")), ReasonCode::Ok);
    d.stop().await;
}

#[tokio::test]
async fn never_answers() {
    check(Behavior::Hang, ReasonCode::Timeout, None, "1s", "1.5s").await;
}

#[tokio::test]
async fn answers_a_byte_a_second() {
    check(Behavior::Drip, ReasonCode::Timeout, None, "1s", "1.5s").await;
}

#[tokio::test]
async fn streams_forever() {
    // Keep-alive comments at ~1.3 KB/s: a small cap is exceeded long before
    // the (generous) timeout; the default 1 MiB cap would need ~13 minutes.
    let prober: SharedProbe = Arc::new(HttpProber::with_max_response_bytes(2048));
    check(Behavior::EndlessStream, ReasonCode::ResponseTooLarge, Some(prober), "8s", "9s").await;
}

#[tokio::test]
async fn sends_a_gibibyte() {
    // The default cap (DEFAULT_MAX_RESPONSE_BYTES) stops the read at 1 MiB.
    check(Behavior::HugeBody(1 << 30), ReasonCode::ResponseTooLarge, None, "5s", "6s").await;
}

#[tokio::test]
async fn sends_invalid_utf8() {
    check(Behavior::InvalidUtf8, ReasonCode::Protocol, None, "1s", "1.5s").await;
}

#[tokio::test]
async fn sends_invalid_json() {
    check(Behavior::InvalidJson, ReasonCode::Protocol, None, "1s", "1.5s").await;
}

#[tokio::test]
async fn sends_an_sse_stream_without_the_response() {
    check(Behavior::SseWithoutResponse, ReasonCode::Protocol, None, "1s", "1.5s").await;
}

#[tokio::test]
async fn answers_with_another_requests_id() {
    check(Behavior::WrongId, ReasonCode::Protocol, None, "1s", "1.5s").await;
}
