//! Cluster mode with real processes on loopback: 3 etcd nodes
//! (tests/it/etcd_support) and 3 `mcp-healthd` binaries sharing them.

use crate::common;
use crate::etcd_support;
use crate::lifecycle_bin;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::probers::{one_prober_each, wait_probers};
use common::{PATIENCE, apply_request, eventually, group_health, group_yaml};
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

/// Starts `n` daemons on the cluster's etcd, under `prefix`, with metrics.
fn daemons(etcd: &EtcdCluster, prefix: &str, n: usize, ttl: &str) -> Vec<Daemon> {
    let endpoints = etcd.endpoints_arg();
    (0..n)
        .map(|_| {
            Daemon::spawn(&[
                "--etcd-endpoints",
                &endpoints,
                "--etcd-prefix",
                prefix,
                "--etcd-lease-ttl",
                ttl,
                "--metrics-listen",
                "127.0.0.1:0",
            ])
        })
        .collect()
}

/// One series' value in a scrape of `url` (a series without labels).
pub(crate) async fn metric(url: &str, series: &str) -> Option<u64> {
    common::install_crypto();
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_on_one_replica_is_seen_by_the_others_in_get_and_watch() {
    let etcd = EtcdCluster::start(3).await;
    let ds = daemons(&etcd, "/t1", 3, "5");
    let mut clients = Vec::new();
    for d in &ds {
        clients.push(d.client().await);
    }
    // Open watches on B and C before the apply.
    let mut watches = Vec::new();
    for c in &clients[1..] {
        let mut stream = c
            .clone()
            .watch_group_health(WatchGroupHealthRequest::default())
            .await
            .expect("watch")
            .into_inner();
        // The (empty) initial snapshot.
        let first = stream.next().await.expect("snapshot").expect("ok");
        assert!(first.groups.is_empty(), "{first:?}");
        watches.push(stream);
    }
    let spec = group_yaml("name: shared\nbackends:\n- name: a\n  url: http://127.0.0.1:9/mcp\npolicy:\n  interval: 3600s\n");
    let started = Instant::now();
    let applied = clients[0].apply_group(apply_request(spec.clone())).await.expect("apply on A").into_inner();
    assert_eq!(applied.generation, 1);
    for (i, w) in watches.iter_mut().enumerate() {
        let event = tokio::time::timeout(PATIENCE, async {
            loop {
                let m = w.next().await.expect("stream open").expect("ok");
                if let Some(g) = m.groups.into_iter().find(|g| g.name == "shared") {
                    return g;
                }
            }
        })
        .await
        .expect("the watch on another replica sees the apply");
        assert_eq!(event.generation, 1, "replica {}", i + 1);
    }
    println!("apply on A seen in the watches of B and C after {:?}", started.elapsed());
    for c in &clients[1..] {
        let g = group_health(c, "shared").await.expect("B and C have the group");
        assert_eq!(g.generation, 1);
        assert_eq!(g.source, GroupSource::Api as i32);
    }
    // A change on C, then a delete on B, reach everyone.
    let mut changed = spec.clone();
    changed.backends[0].url = "http://127.0.0.1:9/other".into();
    let r = clients[2].apply_group(apply_request(changed)).await.expect("apply on C").into_inner();
    assert_eq!(r.generation, 2);
    for c in &clients {
        eventually(
            "generation 2 everywhere",
            || group_health(c, "shared"),
            |g| g.generation == 2 && g.backends[0].url.ends_with("/other"),
        )
        .await;
    }
    clients[1]
        .delete_group(DeleteGroupRequest { group: "shared".into() })
        .await
        .expect("delete on B");
    for c in &clients {
        eventually(
            "deleted everywhere",
            || {
                let mut c = c.clone();
                async move { Some(c.get_group_health(GetGroupHealthRequest { group: "shared".into() }).await.err()?.code()) }
            },
            |code| *code == tonic::Code::NotFound,
        )
        .await;
    }
    // A restarted replica reads the groups back from etcd.
    clients[0].apply_group(apply_request(spec)).await.expect("re-create");
    drop(ds);
    let d = Daemon::spawn(&["--etcd-endpoints", &etcd.endpoints_arg(), "--etcd-prefix", "/t1"]);
    let c = d.client().await;
    let g = group_health(&c, "shared").await.expect("restored from etcd");
    assert_eq!(g.generation, 1);
}

/// Three daemons on a 3-node etcd sharing one group of `n` backends, one
/// fixture each (so a fixture's request count is its backend's probe count).
struct Setup {
    etcd: EtcdCluster,
    prefix: String,
    daemons: Vec<Option<Daemon>>,
    clients: Vec<GroupHealthServiceClient<Channel>>,
    fixtures: Vec<FixtureServer>,
}

const INTERVAL_MS: u64 = 1000;

fn pool_spec(fixtures: &[FixtureServer], interval: &str) -> GroupSpec {
    let mut yaml = format!(
        "name: pool\npolicy:\n  interval: {interval}\n  initialSpread: 0.5s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: 1\n  healthyThreshold: 1\nbackends:\n"
    );
    for (i, f) in fixtures.iter().enumerate() {
        yaml.push_str(&format!("- name: b{i}\n  url: {}\n  protocolVersion: \"2025-06-18\"\n", f.url_for("/mcp")));
    }
    group_yaml(&yaml)
}

impl Setup {
    async fn start(prefix: &str, backends: usize, ttl: &str) -> Setup {
        Self::start_with(prefix, backends, ttl, &format!("{}s", INTERVAL_MS as f64 / 1000.0)).await
    }

    /// [`Setup::start`] with the pool's probe interval.
    async fn start_with(prefix: &str, backends: usize, ttl: &str, interval: &str) -> Setup {
        let etcd = EtcdCluster::start(3).await;
        let mut fixtures = Vec::new();
        for _ in 0..backends {
            fixtures.push(FixtureServer::start().await.expect("fixture"));
        }
        let daemons: Vec<Option<Daemon>> = daemons(&etcd, prefix, 3, ttl).into_iter().map(Some).collect();
        let mut clients = Vec::new();
        for d in daemons.iter().flatten() {
            clients.push(d.client().await);
        }
        let mut s = Setup {
            etcd,
            prefix: prefix.to_owned(),
            daemons,
            clients,
            fixtures,
        };
        s.clients[0].apply_group(apply_request(pool_spec(&s.fixtures, interval))).await.expect("apply");
        for i in 0..3 {
            s.wait_serving(i, "every replica sees the pool READY").await;
        }
        s
    }

    async fn wait_serving(&self, i: usize, what: &str) -> GroupHealth {
        eventually(
            what,
            || group_health(&self.clients[i], "pool"),
            |g| g.phase == GroupPhase::Ready as i32 && g.backends.iter().all(|b| b.status == BackendStatus::Healthy as i32),
        )
        .await
    }

    fn probes(&self) -> Vec<u64> {
        self.fixtures.iter().map(|f| f.stats().initialize).collect()
    }

    /// The pool's backend names, in the fixtures' order.
    fn backends(&self) -> Vec<String> {
        (0..self.fixtures.len()).map(|i| format!("b{i}")).collect()
    }

    /// Each running daemon's /metrics URL, in the daemons' order.
    fn metrics_urls(&self) -> Vec<String> {
        self.daemons.iter().flatten().map(Daemon::metrics_url).collect()
    }

    /// member id -> daemon index, from the member keys' names.
    async fn members(&self) -> HashMap<String, usize> {
        let etcd = self.etcd.client().await;
        let keys = Keys::new(&self.prefix);
        let (kvs, _) = etcd.range_prefix(&keys.members()).await.expect("members");
        let mut out = HashMap::new();
        for kv in kvs {
            let id = keys.member_id(&String::from_utf8_lossy(&kv.key)).unwrap().to_owned();
            let m: Member = serde_json::from_slice(&kv.value).unwrap();
            if let Some(i) = self.daemons.iter().position(|d| d.as_ref().is_some_and(|d| d.addr.to_string() == m.name)) {
                out.insert(id, i);
            }
        }
        out
    }

    /// backend -> shared verdict.
    async fn verdicts(&self) -> HashMap<String, VerdictRecord> {
        let etcd = self.etcd.client().await;
        let keys = Keys::new(&self.prefix);
        let (kvs, _) = etcd.range_prefix(&keys.group_verdicts("pool")).await.expect("verdicts");
        kvs.iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                let (_, b) = keys.verdict_of(&key).unwrap();
                (b.to_owned(), VerdictRecord::decode(&kv.value).unwrap())
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_is_probed_by_one_of_three_replicas() {
    let s = Setup::start("/t2", 6, "5").await;
    // Over 4 probes of every backend (counted at its fixture), each was
    // probed by one replica alone, once ownership settled after start-up.
    let probers = one_prober_each(&s.metrics_urls(), "pool", &s.backends(), || s.probes(), 4).await;
    println!("the replica probing each backend, over 4 probes of each: {probers:?}");
    // ...and that replica is the backend's owner by the member keys.
    let members = s.members().await;
    for (b, replica) in &probers {
        assert_eq!(members.get(&owner_of(&members, b)), Some(replica), "{b} is probed by its owner: {probers:?}");
    }
    // Every replica still shows every backend (shared verdicts), and the work is shared out.
    for i in 0..3 {
        s.wait_serving(i, "all replicas agree").await;
    }
    let members = s.members().await;
    let verdicts = s.verdicts().await;
    let writers: std::collections::HashSet<usize> = verdicts.values().filter_map(|v| members.get(&v.writer).copied()).collect();
    assert!(writers.len() >= 2, "6 backends over 3 replicas are probed by more than one: {writers:?}");

    // `mcp-healthctl cluster` shows the members, leases and owners the daemons use.
    let server = format!("http://{}", s.daemons[1].as_ref().unwrap().addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-healthctl"))
            .args(["--server", &server, "-o", "json", "cluster"])
            .output()
            .expect("run mcp-healthctl")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed = doc["members"].as_array().expect("members");
    assert_eq!(listed.len(), 3, "{doc}");
    let mut owners = HashMap::new();
    for m in listed {
        assert_eq!(m["lease"].as_str().unwrap(), format!("0x{}", m["id"].as_str().unwrap()));
        for b in m["backends"].as_array().unwrap() {
            owners.insert(b.as_str().unwrap().to_owned(), m["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(owners.len(), 6, "{doc}");
    for (b, v) in &verdicts {
        assert_eq!(owners[&format!("pool/{b}")], v.writer, "the CLI's owner of {b} wrote its verdict");
    }
    // Each replica's owned-backends gauge is its share as the CLI shows it; together, every backend once.
    let mut gauges = Vec::new();
    for (id, i) in &members {
        let url = s.daemons[*i].as_ref().unwrap().metrics_url();
        let share = owners.values().filter(|o| *o == id).count() as u64;
        let n = eventually(
            "the owned-backends gauge",
            || metric(&url, "mcp_health_cluster_owned_backends"),
            |n| *n == share,
        )
        .await;
        gauges.push(n);
    }
    println!("owned backends per replica: {gauges:?}");
    assert_eq!(gauges.len(), 3);
    assert_eq!(gauges.iter().sum::<u64>(), 6, "{gauges:?}");
    let table = tokio::task::spawn_blocking({
        let server = format!("http://{}", s.daemons[0].as_ref().unwrap().addr);
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_mcp-healthctl"))
                .args(["--server", &server, "cluster"])
                .env("NO_COLOR", "1")
                .output()
                .expect("run mcp-healthctl")
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("MEMBER") && text.contains("(this replica)") && text.contains("ttl 5s"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_backends_are_re_owned_without_any_phase_change() {
    let mut s = Setup::start("/t3", 6, "2").await;
    // Acknowledged applies, to check after the kill.
    for i in 0..5 {
        let spec = group_yaml(&format!(
            "name: acked-{i}\nbackends:\n- name: a\n  url: http://127.0.0.1:9/{i}\npolicy:\n  interval: 3600s\n"
        ));
        s.clients[i % 3].apply_group(apply_request(spec)).await.expect("acknowledged apply");
    }
    // Wait until every backend has a shared verdict; kill the replica writing the most.
    let verdicts = eventually("six shared verdicts", || async { Some(s.verdicts().await) }, |v| v.len() == 6).await;
    let members = s.members().await;
    let mut owned = [0usize; 3];
    for v in verdicts.values() {
        if let Some(i) = members.get(&v.writer) {
            owned[*i] += 1;
        }
    }
    let victim = (0..3).max_by_key(|i| owned[*i]).unwrap();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let victims_backends: Vec<usize> = verdicts
        .iter()
        .filter(|(_, v)| members.get(&v.writer) == Some(&victim))
        .map(|(b, _)| b[1..].parse().unwrap())
        .collect();
    assert!(!victims_backends.is_empty());
    // Watch the pool on the survivors through the failover.
    let mut watches = Vec::new();
    for i in &survivors {
        let stream = s.clients[*i]
            .clone()
            .watch_group_health(WatchGroupHealthRequest { group: "pool".into() })
            .await
            .expect("watch")
            .into_inner();
        watches.push(tokio::spawn(async move {
            let mut phases = Vec::new();
            let mut stream = stream;
            while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(6), stream.next()).await {
                phases.extend(m.groups.iter().map(|g| g.phase));
            }
            phases
        }));
    }
    let before = s.probes();
    let killed = Instant::now();
    s.daemons[victim].take().unwrap().kill9();
    // Re-owned and freshly probed: each of the victim's backends gets probes again.
    eventually(
        "the victim's backends probed again by the survivors",
        || async { Some(s.probes()) },
        |now| victims_backends.iter().all(|b| now[*b] >= before[*b] + 2),
    )
    .await;
    println!(
        "victim owned {victims_backends:?}; re-owned and probed within {:?} (TTL 2 s + interval 1 s)",
        killed.elapsed()
    );
    // The new owners' verdicts are shared (written by survivors).
    let members = s.members().await;
    eventually(
        "survivors write the victim's verdicts",
        || async { Some(s.verdicts().await) },
        |v| {
            victims_backends
                .iter()
                .all(|b| v.get(&format!("b{b}")).is_some_and(|sv| members.contains_key(&sv.writer)))
        },
    )
    .await;
    for w in watches {
        let phases = w.await.unwrap();
        assert!(!phases.is_empty());
        assert!(
            phases.iter().all(|p| *p == GroupPhase::Ready as i32),
            "a survivor's pool left READY: {phases:?}"
        );
    }
    for i in &survivors {
        s.wait_serving(*i, "still serving").await;
        for g in 0..5 {
            let h = group_health(&s.clients[*i], &format!("acked-{g}")).await.expect("acknowledged apply kept");
            assert_eq!(h.generation, 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replicas_late_verdict_is_fenced_off() {
    let s = Setup::start("/t4", 3, "2").await;
    let verdicts = eventually("three shared verdicts", || async { Some(s.verdicts().await) }, |v| v.len() == 3).await;
    let members = s.members().await;
    let (backend, v) = verdicts.iter().find(|(_, v)| members.contains_key(&v.writer)).expect("an owned backend");
    let old_id = v.writer.clone();
    let paused = members[&old_id];
    let b: usize = backend[1..].parse().unwrap();
    s.daemons[paused].as_ref().unwrap().signal("STOP");
    // Past its TTL: its member key goes, the others take its backends.
    let keys = Keys::new(&s.prefix);
    let etcd = s.etcd.client().await;
    eventually(
        "the paused member's key expires",
        || async { Some(etcd.range_prefix(&keys.member(&old_id)).await.ok()?.0.len()) },
        |n| *n == 0,
    )
    .await;
    // The backend turns unhealthy; the new owner shares that.
    s.fixtures[b].set_behavior(Behavior::Status(500));
    let fresh = eventually(
        "a survivor shares the unhealthy verdict",
        || async { s.verdicts().await.get(backend.as_str()).cloned() },
        |v| v.writer != old_id && v.status() == BackendStatus::Unhealthy,
    )
    .await;
    // Record every write of that verdict from now on, then resume the paused replica.
    let (_, revision) = etcd.range_prefix(&keys.verdict("pool", backend)).await.unwrap();
    let mut writes = std::pin::pin!(etcd.watch_prefix(&keys.verdict("pool", backend), revision + 1).await.unwrap());
    s.fixtures[b].set_behavior(Behavior::Healthy);
    s.daemons[paused].as_ref().unwrap().signal("CONT");
    // It rejoins under a new lease (a new member id)...
    eventually(
        "the resumed replica rejoins",
        || async { Some(s.members().await) },
        |m| m.values().any(|i| *i == paused) && !m.contains_key(&old_id),
    )
    .await;
    // ...and nothing it wrote under the old lease landed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, writes.next()).await {
        let (_, events) = item.expect("watch");
        for e in events {
            let v = VerdictRecord::decode(&e.kv.unwrap().value).unwrap();
            assert_ne!(v.writer, old_id, "a late verdict from the expired lease was written: {v:?}");
        }
    }
    let now = s.verdicts().await[backend.as_str()].clone();
    assert_ne!(now.writer, old_id);
    assert!(fresh.writer != old_id);
}

async fn config_status(client: &GroupHealthServiceClient<Channel>) -> Option<ClusterInfo> {
    client.clone().get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner().cluster
}

fn acked(i: usize) -> GroupSpec {
    group_yaml(&format!(
        "name: acked-{i}\nbackends:\n- name: a\n  url: http://127.0.0.1:9/{i}\npolicy:\n  interval: 3600s\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_quorum_is_fail_static_and_loses_nothing_acknowledged() {
    let mut s = Setup::start("/t5", 3, "2").await;
    let info = config_status(&s.clients[0]).await.expect("cluster info");
    assert_eq!(info.members.len(), 3, "{info:?}");
    assert!(!info.degraded);
    let members = s.members().await;
    let non_owner = (0..3).find(|i| members.get(&owner_of(&members, "b0")) != Some(i)).unwrap();

    // One etcd node down: nothing changes.
    s.etcd.kill(2);
    s.clients[0].apply_group(apply_request(acked(1))).await.expect("apply with 2 of 3 etcd nodes");
    for c in &s.clients {
        eventually("acked-1 everywhere", || group_health(c, "acked-1"), |g| g.generation == 1).await;
    }

    // Two down: quorum lost. Every replica degrades, keeps serving its last view...
    s.etcd.kill(1);
    for c in &s.clients {
        eventually("degraded", || config_status(c), |i| i.degraded).await;
    }
    let info = config_status(&s.clients[1]).await.unwrap();
    assert!(info.degraded_reason.contains("etcd"), "{info:?}");
    for i in 0..3 {
        s.wait_serving(i, "the last view still served").await;
    }
    // ...refuses mutations with a reason...
    let err = s.clients[2].apply_group(apply_request(acked(2))).await.expect_err("no quorum, no apply");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("degraded"), "{}", err.message());
    let err = s.clients[0]
        .delete_group(DeleteGroupRequest { group: "acked-1".into() })
        .await
        .expect_err("no delete");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    // ...probes on demand itself (no owner can answer through etcd now)...
    let probed = probe(&s.clients[non_owner], "pool", "b0").await.expect("a local probe while degraded");
    assert_eq!(probed.backend.expect("verdict").status, BackendStatus::Healthy as i32);
    // ...and probes every backend itself (fail-static).
    let seen = wait_probers(&s.metrics_urls(), "pool", &s.backends(), "every replica probes every backend", |r| r.len() == 3).await;
    println!("degraded: the replicas probing each backend: {seen:?}");
    for d in s.daemons.iter_mut().flatten() {
        assert!(d.drain_log().iter().any(|l| l.contains("cluster degraded")), "the log says degraded");
    }

    // Quorum back: everyone rejoins, nothing acknowledged is lost, applies work again.
    s.etcd.restart(1);
    s.etcd.restart(2);
    for c in &s.clients {
        eventually("no longer degraded", || config_status(c), |i| !i.degraded && i.members.len() == 3).await;
    }
    eventually(
        "applies accepted again",
        || {
            let mut c = s.clients[2].clone();
            async move { c.apply_group(apply_request(acked(2))).await.ok().map(|r| r.into_inner().generation) }
        },
        |g| *g == 1,
    )
    .await;
    for c in &s.clients {
        eventually("acked-1 kept", || group_health(c, "acked-1"), |g| g.generation == 1).await;
        eventually("acked-2 everywhere", || group_health(c, "acked-2"), |g| g.generation == 1).await;
    }
    for i in 0..3 {
        s.wait_serving(i, "READY after the outage").await;
    }
    // Back to one prober per backend.
    let probers = one_prober_each(&s.metrics_urls(), "pool", &s.backends(), || s.probes(), 3).await;
    println!("after the outage, the replica probing each backend: {probers:?}");
}

/// The member id of daemon `i`, and the owner of backend `b` of the pool.
fn owner_of(members: &HashMap<String, usize>, b: &str) -> String {
    let ids: Vec<&String> = members.keys().collect();
    owner(&backend_key("pool", b), ids).expect("members").to_owned()
}

async fn probe(client: &GroupHealthServiceClient<Channel>, group: &str, backend: &str) -> Result<ProbeBackendResponse, tonic::Status> {
    let req = ProbeBackendRequest {
        group: group.into(),
        backend: backend.into(),
    };
    client.clone().probe_backend(req).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_backend_on_a_non_owner_is_made_by_the_owner() {
    // An hour's interval: after the first probes, every probe is an on-demand one.
    let s = Setup::start_with("/t6", 3, "5", "3600s").await;
    let members = s.members().await;
    assert_eq!(members.len(), 3, "{members:?}");
    let id_of = |i: usize| members.iter().find(|(_, d)| **d == i).map(|(id, _)| id.clone()).unwrap();
    let owner_id = owner_of(&members, "b0");
    let owner_daemon = members[&owner_id];
    let asker = (owner_daemon + 1) % 3;
    println!("b0 is owned by daemon {owner_daemon} ({owner_id}); asking daemon {asker} ({})", id_of(asker));
    let urls: Vec<String> = (0..3).map(|i| s.daemons[i].as_ref().unwrap().metrics_url()).collect();
    let answered = |i: usize| metric(&urls[i], "mcp_health_cluster_probes_answered_total");
    let forwarded = |i: usize| metric(&urls[i], "mcp_health_cluster_probes_forwarded_total");
    // Every first probe is done (initialSpread 0.5 s): the counts stand still.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (answered0, forwarded0) = (answered(owner_daemon).await.unwrap(), forwarded(asker).await.unwrap());
    let before = s.probes()[0];

    // A healthy probe: one probe of the fixture, made by the owner, its verdict in the reply.
    let r = probe(&s.clients[asker], "pool", "b0").await.expect("probe on a non-owner");
    let b = r.backend.expect("the verdict");
    assert_eq!(b.name, "b0");
    assert_eq!(b.status, BackendStatus::Healthy as i32, "{b:?}");
    assert_eq!(r.phase, GroupPhase::Ready as i32);
    assert_eq!(answered(owner_daemon).await, Some(answered0 + 1), "the owner answered it");
    assert_eq!(forwarded(asker).await, Some(forwarded0 + 1), "the asker forwarded it");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.probes()[0], before + 1, "exactly one probe of b0, by the owner; none on the asker");

    // The backend fails: the owner's probe sees it, the reply says so, and the
    // owner shares that verdict (the asker never probed: it wrote nothing).
    s.fixtures[0].set_behavior(Behavior::Status(500));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = probe(&s.clients[asker], "pool", "b0").await.expect("probe on a non-owner");
    let b = r.backend.expect("the verdict");
    assert_eq!(b.status, BackendStatus::Unhealthy as i32, "{b:?}");
    assert_ne!(r.phase, GroupPhase::Ready as i32);
    let shared = eventually(
        "the unhealthy verdict shared",
        || async { s.verdicts().await.get("b0").cloned() },
        |v| v.status() == BackendStatus::Unhealthy,
    )
    .await;
    assert_eq!(shared.writer, owner_id, "the owner wrote the verdict its probe produced");
    for c in &s.clients {
        eventually(
            "every replica sees b0 unhealthy",
            || group_health(c, "pool"),
            |g| g.backends.iter().any(|b| b.name == "b0" && b.status == BackendStatus::Unhealthy as i32),
        )
        .await;
    }

    // The owner's rate limit applies and comes back as locally: RESOURCE_EXHAUSTED with RetryInfo.
    let mut limited = None;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let started = Instant::now();
        probe(&s.clients[asker], "pool", "b0").await.expect("a probe after the limit");
        match probe(&s.clients[asker], "pool", "b0").await {
            Err(e) => {
                limited = Some(e);
                break;
            }
            // Only a second call more than the limit (1 s) later may pass.
            Ok(_) => assert!(started.elapsed() >= Duration::from_secs(1), "a second probe within 1 s was not limited"),
        }
    }
    let e = limited.expect("a second probe within 1 s");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("probed on demand"), "{}", e.message());
    use tonic_types::StatusExt;
    assert!(e.get_details_retry_info().is_some(), "RetryInfo like a local refusal");

    // Unknown names on a non-owner: the owner says NOT_FOUND, as a local probe would.
    let unknown = (0..100).map(|i| format!("nope-{i}")).find(|b| owner_of(&members, b) != id_of(asker)).unwrap();
    let unknown_owner = members[&owner_of(&members, &unknown)];
    let answered1 = answered(unknown_owner).await.unwrap();
    let e = probe(&s.clients[asker], "pool", &unknown).await.expect_err("no such backend");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(e.message().contains(&unknown), "{}", e.message());
    assert_eq!(answered(unknown_owner).await, Some(answered1 + 1), "the owner gave the NOT_FOUND");
    let group = (0..100)
        .map(|i| format!("nogroup-{i}"))
        .find(|g| owner(&backend_key(g, "b0"), members.keys()) != Some(id_of(asker).as_str()))
        .unwrap();
    let e = probe(&s.clients[asker], &group, "b0").await.expect_err("no such group");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // Nothing is left behind in etcd.
    let etcd = s.etcd.client().await;
    let keys = Keys::new(&s.prefix);
    let left = eventually(
        "the probe keys removed",
        || async {
            let (requests, _) = etcd.range_prefix(&keys.probes()).await.ok()?;
            let (answers, _) = etcd.range_prefix(&keys.probe_answers()).await.ok()?;
            Some(requests.len() + answers.len())
        },
        |n| *n == 0,
    )
    .await;
    assert_eq!(left, 0);
}

/// A replica that lost etcd may hold a stale view, so an apply that view
/// calls "unchanged" (and a drain to the state it shows) is refused with
/// UNAVAILABLE like every other mutation, not answered from the stale view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_re_apply_on_a_degraded_replica_is_unavailable() {
    let mut etcd = EtcdCluster::start(1).await;
    let d = Daemon::spawn(&["--etcd-endpoints", &etcd.endpoints_arg(), "--etcd-prefix", "/t-same", "--etcd-lease-ttl", "2"]);
    let mut client = d.client().await;
    let first = client.apply_group(apply_request(acked(7))).await.expect("apply").into_inner();
    assert!(first.changed);
    let again = client.apply_group(apply_request(acked(7))).await.expect("re-apply").into_inner();
    assert!(!again.changed, "an identical re-apply is unchanged while etcd is up");

    etcd.kill(0);
    eventually("degraded", || config_status(&client), |i| i.degraded).await;
    let err = client
        .apply_group(apply_request(acked(7)))
        .await
        .expect_err("no identical re-apply while degraded");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("degraded"), "{}", err.message());
    let err = client
        .set_backend_drain(SetBackendDrainRequest {
            group: "acked-7".into(),
            backend: "a".into(),
            drain: false,
            ..Default::default()
        })
        .await
        .expect_err("no drain while degraded, even to the state shown");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
}

/// Issue 22: a catalog accepted through one replica is in the shared spec
/// (etcd), so after `kill -9` of the backend's owner the replica that takes
/// it over keeps it routable on the accepted catalog: its first catalog read
/// is checked against the spec, not trusted on first use, and is no outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_accepted_through_one_replica_survives_kill_9_of_the_owner() {
    use crate::catalog::{TsServer, echo};
    use mcp_health::core::catalog::Catalog;
    let fingerprint = |v: &serde_json::Value| Catalog::from_tools(v.as_array().expect("tools")).expect("hashable").fingerprint;
    let v1 = serde_json::json!([echo("Echo the given text back.")]);
    let v2 = serde_json::json!([echo("Echo the given text back, then log it.")]);
    let server = TsServer::start("json", None);
    server.set_tools(&v1).await;
    let mut s = Setup::start("/t10", 1, "2").await;
    let yaml = format!(
        "name: acc\npolicy: {{interval: 1s, timeout: 0.9s, catalogInterval: 1s, jitterPercent: 0, initialSpread: 0.5s}}\nbackends:\n  - {{name: ts, url: \"{}\", depth: PROBE_DEPTH_TOOLS, catalog: {{onChange: CATALOG_ON_CHANGE_BLOCK, accepted: [\"{}\"]}}}}\n",
        server.url,
        fingerprint(&v1)
    );
    s.clients[0].apply_group(apply_request(group_yaml(&yaml))).await.expect("apply");
    let ts = |c: &GroupHealthServiceClient<Channel>| {
        let c = c.clone();
        async move { group_health(&c, "acc").await?.backends.into_iter().find(|b| b.name == "ts") }
    };
    let reason = |b: &BackendHealth| b.reason.as_ref().map(|r| r.code);
    for c in &s.clients {
        eventually("routable on the accepted catalog", || ts(c), |b| b.routable).await;
    }
    server.set_tools(&v2).await;
    for c in &s.clients {
        eventually(
            "blocked on every replica",
            || ts(c),
            |b| !b.routable && reason(b) == Some(ReasonCode::CatalogChanged as i32),
        )
        .await;
    }

    // Accepted through a replica that does not own the backend.
    let members = s.members().await;
    let owner_id = owner(&backend_key("acc", "ts"), members.keys().collect::<Vec<_>>())
        .expect("members")
        .to_owned();
    let owner_daemon = members[&owner_id];
    let asker = (owner_daemon + 1) % 3;
    let accepted = s.clients[asker]
        .accept_catalog(AcceptCatalogRequest {
            group: "acc".into(),
            backend: "ts".into(),
            fingerprint: fingerprint(&v2),
        })
        .await
        .expect("accept through a non-owner")
        .into_inner();
    assert!(accepted.changed);
    for c in &s.clients {
        eventually("back in routing on every replica", || ts(c), |b| b.routable).await;
    }

    // kill -9 of the owner: a survivor takes the backend over, probes it and
    // reads its catalog, and it stays routable on the accepted catalog.
    let killed = std::time::SystemTime::now();
    s.daemons[owner_daemon].take().expect("owner running").kill9();
    let etcd = s.etcd.client().await;
    let keys = Keys::new(&s.prefix);
    let record = eventually(
        "a survivor probes the backend and shares its verdict",
        || async {
            let (kvs, _) = etcd.range_prefix(&keys.group_verdicts("acc")).await.ok()?;
            kvs.first().and_then(|kv| VerdictRecord::decode(&kv.value))
        },
        |r| r.writer != owner_id && r.verdict.observed.last_probe.is_some_and(|t| t > killed),
    )
    .await;
    assert!(members.contains_key(&record.writer), "written by a member: {}", record.writer);
    assert_eq!(record.status(), BackendStatus::Healthy, "the new owner's verdict");
    assert_eq!(record.verdict.catalog.fingerprint, fingerprint(&v2), "the new owner read the accepted catalog");
    for i in (0..3).filter(|i| *i != owner_daemon) {
        let b = ts(&s.clients[i]).await.expect("ts on a survivor");
        assert!(b.routable, "still routable on survivor {i}: {b:?}");
        assert_eq!(reason(&b), Some(ReasonCode::Ok as i32), "{b:?}");
    }
}

/// Sends reports over one ReportOutcomes stream to one replica.
async fn report(client: &GroupHealthServiceClient<Channel>, reports: Vec<OutcomeReport>) -> ReportOutcomesResponse {
    client
        .clone()
        .report_outcomes(tokio_stream::iter(reports))
        .await
        .expect("ReportOutcomes")
        .into_inner()
}

fn http_503(backend: &str) -> OutcomeReport {
    OutcomeReport {
        group: "pool".into(),
        backend: backend.into(),
        outcome: OutcomeKind::HttpStatus as i32,
        http_status: 503,
        ..Default::default()
    }
}

/// (status, ejection cause and count, routable) of one backend, the phase
/// and the group's grpc.health status, as one replica answers.
type Shown = (i32, Option<(String, u32)>, bool, i32, i32);

async fn shown(d: &Daemon, client: &GroupHealthServiceClient<Channel>, backend: &str) -> Option<Shown> {
    use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
    use mcp_health::proto::grpc_health_v1::health_client::HealthClient;
    let g = group_health(client, "pool").await?;
    let b = g.backends.iter().find(|b| b.name == backend)?;
    let mut health = HealthClient::connect(format!("http://{}", d.addr)).await.ok()?;
    let serving = health.check(HealthCheckRequest { service: "pool".into() }).await.ok()?.into_inner().status;
    Some((b.status, b.ejection.as_ref().map(|e| (e.cause.clone(), e.count)), b.routable, g.phase, serving))
}

/// Issue 21 in a cluster: reports sent to a replica that does not own the
/// backend are forwarded to its owner through etcd, which ejects it; the
/// ejection is shared with the verdict, so every replica shows it (Get,
/// the phase and grpc.health agree) and every replica shows its return
/// after its time and a passing probe. When the owner dies while the
/// backend is ejected, the new owner keeps the ejection and ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_to_a_non_owner_eject_the_backend_on_every_replica() {
    let mut s = Setup::start_with("/t9", 2, "3", "1s").await;
    // Ejection after 3 failures in a row, for 2 s × its count; probes pass all along.
    let mut yaml = String::from(
        "name: pool\npolicy:\n  interval: 1s\n  initialSpread: 0.5s\n  timeout: 0.8s\n  unhealthyThreshold: 1\n  healthyThreshold: 1\n  outlier: {consecutiveFailures: 3, baseEjectionTime: 2s, maxEjectedPercent: 50}\nbackends:\n",
    );
    for (i, f) in s.fixtures.iter().enumerate() {
        yaml.push_str(&format!("- name: b{i}\n  url: {}\n  protocolVersion: \"2025-06-18\"\n", f.url_for("/mcp")));
    }
    s.clients[0]
        .apply_group(apply_request(group_yaml(&yaml)))
        .await
        .expect("apply the outlier policy");
    for c in &s.clients {
        eventually("generation 2 everywhere", || group_health(c, "pool"), |g| g.generation == 2).await;
    }
    let members = s.members().await;
    assert_eq!(members.len(), 3, "{members:?}");
    let owner_id = owner_of(&members, "b0");
    let owner_daemon = members[&owner_id];
    let sender = (owner_daemon + 1) % 3;
    println!("b0 is owned by daemon {owner_daemon} ({owner_id}); reporting to daemon {sender}");
    let urls: Vec<String> = (0..3).map(|i| s.daemons[i].as_ref().unwrap().metrics_url()).collect();

    // Three 503s to the non-owner: forwarded, not folded there.
    let answer = report(&s.clients[sender], vec![http_503("b0"); 3]).await;
    assert_eq!(
        (answer.forwarded, answer.accepted, answer.not_owned, answer.dropped),
        (3, 0, 0, 0),
        "{answer:?}"
    );
    // The owner ejects it, and every replica shows the ejection: HEALTHY,
    // ejected with the owner's cause, not routable, the same phase and the
    // same grpc.health status everywhere.
    let mut seen = Vec::new();
    for i in 0..3 {
        let d = s.daemons[i].as_ref().unwrap();
        let shown = eventually(
            "every replica shows b0 ejected",
            || shown(d, &s.clients[i], "b0"),
            |(_, ejection, routable, ..)| ejection.is_some() && !routable,
        )
        .await;
        seen.push(shown);
    }
    println!("every replica shows {:?}", seen[0]);
    assert!(seen.iter().all(|v| *v == seen[0]), "the replicas answer the same: {seen:?}");
    let (status, ejection, _, phase, serving) = seen[0].clone();
    assert_eq!(status, BackendStatus::Healthy as i32, "its handshake works: HEALTHY and ejected");
    assert_eq!(ejection.as_ref().map(|e| e.1), Some(1));
    assert!(ejection.unwrap().0.contains("3 consecutive failures in real traffic, the last: HTTP 503"));
    assert_eq!(phase, GroupPhase::Degraded as i32, "one of two backends routable");
    assert_ne!(serving, 0, "{serving}");
    // The ejection is in the owner's record, and the counters say who did what.
    let record = s.verdicts().await.remove("b0").expect("b0's record");
    assert_eq!(record.writer, owner_id);
    assert_eq!(record.verdict.ejection.as_ref().map(|e| e.ejection.count), Some(1), "{record:?}");
    assert_eq!(metric(&urls[sender], "mcp_health_cluster_reports_forwarded_total").await, Some(3));
    assert_eq!(metric(&urls[owner_daemon], "mcp_health_cluster_reports_folded_total").await, Some(3));
    // No batch is left behind in etcd.
    let etcd = s.etcd.client().await;
    let keys = Keys::new(&s.prefix);
    eventually(
        "the folded batch deleted",
        || async { Some(etcd.range_prefix(&keys.reports()).await.ok()?.0.len()) },
        |n| *n == 0,
    )
    .await;

    // After its time, the owner's next probe passes: every replica shows it back.
    for i in 0..3 {
        let d = s.daemons[i].as_ref().unwrap();
        eventually(
            "every replica shows b0 back",
            || shown(d, &s.clients[i], "b0"),
            |(status, ejection, routable, phase, _)| {
                ejection.is_none() && *routable && *status == BackendStatus::Healthy as i32 && *phase == GroupPhase::Ready as i32
            },
        )
        .await;
    }

    // Ejected again (its second: 4 s), then its owner dies: a survivor owns
    // b0 now, keeps the ejection from the record, and ends it itself.
    let sender = (owner_daemon + 1) % 3;
    let answer = report(&s.clients[sender], vec![http_503("b0"); 3]).await;
    assert_eq!(answer.forwarded, 3, "{answer:?}");
    for i in 0..3 {
        eventually(
            "every replica shows the second ejection",
            || group_health(&s.clients[i], "pool"),
            |g| g.backends.iter().any(|b| b.name == "b0" && b.ejection.as_ref().is_some_and(|e| e.count == 2)),
        )
        .await;
    }
    s.daemons[owner_daemon].take().unwrap().kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != owner_daemon).collect();
    // The survivors never show b0 routable before a survivor's record says it returned.
    let mut returned_by = None;
    for i in &survivors {
        let (_, ejection, routable, ..) = shown(s.daemons[*i].as_ref().unwrap(), &s.clients[*i], "b0").await.unwrap();
        if ejection.is_none() {
            returned_by = Some(*i);
        }
        assert!(ejection.is_some() || routable, "{ejection:?} {routable}");
    }
    let record = eventually(
        "a survivor shares b0's return",
        || async { s.verdicts().await.remove("b0") },
        |r| r.writer != owner_id && r.verdict.ejection.is_none(),
    )
    .await;
    let new_owner = s.members().await.get(&record.writer).copied();
    assert!(new_owner.is_some_and(|i| i != owner_daemon), "{record:?}");
    println!("b0's return shared by daemon {new_owner:?} after the owner died (earlier: {returned_by:?})");
    for i in &survivors {
        let d = s.daemons[*i].as_ref().unwrap();
        eventually(
            "every survivor shows b0 back",
            || shown(d, &s.clients[*i], "b0"),
            |(_, ejection, routable, ..)| ejection.is_none() && *routable,
        )
        .await;
    }
}
