//! This replica as a cluster member: connects to etcd, reads the API groups
//! back (validated under this replica's flags), joins (lease, member key,
//! member set) before the engine probes anything, then runs the membership,
//! the member, group, verdict, probe-request and report followers, the verdict
//! publisher, the report sender, and the burst asker and doubt hand-off
//! (`indirect`) until stopped.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::etcd::{Etcd, EtcdError};
use super::flags::ClusterOptions;
use super::groups::GroupFollower;
use super::indirect::Bursts;
use super::keys::Keys;
use super::membership::{self, Member};
use super::probes::ProbeRouter;
use super::reports::ReportQueue;
use super::shared::{self, Publisher, Seam};
use super::status::ClusterStatus;
use super::store::EtcdStore;
use super::verdicts::VerdictWriter;
use mcp_health_core::spec::{Limits, ValidGroup};
use mcp_health_engine::Engine;
use mcp_health_engine::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    // The cause is the source, not in the message: `errors::chain` prints
    // each once (with `{0}` as well, start-up refusals said it twice).
    #[error("cannot connect to etcd")]
    Connect(#[source] EtcdError),
    #[error("cannot read the groups from etcd")]
    Load(#[source] StoreError),
    #[error("a group in etcd is not valid under this replica's flags")]
    Invalid(#[source] mcp_health_engine::store::InvalidStoredGroup),
    #[error("cannot join the cluster")]
    Join(#[source] EtcdError),
}

/// What `join` got: this replica's name, its lease, and the member set
/// (id -> name) with the revision it was read at.
type Joined = (String, i64, (std::collections::BTreeMap<String, Member>, i64));

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
    seam: Arc<Seam>,
    publisher: Option<Publisher>,
    /// Reports for other members' backends, written by `reports::send_reports`.
    reports: Arc<ReportQueue>,
    /// The lease and member set from `join`.
    joined: Option<Joined>,
    /// Bursts of this replica's failures, asked about by `indirect`.
    bursts: Arc<Bursts>,
    /// How often a replica in doubt over a burst looks at it again.
    pub doubt_recheck: std::time::Duration,
}

impl ClusterNode {
    /// Connects and loads the API groups; nothing runs yet.
    pub async fn connect(opts: &ClusterOptions, limits: &Limits) -> Result<(ClusterNode, Vec<(ValidGroup, u64)>), ClusterError> {
        let etcd = Etcd::connect(opts).await.map_err(ClusterError::Connect)?;
        let keys = Keys::new(&opts.prefix);
        let status = ClusterStatus::default();
        let store = EtcdStore::new(etcd.clone(), keys.clone(), status.clone());
        let (stored, revision) = store.load().await.map_err(ClusterError::Load)?;
        let groups = mcp_health_engine::store::validate_stored(stored, limits).map_err(ClusterError::Invalid)?;
        let reports = Arc::new(ReportQueue::default());
        let bursts = Arc::new(Bursts::default());
        let (seam, publisher) = shared::seam(status.clone(), store.clone(), reports.clone(), bursts.clone());
        let node = ClusterNode {
            etcd,
            keys,
            status,
            store,
            opts: opts.clone(),
            revision,
            cancel: CancellationToken::new(),
            membership: None,
            seam,
            publisher: Some(publisher),
            reports,
            joined: None,
            bursts,
            doubt_recheck: std::time::Duration::from_secs(1),
        };
        Ok((node, groups))
    }

    pub fn lease_ttl(&self) -> std::time::Duration {
        self.opts.lease_ttl
    }

    /// What the engine asks and tells the cluster (`EngineConfig::cluster`).
    pub fn seam(&self) -> Arc<Seam> {
        self.seam.clone()
    }

    /// How the API's `ProbeBackend` reaches a backend's owner.
    pub fn probe_router(&self) -> ProbeRouter {
        ProbeRouter::new(self.etcd.clone(), self.keys.clone(), self.status.clone())
    }

    /// Takes the lease, puts the member key and reads the member set, so
    /// the engine's first probes are already only this replica's share.
    pub async fn join(&mut self, name: String) -> Result<(), ClusterError> {
        let me = Member::new(name.clone());
        let lease = membership::join(&self.etcd, &self.keys, self.opts.lease_ttl, &me, &self.status)
            .await
            .map_err(ClusterError::Join)?;
        let (members, revision) = membership::load_members(&self.etcd, &self.keys).await.map_err(ClusterError::Join)?;
        self.status.update(|v| membership::set_members(v, &members));
        self.joined = Some((name, lease, (members, revision)));
        Ok(())
    }

    /// Follows etcd, applying remote changes to `engine`; after `join`.
    pub fn start(&mut self, engine: Engine) {
        let c = &self.cancel;
        let (name, lease, members) = match self.joined.take() {
            Some((name, lease, members)) => (name, Some(lease), Some(members)),
            None => (String::new(), None, None),
        };
        self.membership = Some(tokio::spawn(membership::run(
            self.etcd.clone(),
            self.keys.clone(),
            self.opts.lease_ttl,
            Member::new(name.clone()),
            self.status.clone(),
            lease,
            c.clone(),
        )));
        tokio::spawn(super::indirect::hand_off(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            engine.clone(),
            name,
            c.clone(),
        ));
        tokio::spawn(super::indirect::ask_about_bursts(
            self.probe_router(),
            engine.clone(),
            self.status.clone(),
            self.bursts.clone(),
            self.doubt_recheck,
            c.clone(),
        ));
        tokio::spawn(membership::follow_members(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            members,
            c.clone(),
        ));
        if let Some(p) = self.publisher.take() {
            tokio::spawn(p.run(VerdictWriter::new(self.etcd.clone(), self.keys.clone(), self.status.clone()), c.clone()));
        }
        let (seeds, seed_requests) = shared::seeds();
        tokio::spawn(shared::follow_verdicts(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            self.store.clone(),
            engine.clone(),
            seed_requests,
            c.clone(),
        ));
        tokio::spawn(super::answers::answer_probes(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            engine.clone(),
            c.clone(),
        ));
        tokio::spawn(super::reports::send_reports(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            self.reports.clone(),
            engine.clone(),
            c.clone(),
        ));
        tokio::spawn(super::reports::fold_reports(
            self.etcd.clone(),
            self.keys.clone(),
            self.status.clone(),
            engine.clone(),
            c.clone(),
        ));
        let groups = GroupFollower {
            etcd: self.etcd.clone(),
            keys: self.keys.clone(),
            store: self.store.clone(),
            engine,
            status: self.status.clone(),
            seeds,
        };
        tokio::spawn(groups.run(self.revision, c.clone()));
    }

    /// Leaves the cluster: stops following and revokes the lease, also when
    /// it joined but never started (a start that failed after `join`), so its
    /// member key goes at once instead of after the lease's TTL.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(m) = self.membership.take() {
            let _ = m.await;
        }
        if let Some((_, lease, _)) = self.joined.take() {
            // Best effort, as `membership::run` does: without it the lease expires.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.etcd.lease_revoke(lease)).await;
        }
    }
}
