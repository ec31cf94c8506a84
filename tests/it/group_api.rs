//! GroupHealthService end to end: a daemon on 127.0.0.1:0, fixture MCP
//! servers switched between behaviours, and a real tonic client for every RPC.

use crate::common;

use std::time::Duration;

use common::*;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, ReplyFormat};
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;
use tonic::Code;

/// A group spec with a fast policy, so verdicts arrive within a second.
fn group(name: &str, backends: &[(&str, &str, &str)], extra_policy: &str) -> GroupSpec {
    let mut yaml = format!("name: {name}\npolicy:\n  interval: 0.3s\n  timeout: 0.2s\n{extra_policy}backends:\n");
    for (bname, url, auth) in backends {
        yaml.push_str(&format!("  - name: {bname}\n    url: {url}\n    auth:\n      mode: {auth}\n"));
    }
    group_yaml(&yaml)
}

#[tokio::test]
async fn per_user_backends_answering_401_make_the_group_ready() {
    let oauth = FixtureServer::start().await.unwrap();
    oauth.set_behavior(Behavior::Unauthorized { resource_metadata: true });
    let healthy = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group(
        "all-oauth",
        &[("a", &oauth.url(), "AUTH_MODE_PER_USER"), ("b", &oauth.url(), "AUTH_MODE_PER_USER")],
        "",
    ))
    .await;
    d.apply(group(
        "mixed",
        &[("api", &healthy.url(), "AUTH_MODE_NONE"), ("github", &oauth.url(), "AUTH_MODE_PER_USER")],
        "",
    ))
    .await;

    let h = d.wait_group("all-oauth", "all-oauth READY", |h| phase(h) == GroupPhase::Ready).await;
    for b in &h.backends {
        assert_eq!(
            (status(b), b.routable, reason(b)),
            (BackendStatus::Unauthenticated, true, ReasonCode::AuthRequired)
        );
        assert_eq!(b.reason.as_ref().unwrap().http_status, 401);
    }
    assert_eq!(h.message, "all 2 backends routable; 2 backends require authentication");
    let s = h.summary.unwrap();
    assert_eq!((s.total, s.routable, s.unauthenticated), (2, 2, 2));

    let h = d.wait_group("mixed", "mixed READY", |h| phase(h) == GroupPhase::Ready).await;
    assert_eq!(status(backend(&h, "api")), BackendStatus::Healthy);
    assert_eq!(status(backend(&h, "github")), BackendStatus::Unauthenticated);
    assert_eq!(h.message, "all 2 backends routable; 1 backend requires authentication");
    d.stop().await;
}

#[tokio::test]
async fn a_401_without_per_user_auth_is_not_routable() {
    let oauth = FixtureServer::start().await.unwrap();
    oauth.set_behavior(Behavior::Unauthorized { resource_metadata: false });
    let mut d = TestDaemon::empty().await;
    d.apply(group("misconfigured", &[("a", &oauth.url(), "AUTH_MODE_NONE")], "")).await;
    let h = d.wait_group("misconfigured", "FAILED", |h| phase(h) == GroupPhase::Failed).await;
    let b = backend(&h, "a");
    assert_eq!((status(b), b.routable), (BackendStatus::Unauthenticated, false));
    d.stop().await;
}

#[tokio::test]
async fn json_and_sse_replies_are_both_healthy_and_report_the_server() {
    let json = FixtureServer::start().await.unwrap();
    let sse = FixtureServer::start_with(FixtureOptions {
        reply: ReplyFormat::Sse,
        server_name: "sse-server".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group(
        "replies",
        &[("json", &json.url(), "AUTH_MODE_NONE"), ("sse", &sse.url(), "AUTH_MODE_NONE")],
        "",
    ))
    .await;
    let h = d.wait_group("replies", "READY", |h| phase(h) == GroupPhase::Ready).await;
    for name in ["json", "sse"] {
        let b = backend(&h, name);
        assert_eq!((status(b), reason(b)), (BackendStatus::Healthy, ReasonCode::Ok), "{b:#?}");
        assert_eq!(b.protocol_version, "2025-11-25", "the fixture echoes the newest revision we offer");
        assert!(b.last_probe_time.is_some() && b.last_transition_time.is_some() && b.last_latency.is_some());
    }
    assert_eq!(backend(&h, "sse").server_name, "sse-server");
    assert_eq!(backend(&h, "json").server_name, "mcp-fixture");
    assert_eq!(backend(&h, "json").server_version, "1.2.3");

    // Let a few probes run, then check the wire: one connection per request,
    // no GET stream ever, sessions ended with DELETE.
    d.wait_group("replies", "three probes", |h| backend(h, "json").consecutive_successes >= 3).await;
    let stats = json.stats();
    assert_eq!(stats.get_requests, 0, "the probe never opens the GET stream");
    assert_eq!(stats.reused_connections, 0, "no connection carries two probes: {stats:?}");
    assert!(stats.initialize >= 3 && stats.delete_requests >= 3, "sessions are ended: {stats:?}");
    d.stop().await;
}

#[tokio::test]
async fn failures_below_the_threshold_degrade_then_recover() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    // A long interval would slow the test; a high threshold keeps the blip below it.
    d.apply(group("blip", &[("api", &server.url(), "AUTH_MODE_NONE")], "  unhealthyThreshold: 50\n"))
        .await;
    d.wait_group("blip", "READY", |h| phase(h) == GroupPhase::Ready).await;

    server.set_behavior(Behavior::Status(500));
    let h = d.wait_group("blip", "DEGRADED blip", |h| phase(h) == GroupPhase::Degraded).await;
    let b = backend(&h, "api");
    assert_eq!((status(b), b.routable, reason(b)), (BackendStatus::Degraded, true, ReasonCode::HttpStatus));
    assert_eq!(b.reason.as_ref().unwrap().http_status, 500);
    assert!(b.message.contains(" of 50 failed probes"), "progress is shown: {}", b.message);

    server.set_behavior(Behavior::Healthy);
    let h = d.wait_group("blip", "READY again", |h| phase(h) == GroupPhase::Ready).await;
    assert_eq!(backend(&h, "api").consecutive_failures, 0);
    d.stop().await;
}

#[tokio::test]
async fn a_dead_backend_fails_at_the_threshold_and_recovers_after_healthy_threshold() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group(
        "down",
        &[("api", &server.url(), "AUTH_MODE_NONE")],
        "  unhealthyThreshold: 2\n  healthyThreshold: 2\n",
    ))
    .await;
    d.wait_group("down", "READY", |h| phase(h) == GroupPhase::Ready).await;

    server.stop().await;
    let h = d.wait_group("down", "FAILED", |h| phase(h) == GroupPhase::Failed).await;
    let b = backend(&h, "api");
    assert_eq!((status(b), reason(b)), (BackendStatus::Unhealthy, ReasonCode::ConnectionRefused));
    assert!(b.consecutive_failures >= 2);

    server.resume().await.unwrap();
    let h = d.wait_group("down", "READY after recovery", |h| phase(h) == GroupPhase::Ready).await;
    assert!(backend(&h, "api").consecutive_successes >= 2, "healthyThreshold successes were needed");
    d.stop().await;
}

#[tokio::test]
async fn slow_backends_degrade_the_group_instead_of_failing_it() {
    let server = FixtureServer::start().await.unwrap();
    server.set_behavior(Behavior::Slow(Duration::from_millis(60)));
    let mut d = TestDaemon::empty().await;
    d.apply(group(
        "slow",
        &[("a", &server.url(), "AUTH_MODE_NONE"), ("b", &server.url(), "AUTH_MODE_NONE")],
        "  degradedLatency: 0.01s\n",
    ))
    .await;
    let h = d
        .wait_group("slow", "DEGRADED", |h| phase(h) == GroupPhase::Degraded && h.summary.unwrap().degraded == 2)
        .await;
    assert_eq!(h.summary.unwrap().routable, 2);
    assert_eq!(reason(backend(&h, "a")), ReasonCode::Slow);
    d.stop().await;
}

#[tokio::test]
async fn hanging_backends_time_out() {
    let server = FixtureServer::start().await.unwrap();
    server.set_behavior(Behavior::Hang);
    let mut d = TestDaemon::empty().await;
    d.apply(group("hang", &[("a", &server.url(), "AUTH_MODE_NONE")], "")).await;
    let h = d.wait_group("hang", "FAILED", |h| phase(h) == GroupPhase::Failed).await;
    assert_eq!(reason(backend(&h, "a")), ReasonCode::Timeout);
    d.stop().await;
}

#[tokio::test]
async fn list_get_and_unknown_groups() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group("one", &[("a", &server.url(), "AUTH_MODE_NONE")], "")).await;
    d.apply(group("two", &[], "")).await;
    d.wait_group("one", "READY", |h| phase(h) == GroupPhase::Ready).await;

    let list = d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups;
    let names: Vec<(&str, GroupPhase)> = list.iter().map(|g| (g.name.as_str(), GroupPhase::try_from(g.phase).unwrap())).collect();
    assert_eq!(names, vec![("one", GroupPhase::Ready), ("two", GroupPhase::Failed)]);
    assert_eq!(list[1].message, "the group has no backends");

    let err = d.client.get_group_health(GetGroupHealthRequest { group: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nope"));
    let err = d.client.get_group_health(GetGroupHealthRequest { group: String::new() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = d.client.watch_group_health(WatchGroupHealthRequest { group: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    d.stop().await;
}

#[tokio::test]
async fn invalid_specs_name_every_offending_field_and_change_nothing() {
    use tonic_types::StatusExt;
    let mut d = TestDaemon::empty().await;
    let spec = group_yaml(
        "name: Bad_Name\npolicy:\n  interval: 1s\n  timeout: 2s\n  unhealthyThreshold: 0\nbackends:\n  - name: ok\n    url: ftp://x\n  - name: ok\n    url: http://127.0.0.1:1/mcp\n",
    );
    let err = d.apply_err(spec).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(
        fields,
        [
            "spec.name",
            "spec.policy.unhealthyThreshold",
            "spec.policy.timeout",
            "spec.backends[0].url",
            "spec.backends[1].name"
        ],
    );
    assert!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn watch_sends_a_snapshot_then_each_change_with_rising_revisions() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group("w", &[("api", &server.url(), "AUTH_MODE_NONE")], "  unhealthyThreshold: 1\n"))
        .await;
    d.wait_group("w", "READY", |h| phase(h) == GroupPhase::Ready).await;

    let mut one = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: "w".into() })
        .await
        .unwrap()
        .into_inner();
    let mut all = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = one.next().await.unwrap().unwrap();
    assert_eq!(WatchEventKind::try_from(first.kind).unwrap(), WatchEventKind::Snapshot);
    assert_eq!(phase(&first.groups[0]), GroupPhase::Ready);
    let first_all = all.next().await.unwrap().unwrap();
    assert_eq!(WatchEventKind::try_from(first_all.kind).unwrap(), WatchEventKind::Snapshot);

    server.stop().await;
    let mut revision = first.revision;
    let failed = loop {
        let m = one.next().await.unwrap().unwrap();
        assert_eq!(WatchEventKind::try_from(m.kind).unwrap(), WatchEventKind::Changed);
        assert!(m.revision > revision, "revisions rise");
        revision = m.revision;
        if phase(&m.groups[0]) == GroupPhase::Failed {
            break m;
        }
    };
    assert_eq!(status(backend(&failed.groups[0], "api")), BackendStatus::Unhealthy);

    // The all-groups watch sees the same change, and a new group.
    d.apply(group("other", &[], "")).await;
    let mut seen_failed = false;
    loop {
        let m = all.next().await.unwrap().unwrap();
        let g = &m.groups[0];
        seen_failed |= g.name == "w" && phase(g) == GroupPhase::Failed;
        if g.name == "other" {
            break;
        }
    }
    assert!(seen_failed, "the all-groups watch saw w fail");
    d.stop().await;
}

#[tokio::test]
async fn probe_backend_returns_a_fresh_verdict_and_is_rate_limited() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    // A long interval: only the on-demand probe can notice the change.
    d.apply(group_yaml(&format!(
        "name: p\npolicy:\n  interval: 3600s\n  unhealthyThreshold: 1\nbackends:\n  - name: api\n    url: {}\n",
        server.url()
    )))
    .await;
    d.wait_group("p", "READY", |h| phase(h) == GroupPhase::Ready).await;
    server.stop().await;
    let r = d
        .client
        .probe_backend(ProbeBackendRequest {
            group: "p".into(),
            backend: "api".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let b = r.backend.unwrap();
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Unhealthy, ReasonCode::ConnectionRefused));
    assert_eq!(GroupPhase::try_from(r.phase).unwrap(), GroupPhase::Failed);
    let err = d
        .client
        .probe_backend(ProbeBackendRequest {
            group: "p".into(),
            backend: "api".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = d
        .client
        .probe_backend(ProbeBackendRequest {
            group: "p".into(),
            backend: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    d.stop().await;
}

#[tokio::test]
async fn probe_backend_reuses_the_revision_the_schedule_detected() {
    // The fixture speaks only the 2025-06-18 handshake: detection costs a refuted
    // server/discover and then initialize.
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(group_yaml(&format!(
        "name: r\npolicy:\n  interval: 3600s\nbackends:\n  - name: api\n    url: {}\n",
        server.url()
    )))
    .await;
    d.wait_group("r", "READY", |h| phase(h) == GroupPhase::Ready).await;
    let s = server.stats();
    assert_eq!((s.discover, s.initialize), (1, 1), "the scheduled probe detected the revision: {s:?}");
    let r = d
        .client
        .probe_backend(ProbeBackendRequest {
            group: "r".into(),
            backend: "api".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&r.backend.unwrap()), BackendStatus::Healthy);
    let s = server.stats();
    assert_eq!((s.discover, s.initialize), (1, 2), "the on-demand probe went straight to initialize: {s:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_resynced_with_a_snapshot_and_stalls_nobody() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::start(mcp_health::daemon::DaemonOptions {
        // A short broadcast buffer, so a stalled watcher falls behind quickly.
        engine: mcp_health::engine::EngineConfig {
            watch_buffer: 8,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let spec = |jitter: u32| group("lag", &[("api", &server.url(), "AUTH_MODE_NONE")], &format!("  jitterPercent: {jitter}\n"));
    d.apply(spec(0)).await;
    // A client whose HTTP/2 window holds only a few messages: once it stops
    // reading, the daemon cannot send it more.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", d.addr))
        .unwrap()
        .initial_stream_window_size(2048)
        .connect()
        .await
        .unwrap();
    let mut slow = group_health_service_client::GroupHealthServiceClient::new(channel);
    let mut stalled = slow
        .watch_group_health(WatchGroupHealthRequest { group: "lag".into() })
        .await
        .unwrap()
        .into_inner();
    let first = stalled.next().await.unwrap().unwrap();
    assert_eq!(WatchEventKind::try_from(first.kind).unwrap(), WatchEventKind::Snapshot);

    // 200 new generations while it does not read: far past the window and the buffer.
    let mut last_generation = 0;
    for jitter in 1..=50 {
        for _ in 0..4 {
            last_generation = d.apply(spec(jitter)).await.generation;
        }
    }
    // The daemon still answers everyone else at once.
    assert_eq!(d.get("lag").await.generation, last_generation);

    // Reading again: what was in flight, then a fresh SNAPSHOT (the resync),
    // then nothing older; revisions only rise and the latest generation arrives.
    let mut revision = first.revision;
    let mut resynced = false;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), stalled.next())
            .await
            .expect("the stream goes on")
            .unwrap()
            .unwrap();
        assert!(m.revision > revision, "revisions rise: {} after {revision}", m.revision);
        revision = m.revision;
        resynced |= WatchEventKind::try_from(m.kind).unwrap() == WatchEventKind::Snapshot;
        if m.groups[0].generation == last_generation {
            break;
        }
    }
    assert!(resynced, "a watcher that fell behind gets a fresh snapshot");
    d.stop().await;
}
