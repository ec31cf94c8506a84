//! The owner's side of forwarded on-demand probes: follows
//! `{prefix}/probes/`, probes each request addressed to this member with its
//! engine (rate limit and all; a changed verdict is shared as usual; an
//! indirect probe, a check that folds nothing, for a replica asking about a
//! burst of its own failures), and
//! writes the answer fenced like a verdict: it commits only while this
//! member's key is still under the lease it held when it took the request,
//! and only while the request is still there, so a requester that gave up
//! (or died) finds nothing left behind.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::etcd::{Etcd, delete_op, exists, lease_is, put_op};
use super::follow::{Change, follow};
use super::forward::{ProbeAnswer, ProbeRequest, decode, encode};
use super::keys::Keys;
use super::status::ClusterStatus;
use crate::etcd_api::etcdserverpb::TxnRequest;
use crate::etcd_api::mvccpb::KeyValue;
use mcp_health_engine::Engine;

/// Answers the probe requests addressed to this member until `cancel`.
pub async fn answer_probes(etcd: Etcd, keys: Keys, status: ClusterStatus, engine: Engine, cancel: CancellationToken) {
    let mut changes = follow(etcd.clone(), keys.probes(), None, status.clone(), cancel);
    let owner = Owner { etcd, keys, status, engine };
    // Requests taken (being probed, or answered) and not yet withdrawn.
    let mut taken: HashSet<String> = HashSet::new();
    while let Some(change) = changes.recv().await {
        match change {
            Change::Reset(kvs) => {
                let present: HashSet<String> = kvs.iter().filter_map(|kv| owner.request_id(kv)).collect();
                // Withdrawn while the watch was down.
                for id in taken.difference(&present) {
                    owner.withdrawn(id.clone());
                }
                taken.retain(|id| present.contains(id));
                for kv in &kvs {
                    owner.take(kv, &mut taken);
                }
            }
            Change::Put(kv) => owner.take(&kv, &mut taken),
            Change::Delete(kv) => {
                if let Some(id) = owner.request_id(&kv)
                    && taken.remove(&id)
                {
                    owner.withdrawn(id);
                }
            }
        }
    }
}

#[derive(Clone)]
struct Owner {
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
    engine: Engine,
}

impl Owner {
    fn request_id(&self, kv: &KeyValue) -> Option<String> {
        let key = String::from_utf8_lossy(&kv.key);
        self.keys.probe_request_of(&key).map(|(_, _, id)| id.to_owned())
    }

    /// Starts the probe a request asks of this member, once per request.
    fn take(&self, kv: &KeyValue, taken: &mut HashSet<String>) {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let Some((group, backend, id)) = self.keys.probe_request_of(&key) else {
            return;
        };
        let Some(request) = decode::<ProbeRequest>(&kv.value) else {
            return warn!(key, "ignoring an undecodable probe request");
        };
        // Only the member asked answers, even if this replica's view of the
        // owner differs for a moment: one answer per request, never two.
        let (me, lease) = self.status.with_view(|v| (v.me.clone(), v.lease));
        if me.as_deref() != Some(request.owner.as_str()) || !taken.insert(id.to_owned()) {
            return;
        }
        let (group, backend, id) = (group.to_owned(), backend.to_owned(), id.to_owned());
        let owner = self.clone();
        tokio::spawn(async move { owner.answer(group, backend, id, key, request, lease).await });
    }

    async fn answer(self, group: String, backend: String, id: String, request_key: String, request: ProbeRequest, lease: i64) {
        let (answer, ok) = if request.indirect {
            // Another replica saw it fail in a burst: does this one reach it? Nothing folds here.
            let checked = self.engine.check_backend(group.clone(), backend.clone()).await;
            (ProbeAnswer::checked(&request.owner, &checked), checked.is_ok())
        } else {
            let probed = self.engine.probe_backend(group.clone(), backend.clone()).await;
            (ProbeAnswer::new(&request.owner, &probed), probed.is_ok())
        };
        let txn = TxnRequest {
            compare: vec![lease_is(&self.keys.member(&request.owner), lease), exists(&request_key)],
            success: vec![put_op(&self.keys.probe_answer(&id), encode(&answer), lease)],
            failure: vec![],
        };
        match self.etcd.txn(txn).await {
            Ok(r) if r.succeeded => {
                self.status.counters.probes_answered.fetch_add(1, Ordering::Relaxed);
                debug!(
                    group,
                    backend,
                    request = id,
                    requester = request.requester,
                    indirect = request.indirect,
                    ok,
                    "probe answered"
                );
            }
            Ok(_) => warn!(
                group,
                backend,
                request = id,
                "probe answer not written: this replica's lease is gone (fenced), or the requester gave up"
            ),
            Err(e) => {
                self.status.etcd_error();
                warn!(group, backend, request = id, error = %e, "cannot write a probe answer");
            }
        }
    }

    /// A request this member took is gone (answered and cleaned up, or its
    /// requester died): its answer must not outlive it.
    fn withdrawn(&self, id: String) {
        let owner = self.clone();
        tokio::spawn(async move {
            let key = owner.keys.probe_answer(&id);
            // Usually the requester deleted it already: then this only reads.
            let txn = TxnRequest {
                compare: vec![exists(&key)],
                success: vec![delete_op(&key)],
                failure: vec![],
            };
            if let Err(e) = owner.etcd.txn(txn).await {
                owner.status.etcd_error();
                debug!(request = id, error = %e, "cannot remove a probe answer; it goes with this replica's lease");
            }
        });
    }
}
