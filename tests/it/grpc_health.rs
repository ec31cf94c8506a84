//! grpc.health.v1 with a real tonic client: Check, List, and Watch per spec —
//! SERVICE_UNKNOWN on an open stream for unknown names, only real changes, and
//! NOT_SERVING then a clean end on shutdown.

use crate::common;

use common::*;
use mcp_fixture::FixtureServer;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::grpc_health_v1::{HealthCheckRequest, HealthListRequest};
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;
use tonic::Code;

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest { service: service.into() }
}

fn spec(name: &str, url: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: {name}\npolicy:\n  interval: 0.3s\n  timeout: 0.2s\n  unhealthyThreshold: 1\nbackends:\n  - name: api\n    url: {url}\n"
    ))
}

#[tokio::test]
async fn check_and_list_follow_the_group_phase() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(spec("g", &server.url())).await;
    d.wait_group("g", "READY", |h| phase(h) == GroupPhase::Ready).await;
    let check = |s: &str| {
        let mut h = d.health.clone();
        let s = s.to_owned();
        async move { h.check(req(&s)).await.map(|r| r.into_inner().status) }
    };
    assert_eq!(check("").await.unwrap(), ServingStatus::Serving as i32);
    assert_eq!(check("mcphealth.v1.GroupHealthService").await.unwrap(), ServingStatus::Serving as i32);
    assert_eq!(check("g").await.unwrap(), ServingStatus::Serving as i32);
    assert_eq!(check("nope").await.unwrap_err().code(), Code::NotFound);

    server.stop().await;
    d.wait_group("g", "FAILED", |h| phase(h) == GroupPhase::Failed).await;
    assert_eq!(check("g").await.unwrap(), ServingStatus::NotServing as i32);
    let list = d.health.clone().list(HealthListRequest {}).await.unwrap().into_inner().statuses;
    let got: Vec<(String, i32)> = list.into_iter().map(|(k, v)| (k, v.status)).collect();
    assert_eq!(
        got,
        vec![
            (String::new(), ServingStatus::Serving as i32),
            ("g".into(), ServingStatus::NotServing as i32),
            ("mcphealth.v1.GroupHealthService".into(), ServingStatus::Serving as i32),
        ]
    );
    d.stop().await;
}

#[tokio::test]
async fn watch_of_an_unknown_service_stays_open_and_sends_only_real_changes() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    let mut watch = d.health.watch(req("later")).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status, ServingStatus::ServiceUnknown as i32);

    // The group appears: PENDING (NOT_SERVING), then READY (SERVING). Probes
    // keep succeeding afterwards, and none of them produces another message.
    d.apply(spec("later", &server.url())).await;
    let mut seen = vec![watch.next().await.unwrap().unwrap().status];
    if seen[0] != ServingStatus::Serving as i32 {
        seen.push(watch.next().await.unwrap().unwrap().status);
    }
    assert_eq!(seen.last(), Some(&(ServingStatus::Serving as i32)), "{seen:?}");
    d.wait_group("later", "several more probes", |h| backend(h, "api").consecutive_successes >= 4)
        .await;

    // The next message is the real change (down), not a repeat of SERVING.
    server.stop().await;
    assert_eq!(watch.next().await.unwrap().unwrap().status, ServingStatus::NotServing as i32);

    // Deleting the group makes it unknown again, on the same open stream.
    d.client.delete_group(DeleteGroupRequest { group: "later".into() }).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().status, ServingStatus::ServiceUnknown as i32);
    let err = d.health.check(req("later")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    d.stop().await;
}

#[tokio::test]
async fn shutdown_serves_not_serving_then_ends_streams_cleanly() {
    let mut d = TestDaemon::empty().await;
    let mut health = d.health.watch(req("")).await.unwrap().into_inner();
    assert_eq!(health.next().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    d.apply(group_yaml("name: empty\nbackends: []\n")).await;
    let mut groups = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!(groups.next().await.unwrap().is_ok());

    d.daemon.take().unwrap().stop().await.expect("clean stop");
    assert_eq!(health.next().await.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    assert!(health.next().await.is_none(), "health watch ends cleanly");
    assert!(groups.next().await.is_none(), "group watch ends cleanly");
}
