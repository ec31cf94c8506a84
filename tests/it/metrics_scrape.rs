//! The Prometheus endpoint end to end: a daemon with `metrics_listen`,
//! fixture backends, scrapes before and after a forced transition, and series
//! removed with their backend or group.

use crate::common;

use common::*;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;

async fn metrics_daemon() -> (TestDaemon, String) {
    let d = TestDaemon::start(DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await;
    let addr = d.daemon.as_ref().unwrap().metrics_addr().expect("metrics are served");
    (d, format!("http://{addr}/metrics"))
}

async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url).await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of one series, by its name and labels exactly as exposed.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Scrapes until every series has the wanted value (the owner task updates
/// them as it goes; the scrape is a separate connection).
async fn wait_values(url: &str, what: &str, want: &[(&str, f64)]) -> String {
    let url = url.to_owned();
    let want: Vec<(String, f64)> = want.iter().map(|(s, v)| (s.to_string(), *v)).collect();
    eventually(
        what,
        || {
            let url = url.clone();
            async move { Some(scrape(&url).await) }
        },
        |text| want.iter().all(|(s, v)| value(text, s) == Some(*v)),
    )
    .await
}

const GROUP_WATCHES: &str = "mcp_health_watch_streams{api=\"group_health\"}";
const HEALTH_WATCHES: &str = "mcp_health_watch_streams{api=\"grpc_health\"}";

fn status_series(group: &str, backend: &str, status: &str) -> String {
    format!("mcp_health_backend_status{{group=\"{group}\",backend=\"{backend}\",status=\"{status}\"}}")
}

fn phase_series(group: &str, phase: &str) -> String {
    format!("mcp_health_group_phase{{group=\"{group}\",phase=\"{phase}\"}}")
}

fn probe_count(group: &str, outcome: &str) -> String {
    format!("mcp_health_probe_duration_seconds_count{{group=\"{group}\",outcome=\"{outcome}\"}}")
}

fn spec(name: &str, backends: &[(&str, &str)]) -> String {
    let mut yaml = format!("name: {name}\npolicy: {{interval: 0.3s, timeout: 0.2s, unhealthyThreshold: 1}}\nbackends:\n");
    for (b, url) in backends {
        yaml.push_str(&format!("  - name: {b}\n    url: {url}\n"));
    }
    yaml
}

#[tokio::test]
async fn a_forced_transition_moves_the_right_series() {
    let fixture = FixtureServer::start().await.unwrap();
    let (mut d, url) = metrics_daemon().await;
    d.apply_yaml(&spec("web", &[("a", &fixture.url())])).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;

    let before = wait_values(
        &url,
        "metrics of a READY group",
        &[
            (&status_series("web", "a", "healthy"), 1.0),
            (&status_series("web", "a", "unhealthy"), 0.0),
            (&status_series("web", "a", "unknown"), 0.0),
            (&phase_series("web", "ready"), 1.0),
            (&phase_series("web", "failed"), 0.0),
            ("mcp_health_group_routable_backends{group=\"web\"}", 1.0),
            ("mcp_health_group_backends{group=\"web\"}", 1.0),
            ("mcp_health_backend_transitions_total{from=\"unknown\",to=\"healthy\"}", 1.0),
            (GROUP_WATCHES, 0.0),
            (HEALTH_WATCHES, 0.0),
        ],
    )
    .await;
    assert!(value(&before, &probe_count("web", "healthy")).unwrap() >= 1.0, "{before}");
    assert_eq!(value(&before, "mcp_health_backend_transitions_total{from=\"healthy\",to=\"unhealthy\"}"), None);
    assert_eq!(value(&before, &probe_count("web", "failure")), None);

    fixture.stop().await;
    d.wait_group("web", "web FAILED", |h| phase(h) == GroupPhase::Failed).await;
    let after = wait_values(
        &url,
        "metrics of the FAILED group",
        &[
            (&status_series("web", "a", "healthy"), 0.0),
            (&status_series("web", "a", "unhealthy"), 1.0),
            (&phase_series("web", "ready"), 0.0),
            (&phase_series("web", "failed"), 1.0),
            ("mcp_health_group_routable_backends{group=\"web\"}", 0.0),
            ("mcp_health_backend_transitions_total{from=\"healthy\",to=\"unhealthy\"}", 1.0),
        ],
    )
    .await;
    assert!(value(&after, &probe_count("web", "failure")).unwrap() >= 1.0, "{after}");

    // Back to healthy: the counter counts the way back too.
    fixture.resume().await.unwrap();
    wait_values(
        &url,
        "recovery",
        &[
            ("mcp_health_backend_transitions_total{from=\"unhealthy\",to=\"healthy\"}", 1.0),
            (&phase_series("web", "ready"), 1.0),
        ],
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn removed_backends_and_deleted_groups_lose_their_series() {
    let fixture = FixtureServer::start().await.unwrap();
    let (mut d, url) = metrics_daemon().await;
    d.apply_yaml(&spec("web", &[("a", &fixture.url()), ("b", &fixture.url())])).await;
    wait_values(
        &url,
        "both backends healthy",
        &[(&status_series("web", "a", "healthy"), 1.0), (&status_series("web", "b", "healthy"), 1.0)],
    )
    .await;

    d.apply_yaml(&spec("web", &[("b", &fixture.url())])).await;
    let text = wait_values(&url, "one backend left", &[("mcp_health_group_backends{group=\"web\"}", 1.0)]).await;
    assert!(!text.contains("backend=\"a\""), "series of the removed backend remain:\n{text}");
    assert!(text.contains(&status_series("web", "b", "healthy")), "{text}");

    d.client.delete_group(DeleteGroupRequest { group: "web".into() }).await.unwrap();
    let text = scrape(&url).await;
    assert!(!text.contains("group=\"web\""), "series of the deleted group remain:\n{text}");
    // Transitions are counted across groups and stay.
    assert!(
        value(&text, "mcp_health_backend_transitions_total{from=\"unknown\",to=\"healthy\"}").unwrap() >= 2.0,
        "{text}"
    );
    d.stop().await;
}

#[tokio::test]
async fn probes_in_flight_and_watch_streams_go_up_and_back_down() {
    let hanging = FixtureServer::start().await.unwrap();
    hanging.set_behavior(Behavior::Hang);
    let (mut d, url) = metrics_daemon().await;
    // A probe that hangs until its timeout stays in flight meanwhile.
    d.apply_yaml(
        "name: slowpoke\npolicy: {interval: 60s, timeout: 50s}\nbackends:\n  - name: h\n    url: URL\n"
            .replace("URL", &hanging.url())
            .as_str(),
    )
    .await;
    wait_values(&url, "one probe in flight", &[("mcp_health_probes_in_flight", 1.0)]).await;
    // Deleting the group aborts the probe task; its guard still counts it out.
    d.client.delete_group(DeleteGroupRequest { group: "slowpoke".into() }).await.unwrap();
    wait_values(&url, "no probe in flight", &[("mcp_health_probes_in_flight", 0.0)]).await;

    let mut first = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: String::new() })
        .await
        .unwrap()
        .into_inner();
    let mut second = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: String::new() })
        .await
        .unwrap()
        .into_inner();
    first.next().await.unwrap().unwrap();
    second.next().await.unwrap().unwrap();
    wait_values(&url, "two watch streams", &[(GROUP_WATCHES, 2.0), (HEALTH_WATCHES, 0.0)]).await;
    drop(first);
    // The forwarder notices the closed stream and ends; the gauge follows.
    wait_values(&url, "one watch stream", &[(GROUP_WATCHES, 1.0)]).await;
    drop(second);
    wait_values(&url, "no watch stream", &[(GROUP_WATCHES, 0.0)]).await;

    // grpc.health.v1 Watch streams (what Envoy and grpc_health_probe hold
    // open) count too, under their own label.
    let mut health = d.health.clone();
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "no-such-group".into(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.next().await.unwrap().unwrap();
    wait_values(&url, "one health watch", &[(HEALTH_WATCHES, 1.0), (GROUP_WATCHES, 0.0)]).await;
    drop(watch);
    wait_values(&url, "no health watch", &[(HEALTH_WATCHES, 0.0)]).await;
    d.stop().await;
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let d = TestDaemon::empty().await;
    assert_eq!(d.daemon.as_ref().unwrap().metrics_addr(), None);
    d.stop().await;
}

/// Failing tools (a JSON-RPC error to tools/list) leave the backend DEGRADED
/// and are counted under their own outcome, never as slowness.
#[tokio::test]
async fn failing_tools_have_their_own_outcome_label() {
    let fixture = FixtureServer::start().await.unwrap();
    fixture.set_behavior(Behavior::ToolsListError);
    let (mut d, url) = metrics_daemon().await;
    d.apply_yaml(&format!(
        "name: tools\nbackends:\n  - name: a\n    url: {}\n    depth: PROBE_DEPTH_TOOLS\n",
        fixture.url()
    ))
    .await;
    d.wait_group("tools", "tools DEGRADED", |h| phase(h) == GroupPhase::Degraded).await;
    let text = wait_values(&url, "a DEGRADED backend", &[(&status_series("tools", "a", "degraded"), 1.0)]).await;
    assert!(value(&text, &probe_count("tools", "tools_failing")).unwrap() >= 1.0, "{text}");
    assert_eq!(value(&text, &probe_count("tools", "slow")), None, "{text}");
}

#[tokio::test]
async fn a_drained_backend_is_counted_draining_and_keeps_its_status() {
    let fixture = FixtureServer::start().await.unwrap();
    let (mut d, url) = metrics_daemon().await;
    d.apply_yaml(&spec("web", &[("a", &fixture.url())])).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;
    let drain = SetBackendDrainRequest {
        group: "web".into(),
        backend: "a".into(),
        drain: true,
        ..Default::default()
    };
    d.client.set_backend_drain(drain).await.unwrap();
    wait_values(
        &url,
        "metrics of a drained backend",
        &[
            (&status_series("web", "a", "healthy"), 1.0),
            (&phase_series("web", "failed"), 1.0),
            ("mcp_health_group_routable_backends{group=\"web\"}", 0.0),
            ("mcp_health_group_draining_backends{group=\"web\"}", 1.0),
        ],
    )
    .await;
    d.stop().await;
}
