//! The system under test: 3 etcd nodes, 3 mcp-healthd replicas (the real
//! binary), each in a network namespace of its own, and a fleet of fixture
//! MCP servers whose request log names the replica behind every probe.
//!
//! Addressing: two addresses on the host's loopback interface, the *fleet
//! address* (every backend listens there) and the *etcd address* (every etcd
//! node also listens there). Each namespace has three veth links:
//! [`ETCD_LINK`] routes the etcd address, [`FLEET_LINK`] the fleet address
//! (its namespace side is the replica's source address in the fleet's log),
//! [`CLIENT_LINK`] carries this harness' gRPC calls and is never cut. Cutting
//! a link cuts exactly one path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::{ClusterInfo, GetConfigStatusRequest};
use tonic::transport::{Channel, Endpoint};

use crate::etcd_support::{EtcdCluster, EtcdConfig};
use crate::netns_support::{NetNs, ip, ip_ok};

pub const ETCD_LINK: usize = 0;
pub const FLEET_LINK: usize = 1;
pub const CLIENT_LINK: usize = 2;
pub const PREFIX: &str = "/fault-schedule";
pub const TTL_S: u64 = 2;
pub const INTERVAL_MS: u64 = 1000;
pub const ADMIN_TOKEN: &str = "fault-schedule-admin-token";
const GRPC_PORT: u16 = 50051;

pub type Client = GroupHealthServiceClient<Channel>;

/// The fleet and etcd addresses, on the host's loopback interface (a
/// container may have no `dummy` link type); removed on drop.
struct HostAddrs {
    addrs: Vec<IpAddr>,
}

impl Drop for HostAddrs {
    fn drop(&mut self) {
        for a in &self.addrs {
            let _ = ip(&["addr", "del", &format!("{a}/32"), "dev", "lo"]);
        }
    }
}

pub struct Replica {
    pub ns: NetNs,
    child: Option<Child>,
    pub client: Client,
    log: PathBuf,
    /// libfaketime's timestamp file: the replica's wall-clock offset.
    clock: PathBuf,
}

impl Replica {
    /// The replica's source address in the fleet's request log.
    pub fn fleet_source(&self) -> IpAddr {
        self.ns.inner_side(FLEET_LINK)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct System {
    // Dropped in field order: replicas (namespaces) first, then the host addresses.
    pub replicas: Vec<Replica>,
    pub fleet: Vec<FixtureServer>,
    pub etcd: EtcdCluster,
    _host_addrs: HostAddrs,
    /// The replicas' logs and the admin token; kept after a failed run.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    bin: PathBuf,
    etcd_endpoints: String,
    /// libfaketime, preloaded into every replica (offset 0 until a clock jump).
    faketime: PathBuf,
}

/// Debian's libfaketime (package faketime), wherever the architecture puts it.
fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.exists())
}

impl System {
    pub async fn start(bin: &Path, backends: usize) -> System {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut replicas_ns: Vec<NetNs> = Vec::new();
        for _ in 0..3 {
            let skip: Vec<u8> = replicas_ns.iter().map(NetNs::subnet).collect();
            replicas_ns.push(NetNs::create_avoiding(3, &skip));
        }
        let s = replicas_ns[0].subnet();
        let fleet_ip = IpAddr::V4(Ipv4Addr::new(10, 214, s, 1));
        let etcd_ip = IpAddr::V4(Ipv4Addr::new(10, 214, s, 2));
        let mut host_addrs = HostAddrs { addrs: Vec::new() };
        for a in [fleet_ip, etcd_ip] {
            ip_ok(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            host_addrs.addrs.push(a);
        }
        for ns in &replicas_ns {
            ns.route_via(etcd_ip, ETCD_LINK);
            ns.route_via(fleet_ip, FLEET_LINK);
        }
        let etcd = EtcdCluster::start_with(
            3,
            EtcdConfig {
                tls: None,
                also_listen: Some(etcd_ip),
            },
        )
        .await;
        let etcd_endpoints = etcd.endpoints_on(etcd_ip).join(",");
        let mut fleet = Vec::new();
        for i in 0..backends {
            let opts = FixtureOptions {
                server_name: format!("fleet-{i}"),
                ..Default::default()
            };
            fleet.push(FixtureServer::start_on(SocketAddr::new(fleet_ip, 0), opts).await.expect("fleet server"));
        }
        std::fs::write(dir.path().join("admin-token"), ADMIN_TOKEN).expect("token file");
        let replicas = replicas_ns
            .into_iter()
            .enumerate()
            .map(|(i, ns)| {
                let addr = SocketAddr::new(ns.inner_side(CLIENT_LINK), GRPC_PORT);
                // connect_lazy: reconnects by itself after a replica restarts.
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .expect("endpoint")
                    .connect_timeout(Duration::from_secs(1))
                    .connect_lazy();
                Replica {
                    ns,
                    child: None,
                    client: GroupHealthServiceClient::new(channel),
                    log: dir.path().join(format!("replica-{i}.log")),
                    clock: dir.path().join(format!("replica-{i}.clock")),
                }
            })
            .collect();
        let faketime = libfaketime().unwrap_or_else(|| panic!("libfaketime not found (Debian's faketime package: scripts/setup-system.sh installs it)"));
        let mut system = System {
            faketime,
            replicas,
            fleet,
            etcd,
            _host_addrs: host_addrs,
            dir_path: dir.path().to_owned(),
            dir: Some(dir),
            bin: bin.to_owned(),
            etcd_endpoints,
        };
        for i in 0..3 {
            system.spawn_replica(i);
        }
        for i in 0..3 {
            system.wait_joined(i).await;
        }
        system
    }

    /// Keeps the replicas' logs (and the tail of etcd's) past the end of the
    /// run, for the replay's comparison; everything else still goes on drop.
    pub fn keep_logs(&mut self) -> PathBuf {
        let _ = std::fs::write(self.dir_path.join("etcd-tail.log"), self.etcd.logs());
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
        self.dir_path.clone()
    }

    pub fn spawn_replica(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        let listen = SocketAddr::new(r.ns.inner_side(CLIENT_LINK), GRPC_PORT).to_string();
        let token = self.dir_path.join("admin-token");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&r.log).expect("replica log");
        let ttl = TTL_S.to_string();
        // Under libfaketime: its realtime clock is offset by what the clock
        // file says (re-read every second), the monotonic clock is never
        // faked, so tokio's timers, leases' renewal and probe pacing run on.
        // A restart keeps the offset the file has.
        if !r.clock.exists() {
            std::fs::write(&r.clock, "+0").expect("clock file");
        }
        let child = Command::new("ip")
            .env("LD_PRELOAD", &self.faketime)
            .env("FAKETIME_TIMESTAMP_FILE", &r.clock)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .args(["netns", "exec", &r.ns.name])
            .arg(&self.bin)
            .args(["--listen", &listen, "--admin-token-file"])
            .arg(&token)
            .args(["--etcd-endpoints", &self.etcd_endpoints, "--etcd-prefix", PREFIX, "--etcd-lease-ttl", &ttl])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        r.child = Some(child);
    }

    /// Waits until replica `i` serves and has joined (a member id, not degraded).
    pub async fn wait_joined(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(info) = cluster_info(&self.replicas[i].client).await
                && !info.member.is_empty()
                && !info.degraded
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("replica {i} did not join; its log: {}", self.replicas[i].log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// kill -9 of replica `i`.
    pub fn kill_replica(&mut self, i: usize) {
        if let Some(mut c) = self.replicas[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // libfaketime's per-process segment and semaphore outlive a kill -9.
            for leftover in [format!("/dev/shm/faketime_shm_{}", c.id()), format!("/dev/shm/sem.faketime_sem_{}", c.id())] {
                let _ = std::fs::remove_file(leftover);
            }
        }
    }

    /// Sets replica `i`'s wall clock `seconds` off the real one (0: back).
    pub fn set_clock(&self, i: usize, seconds: i64) {
        std::fs::write(&self.replicas[i].clock, format!("{seconds:+}")).expect("clock file");
    }

    /// SIGSTOP (`stop`) or SIGCONT of replica `i`.
    pub fn pause_replica(&self, i: usize, stop: bool) {
        if let Some(pid) = self.replicas[i].pid() {
            // SAFETY: kill(2) with a pid this process spawned and still holds (not reaped).
            unsafe {
                libc::kill(pid as i32, if stop { libc::SIGSTOP } else { libc::SIGCONT });
            }
        }
    }

    /// The index of etcd's current leader, if one is known.
    pub fn etcd_leader(&self) -> Option<usize> {
        let endpoints = self.etcd.endpoints();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoints.join(","), "--command-timeout=2s", "endpoint", "status", "-w", "json"])
            .output()
            .ok()?;
        let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        statuses.as_array()?.iter().find_map(|s| {
            let st = &s["Status"];
            let is_leader = st["header"]["member_id"].as_u64().is_some() && st["header"]["member_id"] == st["leader"];
            let endpoint = s["Endpoint"].as_str()?;
            is_leader.then(|| endpoints.iter().position(|e| e == endpoint)).flatten()
        })
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            // A stopped process must be continued to die of SIGKILL promptly.
            self.pause_replica(i, false);
            self.kill_replica(i);
        }
    }
}

/// A request carrying the admin token (mutations off loopback need it).
pub fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    // A constant of visible ASCII: always a valid header value.
    r.metadata_mut()
        .insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().expect("ascii"));
    r.set_timeout(Duration::from_secs(3));
    r
}

pub async fn cluster_info(client: &Client) -> Option<ClusterInfo> {
    let mut req = tonic::Request::new(GetConfigStatusRequest {});
    req.set_timeout(Duration::from_secs(1));
    let mut client = client.clone();
    let call = client.get_config_status(req);
    tokio::time::timeout(Duration::from_secs(2), call).await.ok()?.ok()?.into_inner().cluster
}
