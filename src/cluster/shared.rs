//! Shared verdicts, both ways, for the engine's `ClusterSeam`: local verdict
//! changes go out through the fenced `VerdictWriter` (one task, in order);
//! verdicts other replicas wrote come in from the `{prefix}/verdicts/` watch
//! and are handed to the engine. Ownership answers come from the member view.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::etcd::Etcd;
use super::follow::{Change, follow};
use super::keys::Keys;
use super::status::ClusterStatus;
use super::verdicts::{SharedVerdict, VerdictWriter};
use crate::engine::Engine;
use crate::engine::seam::{ClusterSeam, RemoteVerdict};
use crate::proto::etcd::mvccpb::KeyValue;
use crate::proto::v1::BackendHealth;

/// A local verdict change on its way to etcd.
struct Outgoing {
    group: String,
    backend: String,
    progress: String,
    health: BackendHealth,
}

/// The engine's view of the cluster.
#[derive(Debug)]
pub struct Seam {
    status: ClusterStatus,
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl std::fmt::Debug for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStatus").finish_non_exhaustive()
    }
}

impl ClusterSeam for Seam {
    fn owns(&self, group: &str, backend: &str) -> bool {
        self.status.with_view(|v| v.owns(group, backend))
    }

    fn verdict_changed(&self, group: &str, backend: &str, progress: &str, health: &BackendHealth) {
        // Unbounded so the owner task never waits; verdicts change rarely.
        let _ = self.outgoing.send(Outgoing {
            group: group.to_owned(),
            backend: backend.to_owned(),
            progress: progress.to_owned(),
            health: health.clone(),
        });
    }
}

/// The seam, and the receiving end `publish` drains.
pub fn seam(status: ClusterStatus) -> (Arc<Seam>, Publisher) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Seam { status, outgoing: tx }), Publisher { rx })
}

pub struct Publisher {
    rx: mpsc::UnboundedReceiver<Outgoing>,
}

impl Publisher {
    /// Writes local verdict changes, fenced, until `cancel`. A write etcd
    /// cannot take now (degraded) is dropped: the next change is written,
    /// and while degraded every replica probes for itself anyway.
    pub async fn run(mut self, writer: VerdictWriter, cancel: CancellationToken) {
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                n = self.rx.recv() => n,
            };
            let Some(o) = next else { return };
            if let Err(e) = writer.publish(&o.group, &o.backend, &o.progress, &o.health).await {
                warn!(group = %o.group, backend = %o.backend, error = %e, "cannot share a verdict");
            }
        }
    }
}

/// Feeds verdicts written by other replicas into `engine` until `cancel`.
pub async fn follow_verdicts(etcd: Etcd, keys: Keys, status: ClusterStatus, engine: Engine, cancel: CancellationToken) {
    let mut changes = follow(etcd, keys.verdicts(), None, status.clone(), cancel);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Reset(kvs) => {
                for kv in kvs {
                    take(&keys, &status, &engine, &kv).await;
                }
            }
            Change::Put(kv) => take(&keys, &status, &engine, &kv).await,
            // A group's verdicts go with the group; nothing to do here.
            Change::Delete(_) => {}
        }
    }
}

/// Feeds the shared verdicts of one group into `engine` (a group that just
/// arrived from another replica starts from them, not from UNKNOWN).
pub async fn seed_group(etcd: &Etcd, keys: &Keys, status: &ClusterStatus, engine: &Engine, group: &str) {
    match etcd.range_prefix(&keys.group_verdicts(group)).await {
        Ok((kvs, _)) => {
            for kv in kvs {
                take(keys, status, engine, &kv).await;
            }
        }
        Err(e) => {
            status.etcd_error();
            warn!(group, error = %e, "cannot read a group's shared verdicts; they arrive with their next change");
        }
    }
}

async fn take(keys: &Keys, status: &ClusterStatus, engine: &Engine, kv: &KeyValue) {
    let key = String::from_utf8_lossy(&kv.key);
    let Some((group, backend)) = keys.verdict_of(&key) else { return };
    let Some(v) = SharedVerdict::decode(&kv.value) else {
        return warn!(key = %key, "ignoring an undecodable shared verdict");
    };
    if status.with_view(|view| view.me.as_deref() == Some(v.writer.as_str())) {
        return;
    }
    let verdict = RemoteVerdict {
        progress: v.progress,
        health: v.health,
    };
    let _ = engine.remote_verdict(group.to_owned(), backend.to_owned(), verdict).await;
}
