//! Outlier ejection from real traffic, end to end: a test gateway calls tools
//! on real fixture MCP servers, reports each outcome to the real daemon over
//! `ReportOutcomes`, and the daemon ejects the backend whose tool calls fail
//! while its handshake works (HEALTHY and ejected), takes it out of EDS and
//! the phase (grpc.health follows), keeps it in on 4xx, caps ejections per
//! group, confirms a hard-down one UNHEALTHY by probing at once, and lets it
//! return once its ejection time is over and a probe passes.

use crate::common;

use common::*;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::v1::*;
use mcp_health::xds::EDS_TYPE;
use prost::Message;

/// One `tools/call` as a gateway makes it, and the report it would send.
async fn call_tool(http: &reqwest::Client, group: &str, backend: &str, url: &str) -> OutcomeReport {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"status","arguments":{}}}"#;
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await;
    let mut report = OutcomeReport {
        group: group.into(),
        backend: backend.into(),
        method: "tools/call".into(),
        ..OutcomeReport::default()
    };
    let kind = match sent {
        Err(e) if e.is_connect() => OutcomeKind::ConnectFailure,
        Err(e) if e.is_timeout() => OutcomeKind::Timeout,
        Err(_) => OutcomeKind::Reset,
        Ok(r) if !r.status().is_success() => {
            report.http_status = u32::from(r.status().as_u16());
            OutcomeKind::HttpStatus
        }
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
            if let Some(code) = v["error"]["code"].as_i64() {
                report.json_rpc_code = code as i32;
                OutcomeKind::JsonRpcError
            } else if v["result"]["isError"] == serde_json::Value::Bool(true) {
                OutcomeKind::ToolError
            } else {
                OutcomeKind::Ok
            }
        }
    };
    report.outcome = kind as i32;
    report
}

/// Sends reports over one ReportOutcomes stream.
async fn report(d: &mut TestDaemon, reports: Vec<OutcomeReport>) -> ReportOutcomesResponse {
    d.client
        .report_outcomes(tokio_stream::iter(reports))
        .await
        .expect("ReportOutcomes")
        .into_inner()
}

/// The group's EDS assignment as Envoy would get it: each endpoint's port and health.
async fn eds(d: &TestDaemon) -> Vec<(u32, HealthStatus)> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", d.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let request = DiscoveryRequest {
        resource_names: vec!["mcp-health/g".into()],
        type_url: EDS_TYPE.into(),
        ..Default::default()
    };
    let mut responses = ads.stream_aggregated_resources(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let r = responses.message().await.unwrap().unwrap();
    let cla = ClusterLoadAssignment::decode(r.resources[0].value.as_slice()).unwrap();
    let mut shown: Vec<(u32, HealthStatus)> = cla
        .endpoints
        .iter()
        .flat_map(|l| l.lb_endpoints.iter())
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("{e:?}")
            };
            let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
                panic!("{ep:?}")
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
                panic!("{sa:?}")
            };
            (port, HealthStatus::try_from(e.health_status).unwrap())
        })
        .collect();
    shown.sort_by_key(|(port, _)| *port);
    shown
}

async fn serving(d: &mut TestDaemon) -> ServingStatus {
    let r = d.health.check(HealthCheckRequest { service: "g".into() }).await.unwrap().into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

fn group(policy: &str, a: &str, b: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: g\npolicy: {policy}\nbackends:\n  - {{name: a, url: \"{a}\"}}\n  - {{name: b, url: \"{b}\"}}\n"
    ))
}

#[tokio::test]
async fn failing_tool_calls_eject_a_backend_whose_handshake_works_and_it_returns_after_its_time() {
    let (fa, fb) = (FixtureServer::start().await.unwrap(), FixtureServer::start().await.unwrap());
    fa.set_behavior(Behavior::ToolsCallError);
    let mut d = TestDaemon::start(DaemonOptions {
        xds: true,
        xds_debounce: std::time::Duration::from_millis(10),
        ..DaemonOptions::default()
    })
    .await;
    let policy = "{interval: 0.5s, timeout: 0.4s, outlier: {consecutiveFailures: 3, baseEjectionTime: 1s, maxEjectedPercent: 50}}";
    d.apply(group(policy, &fa.url(), &fb.url())).await;
    d.wait_group("g", "g READY", |h| phase(h) == GroupPhase::Ready).await;
    let http = reqwest::Client::new();

    // b answers 404 to what the gateway asks (a client error): it stays in.
    let not_found: Vec<OutcomeReport> = (0..5)
        .map(|_| OutcomeReport {
            group: "g".into(),
            backend: "b".into(),
            outcome: OutcomeKind::HttpStatus as i32,
            http_status: 404,
            ..OutcomeReport::default()
        })
        .collect();
    let r = report(&mut d, not_found).await;
    assert_eq!((r.accepted, r.ejected.len()), (5, 0));

    // a's handshake works (the probes say HEALTHY), its tool calls fail.
    let mut reports = Vec::new();
    for _ in 0..3 {
        let r = call_tool(&http, "g", "a", &fa.url()).await;
        assert_eq!((r.outcome, r.json_rpc_code), (OutcomeKind::JsonRpcError as i32, -32603), "{r:?}");
        reports.push(r);
    }
    reports.push(call_tool(&http, "g", "b", &fb.url()).await);
    assert_eq!(reports[3].outcome, OutcomeKind::Ok as i32, "b's tool calls work");
    let r = report(&mut d, reports).await;
    assert_eq!((r.accepted, r.unknown_backend, r.ejected.clone()), (4, 0, vec!["g/a".to_owned()]));

    let h = d.get("g").await;
    let a = backend(&h, "a");
    assert_eq!((status(a), a.routable), (BackendStatus::Healthy, false), "ejected beside a HEALTHY verdict");
    let ejection = a.ejection.clone().expect("ejection shown");
    assert!(ejection.cause.contains("JSON-RPC error -32603 to tools/call"), "{ejection:?}");
    assert!(backend(&h, "b").routable && backend(&h, "b").ejection.is_none());
    assert_eq!((phase(&h), h.summary.unwrap().ejected), (GroupPhase::Degraded, 1));
    assert_eq!(serving(&mut d).await, ServingStatus::Serving, "b still routes");
    let (pa, pb) = (u32::from(fa.addr().port()), u32::from(fb.addr().port()));
    let mut want = vec![(pa, HealthStatus::Unhealthy), (pb, HealthStatus::Healthy)];
    want.sort_by_key(|(p, _)| *p);
    assert_eq!(eds(&d).await, want, "Envoy gets a as UNHEALTHY");

    // The failures stop: a returns once its time (1 s) is over and a probe passes.
    fa.set_behavior(Behavior::Healthy);
    let h = d
        .wait_group("g", "a back", |h| backend(h, "a").routable && backend(h, "a").ejection.is_none())
        .await;
    assert_eq!(phase(&h), GroupPhase::Ready);
    assert!(eds(&d).await.iter().all(|(_, s)| *s == HealthStatus::Healthy));
    d.stop().await;
}

#[tokio::test]
async fn the_cap_holds_when_every_backend_fails_and_a_dead_one_is_confirmed_unhealthy() {
    let (fa, fb) = (FixtureServer::start().await.unwrap(), FixtureServer::start().await.unwrap());
    let mut d = TestDaemon::empty().await;
    // Scheduled probes come once an hour: only the ejection's confirmation
    // probes can take a dead backend to UNHEALTHY within this test.
    let policy = "{interval: 3600s, timeout: 1s, edgeInterval: 0.1s, unhealthyThreshold: 2, outlier: {consecutiveFailures: 2, baseEjectionTime: 3600s}}";
    d.apply(group(policy, &fa.url(), &fb.url())).await;
    d.wait_group("g", "g READY", |h| phase(h) == GroupPhase::Ready).await;
    let (a_url, b_url) = (fa.url(), fb.url());
    fa.stop().await;
    fb.set_behavior(Behavior::Status(503));
    let http = reqwest::Client::new();
    let mut reports = Vec::new();
    for _ in 0..2 {
        reports.push(call_tool(&http, "g", "a", &a_url).await);
        reports.push(call_tool(&http, "g", "b", &b_url).await);
    }
    assert_eq!(reports[0].outcome, OutcomeKind::ConnectFailure as i32, "{:?}", reports[0]);
    assert_eq!((reports[1].outcome, reports[1].http_status), (OutcomeKind::HttpStatus as i32, 503));
    let r = report(&mut d, reports).await;
    // The default maxEjectedPercent (10 %) lets one of two go, never both.
    assert_eq!(r.ejected, vec!["g/a".to_owned()]);
    let h = d.get("g").await;
    assert!(backend(&h, "a").ejection.is_some() && backend(&h, "b").ejection.is_none());
    assert_eq!(h.summary.unwrap().ejected, 1);

    // a is dead: its confirmation probes (at once, then at the edge interval) make it UNHEALTHY.
    let h = d.wait_group("g", "a UNHEALTHY", |h| status(backend(h, "a")) == BackendStatus::Unhealthy).await;
    let a = backend(&h, "a");
    assert!(a.ejection.is_some() && !a.routable, "still ejected: {a:?}");
    d.stop().await;
}

/// Envoy's access log, as Envoy streams it: HTTP entries of requests it
/// routed through our EDS, mapped to backends by (cluster, address, path).
#[tokio::test]
async fn envoys_access_log_entries_eject_the_backend_at_their_upstream_address() {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
    use envoy_types::pb::envoy::data::accesslog::v3::{AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties, ResponseFlags};
    use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
    use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
    use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{HttpAccessLogEntries, LogEntries};
    use envoy_types::pb::google::protobuf::UInt32Value;

    let (fa, fb) = (FixtureServer::start().await.unwrap(), FixtureServer::start().await.unwrap());
    let mut d = TestDaemon::start(DaemonOptions {
        access_log_service: true,
        ..DaemonOptions::default()
    })
    .await;
    let policy = "{interval: 3600s, outlier: {consecutiveFailures: 3, maxEjectedPercent: 50}}";
    d.apply(group(policy, &fa.url(), &fb.url())).await;
    d.wait_group("g", "g READY with addresses", |h| {
        phase(h) == GroupPhase::Ready && h.backends.iter().all(|b| !b.address.is_empty())
    })
    .await;
    let entry = |upstream: std::net::SocketAddr, path: &str, code: u32, flags: ResponseFlags| HttpAccessLogEntry {
        common_properties: Some(AccessLogCommon {
            upstream_cluster: "mcp-health/g".into(),
            upstream_remote_address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: upstream.ip().to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(upstream.port()))),
                    ..Default::default()
                })),
            }),
            response_flags: Some(flags),
            ..Default::default()
        }),
        request: Some(HttpRequestProperties {
            path: path.into(),
            ..Default::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(UInt32Value { value: code }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let message = |entries: Vec<HttpAccessLogEntry>| StreamAccessLogsMessage {
        identifier: None,
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries { log_entry: entries })),
    };
    let path = |u: &str| url::Url::parse(u).unwrap().path().to_owned();
    let (a, b) = (fa.addr(), fb.addr());
    let none = ResponseFlags::default();
    let uf = ResponseFlags {
        upstream_connection_failure: true,
        ..Default::default()
    };

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", d.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut als = AccessLogServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let stream = tokio::spawn(async move { als.stream_access_logs(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    // b answers 404s (it stays in); an address no backend has is skipped; a fails.
    let other: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    tx.send(message(vec![
        entry(b, &path(&fb.url()), 404, none),
        entry(b, &path(&fb.url()), 404, none),
        entry(b, &path(&fb.url()), 404, none),
        entry(other, "/mcp", 503, none),
        entry(a, &path(&fa.url()), 503, none),
        entry(a, &path(&fa.url()), 503, uf),
    ]))
    .await
    .unwrap();
    tx.send(message(vec![entry(a, &path(&fa.url()), 502, none)])).await.unwrap();
    // Envoy keeps the stream open: the ejection does not wait for its end.
    let h = d.wait_group("g", "a ejected", |h| backend(h, "a").ejection.is_some()).await;
    let a_shown = backend(&h, "a");
    assert_eq!((status(a_shown), a_shown.routable), (BackendStatus::Healthy, false));
    assert!(a_shown.ejection.as_ref().unwrap().cause.contains("HTTP 502"), "{a_shown:?}");
    assert!(backend(&h, "b").routable && backend(&h, "b").ejection.is_none());
    drop(tx);
    stream.await.unwrap().expect("the stream ends cleanly when Envoy closes it");
    d.stop().await;
}
