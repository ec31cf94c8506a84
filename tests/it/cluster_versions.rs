//! A rolling upgrade, for real: the previous release's `mcp-healthd`
//! (`scripts/build-previous.sh`: stop 25, the last binary before the versioned
//! etcd verdict record) and this build, side by side on one etcd, share
//! verdicts both ways. `scripts/test.sh` builds the previous binary first.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::probers;
use crate::etcd_support::EtcdCluster;
use crate::lifecycle_bin::Daemon;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::membership::Member;
use mcp_health::cluster::ownership::{backend_key, owner};
use mcp_health::cluster::record::VerdictRecord;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tonic::transport::Channel;

const BACKENDS: usize = 12;
const PREFIX: &str = "/versions";

/// The previous release's binary: built by `scripts/build-previous.sh`, or
/// named by `MCP_HEALTH_PREVIOUS_BINARY`.
fn previous_binary() -> String {
    let path =
        std::env::var("MCP_HEALTH_PREVIOUS_BINARY").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/previous/debug/mcp-healthd").to_owned());
    assert!(
        std::path::Path::new(&path).is_file(),
        "the previous release's mcp-healthd is not at {path}: run `bash scripts/build-previous.sh` (scripts/test.sh does)"
    );
    path
}

fn pool_spec(fixtures: &[FixtureServer]) -> GroupSpec {
    let mut yaml = "name: pool\npolicy:\n  interval: 1s\n  initialSpread: 0.5s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: 1\n  healthyThreshold: 1\nbackends:\n".to_owned();
    for (i, f) in fixtures.iter().enumerate() {
        yaml.push_str(&format!("- name: b{i}\n  url: {}\n  protocolVersion: \"2025-06-18\"\n", f.url_for("/mcp")));
    }
    crate::common::group_yaml(&yaml)
}

/// Each backend's status as one replica shows it.
async fn statuses(client: &GroupHealthServiceClient<Channel>) -> HashMap<String, BackendStatus> {
    let req = GetGroupHealthRequest { group: "pool".into() };
    match client.clone().get_group_health(req).await {
        Ok(r) => r
            .into_inner()
            .health
            .map(|h| h.backends.iter().map(|b| (b.name.clone(), b.status())).collect())
            .unwrap_or_default(),
        Err(_) => HashMap::new(),
    }
}

/// Waits until `client` shows every backend `want`; the statuses seen last otherwise.
async fn wait_all(client: &GroupHealthServiceClient<Channel>, want: BackendStatus) -> Result<(), HashMap<String, BackendStatus>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = statuses(client).await;
        if seen.len() == BACKENDS && seen.values().all(|s| *s == want) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_and_a_new_replica_share_verdicts_both_ways() {
    let previous = previous_binary();
    let etcd = EtcdCluster::start(1).await;
    let mut fixtures = Vec::new();
    for _ in 0..BACKENDS {
        fixtures.push(FixtureServer::start().await.expect("fixture"));
    }
    let endpoints = etcd.endpoints_arg();
    let args = [
        "--etcd-endpoints",
        &endpoints,
        "--etcd-prefix",
        PREFIX,
        "--etcd-lease-ttl",
        "5",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let old = Daemon::spawn_binary(&previous, &args);
    let new = Daemon::spawn(&args);
    let (old_client, new_client) = (old.client().await, new.client().await);
    new_client
        .clone()
        .apply_group(ApplyGroupRequest {
            spec: Some(pool_spec(&fixtures)),
            validate_only: false,
        })
        .await
        .expect("apply on the new replica");

    // Who owns what: each replica must own some backends, or "both ways" proves nothing.
    let client = etcd.client().await;
    let keys = Keys::new(PREFIX);
    let (kvs, _) = client.range_prefix(&keys.members()).await.expect("members");
    let mut is_old: HashMap<String, bool> = HashMap::new();
    for kv in kvs {
        let id = keys.member_id(&String::from_utf8_lossy(&kv.key)).unwrap().to_owned();
        let m: Member = serde_json::from_slice(&kv.value).unwrap();
        is_old.insert(id, m.name == old.addr.to_string());
    }
    assert_eq!(is_old.len(), 2, "both replicas are members: {is_old:?}");
    let ids: Vec<&String> = is_old.keys().collect();
    let owned_by_old: Vec<String> = (0..BACKENDS)
        .map(|i| format!("b{i}"))
        .filter(|b| is_old[owner(&backend_key("pool", b), ids.clone()).unwrap()])
        .collect();
    println!("the old replica owns {owned_by_old:?} of {BACKENDS}");
    assert!(
        !owned_by_old.is_empty() && owned_by_old.len() < BACKENDS,
        "rendezvous hashing gave one replica every backend: rerun (probability 2^-11)"
    );

    // Healthy everywhere: each replica shows the backends the other probes.
    if let Err(seen) = wait_all(&old_client, BackendStatus::Healthy).await {
        panic!("the old replica never showed every backend HEALTHY: {seen:?}");
    }
    if let Err(seen) = wait_all(&new_client, BackendStatus::Healthy).await {
        panic!("the new replica never showed every backend HEALTHY: {seen:?}");
    }
    // While an old member lives, every verdict record is version 1 (what it reads).
    let (kvs, _) = client.range_prefix(&keys.group_verdicts("pool")).await.expect("verdicts");
    assert_eq!(kvs.len(), BACKENDS, "one shared verdict per backend");
    for kv in &kvs {
        assert!(VerdictRecord::decode(&kv.value).is_some(), "every record decodes");
        let json: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        assert!(json.get("v").is_none() && json.get("health").is_some(), "version 1: {json}");
    }

    // Every backend fails: each owner sees its own fail, and the other replica
    // shows it only through the shared verdict, in both directions.
    for f in &fixtures {
        f.set_behavior(Behavior::Status(500));
    }
    if let Err(seen) = wait_all(&old_client, BackendStatus::Unhealthy).await {
        panic!("the old replica never showed the new replica's verdicts: {seen:?} (it owns {owned_by_old:?})");
    }
    if let Err(seen) = wait_all(&new_client, BackendStatus::Unhealthy).await {
        panic!("the new replica never showed the old replica's verdicts: {seen:?} (the old one owns {owned_by_old:?})");
    }
    // Each replica probed only what it owns (its last-probe gauge is exported
    // for those alone), so what it showed of the others came from their records.
    let (old_probed, new_probed) = (probed(&old).await, probed(&new).await);
    let owned_by_new: Vec<String> = (0..BACKENDS).map(|i| format!("b{i}")).filter(|b| !owned_by_old.contains(b)).collect();
    assert_eq!(old_probed, owned_by_old, "the backends the old replica probed");
    assert_eq!(new_probed, owned_by_new, "the backends the new replica probed");
    let _ = old.stop().await;
    let _ = new.stop().await;
}

/// The backends a replica probed: those with a last-probe time in its /metrics.
async fn probed(d: &Daemon) -> Vec<String> {
    let mut scraped = probers::last_probes(&[d.metrics_url()], "pool").await;
    let mut backends: Vec<String> = scraped.remove(0).into_keys().collect();
    backends.sort_by_key(|b| b[1..].parse::<usize>().unwrap_or(usize::MAX));
    backends
}
