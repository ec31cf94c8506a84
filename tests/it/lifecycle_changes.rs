//! Change semantics of applies and deletes, as readers see them: unchanged
//! backends keep state and counters, changed ones (auth included) restart at
//! UNKNOWN and are probed at once, removed ones vanish from GetGroupHealth,
//! WatchGroupHealth (in the very next message) and grpc.health, and a probe in
//! flight can never bring a removed backend back.

use crate::common;

use common::*;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::v1::*;
use tonic::Code;

/// One hour between scheduled probes: every probe a test sees after the first
/// is one it caused (an apply, a restart of a backend, ProbeBackend).
const SLOW_POLICY: &str = "policy:\n  interval: 3600s\n  timeout: 10s\n  degradedLatency: 10s\n  unhealthyThreshold: 1\n";

fn spec(name: &str, backends: &[(&str, String)]) -> GroupSpec {
    let mut yaml = format!("name: {name}\n{SLOW_POLICY}backends:\n");
    for (b, url) in backends {
        yaml.push_str(&format!("  - name: {b}\n    url: {url}\n"));
    }
    group_yaml(&yaml)
}

async fn watch(d: &TestDaemon, group: &str) -> tonic::Streaming<WatchGroupHealthResponse> {
    d.client
        .clone()
        .watch_group_health(WatchGroupHealthRequest { group: group.into() })
        .await
        .expect("watch")
        .into_inner()
}

async fn next(stream: &mut tonic::Streaming<WatchGroupHealthResponse>) -> WatchGroupHealthResponse {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a watch message in time")
        .expect("stream ok")
        .expect("stream open")
}

fn names(h: &GroupHealth) -> Vec<&str> {
    h.backends.iter().map(|b| b.name.as_str()).collect()
}

#[tokio::test]
async fn unchanged_backends_keep_state_and_changed_ones_restart_at_unknown_and_are_probed_at_once() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    let (keep, moved, authed) = (fixture.url_for("/keep"), fixture.url_for("/moved"), fixture.url_for("/authed"));
    d.apply(spec(
        "g",
        &[("keep", keep.clone()), ("move", fixture.url_for("/before")), ("auth", authed.clone())],
    ))
    .await;
    let settled = d
        .wait_group("g", "all healthy", |h| h.backends.iter().all(|b| status(b) == BackendStatus::Healthy))
        .await;
    let keep_before = backend(&settled, "keep").clone();

    let mut stream = watch(&d, "g").await;
    assert_eq!(next(&mut stream).await.kind, WatchEventKind::Snapshot as i32);
    // `move` gets a new URL; `auth` a new auth mode (ToolHive #6509: an auth
    // change is a change of the backend); `keep` is untouched.
    let mut changed = spec("g", &[("keep", keep.clone()), ("move", moved.clone()), ("auth", authed.clone())]);
    changed.backends[2].auth = Some(AuthSpec {
        mode: AuthMode::PerUser as i32,
        ..Default::default()
    });
    let applied = d.apply(changed).await;
    assert!(applied.changed);
    assert_eq!(applied.generation, 2);

    let msg = next(&mut stream).await;
    assert_eq!(msg.kind, WatchEventKind::Changed as i32);
    let h = &msg.groups[0];
    assert_eq!(h.generation, 2);
    let keep_now = backend(h, "keep");
    assert_eq!(status(keep_now), BackendStatus::Healthy);
    assert_eq!(keep_now.consecutive_successes, keep_before.consecutive_successes, "counters kept");
    assert_eq!(keep_now.last_probe_time, keep_before.last_probe_time, "not probed again");
    assert_eq!(keep_now.last_transition_time, keep_before.last_transition_time);
    for name in ["move", "auth"] {
        let b = backend(h, name);
        assert_eq!(
            (status(b), reason(b), b.consecutive_successes),
            (BackendStatus::Unknown, ReasonCode::NotProbed, 0),
            "{name} restarts"
        );
    }
    assert_eq!(backend(h, "move").url, moved);
    assert_eq!(backend(h, "auth").auth_mode, AuthMode::PerUser as i32);

    // Probed at once: the next probe was an hour away.
    let after = d
        .wait_group("g", "changed backends probed", |h| {
            ["move", "auth"].iter().all(|n| status(backend(h, n)) == BackendStatus::Healthy)
        })
        .await;
    assert_eq!(backend(&after, "keep").last_probe_time, keep_before.last_probe_time);
    d.stop().await;
}

#[tokio::test]
async fn a_removed_backend_vanishes_from_get_watch_and_grpc_health() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    let down = format!("http://{}/mcp", mcp_fixture::reserve_port());
    d.apply(spec("g", &[("up", fixture.url_for("/up")), ("down", down.clone())])).await;
    d.wait_group("g", "up healthy, down unhealthy", |h| {
        status(backend(h, "up")) == BackendStatus::Healthy && status(backend(h, "down")) == BackendStatus::Unhealthy
    })
    .await;
    let check = |d: &TestDaemon| {
        let mut health = d.health.clone();
        async move { health.check(HealthCheckRequest { service: "g".into() }).await }
    };
    assert_eq!(check(&d).await.unwrap().into_inner().status, ServingStatus::Serving as i32, "DEGRADED serves");
    let mut health_watch = d.health.clone().watch(HealthCheckRequest { service: "g".into() }).await.unwrap().into_inner();
    assert_eq!(health_watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);

    let mut stream = watch(&d, "g").await;
    next(&mut stream).await;
    // Remove the routable one: what is left (`down`) cannot take traffic.
    d.apply(spec("g", &[("down", down.clone())])).await;
    let msg = next(&mut stream).await;
    assert_eq!(names(&msg.groups[0]), vec!["down"], "the very next message drops the backend");
    assert_eq!(msg.groups[0].summary.unwrap().total, 1);
    assert_eq!(names(&d.get("g").await), vec!["down"]);
    assert_eq!(phase(&d.get("g").await), GroupPhase::Failed);
    assert_eq!(check(&d).await.unwrap().into_inner().status, ServingStatus::NotServing as i32);
    assert_eq!(health_watch.message().await.unwrap().unwrap().status, ServingStatus::NotServing as i32);

    // Deleting the group: watchers get a final DELETED message, then the end.
    d.client.delete_group(DeleteGroupRequest { group: "g".into() }).await.unwrap();
    let last = next(&mut stream).await;
    assert_eq!(last.kind, WatchEventKind::Deleted as i32);
    assert_eq!(last.groups[0].name, "g");
    assert!(
        tokio::time::timeout(PATIENCE, stream.message()).await.expect("stream ends").unwrap().is_none(),
        "the stream ended"
    );
    assert_eq!(check(&d).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(health_watch.message().await.unwrap().unwrap().status, ServingStatus::ServiceUnknown as i32);
    let fresh = d
        .health
        .clone()
        .watch(HealthCheckRequest { service: "g".into() })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh.status, ServingStatus::ServiceUnknown as i32);
    assert_eq!(
        d.client.get_group_health(GetGroupHealthRequest { group: "g".into() }).await.unwrap_err().code(),
        Code::NotFound
    );
    d.stop().await;
}

#[tokio::test]
async fn a_probe_in_flight_cannot_resurrect_a_removed_backend() {
    let fixture = FixtureServer::start().await.unwrap();
    let slow = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(spec("g", &[("stay", fixture.url_for("/stay")), ("slow", slow.url())])).await;
    d.wait_group("g", "both healthy", |h| h.backends.iter().all(|b| status(b) == BackendStatus::Healthy))
        .await;
    let initializes = slow.stats().initialize;

    // A probe of `slow` starts and stays in flight on the server side.
    slow.set_behavior(Behavior::Slow(std::time::Duration::from_secs(2)));
    let mut prober = d.client.clone();
    let in_flight = tokio::spawn(async move {
        prober
            .probe_backend(ProbeBackendRequest {
                group: "g".into(),
                backend: "slow".into(),
            })
            .await
    });
    eventually("the probe reached the server", || async { Some(slow.stats().initialize) }, |n| *n > initializes).await;

    let mut stream = watch(&d, "g").await;
    next(&mut stream).await;
    d.apply(spec("g", &[("stay", fixture.url_for("/stay"))])).await;
    assert_eq!(names(&next(&mut stream).await.groups[0]), vec!["stay"]);

    // The probe finishes; its result is for a backend that no longer exists.
    let result = in_flight.await.unwrap();
    assert_eq!(result.unwrap_err().code(), Code::NotFound);
    let after = d.get("g").await;
    assert_eq!(names(&after), vec!["stay"], "the removed backend stayed gone");
    assert_eq!(after.summary.unwrap().total, 1);
    // Nothing else was published for the group: the next event is ours.
    d.client
        .probe_backend(ProbeBackendRequest {
            group: "g".into(),
            backend: "stay".into(),
        })
        .await
        .unwrap();
    let unrelated = d
        .apply(spec("g", &[("stay", fixture.url_for("/stay")), ("other", fixture.url_for("/other"))]))
        .await;
    assert!(unrelated.changed);
    loop {
        let msg = next(&mut stream).await;
        assert!(!names(&msg.groups[0]).contains(&"slow"), "the removed backend came back: {msg:#?}");
        if names(&msg.groups[0]).contains(&"other") {
            break;
        }
    }
    d.stop().await;
}
