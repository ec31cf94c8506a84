//! Shared verdicts, both ways, for the engine's `ClusterSeam`: local verdict
//! changes go out through the fenced `VerdictWriter` (one task; one pending
//! verdict per backend, latest wins: `outbox`), each tied to the incarnation
//! of its group the engine held when it changed;
//! verdicts other replicas wrote come in from the `{prefix}/verdicts/` watch
//! and are handed to the engine, unless they are of another incarnation of
//! their group than the one this replica holds. Ownership answers come from
//! the member view.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::endpoints::EndpointsRecord;
use super::etcd::Etcd;
use super::follow::{Change, follow};
use super::indirect::Bursts;
use super::keys::Keys;
use super::outbox::Outbox;
use super::record::VerdictRecord;
use super::reports::ReportQueue;
use super::status::ClusterStatus;
use super::store::EtcdStore;
use super::verdicts::{Published, VerdictWriter};
use crate::etcd_api::mvccpb::KeyValue;
use mcp_health_engine::Engine;
use mcp_health_engine::seam::{ClusterSeam, Forwarded, SharedEndpoints, SharedVerdict, TrafficOutcome};

/// What a pending write is about, under its (group, backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Subject {
    /// The backend's verdict.
    Verdict,
    /// A discovered endpoint's verdict.
    Endpoint(SocketAddr),
    /// A discovered backend's endpoint set.
    Endpoints,
}

/// A pending write: a verdict (a backend's or an endpoint's) or an endpoint set.
#[derive(Clone, Debug)]
enum Share {
    /// Boxed: several times the size of a set's handle.
    Verdict(Box<SharedVerdict>),
    Endpoints(SharedEndpoints),
}

type Subjects = (String, String, Subject);

/// Local changes on their way to etcd, by (group, backend, subject), each
/// with the create revision of its group's incarnation (None: not in etcd).
type Outgoings = Outbox<Subjects, (Share, Option<i64>)>;

/// The engine's view of the cluster.
pub struct Seam {
    status: ClusterStatus,
    /// Which incarnation of a group the engine holds.
    store: Arc<EtcdStore>,
    outgoing: Arc<Outgoings>,
    /// Real-traffic reports for other members' backends (`reports::send_reports` writes them).
    reports: Arc<ReportQueue>,
    /// Bursts of this replica's failures to ask the others about (`indirect`).
    bursts: Arc<Bursts>,
}

impl std::fmt::Debug for Seam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seam").field("outgoing", &self.outgoing.len()).finish_non_exhaustive()
    }
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

    fn verdict_changed(&self, group: &str, backend: &str, verdict: &SharedVerdict) {
        // Never waits, and a verdict not yet written is replaced by this one:
        // only the latest verdict of a backend matters to the others. The
        // incarnation is the one named now, on the engine's owner task, not
        // when the write is made: by then the group may be another.
        let incarnation = self.store.incarnation(group);
        self.outgoing.push(
            (group.to_owned(), backend.to_owned(), Subject::Verdict),
            (Share::Verdict(Box::new(verdict.clone())), incarnation),
        );
    }

    fn owns_endpoint(&self, group: &str, backend: &str, address: SocketAddr) -> bool {
        self.status.with_view(|v| v.owns_endpoint(group, backend, address))
    }

    fn endpoint_verdict_changed(&self, group: &str, backend: &str, address: SocketAddr, verdict: &SharedVerdict) {
        let incarnation = self.store.incarnation(group);
        self.outgoing.push(
            (group.to_owned(), backend.to_owned(), Subject::Endpoint(address)),
            (Share::Verdict(Box::new(verdict.clone())), incarnation),
        );
    }

    fn endpoints_changed(&self, group: &str, backend: &str, endpoints: &SharedEndpoints) {
        let incarnation = self.store.incarnation(group);
        self.outgoing.push(
            (group.to_owned(), backend.to_owned(), Subject::Endpoints),
            (Share::Endpoints(endpoints.clone()), incarnation),
        );
    }

    fn forward_outcomes(&self, group: &str, backend: &str, outcomes: &[TrafficOutcome]) -> Forwarded {
        if self.status.with_view(|v| v.owner(group, backend).is_none_or(|o| Some(o) == v.me.as_deref())) {
            return Forwarded::NoOwner;
        }
        if self.reports.push(group, backend, outcomes) {
            Forwarded::Queued
        } else {
            self.status
                .counters
                .reports_dropped
                .fetch_add(outcomes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Forwarded::Dropped
        }
    }

    fn burst(&self, sample: &[(String, String)]) -> bool {
        // Degraded (etcd unreachable) nobody can be asked, and nothing is handed off.
        if self.status.with_view(|v| v.degraded.is_some() || v.askable().is_empty()) {
            return false;
        }
        self.bursts.push(sample.to_vec());
        true
    }
}

impl Seam {
    /// How many backends have a verdict change the publisher has not taken yet.
    pub fn pending(&self) -> usize {
        self.outgoing.len()
    }
}

/// The seam, and the receiving end `publish` drains; reports for other
/// members' backends go to `reports`, bursts to ask about to `bursts`.
pub fn seam(status: ClusterStatus, store: Arc<EtcdStore>, reports: Arc<ReportQueue>, bursts: Arc<Bursts>) -> (Arc<Seam>, Publisher) {
    let outgoing = Arc::new(Outgoings::default());
    (
        Arc::new(Seam {
            status,
            store,
            outgoing: outgoing.clone(),
            reports,
            bursts,
        }),
        Publisher { outgoing },
    )
}

pub struct Publisher {
    outgoing: Arc<Outgoings>,
}

/// How long a verdict etcd did not take waits before it is written again.
const REWRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

impl Publisher {
    /// Writes local verdict changes, fenced, until `cancel`. A write etcd
    /// failed (an error, e.g. during a leader election), or one not made
    /// because this replica was not a member then (degraded, or fenced: its
    /// lease gone), is written again, the latest per backend, while this
    /// replica still owns the backend: an owner shares only changes, so a
    /// lost write would leave the others on the old verdict (or on none).
    /// One whose group incarnation is gone is dropped: it belongs to no
    /// group that exists.
    pub async fn run(self, writer: VerdictWriter, cancel: CancellationToken) {
        // Bounded like the outbox: one entry per backend.
        let mut unwritten: BTreeMap<Subjects, (Share, Option<i64>)> = BTreeMap::new();
        loop {
            let rewrite = async {
                if unwritten.is_empty() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(REWRITE_AFTER).await;
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                (key, verdict) = self.outgoing.next() => {
                    unwritten.insert(key, verdict);
                }
                () = rewrite => {}
            }
            let keys: Vec<Subjects> = unwritten.keys().cloned().collect();
            for key in keys {
                let Some((share, incarnation)) = unwritten.get(&key) else { continue };
                let (group, backend, subject) = (&key.0, &key.1, key.2);
                // Owned by another member now: its verdict (or set) is the one to share.
                if writer.status().with_view(|v| {
                    let owner = match subject {
                        Subject::Endpoint(address) => v.endpoint_owner(group, backend, address),
                        Subject::Verdict | Subject::Endpoints => v.owner(group, backend),
                    };
                    owner.is_some_and(|owner| Some(owner) != v.me.as_deref())
                }) {
                    unwritten.remove(&key);
                    continue;
                }
                let published = match (subject, share) {
                    (Subject::Verdict, Share::Verdict(verdict)) => writer.publish(group, backend, verdict, *incarnation).await,
                    (Subject::Endpoint(address), Share::Verdict(verdict)) => writer.publish_endpoint(group, backend, address, verdict, *incarnation).await,
                    (Subject::Endpoints, Share::Endpoints(endpoints)) => writer.publish_endpoints(group, backend, endpoints, *incarnation).await,
                    // The seam pairs each subject with its kind of value.
                    _ => Ok(Published::Stale),
                };
                match published {
                    // Written, or for a group incarnation that is gone.
                    Ok(Published::Committed | Published::Stale) => {
                        unwritten.remove(&key);
                    }
                    // Not a member now (degraded, not joined, or its lease
                    // gone): written once it is one again, if it still owns
                    // the backend (checked above). Dropped, it would be lost
                    // for good where no verdict of the backend is in etcd (a
                    // group applied meanwhile), since nothing shows the owner
                    // another verdict to share its own against.
                    Ok(Published::Skipped | Published::Fenced) => {}
                    Err(e) => warn!(group = %group, backend = %backend, error = %e, "cannot share a verdict now; writing it again shortly"),
                }
            }
        }
    }
}

/// Asks the verdict follower to read one group's shared verdicts again (the
/// group follower, for each group it applies: its verdicts may have come
/// through the watch before the group did, and found nothing to land on).
#[derive(Clone)]
pub struct Seeds(mpsc::UnboundedSender<String>);

impl Seeds {
    /// Never waits: one request per group applied, served in order.
    pub fn seed(&self, group: &str) {
        // The follower ends only with the cluster node; nothing is left to seed then.
        let _ = self.0.send(group.to_owned());
    }
}

/// The requesting end, and the end `follow_verdicts` serves.
pub fn seeds() -> (Seeds, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Seeds(tx), rx)
}

/// The shared verdicts `follow_verdicts` hands to the engine, and in which
/// order: one task, so every key is taken at increasing mod revisions only,
/// whether it came from the watch or from a read. A read of a group's
/// verdicts used to be fed from the group follower's task, racing the
/// watch: a read made just before an owner's newer write could reach the
/// engine after that write had come through the watch, and the older
/// verdict stood for good (an owner writes only changes). Found by the
/// fault-schedule harness's long run (seed 42, fault 124): a backend removed
/// from a group and added again was shown UNHEALTHY by one replica for
/// good, its owner and the third replica HEALTHY.
struct Taker<'a> {
    keys: &'a Keys,
    status: &'a ClusterStatus,
    store: &'a EtcdStore,
    engine: &'a Engine,
    /// Key -> the mod revision last taken (or passed over) for it.
    taken: HashMap<Vec<u8>, i64>,
}

impl Taker<'_> {
    /// Takes `kv` if it is newer than what was taken for its key (or as
    /// new, with `again`: a read of what the watch may already have given,
    /// now that the engine may hold what it is for). Whether it was taken.
    async fn take_newer(&mut self, kv: &KeyValue, again: bool) -> bool {
        let last = self.taken.get(&kv.key).copied().unwrap_or(0);
        if kv.mod_revision < last || (kv.mod_revision == last && !again) {
            return false;
        }
        self.taken.insert(kv.key.clone(), kv.mod_revision);
        take(self.keys, self.status, self.store, self.engine, kv).await;
        true
    }

    /// Takes a discovered backend's endpoint set `kv` (if newer), then its
    /// endpoints' verdicts again: a verdict of an endpoint new to this
    /// replica may have come before the set that added it, and found
    /// nothing to land on (owners share only changes).
    async fn take_set(&mut self, etcd: &Etcd, kv: &KeyValue, again: bool) {
        if !self.take_newer(kv, again).await {
            return;
        }
        let key = String::from_utf8_lossy(&kv.key);
        let Some((group, backend)) = self.keys.endpoint_set_of(&key) else { return };
        let prefix = self.keys.endpoint_verdicts(group, backend);
        if let Err(e) = self.read(etcd, &prefix).await {
            self.status.etcd_error();
            warn!(group, backend, error = %e, "cannot read a backend's endpoint verdicts; they arrive with their next change");
        }
    }

    /// A deleted endpoint set: forgotten (its group or backend is gone).
    fn set_deleted(&mut self, kv: &KeyValue) {
        self.taken.remove(&kv.key);
        let key = String::from_utf8_lossy(&kv.key);
        if let Some((group, backend)) = self.keys.endpoint_set_of(&key) {
            self.status.endpoint_sets.remove(group, backend);
        }
    }

    /// Reads every verdict under `prefix` and takes each, `again`.
    async fn read(&mut self, etcd: &Etcd, prefix: &str) -> Result<(), super::etcd::EtcdError> {
        let (kvs, _) = etcd.range_prefix(prefix).await?;
        for kv in kvs {
            self.take_newer(&kv, true).await;
        }
        Ok(())
    }

    /// Reads the endpoint sets under `sets` and then the verdicts under
    /// `verdicts` (so an endpoint's verdict finds its endpoint), taking each `again`.
    async fn read_all(&mut self, etcd: &Etcd, sets: &str, verdicts: &str) -> Result<(), super::etcd::EtcdError> {
        let (kvs, _) = etcd.range_prefix(sets).await?;
        for kv in kvs {
            self.take_newer(&kv, true).await;
        }
        self.read(etcd, verdicts).await
    }
}

/// Feeds verdicts written by other replicas into `engine` until `cancel`,
/// and serves `seeds` (a group's verdicts read again, in the same order).
///
/// After a spell degraded it feeds every shared verdict again: while
/// degraded this replica probed every backend itself and its own verdicts
/// replaced the shared ones, and an owner writes only when its verdict
/// changes, so an unchanged shared verdict would never come back through the
/// watch (found by the fault-schedule harness: a replica cut off from etcd
/// and the fleet kept showing UNHEALTHY, after the heal, backends its peers
/// showed HEALTHY). Each key is taken at increasing mod revisions only, so a
/// change still queued from before the re-read never undoes it.
pub async fn follow_verdicts(
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
    store: Arc<EtcdStore>,
    engine: Engine,
    mut seeds: mpsc::UnboundedReceiver<String>,
    cancel: CancellationToken,
) {
    let mut changes = follow(etcd.clone(), keys.verdicts(), None, status.clone(), cancel.clone());
    // Discovered backends' endpoint sets, in the same task: a set is taken
    // before the verdicts of the endpoints it adds are read again.
    let mut sets = follow(etcd.clone(), keys.endpoints(), None, status.clone(), cancel);
    let mut view = status.subscribe();
    let mut was_degraded = view.borrow_and_update().degraded.is_some();
    let mut taker = Taker {
        keys: &keys,
        status: &status,
        store: &store,
        engine: &engine,
        taken: HashMap::new(),
    };
    let mut seeding = true;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                None => return,
                Some(Change::Reset(kvs)) => {
                    for kv in kvs {
                        taker.take_newer(&kv, true).await;
                    }
                }
                Some(Change::Put(kv)) => {
                    taker.take_newer(&kv, false).await;
                }
                // A group's verdicts go with the group; only forget the revision.
                Some(Change::Delete(kv)) => {
                    taker.taken.remove(&kv.key);
                }
            },
            change = sets.recv() => match change {
                None => return,
                Some(Change::Reset(kvs)) => {
                    status.endpoint_sets.clear();
                    for kv in kvs {
                        taker.take_set(&etcd, &kv, true).await;
                    }
                }
                Some(Change::Put(kv)) => taker.take_set(&etcd, &kv, false).await,
                Some(Change::Delete(kv)) => taker.set_deleted(&kv),
            },
            group = seeds.recv(), if seeding => match group {
                Some(group) => {
                    if let Err(e) = taker.read_all(&etcd, &keys.group_endpoints(&group), &keys.group_verdicts(&group)).await {
                        status.etcd_error();
                        warn!(group, error = %e, "cannot read a group's shared verdicts; they arrive with their next change");
                    }
                }
                None => seeding = false,
            },
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                let degraded = view.borrow_and_update().degraded.is_some();
                if was_degraded && !degraded
                    && let Err(e) = taker.read_all(&etcd, &keys.endpoints(), &keys.verdicts()).await
                {
                    status.etcd_error();
                    warn!(error = %e, "cannot re-read the shared verdicts after a degraded spell; they arrive with their next change");
                }
                was_degraded = degraded;
            }
        }
    }
}

/// Whether a verdict record is of the incarnation of its group this replica
/// holds: `held` is that incarnation's create revision (None: no API group
/// of that name here, e.g. a config-file group; the engine drops a verdict
/// for a group it does not have), `created` the record's, `mod_revision` the
/// record key's. A record without one (version 1, from an old member) is
/// taken only if it was written after the held incarnation was created.
fn of_held_incarnation(held: Option<i64>, created: Option<i64>, mod_revision: i64) -> bool {
    match (held, created) {
        (None, _) => true,
        (Some(held), Some(created)) => created == held,
        (Some(held), None) => mod_revision > held,
    }
}

async fn take(keys: &Keys, status: &ClusterStatus, store: &EtcdStore, engine: &Engine, kv: &KeyValue) {
    let key = String::from_utf8_lossy(&kv.key);
    if let Some((group, backend)) = keys.endpoint_set_of(&key) {
        return take_set(status, store, engine, group, backend, kv).await;
    }
    if let Some((group, backend, address)) = keys.endpoint_verdict_of(&key) {
        return take_endpoint(status, store, engine, group, backend, address, kv).await;
    }
    let Some((group, backend)) = keys.verdict_of(&key) else { return };
    let Some(record) = VerdictRecord::decode(&kv.value) else {
        return warn!(key = %key, "ignoring an undecodable shared verdict");
    };
    // Our own verdicts come back through the watch: skipped, unless we own
    // the backend now, when the engine compares it with its current verdict
    // (a later share of ours may have been lost) and shares again if they differ.
    if status.with_view(|view| view.me.as_deref() == Some(record.writer.as_str()) && !view.owns(group, backend)) {
        return;
    }
    // Another incarnation's: a deleted one's, or one this replica has not
    // applied yet (it is read again when it has: `Seeds`).
    let held = store.incarnation(group);
    if !of_held_incarnation(held, record.group_created, kv.mod_revision) {
        return debug!(
            group,
            backend,
            held,
            of = record.group_created,
            "ignoring a shared verdict of another incarnation of its group"
        );
    }
    let _ = engine.remote_verdict(group.to_owned(), backend.to_owned(), record.verdict).await;
}

/// A discovered backend's endpoint set from its owner. Our own comes back
/// too: the engine passes it over while its own lookups speak for the set.
async fn take_set(status: &ClusterStatus, store: &EtcdStore, engine: &Engine, group: &str, backend: &str, kv: &KeyValue) {
    let Some(record) = EndpointsRecord::decode(&kv.value) else {
        return warn!(group, backend, "ignoring an undecodable endpoint set");
    };
    let held = store.incarnation(group);
    if !of_held_incarnation(held, record.group_created, kv.mod_revision) {
        return debug!(
            group,
            backend,
            held,
            of = record.group_created,
            "ignoring an endpoint set of another incarnation of its group"
        );
    }
    status
        .endpoint_sets
        .set(group, backend, record.endpoints.members.iter().map(|m| m.address).collect());
    let _ = engine.remote_endpoints(group.to_owned(), backend.to_owned(), record.endpoints).await;
}

/// A discovered endpoint's verdict from its owner, taken like a backend's.
async fn take_endpoint(status: &ClusterStatus, store: &EtcdStore, engine: &Engine, group: &str, backend: &str, address: SocketAddr, kv: &KeyValue) {
    let Some(record) = VerdictRecord::decode(&kv.value) else {
        return warn!(group, backend, endpoint = %address, "ignoring an undecodable endpoint verdict");
    };
    if status.with_view(|view| view.me.as_deref() == Some(record.writer.as_str()) && !view.owns_endpoint(group, backend, address)) {
        return;
    }
    let held = store.incarnation(group);
    if !of_held_incarnation(held, record.group_created, kv.mod_revision) {
        return;
    }
    let _ = engine
        .remote_endpoint_verdict(group.to_owned(), backend.to_owned(), address, record.verdict)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_taken_only_for_the_incarnation_held() {
        // (held, the record's incarnation, its mod revision, taken)
        let cases: &[(Option<i64>, Option<i64>, i64, bool)] = &[
            // No API group here (config-file group, or not applied yet): taken.
            (None, None, 5, true),
            (None, Some(7), 9, true),
            // Version 2: exactly the held incarnation.
            (Some(7), Some(7), 9, true),
            (Some(7), Some(3), 9, false),
            (Some(7), Some(12), 14, false),
            // Version 1 (an old member): written after the held incarnation was created.
            (Some(7), None, 9, true),
            (Some(7), None, 6, false),
            (Some(7), None, 7, false),
        ];
        for (held, created, mod_revision, want) in cases {
            assert_eq!(
                of_held_incarnation(*held, *created, *mod_revision),
                *want,
                "{held:?} {created:?} {mod_revision}"
            );
        }
    }
}
