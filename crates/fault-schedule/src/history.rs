//! The recorder: everything the checker judges, as it happened. Mutations
//! with their replies, every event under the cluster's etcd prefix (from a
//! watch), every Watch message of every replica, the replicas' own account
//! of membership and degradation, the faults, and the fleet's request log.
//! All instants are this process' monotonic clock.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_health::cluster::etcd::Etcd;
use mcp_health::proto::etcd::mvccpb::event::EventType;
use mcp_health::proto::v1::{WatchEventKind, WatchGroupHealthRequest};

use crate::sut::{Client, cluster_info};

/// What a mutation asked for.
#[derive(Clone, Debug)]
pub enum OpKind {
    /// ApplyGroup with this nonce (the spec's `initialSpread` in µs) and these backends.
    Apply {
        nonce: u32,
        backends: Vec<String>,
    },
    Delete,
    Drain {
        backend: String,
        drain: bool,
    },
}

/// What the reply says about whether it took effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// OK: committed (a write when `changed`) at this generation.
    Acked { generation: u64, changed: bool },
    /// A reply that says nothing was written (NOT_FOUND, INVALID_ARGUMENT, ...).
    Failed(String),
    /// Timeout, UNAVAILABLE and the like: it may or may not have committed.
    Indeterminate(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub group: String,
    pub replica: usize,
    pub kind: OpKind,
    pub outcome: Outcome,
}

/// One event under the prefix, as the recorder's watch delivered it.
#[derive(Clone, Debug)]
pub struct EtcdEvent {
    pub arrived: Instant,
    pub put: bool,
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Clone, Debug)]
pub struct WatchMessage {
    pub replica: usize,
    /// Which stream of that replica (a new one after each reconnect).
    pub stream: u64,
    pub kind: i32,
    pub revision: u64,
}

/// A replica's own answer to GetConfigStatus.
#[derive(Clone, Debug)]
pub struct StatusSample {
    pub at: Instant,
    pub replica: usize,
    pub member: String,
    pub degraded: bool,
}

#[derive(Clone, Debug)]
pub enum FaultKind {
    KillReplica(usize),
    PauseReplica(usize),
    PartitionEtcd(usize),
    PartitionFleet(usize),
    PartitionBoth(usize),
    KillEtcd {
        node: usize,
        leader: bool,
    },
    KillBackends(Vec<usize>),
    /// The replica's wall clock (realtime only, libfaketime) jumped by
    /// `seconds`, and back at the heal; its monotonic clock runs on.
    ClockJump {
        replica: usize,
        seconds: i64,
    },
}

impl FaultKind {
    /// Every kind's label, as the report counts them.
    pub const LABELS: [&'static str; 9] = [
        "kill -9 replica",
        "SIGSTOP replica past lease",
        "partition replica/etcd",
        "partition replica/fleet",
        "partition replica/both",
        "kill etcd leader",
        "kill etcd member",
        "kill backends",
        "wall-clock jump",
    ];

    pub fn label(&self) -> &'static str {
        let i = match self {
            FaultKind::KillReplica(_) => 0,
            FaultKind::PauseReplica(_) => 1,
            FaultKind::PartitionEtcd(_) => 2,
            FaultKind::PartitionFleet(_) => 3,
            FaultKind::PartitionBoth(_) => 4,
            FaultKind::KillEtcd { leader: true, .. } => 5,
            FaultKind::KillEtcd { leader: false, .. } => 6,
            FaultKind::KillBackends(_) => 7,
            FaultKind::ClockJump { .. } => 8,
        };
        Self::LABELS[i]
    }
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub start: Instant,
    pub healed: Instant,
    /// Heal until every replica agreed (None: never within the cap).
    pub converged: Option<Duration>,
    /// Whether the fault was seen to take (a clock jump in the replica's
    /// probe times); always true for the others.
    pub took: bool,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub backend: usize,
    pub source: Option<IpAddr>,
}

#[derive(Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub events: Vec<EtcdEvent>,
    pub watch: Vec<WatchMessage>,
    pub status: Vec<StatusSample>,
    pub faults: Vec<Fault>,
    pub requests: Vec<Request>,
    /// The last etcd revision the recorder's watch reached.
    pub watched_revision: i64,
}

pub type Shared = Arc<Mutex<History>>;

pub fn lock(h: &Shared) -> std::sync::MutexGuard<'_, History> {
    // A poisoned lock means a recorder task panicked; its partial record is still worth checking.
    h.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records every event under `prefix`, from revision 1 (nothing is compacted
/// during a run), resuming after the last revision seen whenever the watch breaks.
pub async fn record_etcd(etcd: Etcd, prefix: String, history: Shared, stop: Stop) {
    let mut next = 1;
    while !stop.stopped() {
        let stream = match etcd.watch_prefix(&prefix, next).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = stop.wait() => return,
            };
            let Some(Ok((revision, events))) = item else { break };
            let arrived = Instant::now();
            let mut h = lock(&history);
            for e in events {
                let Some(kv) = e.kv else { continue };
                next = next.max(kv.mod_revision + 1);
                h.events.push(EtcdEvent {
                    arrived,
                    put: e.r#type == EventType::Put as i32,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: kv.value,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    lease: kv.lease,
                });
            }
            // A progress notification (no events) says the watch reached `revision`.
            h.watched_revision = h.watched_revision.max(revision).max(next - 1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keeps a WatchGroupHealth stream (every group) open on replica `i`,
/// reopening it whenever it ends, and records each message.
pub async fn record_watch(i: usize, client: Client, history: Shared, stop: Stop) {
    let mut stream_id = 0;
    while !stop.stopped() {
        stream_id += 1;
        let mut req = tonic::Request::new(WatchGroupHealthRequest { group: String::new() });
        req.set_timeout(Duration::from_secs(3600));
        let opened = tokio::time::timeout(Duration::from_secs(2), client.clone().watch_group_health(req)).await;
        let Ok(Ok(stream)) = opened else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        loop {
            let m = tokio::select! {
                m = stream.message() => m,
                () = stop.wait() => return,
            };
            let Ok(Some(m)) = m else { break };
            lock(&history).watch.push(WatchMessage {
                replica: i,
                stream: stream_id,
                kind: m.kind,
                revision: m.revision,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks replica `i` for its member id and degradation every 250 ms.
pub async fn record_status(i: usize, client: Client, history: Shared, stop: Stop) {
    while !stop.stopped() {
        if let Some(info) = cluster_info(&client).await {
            lock(&history).status.push(StatusSample {
                at: Instant::now(),
                replica: i,
                member: info.member,
                degraded: info.degraded,
            });
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = stop.wait() => return,
        }
    }
}

pub fn is_snapshot(kind: i32) -> bool {
    kind == WatchEventKind::Snapshot as i32
}

/// A stop signal for the recorder tasks (a watch channel, no extra crate).
mod stop_signal {
    #[derive(Clone)]
    pub struct Stop(tokio::sync::watch::Receiver<bool>);

    pub fn stop_pair() -> (tokio::sync::watch::Sender<bool>, Stop) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Stop(rx))
    }

    impl Stop {
        pub fn stopped(&self) -> bool {
            *self.0.borrow()
        }

        pub async fn wait(&self) {
            let mut rx = self.0.clone();
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

pub use stop_signal::{Stop, stop_pair};
