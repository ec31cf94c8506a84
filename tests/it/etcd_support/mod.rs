//! Real etcd nodes for cluster tests: Debian's `etcd` (3.4, installed by
//! scripts/setup-etcd.sh) on 127.0.0.1 with free ports, one data dir each in
//! a temp dir; nodes can be killed and restarted with their data.
#![allow(dead_code)]

use std::net::TcpListener;
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

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    token: String,
}

impl EtcdCluster {
    /// Starts `n` nodes and waits until the cluster answers.
    pub async fn start(n: usize) -> EtcdCluster {
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
        let mut cluster = EtcdCluster { dir, nodes, token };
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
        let client = format!("http://127.0.0.1:{}", node.client);
        let peer = format!("http://127.0.0.1:{}", node.peer);
        let child = Command::new(etcd_binary())
            .args(["--name", &node.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
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

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("http://127.0.0.1:{}", n.client)).collect()
    }

    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    pub fn options(&self, prefix: &str, ttl_secs: u64) -> ClusterOptions {
        ClusterOptions {
            endpoints: self.endpoints(),
            prefix: prefix.to_owned(),
            ca_cert: None,
            client_cert: None,
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
