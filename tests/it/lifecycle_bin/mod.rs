//! Runs the real `mcp-healthd` binary for lifecycle and security tests:
//! spawn on 127.0.0.1:0, learn the address from its JSON log, signal it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use tonic::transport::Channel;

/// Generous: the binary may be slow to start on a loaded machine.
const START_PATIENCE: Duration = Duration::from_secs(60);

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

fn command(args: &[&str]) -> Command {
    command_in(None, args)
}

/// The binary, inside network namespace `netns` when set (`ip netns exec`
/// execs it, so the child's pid is the daemon's and signals reach it).
fn command_in(netns: Option<&str>, args: &[&str]) -> Command {
    command_of(env!("CARGO_BIN_EXE_mcp-healthd"), netns, args)
}

/// [`command_in`] with another build of the binary (an earlier release).
fn command_of(bin: &str, netns: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["--log-format", "json"])
        .args(args)
        .env("MCP_HEALTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Daemon {
    /// Starts the binary listening on 127.0.0.1:0 and waits until it serves.
    pub fn spawn(args: &[&str]) -> Daemon {
        Self::spawn_with_env(args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut full = vec!["--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        Self::start(command(&full).envs(env.iter().copied()))
    }

    /// Starts another build of the binary (`bin`, e.g. an earlier release) on 127.0.0.1:0.
    pub fn spawn_binary(bin: &str, args: &[&str]) -> Daemon {
        let mut full = vec!["--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        Self::start(&mut command_of(bin, None, &full))
    }

    /// Starts the binary inside network namespace `netns`, listening on `listen`
    /// (an address of that namespace), and waits until it serves.
    pub fn spawn_in_netns(netns: &str, listen: &str, args: &[&str]) -> Daemon {
        let mut full = vec!["--listen", listen];
        full.extend_from_slice(args);
        Self::start(&mut command_in(Some(netns), &full))
    }

    fn start(cmd: &mut Command) -> Daemon {
        let mut child = cmd.spawn().expect("spawn mcp-healthd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut log = Vec::new();
        loop {
            let Ok(line) = lines.recv_timeout(START_PATIENCE) else {
                let _ = child.kill();
                let status = child.wait();
                panic!("mcp-healthd did not start ({status:?}); log:\n{}", log.join("\n"));
            };
            let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            log.push(line);
            if json["message"] == "mcp-healthd serving" {
                let addr = json["addr"].as_str().expect("addr field").parse().expect("socket address");
                return Daemon { child, addr, lines, log };
            }
        }
    }

    pub async fn client(&self) -> GroupHealthServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.expect("connect");
        GroupHealthServiceClient::new(channel)
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits for the exit without blocking the runtime: the
    /// daemon's graceful shutdown needs this process's client connections to
    /// answer its GOAWAY.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "mcp-healthd did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its /metrics URL, from the start-up log (started with `--metrics-listen`).
    pub fn metrics_url(&self) -> String {
        let addr = self
            .log
            .iter()
            .find_map(|l| {
                let json: serde_json::Value = serde_json::from_str(l).ok()?;
                (json["message"] == "metrics serving on /metrics").then(|| json["addr"].as_str().map(str::to_owned))?
            })
            .expect("the metrics address is logged before serving");
        format!("http://{addr}/metrics")
    }

    /// Log lines received so far.
    pub fn drain_log(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to its exit (for start-up refusals): status and stderr.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let out = command(args).output().expect("run mcp-healthd");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}
