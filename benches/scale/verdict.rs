//! Scenario 4: verdict latency. A one-backend group probed every 200 ms; its
//! fixture server is stopped (connections refused), then resumed. Each time is
//! measured from the moment before the change to the grpc.health Watch
//! message that reports it, against the policy's bound.

use std::time::Duration;

use mcp_fixture::FixtureServer;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::grpc_health_v1::health_client::HealthClient;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::{ApplyGroupRequest, BackendSpec, GroupSpec, ProbePolicy};
use rand::Rng;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::Sizes;
use crate::proc_stats::{median, quantile};
use crate::table::{Report, num};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(100);
const UNHEALTHY_THRESHOLD: u32 = 3;
const HEALTHY_THRESHOLD: u32 = 1;
const JITTER_PERCENT: u32 = 10;
/// The allowance over the policy bound.
const SLACK_MS: f64 = 50.0;

fn pb(d: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Waits for the Watch stream to report `want`; None if the stream ends or 10 s pass.
async fn until(stream: &mut Streaming<mcp_health::proto::grpc_health_v1::HealthCheckResponse>, want: ServingStatus) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.message()).await.ok()?.ok()??;
        if msg.status == want as i32 {
            return Some(Instant::now());
        }
    }
}

pub async fn verdict(report: &mut Report, sizes: &Sizes) {
    let fixture = FixtureServer::start().await.expect("fixture listens");
    let daemon = Daemon::start(DaemonOptions {
        listen: "127.0.0.1:0".parse().expect("literal"),
        ..DaemonOptions::default()
    })
    .await
    .expect("daemon starts");
    let channel = Channel::from_shared(format!("http://{}", daemon.local_addr()))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let spec = GroupSpec {
        name: "verdict".into(),
        backends: vec![BackendSpec {
            name: "only".into(),
            url: fixture.url_for("/v"),
            ..BackendSpec::default()
        }],
        policy: Some(ProbePolicy {
            interval: Some(pb(INTERVAL)),
            timeout: Some(pb(TIMEOUT)),
            unhealthy_threshold: Some(UNHEALTHY_THRESHOLD),
            healthy_threshold: Some(HEALTHY_THRESHOLD),
            jitter_percent: Some(JITTER_PERCENT),
            ..ProbePolicy::default()
        }),
    };
    GroupHealthServiceClient::new(channel.clone())
        .apply_group(ApplyGroupRequest {
            spec: Some(spec),
            validate_only: false,
        })
        .await
        .expect("apply");
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest { service: "verdict".into() })
        .await
        .expect("watch")
        .into_inner();
    report.sanity(
        until(&mut stream, ServingStatus::Serving).await.is_some(),
        "verdict: the group never became SERVING",
    );

    eprintln!("verdict: {} kill/recover cycles", sizes.verdict_cycles);
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for _ in 0..sizes.verdict_cycles {
        // Kill at a random phase of the probe timer.
        let pause = rand::rng().random_range(0..INTERVAL.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let t0 = Instant::now();
        fixture.stop().await;
        match until(&mut stream, ServingStatus::NotServing).await {
            Some(t) => down.push((t - t0).as_secs_f64() * 1e3),
            None => report.sanity(false, "verdict: NOT_SERVING never came"),
        }
        let pause = rand::rng().random_range(0..INTERVAL.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let t1 = Instant::now();
        fixture.resume().await.expect("fixture listens again");
        match until(&mut stream, ServingStatus::Serving).await {
            Some(t) => up.push((t - t1).as_secs_f64() * 1e3),
            None => report.sanity(false, "verdict: SERVING never came back"),
        }
    }
    let _ = daemon.stop().await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let down_bound = ms(INTERVAL) * f64::from(UNHEALTHY_THRESHOLD) + ms(TIMEOUT);
    let up_bound = ms(INTERVAL) * f64::from(HEALTHY_THRESHOLD) + ms(TIMEOUT);
    let policy = format!("interval 200 ms ±{JITTER_PERCENT}%, timeout 100 ms");
    for (what, samples, threshold, bound) in [
        ("kill → NOT_SERVING", &mut down, UNHEALTHY_THRESHOLD, down_bound),
        ("recover → SERVING", &mut up, HEALTHY_THRESHOLD, up_bound),
    ] {
        let p50 = median(samples);
        let max = quantile(samples, 1.0);
        report.add(
            "4 verdict",
            &format!("{what} ms, p50 / max of {} ({policy}, threshold {threshold})", samples.len()),
            format!("{} / {}", num(p50), num(max)),
            &format!("≤ {} (bound {} + 50)", num(bound + SLACK_MS), num(bound)),
            Some(!samples.is_empty() && max <= bound + SLACK_MS),
        );
    }
}
