//! A real DNS server for tests and benchmarks: Debian's dnsmasq on 127.0.0.1
//! (installed by scripts/setup-system.sh), answering from a hosts file the
//! caller rewrites (SIGHUP re-reads it). Names under `.test` that the file
//! lacks get NXDOMAIN; nothing is forwarded anywhere.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    pub addr: SocketAddr,
    /// The arguments it was started with, for `restart`.
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/sbin"]) {
        let p = PathBuf::from(dir).join("dnsmasq");
        if p.is_file() {
            return p;
        }
    }
    panic!("dnsmasq not found: run scripts/setup-system.sh (apt package dnsmasq-base)");
}

fn free_port() -> u16 {
    // UDP and TCP both: dnsmasq listens on both at this port.
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dnsmasq {
    /// Starts dnsmasq answering `hosts` (hosts-file lines) with TTL `ttl_secs`.
    pub fn start(hosts: &str, ttl_secs: u32) -> Dnsmasq {
        Dnsmasq::start_with(hosts, ttl_secs, &[])
    }

    /// `start` with more dnsmasq options, e.g.
    /// `--srv-host=_mcp._tcp.pods.test,a.test,8081,10,60` (name, target, port,
    /// priority, weight; these are read at start only, not at SIGHUP).
    pub fn start_with(hosts: &str, ttl_secs: u32, extra: &[&str]) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq drops privileges to `nobody` when started as root: it must still read the file.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let port = free_port();
        let mut args: Vec<String> = [
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            format!("--port={port}"),
            "--listen-address=127.0.0.1".to_owned(),
            "--bind-interfaces".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--no-negcache".to_owned(),
            "--local=/test/".to_owned(),
            format!("--addn-hosts={}", file.display()),
            format!("--local-ttl={ttl_secs}"),
            "--log-facility=-".to_owned(),
            "--pid-file=".to_owned(),
        ]
        .into();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let child = spawn(&args, log);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let d = Dnsmasq {
            child,
            hosts: file,
            addr,
            args,
            _dir: dir,
        };
        d.wait_ready(1);
        d
    }

    fn wait_ready(&self, reads: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "dnsmasq did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        // Ready only once it has read its hosts file: a query before that
        // would not be answered from it.
        self.wait_reads(reads);
    }

    /// Kills dnsmasq (SIGKILL): queries to its address go unanswered until `restart`.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same address with the same options and the
    /// hosts file as it is now.
    pub fn restart(&mut self) {
        let reads = self.log().matches(&format!("read {}", self.hosts.display())).count();
        let log = std::fs::OpenOptions::new().append(true).open(self.hosts.with_file_name("log")).unwrap();
        self.child = spawn(&self.args, log);
        self.wait_ready(reads + 1);
    }

    /// Replaces the hosts file and makes dnsmasq re-read it (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// What dnsmasq logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.hosts.with_file_name("log")).unwrap_or_default()
    }

    /// Waits until dnsmasq logged that it read the hosts file `times` times
    /// in all (once at start, once per SIGHUP).
    pub fn wait_reads(&self, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let needle = format!("read {}", self.hosts.display());
        while self.log().matches(&needle).count() < times {
            assert!(Instant::now() < deadline, "dnsmasq did not re-read its hosts: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Dnsmasq {
    /// Queries dnsmasq answered so far (from its SIGUSR1 statistics).
    pub fn queries(&self) -> u64 {
        let before = self.log().matches("queries answered locally").count();
        let status = Command::new("kill").args(["-USR1", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.matches("queries answered locally").count() > before {
                let line = log.lines().rev().find(|l| l.contains("queries answered locally")).unwrap_or_default();
                // "queries forwarded N, queries answered locally M"
                return line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .skip(1)
                    .map(|n| n.parse::<u64>().unwrap_or(0))
                    .sum();
            }
            assert!(Instant::now() < deadline, "dnsmasq printed no statistics: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(args: &[String], log: std::fs::File) -> Child {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start dnsmasq")
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
