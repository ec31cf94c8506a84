//! Reports of real traffic (`ReportOutcomes`, the Envoy ALS edge) forwarded
//! to their backend's owner, which alone folds them: only the owner probes a
//! backend, so only it could confirm an ejection or end it. The engine hands
//! a report for a backend another replica owns to `ReportQueue::push` (never
//! waiting: a full queue drops it and counts it); `send_reports` takes what
//! gathered every `BATCH_EVERY`, routes it by owner (`route_reports`) and
//! writes one `ReportBatch` per owner at `{prefix}/reports/{owner}/{batch}`
//! under this replica's lease (so a batch of a dead sender goes with it);
//! `fold_reports`, on the owner, folds each batch addressed to it through
//! `Engine::report_forwarded_outcomes` (one hop: a batch for a backend the
//! owner no longer owns is counted, never forwarded again) and deletes it.
//! A report travels one etcd write, however many a gateway sends: the
//! batches are bounded by the queue, not by the reports.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::etcd::{Etcd, delete_op, exists};
use super::follow::{Change, follow};
use super::forward::{decode, encode, request_id};
use super::keys::Keys;
use super::status::{ClusterStatus, MemberView};
use crate::etcd_api::etcdserverpb::TxnRequest;
use crate::etcd_api::mvccpb::KeyValue;
use mcp_health_core::outlier::TrafficOutcome;
use mcp_health_engine::{Engine, ReportOrigin};

/// How long reports gather before they are written: one etcd write per
/// owner per period, however many reports came.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);

/// The most reports waiting for their owners; past it, reports are dropped
/// (and counted) rather than wait on etcd or grow without bound.
pub const QUEUE_LIMIT: usize = 10_000;

/// A backend, as reports name it.
type Backend = (String, String);

/// Reports waiting for their owners, by backend in arrival order.
#[derive(Debug, Default)]
pub struct ReportQueue {
    pending: Mutex<Pending>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    by_backend: BTreeMap<Backend, Vec<TrafficOutcome>>,
    count: usize,
}

impl ReportQueue {
    /// Queues `outcomes` for the owner of `group/backend`; false (nothing
    /// queued) when they would pass `QUEUE_LIMIT`. Never waits.
    pub fn push(&self, group: &str, backend: &str, outcomes: &[TrafficOutcome]) -> bool {
        {
            let mut p = self.lock();
            if p.count + outcomes.len() > QUEUE_LIMIT {
                return false;
            }
            p.count += outcomes.len();
            p.by_backend
                .entry((group.to_owned(), backend.to_owned()))
                .or_default()
                .extend_from_slice(outcomes);
        }
        // Stores a permit when the sender is not waiting, so no push is missed.
        self.ready.notify_one();
        true
    }

    /// Everything queued, by backend; the queue is empty after.
    pub fn take_all(&self) -> BTreeMap<Backend, Vec<TrafficOutcome>> {
        let mut p = self.lock();
        p.count = 0;
        std::mem::take(&mut p.by_backend)
    }

    pub fn len(&self) -> usize {
        self.lock().count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Each method changes the queue in one step: a panic elsewhere while
        // holding the lock leaves whole entries behind.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a backend's reports go.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    /// To this member, through etcd.
    Owner(String),
    /// Folded here after all: this replica owns the backend now, is degraded
    /// (fail-static: it probes everything itself) or has not joined.
    Here,
}

/// The reports of each backend, by where they go under `view` (the owner
/// there, as `ProbeBackend` routes, `forward::route`).
pub fn route_reports(view: &MemberView, pending: BTreeMap<Backend, Vec<TrafficOutcome>>) -> BTreeMap<Destination, Vec<(Backend, Vec<TrafficOutcome>)>> {
    let mut routes: BTreeMap<Destination, Vec<(Backend, Vec<TrafficOutcome>)>> = BTreeMap::new();
    for ((group, backend), outcomes) in pending {
        let to = match view.owner(&group, &backend) {
            Some(owner) if view.me.as_deref() != Some(owner) => Destination::Owner(owner.to_owned()),
            _ => Destination::Here,
        };
        routes.entry(to).or_default().push(((group, backend), outcomes));
    }
    routes
}

/// `{prefix}/reports/{owner}/{batch}`: reports for the owner's backends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBatch {
    /// The member id that forwarded them.
    pub sender: String,
    pub reports: Vec<BackendReports>,
}

/// One backend's reports in a batch, in the order they came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendReports {
    pub group: String,
    pub backend: String,
    /// Each outcome by `outcome_name`.
    pub outcomes: Vec<String>,
}

/// An outcome as a batch carries it: short, readable with etcdctl, and
/// ours (not the API's enum numbers).
pub fn outcome_name(o: &TrafficOutcome) -> String {
    match *o {
        TrafficOutcome::Ok => "ok".to_owned(),
        TrafficOutcome::ConnectFailure => "connect".to_owned(),
        TrafficOutcome::Reset => "reset".to_owned(),
        TrafficOutcome::Timeout => "timeout".to_owned(),
        TrafficOutcome::HttpStatus(s) => format!("http:{s}"),
        TrafficOutcome::JsonRpcError { code, tools_call: true } => format!("jsonrpc:{code}:tools/call"),
        TrafficOutcome::JsonRpcError { code, tools_call: false } => format!("jsonrpc:{code}"),
        TrafficOutcome::ToolError => "tool".to_owned(),
    }
}

/// The outcome `outcome_name` wrote; None for a name this binary does not know.
pub fn outcome_of(name: &str) -> Option<TrafficOutcome> {
    Some(match name {
        "ok" => TrafficOutcome::Ok,
        "connect" => TrafficOutcome::ConnectFailure,
        "reset" => TrafficOutcome::Reset,
        "timeout" => TrafficOutcome::Timeout,
        "tool" => TrafficOutcome::ToolError,
        _ => {
            if let Some(status) = name.strip_prefix("http:") {
                TrafficOutcome::HttpStatus(status.parse().ok()?)
            } else {
                let rest = name.strip_prefix("jsonrpc:")?;
                let (code, tools_call) = match rest.strip_suffix(":tools/call") {
                    Some(code) => (code, true),
                    None => (rest, false),
                };
                TrafficOutcome::JsonRpcError {
                    code: code.parse().ok()?,
                    tools_call,
                }
            }
        }
    })
}

impl BackendReports {
    fn new(((group, backend), outcomes): (Backend, Vec<TrafficOutcome>)) -> BackendReports {
        BackendReports {
            group,
            backend,
            outcomes: outcomes.iter().map(outcome_name).collect(),
        }
    }
}

/// Writes the queued reports to their owners until `cancel`, a batch per
/// owner every `BATCH_EVERY`. Reports whose backend this replica owns by
/// then (or all, while degraded) are folded here.
pub async fn send_reports(etcd: Etcd, keys: Keys, status: ClusterStatus, queue: std::sync::Arc<ReportQueue>, engine: Engine, cancel: CancellationToken) {
    let mut next: u64 = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = queue.ready.notified() => {}
        }
        // Let a burst gather into one write per owner.
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(BATCH_EVERY) => {}
        }
        let pending = queue.take_all();
        if pending.is_empty() {
            continue;
        }
        let (routes, me, lease) = status.with_view(|v| (route_reports(v, pending), v.me.clone(), v.lease));
        for (to, reports) in routes {
            let n: usize = reports.iter().map(|(_, o)| o.len()).sum();
            let (owner, me) = match (to, &me) {
                (Destination::Owner(owner), Some(me)) => (owner, me),
                _ => {
                    for ((group, backend), outcomes) in reports {
                        let _ = engine.report_outcomes(group, backend, outcomes, ReportOrigin::Forwarded).await;
                    }
                    continue;
                }
            };
            let batch = ReportBatch {
                sender: me.clone(),
                reports: reports.into_iter().map(BackendReports::new).collect(),
            };
            let key = keys.report_batch(&owner, &request_id(me, next));
            next += 1;
            match etcd.put(&key, encode(&batch), lease).await {
                Ok(_) => {
                    status.counters.reports_forwarded.fetch_add(n as u64, Ordering::Relaxed);
                    debug!(owner, reports = n, "reports forwarded to their owner");
                }
                Err(e) => {
                    status.etcd_error();
                    status.counters.reports_dropped.fetch_add(n as u64, Ordering::Relaxed);
                    warn!(owner, reports = n, error = %e, "cannot forward reports to their owner; dropped");
                }
            }
        }
    }
}

/// Folds the batches addressed to this member until `cancel`, each once,
/// and deletes each folded batch.
pub async fn fold_reports(etcd: Etcd, keys: Keys, status: ClusterStatus, engine: Engine, cancel: CancellationToken) {
    let mut changes = follow(etcd.clone(), keys.reports(), None, status.clone(), cancel);
    let owner = Folder { etcd, keys, status, engine };
    // Batches folded whose key is not gone yet: never folded twice, also
    // when a re-read after a watch failure shows them again.
    let mut folded: HashSet<Vec<u8>> = HashSet::new();
    while let Some(change) = changes.recv().await {
        match change {
            Change::Reset(kvs) => {
                let present: HashSet<&Vec<u8>> = kvs.iter().map(|kv| &kv.key).collect();
                folded.retain(|k| present.contains(k));
                for kv in &kvs {
                    owner.fold(kv, &mut folded).await;
                }
            }
            Change::Put(kv) => owner.fold(&kv, &mut folded).await,
            Change::Delete(kv) => {
                folded.remove(&kv.key);
            }
        }
    }
}

struct Folder {
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
    engine: Engine,
}

impl Folder {
    async fn fold(&self, kv: &KeyValue, folded: &mut HashSet<Vec<u8>>) {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let Some((to, _)) = self.keys.report_batch_of(&key) else { return };
        if self.status.with_view(|v| v.me.as_deref() != Some(to)) || !folded.insert(kv.key.clone()) {
            return;
        }
        match decode::<ReportBatch>(&kv.value) {
            None => warn!(key, "ignoring an undecodable batch of reports"),
            Some(batch) => {
                for r in batch.reports {
                    let outcomes: Vec<TrafficOutcome> = r.outcomes.iter().filter_map(|o| outcome_of(o)).collect();
                    let n = outcomes.len() as u64;
                    match self
                        .engine
                        .report_outcomes(r.group.clone(), r.backend.clone(), outcomes, ReportOrigin::Forwarded)
                        .await
                    {
                        Ok(summary) => {
                            self.status.counters.reports_folded.fetch_add(u64::from(summary.accepted), Ordering::Relaxed);
                        }
                        Err(e) => debug!(group = r.group, backend = r.backend, reports = n, error = %e, "forwarded reports not folded"),
                    }
                }
            }
        }
        let txn = TxnRequest {
            compare: vec![exists(&key)],
            success: vec![delete_op(&key)],
            failure: vec![],
        };
        if let Err(e) = self.etcd.txn(txn).await {
            self.status.etcd_error();
            debug!(key, error = %e, "cannot delete a folded batch of reports; it goes with its sender's lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_outcome_round_trips_by_name() {
        use TrafficOutcome as O;
        let cases: &[(O, &str)] = &[
            (O::Ok, "ok"),
            (O::ConnectFailure, "connect"),
            (O::Reset, "reset"),
            (O::Timeout, "timeout"),
            (O::HttpStatus(503), "http:503"),
            (
                O::JsonRpcError {
                    code: -32000,
                    tools_call: true,
                },
                "jsonrpc:-32000:tools/call",
            ),
            (
                O::JsonRpcError {
                    code: -32601,
                    tools_call: false,
                },
                "jsonrpc:-32601",
            ),
            (O::ToolError, "tool"),
        ];
        for (outcome, name) in cases {
            assert_eq!(outcome_name(outcome), *name);
            assert_eq!(outcome_of(name), Some(*outcome), "{name}");
        }
        for unknown in ["", "http:", "http:x", "jsonrpc:", "jsonrpc:x:tools/call", "something-new", "http:70000"] {
            assert_eq!(outcome_of(unknown), None, "{unknown}");
        }
    }

    fn view(me: Option<&str>, members: &[&str], degraded: bool) -> MemberView {
        MemberView {
            me: me.map(str::to_owned),
            lease: 1,
            members: members.iter().map(|m| (*m).to_owned()).collect::<BTreeSet<_>>(),
            degraded: degraded.then(|| "etcd unreachable".to_owned()),
            ..Default::default()
        }
    }

    /// Each backend's reports go to its owner (the member `ownership`
    /// names, as for `ProbeBackend`), one entry per owner; to none of them
    /// when this replica owns the backend, is degraded or has not joined.
    #[test]
    fn reports_are_routed_to_each_backends_owner() {
        let members = ["m1", "m2", "m3"];
        let backends: Vec<Backend> = (0..12).map(|i| ("g".to_owned(), format!("b{i}"))).collect();
        let pending = || -> BTreeMap<Backend, Vec<TrafficOutcome>> { backends.iter().map(|b| (b.clone(), vec![TrafficOutcome::Timeout; 2])).collect() };
        // (this replica, live members, degraded) -> every backend's destination.
        type Case<'a> = (Option<&'a str>, &'a [&'a str], bool);
        let cases: &[Case] = &[
            (Some("m1"), &members, false),
            (Some("m2"), &members, false),
            (Some("m1"), &members, true),
            (None, &members, false),
            (Some("m1"), &["m1"], false),
        ];
        for (me, live, degraded) in cases {
            let v = view(*me, live, *degraded);
            let routes = route_reports(&v, pending());
            let mut seen = 0;
            for (to, reports) in &routes {
                for ((group, backend), outcomes) in reports {
                    seen += 1;
                    assert_eq!(outcomes.len(), 2, "every report of a backend travels together");
                    let want = match v.owner(group, backend) {
                        Some(owner) if Some(owner) != v.me.as_deref() => Destination::Owner(owner.to_owned()),
                        _ => Destination::Here,
                    };
                    assert_eq!(*to, want, "{me:?} {live:?} degraded {degraded}: {backend}");
                }
            }
            assert_eq!(seen, backends.len(), "no backend lost or doubled");
            let owners: Vec<&Destination> = routes.keys().collect();
            match (me, *degraded, live.len()) {
                // Degraded, not joined, or alone: nothing leaves this replica.
                (_, true, _) | (None, _, _) | (_, _, 1) => assert_eq!(owners, [&Destination::Here], "{me:?}"),
                // Joined with two others: 12 backends spread over all three,
                // the other two as destinations, this one's own folded here.
                _ => {
                    assert_eq!(owners.len(), 3, "{owners:?}");
                    assert!(!owners.contains(&&Destination::Owner(me.unwrap().to_owned())), "{owners:?}");
                }
            }
        }
    }

    #[test]
    fn the_queue_is_bounded_and_drops_rather_than_grows() {
        let q = ReportQueue::default();
        assert!(q.push("g", "a", &vec![TrafficOutcome::Timeout; QUEUE_LIMIT - 1]));
        assert!(!q.push("g", "b", &[TrafficOutcome::Ok, TrafficOutcome::Ok]), "past the limit: dropped");
        assert!(q.push("g", "b", &[TrafficOutcome::Ok]), "up to the limit: queued");
        assert_eq!(q.len(), QUEUE_LIMIT);
        let taken = q.take_all();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[&("g".to_owned(), "b".to_owned())], [TrafficOutcome::Ok]);
        assert!(q.is_empty());
        assert!(q.push("g", "a", &[TrafficOutcome::Timeout]), "room again once taken");
    }

    #[test]
    fn a_batch_is_plain_json() {
        let batch = ReportBatch {
            sender: "aa".into(),
            reports: vec![BackendReports::new((
                ("g".into(), "b".into()),
                vec![TrafficOutcome::HttpStatus(503), TrafficOutcome::Ok],
            ))],
        };
        let json: serde_json::Value = serde_json::from_slice(&encode(&batch)).unwrap();
        assert_eq!(json["reports"][0]["outcomes"], serde_json::json!(["http:503", "ok"]));
        assert_eq!(decode::<ReportBatch>(&encode(&batch)), Some(batch));
    }
}
