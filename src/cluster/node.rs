//! This replica as a cluster member: connects to etcd, reads the API groups
//! back (validated under this replica's flags), then runs the membership,
//! the member and group followers until stopped.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::etcd::{Etcd, EtcdError};
use super::flags::ClusterOptions;
use super::groups::GroupFollower;
use super::keys::Keys;
use super::membership::{self, Member};
use super::status::ClusterStatus;
use super::store::EtcdStore;
use crate::engine::Engine;
use crate::spec::{Limits, ValidGroup, validate_group};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to etcd: {0}")]
    Connect(#[source] EtcdError),
    #[error("cannot read the groups from etcd: {0}")]
    Load(#[source] StoreError),
    #[error("group {group:?} in etcd is not valid under this replica's flags: {reason}")]
    Invalid { group: String, reason: String },
}

pub struct ClusterNode {
    pub etcd: Etcd,
    pub keys: Keys,
    pub status: ClusterStatus,
    pub store: Arc<EtcdStore>,
    opts: ClusterOptions,
    /// The etcd revision the groups were loaded at.
    revision: i64,
    cancel: CancellationToken,
    membership: Option<JoinHandle<()>>,
}

impl ClusterNode {
    /// Connects and loads the API groups; nothing runs yet.
    pub async fn connect(opts: &ClusterOptions, limits: &Limits) -> Result<(ClusterNode, Vec<(ValidGroup, u64)>), ClusterError> {
        let etcd = Etcd::connect(opts).await.map_err(ClusterError::Connect)?;
        let keys = Keys::new(&opts.prefix);
        let status = ClusterStatus::default();
        let store = EtcdStore::new(etcd.clone(), keys.clone(), status.clone());
        let (stored, revision) = store.load().await.map_err(ClusterError::Load)?;
        let mut groups = Vec::new();
        for g in stored {
            let name = g.spec.name.clone();
            let valid = validate_group(&g.spec, &name, limits).map_err(|v| ClusterError::Invalid {
                group: name.clone(),
                reason: v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            })?;
            groups.push((valid, g.generation));
        }
        let node = ClusterNode {
            etcd,
            keys,
            status,
            store,
            opts: opts.clone(),
            revision,
            cancel: CancellationToken::new(),
            membership: None,
        };
        Ok((node, groups))
    }

    /// Joins and follows etcd, applying remote changes to `engine`.
    pub fn start(&mut self, engine: Engine, name: String) {
        let c = &self.cancel;
        self.membership = Some(tokio::spawn(membership::run(
            self.etcd.clone(),
            self.keys.clone(),
            self.opts.lease_ttl,
            Member { name },
            self.status.clone(),
            c.clone(),
        )));
        tokio::spawn(membership::follow_members(self.etcd.clone(), self.keys.clone(), self.status.clone(), c.clone()));
        let groups = GroupFollower {
            etcd: self.etcd.clone(),
            keys: self.keys.clone(),
            store: self.store.clone(),
            engine,
            status: self.status.clone(),
        };
        tokio::spawn(groups.run(self.revision, c.clone()));
    }

    /// Leaves the cluster: stops following and revokes the lease.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(m) = self.membership.take() {
            let _ = m.await;
        }
    }
}
