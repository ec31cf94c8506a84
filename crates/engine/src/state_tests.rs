//! Table tests of the engine state: reconciliation (keep, re-time, restart at
//! UNKNOWN, add, remove), generations and the "unchanged" test, the store
//! write a change asks for, and probe results. No tasks and no clock: every
//! case drives `EngineState` directly through one helper per table.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::effects::{Effect, Effects, StoreWrite};
use super::results::ProbeResult;
use super::state::{Checked, EngineState, Settings};
use super::{EngineError, Origin};
use mcp_health_core::outcome::{ProbeOutcome, ServerFacts};
use mcp_health_core::spec::{ValidGroup, validate_group};
use mcp_health_probe::{ClientCache, ProbeTarget};
use mcp_health_proto::v1::BackendStatus;

/// What became of a backend, as the effects and its status show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Add,
    Keep,
    Retime,
    Restart,
    Remove,
}
use Fate::{Add, Keep, Remove, Restart, Retime};

fn settings(durable: bool) -> Settings {
    Settings {
        max_groups: 2,
        probe_backend_interval: Duration::from_secs(1),
        observed: false,
        durable,
        shared: true,
        doubt: Default::default(),
        burst: None,
    }
}

fn valid(yaml: &str) -> ValidGroup {
    let spec: mcp_health_proto::v1::GroupSpec = serde_yaml_ng::from_str(yaml).unwrap();
    validate_group(&spec, "spec", &Default::default()).unwrap()
}

fn incoming(yaml: &str) -> (ValidGroup, Vec<Arc<ProbeTarget>>) {
    let g = valid(yaml);
    let clients = Arc::new(ClientCache::new(false, &mcp_health_probe::DnsSettings::default()));
    let targets = g
        .backends
        .iter()
        .map(|b| Arc::new(ProbeTarget::new(&g.spec.name, b.clone(), &clients).unwrap()))
        .collect();
    (g, targets)
}

fn commit(state: &mut EngineState, checked: Checked) -> Effects {
    let mut fx = Effects::default();
    state.commit(checked.change, &mut fx);
    fx
}

fn apply(state: &mut EngineState, yaml: &str, origin: Origin) -> (Option<StoreWrite>, Effects) {
    let mut checked = state.check_apply(vec![incoming(yaml)], origin, false).unwrap();
    let store = checked.store.take();
    (store, commit(state, checked))
}

/// The epoch of every backend of a group, read from its view's order and the state.
fn epochs(fx: &Effects) -> (Vec<u64>, Vec<(u64, String)>) {
    let mut aborted = Vec::new();
    let mut spawned = Vec::new();
    for e in &fx.actions {
        match e {
            Effect::Abort { epoch } => aborted.push(*epoch),
            Effect::Spawn { epoch, target } => spawned.push((*epoch, target.backend.spec.name.clone())),
            _ => {}
        }
    }
    (aborted, spawned)
}

fn success(group: &str, backend: &str, epoch: u64) -> ProbeResult {
    ProbeResult {
        group: group.into(),
        backend: backend.into(),
        epoch,
        endpoint: None,
        outcome: ProbeOutcome::success(ServerFacts {
            protocol_version: "2025-06-18".into(),
            ..Default::default()
        }),
        latency: Duration::from_millis(3),
        scheduling_lag: Duration::ZERO,
        interval: Duration::from_secs(10),
        reply: None,
        pace: None,
    }
}

fn statuses(state: &mut EngineState, group: &str) -> Vec<(String, BackendStatus)> {
    let h = state.group(group).unwrap();
    h.backends.iter().map(|b| (b.name.clone(), b.status())).collect()
}

/// Applies `before` over the API (durable), makes every backend HEALTHY, then
/// applies `after` and checks: the generation, whether anything changed, the
/// store write (exactly the spec with that generation, or none), and what
/// happened to each backend (tasks aborted and spawned, verdict kept or reset).
#[track_caller]
fn check_reconcile(before: &str, after: &str, generation: u64, changed: bool, want: &[(&str, Fate)]) {
    let mut state = EngineState::new(settings(true));
    let (_, fx) = apply(&mut state, before, Origin::Api);
    let (_, first) = epochs(&fx);
    let name = valid(before).spec.name;
    for (epoch, backend) in &first {
        state
            .fold(
                &success(&name, backend, *epoch),
                SystemTime::UNIX_EPOCH,
                Instant::now(),
                &mut Effects::default(),
            )
            .unwrap();
    }
    assert!(statuses(&mut state, &name).iter().all(|(_, s)| *s == BackendStatus::Healthy));

    let mut checked = state.check_apply(vec![incoming(after)], Origin::Api, false).unwrap();
    let store = checked.store.take();
    let fx = commit(&mut state, checked);
    let health = state.group(&name).unwrap();
    assert_eq!(
        (health.generation, !fx.actions.is_empty()),
        (generation, changed),
        "generation and changed: {after}"
    );
    let want_store = changed.then(|| StoreWrite {
        puts: vec![(valid(after).spec, generation)],
        removes: vec![],
    });
    assert_eq!(store, want_store, "the store write carries the same generation");

    let (aborted, spawned) = epochs(&fx);
    let now = statuses(&mut state, &name);
    for (backend, action) in want {
        let old = first.iter().find(|(_, b)| b == backend).map(|(e, _)| *e);
        let was_aborted = old.is_some_and(|e| aborted.contains(&e));
        let was_spawned = spawned.iter().any(|(_, b)| b == backend);
        let status = now.iter().find(|(b, _)| b == backend).map(|(_, s)| *s);
        let got = match (old.is_some(), was_aborted, was_spawned, status) {
            (false, _, true, Some(BackendStatus::Unknown)) => Add,
            (true, false, false, Some(BackendStatus::Healthy)) => Keep,
            (true, true, true, Some(BackendStatus::Healthy)) => Retime,
            (true, true, true, Some(BackendStatus::Unknown)) => Restart,
            (true, true, false, None) => Remove,
            other => panic!("backend {backend}: unexpected (existed, aborted, spawned, status) = {other:?}"),
        };
        assert_eq!(got, *action, "backend {backend}: {before} -> {after}");
    }
    assert_eq!(now.len(), want.iter().filter(|(_, a)| *a != Remove).count(), "backends after: {now:?}");
}

const AB: &str = "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://b.test/mcp\n";

#[test]
fn reconciliation() {
    // The same spec again: unchanged, generation kept, nothing written.
    check_reconcile(AB, AB, 1, false, &[("a", Keep), ("b", Keep)]);
    // A backend dropped: the other keeps its verdict and task.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n",
        2,
        true,
        &[("a", Keep), ("b", Remove)],
    );
    // A backend added: starts at UNKNOWN with its own task.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://b.test/mcp\n  - name: c\n    url: http://c.test/mcp\n",
        2,
        true,
        &[("a", Keep), ("b", Keep), ("c", Add)],
    );
    // A new URL: same name, a different backend: restart at UNKNOWN.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://moved.test/mcp\n",
        2,
        true,
        &[("a", Keep), ("b", Restart)],
    );
    // New timing for the whole group: verdicts kept, timers restarted.
    check_reconcile(
        AB,
        "name: g\npolicy:\n  interval: 30s\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://b.test/mcp\n",
        2,
        true,
        &[("a", Retime), ("b", Retime)],
    );
    // New timing for one backend only.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    policy:\n      timeout: 2s\n  - name: b\n    url: http://b.test/mcp\n",
        2,
        true,
        &[("a", Retime), ("b", Keep)],
    );
    // A pinned protocol revision is part of the identity.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    protocolVersion: '2025-06-18'\n  - name: b\n    url: http://b.test/mcp\n",
        2,
        true,
        &[("a", Restart), ("b", Keep)],
    );
    // Probe depth TOOLS: same endpoint, a deeper probe: re-timed.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://b.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n",
        2,
        true,
        &[("a", Keep), ("b", Retime)],
    );
    // Required tools: the task judges with its own copy of the spec, so it restarts; the verdict stays.
    check_reconcile(
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n",
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n    requiredTools: [search]\n",
        2,
        true,
        &[("a", Retime)],
    );
    // A catalog policy likewise.
    check_reconcile(
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n",
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n    catalog: {onChange: CATALOG_ON_CHANGE_ALERT}\n",
        2,
        true,
        &[("a", Retime)],
    );
    // Renamed backends: one removed, one added.
    check_reconcile(
        AB,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: c\n    url: http://b.test/mcp\n",
        2,
        true,
        &[("a", Keep), ("b", Remove), ("c", Add)],
    );
}

/// Runs one check against a state holding group `g` from the API and group
/// `file` from a config file, and compares the error (None: accepted) and the
/// store write it asks for.
#[track_caller]
fn check_change(durable: bool, change: impl FnOnce(&EngineState) -> Result<Checked, EngineError>, want: Result<Option<StoreWrite>, &str>) {
    // A single node (not cluster mode): conflict messages name --data-dir or memory.
    let mut state = EngineState::new(Settings {
        shared: false,
        ..settings(durable)
    });
    apply(&mut state, AB, Origin::Api);
    apply(
        &mut state,
        "name: file\nbackends:\n  - name: a\n    url: http://a.test/mcp\n",
        Origin::ConfigFile("/etc/g.yaml".into()),
    );
    let got = change(&state).map(|c| c.store).map_err(|e| e.to_string());
    assert_eq!(got, want.map_err(str::to_owned));
}

#[test]
fn checks_and_store_writes() {
    let file = || Origin::ConfigFile("/etc/g.yaml".into());
    let put = |yaml: &str, generation| {
        Some(StoreWrite {
            puts: vec![(valid(yaml).spec, generation)],
            removes: vec![],
        })
    };
    let new = "name: n\nbackends:\n  - name: a\n    url: http://a.test/mcp\n";
    let too_many = "too many groups: the limit is 2";
    // API applies: a new group is written at generation 1, a change at +1, the same spec not at all.
    check_change(true, |s| s.check_apply(vec![incoming(AB)], Origin::Api, false), Ok(None));
    check_change(
        true,
        |s| {
            s.check_apply(
                vec![incoming("name: g\nbackends:\n  - name: a\n    url: http://z.test/mcp\n")],
                Origin::Api,
                false,
            )
        },
        Ok(put("name: g\nbackends:\n  - name: a\n    url: http://z.test/mcp\n", 2)),
    );
    // Without a store, or from the config file, nothing is written.
    check_change(
        false,
        |s| {
            s.check_apply(
                vec![incoming("name: g\nbackends:\n  - name: a\n    url: http://z.test/mcp\n")],
                Origin::Api,
                false,
            )
        },
        Ok(None),
    );
    check_change(
        true,
        |s| s.check_apply(vec![incoming("name: file\nbackends:\n  - name: a\n    url: http://z.test/mcp\n")], file(), true),
        Ok(None),
    );
    // The group limit counts groups the config file replaces away.
    check_change(true, |s| s.check_apply(vec![incoming(new)], Origin::Api, false), Err(too_many));
    check_change(true, |s| s.check_apply(vec![incoming(new)], file(), true), Ok(None));
    check_change(true, |s| s.check_apply(vec![incoming(new)], file(), false), Err(too_many));
    // Origins: the API cannot change a file group; the file cannot take an API group's name.
    check_change(
        true,
        |s| {
            s.check_apply(
                vec![incoming("name: file\nbackends:\n  - name: a\n    url: http://a.test/mcp\n")],
                Origin::Api,
                false,
            )
        },
        Err("group \"file\" is defined by the config file /etc/g.yaml; change it there"),
    );
    check_change(
        true,
        |s| s.check_apply(vec![incoming(AB)], file(), true),
        Err(
            "group \"g\" is already defined by a group applied over the API (kept in the --data-dir store); delete it with DeleteGroup (the file's group then takes its place at once) or rename one of them",
        ),
    );
    // Without --data-dir the message says where the API group really is.
    check_change(
        false,
        |s| s.check_apply(vec![incoming(AB)], file(), true),
        Err(
            "group \"g\" is already defined by a group applied over the API (kept in memory only, as there is no --data-dir); delete it with DeleteGroup (the file's group then takes its place at once) or rename one of them",
        ),
    );
    // Deletes: API groups are removed from the store; file groups are read-only.
    check_change(
        true,
        |s| s.check_delete("g"),
        Ok(Some(StoreWrite {
            puts: vec![],
            removes: vec!["g".into()],
        })),
    );
    check_change(false, |s| s.check_delete("g"), Ok(None));
    check_change(
        true,
        |s| s.check_delete("file"),
        Err("group \"file\" is defined by the config file /etc/g.yaml; change it there"),
    );
    check_change(true, |s| s.check_delete("nope"), Err("group \"nope\" not found"));
    // Restores keep the stored generation and write nothing.
    check_change(true, |s| s.check_restore(vec![(incoming(new).0, incoming(new).1, 7)]), Err(too_many));
}

#[test]
fn restored_groups_keep_their_generation_and_checks_change_nothing() {
    let mut state = EngineState::new(settings(true));
    let (g, targets) = incoming(AB);
    let checked = state.check_restore(vec![(g, targets, 7)]).unwrap();
    assert!(checked.store.is_none());
    commit(&mut state, checked);
    assert_eq!(state.group("g").unwrap().generation, 7);
    // A checked change that is never committed (its store write failed) changes nothing.
    let before = state.sequence();
    let _ = state
        .check_apply(
            vec![incoming("name: g\nbackends:\n  - name: a\n    url: http://z.test/mcp\n")],
            Origin::Api,
            false,
        )
        .unwrap();
    let _ = state.check_delete("g").unwrap();
    assert_eq!(
        (state.sequence(), state.group("g").unwrap().generation, state.group("g").unwrap().backends.len()),
        (before, 7, 2)
    );
    // The next change gets generation 8.
    let (store, _) = apply(&mut state, "name: g\nbackends:\n  - name: a\n    url: http://z.test/mcp\n", Origin::Api);
    assert_eq!(store.unwrap().puts[0].1, 8);
}

#[test]
fn results_for_replaced_backends_are_dropped_and_on_demand_probes_are_rate_limited() {
    let mut state = EngineState::new(settings(false));
    let (_, fx) = apply(&mut state, AB, Origin::Api);
    let (_, first) = epochs(&fx);
    let (a_epoch, _) = first.iter().find(|(_, b)| b == "a").unwrap().clone();
    // b moves: a result of its old incarnation is dropped and changes nothing;
    // b still exists, so an on-demand probe hears "restarted" (retry), not "not found".
    let (_, fx) = apply(
        &mut state,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n  - name: b\n    url: http://moved.test/mcp\n",
        Origin::Api,
    );
    let (_, spawned) = epochs(&fx);
    let old_b = first.iter().find(|(_, b)| b == "b").unwrap().0;
    let seq = state.sequence();
    let mut fx = Effects::default();
    assert!(matches!(
        state.fold(&success("g", "b", old_b), SystemTime::UNIX_EPOCH, Instant::now(), &mut fx),
        Err(EngineError::BackendRestarted { .. })
    ));
    assert!(fx.actions.is_empty() && state.sequence() == seq);
    // A result of a backend no longer in the group: not found.
    assert!(matches!(
        state.fold(&success("g", "gone", old_b), SystemTime::UNIX_EPOCH, Instant::now(), &mut fx),
        Err(EngineError::BackendNotFound { .. })
    ));
    assert!(fx.actions.is_empty() && state.sequence() == seq);
    // The live incarnations fold in, each a published change.
    state
        .fold(&success("g", "a", a_epoch), SystemTime::UNIX_EPOCH, Instant::now(), &mut fx)
        .unwrap();
    state
        .fold(&success("g", "b", spawned[0].0), SystemTime::UNIX_EPOCH, Instant::now(), &mut fx)
        .unwrap();
    assert_eq!(state.sequence(), seq + 2);
    assert_eq!(state.probed("g", "b").unwrap().phase, mcp_health_proto::v1::GroupPhase::Ready);

    // One on-demand probe per interval per backend, measured on the time given.
    let t0 = Instant::now();
    assert!(state.probe_backend("g".into(), "a".into(), t0).is_ok());
    let limited = state.probe_backend("g".into(), "a".into(), t0 + Duration::from_millis(400));
    assert!(
        matches!(
            limited,
            Err(EngineError::RateLimited {
                elapsed_ms: 400,
                limit_ms: 1000,
                ..
            })
        ),
        "{:?}",
        limited.err()
    );
    assert!(state.probe_backend("g".into(), "b".into(), t0 + Duration::from_millis(400)).is_ok());
    assert!(state.probe_backend("g".into(), "a".into(), t0 + Duration::from_secs(1)).is_ok());
}

#[test]
fn drain_is_a_stored_spec_edit_that_keeps_the_verdict() {
    let mut state = EngineState::new(settings(true));
    let yaml = "name: g\nbackends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n  - {name: b, url: 'http://127.0.0.1:2/mcp'}\n";
    apply(&mut state, yaml, Origin::Api);
    // (drain, want: store write generation, or None for unchanged)
    let table: &[(bool, Option<u64>)] = &[(true, Some(2)), (true, None), (false, Some(3)), (false, None)];
    for (drain, want) in table {
        let mut checked = state.check_drain("g", "a", None, *drain).unwrap();
        let store = checked.store.take();
        assert_eq!(
            store.map(|w| (w.puts[0].0.backends[0].drain, w.puts[0].1)),
            want.map(|g| (*drain, g)),
            "drain={drain}"
        );
        let fx = commit(&mut state, checked);
        assert!(
            !fx.actions.iter().any(|e| matches!(e, Effect::Abort { .. } | Effect::Spawn { .. })),
            "no probe task restarted"
        );
        let h = state.group("g").unwrap();
        assert_eq!((h.backends[0].drain, h.backends[1].drain), (*drain, false));
    }
    assert!(matches!(state.check_drain("g", "zz", None, true), Err(EngineError::BackendNotFound { .. })));
    assert!(matches!(state.check_drain("nope", "a", None, true), Err(EngineError::GroupNotFound(_))));
    apply(
        &mut state,
        "name: f\nbackends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n",
        Origin::ConfigFile("f.yaml".into()),
    );
    assert!(matches!(state.check_drain("f", "a", None, true), Err(EngineError::ReadOnly { .. })));
    // One endpoint of a backend that is not discovered: refused, the field named.
    let endpoint = "127.0.0.1:1".parse().ok();
    match state.check_drain("g", "a", endpoint, true) {
        Err(EngineError::Invalid(v)) => assert_eq!((v[0].field.as_str(), v.len()), ("endpoint", 1), "{v:?}"),
        other => panic!("{:?}", other.err()),
    }
}

/// Cluster mode, one row per case: (owned, probed locally first, remote
/// status and reason) -> (status after, whether a group change was
/// published, whether the next local result, the same success again, is
/// shared). An owner shown a shared verdict other than its own shares its
/// own again at its next probe (a share it lost would otherwise leave the
/// others on the old verdict: seed 42 of the fault-schedule harness).
#[test]
fn shared_verdicts_replace_state_unless_owned_and_probed_since() {
    use crate::seam::SharedVerdict;
    use mcp_health_core::outcome::{Reason, ServerFacts};
    use mcp_health_core::verdict::Verdict;
    use mcp_health_proto::v1::ReasonCode;
    let remote = |s: BackendStatus, code: ReasonCode| SharedVerdict {
        observed: mcp_health_core::snapshot::Observed {
            verdict: Verdict {
                status: s,
                consecutive_failures: 3,
                consecutive_successes: 0,
                progress: String::new(),
            },
            reason: Reason::new(code, "from another replica"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
            address: None,
        },
        catalog: Default::default(),
        ejection: None,
    };
    let (unhealthy, healthy) = (
        (BackendStatus::Unhealthy, ReasonCode::ConnectionRefused),
        (BackendStatus::Healthy, ReasonCode::Ok),
    );
    type Row = (bool, bool, (BackendStatus, ReasonCode), BackendStatus, bool, bool);
    let cases: &[Row] = &[
        // Not owned: the shared verdict is the state.
        (false, false, unhealthy, BackendStatus::Unhealthy, true, true),
        (false, true, unhealthy, BackendStatus::Unhealthy, true, true),
        // Owned but not probed yet (just taken over): the last shared verdict stands.
        (true, false, unhealthy, BackendStatus::Unhealthy, true, true),
        // Owned and probed here since: the local result wins, and is shared
        // again at the next probe when the cluster shows another verdict.
        (true, true, unhealthy, BackendStatus::Healthy, false, true),
        // ... but not when the cluster shows the owner's own.
        (true, true, healthy, BackendStatus::Healthy, false, false),
    ];
    let shares = |fx: &Effects| fx.actions.iter().any(|e| matches!(e, Effect::ShareVerdict { backend, .. } if backend == "a"));
    for (owned, probed, (incoming_status, incoming_reason), want, published, next_shared) in cases {
        let mut state = EngineState::new(settings(false));
        let (_, fx) = apply(&mut state, AB, Origin::Api);
        let (_, spawned) = epochs(&fx);
        let a_epoch = spawned.iter().find(|(_, b)| b == "a").unwrap().0;
        if *probed {
            let mut fx = Effects::default();
            state.fold(&success("g", "a", a_epoch), SystemTime::now(), Instant::now(), &mut fx).unwrap();
            assert!(shares(&fx), "a local change is shared");
        }
        let mut fx = Effects::default();
        state.take_remote(
            "g",
            "a",
            remote(*incoming_status, *incoming_reason),
            *owned,
            (Instant::now(), SystemTime::now()),
            &mut fx,
        );
        let status = statuses(&mut state, "g").into_iter().find(|(b, _)| b == "a").unwrap().1;
        let case = format!("owned {owned}, probed {probed}, remote {incoming_status:?}");
        assert_eq!(status, *want, "{case}");
        assert_eq!(
            fx.actions
                .iter()
                .any(|e| matches!(e, Effect::Publish(ev) if ev.kind == crate::EventKind::Changed)),
            *published,
            "{case}"
        );
        assert!(
            !fx.actions.iter().any(|e| matches!(e, Effect::ShareVerdict { .. })),
            "{case}: a remote verdict is never shared back"
        );
        let mut fx = Effects::default();
        state.fold(&success("g", "a", a_epoch), SystemTime::now(), Instant::now(), &mut fx).unwrap();
        assert_eq!(shares(&fx), *next_shared, "{case}: the next local result shared");
        if *owned && *probed {
            let mut fx = Effects::default();
            state.fold(&success("g", "a", a_epoch), SystemTime::now(), Instant::now(), &mut fx).unwrap();
            assert!(!shares(&fx), "{case}: shared again once, not on every probe");
        }
        // Unknown groups and backends are ignored.
        let mut fx = Effects::default();
        state.take_remote(
            "nope",
            "a",
            remote(*incoming_status, *incoming_reason),
            *owned,
            (Instant::now(), SystemTime::now()),
            &mut fx,
        );
        state.take_remote(
            "g",
            "nope",
            remote(*incoming_status, *incoming_reason),
            *owned,
            (Instant::now(), SystemTime::now()),
            &mut fx,
        );
        assert!(fx.actions.is_empty());
    }
}

/// The address a probe connected to, through the probe's resolver and guard,
/// is what the view (and so xDS) carries: set by a probe that reached the
/// server, kept through a failure that reached none, changed (and published)
/// when a probe reaches the backend at a new address. One row per probe:
/// (outcome, peer, the address shown after it, whether the group was published).
#[test]
fn the_view_carries_the_address_the_latest_reaching_probe_connected_to() {
    use mcp_health_core::outcome::Reason;
    let mut state = EngineState::new(settings(false));
    let (_, fx) = apply(&mut state, "name: g\nbackends:\n  - {name: a, url: 'http://mcp.test:8080/mcp'}\n", Origin::Api);
    let (_, spawned) = epochs(&fx);
    let epoch = spawned[0].0;
    let a: std::net::SocketAddr = "127.0.0.7:8080".parse().unwrap();
    let b: std::net::SocketAddr = "127.0.0.8:8080".parse().unwrap();
    let refused = ProbeOutcome::failure(Reason::new(mcp_health_proto::v1::ReasonCode::ConnectionRefused, "connection refused"));
    let ok = success("g", "a", epoch).outcome;
    // None: published or not as the verdict's own progress says (hysteresis after a failure).
    let rows: [(ProbeOutcome, Option<std::net::SocketAddr>, &str, Option<bool>); 9] = [
        (refused.clone(), None, "", Some(true)),
        (ok.clone(), Some(a), "127.0.0.7:8080", Some(true)),
        (ok.clone(), Some(a), "127.0.0.7:8080", Some(false)),
        (refused, None, "127.0.0.7:8080", Some(true)),
        (ok.clone(), Some(b), "127.0.0.8:8080", Some(true)),
        (ok.clone(), Some(b), "127.0.0.8:8080", None),
        (ok.clone(), Some(b), "127.0.0.8:8080", None),
        (ok.clone(), Some(b), "127.0.0.8:8080", Some(false)),
        // Only the address changes: published, so Envoy follows the backend.
        (ok, Some(a), "127.0.0.7:8080", Some(true)),
    ];
    for (i, (outcome, peer, shown, published)) in rows.into_iter().enumerate() {
        let mut r = success("g", "a", epoch);
        r.outcome = ProbeOutcome { peer, ..outcome };
        let mut fx = Effects::default();
        state.fold(&r, SystemTime::UNIX_EPOCH, Instant::now(), &mut fx).unwrap();
        let h = state.group("g").unwrap();
        assert_eq!(
            h.backends[0].endpoint().observed.address.map(|a| a.to_string()).unwrap_or_default(),
            shown,
            "row {i}"
        );
        let was_published = fx
            .actions
            .iter()
            .any(|e| matches!(e, Effect::Publish(ev) if ev.kind == crate::EventKind::Changed));
        if let Some(published) = published {
            assert_eq!(was_published, published, "row {i}: {:?}", fx.actions);
        }
    }
}

#[test]
fn a_policy_refusal_decides_at_once_both_ways_and_a_check_failure_waits_for_the_thresholds() {
    use mcp_health_core::check::{CheckFailure, FailureClass};
    use mcp_health_proto::v1::ReasonCode;
    let mut state = EngineState::new(settings(false));
    let yaml = "name: g\npolicy: {unhealthyThreshold: 3, healthyThreshold: 3}\nbackends:\n  - {name: a, url: 'http://mcp.test:8080/mcp', depth: PROBE_DEPTH_TOOLS, requiredTools: [x]}\n";
    let (_, fx) = apply(&mut state, yaml, Origin::Api);
    let epoch = epochs(&fx).1[0].0;
    let ok = || success("g", "a", epoch).outcome;
    let refused = || ok().judge_required(&["x"]);
    let check_failed = || ok().judge_check(CheckFailure::new(FailureClass::IsError, "isError is true").reason("status"));
    // (outcome, status and reason after it)
    let rows = [
        (ok(), BackendStatus::Healthy, ReasonCode::Ok),
        // Out at the first refusal, back at the first probe that is not refused.
        (refused(), BackendStatus::Unhealthy, ReasonCode::RequiredToolMissing),
        (refused(), BackendStatus::Unhealthy, ReasonCode::RequiredToolMissing),
        (ok(), BackendStatus::Healthy, ReasonCode::Ok),
        // A failing check is a failure: routable (DEGRADED) below unhealthyThreshold.
        (check_failed(), BackendStatus::Degraded, ReasonCode::CheckFailed),
        (check_failed(), BackendStatus::Degraded, ReasonCode::CheckFailed),
        (check_failed(), BackendStatus::Unhealthy, ReasonCode::CheckFailed),
        (ok(), BackendStatus::Unhealthy, ReasonCode::Ok),
        (ok(), BackendStatus::Unhealthy, ReasonCode::Ok),
        (ok(), BackendStatus::Healthy, ReasonCode::Ok),
    ];
    for (i, (outcome, want_status, want_reason)) in rows.into_iter().enumerate() {
        let mut r = success("g", "a", epoch);
        r.outcome = outcome;
        state.fold(&r, SystemTime::UNIX_EPOCH, Instant::now(), &mut Effects::default()).unwrap();
        let h = state.group("g").unwrap();
        let b = &h.backends[0];
        assert_eq!((b.status(), b.endpoint().observed.reason.code), (want_status, want_reason), "row {i}: {b:#?}");
    }
}

/// A diff by name: (added, removed, changed).
type NameDiff<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str]);
/// One read (None: handshake-only), then the tool count shown, whether the
/// fingerprint moved, and the change reported.
type ReadStep<'a> = (Option<serde_json::Value>, Option<u32>, bool, Option<NameDiff<'a>>);

/// Folds probe results carrying catalog reads (None: a handshake-only probe)
/// into one TOOLS backend and checks, after each, the tool count and
/// fingerprint its view shows and the catalog change it reported, if any.
#[track_caller]
fn check_catalog_reads(steps: &[ReadStep<'_>]) {
    use super::effects::Observed;
    use mcp_health_core::catalog::{Catalog, CatalogRead};
    let mut state = EngineState::new(Settings {
        observed: true,
        ..settings(false)
    });
    let (_, fx) = apply(
        &mut state,
        "name: g\nbackends:\n  - name: a\n    url: http://a.test/mcp\n    depth: PROBE_DEPTH_TOOLS\n",
        Origin::Api,
    );
    let (_, spawned) = epochs(&fx);
    let epoch = spawned[0].0;
    let mut fingerprint = String::new();
    for (i, (read, count, moved, change)) in steps.iter().enumerate() {
        let mut r = success("g", "a", epoch);
        if let Some(tools) = read {
            let c = Catalog::from_tools(tools.as_array().unwrap()).unwrap();
            r.outcome.facts.tool_count = Some(u32::try_from(c.len()).unwrap());
            r.outcome.facts.catalog = Some(CatalogRead::Whole(Arc::new(c)));
        }
        let mut fx = Effects::default();
        state
            .fold(&r, SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64), Instant::now(), &mut fx)
            .unwrap();
        let b = state.group("g").unwrap().backends[0].clone();
        assert_eq!(b.endpoint().observed.facts.tool_count, *count, "step {i}");
        assert_eq!(b.catalog.fingerprint != fingerprint, *moved, "step {i}");
        fingerprint = b.catalog.fingerprint.clone();
        let reported: Vec<_> = fx
            .actions
            .iter()
            .filter_map(|e| match e {
                Effect::Observe(Observed::CatalogChanged { change, .. }) => Some(change.diff.clone().unwrap()),
                _ => None,
            })
            .collect();
        let want: Vec<_> = change
            .iter()
            .map(|(a, r, c)| {
                let v = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect();
                mcp_health_core::catalog::CatalogDiff {
                    added: v(a),
                    removed: v(r),
                    changed: v(c),
                }
            })
            .collect();
        assert_eq!(reported, want, "step {i}");
    }
}

#[test]
fn catalog_reads_set_the_fingerprint_and_report_changes_by_name() {
    use serde_json::json;
    let one = json!([{"name": "search"}]);
    let two = json!([{"name": "search"}, {"name": "fetch"}]);
    let renamed = json!([{"name": "find"}, {"name": "fetch"}]);
    check_catalog_reads(&[
        // A handshake-only probe before any read: nothing known.
        (None, None, false, None),
        // The first read: a fingerprint, no change reported.
        (Some(one.clone()), Some(1), true, None),
        // Handshake-only probes in between keep the count and the fingerprint.
        (None, Some(1), false, None),
        (Some(one), Some(1), false, None),
        (Some(two), Some(2), true, Some((&["fetch"], &[], &[]))),
        (None, Some(2), false, None),
        (Some(renamed), Some(2), true, Some((&["find"], &["search"], &[]))),
    ]);
}

#[test]
fn accepting_a_catalog_is_a_stored_spec_edit_that_retimes_and_keeps_the_verdict() {
    let mut state = EngineState::new(settings(true));
    let yaml = "name: g\nbackends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp', depth: PROBE_DEPTH_TOOLS}\n  - {name: h, url: 'http://127.0.0.1:2/mcp'}\n";
    let (_, fx) = apply(&mut state, yaml, Origin::Api);
    let (_, spawned) = epochs(&fx);
    state
        .fold(
            &success("g", "a", spawned[0].0),
            SystemTime::UNIX_EPOCH,
            Instant::now(),
            &mut Effects::default(),
        )
        .unwrap();
    let (f1, f2) = (format!("sha256:{}", "1a".repeat(32)), format!("sha256:{}", "2b".repeat(32)));
    // (fingerprint, want: the stored accepted list and generation, or None for unchanged)
    type Row<'a> = (&'a String, Option<(Vec<&'a String>, u64)>);
    let table: Vec<Row<'_>> = vec![(&f1, Some((vec![&f1], 2))), (&f1, None), (&f2, Some((vec![&f1, &f2], 3)))];
    for (fingerprint, want) in table {
        let mut checked = state.check_accept_catalog("g", "a", fingerprint).unwrap();
        let store = checked.store.take();
        let got = store.map(|w| {
            let accepted = w.puts[0].0.backends[0].catalog.clone().unwrap_or_default().accepted;
            (accepted, w.puts[0].1)
        });
        let want = want.map(|(a, g)| (a.into_iter().cloned().collect::<Vec<_>>(), g));
        assert_eq!(got, want, "{fingerprint}");
        let changed = got.is_some();
        let fx = commit(&mut state, checked);
        let (aborted, spawned) = epochs(&fx);
        assert_eq!((aborted.len(), spawned.len()), if changed { (1, 1) } else { (0, 0) }, "re-timed when changed");
        assert_eq!(statuses(&mut state, "g")[0].1, BackendStatus::Healthy, "the verdict is kept");
    }
    let invalid = |r: Result<Checked, EngineError>| match r {
        Err(EngineError::Invalid(v)) => v[0].field.clone(),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(invalid(state.check_accept_catalog("g", "a", "sha256:12")), "fingerprint");
    assert_eq!(invalid(state.check_accept_catalog("g", "h", &f1)), "backend");
    assert!(matches!(state.check_accept_catalog("g", "zz", &f1), Err(EngineError::BackendNotFound { .. })));
    assert!(matches!(state.check_accept_catalog("nope", "a", &f1), Err(EngineError::GroupNotFound(_))));
    apply(
        &mut state,
        "name: f\nbackends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp', depth: PROBE_DEPTH_TOOLS}\n",
        Origin::ConfigFile("f.yaml".into()),
    );
    assert!(matches!(state.check_accept_catalog("f", "a", &f1), Err(EngineError::ReadOnly { .. })));
}

/// A discovered backend in the pure state: its discovery task and one probe
/// task per endpoint (pinned), results of a dropped endpoint or a replaced
/// task dropped, a re-timing keeping the endpoints' verdicts with new tasks,
/// a changed discovery spec restarting it at UNKNOWN; on-demand probes and
/// real-traffic reports refused with the field named.
#[test]
fn a_discovered_backend_holds_a_task_and_a_verdict_per_endpoint() {
    use super::state::DnsAnswer;
    use mcp_health_core::discovery::{Lookup, Record};
    use std::net::SocketAddr;
    let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 8080));
    let spec = |interval: &str, min_ttl: &str| {
        format!(
            "name: g\npolicy: {{interval: {interval}}}\nbackends:\n  - name: pods\n    url: http://pods.test:8080/mcp\n    discovery:\n      dns: {{minTtl: {min_ttl}}}\n"
        )
    };
    let answer = |lasts: &[u8]| Lookup::Answer {
        records: lasts
            .iter()
            .map(|l| Record {
                addr: addr(*l),
                priority: 0,
                weight: 0,
            })
            .collect(),
        refused: vec![],
        ttl: Duration::from_secs(30),
    };
    // Endpoint tasks spawned: (epoch, pinned address).
    let pinned = |fx: &Effects| -> Vec<(u64, SocketAddr)> {
        fx.actions
            .iter()
            .filter_map(|e| match e {
                Effect::Spawn { epoch, target } => Some((*epoch, target.pin.expect("pinned"))),
                _ => None,
            })
            .collect()
    };
    let discover = |fx: &Effects| -> Vec<u64> {
        fx.actions
            .iter()
            .filter_map(|e| match e {
                Effect::Discover { epoch, .. } => Some(*epoch),
                _ => None,
            })
            .collect()
    };
    let endpoint_result = |epoch: u64, last: u8| ProbeResult {
        endpoint: Some(addr(last)),
        ..success("g", "pods", epoch)
    };
    let endpoints = |state: &mut EngineState| -> Vec<(SocketAddr, BackendStatus)> {
        let g = state.group("g").unwrap();
        g.backends[0].endpoints.iter().map(|e| (e.observed.address.unwrap(), e.status())).collect()
    };

    let mut state = EngineState::new(Settings {
        shared: false,
        ..settings(false)
    });
    let (_, fx) = apply(&mut state, &spec("10s", "5s"), Origin::Api);
    assert!(pinned(&fx).is_empty(), "no endpoint before the first answer");
    let [lookup_epoch] = discover(&fx)[..] else { panic!("{fx:?}") };
    let lookup = |epoch: u64, lasts: &[u8]| DnsAnswer {
        group: "g".into(),
        backend: "pods".into(),
        epoch,
        lookup: answer(lasts),
    };
    let mut fx = Effects::default();
    let next = state.dns_answer(lookup(lookup_epoch, &[1, 2]), Instant::now(), SystemTime::UNIX_EPOCH, &mut fx);
    assert_eq!(next, Some(Duration::from_secs(30)));
    let tasks = pinned(&fx);
    assert_eq!(tasks.iter().map(|t| t.1).collect::<Vec<_>>(), [addr(1), addr(2)]);
    for (epoch, a) in &tasks {
        let SocketAddr::V4(v4) = a else { unreachable!() };
        state
            .fold(&endpoint_result(*epoch, v4.ip().octets()[3]), SystemTime::UNIX_EPOCH, Instant::now(), &mut fx)
            .unwrap();
    }
    assert_eq!(endpoints(&mut state), [(addr(1), BackendStatus::Healthy), (addr(2), BackendStatus::Healthy)]);
    assert_eq!(statuses(&mut state, "g"), [("pods".to_owned(), BackendStatus::Healthy)]);
    // A result with another task's epoch, or for an address not in the set: dropped.
    let seq = state.sequence();
    let mut fx = Effects::default();
    for r in [endpoint_result(tasks[1].0, 1), endpoint_result(tasks[0].0, 9)] {
        assert!(matches!(
            state.fold(&r, SystemTime::UNIX_EPOCH, Instant::now(), &mut fx),
            Err(EngineError::BackendRestarted { .. })
        ));
    }
    assert!(fx.actions.is_empty() && state.sequence() == seq);
    // An answer for a replaced discovery task is not folded, and not answered.
    assert_eq!(
        state.dns_answer(lookup(lookup_epoch + 100, &[]), Instant::now(), SystemTime::UNIX_EPOCH, &mut fx),
        None
    );
    assert_eq!(endpoints(&mut state).len(), 2);

    // Refused: an on-demand probe and real-traffic reports.
    let on_demand = state.probe_backend("g".into(), "pods".into(), Instant::now());
    assert!(
        matches!(&on_demand, Err(EngineError::Invalid(v)) if v[0].field == "backend"),
        "{:?}",
        on_demand.err()
    );
    let reported = state.report_outcomes("g", "pods", &[], Instant::now(), SystemTime::UNIX_EPOCH, &mut fx);
    assert!(matches!(&reported, Err(EngineError::Invalid(v)) if v[0].field == "backend"), "{reported:?}");

    // A new interval: every task restarts, pinned to the same addresses, and the verdicts stay.
    let (_, fx) = apply(&mut state, &spec("20s", "5s"), Origin::Api);
    let (mut aborted, _) = epochs(&fx);
    aborted.sort_unstable();
    let mut before = vec![lookup_epoch, tasks[0].0, tasks[1].0];
    before.sort_unstable();
    assert_eq!(aborted, before);
    assert_eq!(discover(&fx).len(), 1);
    assert_eq!(pinned(&fx).iter().map(|t| t.1).collect::<Vec<_>>(), [addr(1), addr(2)]);
    assert_eq!(endpoints(&mut state), [(addr(1), BackendStatus::Healthy), (addr(2), BackendStatus::Healthy)]);
    assert_eq!(statuses(&mut state, "g"), [("pods".to_owned(), BackendStatus::Healthy)]);

    // A new discovery spec: restarted at UNKNOWN, without endpoints until its first answer.
    let (_, fx) = apply(&mut state, &spec("20s", "6s"), Origin::Api);
    assert_eq!(epochs(&fx).0.len(), 3, "the discovery task and both endpoint tasks stop");
    assert!(pinned(&fx).is_empty());
    assert!(endpoints(&mut state).is_empty());
    assert_eq!(statuses(&mut state, "g"), [("pods".to_owned(), BackendStatus::Unknown)]);
}

/// A discovered backend in a cluster (issue 23): the replica whose lookups
/// speak for the set shares it and each endpoint verdict change; a replica
/// that follows takes the set (a probe task per address) and the endpoints'
/// verdicts, and so shows the same endpoints and the same aggregate; its own
/// set coming back is passed over; an owned endpoint probed here keeps its
/// verdict and shares it again; a leaving endpoint that fails a probe on a
/// follower is dropped by the set's owner, for every replica.
#[test]
fn a_discovered_backend_in_a_cluster_shares_its_set_and_its_endpoints_verdicts() {
    use super::state::DnsAnswer;
    use crate::seam::{SharedDns, SharedEndpoints, SharedVerdict};
    use mcp_health_core::discovery::{Lookup, Record};
    use mcp_health_core::outcome::Reason;
    use mcp_health_proto::v1::ReasonCode;
    use std::net::SocketAddr;
    let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 8080));
    let spec = "name: g\npolicy: {interval: 10s}\nbackends:\n  - name: pods\n    url: http://pods.test:8080/mcp\n    discovery:\n      dns: {minTtl: 5s}\n";
    let answer = |epoch: u64, lasts: &[u8]| DnsAnswer {
        group: "g".into(),
        backend: "pods".into(),
        epoch,
        lookup: Lookup::Answer {
            records: lasts
                .iter()
                .map(|l| Record {
                    addr: addr(*l),
                    priority: 0,
                    weight: 0,
                })
                .collect(),
            refused: vec![],
            ttl: Duration::from_secs(30),
        },
    };
    let shared_sets = |fx: &Effects| -> Vec<SharedEndpoints> {
        fx.actions
            .iter()
            .filter_map(|e| match e {
                Effect::ShareEndpoints { endpoints, .. } => Some((**endpoints).clone()),
                _ => None,
            })
            .collect()
    };
    let shared_verdicts = |fx: &Effects| -> Vec<(SocketAddr, SharedVerdict)> {
        fx.actions
            .iter()
            .filter_map(|e| match e {
                Effect::ShareEndpointVerdict { address, verdict, .. } => Some((*address, (**verdict).clone())),
                _ => None,
            })
            .collect()
    };
    let pinned = |fx: &Effects| -> Vec<(u64, SocketAddr)> {
        fx.actions
            .iter()
            .filter_map(|e| match e {
                Effect::Spawn { epoch, target } => Some((*epoch, target.pin.expect("pinned"))),
                _ => None,
            })
            .collect()
    };
    let endpoints = |state: &mut EngineState| -> Vec<(SocketAddr, BackendStatus, bool)> {
        let g = state.group("g").unwrap();
        g.backends[0]
            .endpoints
            .iter()
            .map(|e| (e.observed.address.unwrap(), e.status(), e.place.leaving))
            .collect()
    };
    let result = |epoch: u64, a: SocketAddr, ok: bool| ProbeResult {
        endpoint: Some(a),
        outcome: if ok {
            success("g", "pods", epoch).outcome
        } else {
            ProbeOutcome::failure(Reason::new(ReasonCode::Timeout, "no reply"))
        },
        ..success("g", "pods", epoch)
    };
    let (now, at) = (SystemTime::UNIX_EPOCH, Instant::now());

    // The owner resolves the name: its set is shared.
    let mut owner = EngineState::new(settings(false));
    let (_, fx) = apply(&mut owner, spec, Origin::Api);
    let lookup_epoch = fx
        .actions
        .iter()
        .find_map(|e| match e {
            Effect::Discover { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .unwrap();
    let mut fx = Effects::default();
    owner.dns_answer(answer(lookup_epoch, &[1, 2, 3]), at, now, &mut fx);
    let [set] = &shared_sets(&fx)[..] else { panic!("{fx:?}") };
    assert_eq!(
        set.members.iter().map(|m| (m.address, m.leaving)).collect::<Vec<_>>(),
        [(addr(1), false), (addr(2), false), (addr(3), false)]
    );
    assert_eq!(set.dns, SharedDns::Fresh);
    let owner_tasks = pinned(&fx);

    // A follower takes it: a probe task per address, UNKNOWN until verdicts come.
    let mut follower = EngineState::new(settings(false));
    apply(&mut follower, spec, Origin::Api);
    let mut fx = Effects::default();
    follower.take_remote_endpoints("g", "pods", set, false, at, now, &mut fx);
    let follower_tasks = pinned(&fx);
    assert_eq!(follower_tasks.iter().map(|t| t.1).collect::<Vec<_>>(), [addr(1), addr(2), addr(3)]);
    assert!(shared_sets(&fx).is_empty(), "a follower never shares a set it took");
    assert_eq!(statuses(&mut follower, "g"), [("pods".to_owned(), BackendStatus::Unknown)]);

    // The owner probes every endpoint (as if it owned them all): each change
    // is shared, and the follower taking them shows what the owner shows.
    let mut fx = Effects::default();
    for (epoch, a) in &owner_tasks {
        owner.fold(&result(*epoch, *a, true), now, at, &mut fx).unwrap();
    }
    let verdicts = shared_verdicts(&fx);
    assert_eq!(verdicts.iter().map(|v| v.0).collect::<Vec<_>>(), [addr(1), addr(2), addr(3)]);
    let mut fx = Effects::default();
    for (a, v) in &verdicts {
        follower.take_remote_endpoint("g", "pods", *a, v.clone(), false, at, now, &mut fx);
    }
    assert!(shared_verdicts(&fx).is_empty());
    assert_eq!(endpoints(&mut follower), endpoints(&mut owner));
    assert_eq!(statuses(&mut follower, "g"), [("pods".to_owned(), BackendStatus::Healthy)]);

    // The owner's own set coming back through the watch changes nothing.
    let seq = owner.sequence();
    let mut fx = Effects::default();
    owner.take_remote_endpoints("g", "pods", set, true, at, now, &mut fx);
    assert!(fx.actions.is_empty() && owner.sequence() == seq, "{fx:?}");

    // The follower owns endpoint 2 and probed it: another verdict for it is
    // not taken, and its own is shared again.
    let mut fx = Effects::default();
    let (epoch2, _) = follower_tasks[1];
    follower.fold(&result(epoch2, addr(2), true), now, at, &mut fx).unwrap();
    let stale = SharedVerdict {
        observed: mcp_health_core::snapshot::Observed {
            verdict: mcp_health_core::verdict::Verdict::unknown(),
            ..verdicts[1].1.observed.clone()
        },
        ..verdicts[1].1.clone()
    };
    let mut fx = Effects::default();
    follower.take_remote_endpoint("g", "pods", addr(2), stale, true, at, now, &mut fx);
    let again = shared_verdicts(&fx);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.observed.verdict.status, BackendStatus::Healthy);
    assert_eq!(endpoints(&mut follower)[1].1, BackendStatus::Healthy);

    // Address 3 leaves DNS: DRAINING on both once the follower takes the set.
    let mut fx = Effects::default();
    owner.dns_answer(answer(lookup_epoch, &[1, 2]), at, now, &mut fx);
    let [set] = &shared_sets(&fx)[..] else { panic!("{fx:?}") };
    let mut fx = Effects::default();
    follower.take_remote_endpoints("g", "pods", set, false, at, now, &mut fx);
    assert!(pinned(&fx).is_empty() && epochs(&fx).0.is_empty(), "kept endpoints keep their tasks: {fx:?}");
    assert_eq!(endpoints(&mut follower)[2], (addr(3), BackendStatus::Healthy, true));
    // It fails a probe on the follower (its owner): the follower keeps it
    // (the set is not its own to change) and shares the failure at once...
    let (epoch3, _) = follower_tasks[2];
    let mut fx = Effects::default();
    follower.fold(&result(epoch3, addr(3), false), now, at, &mut fx).unwrap();
    assert!(epochs(&fx).0.is_empty(), "{fx:?}");
    let failed = shared_verdicts(&fx);
    assert_eq!(failed.iter().map(|v| v.0).collect::<Vec<_>>(), [addr(3)]);
    assert_eq!(endpoints(&mut follower).len(), 3);
    // ...and the set's owner, taking it, drops the endpoint and shares the set without it.
    let mut fx = Effects::default();
    owner.take_remote_endpoint("g", "pods", addr(3), failed[0].1.clone(), false, at, now, &mut fx);
    assert_eq!(epochs(&fx).0, [owner_tasks[2].0], "its probe task stops");
    let [set] = &shared_sets(&fx)[..] else { panic!("{fx:?}") };
    assert_eq!(set.members.iter().map(|m| m.address).collect::<Vec<_>>(), [addr(1), addr(2)]);
    let mut fx = Effects::default();
    follower.take_remote_endpoints("g", "pods", set, false, at, now, &mut fx);
    assert_eq!(epochs(&fx).0, [epoch3]);
    assert_eq!(endpoints(&mut follower), endpoints(&mut owner));
    assert_eq!(endpoints(&mut owner).len(), 2);
}

/// A group keeps no spec of its own beside its backends' (each probe target
/// holds its own): the spec an edit writes and the one "unchanged" compares
/// with keep the applied backend order, which is not the names' order.
#[test]
fn the_applied_spec_keeps_its_backend_order() {
    let backends = |names: &[&str], drained: &str| {
        let mut yaml = String::from("name: g\nbackends:\n");
        for n in names {
            yaml.push_str(&format!("  - name: {n}\n    url: http://{n}.test/mcp\n"));
            if *n == drained {
                yaml.push_str("    drain: true\n");
            }
        }
        yaml
    };
    let applied = backends(&["b10", "b2", "a"], "");
    let mut state = EngineState::new(settings(true));
    apply(&mut state, &applied, Origin::Api);
    let again = |state: &EngineState, yaml: &str| state.check_apply(vec![incoming(yaml)], Origin::Api, false).unwrap().store;
    assert_eq!(again(&state, &applied), None, "the same spec is unchanged");
    let reordered = backends(&["a", "b10", "b2"], "");
    let put = |yaml: &str, generation| {
        Some(StoreWrite {
            puts: vec![(valid(yaml).spec, generation)],
            removes: vec![],
        })
    };
    assert_eq!(again(&state, &reordered), put(&reordered, 2), "another order is another spec");
    // A drain edits the applied spec in place, in its order.
    let drained = backends(&["b10", "b2", "a"], "b2");
    let checked = state.check_drain("g", "b2", None, true).unwrap();
    assert_eq!(checked.store, put(&drained, 2));
    commit(&mut state, checked);
    assert_eq!(again(&state, &drained), None, "the drained spec is now the group's");
    assert_eq!(again(&state, &applied), put(&applied, 3));
}
