//! Shared helpers for integration tests: a daemon on 127.0.0.1:0 with a real
//! tonic client, YAML specs, and polling until a condition holds.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::proto::grpc_health_v1::health_client::HealthClient;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tonic::transport::Channel;

pub mod pki;
pub mod probers;

/// Generous bound for conditions that depend on real probes; tests assert on
/// outcomes, never on how long they took.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn install_crypto() {
    // Ignored error: another test in this process installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub addr: std::net::SocketAddr,
    pub client: GroupHealthServiceClient<Channel>,
    pub health: HealthClient<Channel>,
}

impl TestDaemon {
    pub async fn start(opts: DaemonOptions) -> TestDaemon {
        install_crypto();
        let opts = DaemonOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..opts
        };
        let daemon = Daemon::start(opts).await.expect("daemon starts");
        let addr = daemon.local_addr();
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
        TestDaemon {
            daemon: Some(daemon),
            addr,
            client: GroupHealthServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }
    }

    /// A daemon with no config file; groups come from `apply`.
    pub async fn empty() -> TestDaemon {
        Self::start(DaemonOptions::default()).await
    }

    pub async fn apply(&mut self, spec: GroupSpec) -> ApplyGroupResponse {
        self.client.apply_group(apply_request(spec)).await.expect("apply").into_inner()
    }

    /// Applies a spec that must be refused, returning the refusal.
    pub async fn apply_err(&mut self, spec: GroupSpec) -> tonic::Status {
        self.client.apply_group(apply_request(spec)).await.expect_err("apply refused")
    }

    pub async fn apply_yaml(&mut self, yaml: &str) -> ApplyGroupResponse {
        self.apply(group_yaml(yaml)).await
    }

    pub async fn get(&mut self, group: &str) -> GroupHealth {
        self.client
            .get_group_health(GetGroupHealthRequest { group: group.into() })
            .await
            .expect("get")
            .into_inner()
            .health
            .expect("health")
    }

    /// Polls the group until `pred` holds, returning the matching health.
    pub async fn wait_group(&self, group: &str, what: &str, pred: impl Fn(&GroupHealth) -> bool) -> GroupHealth {
        let client = self.client.clone();
        let group = group.to_owned();
        eventually(
            what,
            || {
                let mut client = client.clone();
                let group = group.clone();
                async move { client.get_group_health(GetGroupHealthRequest { group }).await.ok()?.into_inner().health }
            },
            pred,
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await.expect("clean stop");
        }
    }
}

/// Records every (backend, status) a watch of `group` shows until stopped
/// (through the sender); panics if the watch ends first.
pub fn watch_statuses(
    client: &GroupHealthServiceClient<Channel>,
    group: &str,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Vec<(String, i32)>>) {
    use tokio_stream::StreamExt;
    let (client, group) = (client.clone(), group.to_owned());
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut stream = client
            .clone()
            .watch_group_health(WatchGroupHealthRequest { group })
            .await
            .expect("watch")
            .into_inner();
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop => return seen,
                m = stream.next() => match m {
                    Some(Ok(m)) => seen.extend(m.groups.iter().flat_map(|g| g.backends.iter().map(|b| (b.name.clone(), b.status)))),
                    other => panic!("a watch ended: {other:?}"),
                },
            }
        }
    });
    (stop_tx, task)
}

/// An ApplyGroup request that really applies (not `validate_only`).
/// A group's health as `GetGroupHealth` answers it, None on any error
/// (not there yet, or a replica that is down): for `eventually`.
pub async fn group_health(client: &GroupHealthServiceClient<Channel>, group: &str) -> Option<GroupHealth> {
    client
        .clone()
        .get_group_health(GetGroupHealthRequest { group: group.into() })
        .await
        .ok()?
        .into_inner()
        .health
}

pub fn apply_request(spec: GroupSpec) -> ApplyGroupRequest {
    ApplyGroupRequest {
        spec: Some(spec),
        validate_only: false,
    }
}

/// Parses a GroupSpec written in the proto3 JSON mapping, as YAML.
pub fn group_yaml(yaml: &str) -> GroupSpec {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test yaml: {e}\n{yaml}"))
}

/// Polls `probe` every 20 ms until `pred` holds, or fails after `PATIENCE`
/// with the last value seen.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(what: &str, mut probe: F, pred: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        if let Some(v) = probe().await {
            if pred(&v) {
                return v;
            }
            last = Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; last value: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn backend<'a>(h: &'a GroupHealth, name: &str) -> &'a BackendHealth {
    h.backends
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("backend {name} not in {h:#?}"))
}

pub fn phase(h: &GroupHealth) -> GroupPhase {
    GroupPhase::try_from(h.phase).unwrap()
}

pub fn status(b: &BackendHealth) -> BackendStatus {
    BackendStatus::try_from(b.status).unwrap()
}

pub fn reason(b: &BackendHealth) -> ReasonCode {
    ReasonCode::try_from(b.reason.as_ref().map_or(0, |r| r.code)).unwrap()
}
