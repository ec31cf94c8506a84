//! This replica's membership: a lease (`--etcd-lease-ttl`) with a member key
//! under it, renewed at a third of the TTL; the member set, followed from
//! etcd. A failed renewal makes the cluster degraded (fail-static); an
//! expired lease is replaced by a new one, i.e. a new member id, so nothing
//! written under the old lease can be written again.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::etcd::{Etcd, EtcdError};
use super::follow::{Change, follow};
use super::keys::Keys;
use super::record::RECORD_VERSION;
use super::status::{ClusterStatus, MemberView};

/// What a member key holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The replica's name (its advertised address, or host name).
    pub name: String,
    /// The newest verdict record version it reads (`record`); absent in
    /// the keys of binaries from before versioning, which read version 1.
    #[serde(default = "record_version_1")]
    pub records: u32,
    /// It doubts itself and hands its backends to the others (issue 21 §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub doubting: bool,
    /// It answers indirect probes; absent in older binaries' keys.
    #[serde(default)]
    pub indirect: bool,
}

fn record_version_1() -> u32 {
    1
}

impl Member {
    /// This binary as a member: `name`, reading every record version it knows.
    pub fn new(name: impl Into<String>) -> Member {
        Member {
            name: name.into(),
            records: RECORD_VERSION,
            doubting: false,
            indirect: true,
        }
    }
}

/// A member id: the lease in hex.
pub fn member_id(lease: i64) -> String {
    format!("{lease:016x}")
}

/// Takes a lease and puts the member key under it; the lease.
pub async fn join(etcd: &Etcd, keys: &Keys, ttl: Duration, me: &Member, status: &ClusterStatus) -> Result<i64, EtcdError> {
    let value = serde_json::to_vec(me).unwrap_or_default();
    let id = etcd.lease_grant(ttl).await?;
    etcd.put(&keys.member(&member_id(id)), value, id).await?;
    info!(member = %member_id(id), name = %me.name, ttl_s = ttl.as_secs(), "joined the cluster");
    status.update(|v| {
        v.me = Some(member_id(id));
        v.lease = id;
    });
    Ok(id)
}

/// Keeps the membership (joining first unless `lease` is already held)
/// until `cancel`, then revokes the lease so the others take over at once.
pub async fn run(etcd: Etcd, keys: Keys, ttl: Duration, me: Member, status: ClusterStatus, mut lease: Option<i64>, cancel: CancellationToken) {
    let renew_every = ttl / 3;
    loop {
        let step = async {
            let id = match lease {
                Some(id) => id,
                None => {
                    let id = join(&etcd, &keys, ttl, &me, &status).await?;
                    lease = Some(id);
                    id
                }
            };
            etcd.lease_keep_alive(id).await?;
            status.counters.lease_renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<(), EtcdError>(())
        };
        let result = tokio::select! {
            () = cancel.cancelled() => break,
            r = step => r,
        };
        match result {
            Ok(()) => {
                if let Some(why) = status.degraded() {
                    info!(was = %why, "etcd reachable again; cluster no longer degraded");
                }
                status.update(|v| v.degraded = None);
            }
            Err(e) => {
                status.etcd_error();
                if let EtcdError::LeaseExpired(_) = e {
                    lease = None;
                }
                let why = match &e {
                    EtcdError::LeaseExpired(_) => "this replica's lease expired; rejoining".to_owned(),
                    e => format!("etcd unreachable or without quorum: {e}"),
                };
                if status.degraded().as_deref() != Some(why.as_str()) {
                    warn!(reason = %why, "cluster degraded: serving the last view and probing every backend locally; mutations are refused");
                }
                status.update(|v| v.degraded = Some(why));
            }
        }
        let wait = if status.degraded().is_some() {
            Duration::from_millis(500).min(renew_every)
        } else {
            renew_every
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(id) = lease {
        // Best effort: without it the lease simply expires after its TTL.
        let _ = tokio::time::timeout(Duration::from_secs(2), etcd.lease_revoke(id)).await;
    }
}

/// What a member key holds; a value that is not one (never written by any
/// binary) reads as a nameless version-1 member.
fn member(kv: &crate::etcd_api::mvccpb::KeyValue) -> Member {
    serde_json::from_slice::<Member>(&kv.value).unwrap_or(Member {
        name: String::new(),
        records: 1,
        doubting: false,
        indirect: false,
    })
}

/// Member id -> member in etcd now, and the revision they were read at.
pub async fn load_members(etcd: &Etcd, keys: &Keys) -> Result<(BTreeMap<String, Member>, i64), EtcdError> {
    let (kvs, revision) = etcd.range_prefix(&keys.members()).await?;
    let members = kvs
        .iter()
        .filter_map(|kv| Some((keys.member_id(&String::from_utf8_lossy(&kv.key))?.to_owned(), member(kv))))
        .collect();
    Ok((members, revision))
}

/// Sets the view's member set, names and record versions from `members`.
pub fn set_members(view: &mut MemberView, members: &BTreeMap<String, Member>) {
    view.members = members.keys().cloned().collect();
    view.names = members.iter().map(|(id, m)| (id.clone(), m.name.clone())).collect();
    view.records = members.iter().map(|(id, m)| (id.clone(), m.records)).collect();
    view.doubting = members.iter().filter(|(_, m)| m.doubting).map(|(id, _)| id.clone()).collect();
    view.indirect = members.iter().filter(|(_, m)| m.indirect).map(|(id, _)| id.clone()).collect();
}

/// Keeps `status`' member set equal to the member keys in etcd until
/// `cancel`, following from `from` (a `load_members` already applied) or a
/// fresh snapshot.
pub async fn follow_members(etcd: Etcd, keys: Keys, status: ClusterStatus, from: Option<(BTreeMap<String, Member>, i64)>, cancel: CancellationToken) {
    let (mut members, from) = match from {
        Some((m, r)) => (m, Some(r)),
        None => (BTreeMap::new(), None),
    };
    let mut changes = follow(etcd.clone(), keys.members(), from, status.clone(), cancel.clone());
    while let Some(change) = changes.recv().await {
        let id = |kv: &crate::etcd_api::mvccpb::KeyValue| keys.member_id(&String::from_utf8_lossy(&kv.key)).map(str::to_owned);
        match change {
            Change::Reset(kvs) => members = kvs.iter().filter_map(|kv| Some((id(kv)?, member(kv)))).collect(),
            Change::Put(kv) => {
                if let Some(m) = id(&kv) {
                    members.insert(m, member(&kv));
                }
            }
            Change::Delete(kv) => {
                if let Some(m) = id(&kv) {
                    members.remove(&m);
                }
            }
        }
        status.update(|v| set_members(v, &members));
    }
}
