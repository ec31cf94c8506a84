//! Transition history and hourly latency of every backend, in memory and
//! bounded: an engine observer fed by the owner task's own reports (probe
//! applied, status changed, backend removed, group deleted, a discovered
//! backend's endpoints changed). A restart starts a fresh history.

mod proto;
pub mod record;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use record::BackendRecord;
pub use record::{CatalogEvent, LatencyPoint, MAX_TRANSITIONS, Transition};

use crate::{ProbeObserver, ProbeResult};
use mcp_health_proto::v1::BackendStatus;

/// Transitions kept for the timeline of all backends.
pub const TIMELINE_LEN: usize = 256;

/// One transition in the timeline of all backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Increases by one with every entry, so readers can ask for what is new.
    pub seq: u64,
    pub group: Arc<str>,
    pub backend: Arc<str>,
    pub transition: Transition,
}

/// A copy of one backend's history, for readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHistory {
    pub group: String,
    pub backend: String,
    pub since_ms: u64,
    pub status: BackendStatus,
    pub transitions: Vec<Transition>,
    pub dropped: u32,
    pub latency: Vec<LatencyPoint>,
    pub catalog_changes: Vec<CatalogEvent>,
    pub ejections: Vec<record::EjectionEvent>,
    /// Failing probes held back while the prober doubted itself.
    pub held: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    #[error("group {0:?} not found")]
    GroupNotFound(String),
    #[error("backend {backend:?} not found in group {group:?}")]
    BackendNotFound { group: String, backend: String },
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, HashMap<String, BackendRecord>>,
    timeline: VecDeque<TimelineEntry>,
    next_seq: u64,
}

/// Every backend's history; cheap to share (`Arc`). Locked briefly by the
/// owner task on each report and by readers to copy one backend or the timeline.
#[derive(Debug)]
pub struct History {
    started_ms: u64,
    inner: Mutex<Inner>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

/// Unix milliseconds of a wall-clock time.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

impl History {
    pub fn new() -> History {
        History {
            started_ms: now_ms(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// When this history began (the daemon's start): nothing older is known.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a record half-written in
        // a way readers could misread (every write is one push or assignment).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of one backend's history as of `now_ms`.
    pub fn backend(&self, group: &str, backend: &str, now_ms: u64) -> Result<BackendHistory, HistoryError> {
        let inner = self.lock();
        let g = inner.groups.get(group).ok_or_else(|| HistoryError::GroupNotFound(group.to_owned()))?;
        let r = g.get(backend).ok_or_else(|| HistoryError::BackendNotFound {
            group: group.to_owned(),
            backend: backend.to_owned(),
        })?;
        Ok(snapshot(group, backend, r, now_ms))
    }

    /// The latency points of every backend in one group, by backend name.
    pub fn latency(&self, group: &str, now_ms: u64) -> HashMap<String, Vec<LatencyPoint>> {
        let inner = self.lock();
        inner
            .groups
            .get(group)
            .map(|g| g.iter().map(|(b, r)| (b.clone(), r.latency.points(now_ms))).collect())
            .unwrap_or_default()
    }

    /// Timeline entries after `after_seq`, oldest first, at most `limit` (the newest).
    pub fn timeline(&self, after_seq: u64, limit: usize) -> Vec<TimelineEntry> {
        let inner = self.lock();
        let newer: Vec<&TimelineEntry> = inner.timeline.iter().filter(|e| e.seq > after_seq).collect();
        newer[newer.len().saturating_sub(limit)..].iter().map(|e| (*e).clone()).collect()
    }

    /// Heap bytes held by the backend records (capacities), for the benchmark.
    pub fn heap_bytes(&self) -> usize {
        let inner = self.lock();
        inner.groups.values().flat_map(|g| g.values()).map(BackendRecord::heap_bytes).sum()
    }

    /// The number of backends with a record.
    pub fn backends(&self) -> usize {
        self.lock().groups.values().map(HashMap::len).sum()
    }

    /// The number of live backends for which `pred(group, backend)` holds
    /// (every backend the engine has gets a record when it is added).
    pub fn count_backends(&self, mut pred: impl FnMut(&str, &str) -> bool) -> usize {
        let inner = self.lock();
        inner.groups.iter().map(|(g, bs)| bs.keys().filter(|b| pred(g, b)).count()).sum()
    }

    fn with_record<T: IntoIterator<Item = Transition>>(&self, group: &str, backend: &str, now: u64, f: impl FnOnce(&mut BackendRecord, bool) -> T) {
        let mut inner = self.lock();
        let g = entry(&mut inner.groups, group, HashMap::new);
        let added = !g.contains_key(backend);
        let r = entry(g, backend, || BackendRecord::new(now));
        for t in f(r, added) {
            let seq = inner.next_seq + 1;
            inner.next_seq = seq;
            if inner.timeline.len() == TIMELINE_LEN {
                inner.timeline.pop_front();
            }
            inner.timeline.push_back(TimelineEntry {
                seq,
                group: group.into(),
                backend: backend.into(),
                transition: t,
            });
        }
    }
}

/// The value at `key`, inserted with `make` when missing; no key is
/// allocated for a lookup that finds one (every probe looks one up).
fn entry<'m, V>(map: &'m mut HashMap<String, V>, key: &str, make: impl FnOnce() -> V) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), make());
    }
    // Inserted just above when missing.
    map.get_mut(key).expect("entry present")
}

fn snapshot(group: &str, backend: &str, r: &BackendRecord, now_ms: u64) -> BackendHistory {
    BackendHistory {
        group: group.to_owned(),
        backend: backend.to_owned(),
        since_ms: r.since_ms,
        status: r.status,
        transitions: r.transitions.iter().cloned().collect(),
        dropped: r.dropped,
        latency: r.latency.points(now_ms),
        catalog_changes: r.catalog_changes.iter().cloned().collect(),
        ejections: r.ejections.iter().cloned().collect(),
        held: r.held,
    }
}

impl History {
    /// A probe result for a live backend at `now_ms` (the observer passes the wall clock).
    pub fn observe_probe(&self, group: &str, backend: &str, now_ms: u64, latency: Duration, reason: &mcp_health_core::outcome::Reason) {
        self.with_record(group, backend, now_ms, |rec, _| {
            rec.probe(now_ms, latency, reason.code, reason.http_status, &reason.message);
            None
        });
    }

    /// A backend's status is now `to`: added (`from` None, first time),
    /// restarted at UNKNOWN (`from` None again) or a transition.
    pub fn observe_status(&self, group: &str, backend: &str, from: Option<BackendStatus>, to: BackendStatus, now_ms: u64) {
        self.with_record(group, backend, now_ms, |rec, added| match from {
            // Added: the record just created starts at UNKNOWN; nothing happened yet.
            None if added => None,
            // Restarted at UNKNOWN by a spec change.
            None => Some(rec.restart(now_ms).clone()),
            Some(_) => Some(rec.transition(now_ms, to).clone()),
        });
    }
}

impl History {
    /// A backend's tool catalog changed at `now_ms`.
    pub fn observe_catalog(&self, group: &str, backend: &str, change: &mcp_health_core::catalog::CatalogChange, now_ms: u64) {
        self.with_record(group, backend, now_ms, |rec, _| {
            rec.catalog_changed(CatalogEvent::new(now_ms, change));
            None
        });
    }
}

impl History {
    /// A backend was ejected from real traffic (Some), or returned (None), at `now_ms`.
    pub fn observe_ejection(&self, group: &str, backend: &str, ejection: Option<&mcp_health_core::outlier::Ejection>, now_ms: u64) {
        self.with_record(group, backend, now_ms, |rec, _| {
            rec.ejection(record::EjectionEvent {
                at_ms: now_ms,
                ejected: ejection.map(|e| {
                    let cause: String = e.cause.chars().take(record::MAX_MESSAGE_CHARS).collect();
                    (cause.into_boxed_str(), unix_ms(e.until), e.count)
                }),
            });
            None
        });
    }
}

impl History {
    /// A discovered backend's endpoints now, at `now_ms`: what changed since
    /// the last report goes into the backend's history with each endpoint's address.
    pub fn observe_endpoints(&self, group: &str, backend: &str, endpoints: &[crate::EndpointView], now_ms: u64) {
        self.with_record(group, backend, now_ms, |rec, _| {
            let n = rec.endpoints_changed(now_ms, endpoints);
            rec.transitions.iter().skip(rec.transitions.len() - n).cloned().collect::<Vec<_>>()
        });
    }
}

impl History {
    /// A failing probe was held back by self-doubt at `now_ms`.
    pub fn observe_held(&self, group: &str, backend: &str, now_ms: u64) {
        self.with_record(group, backend, now_ms, |rec, _| {
            rec.held += 1;
            None
        });
    }
}

impl ProbeObserver for History {
    fn probe_finished(&self, _: &ProbeResult) {}

    fn probe_applied(&self, r: &ProbeResult) {
        self.observe_probe(&r.group, &r.backend, now_ms(), r.latency, &r.outcome.reason);
    }

    fn endpoints(&self, group: &str, backend: &str, endpoints: &[crate::EndpointView]) {
        self.observe_endpoints(group, backend, endpoints, now_ms());
    }

    fn probe_held(&self, group: &str, backend: &str) {
        self.observe_held(group, backend, now_ms());
    }

    fn backend_status(&self, group: &str, backend: &str, from: Option<BackendStatus>, to: BackendStatus) {
        self.observe_status(group, backend, from, to, now_ms());
    }

    fn backend_removed(&self, group: &str, backend: &str) {
        let mut inner = self.lock();
        if let Some(g) = inner.groups.get_mut(group) {
            g.remove(backend);
        }
    }

    fn group_deleted(&self, group: &str, _backends: &[String]) {
        self.lock().groups.remove(group);
    }

    fn catalog_changed(&self, group: &str, backend: &str, change: &mcp_health_core::catalog::CatalogChange) {
        self.observe_catalog(group, backend, change, now_ms());
    }

    fn ejection(&self, group: &str, backend: &str, ejection: Option<&mcp_health_core::outlier::Ejection>, at: std::time::SystemTime) {
        self.observe_ejection(group, backend, ejection, unix_ms(at));
    }
}

#[cfg(test)]
mod tests;
