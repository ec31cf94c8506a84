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
use super::record::VerdictRecord;
use super::status::ClusterStatus;
use crate::etcd_api::etcdserverpb::TxnRequest;
use mcp_health_engine::seam::SharedVerdict;

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

    pub async fn publish(&self, group: &str, backend: &str, verdict: &SharedVerdict) -> Result<Published, EtcdError> {
        let view = self.status.view();
        let Some(me) = view.me.clone() else { return Ok(Published::Skipped) };
        if view.degraded.is_some() {
            return Ok(Published::Skipped);
        }
        let record = VerdictRecord {
            writer: me.clone(),
            verdict: verdict.clone(),
        };
        // The newest format every live member reads (see `record`).
        self.publish_as(&me, view.lease, group, backend, &record, view.record_version()).await
    }

    /// The fenced write itself, as member `me` holding `lease`, in record `version`.
    pub async fn publish_as(&self, me: &str, lease: i64, group: &str, backend: &str, record: &VerdictRecord, version: u32) -> Result<Published, EtcdError> {
        let req = TxnRequest {
            compare: vec![lease_is(&self.keys.member(me), lease)],
            success: vec![put_op(&self.keys.verdict(group, backend), record.encode(version), 0)],
            failure: vec![],
        };
        let resp = self.etcd.txn(req).await.inspect_err(|_| self.status.etcd_error())?;
        if resp.succeeded {
            self.status.counters.verdicts_published.fetch_add(1, Ordering::Relaxed);
            debug!(group, backend, status = record.status().as_str_name(), version, "verdict shared");
            Ok(Published::Committed)
        } else {
            self.status.counters.verdicts_fenced.fetch_add(1, Ordering::Relaxed);
            warn!(group, backend, member = me, "late verdict rejected by the fence: this replica's lease is gone");
            Ok(Published::Fenced)
        }
    }
}
