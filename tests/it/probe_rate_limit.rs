//! Rate limits from real servers: the JSON-RPC -32023 (RateLimited, SEP-3304)
//! error with `retryAfterMs` and `Retry-After`, a bare 429 from a front, and a
//! 503 asking for a pause; first what one probe concludes, then what a daemon
//! makes of it (verdict, phase, grpc.health, metrics).

use crate::common;
use crate::probe_support;

use std::time::{Duration, SystemTime};

use common::*;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, Flavor};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::v1::{BackendStatus, GroupPhase, ReasonCode};
use probe_support::*;
use serde_json::json;

fn rate_limited(http: u16, retry_after: Option<&str>, retry_after_ms: Option<u64>) -> Behavior {
    Behavior::RateLimited {
        http,
        retry_after: retry_after.map(str::to_owned),
        retry_after_ms,
    }
}

async fn fixture(opts: FixtureOptions, b: Behavior) -> FixtureServer {
    let f = FixtureServer::start_with(opts).await.expect("fixture");
    f.set_behavior(b);
    f
}

#[tokio::test]
async fn a_json_rpc_rate_limit_proves_the_server_alive_with_the_wait_it_asks() {
    // (HTTP status, Retry-After, retryAfterMs, reason's HTTP status, wait): the body's retryAfterMs wins over the header.
    let cases = [
        (429, Some("5"), Some(5000), Some(429), Some(Duration::from_secs(5))),
        (429, Some("5"), None, Some(429), Some(Duration::from_secs(5))),
        (429, None, Some(1500), Some(429), Some(Duration::from_millis(1500))),
        (429, Some("9"), Some(2000), Some(429), Some(Duration::from_secs(2))),
        (200, None, Some(250), None, Some(Duration::from_millis(250))),
        (200, None, None, None, None),
    ];
    for (http, header, ms, want_http, want_wait) in cases {
        let f = fixture(FixtureOptions::default(), rate_limited(http, header, ms)).await;
        let r = probe_once(&target(plain(&f.url()))).await;
        let o = &r.outcome;
        assert_eq!(
            (o.class, o.reason.code, o.reason.http_status, o.retry_after),
            (OutcomeClass::RateLimited, ReasonCode::RateLimited, want_http, want_wait),
            "{http} {header:?} {ms:?}: {o:#?}"
        );
    }
}

#[tokio::test]
async fn every_transport_and_step_reads_a_json_rpc_rate_limit() {
    // The stateless revision: server/discover answered -32023 is not a refutation (no fallback to initialize).
    let f = fixture(
        FixtureOptions {
            flavor: Flavor::Discover,
            ..FixtureOptions::default()
        },
        rate_limited(429, Some("3"), None),
    )
    .await;
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_eq!(
        (r.outcome.class, r.outcome.retry_after),
        (OutcomeClass::RateLimited, Some(Duration::from_secs(3)))
    );
    assert_eq!((f.stats().discover, f.stats().initialize), (1, 0));
    // Legacy HTTP+SSE: the -32023 reply rides the event stream.
    let f = fixture(
        FixtureOptions {
            flavor: Flavor::LegacySse,
            ..FixtureOptions::default()
        },
        rate_limited(200, None, Some(4000)),
    )
    .await;
    let r = probe_once(&target(json!({"name": "b", "url": f.url(), "transport": "TRANSPORT_SSE"}))).await;
    assert_eq!(
        (r.outcome.class, r.outcome.retry_after),
        (OutcomeClass::RateLimited, Some(Duration::from_secs(4))),
        "{:#?}",
        r.outcome
    );
}

#[tokio::test]
async fn a_bare_429_is_throttled_not_a_failure_and_keeps_its_retry_after() {
    let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    // (Retry-After, bounds of the wait in seconds)
    type Case<'a> = (Option<&'a str>, Option<(u64, u64)>);
    let cases: [Case<'_>; 4] = [
        (None, None),
        (Some("7"), Some((7, 7))),
        (Some(&in_two_minutes), Some((110, 120))),
        (Some("not a delay"), None),
    ];
    for (header, bounds) in cases {
        let b = match header {
            Some(v) => Behavior::StatusRetryAfter {
                status: 429,
                retry_after: v.to_owned(),
            },
            None => Behavior::Status(429),
        };
        let f = fixture(FixtureOptions::default(), b).await;
        let r = probe_once(&target(plain(&f.url()))).await;
        let o = &r.outcome;
        assert_eq!(
            (o.class, o.reason.code, o.reason.http_status),
            (OutcomeClass::Throttled, ReasonCode::RateLimited, Some(429)),
            "{header:?}: {o:#?}"
        );
        let wait = o.retry_after.map(|d| d.as_secs());
        match bounds {
            None => assert_eq!(wait, None, "{header:?}"),
            Some((lo, hi)) => assert!(wait.is_some_and(|w| (lo..=hi).contains(&w)), "{header:?}: {wait:?}"),
        }
    }
    // To server/discover a bare 429 is no refutation either: nothing falls back.
    let f = fixture(
        FixtureOptions {
            flavor: Flavor::Both,
            ..FixtureOptions::default()
        },
        Behavior::Status(429),
    )
    .await;
    assert_eq!(probe_once(&target(plain(&f.url()))).await.outcome.class, OutcomeClass::Throttled);
    assert_eq!((f.stats().discover, f.stats().initialize), (1, 0));
    // Legacy HTTP+SSE: a 429 to the GET of the SSE URL.
    let f = fixture(
        FixtureOptions {
            flavor: Flavor::LegacySse,
            ..FixtureOptions::default()
        },
        Behavior::Status(429),
    )
    .await;
    let r = probe_once(&target(json!({"name": "b", "url": f.url(), "transport": "TRANSPORT_SSE"}))).await;
    assert_eq!(r.outcome.class, OutcomeClass::Throttled, "{:#?}", r.outcome);
}

#[tokio::test]
async fn a_503_with_retry_after_is_a_failure_that_asks_to_wait() {
    let f = fixture(
        FixtureOptions::default(),
        Behavior::StatusRetryAfter {
            status: 503,
            retry_after: "30".into(),
        },
    )
    .await;
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_failure(&r, ReasonCode::HttpStatus);
    assert_eq!(
        (r.outcome.reason.http_status, r.outcome.retry_after),
        (Some(503), Some(Duration::from_secs(30)))
    );
    // Retry-After on another status is not a request to wait.
    let f = fixture(
        FixtureOptions::default(),
        Behavior::StatusRetryAfter {
            status: 500,
            retry_after: "30".into(),
        },
    )
    .await;
    assert_eq!(probe_once(&target(plain(&f.url()))).await.outcome.retry_after, None);
}

async fn metrics_daemon() -> (TestDaemon, String) {
    let d = TestDaemon::start(DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await;
    let addr = d.daemon.as_ref().unwrap().metrics_addr().expect("metrics are served");
    (d, format!("http://{addr}/metrics"))
}

#[tokio::test]
async fn a_rate_limited_server_is_degraded_and_routable_and_its_group_serves() {
    let f = fixture(FixtureOptions::default(), rate_limited(429, Some("5"), Some(5000))).await;
    let (mut d, metrics) = metrics_daemon().await;
    d.apply_yaml(&format!(
        "name: limited\npolicy: {{interval: 0.2s, timeout: 0.15s, unhealthyThreshold: 1}}\nbackends:\n  - name: api\n    url: {}\n",
        f.url()
    ))
    .await;
    let h = d
        .wait_group("limited", "a verdict", |h| status(backend(h, "api")) != BackendStatus::Unknown)
        .await;
    let b = backend(&h, "api");
    assert_eq!(
        (status(b), b.routable, reason(b)),
        (BackendStatus::Degraded, true, ReasonCode::RateLimited),
        "{b:#?}"
    );
    assert_eq!((b.reason.as_ref().unwrap().http_status, b.consecutive_failures), (429, 0));
    assert_eq!(phase(&h), GroupPhase::Degraded, "{h:#?}");
    let check = d.health.check(HealthCheckRequest { service: "limited".into() }).await.unwrap().into_inner();
    assert_eq!(check.status, ServingStatus::Serving as i32);
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("mcp_health_rate_limited_probes_total{group=\"limited\",outcome=\"rate_limited\"} ")),
        "{text}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_bare_429_holds_the_verdict_then_fails_past_the_hold() {
    let f = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply_yaml(&format!(
        "name: cdn\npolicy: {{interval: 0.2s, timeout: 0.15s, unhealthyThreshold: 1, rateLimitHold: 5s}}\nbackends:\n  - name: api\n    url: {}\n",
        f.url()
    ))
    .await;
    d.wait_group("cdn", "healthy", |h| status(backend(h, "api")) == BackendStatus::Healthy).await;
    f.set_behavior(Behavior::StatusRetryAfter {
        status: 429,
        retry_after: "1".into(),
    });
    // The first answer with the reason still carries the verdict from before:
    // held, routable, the group READY.
    let h = d
        .wait_group("cdn", "the rate limit seen", |h| reason(backend(h, "api")) == ReasonCode::RateLimited)
        .await;
    let b = backend(&h, "api");
    assert_eq!((status(b), b.routable, phase(&h)), (BackendStatus::Healthy, true, GroupPhase::Ready), "{h:#?}");
    // Past the hold: a failure with the reason.
    let h = d
        .wait_group("cdn", "unhealthy", |h| status(backend(h, "api")) == BackendStatus::Unhealthy)
        .await;
    let b = backend(&h, "api");
    assert_eq!(
        (reason(b), b.reason.as_ref().unwrap().http_status, phase(&h)),
        (ReasonCode::RateLimited, 429, GroupPhase::Failed)
    );
    assert!(b.message.contains("rate-limit hold"), "{b:#?}");
    d.stop().await;
}
