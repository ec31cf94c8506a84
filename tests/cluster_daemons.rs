//! Cluster mode with real processes on loopback: 3 etcd nodes
//! (tests/etcd_support) and 3 `mcp-healthd` binaries sharing them.

mod common;
mod etcd_support;
mod lifecycle_bin;

use std::time::Instant;

use common::{PATIENCE, apply_request, eventually, group_yaml};
use etcd_support::EtcdCluster;
use lifecycle_bin::Daemon;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Starts `n` daemons on the cluster's etcd, under `prefix`.
fn daemons(etcd: &EtcdCluster, prefix: &str, n: usize, ttl: &str) -> Vec<Daemon> {
    let endpoints = etcd.endpoints_arg();
    (0..n)
        .map(|_| Daemon::spawn(&["--etcd-endpoints", &endpoints, "--etcd-prefix", prefix, "--etcd-lease-ttl", ttl]))
        .collect()
}

async fn get(client: &GroupHealthServiceClient<Channel>, group: &str) -> Option<GroupHealth> {
    client
        .clone()
        .get_group_health(GetGroupHealthRequest { group: group.into() })
        .await
        .ok()?
        .into_inner()
        .health
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
        let g = get(c, "shared").await.expect("B and C have the group");
        assert_eq!(g.generation, 1);
        assert_eq!(g.source, GroupSource::Api as i32);
    }
    // A change on C, then a delete on B, reach everyone.
    let mut changed = spec.clone();
    changed.backends[0].url = "http://127.0.0.1:9/other".into();
    let r = clients[2].apply_group(apply_request(changed)).await.expect("apply on C").into_inner();
    assert_eq!(r.generation, 2);
    for c in &clients {
        eventually("generation 2 everywhere", || get(c, "shared"), |g| g.generation == 2 && g.backends[0].url.ends_with("/other")).await;
    }
    clients[1].delete_group(DeleteGroupRequest { group: "shared".into() }).await.expect("delete on B");
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
    let g = get(&c, "shared").await.expect("restored from etcd");
    assert_eq!(g.generation, 1);
}
