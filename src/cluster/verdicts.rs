//! Shared verdicts: the owner of a backend publishes its verdict to
//! `{prefix}/verdicts/{group}/{backend}` when it changes (status, reason or
//! progress, not every probe), fenced by its lease: the transaction commits
//! only if the writer's member key still exists under that lease, so a
//! replica that was paused or cut off past its TTL can never overwrite a
//! fresher verdict. Every replica follows the prefix and feeds the verdicts
//! of backends it does not own into its engine.

use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::etcd::{Etcd, EtcdError, lease_is, put_op};
use super::keys::Keys;
use super::status::ClusterStatus;
use crate::proto::etcd::etcdserverpb::TxnRequest;
use crate::proto::v1::BackendHealth;

/// A backend's verdict as the cluster shares it (JSON in etcd, readable with etcdctl).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharedVerdict {
    /// The member id that wrote it.
    pub writer: String,
    /// Progress toward the next threshold (the verdict's hysteresis state).
    pub progress: String,
    /// Status, reason, counters, last probe, server facts.
    pub health: BackendHealth,
}

impl SharedVerdict {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<SharedVerdict> {
        serde_json::from_slice(bytes).ok()
    }
}

/// What became of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Committed,
    /// The fence refused it: this replica's lease is gone (paused, cut off).
    Fenced,
    /// Not joined, or degraded: nothing was written.
    Skipped,
}

/// Writes this replica's verdicts, fenced by its lease.
#[derive(Clone)]
pub struct VerdictWriter {
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
}

impl VerdictWriter {
    pub fn new(etcd: Etcd, keys: Keys, status: ClusterStatus) -> VerdictWriter {
        VerdictWriter { etcd, keys, status }
    }

    pub fn status(&self) -> &ClusterStatus {
        &self.status
    }

    pub async fn publish(&self, group: &str, backend: &str, progress: &str, health: &BackendHealth) -> Result<Published, EtcdError> {
        let view = self.status.view();
        let Some(me) = view.me.clone() else { return Ok(Published::Skipped) };
        if view.degraded.is_some() {
            return Ok(Published::Skipped);
        }
        let verdict = SharedVerdict {
            writer: me.clone(),
            progress: progress.to_owned(),
            health: health.clone(),
        };
        self.publish_as(&me, view.lease, group, backend, &verdict).await
    }

    /// The fenced write itself, as member `me` holding `lease`.
    pub async fn publish_as(&self, me: &str, lease: i64, group: &str, backend: &str, verdict: &SharedVerdict) -> Result<Published, EtcdError> {
        let req = TxnRequest {
            compare: vec![lease_is(&self.keys.member(me), lease)],
            success: vec![put_op(&self.keys.verdict(group, backend), verdict.encode(), 0)],
            failure: vec![],
        };
        let resp = self.etcd.txn(req).await.inspect_err(|_| self.status.etcd_error())?;
        if resp.succeeded {
            self.status.counters.verdicts_published.fetch_add(1, Ordering::Relaxed);
            debug!(group, backend, status = verdict.health.status, "verdict shared");
            Ok(Published::Committed)
        } else {
            self.status.counters.verdicts_fenced.fetch_add(1, Ordering::Relaxed);
            warn!(group, backend, member = me, "late verdict rejected by the fence: this replica's lease is gone");
            Ok(Published::Fenced)
        }
    }
}
