//! A daemon that fails loudly: a failed start leaves nothing running (store
//! lock, listeners), and a server whose listener dies makes `mcp-healthd` exit
//! non-zero with a log line saying why.

use crate::common;
use crate::lifecycle_bin;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use mcp_health::api::tls::ServerTls;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::store::RedbStore;

/// A loopback address nobody listens on right now (bound, then released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out = format!("{out}: {c}");
        cause = c.source();
    }
    out
}

#[tokio::test]
async fn a_bad_tls_key_names_the_file_and_leaves_nothing_running() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (_, issuer) = common::pki::ca("test ca");
    let (cert_pem, _) = common::pki::leaf(&["127.0.0.1"], rcgen::ExtendedKeyUsagePurpose::ServerAuth, &issuer);
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server-key.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nthis is not base64 !!\n-----END PRIVATE KEY-----\n").unwrap();
    let data_dir = dir.path().join("data");
    let (health, metrics) = (free_addr(), free_addr());

    let err = Daemon::start(DaemonOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(data_dir.clone()),
        tls: Some(ServerTls {
            cert,
            key: key.clone(),
            client_ca: None,
        }),
        health_listen: Some(health),
        metrics_listen: Some(metrics),
        ..DaemonOptions::default()
    })
    .await
    .err()
    .expect("a malformed key must refuse to start");
    let message = error_chain(&err);
    assert!(message.contains("--tls-key") && message.contains(&key.display().to_string()), "{message}");

    // Nothing outlived the attempt: the store opens at once, the ports are free.
    RedbStore::open(&data_dir).expect("the store lock was released");
    TcpListener::bind(health).expect("the --health-listen port was released");
    TcpListener::bind(metrics).expect("the --metrics-listen port was released");
}

/// A start that fails late releases what it had acquired through the same
/// path as a stop: here the status page's port is taken, the last listener
/// bound, after the store was opened and the other three listeners bound.
#[tokio::test]
async fn a_start_failing_at_its_last_listener_releases_the_store_and_the_other_ports() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (grpc, health, metrics) = (free_addr(), free_addr(), free_addr());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let ui = taken.local_addr().unwrap();

    let err = Daemon::start(DaemonOptions {
        listen: grpc,
        data_dir: Some(data_dir.clone()),
        health_listen: Some(health),
        metrics_listen: Some(metrics),
        ui_listen: Some(ui),
        ..DaemonOptions::default()
    })
    .await
    .err()
    .expect("the status page's port is taken");
    let message = error_chain(&err);
    assert!(message.contains("status page") && message.contains(&ui.to_string()), "{message}");

    RedbStore::open(&data_dir).expect("the store lock was released");
    TcpListener::bind(grpc).expect("the --listen port was released");
    TcpListener::bind(health).expect("the --health-listen port was released");
    TcpListener::bind(metrics).expect("the --metrics-listen port was released");
}

/// Later still: the engine runs and has restored the stored groups when the
/// config file turns out invalid. The engine is stopped (it held the store)
/// and the ports are free.
#[tokio::test]
async fn a_start_failing_after_the_engine_started_releases_it_the_store_and_the_ports() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("groups.yaml");
    let (grpc, metrics) = (free_addr(), free_addr());
    let d = Daemon::start(DaemonOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(data_dir.clone()),
        ..DaemonOptions::default()
    })
    .await
    .unwrap();
    let group = common::group_yaml("name: stored\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/a\n");
    let group = mcp_health::spec::validate_group(&group, "spec", d.engine().limits()).unwrap();
    d.engine().apply(group, mcp_health::engine::Origin::Api).await.unwrap();
    d.stop().await.unwrap();
    std::fs::write(&config, "groups: [this is not a group\n").unwrap();

    let err = Daemon::start(DaemonOptions {
        listen: grpc,
        config: Some(config.clone()),
        data_dir: Some(data_dir.clone()),
        metrics_listen: Some(metrics),
        ..DaemonOptions::default()
    })
    .await
    .err()
    .expect("an invalid config file refuses the start");
    let message = error_chain(&err);
    assert!(message.contains(&config.display().to_string()), "{message}");

    let store = RedbStore::open(&data_dir).expect("the engine was stopped and the store lock released");
    assert_eq!(store.load().unwrap().len(), 1, "the stored group was restored, not lost");
    TcpListener::bind(grpc).expect("the --listen port was released");
    TcpListener::bind(metrics).expect("the --metrics-listen port was released");
}

/// Kills the listening socket on `port` inside process `pid` from outside:
/// takes a duplicate of its descriptor (pidfd_getfd) and shuts it down, after
/// which the daemon's accept fails for good (EINVAL), as a dead listener does.
fn kill_listener(pid: u32, port: u16) {
    let inodes: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is column 9.
            let local_port = u16::from_str_radix(cols[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port && cols[3] == "0A").then(|| cols[9].to_owned())
        })
        .collect();
    assert_eq!(inodes.len(), 1, "one listening socket on port {port}");
    let target = format!("socket:[{}]", inodes[0]);
    let fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .expect("the listener's descriptor");
    // SAFETY: plain syscalls on descriptors this function owns; results checked.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) as i32;
        assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        assert!(dup >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        assert_eq!(libc::shutdown(dup, libc::SHUT_RDWR), 0, "shutdown: {}", std::io::Error::last_os_error());
        libc::close(dup);
        libc::close(pidfd);
    }
}

fn addr_logged(d: &mut lifecycle_bin::Daemon, message: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = d.drain_log().iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            (json["message"] == message).then(|| json["addr"].as_str()?.parse().ok())?
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(Instant::now() < deadline, "no log line {message:?}: {:?}", d.log);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the binary with all three listeners, kills one, and expects a
/// non-zero exit with a log line naming the server that stopped.
#[track_caller]
fn check_dead_listener(which: &str) {
    let mut d = lifecycle_bin::Daemon::spawn(&["--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]);
    let addr = match which {
        "grpc" => d.addr,
        "grpc.health.v1 (--health-listen)" => addr_logged(&mut d, "grpc.health.v1 also served in plaintext (--health-listen)"),
        "metrics (--metrics-listen)" => addr_logged(&mut d, "metrics serving on /metrics"),
        other => panic!("unknown server {other}"),
    };
    kill_listener(d.child.id(), addr.port());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mcp-healthd kept running with a dead {which} listener; log:\n{}",
            d.drain_log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{which}: {status:?}");
    // The reader thread may still hold the last lines: wait for the one that says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = format!("the {which} server on {addr} stopped on its own");
    while !d.drain_log().iter().any(|l| l.contains("a server stopped on its own") && l.contains(&why)) {
        assert!(Instant::now() < deadline, "no log line saying why ({why}):\n{}", d.log.join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dead_listener_makes_the_daemon_exit_non_zero() {
    check_dead_listener("grpc");
    check_dead_listener("grpc.health.v1 (--health-listen)");
    check_dead_listener("metrics (--metrics-listen)");
}
