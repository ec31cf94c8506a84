//! The cluster's health as this replica sees it: joined or degraded (etcd
//! unreachable or quorum lost: fail-static), the member view ownership is
//! computed from, and the counters the metrics and `GetConfigStatus` report.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::ownership;

/// What ownership is decided from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    /// This replica's member id (its lease, in hex); None until it joined.
    pub me: Option<String>,
    /// The lease behind `me`.
    pub lease: i64,
    /// Every live member id, as the members watch last saw them.
    pub members: BTreeSet<String>,
    /// Member id -> name (advertised address), for `GetConfigStatus`.
    pub names: std::collections::BTreeMap<String, String>,
    /// Member id -> the newest verdict record version it reads.
    pub records: std::collections::BTreeMap<String, u32>,
    /// Members that doubt themselves and hand their backends to the others
    /// (issue 21 §3): ownership skips them while any member does not doubt.
    pub doubting: BTreeSet<String>,
    /// Members that answer indirect probes (a check that folds nothing);
    /// older binaries do not, and are never asked.
    pub indirect: BTreeSet<String>,
    /// Why the cluster is degraded; None when this replica holds its lease
    /// and follows etcd. Degraded means fail-static: keep the last view,
    /// probe every backend locally, refuse mutations.
    pub degraded: Option<String>,
}

impl MemberView {
    /// The verdict record version to write: the newest every live member
    /// reads (a member whose key has not been read yet counts as version 1,
    /// the safe side), never newer than this binary's.
    pub fn record_version(&self) -> u32 {
        self.members
            .iter()
            .map(|id| self.records.get(id).copied().unwrap_or(1))
            .min()
            .unwrap_or(crate::record::RECORD_VERSION)
            .min(crate::record::RECORD_VERSION)
    }

    /// Whether this replica probes `group/backend`: its rendezvous owner, or
    /// every backend while degraded or not joined yet.
    pub fn owns(&self, group: &str, backend: &str) -> bool {
        self.owner(group, backend).is_none_or(|o| Some(o) == self.me.as_deref())
    }

    /// The member id that probes `group/backend` now, or None while this
    /// replica is not joined or degraded (then it probes everything itself).
    pub fn owner(&self, group: &str, backend: &str) -> Option<&str> {
        let me = self.me.as_ref()?;
        if self.degraded.is_some() {
            return None;
        }
        ownership::owner(&ownership::backend_key(group, backend), self.owning(me))
    }

    /// The members ownership is spread over: every live member (our own key
    /// may not have come back through the watch yet) but those that doubt
    /// themselves, unless every one does: then none hands off.
    fn owning<'a>(&'a self, me: &'a String) -> impl Iterator<Item = &'a String> + Clone + 'a {
        let all = self.members.iter().chain((!self.members.contains(me)).then_some(me));
        let everyone_doubts = all.clone().all(|m| self.doubting.contains(m));
        all.filter(move |m| everyone_doubts || !self.doubting.contains(*m))
    }

    /// Other live members that trust themselves and answer indirect probes:
    /// who may be asked about a burst of this replica's failures.
    pub fn askable(&self) -> Vec<String> {
        let me = self.me.as_deref();
        self.members
            .iter()
            .filter(|m| Some(m.as_str()) != me && !self.doubting.contains(*m) && self.indirect.contains(*m))
            .cloned()
            .collect()
    }

    /// Whether this replica probes one discovered endpoint: its rendezvous
    /// owner over (group, backend, address), or every endpoint while degraded
    /// or not joined yet.
    pub fn owns_endpoint(&self, group: &str, backend: &str, address: std::net::SocketAddr) -> bool {
        self.endpoint_owner(group, backend, address).is_none_or(|o| Some(o) == self.me.as_deref())
    }

    /// The member id that probes one discovered endpoint now, or None while
    /// this replica is not joined or degraded.
    pub fn endpoint_owner(&self, group: &str, backend: &str, address: std::net::SocketAddr) -> Option<&str> {
        let me = self.me.as_ref()?;
        if self.degraded.is_some() {
            return None;
        }
        ownership::owner(&ownership::endpoint_key(group, backend, address), self.owning(me))
    }
}

/// Counters for the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub etcd_errors: AtomicU64,
    pub lease_renewals: AtomicU64,
    pub verdicts_published: AtomicU64,
    pub verdicts_fenced: AtomicU64,
    /// On-demand probes this replica asked another member (the owner) to make.
    pub probes_forwarded: AtomicU64,
    /// On-demand probes this replica made for another member and answered.
    pub probes_answered: AtomicU64,
    /// Real-traffic reports this replica wrote to etcd for their backend's owner.
    pub reports_forwarded: AtomicU64,
    /// Real-traffic reports for another member dropped: the queue was full,
    /// or etcd refused the batch.
    pub reports_dropped: AtomicU64,
    /// Real-traffic reports other members forwarded that this replica folded as the owner.
    pub reports_folded: AtomicU64,
    /// Indirect probes this replica asked other members to make about a
    /// burst of its failures (one per member and backend asked).
    pub indirect_probes_asked: AtomicU64,
}

/// Shared by the membership task, the watchers, the store and the API.
#[derive(Clone)]
pub struct ClusterStatus {
    view: Arc<watch::Sender<MemberView>>,
    pub counters: Arc<Counters>,
    /// The discovered backends' endpoint sets as etcd has them, for the owned-endpoints gauge.
    pub endpoint_sets: Arc<EndpointSets>,
}

impl Default for ClusterStatus {
    fn default() -> Self {
        ClusterStatus {
            view: Arc::new(watch::Sender::new(MemberView::default())),
            counters: Arc::default(),
            endpoint_sets: Arc::default(),
        }
    }
}

/// Every discovered backend's endpoint addresses, by (group, backend), as
/// the shared endpoint sets in etcd say (every replica reads the same ones).
#[derive(Debug, Default)]
pub struct EndpointSets(std::sync::Mutex<std::collections::BTreeMap<(String, String), Vec<std::net::SocketAddr>>>);

impl EndpointSets {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String), Vec<std::net::SocketAddr>>> {
        // A poisoned lock only means a panic mid-assignment; the map is still a valid value.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set(&self, group: &str, backend: &str, addresses: Vec<std::net::SocketAddr>) {
        self.lock().insert((group.to_owned(), backend.to_owned()), addresses);
    }

    pub fn remove(&self, group: &str, backend: &str) {
        self.lock().remove(&(group.to_owned(), backend.to_owned()));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many endpoints `view` says this replica probes, of the backends `held` holds.
    pub fn owned(&self, view: &MemberView, held: impl Fn(&str, &str) -> bool) -> usize {
        self.lock()
            .iter()
            .filter(|((g, b), _)| held(g, b))
            .map(|((g, b), addresses)| addresses.iter().filter(|a| view.owns_endpoint(g, b, **a)).count())
            .sum()
    }
}

impl ClusterStatus {
    pub fn view(&self) -> MemberView {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<MemberView> {
        self.view.subscribe()
    }

    /// Reads the view without copying it.
    pub fn with_view<T>(&self, f: impl FnOnce(&MemberView) -> T) -> T {
        f(&self.view.borrow())
    }

    pub fn degraded(&self) -> Option<String> {
        self.view.borrow().degraded.clone()
    }

    /// Changes the view, waking subscribers only if it changed.
    pub fn update(&self, change: impl FnOnce(&mut MemberView)) {
        self.view.send_if_modified(|v| {
            let before = v.clone();
            change(v);
            *v != before
        });
    }

    /// The view as `GetConfigStatus` reports it.
    pub fn info(&self, lease_ttl: std::time::Duration) -> mcp_health_proto::v1::ClusterInfo {
        self.with_view(|v| mcp_health_proto::v1::ClusterInfo {
            member: v.me.clone().unwrap_or_default(),
            members: v
                .members
                .iter()
                .map(|id| mcp_health_proto::v1::ClusterMember {
                    id: id.clone(),
                    name: v.names.get(id).cloned().unwrap_or_default(),
                    doubting: v.doubting.contains(id),
                })
                .collect(),
            degraded: v.degraded.is_some(),
            degraded_reason: v.degraded.clone().unwrap_or_default(),
            lease_ttl_seconds: lease_ttl.as_secs() as u32,
        })
    }

    pub fn etcd_error(&self) {
        self.counters.etcd_errors.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(me: Option<&str>, members: &[&str], degraded: bool) -> MemberView {
        MemberView {
            me: me.map(str::to_owned),
            lease: 1,
            members: members.iter().map(|m| m.to_string()).collect(),
            degraded: degraded.then(|| "quorum lost".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn ownership_table() {
        let keys: Vec<(String, String)> = (0..60).map(|i| (format!("g{}", i % 4), format!("b{i}"))).collect();
        let owned = |v: &MemberView| keys.iter().filter(|(g, b)| v.owns(g, b)).count();
        // Not joined, or degraded: probe everything (fail-static).
        assert_eq!(owned(&view(None, &["a", "b"], false)), 60);
        assert_eq!(owned(&view(Some("a"), &["a", "b", "c"], true)), 60);
        // Alone: everything; our key not yet watched back counts as present.
        assert_eq!(owned(&view(Some("a"), &[], false)), 60);
        assert_eq!(owned(&view(Some("a"), &["a"], false)), 60);
        // Three members: each backend exactly once across them.
        let members = ["a", "b", "c"];
        for (g, b) in &keys {
            let owners = members.iter().filter(|m| view(Some(m), &members, false).owns(g, b)).count();
            assert_eq!(owners, 1, "{g}/{b}");
        }
        for m in members {
            let n = owned(&view(Some(m), &members, false));
            assert!((8..=32).contains(&n), "{m} owns {n} of 60");
        }
    }

    #[test]
    fn one_backends_endpoints_spread_over_the_members() {
        let addresses: Vec<std::net::SocketAddr> = (2..=10).map(|last| std::net::SocketAddr::from(([127, 0, 0, last], 8080))).collect();
        let owned = |v: &MemberView| addresses.iter().filter(|a| v.owns_endpoint("web", "pods", **a)).count();
        // Not joined, or degraded: probe every endpoint (fail-static).
        assert_eq!(owned(&view(None, &["a", "b"], false)), 9);
        assert_eq!(owned(&view(Some("a"), &["a", "b", "c"], true)), 9);
        assert_eq!(owned(&view(Some("a"), &[], false)), 9);
        // Three members: each endpoint exactly once across them, whoever owns the backend.
        let members = ["a", "b", "c"];
        for a in &addresses {
            let owners: Vec<&str> = members
                .iter()
                .copied()
                .filter(|m| view(Some(m), &members, false).owns_endpoint("web", "pods", *a))
                .collect();
            assert_eq!(owners.len(), 1, "{a}");
            assert_eq!(view(Some("a"), &members, false).endpoint_owner("web", "pods", *a), Some(owners[0]), "{a}");
        }
        // The 9 endpoints of one backend are not all one member's.
        assert!(members.iter().all(|m| owned(&view(Some(m), &members, false)) < 9));
    }

    #[test]
    fn a_doubting_member_hands_its_backends_to_the_others_unless_every_member_doubts() {
        let keys: Vec<(String, String)> = (0..60).map(|i| (format!("g{}", i % 4), format!("b{i}"))).collect();
        let members = ["a", "b", "c"];
        let with = |me: &str, doubting: &[&str]| MemberView {
            doubting: doubting.iter().map(|m| m.to_string()).collect(),
            indirect: members.iter().map(|m| m.to_string()).collect(),
            ..view(Some(me), &members, false)
        };
        let owned = |v: &MemberView| keys.iter().filter(|(g, b)| v.owns(g, b)).count();
        let cases: &[(&[&str], [usize; 3])] = &[
            // Nobody doubts: each owns a share (checked per backend below).
            (&[], [0, 0, 0]),
            // "a" doubts: it owns nothing, b and c own everything between them.
            (&["a"], [0, 60, 60]),
            (&["a", "b"], [0, 0, 60]),
            // Everyone doubts: nobody hands off, ownership is as if nobody did.
            (&["a", "b", "c"], [0, 0, 0]),
        ];
        for (doubting, want) in cases {
            for (g, b) in &keys {
                let owners: Vec<&str> = members.iter().copied().filter(|m| with(m, doubting).owns(g, b)).collect();
                assert_eq!(owners.len(), 1, "{doubting:?}: {g}/{b} owned by {owners:?}");
                assert!(
                    doubting.len() == 3 || !doubting.contains(&owners[0]),
                    "{doubting:?}: {g}/{b} owned by a doubter"
                );
            }
            if doubting.len() == 1 {
                assert_eq!(owned(&with("a", doubting)), want[0]);
                assert_eq!(owned(&with("b", doubting)) + owned(&with("c", doubting)), want[1]);
            }
            if doubting.len() == 2 {
                assert_eq!(owned(&with("c", doubting)), want[2]);
            }
            if doubting.len() == 3 || doubting.is_empty() {
                let mine: Vec<usize> = members.iter().map(|m| owned(&with(m, doubting))).collect();
                let plain: Vec<usize> = members.iter().map(|m| owned(&view(Some(m), &members, false))).collect();
                assert_eq!(mine, plain, "{doubting:?}");
            }
        }
        // Who may be asked: the others that trust themselves and answer.
        let mut v = with("a", &["c"]);
        assert_eq!(v.askable(), ["b"]);
        v.indirect.remove("b");
        assert!(v.askable().is_empty(), "an older binary is never asked");
    }
}
