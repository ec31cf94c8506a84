//! `Persist` over etcd: API groups under `{prefix}/groups/`. An apply is one
//! transaction comparing the key's version with the generation the engine
//! last saw (optimistic concurrency), so the generation *is* etcd's version
//! of the key, and the engine acknowledges only after etcd committed. An
//! update also compares the key's create revision with the incarnation the
//! engine holds: versions start again at 1 when a group is deleted and
//! applied again, so a replica whose view is from before the delete must not
//! find "version 2" on the new incarnation and overwrite it. A delete
//! compares both too, and also removes the group's shared verdicts (its
//! endpoints' too) and endpoint sets.
//!
//! Every group write (create, update, delete) is also fenced like a verdict:
//! it commits only while this replica's member key exists under its lease.
//! A create compares "key absent", which a delete makes true again, so no
//! revision of the group can refuse a create from a replica that was paused
//! or cut off mid-request; its expired lease does (found by the
//! fault-schedule harness, seed 42: a delayed create landed after a newer
//! acknowledged apply and delete).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use tracing::warn;

use super::etcd::{Etcd, created_at, delete_op, delete_prefix_op, get_op, lease_is, put_op, read_in, version_is};
use super::keys::Keys;
use super::status::ClusterStatus;
use crate::etcd_api::etcdserverpb::{Compare, RequestOp, TxnRequest, TxnResponse};
use crate::etcd_api::mvccpb::KeyValue;
use mcp_health_engine::store::{Persist, StoreError, StoreFuture, StoredGroup};
use mcp_health_proto::v1::GroupSpec;

pub struct EtcdStore {
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
    /// name -> etcd revision of this replica's own last write of it, so the
    /// groups watch skips the echo of writes the engine already holds.
    own_writes: Mutex<HashMap<String, i64>>,
    /// name -> (create revision, version) of the incarnation the engine
    /// holds (set when the engine took it: loaded, followed or written here).
    incarnations: Mutex<HashMap<String, (i64, i64)>>,
}

/// A poisoned lock still holds a plain map.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decodes a group key-value: the spec and its generation (the key's version).
pub fn decode_group(keys: &Keys, kv: &KeyValue) -> Option<Result<StoredGroup, StoreError>> {
    let key = String::from_utf8_lossy(&kv.key);
    let name = keys.group_name(&key)?.to_owned();
    Some(match GroupSpec::decode(kv.value.as_slice()) {
        Ok(spec) if spec.name == name => Ok(StoredGroup {
            spec,
            generation: kv.version as u64,
        }),
        Ok(spec) => Err(StoreError::Decode {
            name,
            reason: format!("the stored spec is named {:?}", spec.name),
        }),
        Err(e) => Err(StoreError::Decode { name, reason: e.to_string() }),
    })
}

impl EtcdStore {
    pub fn new(etcd: Etcd, keys: Keys, status: ClusterStatus) -> Arc<EtcdStore> {
        Arc::new(EtcdStore {
            etcd,
            keys,
            status,
            own_writes: Mutex::default(),
            incarnations: Mutex::default(),
        })
    }

    /// Every stored group, and the etcd revision they were read at.
    pub async fn load(&self) -> Result<(Vec<StoredGroup>, i64), StoreError> {
        let (kvs, revision) = self.etcd.range_prefix(&self.keys.groups()).await.map_err(|e| StoreError::Read(e.into()))?;
        let groups = kvs.iter().filter_map(|kv| decode_group(&self.keys, kv)).collect::<Result<Vec<_>, _>>()?;
        for kv in &kvs {
            if let Some(name) = self.keys.group_name(&String::from_utf8_lossy(&kv.key)) {
                self.took(name, kv.create_revision, kv.version);
            }
        }
        Ok((groups, revision))
    }

    /// The engine now holds `name` as created at `create_revision`, at `version`.
    pub fn took(&self, name: &str, create_revision: i64, version: i64) {
        lock(&self.incarnations).insert(name.to_owned(), (create_revision, version));
    }

    /// The create revision of the incarnation of `name` the engine holds (or
    /// is being given by the group follower): what a verdict computed now is
    /// for. None for a group not in etcd (a config-file group), or while the
    /// engine holds no incarnation of it.
    pub fn incarnation(&self, name: &str) -> Option<i64> {
        lock(&self.incarnations).get(name).map(|(created, _)| *created)
    }

    /// The engine no longer holds `name`.
    pub fn forgot(&self, name: &str) {
        lock(&self.incarnations).remove(name);
    }

    /// Whether a watched change of `name` at `revision` is this replica's own write.
    pub fn is_own_write(&self, name: &str, revision: i64) -> bool {
        lock(&self.own_writes).get(name).is_some_and(|r| revision <= *r)
    }

    /// The fence of a group write: this replica's member key and lease, or
    /// why it must not write (degraded, not joined).
    fn fence(&self) -> Result<(String, i64), StoreError> {
        let view = self.status.view();
        if let Some(why) = view.degraded {
            return Err(StoreError::Degraded(why));
        }
        match view.me {
            Some(me) => Ok((self.keys.member(&me), view.lease)),
            None => Err(StoreError::Fenced("not joined yet".into())),
        }
    }

    /// Runs a group write: `compare` and the fence, then `success`. On a
    /// refusal the failure branch reads the member key, to tell a stale
    /// member (`Fenced`) from a changed group (`conflict`).
    async fn fenced_txn(&self, mut compare: Vec<Compare>, success: Vec<RequestOp>, conflict: impl FnOnce() -> StoreError) -> Result<TxnResponse, StoreError> {
        let (member_key, lease) = self.fence()?;
        compare.push(lease_is(&member_key, lease));
        let req = TxnRequest {
            compare,
            success,
            failure: vec![get_op(&member_key)],
        };
        let resp = self.etcd.txn(req).await.map_err(|e| {
            self.status.etcd_error();
            StoreError::Write(e.into())
        })?;
        if resp.succeeded {
            return Ok(resp);
        }
        if read_in(&resp, 0).first().is_some_and(|kv| kv.lease == lease) {
            Err(conflict())
        } else {
            warn!("group write refused by the fence: this replica's lease is gone");
            Err(StoreError::Fenced("its lease expired while it was paused or cut off".into()))
        }
    }

    async fn put_group(&self, spec: &GroupSpec, generation: u64) -> Result<(), StoreError> {
        let key = self.keys.group(&spec.name);
        let mut compare = vec![version_is(&key, generation as i64 - 1)];
        let incarnation = lock(&self.incarnations).get(&spec.name).map(|(created, _)| *created);
        if generation > 1
            && let Some(created) = incarnation
        {
            compare.push(created_at(&key, created));
        }
        let conflict = || StoreError::Conflict {
            group: spec.name.clone(),
            expected: generation - 1,
        };
        let resp = self.fenced_txn(compare, vec![put_op(&key, spec.encode_to_vec(), 0)], conflict).await?;
        let revision = resp.header.map_or(0, |h| h.revision);
        lock(&self.own_writes).insert(spec.name.clone(), revision);
        self.took(&spec.name, incarnation.filter(|_| generation > 1).unwrap_or(revision), generation as i64);
        Ok(())
    }

    async fn remove_group(&self, name: &str) -> Result<(), StoreError> {
        let key = self.keys.group(name);
        // Like an update: only the incarnation and version the engine holds,
        // so a delete from a stale view (a replica paused mid-request) never
        // removes applies it did not see.
        let held = lock(&self.incarnations).get(name).copied();
        let compare = held.map_or_else(Vec::new, |(created, version)| vec![created_at(&key, created), version_is(&key, version)]);
        let conflict = || StoreError::Conflict {
            group: name.to_owned(),
            expected: held.map_or(0, |(_, v)| v as u64),
        };
        let success = vec![
            delete_op(&key),
            delete_prefix_op(&self.keys.group_verdicts(name)),
            delete_prefix_op(&self.keys.group_endpoints(name)),
        ];
        let resp = self.fenced_txn(compare, success, conflict).await?;
        let revision = resp.header.map_or(0, |h| h.revision);
        lock(&self.own_writes).insert(name.to_owned(), revision);
        self.forgot(name);
        Ok(())
    }
}

// A group deleted on another replica leaves the engine through
// `Engine::forget`, which writes nothing: `remove` is only ever this
// replica's own delete.
impl Persist for EtcdStore {
    fn put<'a>(&'a self, spec: &'a GroupSpec, generation: u64) -> StoreFuture<'a> {
        Box::pin(self.put_group(spec, generation))
    }

    fn remove<'a>(&'a self, name: &'a str) -> StoreFuture<'a> {
        Box::pin(self.remove_group(name))
    }
}
