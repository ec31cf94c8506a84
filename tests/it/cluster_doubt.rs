//! Self-doubt across replicas (issue 21 §3, test 4's second and third
//! bullets) with real processes: three replicas on etcd, one of them in a
//! network namespace of its own whose path to the fleet is cut (an
//! unreachable route: etcd and its API stay reachable). Its burst of failing
//! probes is put to the other two, which reach the fleet: it doubts itself
//! (cause `peers_reach`), hands its backends to them, and no replica shows a
//! backend UNHEALTHY. When the path comes back it trusts itself again and
//! takes its share back. Then the fleet itself dies: every replica sees
//! every backend die, and none doubts itself, because that is real.
//! Needs root (network namespaces).

use std::net::SocketAddr;

use crate::cluster_daemons::metric;
use crate::cluster_more::{all_healthy, config_status, names_owned, write};
use crate::common::{self, apply_request, eventually, group_health, group_yaml, watch_statuses};
use crate::etcd_support::EtcdCluster;
use crate::lifecycle_bin::Daemon;
use crate::netns_support::NetNs;
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tonic::transport::Channel;

type Client = GroupHealthServiceClient<Channel>;

/// etcd and the cut-off replica's API.
const ETCD_LINK: usize = 0;
/// The fleet listens on the host's side of this link; only the route to it is cut.
const FLEET_LINK: usize = 1;
/// Backends owned by each replica.
const PER: usize = 3;
const ADMIN_TOKEN: &str = "cluster-doubt-test-admin-token";
/// The replica in the namespace.
const CUT: usize = 2;

async fn self_doubt(client: &Client) -> Option<Option<SelfDoubt>> {
    Some(client.clone().get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner().self_doubt)
}

/// The member ids each replica shows as doubting.
async fn doubting(client: &Client) -> Option<Vec<String>> {
    let info = config_status(client).await?;
    Some(info.members.into_iter().filter(|m| m.doubting).map(|m| m.id).collect())
}

/// Backends each replica probes now, from their metrics.
async fn owned_backends(urls: &[String]) -> Option<Vec<u64>> {
    let mut owned = Vec::new();
    for url in urls {
        owned.push(metric(url, "mcp_health_cluster_owned_backends").await?);
    }
    Some(owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_fleet_hands_its_backends_over_and_a_dead_fleet_is_seen_by_every_replica() {
    common::install_crypto();
    let ns = NetNs::create(2);
    let etcd = EtcdCluster::start_also_on(1, ns.host_side(ETCD_LINK)).await;
    let doubt_flags = [
        "--etcd-prefix",
        "/doubt",
        "--etcd-lease-ttl",
        "2",
        "--doubt-interval-ms",
        "200",
        "--doubt-clear-checks",
        "2",
        "--doubt-burst-backends",
        "2",
        "--doubt-burst-window-ms",
        "3000",
    ];
    let host_endpoints = etcd.endpoints_arg();
    let mut host_args = vec!["--etcd-endpoints", host_endpoints.as_str(), "--metrics-listen", "127.0.0.1:0"];
    host_args.extend(doubt_flags);
    let hosts = [Daemon::spawn(&host_args), Daemon::spawn(&host_args)];
    let inner_endpoints = etcd.endpoints_on(ns.host_side(ETCD_LINK)).join(",");
    let inner_listen = SocketAddr::new(ns.inner_side(ETCD_LINK), 50051);
    let inner_metrics = SocketAddr::new(ns.inner_side(ETCD_LINK), 9464);
    let token_dir = tempfile::tempdir().expect("temp dir");
    let token_arg = write(token_dir.path(), "admin-token", ADMIN_TOKEN).display().to_string();
    let metrics_arg = inner_metrics.to_string();
    let mut inner_args = vec![
        "--etcd-endpoints",
        inner_endpoints.as_str(),
        "--metrics-listen",
        &metrics_arg,
        "--admin-token-file",
        &token_arg,
    ];
    inner_args.extend(doubt_flags);
    let mut inner = Daemon::spawn_in_netns(&ns.name, &inner_listen.to_string(), &inner_args);
    let clients = [hosts[0].client().await, hosts[1].client().await, inner.client().await];
    let metrics = [hosts[0].metrics_url(), hosts[1].metrics_url(), format!("http://{inner_metrics}/metrics")];
    let mut ids = Vec::new();
    for c in &clients {
        let info = eventually("three members", || config_status(c), |i| i.members.len() == 3 && !i.degraded).await;
        ids.push(info.member);
    }

    // PER backends owned by each replica, every one its own server on the
    // host's side of the fleet link (reachable from the host and, until the
    // cut, from the namespace).
    let fleet_ip = ns.host_side(FLEET_LINK);
    let owned = names_owned("fleet", &ids, PER);
    let mut fixtures = Vec::new();
    let mut yaml = "name: fleet\npolicy:\n  interval: 1s\n  edgeInterval: 1s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: 4\n  healthyThreshold: 1\nbackends:\n".to_owned();
    for (name, _) in &owned {
        let f = FixtureServer::start_on(SocketAddr::new(fleet_ip, 0), FixtureOptions::default())
            .await
            .expect("fixture on the fleet link");
        yaml.push_str(&format!("- name: {name}\n  url: {}\n", f.url()));
        fixtures.push(f);
    }
    clients[0].clone().apply_group(apply_request(group_yaml(&yaml))).await.expect("apply");
    for c in &clients {
        eventually("every replica sees the fleet READY", || group_health(c, "fleet"), all_healthy).await;
    }
    eventually("each replica owns its share", || owned_backends(&metrics), |n| *n == [PER as u64; 3]).await;
    let watches: Vec<_> = clients.iter().map(|c| watch_statuses(c, "fleet")).collect();

    // The cut: the namespace has no route to the fleet; etcd and the API stay.
    ns.set_unreachable(fleet_ip, true);
    let cut = std::time::Instant::now();
    let doubt = eventually("the cut-off replica doubts itself", || self_doubt(&clients[CUT]), Option::is_some)
        .await
        .expect("doubt");
    assert_eq!(doubt.causes, ["peers_reach"], "{doubt:?}");
    println!("{:?} after the cut: the cut-off replica doubts itself: {doubt:?}", cut.elapsed());
    for c in &clients {
        eventually("every replica shows the cut-off one doubting", || doubting(c), |d| *d == [ids[CUT].clone()]).await;
    }
    // Its backends moved to the others: it owns none, they own all between them.
    let moved = eventually(
        "it hands every backend over",
        || owned_backends(&metrics),
        |n| n[CUT] == 0 && n[0] + n[1] == 3 * PER as u64,
    )
    .await;
    println!("{:?} after the cut: backends owned {moved:?}", cut.elapsed());
    for c in &clients {
        eventually("every replica still sees the fleet routable", || group_health(c, "fleet"), all_healthy).await;
    }

    // The path comes back: it trusts itself again and takes its share back.
    ns.set_unreachable(fleet_ip, false);
    eventually("the doubt ends", || self_doubt(&clients[CUT]), Option::is_none).await;
    for c in &clients {
        eventually("no replica shows a doubting member", || doubting(c), Vec::is_empty).await;
    }
    eventually("each replica owns its share again", || owned_backends(&metrics), |n| *n == [PER as u64; 3]).await;
    println!("{:?} after the cut: the route is back and it owns its share again", cut.elapsed());
    for (stop, task) in watches {
        let _ = stop.send(());
        let seen = task.await.expect("watch task");
        let unhealthy: Vec<&(String, i32)> = seen.iter().filter(|(_, s)| *s == BackendStatus::Unhealthy as i32).collect();
        assert!(unhealthy.is_empty(), "a replica showed a backend UNHEALTHY through the cut: {unhealthy:?}");
    }
    let log = inner.drain_log();
    assert!(log.iter().any(|l| l.contains("its backends go to the replicas that do not")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("takes its share of the backends back")), "{log:?}");

    // The fleet itself dies: every replica sees it, and none doubts itself.
    drop(fixtures);
    let died = std::time::Instant::now();
    for c in &clients {
        eventually(
            "every replica sees every backend UNHEALTHY",
            || group_health(c, "fleet"),
            |g| g.backends.len() == 3 * PER && g.backends.iter().all(|b| b.status == BackendStatus::Unhealthy as i32),
        )
        .await;
    }
    println!("{:?} after the fleet died: every replica sees every backend UNHEALTHY", died.elapsed());
    for c in &clients {
        assert_eq!(self_doubt(c).await, Some(None), "a dead fleet is no reason to doubt oneself");
        assert_eq!(doubting(c).await, Some(vec![]));
    }
}
