//! More of cluster mode (issue 11) with real processes: etcd behind client
//! TLS (mTLS) and authentication; a replica cut off from etcd in a network
//! namespace of its own (fail-static, re-owning, fencing, rejoining); and one
//! scenario script whose settled verdicts must be the same on a single node
//! and on a 3-replica cluster.

mod common;
mod etcd_support;
mod lifecycle_bin;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::pki;
use common::{PATIENCE, apply_request, eventually, group_yaml};
use etcd_support::{EtcdCluster, EtcdConfig, EtcdTls};
use lifecycle_bin::Daemon;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer};
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::ownership;
use mcp_health::cluster::verdicts::SharedVerdict;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use rcgen::ExtendedKeyUsagePurpose;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

type Client = GroupHealthServiceClient<Channel>;

async fn get(client: &Client, group: &str) -> Option<GroupHealth> {
    client
        .clone()
        .get_group_health(GetGroupHealthRequest { group: group.into() })
        .await
        .ok()?
        .into_inner()
        .health
}

async fn config_status(client: &Client) -> Option<ClusterInfo> {
    client.clone().get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner().cluster
}

fn all_healthy(g: &GroupHealth) -> bool {
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

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
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
    etcdctl(&endpoint, &tls, None, &["role", "grant-permission", "mcp-tls", "--prefix=true", "readwrite", "/mcp-tls/"]);
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
    let info = eventually("joined over mTLS with a password", || config_status(&client), |i| !i.member.is_empty() && !i.degraded).await;
    assert_eq!(info.lease_ttl_seconds, 2);
    let fixture = FixtureServer::start().await.expect("fixture");
    let spec = group_yaml(&format!(
        "name: secure\npolicy:\n  interval: 1s\n  timeout: 0.8s\nbackends:\n- name: a\n  url: {}\n",
        fixture.url()
    ));
    let applied = client.clone().apply_group(apply_request(spec)).await.expect("apply over TLS + auth").into_inner();
    assert_eq!(applied.generation, 1);
    // READY means the probe's verdict went through the fenced write too.
    eventually("the group READY", || get(&client, "secure"), all_healthy).await;
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
    let g = get(&client_b, "secure").await.expect("read back from etcd by another replica");
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
    assert!(out.contains("authentication failed"), "names the cause: {out}");
    assert!(!out.contains(&wrong) && !out.contains(&password), "a password was printed: {out}");

    // A CA that did not sign etcd's certificate: a TLS error.
    let (status, out) = run_until_exit(&args("/mcp-tls", &other_ca, &right_file)).await;
    println!("wrong CA: {status}\n{out}");
    assert!(!status.success(), "{out}");
    assert!(out.contains("mcp-healthd cannot start"), "{out}");
    let lower = out.to_lowercase();
    assert!(lower.contains("tls") && lower.contains("certificate"), "names the TLS failure: {out}");
    assert!(!out.contains(&password), "{out}");
}
