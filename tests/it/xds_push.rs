//! xDS pushes through a real tonic client (envoy-types): a burst of changes
//! becomes one push, and a change that leaves an assignment as it was pushes
//! nothing (the next push is the next real change).

use crate::common;

use common::*;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use mcp_fixture::FixtureServer;
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::v1::*;
use mcp_health::xds::EDS_TYPE;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn statuses(r: &DiscoveryResponse) -> Vec<i32> {
    let cla = ClusterLoadAssignment::decode(r.resources[0].value.as_slice()).unwrap();
    cla.endpoints.iter().flat_map(|l| l.lb_endpoints.iter().map(|e| e.health_status)).collect()
}

fn request(version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: vec!["mcp-health/g".into()],
        type_url: EDS_TYPE.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_burst_of_changes_is_one_push() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        xds: true,
        // Long enough that five local RPCs always fall in one window.
        xds_debounce: std::time::Duration::from_secs(3),
        ..DaemonOptions::default()
    })
    .await;
    let backends: String = (0..5)
        .map(|i| format!("  - {{name: b{i}, url: \"{}\"}}\n", fixture.url_for(&format!("/b{i}"))))
        .collect();
    d.apply(group_yaml(&format!("name: g\npolicy: {{interval: 3600s}}\nbackends:\n{backends}")))
        .await;
    d.wait_group("g", "every backend probed", |h| h.backends.iter().all(|b| status(b) == BackendStatus::Healthy))
        .await;

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", d.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    tx.send(request("", "")).await.unwrap();
    let mut responses = ads.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    // The first response may predate the catalog's view of the first verdicts: ACK until all HEALTHY.
    let mut r = responses.message().await.unwrap().unwrap();
    while statuses(&r) != vec![HealthStatus::Healthy as i32; 5] {
        tx.send(request(&r.version_info, &r.nonce)).await.unwrap();
        r = responses.message().await.unwrap().unwrap();
    }
    tx.send(request(&r.version_info, &r.nonce)).await.unwrap();

    // Five changes in a burst: one push with all five.
    for i in 0..5 {
        let req = SetBackendDrainRequest {
            group: "g".into(),
            backend: format!("b{i}"),
            drain: true,
        };
        d.client.set_backend_drain(req).await.unwrap();
    }
    let push = responses.message().await.unwrap().unwrap();
    assert_eq!(statuses(&push), vec![HealthStatus::Draining as i32; 5], "one push carries the whole burst");
    tx.send(request(&push.version_info, &push.nonce)).await.unwrap();

    // A change of the probe policy publishes the group again, but its assignment
    // is unchanged: no push. The next push is the next real change.
    let drained: String = (0..5)
        .map(|i| format!("  - {{name: b{i}, url: \"{}\", drain: true}}\n", fixture.url_for(&format!("/b{i}"))))
        .collect();
    let applied = d
        .apply(group_yaml(&format!("name: g\npolicy: {{interval: 3599s}}\nbackends:\n{drained}")))
        .await;
    assert!(applied.changed);
    d.client
        .set_backend_drain(SetBackendDrainRequest {
            group: "g".into(),
            backend: "b4".into(),
            drain: false,
        })
        .await
        .unwrap();
    let next = responses.message().await.unwrap().unwrap();
    let d4 = HealthStatus::Draining as i32;
    assert_eq!(statuses(&next), vec![d4, d4, d4, d4, HealthStatus::Healthy as i32]);
    assert!(next.version_info.parse::<u64>().unwrap() > push.version_info.parse::<u64>().unwrap());
    drop(tx);
    d.stop().await;
}
