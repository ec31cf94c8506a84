//! Scenario 6: grpc.health Check throughput of mcp-healthd against a bare
//! tonic-health server with one static status, each in its own child process,
//! driven by the same load generator (C concurrent callers over a few HTTP/2
//! connections for a fixed time), alternated and paired run by run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_client::HealthClient;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::{ApplyGroupRequest, BackendSpec, GroupSpec};
use serde_json::json;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use crate::Sizes;
use crate::child::Worker;
use crate::proc_stats::median;
use crate::table::{Report, num};

const CONNECTIONS: usize = 4;
/// The service both servers answer: a group on the daemon, a static name on tonic-health.
const SERVICE: &str = "bench";

/// Checks per second against `kind`, and the share that answered.
async fn load(kind: &str, fixture: &str, sizes: &Sizes) -> (f64, f64) {
    let mut server = Worker::spawn("grpc-server", &json!({"kind": kind}));
    let addr = server.expect("ADDR");
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(Endpoint::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect"));
    }
    if kind == "daemon" {
        let spec = GroupSpec {
            name: SERVICE.into(),
            backends: vec![BackendSpec {
                name: "only".into(),
                url: format!("http://{fixture}/check"),
                ..BackendSpec::default()
            }],
            policy: None,
        };
        GroupHealthServiceClient::new(channels[0].clone())
            .apply_group(ApplyGroupRequest {
                spec: Some(spec),
                validate_only: false,
            })
            .await
            .expect("apply");
    }
    let calls = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let run = |duration: Duration| {
        let stop = Instant::now() + duration;
        let tasks: Vec<_> = (0..sizes.check_concurrency)
            .map(|i| {
                let mut client = HealthClient::new(channels[i % CONNECTIONS].clone());
                let (calls, answered) = (calls.clone(), answered.clone());
                tokio::spawn(async move {
                    while Instant::now() < stop {
                        let ok = client.check(HealthCheckRequest { service: SERVICE.into() }).await.is_ok();
                        calls.fetch_add(1, Relaxed);
                        answered.fetch_add(u64::from(ok), Relaxed);
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                let _ = t.await;
            }
        }
    };
    // A short warm-up so both servers are measured with warm connections.
    run(Duration::from_millis(300)).await;
    calls.store(0, Relaxed);
    answered.store(0, Relaxed);
    let t0 = Instant::now();
    run(Duration::from_millis(sizes.check_measure_ms)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let n = calls.load(Relaxed) as f64;
    (n / elapsed, if n > 0.0 { answered.load(Relaxed) as f64 / n } else { 0.0 })
}

pub async fn check(report: &mut Report, fixture: &str, sizes: &Sizes) {
    let (mut ours, mut bare, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..sizes.repeats {
        eprintln!("check: repeat {} of {}", i + 1, sizes.repeats);
        let (b, b_ok) = load("bare", fixture, sizes).await;
        let (o, o_ok) = load("daemon", fixture, sizes).await;
        report.sanity(
            b_ok >= 0.999 && o_ok >= 0.999,
            format!("check: answered shares {b_ok:.4} (bare) and {o_ok:.4} (ours)"),
        );
        report.sanity(b > 0.0 && o > 0.0, "check: nothing measured");
        ours.push(o);
        bare.push(b);
        ratios.push(o / b);
    }
    let c = sizes.check_concurrency;
    report.add(
        "6 Check",
        &format!("bare tonic-health Check/s ({c} callers, {CONNECTIONS} connections)"),
        num(median(&bare)),
        "",
        None,
    );
    report.add("6 Check", "mcp-healthd Check/s", num(median(&ours)), "", None);
    let ratio = median(&ratios);
    report.add("6 Check", "ours / bare (median of paired ratios)", num(ratio), "≥ 0.9", Some(ratio >= 0.9));
}
