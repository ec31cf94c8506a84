//! The cluster benchmark (issue 11; BENCHMARKS.md "Cluster"): real etcd
//! nodes and `mcp-healthd` processes on loopback, as in tests/it/cluster_daemons.rs.
//!
//! - scale: N backends on 3 replicas against a single node, in one run: each
//!   replica's CPU and RSS over the single node's, and etcd writes per second
//!   at steady state (verdicts are written on change only, so ~0);
//! - propagation: a verdict change seen in a Watch on the owner, then on
//!   another replica (p50, p99 of the difference);
//! - failover: kill -9 of a backend's owner until a survivor has probed it
//!   and shared its verdict (p50, max), against TTL + interval.
//!
//! `cargo bench --bench cluster` (full) or `-- --smoke` (tiny; checks the harness);
//! `CLUSTER_BENCH_BACKENDS=N` sizes the scale scenario.

#[path = "../../tests/it/etcd_support/mod.rs"]
mod etcd_support;
#[path = "../../tests/it/lifecycle_bin/mod.rs"]
mod lifecycle_bin;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etcd_support::EtcdCluster;
use lifecycle_bin::Daemon;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::membership::Member;
use mcp_health::cluster::ownership::{backend_key, owner};
use mcp_health::cluster::record::VerdictRecord;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const TTL_S: u64 = 2;
const INTERVAL_S: f64 = 1.0;

fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (t(11) + t(12)) as f64 / 100.0
}

fn proc_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn spec(name: &str, urls: &[String], interval_s: f64) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        backends: urls
            .iter()
            .enumerate()
            .map(|(i, u)| BackendSpec {
                name: format!("b{i}"),
                url: u.clone(),
                protocol_version: "2025-06-18".into(),
                ..Default::default()
            })
            .collect(),
        policy: Some(ProbePolicy {
            interval: Some(pbjson_types::Duration {
                seconds: interval_s.trunc() as i64,
                nanos: (interval_s.fract() * 1e9) as i32,
            }),
            timeout: Some(pbjson_types::Duration {
                seconds: 0,
                nanos: 800_000_000,
            }),
            unhealthy_threshold: Some(1),
            healthy_threshold: Some(1),
            ..Default::default()
        }),
    }
}

async fn apply(c: &GroupHealthServiceClient<Channel>, s: GroupSpec) {
    c.clone()
        .apply_group(ApplyGroupRequest {
            spec: Some(s),
            validate_only: false,
        })
        .await
        .expect("apply");
}

fn cluster_daemons(etcd: &EtcdCluster, prefix: &str, n: usize) -> Vec<Daemon> {
    let e = etcd.endpoints_arg();
    let ttl = TTL_S.to_string();
    (0..n)
        .map(|_| Daemon::spawn(&["--etcd-endpoints", &e, "--etcd-prefix", prefix, "--etcd-lease-ttl", &ttl, "--max-groups", "100"]))
        .collect()
}

async fn wait_all_probed(c: &GroupHealthServiceClient<Channel>, groups: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list = c.clone().list_groups(ListGroupsRequest {}).await.expect("list").into_inner().groups;
        if list.len() == groups && list.iter().all(|g| g.summary.is_some_and(|s| s.unknown == 0)) {
            return;
        }
        assert!(Instant::now() < deadline, "backends never all probed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// CPU (cores) and RSS of each process over `window`.
async fn measure(pids: &[u32], window: Duration) -> Vec<(f64, f64)> {
    let before: Vec<f64> = pids.iter().map(|p| proc_cpu(*p)).collect();
    tokio::time::sleep(window).await;
    pids.iter()
        .zip(before)
        .map(|(p, b)| ((proc_cpu(*p) - b) / window.as_secs_f64(), proc_rss_mib(*p)))
        .collect()
}

/// `n` backends of the fixture, in groups of at most 1,000, probed every 10 s.
fn groups_of(fixture: &FixtureServer, n: usize) -> Vec<GroupSpec> {
    let per_group = 1000.min(n);
    (0..n.div_ceil(per_group))
        .map(|g| {
            let urls: Vec<String> = (g * per_group..((g + 1) * per_group).min(n))
                .map(|i| fixture.url_for(&format!("/s{i}")))
                .collect();
            spec(&format!("g{g}"), &urls, 10.0)
        })
        .collect()
}

/// A single node's CPU (cores) and RSS probing `groups`, at steady state.
async fn single_node(groups: &[GroupSpec], window: Duration) -> (f64, f64) {
    let single = Daemon::spawn(&["--max-groups", "100"]);
    let c = single.client().await;
    for g in groups {
        apply(&c, g.clone()).await;
    }
    wait_all_probed(&c, groups.len()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    measure(&[single.child.id()], window).await[0]
}

async fn scale(n: usize, window: Duration) {
    let fixture = FixtureServer::start().await.expect("fixture");
    let groups = groups_of(&fixture, n);
    let (single_cpu, single_rss) = single_node(&groups, window).await;
    // A single node probing a replica's share (a third), at a replica's probe
    // rate: what a replica would cost with no cluster work at all.
    let (third_cpu, third_rss) = single_node(&groups_of(&fixture, n.div_ceil(3)), window).await;
    // Three replicas.
    let etcd = EtcdCluster::start(3).await;
    let ds = cluster_daemons(&etcd, "/bench-scale", 3);
    let c = ds[0].client().await;
    for g in &groups {
        apply(&c, g.clone()).await;
    }
    for d in &ds {
        wait_all_probed(&d.client().await, groups.len()).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let client = etcd.client().await;
    let (_, rev0) = client.range_prefix("/bench-scale/none").await.unwrap();
    let pids: Vec<u32> = ds.iter().map(|d| d.child.id()).collect();
    let replicas = measure(&pids, window).await;
    let (_, rev1) = client.range_prefix("/bench-scale/none").await.unwrap();
    println!("\nscale: {n} backends at a 10 s interval, window {window:?}");
    println!("| process | CPU (cores) | RSS (MiB) | CPU / single | RSS / single | CPU / single at a third |");
    println!("|---|---|---|---|---|---|");
    println!("| single node | {single_cpu:.3} | {single_rss:.1} | 1.00 | 1.00 | |");
    println!(
        "| single node, {} backends | {third_cpu:.3} | {third_rss:.1} | {:.2} | {:.2} | 1.00 |",
        n.div_ceil(3),
        third_cpu / single_cpu,
        third_rss / single_rss
    );
    for (i, (cpu, rss)) in replicas.iter().enumerate() {
        println!(
            "| replica {i} | {cpu:.3} | {rss:.1} | {:.2} | {:.2} | {:.2} |",
            cpu / single_cpu,
            rss / single_rss,
            cpu / third_cpu
        );
    }
    println!(
        "etcd writes at steady state: {} in {window:?} ({:.2}/s)",
        rev1 - rev0,
        (rev1 - rev0) as f64 / window.as_secs_f64()
    );
}

async fn members(etcd: &EtcdCluster, prefix: &str) -> HashMap<String, String> {
    let keys = Keys::new(prefix);
    let (kvs, _) = etcd.client().await.range_prefix(&keys.members()).await.unwrap();
    kvs.iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            (
                keys.member_id(&key).unwrap().to_owned(),
                serde_json::from_slice::<Member>(&kv.value).unwrap().name,
            )
        })
        .collect()
}

async fn verdict(etcd: &EtcdCluster, prefix: &str) -> Option<VerdictRecord> {
    let (kvs, _) = etcd.client().await.range_prefix(&Keys::new(prefix).verdict("p", "b0")).await.ok()?;
    VerdictRecord::decode(&kvs.first()?.value)
}

async fn propagation(changes: usize) {
    let etcd = EtcdCluster::start(3).await;
    let fixture = FixtureServer::start().await.expect("fixture");
    let ds = cluster_daemons(&etcd, "/bench-prop", 3);
    apply(&ds[0].client().await, spec("p", &[fixture.url_for("/mcp")], INTERVAL_S)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let owner_name = loop {
        if let Some(v) = verdict(&etcd, "/bench-prop").await
            && let Some(n) = members(&etcd, "/bench-prop").await.get(&v.writer)
        {
            break n.clone();
        }
        assert!(Instant::now() < deadline, "no shared verdict");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let owner = ds.iter().position(|d| d.addr.to_string() == owner_name).unwrap();
    let other = (owner + 1) % 3;
    let mut streams = Vec::new();
    for i in [owner, other] {
        let mut s = ds[i]
            .client()
            .await
            .watch_group_health(WatchGroupHealthRequest { group: "p".into() })
            .await
            .unwrap()
            .into_inner();
        s.next().await.unwrap().unwrap();
        streams.push(s);
    }
    let mut samples = Vec::new();
    let mut healthy = true;
    for _ in 0..changes {
        healthy = !healthy;
        fixture.set_behavior(if healthy { Behavior::Healthy } else { Behavior::Status(500) });
        let want = if healthy { BackendStatus::Healthy } else { BackendStatus::Unhealthy } as i32;
        let mut seen = Vec::new();
        for s in streams.iter_mut() {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(30), s.next()).await.expect("change").unwrap().unwrap();
                if m.groups.iter().any(|g| g.backends.first().is_some_and(|b| b.status == want)) {
                    seen.push(Instant::now());
                    break;
                }
            }
        }
        samples.push(seen[1].saturating_duration_since(seen[0]).as_secs_f64() * 1000.0);
    }
    let (p50, p99) = (quantile(&mut samples.clone(), 0.5), quantile(&mut samples, 0.99));
    println!("\npropagation (owner's Watch -> another replica's Watch), {changes} changes: p50 {p50:.1} ms, p99 {p99:.1} ms");
}

async fn failover(kills: usize) {
    let etcd = EtcdCluster::start(3).await;
    let fixture = FixtureServer::start().await.expect("fixture");
    let prefix = "/bench-failover";
    let mut ds = cluster_daemons(&etcd, prefix, 3);
    apply(&ds[0].client().await, spec("p", &[fixture.url_for("/mcp")], INTERVAL_S)).await;
    let mut samples = Vec::new();
    for _ in 0..kills {
        let deadline = Instant::now() + Duration::from_secs(60);
        // The backend's owner by the member keys, once its verdict is its own:
        // after a replica joins, the verdict may still be a former owner's
        // until the new owner's first probe, and killing that one is no failover.
        let (writer, owner) = loop {
            if let Some(v) = verdict(&etcd, prefix).await {
                let m = members(&etcd, prefix).await;
                let owns = owner(&backend_key("p", "b0"), m.keys()) == Some(v.writer.as_str());
                if let Some(i) = m.get(&v.writer).and_then(|n| ds.iter().position(|d| d.addr.to_string() == *n))
                    && owns
                {
                    break (v.writer, i);
                }
            }
            assert!(Instant::now() < deadline, "no owner");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let killed = Instant::now();
        ds.remove(owner).kill9();
        // A survivor took the backend over: it probed it and shared its verdict.
        loop {
            if let Some(v) = verdict(&etcd, prefix).await
                && v.writer != writer
                && members(&etcd, prefix).await.contains_key(&v.writer)
            {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "never re-owned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples.push(killed.elapsed().as_secs_f64());
        ds.extend(cluster_daemons(&etcd, prefix, 1));
    }
    let (p50, max) = (quantile(&mut samples.clone(), 0.5), quantile(&mut samples, 1.0));
    println!(
        "\nfailover (kill -9 of the owner -> a survivor probed and shared), {kills} kills: p50 {p50:.2} s, max {max:.2} s; TTL + interval = {:.1} s",
        TTL_S as f64 + INTERVAL_S
    );
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    if smoke {
        scale(60, Duration::from_secs(3)).await;
        propagation(3).await;
        failover(2).await;
    } else {
        // CLUSTER_BENCH_BACKENDS overrides the scale scenario's size (default 10,000).
        let n = std::env::var("CLUSTER_BENCH_BACKENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
        scale(n, Duration::from_secs(20)).await;
        propagation(20).await;
        failover(10).await;
    }
}
