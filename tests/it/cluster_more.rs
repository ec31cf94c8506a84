//! More of cluster mode (issue 11) with real processes: etcd behind client
//! TLS (mTLS) and authentication; a replica cut off from etcd in a network
//! namespace of its own (fail-static, re-owning, fencing, rejoining); and one
//! scenario script whose settled verdicts must be the same on a single node
//! and on a 3-replica cluster.

use crate::common;
use crate::etcd_support;
use crate::lifecycle_bin;
use crate::netns_support::NetNs;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki;
use common::probers::{one_prober_each, wait_probers};
use common::{PATIENCE, apply_request, eventually, group_health, group_yaml};
use etcd_support::{EtcdCluster, EtcdConfig, EtcdTls};
use lifecycle_bin::Daemon;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer};
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::ownership;
use mcp_health::cluster::record::VerdictRecord;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use rcgen::ExtendedKeyUsagePurpose;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

type Client = GroupHealthServiceClient<Channel>;

pub(crate) async fn config_status(client: &Client) -> Option<ClusterInfo> {
    client.clone().get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner().cluster
}

pub(crate) fn all_healthy(g: &GroupHealth) -> bool {
    g.phase == GroupPhase::Ready as i32 && g.backends.iter().all(|b| b.status == BackendStatus::Healthy as i32)
}

/// Runs `mcp-healthd` until it exits by itself (a start-up refusal), with
/// stdout and stderr both captured: a secret must be in neither.
async fn run_until_exit(args: &[String]) -> (std::process::ExitStatus, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-healthd"))
        .args(["--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("MCP_HEALTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mcp-healthd");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        (out, err)
    };
    let ((out, err), status) = tokio::time::timeout(PATIENCE, async { tokio::join!(read, child.wait()) })
        .await
        .expect("mcp-healthd refused to start within PATIENCE (it kept running)");
    let text = format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    (status.expect("wait"), text)
}

// ---------------------------------------------------------------------------
// 1. etcd with client TLS (mTLS) and authentication.

pub(crate) fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// Debian's `etcdctl` (v3 API) over the cluster's mTLS, optionally as `user`
/// ("name:password"): an independent client to set up users and roles and to
/// read back what the daemon wrote.
fn etcdctl(endpoint: &str, tls: &EtcdTls, user: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--dial-timeout", "5s"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.client_cert)
        .arg("--key")
        .arg(&tls.client_key);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run etcdctl (install it with scripts/setup-etcd.sh): {e}"));
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_behind_mtls_and_authentication_is_joined_and_refusals_say_why() {
    common::install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // One CA signs etcd's server certificate and every client certificate;
    // the client CN is not an etcd user, so access comes from the password.
    let (ca_pem, ca) = pki::ca("etcd test CA");
    let (server_cert, server_key) = pki::leaf(&["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
    let (client_cert, client_key) = pki::leaf(&["mcp-healthd"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    let (other_ca_pem, _) = pki::ca("a CA that signed nothing of etcd's");
    let tls = EtcdTls {
        ca: write(d, "ca.crt", &ca_pem),
        server_cert: write(d, "etcd.crt", &server_cert),
        server_key: write(d, "etcd.key", &server_key),
        client_cert: write(d, "client.crt", &client_cert),
        client_key: write(d, "client.key", &client_key),
    };
    let other_ca = write(d, "other-ca.crt", &other_ca_pem);
    let etcd = EtcdCluster::start_with(
        1,
        EtcdConfig {
            tls: Some(tls.clone()),
            also_listen: None,
        },
    )
    .await;
    let endpoint = etcd.endpoints()[0].clone();
    assert!(endpoint.starts_with("https://"), "{endpoint}");

    // Authentication on: root, and a user whose one role covers only this
    // cluster's prefix.
    let password = format!("Pw-{}-right-Zq7", std::process::id());
    let wrong = format!("Pw-{}-wrong-Xk4", std::process::id());
    let root = "root:root-Pw-3hV";
    etcdctl(&endpoint, &tls, None, &["user", "add", "root", "--new-user-password=root-Pw-3hV"]);
    etcdctl(&endpoint, &tls, None, &["user", "grant-role", "root", "root"]);
    etcdctl(&endpoint, &tls, None, &["user", "add", "mcp", &format!("--new-user-password={password}")]);
    etcdctl(&endpoint, &tls, None, &["role", "add", "mcp-tls"]);
    etcdctl(
        &endpoint,
        &tls,
        None,
        &["role", "grant-permission", "mcp-tls", "--prefix=true", "readwrite", "/mcp-tls/"],
    );
    etcdctl(&endpoint, &tls, None, &["user", "grant-role", "mcp", "mcp-tls"]);
    etcdctl(&endpoint, &tls, None, &["auth", "enable"]);

    let right_file = write(d, "password", &format!("{password}\n"));
    let wrong_file = write(d, "wrong-password", &format!("{wrong}\n"));
    let path = |p: &Path| p.display().to_string();
    let args = |prefix: &str, ca: &Path, password_file: &Path| -> Vec<String> {
        [
            "--etcd-endpoints",
            &endpoint,
            "--etcd-prefix",
            prefix,
            "--etcd-lease-ttl",
            "2",
            "--etcd-ca-cert",
            &path(ca),
            "--etcd-cert",
            &path(&tls.client_cert),
            "--etcd-key",
            &path(&tls.client_key),
            "--etcd-user",
            "mcp",
            "--etcd-password-file",
            &path(password_file),
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // The right credentials: it joins, an apply commits and is read back.
    let good = args("/mcp-tls", &tls.ca, &right_file);
    let good_refs: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut a = Daemon::spawn(&good_refs);
    let client = a.client().await;
    let info = eventually(
        "joined over mTLS with a password",
        || config_status(&client),
        |i| !i.member.is_empty() && !i.degraded,
    )
    .await;
    assert_eq!(info.lease_ttl_seconds, 2);
    let fixture = FixtureServer::start().await.expect("fixture");
    let spec = group_yaml(&format!(
        "name: secure\npolicy:\n  interval: 1s\n  timeout: 0.8s\nbackends:\n- name: a\n  url: {}\n",
        fixture.url()
    ));
    let applied = client
        .clone()
        .apply_group(apply_request(spec))
        .await
        .expect("apply over TLS + auth")
        .into_inner();
    assert_eq!(applied.generation, 1);
    // READY means the probe's verdict went through the fenced write too.
    eventually("the group READY", || group_health(&client, "secure"), all_healthy).await;
    let keys = etcdctl(&endpoint, &tls, Some(root), &["get", "--prefix", "--keys-only", "/mcp-tls/"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert!(keys.contains(&"/mcp-tls/groups/secure"), "{keys:?}");
    assert!(keys.contains(&format!("/mcp-tls/members/{}", info.member).as_str()), "{keys:?}");
    eventually(
        "the verdict shared in etcd",
        || async { Some(etcdctl(&endpoint, &tls, Some(root), &["get", "--prefix", "--keys-only", "/mcp-tls/verdicts/"])) },
        |k| k.lines().any(|l| l == "/mcp-tls/verdicts/secure/a"),
    )
    .await;
    // A second replica reads the group back from etcd, under the same user.
    let b = Daemon::spawn(&good_refs);
    let client_b = b.client().await;
    let g = group_health(&client_b, "secure").await.expect("read back from etcd by another replica");
    assert_eq!(g.generation, 1);
    eventually("two members", || config_status(&client), |i| i.members.len() == 2).await;
    assert!(!a.drain_log().iter().any(|l| l.contains(&password)), "the password is never logged");

    // The role covers /mcp-tls/ only: another prefix is refused by etcd.
    let (status, out) = run_until_exit(&args("/elsewhere", &tls.ca, &right_file)).await;
    assert!(!status.success(), "{out}");
    assert!(out.contains("permission denied"), "names etcd's refusal: {out}");

    // A wrong password: refused at start-up, saying why, never printing it.
    let (status, out) = run_until_exit(&args("/mcp-tls", &tls.ca, &wrong_file)).await;
    println!("wrong password: {status}\n{out}");
    assert!(!status.success(), "{out}");
    assert!(out.contains("mcp-healthd cannot start"), "{out}");
    assert_eq!(out.matches("authentication failed").count(), 1, "names the cause, once: {out}");
    assert!(!out.contains(&wrong) && !out.contains(&password), "a password was printed: {out}");

    // A CA that did not sign etcd's certificate: a TLS error.
    let (status, out) = run_until_exit(&args("/mcp-tls", &other_ca, &right_file)).await;
    println!("wrong CA: {status}\n{out}");
    assert!(!status.success(), "{out}");
    assert!(out.contains("mcp-healthd cannot start"), "{out}");
    let lower = out.to_lowercase();
    assert!(lower.contains("tls handshake") && lower.contains("certificate"), "names the TLS failure: {out}");
    assert!(out.contains("--etcd-ca-cert"), "points at the flag to check: {out}");
    assert!(!out.contains(&password), "{out}");
}

// ---------------------------------------------------------------------------
// 2. A replica cut off from etcd, in a network namespace of its own.

/// The namespace's links: the etcd link (host .1, namespace .2) is the only
/// way to etcd, the one the test cuts; the service link (host .5, namespace
/// .6) carries clients and backends and is never cut, so the cut-off replica
/// still answers and still reaches its backends.
const ETCD_LINK: usize = 0;
const SERVICE_LINK: usize = 1;

const INTERVAL_MS: u64 = 1000;
const TTL_S: u64 = 2;
const ADMIN_TOKEN: &str = "partition-test-admin-token";

/// `per` backends owned by each member id in `members` (rendezvous over the
/// real member ids), so every replica owns some: names in member order.
pub(crate) fn names_owned(group: &str, members: &[String], per: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (m, id) in members.iter().enumerate() {
        let mine = (0..)
            .map(|i| format!("b{i}"))
            .filter(|b| ownership::owner(&ownership::backend_key(group, b), members.iter()) == Some(id.as_str()));
        out.extend(mine.take(per).map(|b| (b, m)));
    }
    out
}

fn probes(fixtures: &[FixtureServer]) -> Vec<u64> {
    fixtures.iter().map(|f| f.stats().initialize).collect()
}

pub(crate) async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("exposition")
}

/// What every replica must agree on: generation, phase, and each backend's
/// status and reason.
fn verdict_of(g: &GroupHealth) -> (u64, i32, Vec<(String, i32, i32)>) {
    let mut b: Vec<(String, i32, i32)> = g
        .backends
        .iter()
        .map(|b| (b.name.clone(), b.status, b.reason.as_ref().map_or(0, |r| r.code)))
        .collect();
    b.sort();
    (g.generation, g.phase, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_etcd_is_fail_static_fenced_and_rejoins() {
    common::install_crypto();
    // Needs root (CAP_NET_ADMIN): without it `ip netns add` fails and says so.
    let ns = NetNs::create(2);
    let etcd = EtcdCluster::start_also_on(3, ns.host_side(ETCD_LINK)).await;
    let prefix = "/partition";
    let ttl = TTL_S.to_string();
    let cluster_args = |endpoints: String| -> Vec<String> {
        ["--etcd-endpoints", &endpoints, "--etcd-prefix", prefix, "--etcd-lease-ttl", &ttl]
            .map(str::to_owned)
            .to_vec()
    };
    let mut host_args = cluster_args(etcd.endpoints_arg());
    host_args.extend(["--metrics-listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let host_refs: Vec<&str> = host_args.iter().map(String::as_str).collect();
    let hosts = [Daemon::spawn(&host_refs), Daemon::spawn(&host_refs)];
    // The cut-off one reaches etcd only through the etcd link.
    let inner_args = cluster_args(etcd.endpoints_on(ns.host_side(ETCD_LINK)).join(","));
    let inner_listen = SocketAddr::new(ns.inner_side(SERVICE_LINK), 50051);
    let inner_metrics = SocketAddr::new(ns.inner_side(SERVICE_LINK), 9464);
    let mut inner_refs: Vec<&str> = inner_args.iter().map(String::as_str).collect();
    let metrics_arg = inner_metrics.to_string();
    // Off loopback, mutations need the admin token (the daemon refuses to start otherwise).
    let token_dir = tempfile::tempdir().expect("temp dir");
    let token_arg = write(token_dir.path(), "admin-token", ADMIN_TOKEN).display().to_string();
    inner_refs.extend(["--metrics-listen", &metrics_arg, "--admin-token-file", &token_arg]);
    let mut inner = Daemon::spawn_in_netns(&ns.name, &inner_listen.to_string(), &inner_refs);
    let clients = [hosts[0].client().await, hosts[1].client().await, inner.client().await];
    const CUT: usize = 2;
    let mut ids = Vec::new();
    for c in &clients {
        let info = eventually("three members", || config_status(c), |i| i.members.len() == 3 && !i.degraded).await;
        ids.push(info.member);
    }

    // Two backends owned by each replica, each its own fixture on the
    // host's side of the service link (reachable from everyone).
    let owned = names_owned("pool", &ids, 2);
    let mut fixtures = Vec::new();
    let mut yaml = format!(
        "name: pool\npolicy:\n  interval: {}s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: 1\n  healthyThreshold: 1\nbackends:\n",
        INTERVAL_MS as f64 / 1000.0
    );
    for (name, _) in &owned {
        let f = FixtureServer::start_on(SocketAddr::new(ns.host_side(SERVICE_LINK), 0), FixtureOptions::default())
            .await
            .expect("fixture on the service link");
        yaml.push_str(&format!("- name: {name}\n  url: {}\n", f.url()));
        fixtures.push(f);
    }
    clients[0].clone().apply_group(apply_request(group_yaml(&yaml))).await.expect("apply");
    let backends: Vec<String> = owned.iter().map(|(b, _)| b.clone()).collect();
    let metrics_urls: Vec<String> = hosts
        .iter()
        .map(Daemon::metrics_url)
        .chain([format!("http://{inner_metrics}/metrics")])
        .collect();
    for c in &clients {
        eventually("every replica sees the pool READY", || group_health(c, "pool"), all_healthy).await;
    }
    let keys = Keys::new(prefix);
    let etcd_client = etcd.client().await;
    let shared = || async {
        let (kvs, _) = etcd_client.range_prefix(&keys.group_verdicts("pool")).await.ok()?;
        Some(
            kvs.iter()
                .map(|kv| {
                    let key = String::from_utf8_lossy(&kv.key);
                    let (_, b) = keys.verdict_of(&key).unwrap();
                    (b.to_owned(), VerdictRecord::decode(&kv.value).unwrap().writer)
                })
                .collect::<HashMap<String, String>>(),
        )
    };
    let writers = eventually("six verdicts, each by its owner", shared, |v| {
        v.len() == 6 && owned.iter().all(|(b, m)| v.get(b) == Some(&ids[*m]))
    })
    .await;
    let cut_backends: Vec<&str> = owned.iter().filter(|(_, m)| *m == CUT).map(|(b, _)| b.as_str()).collect();
    println!("owners before the cut: {writers:?}; cut-off replica {} owns {cut_backends:?}", ids[CUT]);

    // The survivors' view of the pool through the cut: no phase change.
    let mut watches = Vec::new();
    for c in &clients[..2] {
        let stream = c
            .clone()
            .watch_group_health(WatchGroupHealthRequest { group: "pool".into() })
            .await
            .expect("watch")
            .into_inner();
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut phases = Vec::new();
            let mut stream = stream;
            loop {
                tokio::select! {
                    _ = &mut stop => return phases,
                    m = stream.next() => match m {
                        Some(Ok(m)) => phases.extend(m.groups.iter().map(|g| g.phase)),
                        other => panic!("a survivor's watch ended: {other:?}"),
                    },
                }
            }
        });
        watches.push((stop_tx, task));
    }
    let (_, cut_revision) = etcd_client.range_prefix(&keys.verdicts()).await.expect("revision");

    ns.set_link(ETCD_LINK, false);
    let cut = Instant::now();

    // The cut-off replica: degraded, says why, still answers from its last view.
    let inner_client = &clients[CUT];
    let info = eventually("the cut-off replica degraded", || config_status(inner_client), |i| i.degraded).await;
    println!("degraded after {:?}: {}", cut.elapsed(), info.degraded_reason);
    assert!(info.degraded_reason.contains("etcd"), "{info:?}");
    assert!(
        scrape(inner_metrics).await.lines().any(|l| l == "mcp_health_cluster_degraded 1"),
        "the metric says degraded"
    );
    let mut late = tonic::Request::new(apply_request(group_yaml("name: late\nbackends:\n- name: a\n  url: http://127.0.0.1:9/mcp\n")));
    late.metadata_mut().insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    let err = inner_client.clone().apply_group(late).await.expect_err("no apply while cut off");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("degraded") && err.message().contains("etcd"),
        "says why: {}",
        err.message()
    );
    let last_view = group_health(inner_client, "pool").await.expect("the last view still served");
    assert!(all_healthy(&last_view), "{last_view:?}");

    // The survivors: the cut-off member's lease expires, its backends are
    // re-owned (their verdicts now written by a survivor), and no phase moved.
    for c in &clients[..2] {
        eventually("the survivors see two members", || config_status(c), |i| i.members.len() == 2).await;
    }
    eventually("the survivors re-own the cut-off replica's backends", shared, |v| {
        cut_backends.iter().all(|b| v.get(*b).is_some_and(|w| w == &ids[0] || w == &ids[1]))
    })
    .await;
    let reowned = cut.elapsed();
    println!("re-owned {reowned:?} after the cut (lease TTL {TTL_S} s + interval {INTERVAL_MS} ms)");
    // TTL + one interval, plus etcd's lease-expiry tick, the watch round-trip
    // and the degraded detection's call timeout on a loaded 2-core machine.
    assert!(
        reowned <= Duration::from_secs(TTL_S) + Duration::from_millis(INTERVAL_MS) + Duration::from_secs(4),
        "re-owned after {reowned:?}"
    );
    for (stop, task) in watches {
        let _ = stop.send(());
        let phases = task.await.expect("watch task");
        assert!(!phases.is_empty());
        assert!(
            phases.iter().all(|p| *p == GroupPhase::Ready as i32),
            "a survivor's pool left READY: {phases:?}"
        );
    }

    // Fail-static: the cut-off replica probes every backend itself, so each
    // backend now has two probers (its survivor owner and the cut-off one),
    // including those the cut-off replica never owned.
    let seen = wait_probers(&metrics_urls, "pool", &backends, "two probers per backend, one the cut-off replica", |r| {
        r.len() == 2 && r.contains(&CUT)
    })
    .await;
    println!("cut off: the replicas probing each backend: {seen:?}");
    // Its own probes keep its view live: a backend failing now shows there.
    let (flip_name, _) = &owned[0];
    fixtures[0].set_behavior(Behavior::Status(500));
    let unhealthy = |g: &GroupHealth| g.backends.iter().any(|b| &b.name == flip_name && b.status == BackendStatus::Unhealthy as i32);
    eventually(
        "the cut-off replica's own probe sees the failure",
        || group_health(inner_client, "pool"),
        unhealthy,
    )
    .await;
    eventually("a survivor shares it too", || group_health(&clients[0], "pool"), unhealthy).await;
    fixtures[0].set_behavior(Behavior::Healthy);
    for c in &clients {
        eventually("healthy again everywhere", || group_health(c, "pool"), all_healthy).await;
    }

    // The link back: it rejoins under a new member id, no longer degraded.
    ns.set_link(ETCD_LINK, true);
    let back = Instant::now();
    let info = eventually(
        "the cut-off replica rejoins",
        || config_status(inner_client),
        |i| !i.degraded && i.members.len() == 3 && !i.member.is_empty() && i.member != ids[CUT],
    )
    .await;
    println!("rejoined as {} after {:?}", info.member, back.elapsed());
    assert!(
        scrape(inner_metrics).await.lines().any(|l| l == "mcp_health_cluster_degraded 0"),
        "the metric says no longer degraded"
    );
    for c in &clients[..2] {
        eventually("the survivors see it again", || config_status(c), |i| i.members.len() == 3).await;
    }
    // Back to one prober per backend: it stopped probing what it does not own.
    let probers = one_prober_each(&metrics_urls, "pool", &backends, || probes(&fixtures), 3).await;
    println!("rejoined: the replica probing each backend: {probers:?}");
    // Fenced: nothing was written under its old member id since the cut,
    // though its verdicts changed meanwhile (the flip above) and it is back.
    // Read once it probes only its share again, so any late write it had
    // queued has been tried: every verdict write from the cut to the latest.
    let (now, _) = etcd_client.range_prefix(&keys.verdicts()).await.expect("verdicts");
    let latest = now.iter().map(|kv| kv.mod_revision).max().expect("verdicts exist");
    let mut writes = std::pin::pin!(etcd_client.watch_prefix(&keys.verdicts(), cut_revision + 1).await.expect("watch"));
    let mut seen = 0;
    let read = tokio::time::timeout(PATIENCE, async {
        while let Some(item) = writes.next().await {
            for e in item.expect("watch").1 {
                let kv = e.kv.expect("kv");
                let v = VerdictRecord::decode(&kv.value).expect("verdict");
                assert_ne!(v.writer, ids[CUT], "a late verdict from the expired lease landed: {v:?}");
                seen += 1;
                if kv.mod_revision >= latest {
                    return;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the watch replays every write since the cut ({seen} read)");
    assert!(seen >= 2, "the survivors' writes since the cut are there ({seen})");
    assert!(inner.drain_log().iter().any(|l| l.contains("cluster degraded")), "the log says degraded");

    // And every replica answers Get the same.
    let mut answers = Vec::new();
    for c in &clients {
        answers.push(verdict_of(&eventually("READY", || group_health(c, "pool"), all_healthy).await));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
}

// ---------------------------------------------------------------------------
// 3. One scenario script, single node vs cluster: the same settled verdicts.

/// A group's settled verdict: generation, phase, each backend's status and
/// reason (by name). None: the group does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settled {
    generation: u64,
    phase: GroupPhase,
    backends: BTreeMap<String, (BackendStatus, ReasonCode)>,
}

impl Settled {
    fn of(g: &GroupHealth) -> Settled {
        Settled {
            generation: g.generation,
            phase: common::phase(g),
            backends: g.backends.iter().map(|b| (b.name.clone(), (common::status(b), common::reason(b)))).collect(),
        }
    }
}

enum Step {
    /// Apply the group with these backends: (name, fixture, path).
    Apply(&'static [(&'static str, usize, &'static str)]),
    /// Stop these fixtures (connections refused).
    Kill(&'static [usize]),
    /// Start them again on the same ports.
    Revive(&'static [usize]),
    /// A fixture answers every path this way.
    Behave(usize, Behavior),
    Delete,
}

const GROUP: &str = "scenario";
const FIXTURES: usize = 4;
/// Every fixture answers 404 on this path (a spec change moves a backend there).
const GONE: &str = "/gone";
const SCENARIO_INTERVAL_MS: u64 = 1000;
/// Settled: every replica reports the same verdict, unchanged this long (a
/// change shows within one interval of a step, plus jitter and etcd's round-trip).
const SETTLE: Duration = Duration::from_millis(3 * SCENARIO_INTERVAL_MS);

/// The scenario: each step, and the settled verdict expected after it.
fn scenario() -> Vec<(&'static str, Step, Option<Settled>)> {
    use BackendStatus::{Healthy as H, Unhealthy as U};
    use ReasonCode::{ConnectionRefused as Refused, HttpStatus, Ok as Good};
    let expect = |generation: u64, phase: GroupPhase, backends: &[(&str, BackendStatus, ReasonCode)]| {
        Some(Settled {
            generation,
            phase,
            backends: backends.iter().map(|(n, s, r)| (n.to_string(), (*s, *r))).collect(),
        })
    };
    const FOUR: &[(&str, usize, &str)] = &[("b0", 0, "/mcp"), ("b1", 1, "/mcp"), ("b2", 2, "/mcp"), ("b3", 3, "/mcp")];
    vec![
        (
            "apply four backends",
            Step::Apply(FOUR),
            expect(1, GroupPhase::Ready, &[("b0", H, Good), ("b1", H, Good), ("b2", H, Good), ("b3", H, Good)]),
        ),
        (
            "kill b1 and b2",
            Step::Kill(&[1, 2]),
            expect(
                1,
                GroupPhase::Degraded,
                &[("b0", H, Good), ("b1", U, Refused), ("b2", U, Refused), ("b3", H, Good)],
            ),
        ),
        (
            "kill b0 and b3 too",
            Step::Kill(&[0, 3]),
            expect(
                1,
                GroupPhase::Failed,
                &[("b0", U, Refused), ("b1", U, Refused), ("b2", U, Refused), ("b3", U, Refused)],
            ),
        ),
        (
            "bring them all back",
            Step::Revive(&[0, 1, 2, 3]),
            expect(1, GroupPhase::Ready, &[("b0", H, Good), ("b1", H, Good), ("b2", H, Good), ("b3", H, Good)]),
        ),
        (
            "b3 answers 500",
            Step::Behave(3, Behavior::Status(500)),
            expect(
                1,
                GroupPhase::Degraded,
                &[("b0", H, Good), ("b1", H, Good), ("b2", H, Good), ("b3", U, HttpStatus)],
            ),
        ),
        (
            "change the spec: b3 dropped, b2 moved to a path answering 404",
            Step::Apply(&[("b0", 0, "/mcp"), ("b1", 1, "/mcp"), ("b2", 2, GONE)]),
            expect(2, GroupPhase::Degraded, &[("b0", H, Good), ("b1", H, Good), ("b2", U, HttpStatus)]),
        ),
        ("delete the group", Step::Delete, None),
    ]
}

fn scenario_spec(backends: &[(&str, usize, &str)], fixtures: &[FixtureServer]) -> GroupSpec {
    let mut yaml = format!(
        "name: {GROUP}\npolicy:\n  interval: {}s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: 1\n  healthyThreshold: 1\nbackends:\n",
        SCENARIO_INTERVAL_MS as f64 / 1000.0
    );
    for (name, f, path) in backends {
        yaml.push_str(&format!("- name: {name}\n  url: {}\n", fixtures[*f].url_for(path)));
    }
    group_yaml(&yaml)
}

/// What one replica reports: the verdict, None when the group is gone, or
/// the error (which never settles).
async fn observe(client: &Client) -> Result<Option<Settled>, String> {
    match client.clone().get_group_health(GetGroupHealthRequest { group: GROUP.into() }).await {
        Ok(r) => Ok(r.into_inner().health.as_ref().map(Settled::of)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// Waits until every replica reports the same verdict and it stayed so for
/// `SETTLE`; that verdict. Independent of what the script expects.
async fn settle(clients: &[Client], what: &str) -> Option<Settled> {
    let deadline = Instant::now() + PATIENCE;
    let mut last: Option<Vec<Result<Option<Settled>, String>>> = None;
    let mut since = Instant::now();
    loop {
        let mut views = Vec::new();
        for c in clients {
            views.push(observe(c).await);
        }
        let agreed = views.iter().all(|v| v.is_ok() && *v == views[0]);
        if last.as_ref() != Some(&views) {
            last = Some(views);
            since = Instant::now();
        } else if agreed && since.elapsed() >= SETTLE {
            return views.swap_remove(0).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the replicas never settled on one verdict; last views: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the scenario against `clients` (one single node, or every replica
/// of a cluster) with fixtures of its own; the settled verdict after each
/// step. Mutations go to each replica in turn, so a cluster takes applies and
/// deletes on every replica.
async fn run_scenario(label: &str, clients: &[Client]) -> Vec<Option<Settled>> {
    let mut fixtures = Vec::new();
    for _ in 0..FIXTURES {
        let f = FixtureServer::start().await.expect("fixture");
        f.set_path_behavior(GONE, Behavior::Status(404));
        fixtures.push(f);
    }
    let mut observed = Vec::new();
    for (i, (what, step, _)) in scenario().into_iter().enumerate() {
        let target = &clients[i % clients.len()];
        match step {
            Step::Apply(backends) => {
                target
                    .clone()
                    .apply_group(apply_request(scenario_spec(backends, &fixtures)))
                    .await
                    .unwrap_or_else(|e| panic!("{label}: {what}: {e:?}"));
            }
            Step::Kill(which) => {
                for f in which {
                    fixtures[*f].stop().await;
                }
            }
            Step::Revive(which) => {
                for f in which {
                    fixtures[*f].resume().await.expect("resume fixture");
                }
            }
            Step::Behave(f, b) => fixtures[f].set_behavior(b),
            Step::Delete => {
                target
                    .clone()
                    .delete_group(DeleteGroupRequest { group: GROUP.into() })
                    .await
                    .unwrap_or_else(|e| panic!("{label}: {what}: {e:?}"));
            }
        }
        let started = Instant::now();
        let settled = settle(clients, &format!("{label}: {what}")).await;
        println!("{label}: {what}: settled in {:?}: {settled:?}", started.elapsed());
        observed.push(settled);
    }
    observed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_settles_the_same_on_a_single_node_and_on_a_cluster() {
    // (a) A single node with its redb store, no etcd.
    let data = tempfile::tempdir().expect("data dir");
    let data_arg = data.path().display().to_string();
    let single = Daemon::spawn(&["--data-dir", &data_arg]);
    let single_run = run_scenario("single node", &[single.client().await]).await;
    drop(single);

    // (b) Three replicas on a 3-node etcd.
    let etcd = EtcdCluster::start(3).await;
    let endpoints = etcd.endpoints_arg();
    let replicas: Vec<Daemon> = (0..3)
        .map(|_| Daemon::spawn(&["--etcd-endpoints", &endpoints, "--etcd-prefix", "/scenario", "--etcd-lease-ttl", "2"]))
        .collect();
    let mut clients = Vec::new();
    for r in &replicas {
        clients.push(r.client().await);
    }
    for c in &clients {
        eventually("three members", || config_status(c), |i| i.members.len() == 3).await;
    }
    let cluster_run = run_scenario("cluster of 3", &clients).await;

    // Step by step: the cluster settled where the single node did, and both
    // where the script says.
    for (i, (what, _, expected)) in scenario().into_iter().enumerate() {
        assert_eq!(cluster_run[i], single_run[i], "step {i} ({what}): the cluster and the single node differ");
        assert_eq!(single_run[i], expected, "step {i} ({what}): not the expected verdict");
    }
}
