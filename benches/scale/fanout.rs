//! Scenario 5: Watch fan-out. S concurrent WatchGroupHealth streams on one
//! daemon child, 100 streams per HTTP/2 connection. A change is made with
//! ApplyGroup (a new generation publishes at once); delivery latency runs from
//! just before that call to each stream's receipt of the new generation.
//! RSS per stream is the daemon's RSS growth over S.

use std::time::Duration;

use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::{ApplyGroupRequest, BackendSpec, GroupSpec, ProbePolicy, WatchGroupHealthRequest};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::Sizes;
use crate::child::Worker;
use crate::proc_stats::{median, quantile};
use crate::table::{Report, num};

const STREAMS_PER_CONNECTION: usize = 100;

fn spec(fixture: &str, jitter: u32) -> GroupSpec {
    GroupSpec {
        name: "fan".into(),
        backends: vec![BackendSpec {
            name: "only".into(),
            url: format!("http://{fixture}/fan"),
            ..BackendSpec::default()
        }],
        // Only the jitter changes between applies: a new generation, same backend.
        policy: Some(ProbePolicy {
            jitter_percent: Some(jitter),
            ..ProbePolicy::default()
        }),
    }
}

async fn connect(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the daemon child")
}

/// One streams count: returns (p50 ms, p99 ms, KiB per stream, daemon RSS MiB), medians over changes.
async fn run(report: &mut Report, fixture: &str, streams: usize, changes: usize) -> (f64, f64, f64, f64) {
    let mut server = Worker::spawn("grpc-server", &json!({"kind": "daemon"}));
    let addr = server.expect("ADDR");
    let mut admin = GroupHealthServiceClient::new(connect(&addr).await);
    admin
        .apply_group(ApplyGroupRequest {
            spec: Some(spec(fixture, 10)),
            validate_only: false,
        })
        .await
        .expect("apply");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before: f64 = server.command("rss").parse().unwrap_or(f64::NAN);

    // Every stream reports (generation, receipt time) for every message.
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut channels = Vec::new();
    for _ in 0..streams.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(connect(&addr).await);
    }
    for i in 0..streams {
        let mut client = GroupHealthServiceClient::new(channels[i / STREAMS_PER_CONNECTION].clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(resp) = client.watch_group_health(WatchGroupHealthRequest { group: "fan".into() }).await else {
                return;
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(msg)) = stream.message().await {
                let generation = msg.groups.first().map_or(0, |g| g.generation);
                if tx.send((generation, Instant::now())).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    // Wait for every snapshot (generation 1).
    let mut snapshots = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while snapshots < streams {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((1, _))) => snapshots += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    report.sanity(snapshots == streams, format!("fan-out: only {snapshots} of {streams} streams opened"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after: f64 = server.command("rss").parse().unwrap_or(f64::NAN);

    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for change in 0..changes {
        let generation = 2 + change as u64;
        let jitter = if change % 2 == 0 { 11 } else { 10 };
        let t0 = Instant::now();
        admin
            .apply_group(ApplyGroupRequest {
                spec: Some(spec(fixture, jitter)),
                validate_only: false,
            })
            .await
            .expect("apply");
        let mut latencies = Vec::with_capacity(streams);
        let deadline = Instant::now() + Duration::from_secs(30);
        while latencies.len() < streams {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((g, at))) if g == generation => latencies.push((at - t0).as_secs_f64() * 1e3),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        report.sanity(
            latencies.len() == streams,
            format!("fan-out: change {generation} reached {} of {streams} streams", latencies.len()),
        );
        p50s.push(quantile(&mut latencies, 0.5));
        p99s.push(quantile(&mut latencies, 0.99));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(channels);
    let kib_per_stream = (rss_after - rss_before) * 1024.0 / streams as f64;
    (median(&p50s), median(&p99s), kib_per_stream, rss_after)
}

pub async fn fanout(report: &mut Report, fixture: &str, sizes: &Sizes) {
    for &streams in &sizes.watch_streams {
        let runs: Vec<(f64, f64, f64, f64)> = {
            let mut v = Vec::new();
            for i in 0..sizes.repeats {
                eprintln!("fan-out: {streams} streams, repeat {} of {}", i + 1, sizes.repeats);
                v.push(run(report, fixture, streams, sizes.watch_changes).await);
            }
            v
        };
        let p50 = median(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
        let p99 = median(&runs.iter().map(|r| r.1).collect::<Vec<_>>());
        let kib = median(&runs.iter().map(|r| r.2).collect::<Vec<_>>());
        let rss = median(&runs.iter().map(|r| r.3).collect::<Vec<_>>());
        let big = streams >= 10_000;
        report.add(
            "5 fan-out",
            &format!("{streams} streams: delivery p50 / p99 ms"),
            format!("{} / {}", num(p50), num(p99)),
            if big { "p99 < 200" } else { "" },
            big.then_some(p99 < 200.0),
        );
        report.add(
            "5 fan-out",
            &format!("{streams} streams: daemon RSS MiB (growth KiB per stream)"),
            format!("{} ({} KiB)", num(rss), num(kib)),
            if big { "RSS < 200" } else { "" },
            big.then_some(rss < 200.0),
        );
    }
}
