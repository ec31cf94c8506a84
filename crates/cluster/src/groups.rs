//! Following `{prefix}/groups/`: groups applied or deleted on another replica
//! are applied to (or removed from) this replica's engine, without writing
//! them back. This replica's own writes are recognized by revision and skipped.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::etcd::Etcd;
use super::follow::{Change, follow};
use super::keys::Keys;
use super::shared::Seeds;
use super::status::ClusterStatus;
use super::store::{EtcdStore, decode_group};
use crate::etcd_api::mvccpb::KeyValue;
use mcp_health_core::spec::validate_group;
use mcp_health_engine::{Engine, EngineError};
use mcp_health_proto::v1::GroupSource;

pub struct GroupFollower {
    pub etcd: Etcd,
    pub keys: Keys,
    pub store: Arc<EtcdStore>,
    pub engine: Engine,
    pub status: ClusterStatus,
    /// Asks the verdict follower for a group's shared verdicts.
    pub seeds: Seeds,
}

impl GroupFollower {
    /// Follows from `revision` (the one the start-up load was read at) until `cancel`.
    pub async fn run(self, revision: i64, cancel: CancellationToken) {
        let mut changes = follow(self.etcd.clone(), self.keys.groups(), Some(revision), self.status.clone(), cancel);
        while let Some(change) = changes.recv().await {
            match change {
                Change::Put(kv) => self.put(&kv).await,
                Change::Delete(kv) => {
                    if let Some(name) = self.keys.group_name(&String::from_utf8_lossy(&kv.key)).map(str::to_owned)
                        && !self.store.is_own_write(&name, kv.mod_revision)
                    {
                        self.remote_delete(&name).await;
                    }
                }
                Change::Reset(kvs) => self.reset(&kvs).await,
            }
        }
    }

    async fn put(&self, kv: &KeyValue) {
        let Some(decoded) = decode_group(&self.keys, kv) else { return };
        let stored = match decoded {
            Ok(s) => s,
            Err(e) => return warn!(error = %e, "ignoring an undecodable group in etcd"),
        };
        let name = stored.spec.name.clone();
        if self.store.is_own_write(&name, kv.mod_revision) {
            return;
        }
        let valid = match validate_group(&stored.spec, &name, self.engine.limits()) {
            Ok(v) => v,
            Err(v) => {
                let reason = v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                return warn!(group = %name, %reason, "a group applied on another replica is not valid under this replica's flags; not applied here");
            }
        };
        // A group the engine holds no incarnation of: this one's verdicts may
        // come out of the engine as soon as it is restored, and are shared
        // for the incarnation the store names then, so name it first (the
        // engine has none to update from here meanwhile). One it holds
        // another incarnation or version of is named after the restore.
        let first = self.store.incarnation(&name).is_none();
        if first {
            self.store.took(&name, kv.create_revision, kv.version);
        }
        let restored = self.engine.restore(vec![(valid, stored.generation)]).await;
        if restored.is_ok() {
            // Only now: until the engine holds this incarnation, an update
            // from here must not pass for one made on it.
            self.store.took(&name, kv.create_revision, kv.version);
        } else if first {
            self.store.forgot(&name);
        }
        match restored {
            Ok(applied) if applied.iter().any(|a| a.changed) => {
                info!(group = %name, generation = stored.generation, "group applied on another replica");
                // Its verdicts may have come through their watch before the
                // group did (and found nothing to land on): have them read now.
                self.seeds.seed(&name);
            }
            Ok(_) => {}
            Err(e) => warn!(group = %name, error = %e, "cannot apply a group changed on another replica"),
        }
    }

    async fn remote_delete(&self, name: &str) {
        // Already gone from etcd: the engine forgets it without a store write
        // (a delete from here could hit a group re-created meanwhile).
        let result = self.engine.forget(name.to_owned()).await;
        self.store.forgot(name);
        match result {
            Ok(()) => info!(group = %name, "group deleted on another replica"),
            Err(EngineError::GroupNotFound(_)) => {}
            Err(e) => warn!(group = %name, error = %e, "cannot delete a group deleted on another replica"),
        }
    }

    /// After a compaction: make the engine's API groups exactly etcd's.
    async fn reset(&self, kvs: &[KeyValue]) {
        let mut present = BTreeSet::new();
        for kv in kvs {
            if let Some(Ok(g)) = decode_group(&self.keys, kv) {
                present.insert(g.spec.name.clone());
            }
            self.put(kv).await;
        }
        let Ok(list) = self.engine.list().await else { return };
        for g in list {
            if g.source == GroupSource::Api && !present.contains(&g.name) {
                self.remote_delete(&g.name).await;
            }
        }
    }
}
