//! The checker: reads the recorded history after the run and lists every
//! violation of the cluster's invariants. Writes are judged in etcd
//! revisions (the order the recorder's watch delivered), probes in the
//! fleet's own log; instants only order events of this one process' clock
//! (a fault began before a verdict arrived), never as tolerances, except the
//! one the invariant itself names (one lease TTL around a membership change).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::membership::member_id;
use mcp_health::cluster::record::VerdictRecord;
use mcp_health::proto::v1::{BackendStatus, GroupSpec};
use prost::Message;

use crate::history::{EtcdEvent, FaultKind, History, OpKind, Outcome, is_snapshot};
use crate::load::nonce_of;
use crate::sut::{INTERVAL_MS, PREFIX, TTL_S};

#[derive(Debug, Default)]
pub struct Verdict {
    /// Safety: lost/reordered writes, stale-owner writes, double probing, UNHEALTHY while reachable, Watch order.
    pub safety: Vec<String>,
    /// Liveness: no convergence after a heal within the cap.
    pub liveness: Vec<String>,
    pub writes_checked: usize,
    pub verdicts_checked: usize,
    pub probe_windows_checked: usize,
    pub watch_messages_checked: usize,
}

pub fn check(h: &History, fleet_sources: &[IpAddr]) -> Verdict {
    let mut v = Verdict::default();
    let keys = Keys::new(PREFIX);
    check_mutations(h, &keys, &mut v);
    check_fencing(h, &keys, &mut v);
    check_incarnations(h, &keys, &mut v);
    check_probes(h, &keys, fleet_sources, &mut v);
    check_unhealthy(h, &keys, fleet_sources, &mut v);
    check_watches(h, &mut v);
    for f in &h.faults {
        if f.converged.is_none() {
            v.liveness.push(format!("no convergence within the cap after {:?}", f.kind));
        }
    }
    v
}

/// The effect an operation has on its group's key, if it commits.
fn matches(kind: &OpKind, e: &EtcdEvent, previous: Option<&GroupSpec>) -> bool {
    let spec = || GroupSpec::decode(e.value.as_slice()).ok();
    match kind {
        OpKind::Delete => !e.put,
        OpKind::Apply { nonce, backends } => {
            e.put
                && spec().is_some_and(|s| {
                    let names: Vec<&str> = s.backends.iter().map(|b| b.name.as_str()).collect();
                    nonce_of(&s) == Some(*nonce) && names.len() == backends.len() && backends.iter().all(|b| names.contains(&b.as_str()))
                })
        }
        OpKind::Drain { backend, drain } => {
            e.put
                && spec().is_some_and(|s| {
                    let same_apply = previous.is_some_and(|p| nonce_of(p) == nonce_of(&s));
                    same_apply && s.backends.iter().any(|b| &b.name == backend && b.drain == *drain)
                })
        }
    }
}

/// No acknowledged apply/delete/drain lost or out of order: each group's
/// operations ran one at a time, so their effects must appear on the
/// group's key in that order, each acknowledged write at the generation its
/// reply gave; an indeterminate one may appear or not; nothing else may.
fn check_mutations(h: &History, keys: &Keys, v: &mut Verdict) {
    let mut per_group: BTreeMap<&str, Vec<&EtcdEvent>> = BTreeMap::new();
    for e in &h.events {
        if let Some(g) = keys.group_name(&e.key) {
            per_group.entry(g).or_default().push(e);
        }
    }
    let mut ops_per_group: BTreeMap<&str, Vec<&crate::history::Op>> = BTreeMap::new();
    for op in &h.ops {
        ops_per_group.entry(op.group.as_str()).or_default().push(op);
    }
    'groups: for (group, ops) in ops_per_group {
        let events = per_group.remove(group).unwrap_or_default();
        let mut cursor = 0;
        let mut previous: Option<GroupSpec> = None;
        for (k, op) in ops.iter().enumerate() {
            let next = events.get(cursor).copied();
            let mut hit = next.is_some_and(|e| matches(&op.kind, e, previous.as_ref()));
            // An indeterminate op must not take the write that the next
            // acknowledged one names by its generation (two drains of the
            // same backend look alike).
            if hit
                && matches!(op.outcome, Outcome::Indeterminate(_))
                && let Some(e) = next
                && let Some(later) = ops[k + 1..].iter().find(|o| matches!(o.outcome, Outcome::Acked { changed: true, .. }))
                && let Outcome::Acked { generation, .. } = later.outcome
                && generation == e.version as u64
                && matches(&later.kind, e, previous.as_ref())
            {
                hit = false;
            }
            // Whether the key exists after the writes matched so far.
            let present = previous.is_some();
            // A delete acknowledged by a replica whose view still had the
            // group, when etcd had already deleted it, deletes nothing: the
            // group is absent after it either way.
            let no_op_delete = matches!(op.kind, OpKind::Delete) && !present && !hit;
            let writes = match &op.outcome {
                Outcome::Acked { changed, .. } => *changed && !no_op_delete,
                Outcome::Indeterminate(_) => hit,
                Outcome::Failed(_) => false,
            };
            if let (Outcome::Acked { generation, changed: true }, false, false) = (&op.outcome, hit, no_op_delete) {
                let before: Vec<String> = ops[k.saturating_sub(4)..k]
                    .iter()
                    .map(|o| format!("{:?} on {} -> {:?}", o.kind, o.replica, o.outcome))
                    .collect();
                let around: Vec<String> = events[cursor.saturating_sub(2)..(cursor + 2).min(events.len())]
                    .iter()
                    .map(|e| describe(Some(e)))
                    .collect();
                v.safety.push(format!(
                    "group {group}: acknowledged op #{k} {:?} (generation {generation}, on replica {}) is not the next write on its key; next: {}; ops before: {before:?}; writes around: {around:?}",
                    op.kind,
                    op.replica,
                    describe(next)
                ));
                continue 'groups;
            }
            if writes {
                let e = events[cursor];
                v.writes_checked += 1;
                if let (Outcome::Acked { generation, .. }, true) = (&op.outcome, e.put)
                    && *generation != e.version as u64
                {
                    v.safety.push(format!(
                        "group {group}: op #{k} {:?} acknowledged generation {generation} but wrote version {} at revision {}",
                        op.kind, e.version, e.mod_revision
                    ));
                }
                previous = if e.put { GroupSpec::decode(e.value.as_slice()).ok() } else { None };
                cursor += 1;
            }
        }
        for e in &events[cursor..] {
            v.safety.push(format!("group {group}: a write no operation explains: {}", describe(Some(e))));
        }
    }
    for (group, events) in per_group {
        v.safety.push(format!("group {group}: {} writes with no operation on it", events.len()));
    }
}

fn describe(e: Option<&EtcdEvent>) -> String {
    match e {
        None => "none".into(),
        Some(e) if !e.put => format!("DELETE at revision {}", e.mod_revision),
        Some(e) => {
            let s = GroupSpec::decode(e.value.as_slice()).ok();
            let backends: Vec<(String, bool)> = s.iter().flat_map(|s| s.backends.iter().map(|b| (b.name.clone(), b.drain))).collect();
            format!(
                "PUT version {} at revision {} (nonce {:?}, backends {backends:?})",
                e.version,
                e.mod_revision,
                s.as_ref().and_then(nonce_of)
            )
        }
    }
}

/// (created, deleted) revisions of each member key.
fn member_lives(h: &History, keys: &Keys) -> HashMap<String, (i64, i64)> {
    let mut lives: HashMap<String, (i64, i64)> = HashMap::new();
    for e in &h.events {
        if let Some(m) = keys.member_id(&e.key) {
            let life = lives.entry(m.to_owned()).or_insert((e.create_revision, i64::MAX));
            if e.put {
                life.0 = life.0.min(e.create_revision);
            } else {
                life.1 = e.mod_revision;
            }
        }
    }
    lives
}

/// No stale-owner write: every verdict's mod revision lies inside its
/// writer's member key's life (created before, not yet deleted). And each
/// member key lives under its own lease (the member id is the lease in hex).
fn check_fencing(h: &History, keys: &Keys, v: &mut Verdict) {
    let lives = member_lives(h, keys);
    for e in h.events.iter().filter(|e| e.put) {
        if let Some(m) = keys.member_id(&e.key)
            && member_id(e.lease) != m
        {
            v.safety
                .push(format!("member key {m} written under lease {:x} at revision {}", e.lease, e.mod_revision));
        }
    }
    for e in h.events.iter().filter(|e| e.put && keys.verdict_of(&e.key).is_some()) {
        v.verdicts_checked += 1;
        let Some(sv) = VerdictRecord::decode(&e.value) else {
            v.safety.push(format!("verdict {} at revision {}: not a verdict record", e.key, e.mod_revision));
            continue;
        };
        match lives.get(&sv.writer) {
            Some((created, deleted)) if *created < e.mod_revision && e.mod_revision < *deleted => {}
            life => v.safety.push(format!(
                "stale-owner write: verdict {} at revision {} by {} whose member key lived {life:?}",
                e.key, e.mod_revision, sv.writer
            )),
        }
    }
}

/// No verdict of another incarnation: each verdict written names the
/// incarnation of its group that existed at its revision (the group key's
/// create revision), or none while no group of that name existed.
fn check_incarnations(h: &History, keys: &Keys, v: &mut Verdict) {
    let mut events: Vec<&EtcdEvent> = h.events.iter().collect();
    events.sort_by_key(|e| e.mod_revision);
    // Group name -> the create revision of its incarnation in etcd now.
    let mut live: HashMap<&str, i64> = HashMap::new();
    for e in events {
        if let Some(g) = keys.group_name(&e.key) {
            if e.put {
                live.insert(g, e.create_revision);
            } else {
                live.remove(g);
            }
        } else if e.put
            && let Some((g, _)) = keys.verdict_of(&e.key)
            && let Some(record) = VerdictRecord::decode(&e.value)
            && record.group_created.is_some()
            && record.group_created != live.get(g).copied()
        {
            v.safety.push(format!(
                "verdict {} at revision {} is for the incarnation created at {:?}; etcd then had {:?}",
                e.key,
                e.mod_revision,
                record.group_created,
                live.get(g)
            ));
        }
    }
}

/// Which replica had member id `m` (from the replicas' own status).
fn replica_of_member(h: &History) -> HashMap<String, usize> {
    h.status
        .iter()
        .filter(|s| !s.member.is_empty())
        .map(|s| (s.member.clone(), s.replica))
        .collect()
}

/// Instants a replica may probe everything (fail-static): when it said it
/// was degraded (one status poll either side), and while its etcd link was
/// cut plus one TTL.
fn fail_static(h: &History, replica: usize, at: Instant) -> bool {
    let poll = Duration::from_millis(300);
    let ttl = Duration::from_secs(TTL_S);
    let said = h
        .status
        .iter()
        .any(|s| s.replica == replica && s.degraded && s.at + poll >= at && s.at <= at + poll);
    let cut = h
        .faults
        .iter()
        .any(|f| matches!(f.kind, FaultKind::PartitionEtcd(r) | FaultKind::PartitionBoth(r) if r == replica) && f.start <= at && at <= f.healed + ttl);
    said || cut
}

/// No backend probed by two replicas in the same interval, except within
/// one lease TTL of a membership change, or while one of them is fail-static.
fn check_probes(h: &History, keys: &Keys, sources: &[IpAddr], v: &mut Verdict) {
    let Some(origin) = h.requests.iter().map(|r| r.at).min() else { return };
    let interval = Duration::from_millis(INTERVAL_MS);
    let ttl = Duration::from_secs(TTL_S);
    let changes: Vec<Instant> = h.events.iter().filter(|e| keys.member_id(&e.key).is_some()).map(|e| e.arrived).collect();
    let mut windows: BTreeMap<(usize, u64), BTreeMap<usize, Instant>> = BTreeMap::new();
    for r in &h.requests {
        let Some(replica) = r.source.and_then(|s| sources.iter().position(|x| *x == s)) else {
            continue;
        };
        let w = (r.at - origin).as_millis() as u64 / INTERVAL_MS;
        windows.entry((r.backend, w)).or_default().entry(replica).or_insert(r.at);
    }
    for ((backend, w), probers) in windows {
        v.probe_windows_checked += 1;
        if probers.len() < 2 {
            continue;
        }
        let start = origin + Duration::from_millis(w * INTERVAL_MS);
        let end = start + interval;
        let near_change = changes.iter().any(|c| *c + ttl >= start && *c <= end + ttl);
        let excused = near_change || probers.iter().any(|(r, at)| fail_static(h, *r, *at));
        if !excused {
            v.safety.push(format!(
                "backend fleet-{backend} probed by replicas {:?} in interval {w} (+{:?} from the first probe), no membership change within {TTL_S} s",
                probers.keys().collect::<Vec<_>>(),
                start - origin
            ));
        }
    }
}

/// No backend its owner could reach the whole time shown UNHEALTHY: since
/// the backend's last good verdict (neither UNHEALTHY nor DEGRADED: a
/// DEGRADED verdict is already a failed probe, the first step to UNHEALTHY),
/// some fault must have cut the writer from it (backend killed, the writer's
/// fleet link cut, the writer paused or killed mid-probe). Seed 20 showed
/// why DEGRADED counts: a probe timed out during a partition from the fleet
/// (DEGRADED, published just after the heal) and the next one failed on the
/// connection the partition had broken (UNHEALTHY).
fn check_unhealthy(h: &History, keys: &Keys, _sources: &[IpAddr], v: &mut Verdict) {
    let members = replica_of_member(h);
    let mut last_fine: HashMap<&str, Instant> = HashMap::new();
    let first = h.events.first().map(|e| e.arrived);
    for e in &h.events {
        let Some((_, backend)) = keys.verdict_of(&e.key) else { continue };
        if !e.put {
            continue;
        }
        let Some(sv) = VerdictRecord::decode(&e.value) else { continue };
        if sv.status() != BackendStatus::Unhealthy && sv.status() != BackendStatus::Degraded {
            last_fine.insert(e.key.as_str(), e.arrived);
            continue;
        }
        if sv.status() != BackendStatus::Unhealthy {
            continue;
        }
        let since = last_fine.get(e.key.as_str()).copied().or(first).unwrap_or(e.arrived);
        let b: Option<usize> = backend.strip_prefix("fleet-").and_then(|n| n.parse().ok());
        let writer = members.get(&sv.writer).copied();
        let explained = h.faults.iter().any(|f| {
            let overlaps = f.start <= e.arrived && f.healed >= since;
            overlaps
                && match &f.kind {
                    FaultKind::KillBackends(bs) => b.is_some_and(|b| bs.contains(&b)),
                    FaultKind::PartitionFleet(r) | FaultKind::PartitionBoth(r) | FaultKind::PauseReplica(r) | FaultKind::KillReplica(r) => {
                        writer.is_none_or(|w| w == *r)
                    }
                    _ => false,
                }
        });
        if !explained {
            v.safety.push(format!(
                "{backend} shown UNHEALTHY ({:?}) by {} (replica {writer:?}) at revision {} with no fault cutting it off since its last good verdict",
                sv.verdict.observed.reason.code, sv.writer, e.mod_revision
            ));
        }
    }
}

/// Each Watch stream: a SNAPSHOT first, revisions strictly increasing, and
/// a revision gap only at a SNAPSHOT.
fn check_watches(h: &History, v: &mut Verdict) {
    let mut last: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    let mut streams = BTreeSet::new();
    for m in &h.watch {
        v.watch_messages_checked += 1;
        let id = (m.replica, m.stream);
        let first = streams.insert(id);
        if first && !is_snapshot(m.kind) {
            v.safety
                .push(format!("replica {} stream {}: first message is not a SNAPSHOT", m.replica, m.stream));
        }
        if let Some(prev) = last.get(&id) {
            if m.revision <= *prev {
                v.safety.push(format!(
                    "replica {} stream {}: revision {} after {prev} (out of order)",
                    m.replica, m.stream, m.revision
                ));
            } else if m.revision != prev + 1 && !is_snapshot(m.kind) {
                v.safety.push(format!(
                    "replica {} stream {}: revision {} after {prev} without a SNAPSHOT",
                    m.replica, m.stream, m.revision
                ));
            }
        }
        last.insert(id, m.revision);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use mcp_health::cluster::keys::Keys;
    use mcp_health::cluster::record::VerdictRecord;
    use mcp_health::proto::v1::{BackendStatus, WatchEventKind};
    use prost::Message;

    use super::check;
    use crate::history::{EtcdEvent, Fault, FaultKind, History, Op, OpKind, Outcome, Request, WatchMessage};
    use crate::load::spec;
    use crate::sut::PREFIX;

    fn keys() -> Keys {
        Keys::new(PREFIX)
    }

    fn put(key: String, value: Vec<u8>, rev: i64, version: i64, lease: i64) -> EtcdEvent {
        EtcdEvent {
            arrived: Instant::now(),
            put: true,
            key,
            value,
            create_revision: rev - version + 1,
            mod_revision: rev,
            version,
            lease,
        }
    }

    fn apply_put(nonce: u32, rev: i64, version: i64) -> EtcdEvent {
        let s = spec("g", &[("b".into(), "http://x/mcp".into())], nonce);
        put(keys().group("g"), s.encode_to_vec(), rev, version, 0)
    }

    fn delete(key: String, rev: i64) -> EtcdEvent {
        EtcdEvent {
            put: false,
            value: Vec::new(),
            ..put(key, Vec::new(), rev, 1, 0)
        }
    }

    fn apply(nonce: u32, outcome: Outcome) -> Op {
        Op {
            group: "g".into(),
            replica: 0,
            kind: OpKind::Apply {
                nonce,
                backends: vec!["b".into()],
            },
            outcome,
        }
    }

    fn acked(generation: u64) -> Outcome {
        Outcome::Acked { generation, changed: true }
    }

    fn member(lease: i64, rev: i64) -> EtcdEvent {
        put(keys().member(&format!("{lease:016x}")), b"{}".to_vec(), rev, 1, lease)
    }

    /// A HEALTHY verdict record by member `writer`.
    fn record(writer: i64) -> VerdictRecord {
        VerdictRecord {
            writer: format!("{writer:016x}"),
            group_created: None,
            verdict: mcp_health::engine::seam::SharedVerdict {
                observed: mcp_health::engine::seam::Observed {
                    verdict: mcp_health::core::verdict::Verdict {
                        status: BackendStatus::Healthy,
                        ..mcp_health::core::verdict::Verdict::unknown()
                    },
                    reason: mcp_health::core::outcome::Reason::new(mcp_health::proto::v1::ReasonCode::Ok, "ok"),
                    facts: Default::default(),
                    last_latency: None,
                    last_probe: None,
                    last_transition: None,
                    address: None,
                },
                catalog: Default::default(),
                ejection: None,
            },
        }
    }

    fn verdict(writer: i64, rev: i64) -> EtcdEvent {
        // Version 1: what a cluster with an old member still writes; the
        // checker reads every version.
        let v = record(writer);
        put(keys().verdict("g", "b"), v.encode(1), rev, 1, 0)
    }

    /// A verdict of `status` by member 7 for g/b, recorded at `at`.
    fn verdict_at(status: BackendStatus, at: Instant, rev: i64) -> EtcdEvent {
        let mut v = record(7);
        v.verdict.observed.verdict.status = status;
        EtcdEvent {
            arrived: at,
            ..put(keys().verdict("g", "fleet-0"), v.encode(2), rev, 1, 0)
        }
    }

    /// A verdict by member 7 for g/b naming the group incarnation created at `created`.
    fn verdict_of_incarnation(created: Option<i64>, rev: i64) -> EtcdEvent {
        let mut v = record(7);
        v.group_created = created;
        put(keys().verdict("g", "b"), v.encode(2), rev, 1, 0)
    }

    /// Group g applied, deleted and applied again, each acknowledged.
    fn recreated() -> Vec<Op> {
        vec![
            apply(1, acked(1)),
            Op {
                kind: OpKind::Delete,
                ..apply(0, acked(0))
            },
            apply(2, acked(1)),
        ]
    }

    fn watch(kinds_revisions: &[(WatchEventKind, u64)]) -> Vec<WatchMessage> {
        kinds_revisions
            .iter()
            .map(|(k, r)| WatchMessage {
                replica: 0,
                stream: 1,
                kind: *k as i32,
                revision: *r,
            })
            .collect()
    }

    #[test]
    fn each_invariant_flags_its_violation_and_passes_its_clean_history() {
        use WatchEventKind::{Changed, Snapshot};
        let t0 = Instant::now();
        let src = |n: u8| Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)));
        let probe = |ms: u64, n: u8| Request {
            at: t0 + Duration::from_millis(ms),
            backend: 0,
            source: src(n),
        };
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Member 7 joins; its verdicts: HEALTHY at `healthy_ms`, DEGRADED
        // just after a fault healed, then UNHEALTHY.
        let failing = |healthy_ms: u64| {
            vec![
                member(7, 1),
                verdict_at(BackendStatus::Healthy, at(healthy_ms), 2),
                verdict_at(BackendStatus::Degraded, at(3000), 3),
                verdict_at(BackendStatus::Unhealthy, at(4000), 4),
            ]
        };
        let partition = Fault {
            kind: FaultKind::PartitionFleet(0),
            start: at(1000),
            healed: at(2000),
            converged: None,
            took: true,
        };
        // (what, history, safety violations expected)
        let cases: Vec<(&str, History, usize)> = vec![
            (
                "UNHEALTHY after a DEGRADED: a partition of its writer since its last HEALTHY",
                History {
                    events: failing(0),
                    faults: vec![partition.clone()],
                    ..Default::default()
                },
                0,
            ),
            (
                "UNHEALTHY with no fault since its last HEALTHY",
                History {
                    events: failing(0),
                    ..Default::default()
                },
                1,
            ),
            (
                "UNHEALTHY after a fault that healed before its last HEALTHY",
                History {
                    events: failing(2500),
                    faults: vec![partition.clone()],
                    ..Default::default()
                },
                1,
            ),
            (
                "an acknowledged apply and delete, in order",
                History {
                    ops: vec![
                        apply(1, acked(1)),
                        Op {
                            kind: OpKind::Delete,
                            ..apply(0, acked(0))
                        },
                    ],
                    events: vec![apply_put(1, 2, 1), delete(keys().group("g"), 3)],
                    ..Default::default()
                },
                0,
            ),
            (
                "an acknowledged delete of a group etcd no longer has",
                History {
                    ops: vec![
                        apply(1, acked(1)),
                        Op {
                            kind: OpKind::Delete,
                            ..apply(0, acked(0))
                        },
                        Op {
                            kind: OpKind::Delete,
                            ..apply(0, acked(0))
                        },
                        apply(2, acked(1)),
                    ],
                    events: vec![apply_put(1, 2, 1), delete(keys().group("g"), 3), apply_put(2, 4, 1)],
                    ..Default::default()
                },
                0,
            ),
            (
                "a verdict for the group's incarnation in etcd",
                History {
                    ops: recreated(),
                    events: vec![
                        member(7, 1),
                        apply_put(1, 2, 1),
                        delete(keys().group("g"), 3),
                        apply_put(2, 4, 1),
                        verdict_of_incarnation(Some(4), 5),
                    ],
                    ..Default::default()
                },
                0,
            ),
            (
                "a verdict of a deleted incarnation, on the group created again",
                History {
                    ops: recreated(),
                    events: vec![
                        member(7, 1),
                        apply_put(1, 2, 1),
                        delete(keys().group("g"), 3),
                        apply_put(2, 4, 1),
                        verdict_of_incarnation(Some(2), 5),
                    ],
                    ..Default::default()
                },
                1,
            ),
            (
                "an acknowledged delete lost",
                History {
                    ops: vec![
                        apply(1, acked(1)),
                        Op {
                            kind: OpKind::Delete,
                            ..apply(0, acked(0))
                        },
                        apply(2, acked(2)),
                    ],
                    events: vec![apply_put(1, 2, 1), apply_put(2, 3, 2)],
                    ..Default::default()
                },
                1,
            ),
            (
                "an acknowledged apply lost",
                History {
                    ops: vec![apply(1, acked(1))],
                    ..Default::default()
                },
                1,
            ),
            (
                "two acknowledged applies out of order",
                History {
                    ops: vec![apply(1, acked(1)), apply(2, acked(2))],
                    events: vec![apply_put(2, 2, 1), apply_put(1, 3, 2)],
                    ..Default::default()
                },
                1,
            ),
            (
                "an acknowledged apply at another generation than it said",
                History {
                    ops: vec![apply(1, acked(2))],
                    events: vec![apply_put(1, 2, 1)],
                    ..Default::default()
                },
                1,
            ),
            (
                "an indeterminate apply that did not commit",
                History {
                    ops: vec![apply(1, Outcome::Indeterminate("timeout".into())), apply(2, acked(1))],
                    events: vec![apply_put(2, 2, 1)],
                    ..Default::default()
                },
                0,
            ),
            (
                "an indeterminate apply that did commit",
                History {
                    ops: vec![apply(1, Outcome::Indeterminate("timeout".into())), apply(2, acked(2))],
                    events: vec![apply_put(1, 2, 1), apply_put(2, 3, 2)],
                    ..Default::default()
                },
                0,
            ),
            (
                "a write no operation explains",
                History {
                    ops: vec![apply(1, Outcome::Failed("invalid".into()))],
                    events: vec![apply_put(1, 2, 1)],
                    ..Default::default()
                },
                1,
            ),
            (
                "a verdict while its writer is a member",
                History {
                    events: vec![member(7, 2), verdict(7, 3), delete(keys().member(&format!("{:016x}", 7)), 4)],
                    ..Default::default()
                },
                0,
            ),
            (
                "a verdict after its writer's member key was deleted",
                History {
                    events: vec![member(7, 2), delete(keys().member(&format!("{:016x}", 7)), 3), verdict(7, 4)],
                    ..Default::default()
                },
                1,
            ),
            (
                "a member key under another lease",
                History {
                    events: vec![put(keys().member(&format!("{:016x}", 7)), b"{}".to_vec(), 2, 1, 8)],
                    ..Default::default()
                },
                1,
            ),
            (
                "one replica probing a backend per interval",
                History {
                    requests: vec![probe(0, 1), probe(1000, 1), probe(2100, 2), probe(3100, 2)],
                    ..Default::default()
                },
                0,
            ),
            (
                "two replicas probing a backend in one interval",
                History {
                    requests: vec![probe(0, 1), probe(100, 1), probe(5000, 1), probe(5500, 2)],
                    ..Default::default()
                },
                1,
            ),
            (
                "a Watch stream in order, a gap only at a SNAPSHOT",
                History {
                    watch: watch(&[(Snapshot, 3), (Changed, 4), (Changed, 5), (Snapshot, 9), (Changed, 10)]),
                    ..Default::default()
                },
                0,
            ),
            (
                "a Watch stream with a gap",
                History {
                    watch: watch(&[(Snapshot, 3), (Changed, 4), (Changed, 6)]),
                    ..Default::default()
                },
                1,
            ),
            (
                "a Watch stream going back",
                History {
                    watch: watch(&[(Snapshot, 3), (Changed, 4), (Changed, 4)]),
                    ..Default::default()
                },
                1,
            ),
            (
                "a Watch stream not starting with a SNAPSHOT",
                History {
                    watch: watch(&[(Changed, 4)]),
                    ..Default::default()
                },
                1,
            ),
        ];
        let sources = [src(1).unwrap(), src(2).unwrap()];
        for (what, history, expected) in cases {
            let v = check(&history, &sources);
            assert_eq!(v.safety.len(), expected, "{what}: {:#?}", v.safety);
        }
    }
}
