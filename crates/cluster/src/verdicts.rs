//! Shared verdicts: the owner of a backend publishes its verdict to
//! `{prefix}/verdicts/{group}/{backend}` when it changes (status, reason or
//! progress, not every probe), fenced twice:
//!
//! - by its lease: the transaction commits only if the writer's member key
//!   still exists under that lease, so a replica that was paused or cut off
//!   past its TTL can never overwrite a fresher verdict;
//! - by the group's incarnation: only if the group key's create revision is
//!   the one the verdict was computed for (`VerdictRecord::group_created`;
//!   for a group not in etcd, a config-file group, only while no API group
//!   of that name exists), so a verdict of a deleted group written late
//!   never lands on the group applied again (found by the fault-schedule
//!   harness's long run, seed 42: the publisher writes a verdict etcd failed
//!   again, and one of an incarnation deleted meanwhile could land on the next).
//!
//! Every replica follows the prefix and feeds the verdicts of backends it
//! does not own into its engine. A discovered backend's endpoints' verdicts
//! (`{prefix}/verdicts/{group}/{backend}/{address}`, by each endpoint's
//! owner) and its endpoint set (`{prefix}/endpoints/{group}/{backend}`, by
//! the backend's owner) are written the same way, under the same two fences.

use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::etcd::{Etcd, EtcdError, created_at, get_op, lease_is, put_op, read_in, version_is};
use super::keys::Keys;
use super::record::VerdictRecord;
use super::status::ClusterStatus;
use crate::etcd_api::etcdserverpb::TxnRequest;
use std::net::SocketAddr;

use super::endpoints::EndpointsRecord;
use mcp_health_engine::seam::{SharedEndpoints, SharedVerdict};

/// What became of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Committed,
    /// The fence refused it: this replica's lease is gone (paused, cut off).
    Fenced,
    /// The group incarnation it was computed for is gone (deleted, perhaps
    /// applied again): nothing was written, and it is not worth writing again.
    Stale,
    /// Not joined, or degraded: nothing was written.
    Skipped,
}

/// Writes this replica's verdicts, fenced by its lease.
/// Who writes a record now (`VerdictWriter::writer`).
struct Writer {
    me: String,
    lease: i64,
    version: u32,
}

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

    /// Writes `verdict`, computed for the incarnation of `group` created at
    /// etcd revision `group_created` (None: a group not in etcd).
    pub async fn publish(&self, group: &str, backend: &str, verdict: &SharedVerdict, group_created: Option<i64>) -> Result<Published, EtcdError> {
        let Some(w) = self.writer() else { return Ok(Published::Skipped) };
        let record = VerdictRecord {
            writer: w.me.clone(),
            group_created,
            verdict: verdict.clone(),
        };
        self.publish_as(&w.me, w.lease, group, backend, &record, w.version).await
    }

    /// Who writes now, and in which record version: None while this
    /// replica has not joined or is degraded (fail-static: it writes nothing).
    fn writer(&self) -> Option<Writer> {
        self.status.with_view(|view| {
            let me = view.me.clone()?;
            view.degraded.is_none().then(|| Writer {
                me,
                lease: view.lease,
                // The newest format every live member reads (see `record`).
                version: view.record_version(),
            })
        })
    }

    /// The fenced write itself, as member `me` holding `lease`, in record
    /// `version`, for the incarnation `record.group_created`. The incarnation
    /// is fenced whatever the version: a version-1 record has no place for
    /// it, but the transaction's compare does not need one.
    pub async fn publish_as(&self, me: &str, lease: i64, group: &str, backend: &str, record: &VerdictRecord, version: u32) -> Result<Published, EtcdError> {
        let key = self.keys.verdict(group, backend);
        let published = self.fenced_put(me, lease, group, record.group_created, key, record.encode(version)).await?;
        if published == Published::Committed {
            debug!(group, backend, status = record.status().as_str_name(), version, "verdict shared");
        }
        Ok(published)
    }

    /// Writes one discovered endpoint's `verdict`, fenced like a backend's
    /// (`{prefix}/verdicts/{group}/{backend}/{address}`).
    pub async fn publish_endpoint(
        &self,
        group: &str,
        backend: &str,
        address: SocketAddr,
        verdict: &SharedVerdict,
        group_created: Option<i64>,
    ) -> Result<Published, EtcdError> {
        let Some(w) = self.writer() else { return Ok(Published::Skipped) };
        let record = VerdictRecord {
            writer: w.me.clone(),
            group_created,
            verdict: verdict.clone(),
        };
        let key = self.keys.endpoint_verdict(group, backend, address);
        let published = self.fenced_put(&w.me, w.lease, group, group_created, key, record.encode(w.version)).await?;
        if published == Published::Committed {
            debug!(group, backend, endpoint = %address, status = record.status().as_str_name(), "endpoint verdict shared");
        }
        Ok(published)
    }

    /// Writes a discovered backend's endpoint set (`{prefix}/endpoints/{group}/{backend}`), fenced like a verdict.
    pub async fn publish_endpoints(&self, group: &str, backend: &str, endpoints: &SharedEndpoints, group_created: Option<i64>) -> Result<Published, EtcdError> {
        let Some(w) = self.writer() else { return Ok(Published::Skipped) };
        let record = EndpointsRecord {
            writer: w.me.clone(),
            group_created,
            endpoints: endpoints.clone(),
        };
        let key = self.keys.endpoint_set(group, backend);
        let published = self.fenced_put(&w.me, w.lease, group, group_created, key, record.encode()).await?;
        if published == Published::Committed {
            debug!(group, backend, endpoints = endpoints.members.len(), "endpoint set shared");
        }
        Ok(published)
    }

    /// Puts `value` at `key` if `lease({prefix}/members/{me}) == lease` and the
    /// group is still the incarnation created at `group_created` (None: no
    /// API group of that name), in one transaction.
    async fn fenced_put(&self, me: &str, lease: i64, group: &str, group_created: Option<i64>, key: String, value: Vec<u8>) -> Result<Published, EtcdError> {
        let member = self.keys.member(me);
        let group_key = self.keys.group(group);
        let incarnation = match group_created {
            Some(created) => created_at(&group_key, created),
            None => version_is(&group_key, 0),
        };
        let req = TxnRequest {
            compare: vec![lease_is(&member, lease), incarnation],
            success: vec![put_op(&key, value, 0)],
            // Why a compare failed: the member key (and its lease), if any.
            failure: vec![get_op(&member)],
        };
        let resp = self.etcd.txn(req).await.inspect_err(|_| self.status.etcd_error())?;
        if resp.succeeded {
            self.status.counters.verdicts_published.fetch_add(1, Ordering::Relaxed);
            return Ok(Published::Committed);
        }
        self.status.counters.verdicts_fenced.fetch_add(1, Ordering::Relaxed);
        if read_in(&resp, 0).first().is_some_and(|kv| kv.lease == lease) {
            warn!(key, incarnation = ?group_created, "late write rejected by the fence: its group incarnation is gone");
            Ok(Published::Stale)
        } else {
            warn!(key, member = me, "late write rejected by the fence: this replica's lease is gone");
            Ok(Published::Fenced)
        }
    }
}
