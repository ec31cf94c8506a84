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
            ..Default::default()
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
            ..Default::default()
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

/// Each endpoint of an assignment: (address, port, hostname, health).
pub(crate) fn endpoints(cla: &ClusterLoadAssignment) -> Vec<(String, u32, String, HealthStatus)> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("{e:?}")
            };
            let Some(address::Address::SocketAddress(s)) = ep.address.as_ref().and_then(|a| a.address.clone()) else {
                panic!("{e:?}")
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = s.port_specifier else {
                panic!("{e:?}")
            };
            (s.address, port, ep.hostname.clone(), HealthStatus::try_from(e.health_status).unwrap())
        })
        .collect()
}

/// Follows group `group`'s assignment over a real ADS stream, ACKing every
/// response, until `done` holds for it.
pub(crate) async fn assignment_until(
    addr: std::net::SocketAddr,
    group: &str,
    what: &str,
    done: impl Fn(&ClusterLoadAssignment) -> bool,
) -> ClusterLoadAssignment {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    let ask = |version: &str, nonce: &str| DiscoveryRequest {
        version_info: version.into(),
        resource_names: vec![format!("mcp-health/{group}")],
        type_url: EDS_TYPE.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    };
    tx.send(ask("", "")).await.unwrap();
    let mut responses = ads.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let follow = async {
        let mut seen = Vec::new();
        loop {
            let r = responses.message().await.unwrap().expect("the stream stays open");
            let cla = ClusterLoadAssignment::decode(r.resources[0].value.as_slice()).unwrap();
            if done(&cla) {
                return cla;
            }
            seen.push(endpoints(&cla));
            tx.send(ask(&r.version_info, &r.nonce)).await.unwrap();
        }
    };
    // A bound on a test that would otherwise wait forever, not a timing assertion.
    tokio::time::timeout(std::time::Duration::from_secs(60), follow)
        .await
        .unwrap_or_else(|_| panic!("xDS never gave {what}"))
}

/// Issue 19 §1: xDS resolved host names with a resolver of its own, so a name
/// only `--dns-server` knows read HEALTHY in the API and had no endpoint in EDS.
/// Envoy now gets the address the probe connected to, and the name as hostname.
#[tokio::test]
async fn envoy_gets_the_address_the_probe_connected_to_through_dns_server() {
    let dns = mcp_fixture::dnsmasq::Dnsmasq::start("127.0.0.1 only-here.test\n", 60);
    let fixture = FixtureServer::start().await.unwrap();
    let port = fixture.addr().port();
    let engine = mcp_health::engine::EngineConfig {
        dns: mcp_health::probe::DnsSettings { server: Some(dns.addr) },
        ..Default::default()
    };
    let mut d = TestDaemon::start(DaemonOptions {
        xds: true,
        xds_debounce: std::time::Duration::from_millis(10),
        engine,
        ..DaemonOptions::default()
    })
    .await;
    d.apply(group_yaml(&format!(
        "name: g\nbackends:\n  - {{name: named, url: \"http://only-here.test:{port}/mcp\"}}\n"
    )))
    .await;
    let h = d
        .wait_group("g", "the named backend HEALTHY", |h| status(&h.backends[0]) == BackendStatus::Healthy)
        .await;
    assert_eq!(
        h.backends[0].address,
        format!("127.0.0.1:{port}"),
        "the API shows the address the probe connected to"
    );
    let cla = assignment_until(d.addr, "g", "the named backend's endpoint", |c| !endpoints(c).is_empty()).await;
    assert_eq!(
        endpoints(&cla),
        vec![("127.0.0.1".to_owned(), u32::from(port), "only-here.test".to_owned(), HealthStatus::Healthy)]
    );
    d.stop().await;
}

/// Issue 19 §1: a backend not probed yet (Envoy routes to UNKNOWN hosts) and a
/// backend no probe ever reached (so no address passed our resolver and guard)
/// are withheld; xDS used to resolve `localhost` itself and send both.
#[tokio::test]
async fn backends_not_probed_yet_or_never_reached_are_withheld_from_envoy() {
    let fixture = FixtureServer::start().await.unwrap();
    fixture.set_path_behavior("/hang", mcp_fixture::Behavior::Hang);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut d = TestDaemon::start(DaemonOptions {
        xds: true,
        xds_debounce: std::time::Duration::from_millis(10),
        ..DaemonOptions::default()
    })
    .await;
    // The hanging backend stays UNKNOWN for the whole test (its probe's timeout is long).
    d.apply(group_yaml(&format!(
        "name: g\npolicy: {{interval: 600s, timeout: 300s}}\nbackends:\n  \
         - {{name: ok, url: \"{}\"}}\n  - {{name: hangs, url: \"{}\"}}\n  \
         - {{name: refused, url: \"http://localhost:{closed}/mcp\"}}\n",
        fixture.url_for("/ok"),
        fixture.url_for("/hang"),
    )))
    .await;
    let h = d
        .wait_group("g", "ok HEALTHY, refused judged, hangs not yet", |h| {
            let by = |n: &str| status(h.backends.iter().find(|b| b.name == n).unwrap());
            by("ok") == BackendStatus::Healthy && by("refused") != BackendStatus::Unknown && by("hangs") == BackendStatus::Unknown
        })
        .await;
    let refused = h.backends.iter().find(|b| b.name == "refused").unwrap();
    assert_eq!(refused.address, "", "no probe reached it");
    let cla = assignment_until(d.addr, "g", "the judged, reached backend", |c| !endpoints(c).is_empty()).await;
    let port = u32::from(fixture.addr().port());
    assert_eq!(
        endpoints(&cla),
        vec![("127.0.0.1".to_owned(), port, String::new(), HealthStatus::Healthy)],
        "only the backend a probe reached and judged"
    );
    d.stop().await;
}

/// xDS streams are admitted under `--max-xds-streams`: past it a new stream
/// gets RESOURCE_EXHAUSTED naming the flag, whatever RPC it uses, and a
/// closed stream frees its place.
#[tokio::test]
async fn xds_streams_past_the_cap_are_refused_until_one_closes() {
    use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
    let mut d = TestDaemon::start(DaemonOptions {
        xds: true,
        max_xds_streams: 2,
        ..DaemonOptions::default()
    })
    .await;
    d.apply(group_yaml("name: g\nbackends: []\n")).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", d.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(channel.clone());
    let mut eds = EndpointDiscoveryServiceClient::new(channel);
    // Two streams, each answered (so each is open on the server).
    let mut open = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = mpsc::channel(8);
        tx.send(request("", "")).await.unwrap();
        let mut responses = ads.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        responses.message().await.unwrap().expect("a first response");
        open.push((tx, responses));
    }
    let (_tx3, rx3) = mpsc::channel::<DiscoveryRequest>(8);
    let refused = ads.stream_aggregated_resources(ReceiverStream::new(rx3)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("--max-xds-streams"), "{}", refused.message());
    let (_tx4, rx4) = mpsc::channel::<DiscoveryRequest>(8);
    let refused = eds.stream_endpoints(ReceiverStream::new(rx4)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "the cap covers every xDS RPC");

    // One stream closes (the client ends it): a new one is admitted.
    let (tx, mut responses) = open.pop().unwrap();
    drop(tx);
    while responses.message().await.ok().flatten().is_some() {}
    drop(responses);
    let admitted = common::eventually(
        "a new stream admitted once one closed",
        || {
            let mut ads = ads.clone();
            async move {
                let (tx, rx) = mpsc::channel(8);
                tx.send(request("", "")).await.ok()?;
                let r = ads.stream_aggregated_resources(ReceiverStream::new(rx)).await;
                Some((r.is_ok(), tx))
            }
        },
        |(ok, _)| *ok,
    )
    .await;
    assert!(admitted.0);
    d.stop().await;
}
