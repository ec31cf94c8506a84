//! Real etcd nodes for cluster tests: Debian's `etcd` (3.4, installed by
//! scripts/setup-etcd.sh) on 127.0.0.1 with free ports, one data dir each in
//! a temp dir; nodes can be killed and restarted with their data. Optionally
//! with client TLS (mTLS) and on one more local address (`EtcdConfig`).
#![allow(dead_code)]

use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcp_health::cluster::ClusterOptions;
use mcp_health::cluster::etcd::Etcd;

/// Where the etcd server binary is (Debian's etcd-server package).
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Node {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// Client TLS of every node (PEM files): etcd's server certificate, and the
/// CA it requires client certificates from (`--client-cert-auth`, mTLS).
/// `client_cert`/`client_key` are what the test's own clients present.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// How the nodes serve clients, beyond plain http on 127.0.0.1.
#[derive(Clone, Debug, Default)]
pub struct EtcdConfig {
    pub tls: Option<EtcdTls>,
    /// Client ports also listen on this local address (e.g. a veth end), same port.
    pub also_listen: Option<IpAddr>,
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    token: String,
    config: EtcdConfig,
}

impl EtcdCluster {
    /// Starts `n` nodes and waits until the cluster answers.
    pub async fn start(n: usize) -> EtcdCluster {
        Self::start_with(n, EtcdConfig::default()).await
    }

    /// [`EtcdCluster::start`], listening also on `addr` (a network
    /// namespace's link, for a replica inside it), without TLS.
    pub async fn start_also_on(n: usize, addr: IpAddr) -> EtcdCluster {
        Self::start_with(
            n,
            EtcdConfig {
                tls: None,
                also_listen: Some(addr),
            },
        )
        .await
    }

    /// [`EtcdCluster::start`] with TLS and/or another listen address.
    pub async fn start_with(n: usize, config: EtcdConfig) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let token = format!("t{}", std::process::id());
        let mut cluster = EtcdCluster { dir, nodes, token, config };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_ready().await;
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let initial = self
            .nodes
            .iter()
            .map(|n| format!("{}=http://127.0.0.1:{}", n.name, n.peer))
            .collect::<Vec<_>>()
            .join(",");
        let node = &self.nodes[i];
        let data = self.dir.path().join(&node.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", node.name)))
            .expect("log file");
        let client = format!("{}://127.0.0.1:{}", self.scheme(), node.client);
        let listen = match self.config.also_listen {
            Some(ip) => format!("{client},{}://{ip}:{}", self.scheme(), node.client),
            None => client.clone(),
        };
        let peer = format!("http://127.0.0.1:{}", node.peer);
        let mut cmd = Command::new(etcd_binary());
        if let Some(tls) = &self.config.tls {
            cmd.arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &node.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &listen, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &self.token,
            ])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (install it with scripts/setup-etcd.sh): {e}", etcd_binary()));
        self.nodes[i].child = Some(child);
    }

    fn scheme(&self) -> &'static str {
        if self.config.tls.is_some() { "https" } else { "http" }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints_on("127.0.0.1".parse().unwrap())
    }

    /// The client URLs on `ip` (127.0.0.1 or `EtcdConfig::also_listen`).
    pub fn endpoints_on(&self, ip: IpAddr) -> Vec<String> {
        self.nodes.iter().map(|n| format!("{}://{ip}:{}", self.scheme(), n.client)).collect()
    }

    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    pub fn options(&self, prefix: &str, ttl_secs: u64) -> ClusterOptions {
        ClusterOptions {
            endpoints: self.endpoints(),
            prefix: prefix.to_owned(),
            ca_cert: self.config.tls.as_ref().map(|t| t.ca.clone()),
            client_cert: self.config.tls.as_ref().map(|t| (t.client_cert.clone(), t.client_key.clone())),
            user: None,
            lease_ttl: Duration::from_secs(ttl_secs),
        }
    }

    pub async fn client(&self) -> Etcd {
        Etcd::connect(&self.options("/", 5)).await.expect("etcd client")
    }

    /// Waits until a linearizable read succeeds.
    pub async fn wait_ready(&self) {
        let etcd = self.client().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match etcd.range_prefix("/ready-check").await {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() > deadline => panic!("etcd did not become ready: {e}\n{}", self.logs()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// kill -9 of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts node `i` with its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!("--- {} ---\n{}", n.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
