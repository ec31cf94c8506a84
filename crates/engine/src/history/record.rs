//! One backend's history as plain data: its last transitions (bounded) and a
//! ring of per-minute latency buckets covering the last hour. Pure: every
//! function takes the time it needs; nothing here reads a clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::EndpointView;
use mcp_health_core::snapshot::EndpointState;

use mcp_health_proto::v1::{BackendStatus, ReasonCode};

/// Transitions kept per backend; older ones are dropped (and counted).
pub const MAX_TRANSITIONS: usize = 64;
/// Width of one latency bucket.
pub const BUCKET_MS: u64 = 60_000;
/// Buckets in the ring: one hour of minutes.
pub const BUCKETS: usize = 60;
/// Longest reason message kept (characters); ours are far shorter.
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Catalog changes kept per backend; older ones are dropped.
pub const MAX_CATALOG_CHANGES: usize = 16;
/// Ejections and returns kept per backend; older ones are dropped.
pub const MAX_EJECTION_EVENTS: usize = 16;
/// Tool names kept per list of a catalog change (added, removed, changed);
/// past it one last entry says how many more there were.
pub const MAX_DIFF_NAMES: usize = 64;
/// Longest tool name kept (characters); the MCP spec advises at most 128.
pub const MAX_TOOL_NAME_CHARS: usize = 128;

/// One change of a backend's tool catalog: fingerprints and tool names only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub from: Box<str>,
    pub to: Box<str>,
    pub added: Vec<Box<str>>,
    pub removed: Vec<Box<str>>,
    pub changed: Vec<Box<str>>,
}

/// A backend ejected from real traffic, or returned (`until_ms` None).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EjectionEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Set for an ejection: its cause (ours, cut to `MAX_MESSAGE_CHARS`), end and count.
    pub ejected: Option<(Box<str>, u64, u32)>,
}

/// A list of tool names as history keeps it: each name cut to
/// `MAX_TOOL_NAME_CHARS`, at most `MAX_DIFF_NAMES` names and a last entry
/// "(N more)".
fn names(list: &[String]) -> Vec<Box<str>> {
    let mut kept: Vec<Box<str>> = list
        .iter()
        .take(MAX_DIFF_NAMES)
        .map(|n| match n.char_indices().nth(MAX_TOOL_NAME_CHARS) {
            Some((cut, _)) => n[..cut].into(),
            None => n.as_str().into(),
        })
        .collect();
    if list.len() > MAX_DIFF_NAMES {
        kept.push(format!("({} more)", list.len() - MAX_DIFF_NAMES).into());
    }
    kept
}

impl CatalogEvent {
    pub fn new(at_ms: u64, change: &mcp_health_core::catalog::CatalogChange) -> CatalogEvent {
        let empty = mcp_health_core::catalog::CatalogDiff::default();
        let diff = change.diff.as_ref().unwrap_or(&empty);
        CatalogEvent {
            at_ms,
            from: change.from.as_str().into(),
            to: change.to.as_str().into(),
            added: names(&diff.added),
            removed: names(&diff.removed),
            changed: names(&diff.changed),
        }
    }
}

/// What a probe said, as history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonRecord {
    pub code: ReasonCode,
    pub http_status: Option<u16>,
    pub message: Box<str>,
}

impl ReasonRecord {
    pub fn new(code: ReasonCode, http_status: Option<u16>, message: &str) -> ReasonRecord {
        ReasonRecord {
            code,
            http_status,
            message: bounded(message),
        }
    }
}

fn bounded(message: &str) -> Box<str> {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => message[..cut].into(),
        None => message.into(),
    }
}

/// One status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: BackendStatus,
    pub to: BackendStatus,
    pub reason: ReasonRecord,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The latency of the probe that caused it (None: no probe did).
    pub latency: Option<Duration>,
    /// The discovered endpoint it is about (None: the backend itself). An
    /// endpoint's entry leaves the backend's status as it is.
    pub endpoint: Option<SocketAddr>,
}

/// What history last saw of one discovered endpoint, to tell what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointMark {
    pub status: BackendStatus,
    pub leaving: bool,
    pub refused: bool,
    pub drained: bool,
}

impl EndpointMark {
    fn of(v: &EndpointView) -> EndpointMark {
        EndpointMark {
            status: v.status,
            leaving: v.state == EndpointState::Leaving,
            refused: v.state == EndpointState::Refused,
            drained: v.drained,
        }
    }
}

/// The probes of one minute. Microseconds in u32: one backend probes one at
/// a time, so a minute's sum stays far below 71 minutes (and saturates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// Unix minute this bucket holds; a bucket of another minute is stale.
    minute: u32,
    count: u32,
    sum_us: u32,
    max_us: u32,
}

/// A summary of one minute's probes, for readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyPoint {
    /// Unix time of the minute's start, in milliseconds.
    pub start_ms: u64,
    pub probes: u32,
    pub mean: Duration,
    pub max: Duration,
}

/// A fixed ring of `BUCKETS` one-minute buckets, allocated once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyRing {
    buckets: Box<[Bucket]>,
}

impl Default for LatencyRing {
    fn default() -> Self {
        LatencyRing {
            buckets: vec![Bucket::default(); BUCKETS].into_boxed_slice(),
        }
    }
}

fn minute_of(ms: u64) -> u32 {
    u32::try_from(ms / BUCKET_MS).unwrap_or(u32::MAX)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl LatencyRing {
    pub fn record(&mut self, now_ms: u64, latency: Duration) {
        let minute = minute_of(now_ms);
        let b = &mut self.buckets[minute as usize % BUCKETS];
        if b.minute != minute {
            if b.minute > minute && b.count > 0 {
                // The wall clock went back past this slot's newer minute: keep the newer data.
                return;
            }
            *b = Bucket { minute, ..Bucket::default() };
        }
        let us = micros(latency);
        b.count = b.count.saturating_add(1);
        b.sum_us = b.sum_us.saturating_add(us);
        b.max_us = b.max_us.max(us);
    }

    /// The minutes of the hour ending at `now_ms` that had probes, oldest first.
    pub fn points(&self, now_ms: u64) -> Vec<LatencyPoint> {
        let now = minute_of(now_ms);
        let first = now.saturating_sub(BUCKETS as u32 - 1);
        (first..=now)
            .filter_map(|m| {
                let b = self.buckets[m as usize % BUCKETS];
                (b.minute == m && b.count > 0).then(|| LatencyPoint {
                    start_ms: u64::from(m) * BUCKET_MS,
                    probes: b.count,
                    mean: Duration::from_micros(u64::from(b.sum_us / b.count)),
                    max: Duration::from_micros(u64::from(b.max_us)),
                })
            })
            .collect()
    }
}

/// Everything kept about one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRecord {
    /// When this record started (unix ms): the backend was added or the daemon started.
    pub since_ms: u64,
    pub status: BackendStatus,
    pub transitions: VecDeque<Transition>,
    /// Transitions dropped to keep `MAX_TRANSITIONS`.
    pub dropped: u32,
    /// The latest probe's reason and latency, which the next transition cites.
    pub last: Option<(ReasonRecord, Duration)>,
    pub latency: LatencyRing,
    /// The last `MAX_CATALOG_CHANGES` changes of its tool catalog, oldest first.
    pub catalog_changes: VecDeque<CatalogEvent>,
    /// The last `MAX_EJECTION_EVENTS` ejections and returns, oldest first.
    pub ejections: VecDeque<EjectionEvent>,
    /// Failing probes held back while the prober doubted itself.
    pub held: u64,
    /// A discovered backend's endpoints as last reported, by address.
    pub endpoints: BTreeMap<SocketAddr, EndpointMark>,
}

impl BackendRecord {
    pub fn new(since_ms: u64) -> BackendRecord {
        BackendRecord {
            since_ms,
            status: BackendStatus::Unknown,
            transitions: VecDeque::new(),
            dropped: 0,
            last: None,
            latency: LatencyRing::default(),
            catalog_changes: VecDeque::new(),
            ejections: VecDeque::new(),
            held: 0,
            endpoints: BTreeMap::new(),
        }
    }

    /// A discovered backend's endpoints now (every one, as the engine reports
    /// them on any change): one entry per endpoint whose status moved, or that
    /// was added, refused, left DNS or came back, was drained or undrained, or
    /// was dropped, in that order of addresses then the dropped ones. Returns
    /// how many entries were pushed (the newest ones).
    pub fn endpoints_changed(&mut self, now_ms: u64, views: &[EndpointView]) -> usize {
        let mut pushed = 0;
        let mut seen = BTreeMap::new();
        for v in views {
            let now = EndpointMark::of(v);
            seen.insert(v.address, now);
            let code = v.reason.code;
            let mut event = |rec: &mut BackendRecord, from: BackendStatus, code: ReasonCode, http: Option<u16>, message: &str| {
                rec.push(Transition {
                    from,
                    to: now.status,
                    reason: ReasonRecord::new(code, http, message),
                    at_ms: now_ms,
                    latency: None,
                    endpoint: Some(v.address),
                });
                pushed += 1;
            };
            let Some(was) = self.endpoints.get(&v.address).copied() else {
                if now.refused {
                    event(self, now.status, code, None, &format!("endpoint refused: {}", v.reason.message));
                } else {
                    event(
                        self,
                        now.status,
                        code,
                        None,
                        if now.drained { "endpoint added (drained)" } else { "endpoint added" },
                    );
                }
                continue;
            };
            if was.status != now.status {
                event(self, was.status, code, v.reason.http_status, &v.reason.message);
            }
            if was.leaving != now.leaving {
                event(
                    self,
                    now.status,
                    code,
                    None,
                    if now.leaving { "endpoint left DNS" } else { "endpoint back in DNS" },
                );
            }
            if was.drained != now.drained {
                event(
                    self,
                    now.status,
                    code,
                    None,
                    if now.drained { "endpoint drained" } else { "endpoint no longer drained" },
                );
            }
        }
        let gone: Vec<(SocketAddr, EndpointMark)> = self.endpoints.iter().filter(|(a, _)| !seen.contains_key(a)).map(|(a, m)| (*a, *m)).collect();
        for (address, was) in gone {
            self.push(Transition {
                from: was.status,
                to: was.status,
                reason: ReasonRecord::new(ReasonCode::NotProbed, None, "endpoint dropped"),
                at_ms: now_ms,
                latency: None,
                endpoint: Some(address),
            });
            pushed += 1;
        }
        self.endpoints = seen;
        pushed.min(MAX_TRANSITIONS)
    }

    /// The backend was ejected from real traffic, or returned.
    pub fn ejection(&mut self, event: EjectionEvent) {
        if self.ejections.len() == MAX_EJECTION_EVENTS {
            self.ejections.pop_front();
        }
        self.ejections.push_back(event);
    }

    /// The backend's tool catalog changed.
    pub fn catalog_changed(&mut self, event: CatalogEvent) {
        if self.catalog_changes.len() == MAX_CATALOG_CHANGES {
            self.catalog_changes.pop_front();
        }
        self.catalog_changes.push_back(event);
    }

    /// A probe result for this backend: its latency and reason.
    pub fn probe(&mut self, now_ms: u64, latency: Duration, code: ReasonCode, http_status: Option<u16>, message: &str) {
        self.latency.record(now_ms, latency);
        match &mut self.last {
            // The steady state repeats one reason: keep the allocation.
            Some((r, l)) if r.code == code && r.http_status == http_status && *r.message == *bounded_ref(message) => *l = latency,
            last => *last = Some((ReasonRecord::new(code, http_status, message), latency)),
        }
    }

    /// The status changed to `to` because of the latest probe.
    pub fn transition(&mut self, now_ms: u64, to: BackendStatus) -> &Transition {
        let (reason, latency) = match &self.last {
            Some((r, l)) => (r.clone(), Some(*l)),
            None => (ReasonRecord::new(ReasonCode::NotProbed, None, "no probe result"), None),
        };
        self.push(Transition {
            from: self.status,
            to,
            reason,
            at_ms: now_ms,
            latency,
            endpoint: None,
        })
    }

    /// The backend's spec changed and it starts over at UNKNOWN.
    pub fn restart(&mut self, now_ms: u64) -> &Transition {
        self.last = None;
        self.push(Transition {
            from: self.status,
            to: BackendStatus::Unknown,
            reason: ReasonRecord::new(ReasonCode::NotProbed, None, "spec changed; restarted at UNKNOWN"),
            at_ms: now_ms,
            latency: None,
            endpoint: None,
        })
    }

    fn push(&mut self, t: Transition) -> &Transition {
        if self.transitions.len() == MAX_TRANSITIONS {
            self.transitions.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        if t.endpoint.is_none() {
            self.status = t.to;
        }
        self.transitions.push_back(t);
        // Just pushed, so the deque is not empty.
        self.transitions.back().expect("a transition was just pushed")
    }

    /// Heap bytes this record holds (capacities, not lengths), for the benchmark.
    pub fn heap_bytes(&self) -> usize {
        let reason = |r: &ReasonRecord| r.message.len();
        self.transitions.capacity() * std::mem::size_of::<Transition>()
            + self.transitions.iter().map(|t| reason(&t.reason)).sum::<usize>()
            + self.last.as_ref().map_or(0, |(r, _)| reason(r))
            + BUCKETS * std::mem::size_of::<Bucket>()
            + self.catalog_changes.capacity() * std::mem::size_of::<CatalogEvent>()
            + self.ejections.capacity() * std::mem::size_of::<EjectionEvent>()
            + self.endpoints.len() * std::mem::size_of::<(SocketAddr, EndpointMark)>()
    }
}

fn bounded_ref(message: &str) -> &str {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => &message[..cut],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = BUCKET_MS;
    const T0: u64 = 1_800_000_000_000; // some minute boundary-aligned unix ms
    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Each row: probes (offset ms from T0, latency ms); then the expected
    /// points at `now` as (minute offset, probes, mean ms, max ms).
    fn ring_case(name: &str, probes: &[(u64, u64)], now: u64, want: &[(u64, u32, u64, u64)]) {
        let mut ring = LatencyRing::default();
        for &(at, l) in probes {
            ring.record(T0 + at, ms(l));
        }
        let got: Vec<_> = ring
            .points(T0 + now)
            .into_iter()
            .map(|p| ((p.start_ms - T0) / MIN, p.probes, p.mean.as_millis() as u64, p.max.as_millis() as u64))
            .collect();
        assert_eq!(got, want, "{name}");
    }

    #[test]
    fn latency_ring_table() {
        let t0 = T0 - T0 % MIN;
        assert_eq!(t0, T0, "T0 is minute-aligned");
        ring_case("empty", &[], 0, &[]);
        ring_case("one minute", &[(0, 10), (1_000, 30)], 5_000, &[(0, 2, 20, 30)]);
        ring_case("two minutes", &[(0, 10), (MIN, 30)], MIN, &[(0, 1, 10, 10), (1, 1, 30, 30)]);
        // A minute 60 later reuses the slot of minute 0, which is then stale.
        ring_case("slot reused", &[(0, 10), (60 * MIN, 50)], 60 * MIN, &[(60, 1, 50, 50)]);
        // An hour later with no probes in between: nothing left.
        ring_case("aged out", &[(0, 10), (MIN, 20)], 61 * MIN, &[]);
        ring_case("edge of the hour", &[(0, 10), (MIN, 20)], 60 * MIN, &[(1, 1, 20, 20)]);
        // The clock going back does not overwrite a newer minute in the slot.
        ring_case("clock back", &[(60 * MIN, 50), (0, 10)], 60 * MIN, &[(60, 1, 50, 50)]);
    }

    /// Drives a record with steps and checks the transitions it keeps.
    enum Step {
        Probe(u64, ReasonCode, &'static str),
        To(BackendStatus),
        Restart,
    }

    fn record_case(name: &str, steps: &[Step], want: &[(BackendStatus, BackendStatus, ReasonCode, Option<u64>)]) {
        let mut r = BackendRecord::new(T0);
        for (i, s) in steps.iter().enumerate() {
            let now = T0 + i as u64 * 1000;
            match s {
                Step::Probe(l, code, msg) => r.probe(now, ms(*l), *code, None, msg),
                Step::To(to) => {
                    r.transition(now, *to);
                }
                Step::Restart => {
                    r.restart(now);
                }
            }
        }
        let got: Vec<_> = r
            .transitions
            .iter()
            .map(|t| (t.from, t.to, t.reason.code, t.latency.map(|l| l.as_millis() as u64)))
            .collect();
        assert_eq!(got, want, "{name}");
    }

    #[test]
    fn transitions_table() {
        use BackendStatus::*;
        use Step::*;
        record_case("no transition", &[Probe(5, ReasonCode::Ok, "ok")], &[]);
        record_case(
            "cites the probe that caused it",
            &[
                Probe(5, ReasonCode::Ok, "ok"),
                To(Healthy),
                Probe(900, ReasonCode::Timeout, "no reply"),
                To(Degraded),
            ],
            &[(Unknown, Healthy, ReasonCode::Ok, Some(5)), (Healthy, Degraded, ReasonCode::Timeout, Some(900))],
        );
        record_case(
            "restart goes to UNKNOWN without a latency",
            &[Probe(5, ReasonCode::Ok, "ok"), To(Healthy), Restart, To(Healthy)],
            &[
                (Unknown, Healthy, ReasonCode::Ok, Some(5)),
                (Healthy, Unknown, ReasonCode::NotProbed, None),
                (Unknown, Healthy, ReasonCode::NotProbed, None),
            ],
        );
    }

    #[test]
    fn transitions_are_bounded_and_counted() {
        let mut r = BackendRecord::new(T0);
        for i in 0..(MAX_TRANSITIONS as u64 * 3) {
            r.probe(T0 + i, ms(i), ReasonCode::Ok, None, "ok");
            r.transition(T0 + i, if i % 2 == 0 { BackendStatus::Healthy } else { BackendStatus::Unhealthy });
        }
        assert_eq!(r.transitions.len(), MAX_TRANSITIONS);
        assert_eq!(r.transitions.capacity(), MAX_TRANSITIONS, "the deque never grows past the bound");
        assert_eq!(r.dropped as usize, MAX_TRANSITIONS * 2);
        assert_eq!(r.transitions.front().map(|t| t.at_ms), Some(T0 + MAX_TRANSITIONS as u64 * 2));
    }

    #[test]
    fn messages_are_bounded_and_reused() {
        let mut r = BackendRecord::new(T0);
        let long = "é".repeat(MAX_MESSAGE_CHARS * 2);
        r.probe(T0, ms(1), ReasonCode::Protocol, None, &long);
        let first = r.last.as_ref().map(|(m, _)| m.message.as_ptr());
        assert_eq!(r.last.as_ref().map(|(m, _)| m.message.chars().count()), Some(MAX_MESSAGE_CHARS));
        r.probe(T0 + 1, ms(2), ReasonCode::Protocol, None, &long);
        assert_eq!(r.last.as_ref().map(|(m, _)| m.message.as_ptr()), first, "same reason: no new allocation");
        assert_eq!(r.last.as_ref().map(|(_, l)| *l), Some(ms(2)));
    }
}
