//! DNS discovery in a cluster (issue 23, test 7), with real processes on
//! loopback: a 3-node etcd, three `mcp-healthd` binaries resolving through a
//! real dnsmasq, and nine MCP servers on 127.0.0.2 to 127.0.0.10. The
//! backend's owner resolves the name and shares the set; each endpoint is
//! probed by its own rendezvous owner, so one backend's pods spread over the
//! replicas, every replica shows the same nine endpoints, and after `kill -9`
//! of one replica its endpoints are probed by the others within the lease.

use crate::common;
use crate::etcd_support;
use crate::lifecycle_bin;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use common::{apply_request, eventually, group_health, group_yaml};
use etcd_support::EtcdCluster;
use lifecycle_bin::Daemon;
use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::cluster::endpoints::EndpointsRecord;
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::membership::Member;
use mcp_health::cluster::record::VerdictRecord;
use mcp_health::proto::v1::{BackendStatus, GroupHealth};

const PREFIX: &str = "/cdns";
const LASTS: [u8; 9] = [2, 3, 4, 5, 6, 7, 8, 9, 10];

/// One series' value in a scrape of `url` (a series without labels).
async fn metric(url: &str, series: &str) -> Option<u64> {
    common::install_crypto();
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// (address, status) of the discovered backend's endpoints, in address order.
fn endpoints_of(h: &GroupHealth) -> Vec<(String, BackendStatus)> {
    h.backends
        .first()
        .map(|b| {
            b.endpoints
                .iter()
                .map(|e| (e.address.clone(), BackendStatus::try_from(e.status).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn all_healthy(h: &GroupHealth, port: u16) -> bool {
    let want: Vec<(String, BackendStatus)> = LASTS.iter().map(|l| (format!("127.0.0.{l}:{port}"), BackendStatus::Healthy)).collect();
    endpoints_of(h) == want
}

/// member id -> daemon index, from the member keys' names.
async fn members(etcd: &EtcdCluster, daemons: &[Option<Daemon>]) -> HashMap<String, usize> {
    let client = etcd.client().await;
    let keys = Keys::new(PREFIX);
    let (kvs, _) = client.range_prefix(&keys.members()).await.expect("members");
    let mut out = HashMap::new();
    for kv in kvs {
        let id = keys.member_id(&String::from_utf8_lossy(&kv.key)).unwrap().to_owned();
        let m: Member = serde_json::from_slice(&kv.value).unwrap();
        if let Some(i) = daemons.iter().position(|d| d.as_ref().is_some_and(|d| d.addr.to_string() == m.name)) {
            out.insert(id, i);
        }
    }
    out
}

/// Endpoint address -> the member that wrote its shared verdict.
async fn endpoint_writers(etcd: &EtcdCluster) -> BTreeMap<SocketAddr, String> {
    let client = etcd.client().await;
    let keys = Keys::new(PREFIX);
    let (kvs, _) = client.range_prefix(&keys.endpoint_verdicts("g", "pods")).await.expect("endpoint verdicts");
    kvs.iter()
        .filter_map(|kv| {
            let (_, _, address) = keys.endpoint_verdict_of(&String::from_utf8_lossy(&kv.key))?;
            Some((address, VerdictRecord::decode(&kv.value)?.writer))
        })
        .collect()
}

/// Issue 23, test 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_endpoints_spread_over_three_replicas_and_move_after_kill_9() {
    let hosts: String = LASTS.iter().map(|l| format!("127.0.0.{l} pods.test\n")).collect();
    let dns = Dnsmasq::start(&hosts, 1);
    let first = FixtureServer::start_on(SocketAddr::from(([127, 0, 0, LASTS[0]], 0)), FixtureOptions::default())
        .await
        .unwrap();
    let port = first.addr().port();
    let mut servers = vec![first];
    for last in &LASTS[1..] {
        servers.push(
            FixtureServer::start_on(SocketAddr::from(([127, 0, 0, *last], port)), FixtureOptions::default())
                .await
                .unwrap(),
        );
    }
    let etcd = EtcdCluster::start(3).await;
    let (endpoints, dns_server) = (etcd.endpoints_arg(), dns.addr.to_string());
    let mut daemons: Vec<Option<Daemon>> = (0..3)
        .map(|_| {
            Some(Daemon::spawn(&[
                "--etcd-endpoints",
                &endpoints,
                "--etcd-prefix",
                PREFIX,
                "--etcd-lease-ttl",
                "2",
                "--metrics-listen",
                "127.0.0.1:0",
                "--dns-server",
                &dns_server,
            ]))
        })
        .collect();
    let mut clients = Vec::new();
    for d in daemons.iter().flatten() {
        clients.push(d.client().await);
    }
    // Applied through one replica: accepted in cluster mode now.
    let spec = group_yaml(&format!(
        "name: g\npolicy: {{interval: 1s, timeout: 0.8s, initialSpread: 0.5s, unhealthyThreshold: 1, healthyThreshold: 1}}\nbackends:\n  \
         - name: pods\n    url: \"http://pods.test:{port}/mcp\"\n    discovery:\n      dns: {{minTtl: 1s, maxTtl: 10s}}\n"
    ));
    clients[0]
        .apply_group(apply_request(spec))
        .await
        .expect("a discovered backend is applied in cluster mode");

    // Every replica shows the same nine HEALTHY endpoints.
    for (i, c) in clients.iter().enumerate() {
        let h = eventually(
            &format!("replica {i} shows nine HEALTHY endpoints"),
            || group_health(c, "g"),
            |h| all_healthy(h, port),
        )
        .await;
        assert_eq!(h.backends[0].status, BackendStatus::Healthy as i32, "replica {i}");
    }
    // The owner's set in etcd: nine addresses, resolved.
    let client = etcd.client().await;
    let keys = Keys::new(PREFIX);
    let (kvs, _) = client.range_prefix(&keys.endpoint_set("g", "pods")).await.expect("endpoint set");
    let set = EndpointsRecord::decode(&kvs[0].value).expect("an endpoint set record");
    assert_eq!(set.endpoints.members.len(), 9);

    // Each endpoint has one owner, and they are spread: the owned-endpoint
    // gauges sum to nine, and the shared endpoint verdicts have more than
    // one writer. (Which member wins each address depends on the random
    // lease ids; all nine going to one of three is a 1-in-6561 draw.)
    let urls: Vec<String> = daemons.iter().flatten().map(Daemon::metrics_url).collect();
    let owned = |urls: Vec<String>| async move {
        let mut counts = Vec::new();
        for u in &urls {
            counts.push(metric(u, "mcp_health_cluster_owned_endpoints").await?);
        }
        Some(counts)
    };
    let ids = members(&etcd, &daemons).await;
    assert_eq!(ids.len(), 3);
    let spread = || async {
        let counts = owned(urls.clone()).await?;
        let writers = endpoint_writers(&etcd).await;
        let mut by_daemon = vec![0u64; 3];
        for w in writers.values() {
            by_daemon[*ids.get(w)?] += 1;
        }
        Some((counts, by_daemon, writers))
    };
    // Each replica writes the verdicts of the endpoints it owns.
    let (counts, by_daemon, writers) = eventually("nine endpoint verdicts, each written by its owner", spread, |(counts, by_daemon, writers)| {
        writers.len() == 9 && counts.iter().sum::<u64>() == 9 && counts == by_daemon
    })
    .await;
    assert!(counts.iter().filter(|n| **n > 0).count() >= 2, "not spread: {counts:?}");

    // kill -9 the replica probing the most endpoints.
    let victim = (0..3).max_by_key(|i| by_daemon[*i]).unwrap();
    let victims: Vec<SocketAddr> = writers.iter().filter(|(_, w)| ids[*w] == victim).map(|(a, _)| *a).collect();
    let probes = |servers: &[FixtureServer]| -> BTreeMap<SocketAddr, u64> { servers.iter().map(|s| (s.addr(), s.stats().initialize)).collect() };
    let before = probes(&servers);
    daemons[victim].take().unwrap().kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();

    // Within the lease, the survivors own all nine and probe the victim's.
    let survivor_urls: Vec<String> = survivors.iter().map(|i| urls[*i].clone()).collect();
    eventually(
        "the survivors own all nine endpoints",
        || owned(survivor_urls.clone()),
        |c| c.iter().sum::<u64>() == 9,
    )
    .await;
    eventually(
        "the victim's endpoints probed again",
        || async { Some(probes(&servers)) },
        |now| victims.iter().all(|a| now[a] >= before[a] + 2),
    )
    .await;
    let ids = members(&etcd, &daemons).await;
    eventually(
        "the survivors share the victim's endpoints' verdicts",
        || async { Some(endpoint_writers(&etcd).await) },
        |w| w.len() == 9 && w.values().all(|writer| ids.contains_key(writer)),
    )
    .await;
    for i in survivors {
        let h = eventually(
            &format!("survivor {i} shows nine HEALTHY endpoints"),
            || group_health(&clients[i], "g"),
            |h| all_healthy(h, port),
        )
        .await;
        assert_eq!(h.backends[0].status, BackendStatus::Healthy as i32);
    }
    drop(dns);
}
