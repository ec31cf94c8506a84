//! The engine state as a plain synchronous value: every group and backend,
//! the change sequence and the epochs. Each method takes one input (a checked
//! change, a probe result, a read) with the time it happens and returns the
//! `Effects` the shell carries out. No task, no clock, no I/O (log lines aside).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{info, warn};

use super::effects::{Effect, Effects, Observed, StoreWrite};
use super::groups::{BackendState, GroupState, spec_order};
use super::reconcile::{BackendAction, Current, GroupPlan, backend_action, plan_group};
use super::results::{ProbeResult, ProbeTicket};
use super::{Applied, EngineError, Event, EventKind, Origin, Probed};
use mcp_health_core::burst::{BurstPolicy, BurstState};
use mcp_health_core::catalog::KnownCatalog;
use mcp_health_core::doubt::{DoubtChange, DoubtPolicy, DoubtState, Evidence};
use mcp_health_core::outcome::{OutcomeClass, Reason, ServerFacts, is_refusal};
use mcp_health_core::verdict::{Pace, Verdict, observe, pace, passes};

mod discovered;
mod outlier;
mod remote;
use crate::health::serving_status;
pub use discovered::DnsAnswer;
use mcp_health_core::phase::group_verdict;
use mcp_health_core::snapshot::GroupSnapshot;
use mcp_health_core::spec::{FieldViolation, ValidGroup};
use mcp_health_probe::ProbeTarget;
use mcp_health_proto::v1::{BackendStatus, GroupPhase, ProbeDepth, ReasonCode};
pub use outlier::ReportSummary;

/// What the state needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_groups: usize,
    /// Minimum time between two on-demand probes of one backend.
    pub probe_backend_interval: Duration,
    /// Whether there is an observer (observer effects are emitted only then).
    pub observed: bool,
    /// Whether API groups are stored (store writes are emitted only then).
    pub durable: bool,
    /// Cluster mode: local verdict changes are shared (`Effect::ShareVerdict`).
    pub shared: bool,
    /// When the prober doubts itself and how long it holds failing probes back.
    pub doubt: DoubtPolicy,
    /// Cluster mode with other replicas to ask: when failing probes make a
    /// burst (`core::burst`); None: bursts are not looked for.
    pub burst: Option<BurstPolicy>,
}

/// A group to apply, with its probe targets (built outside, before any change).
pub type Incoming = (ValidGroup, Vec<Arc<ProbeTarget>>);

/// A change that passed every check: it takes effect with `commit`, after
/// `store` (if any) has been committed.
pub struct Checked {
    pub store: Option<StoreWrite>,
    pub change: Change,
}

pub enum Change {
    Apply { origin: Origin, stale: Vec<String>, groups: Vec<Planned> },
    Delete { group: String },
}

pub struct Planned {
    pub valid: ValidGroup,
    pub targets: Vec<Arc<ProbeTarget>>,
    pub plan: GroupPlan,
}

/// What a committed change answers.
pub enum Committed {
    Applied(Vec<Applied>),
    Deleted,
}

pub struct EngineState {
    settings: Settings,
    groups: BTreeMap<String, GroupState>,
    /// Bumped at every published change; events and views carry it.
    sequence: u64,
    next_epoch: u64,
    all_verdicts_logged: bool,
    /// Whether anyone watches: a change is published with its snapshot only
    /// then (readers that come later build it from the same state).
    watched: bool,
    /// The prober's self-doubt (fed by the doubt task's checks and the
    /// other replicas' answers about a burst).
    doubt: DoubtState,
    /// The doubt task's last evidence, which the other replicas' answers join.
    local_evidence: Evidence,
    /// What the other replicas last answered about a burst (`peers_answered`).
    peers_reach: Option<bool>,
    /// Recent probe results, for bursts of failures (only with `settings.burst`).
    burst: BurstState<(String, String)>,
}

impl EngineState {
    pub fn new(settings: Settings) -> Self {
        EngineState {
            settings,
            groups: BTreeMap::new(),
            sequence: 0,
            next_epoch: 1,
            all_verdicts_logged: false,
            watched: true,
            doubt: DoubtState::default(),
            local_evidence: Evidence::default(),
            peers_reach: None,
            burst: BurstState::default(),
        }
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether changes are published with their snapshots (see `watched`).
    pub fn set_watched(&mut self, watched: bool) {
        self.watched = watched;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    fn check_origin(&self, name: &str, origin: &Origin) -> Result<(), EngineError> {
        match self.groups.get(name).map(|g| &g.origin) {
            Some(Origin::ConfigFile(path)) if *origin == Origin::Api => Err(EngineError::ReadOnly {
                group: name.to_owned(),
                path: path.display().to_string(),
            }),
            Some(Origin::Api) if *origin != Origin::Api => Err(EngineError::NameConflict {
                group: name.to_owned(),
                other: format!(
                    "a group applied over the API ({}); delete it with DeleteGroup (the file's group then takes its place at once) or rename one of them",
                    self.api_groups_kept()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Where API groups live, as conflict messages say it.
    fn api_groups_kept(&self) -> &'static str {
        match (self.settings.shared, self.settings.durable) {
            (true, _) => "kept in etcd",
            (false, true) => "kept in the --data-dir store",
            (false, false) => "kept in memory only, as there is no --data-dir",
        }
    }

    fn plan(&self, valid: &ValidGroup, origin: &Origin, restored: Option<u64>) -> GroupPlan {
        let current = self.groups.get(&valid.spec.name).map(|g| Current {
            same_spec: g.has_spec(&valid.spec),
            origin: &g.origin,
            generation: g.generation,
        });
        plan_group(current, origin, restored)
    }

    /// Checks an apply, all or nothing: origins, the group limit, and (with
    /// `replace_origin`) which groups of that origin go away. Changes nothing.
    pub fn check_apply(&self, groups: Vec<Incoming>, origin: Origin, replace_origin: bool) -> Result<Checked, EngineError> {
        for (g, _) in &groups {
            self.check_origin(&g.spec.name, &origin)?;
        }
        let stale: Vec<String> = if replace_origin {
            self.groups
                .iter()
                .filter(|(name, g)| g.origin == origin && !groups.iter().any(|(v, _)| &v.spec.name == *name))
                .map(|(name, _)| name.clone())
                .collect()
        } else {
            Vec::new()
        };
        let added = groups.iter().filter(|(g, _)| !self.groups.contains_key(&g.spec.name)).count();
        if self.groups.len() + added - stale.len() > self.settings.max_groups {
            return Err(EngineError::TooManyGroups(self.settings.max_groups));
        }
        let planned: Vec<Planned> = groups
            .into_iter()
            .map(|(valid, targets)| Planned {
                plan: self.plan(&valid, &origin, None),
                valid,
                targets,
            })
            .collect();
        let store = (self.settings.durable && origin == Origin::Api).then(|| StoreWrite {
            puts: planned
                .iter()
                .filter(|p| p.plan.changed)
                .map(|p| (p.valid.spec.clone(), p.plan.generation))
                .collect(),
            removes: Vec::new(),
        });
        Ok(Checked {
            store: store.filter(|w| !w.is_empty()),
            change: Change::Apply {
                origin,
                stale,
                groups: planned,
            },
        })
    }

    /// Checks a restore of stored API groups, which keep their stored
    /// generations and are not written again.
    pub fn check_restore(&self, groups: Vec<(ValidGroup, Vec<Arc<ProbeTarget>>, u64)>) -> Result<Checked, EngineError> {
        for (g, _, _) in &groups {
            self.check_origin(&g.spec.name, &Origin::Api)?;
        }
        let added = groups.iter().filter(|(g, _, _)| !self.groups.contains_key(&g.spec.name)).count();
        if self.groups.len() + added > self.settings.max_groups {
            return Err(EngineError::TooManyGroups(self.settings.max_groups));
        }
        let planned = groups
            .into_iter()
            .map(|(valid, targets, generation)| Planned {
                plan: self.plan(&valid, &Origin::Api, Some(generation)),
                valid,
                targets,
            })
            .collect();
        Ok(Checked {
            store: None,
            change: Change::Apply {
                origin: Origin::Api,
                stale: Vec::new(),
                groups: planned,
            },
        })
    }

    /// Checks an operator drain (or its end) of one backend of an API group:
    /// the group's spec with that backend's `drain` set, checked like an API
    /// apply (a config-file group is ReadOnly; the same state is "unchanged").
    /// Drain is not part of a backend's identity, so its verdict is kept.
    ///
    /// With `endpoint`, one endpoint of a discovered backend instead: its
    /// address added to (or taken from) the spec's `drainedEndpoints`, where
    /// it stays while the backend exists, in DNS or not. A drain needs an
    /// endpoint the backend has now (not a refused one); its end, one that
    /// is drained or that the backend has (INVALID_ARGUMENT, field `endpoint`).
    pub fn check_drain(&self, group: &str, backend: &str, endpoint: Option<std::net::SocketAddr>, drain: bool) -> Result<Checked, EngineError> {
        let g = self.groups.get(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        let Some(b) = g.backends.get(backend) else {
            return Err(EngineError::BackendNotFound {
                group: group.to_owned(),
                backend: backend.to_owned(),
            });
        };
        let Some(addr) = endpoint else {
            // `drain` changes nothing validation checks.
            return self.check_backend_edit(group, backend, |b| b.drain = drain);
        };
        let invalid = |description: String| {
            EngineError::Invalid(vec![FieldViolation {
                field: "endpoint".to_owned(),
                description,
            }])
        };
        let Some(d) = &b.discovered else {
            return Err(invalid(format!(
                "backend {backend} is not discovered through DNS: it has one endpoint; drain the backend instead"
            )));
        };
        let shown = addr.to_string();
        let listed = b.target.backend.spec.drained_endpoints.contains(&shown);
        let present = d.set.members.contains_key(&addr);
        // A drain needs the endpoint now; its end, the endpoint or its listed address.
        let known = present || (listed && !drain);
        if !known {
            return Err(invalid(format!("{shown} is not an endpoint of backend {backend}")));
        }
        if drain && !listed && b.target.backend.spec.drained_endpoints.len() >= mcp_health_core::spec::validate::MAX_DRAINED_ENDPOINTS {
            return Err(invalid(format!(
                "backend {backend} drains the most endpoints it may ({}); end a drain first",
                mcp_health_core::spec::validate::MAX_DRAINED_ENDPOINTS
            )));
        }
        // A shown address added once, or taken out: nothing validation refuses.
        self.check_backend_edit(group, backend, |s| {
            s.drained_endpoints.retain(|a| *a != shown);
            if drain {
                s.drained_endpoints.push(shown.clone());
            }
        })
    }

    /// Checks the acceptance of a tool catalog for one backend of an API group:
    /// the group's spec with `fingerprint` added to the backend's
    /// `catalog.accepted`, checked like an API apply (a config-file group is
    /// ReadOnly; one already accepted is "unchanged"). The catalog policy
    /// re-times the backend: its verdict is kept and its task judges with the
    /// new spec from its next probe on.
    pub fn check_accept_catalog(&self, group: &str, backend: &str, fingerprint: &str) -> Result<Checked, EngineError> {
        let g = self.groups.get(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        let Some(b) = g.backends.get(backend) else {
            return Err(EngineError::BackendNotFound {
                group: group.to_owned(),
                backend: backend.to_owned(),
            });
        };
        let invalid = |field: &str, description: &str| {
            EngineError::Invalid(vec![FieldViolation {
                field: field.to_owned(),
                description: description.to_owned(),
            }])
        };
        if b.target.backend.depth != ProbeDepth::Tools {
            return Err(invalid("backend", "is not probed at depth PROBE_DEPTH_TOOLS: it has no catalog"));
        }
        if !mcp_health_core::catalog::is_fingerprint(fingerprint) {
            return Err(invalid("fingerprint", "must be a catalog fingerprint: \"sha256:\" and 64 lowercase hex digits"));
        }
        let accepted = b.target.backend.spec.catalog.as_ref().map_or(0, |c| c.accepted.len());
        if accepted >= mcp_health_core::spec::validate::MAX_ACCEPTED_FINGERPRINTS {
            return Err(invalid(
                "fingerprint",
                "the backend accepts the most fingerprints it may; apply a spec that drops old ones",
            ));
        }
        // A well-formed fingerprint added below the limit changes nothing validation refuses.
        self.check_backend_edit(group, backend, |s| {
            let c = s.catalog.get_or_insert_with(Default::default);
            if !c.accepted.iter().any(|a| a == fingerprint) {
                c.accepted.push(fingerprint.to_owned());
            }
        })
    }

    /// Checks an API group's stored spec with one backend's spec edited by
    /// `edit`, like an API apply. The spec passed validation when it was
    /// applied, and callers only make edits validation does not refuse, so it
    /// is not validated again; each backend's probe target keeps its client.
    fn check_backend_edit(&self, group: &str, backend: &str, edit: impl Fn(&mut mcp_health_proto::v1::BackendSpec)) -> Result<Checked, EngineError> {
        let g = self.groups.get(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        let mut spec = g.spec(group);
        spec.backends.iter_mut().filter(|s| s.name == backend).for_each(&edit);
        let targets: Vec<Arc<ProbeTarget>> = spec
            .backends
            .iter()
            .filter_map(|s| g.backends.get(&s.name))
            .map(|s| {
                let mut t = (*s.target).clone();
                if t.backend.spec.name == backend {
                    edit(&mut t.backend.spec);
                }
                Arc::new(t)
            })
            .collect();
        let valid = ValidGroup {
            backends: targets.iter().map(|t| t.backend.clone()).collect(),
            spec,
        };
        self.check_apply(vec![(valid, targets)], Origin::Api, false)
    }

    /// Checks an API delete: the group exists and was applied over the API.
    pub fn check_delete(&self, name: &str) -> Result<Checked, EngineError> {
        match self.groups.get(name).map(|g| &g.origin) {
            None => Err(EngineError::GroupNotFound(name.to_owned())),
            Some(Origin::ConfigFile(path)) => Err(EngineError::ReadOnly {
                group: name.to_owned(),
                path: path.display().to_string(),
            }),
            Some(Origin::Api) => Ok(Checked {
                store: self.settings.durable.then(|| StoreWrite {
                    puts: Vec::new(),
                    removes: vec![name.to_owned()],
                }),
                change: Change::Delete { group: name.to_owned() },
            }),
        }
    }

    /// Checks the removal of an API group its store no longer holds (deleted
    /// on another replica): a delete without a store write.
    pub fn check_forget(&self, name: &str) -> Result<Checked, EngineError> {
        self.check_delete(name).map(|checked| Checked { store: None, ..checked })
    }

    /// Makes a checked change take effect. The caller has committed its store
    /// write, and changed nothing else since the check.
    pub fn commit(&mut self, change: Change, fx: &mut Effects) -> Committed {
        match change {
            Change::Apply { origin, stale, groups } => {
                for name in stale {
                    self.delete_group(&name, fx);
                }
                Committed::Applied(groups.into_iter().map(|p| self.apply_group(p, origin.clone(), fx)).collect())
            }
            Change::Delete { group } => {
                self.delete_group(&group, fx);
                Committed::Deleted
            }
        }
    }

    fn observe(&self, fx: &mut Effects, o: Observed) {
        if self.settings.observed {
            fx.push(Effect::Observe(o));
        }
    }

    fn spawn(&mut self, target: &Arc<ProbeTarget>, fx: &mut Effects) -> u64 {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        fx.push(Effect::Spawn { epoch, target: target.clone() });
        epoch
    }

    fn new_backend(&mut self, group: &str, target: Arc<ProbeTarget>, fx: &mut Effects) -> BackendState {
        // A discovered backend's epoch is its discovery task's; its endpoints
        // get their own at the first answer.
        let (epoch, discovered) = if target.backend.discovery.is_some() {
            let (epoch, d) = self.start_discovery(&target, fx);
            (epoch, Some(d))
        } else {
            (self.spawn(&target, fx), None)
        };
        self.observe(
            fx,
            Observed::BackendStatus {
                group: group.to_owned(),
                backend: target.backend.spec.name.clone(),
                from: None,
                to: BackendStatus::Unknown,
            },
        );
        BackendState {
            target,
            epoch,
            verdict: Verdict::unknown(),
            reason: Reason::new(ReasonCode::NotProbed, "not probed yet"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
            remote_since_probe: false,
            share_next: false,
            last_probe_backend: None,
            peer: None,
            catalog: KnownCatalog::default(),
            outlier: Default::default(),
            discovered,
        }
    }

    fn apply_group(&mut self, p: Planned, origin: Origin, fx: &mut Effects) -> Applied {
        let Planned { valid, targets, plan } = p;
        if !plan.changed {
            return Applied {
                spec: valid.spec,
                generation: plan.generation,
                changed: false,
            };
        }
        let name = valid.spec.name.clone();
        let mut old = self.groups.get_mut(&name).map(|g| std::mem::take(&mut g.backends)).unwrap_or_default();
        let mut backends = BTreeMap::new();
        // Discovered backends kept whose drained endpoints changed: observers
        // (history, metrics) hear of it now, not at the next probe's change.
        let mut redrained = Vec::new();
        for target in targets {
            let bname = target.backend.spec.name.clone();
            let prev = old.remove(&bname);
            if prev
                .as_ref()
                .is_some_and(|b| b.discovered.is_some() && b.target.backend.spec.drained_endpoints != target.backend.spec.drained_endpoints)
            {
                redrained.push(bname.clone());
            }
            let state = match (backend_action(prev.as_ref().map(|b| &b.target.backend), &target.backend), prev) {
                (BackendAction::Keep, Some(mut prev)) => {
                    prev.target = target;
                    prev
                }
                (BackendAction::Retime, Some(mut prev)) if prev.discovered.is_some() => {
                    self.retime_discovered(&mut prev, target, fx);
                    prev
                }
                (BackendAction::Retime, Some(mut prev)) => {
                    // Same endpoint, new timing: keep the verdict, restart the timer.
                    fx.push(Effect::Abort { epoch: prev.epoch });
                    prev.epoch = self.spawn(&target, fx);
                    prev.target = target;
                    prev
                }
                (_, Some(prev)) => {
                    prev.epochs().into_iter().for_each(|epoch| fx.push(Effect::Abort { epoch }));
                    info!(group = %name, backend = %bname, "backend changed; restarting at UNKNOWN");
                    self.new_backend(&name, target, fx)
                }
                (_, None) => self.new_backend(&name, target, fx),
            };
            backends.insert(bname, state);
        }
        for (bname, removed) in old {
            removed.epochs().into_iter().for_each(|epoch| fx.push(Effect::Abort { epoch }));
            self.observe(
                fx,
                Observed::BackendRemoved {
                    group: name.clone(),
                    backend: bname.clone(),
                },
            );
            info!(group = %name, backend = %bname, "backend removed");
        }
        let group = GroupState {
            policy: valid.spec.policy,
            order: spec_order(&valid.spec),
            generation: plan.generation,
            origin,
            sequence: 0,
            verdict: group_verdict(std::iter::empty()),
            backends,
            cached: None,
        };
        let previous_phase = self.groups.insert(name.clone(), group).map(|g| g.verdict.phase);
        for bname in &redrained {
            self.observe_endpoints(&name, bname, fx);
        }
        self.publish(&name, previous_phase, fx);
        info!(group = %name, generation = plan.generation, backends = valid.backends.len(), "group applied");
        Applied {
            spec: valid.spec,
            generation: plan.generation,
            changed: true,
        }
    }

    fn delete_group(&mut self, name: &str, fx: &mut Effects) {
        let Some(mut g) = self.groups.remove(name) else { return };
        for b in g.backends.values() {
            b.epochs().into_iter().for_each(|epoch| fx.push(Effect::Abort { epoch }));
        }
        self.observe(
            fx,
            Observed::GroupDeleted {
                group: name.to_owned(),
                backends: g.backends.keys().cloned().collect(),
            },
        );
        self.sequence += 1;
        g.sequence = self.sequence;
        g.cached = None;
        fx.push(Effect::Health {
            group: name.to_owned(),
            status: None,
        });
        fx.push(Effect::Publish(Event {
            kind: EventKind::Deleted,
            sequence: self.sequence,
            group: g.snapshot(name),
        }));
        info!(group = %name, "group deleted");
    }

    /// Folds a probe result into its backend's verdict. A result for a removed
    /// backend is dropped (NotFound); one for a backend a change restarted
    /// since (another epoch) too, as `BackendRestarted`: it exists, and an
    /// on-demand probe may simply be asked again.
    /// `at` is the monotonic time (it judges an ejection's end), `now` the wall clock (shown).
    pub fn fold(&mut self, r: &ProbeResult, now: SystemTime, at: Instant, fx: &mut Effects) -> Result<(), EngineError> {
        let discovered = self
            .groups
            .get(&r.group)
            .and_then(|g| g.backends.get(&r.backend))
            .is_some_and(|b| b.discovered.is_some());
        if discovered || r.endpoint.is_some() {
            return self.fold_endpoint(r, now, at, fx);
        }
        let observed = self.settings.observed;
        let Some(g) = self.groups.get_mut(&r.group) else {
            return Err(EngineError::GroupNotFound(r.group.clone()));
        };
        let Some(b) = g.backends.get_mut(&r.backend) else {
            // A result for a removed backend: dropped, never resurrected.
            return Err(EngineError::BackendNotFound {
                group: r.group.clone(),
                backend: r.backend.clone(),
            });
        };
        if b.epoch != r.epoch {
            // A result for a replaced incarnation: dropped, it says nothing of the new one.
            return Err(EngineError::BackendRestarted {
                group: r.group.clone(),
                backend: r.backend.clone(),
            });
        }
        if observed {
            fx.push(Effect::Observe(Observed::ProbeApplied));
        }
        let held = self.doubt.holds_back(r.outcome.class, &self.settings.doubt, at.into_std());
        if let Some(policy) = &self.settings.burst {
            // A failure of a backend not yet UNHEALTHY is news; one of a backend long dead is not.
            let new_failure = r.outcome.class == OutcomeClass::Failure && b.verdict.status != BackendStatus::Unhealthy;
            let started = self.burst.note((r.group.clone(), r.backend.clone()), new_failure, at.into_std(), policy);
            if let Some(sample) = started.filter(|_| self.doubt.doubt().is_none()) {
                // Later failures are held back until the others answer, at most `suspect_for`
                // (the owner ends it at once if nobody can be asked).
                self.doubt.suspect(at.into_std() + policy.suspect_for);
                fx.push(Effect::Burst(sample));
            }
        }
        if held {
            hold_result(&mut b.last_probe, &mut b.last_latency, r, now, observed, fx);
            g.cached = None;
            return Ok(());
        }
        let backend = &b.target.backend;
        let prev = b.verdict.clone();
        // The backend's reason until now says whether its verdict stands on a policy refusal.
        let next = observe(&prev, is_refusal(b.reason.code), r.outcome.class, backend.auth_mode, backend.policy.thresholds);
        b.last_probe = Some(now);
        b.last_latency = Some(r.latency);
        let prev_reason = b.reason.code;
        b.reason = r.outcome.reason.clone();
        // A failure that reached no server keeps the address the backend was last reached at.
        let peer_changed = r.outcome.peer.is_some() && r.outcome.peer != b.peer;
        if peer_changed {
            b.peer = r.outcome.peer;
        }
        let keeps_facts = match r.outcome.class {
            OutcomeClass::Failure | OutcomeClass::Refused | OutcomeClass::Throttled => true,
            // A -32023 answer to the handshake carries no facts; one to tools/list came after them.
            OutcomeClass::RateLimited => r.outcome.facts.protocol_version.is_empty(),
            _ => false,
        };
        let facts = &r.outcome.facts;
        if !keeps_facts {
            // Keep what the server last said about itself through failures and rate limits.
            if !facts.protocol_version.is_empty() {
                let tool_count = b.facts.tool_count;
                b.facts = ServerFacts {
                    // Kept once, in `b.catalog`.
                    catalog: None,
                    ..facts.clone()
                };
                if facts.catalog.is_none() && r.outcome.class != OutcomeClass::ToolsFailing {
                    // A handshake-only probe between two catalog reads: the last read's count stands.
                    b.facts.tool_count = tool_count;
                }
            } else {
                b.facts.resource_metadata = facts.resource_metadata;
            }
        } else if facts.catalog.is_some() {
            // A failure judged from this very read (a required tool missing) still read it.
            b.facts.tool_count = facts.tool_count;
        }
        let catalog = b.catalog.take(facts.catalog.as_ref(), now);
        if let Some(change) = catalog.change {
            let (added, removed, changed) = change
                .diff
                .as_ref()
                .map(|d| (d.added.join(","), d.removed.join(","), d.changed.join(",")))
                .unwrap_or_default();
            // Names and fingerprints only: a description never reaches a log line.
            info!(group = %r.group, backend = %r.backend, from = %change.from, to = %change.to, added, removed, changed, "tool catalog changed");
            if observed {
                fx.push(Effect::Observe(Observed::CatalogChanged {
                    group: r.group.clone(),
                    backend: r.backend.clone(),
                    change,
                }));
            }
        }
        let status_changed = next.status != prev.status;
        // A passing probe ends an ejection whose time is over.
        let returned = passes(r.outcome.class, backend.auth_mode) && outlier::end_ejection(b, &r.group, &r.backend, at, now, observed, fx);
        // A new address is published (xDS hands Envoy the address) and shared
        // like a verdict change; so is a new catalog fingerprint.
        let changed = status_changed || next.progress != prev.progress || peer_changed || catalog.shown || returned;
        // Both flags end with this local result, whether or not it changed anything.
        let (remote_since_probe, share_next) = (std::mem::take(&mut b.remote_since_probe), std::mem::take(&mut b.share_next));
        let share = changed || prev_reason != b.reason.code || remote_since_probe || share_next;
        if status_changed {
            if observed {
                fx.push(Effect::Observe(Observed::BackendStatus {
                    group: r.group.clone(),
                    backend: r.backend.clone(),
                    from: Some(prev.status),
                    to: next.status,
                }));
            }
            b.last_transition = Some(now);
            info!(
                group = %r.group,
                backend = %r.backend,
                from = prev.status.as_str_name(),
                to = next.status.as_str_name(),
                reason = b.reason.code.as_str_name(),
                detail = %b.reason.message,
                "backend transition"
            );
        }
        b.verdict = next;
        if share && self.settings.shared {
            fx.push(Effect::ShareVerdict {
                group: r.group.clone(),
                backend: r.backend.clone(),
                verdict: Box::new(b.shared(at)),
            });
        }
        if changed {
            let previous = g.verdict.phase;
            self.publish(&r.group, Some(previous), fx);
        } else {
            g.cached = None;
        }
        Ok(())
    }

    /// Folds one check of this node's own evidence (`core::doubt`): logs a
    /// warning when a doubt starts and when it ends (never per probe), and
    /// publishes the doubt to readers and the observer at each change.
    pub fn check_doubt(&mut self, evidence: &Evidence, at: Instant, now: SystemTime, fx: &mut Effects) {
        self.local_evidence = evidence.clone();
        self.fold_evidence(at, now, fx);
    }

    /// The other replicas answered about a burst (Some(true): they reach
    /// what this replica cannot; Some(false): they fail too; None: nobody
    /// could be asked or answered). Ends the suspicion, and folds as a check
    /// with the doubt task's last evidence: while they reach what this
    /// replica cannot, it doubts itself (cause `peers_reach`).
    pub fn peers_answered(&mut self, reach: Option<bool>, at: Instant, now: SystemTime, fx: &mut Effects) {
        let held = self.doubt.end_suspicion();
        info!(reach = ?reach, held, "the other replicas answered about a burst of failing probes");
        self.peers_reach = reach;
        self.fold_evidence(at, now, fx);
    }

    /// Ends a suspicion nobody will answer (no other replica to ask).
    pub fn end_suspicion(&mut self) {
        self.doubt.end_suspicion();
    }

    fn fold_evidence(&mut self, at: Instant, now: SystemTime, fx: &mut Effects) {
        let evidence = Evidence {
            peers_reach: self.peers_reach,
            ..self.local_evidence.clone()
        };
        let evidence = &evidence;
        let policy = self.settings.doubt;
        let change = self.doubt.check(evidence, &policy, at.into_std(), now);
        let view = self.doubt.doubt().map(|d| crate::DoubtView::of(d, &policy));
        match change {
            DoubtChange::None => return,
            DoubtChange::Entered => warn!(
                causes = %view.as_ref().map(|v| v.causes.labels()).unwrap_or_default(),
                max_hold_s = policy.max_hold.as_secs(),
                lag_ms = evidence.lag.as_millis() as u64,
                canaries_answered = evidence.canaries_answered,
                canaries = evidence.canaries,
                "the prober doubts itself: failing probes move no verdict until it trusts itself again or max_hold passes"
            ),
            DoubtChange::Causes => info!(causes = %view.as_ref().map(|v| v.causes.labels()).unwrap_or_default(), "self-doubt goes on with other causes"),
            DoubtChange::Left { lasted, held } => warn!(
                lasted_ms = lasted.as_millis() as u64,
                held, "the prober trusts itself again: failing probes move verdicts"
            ),
        }
        if self.settings.observed {
            fx.push(Effect::Observe(Observed::Doubt(view.clone())));
        }
        fx.push(Effect::Doubt(view));
    }

    /// One backend's snapshot and its group's phase (the answer to an on-demand probe).
    pub fn probed(&self, group: &str, backend: &str) -> Result<Probed, EngineError> {
        let g = self.groups.get(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        let b = self.backend(group, backend)?;
        Ok(Probed {
            backend: b.snapshot(),
            phase: g.verdict.phase,
        })
    }

    /// The pace a backend's (or a discovered endpoint's) verdict asks of its
    /// scheduler (`core::verdict::pace`); None for one that is gone.
    pub fn pace(&self, group: &str, backend: &str, endpoint: Option<std::net::SocketAddr>) -> Option<Pace> {
        if let Some(addr) = endpoint {
            return self.endpoint_pace(group, backend, addr);
        }
        let b = self.groups.get(group)?.backends.get(backend)?;
        Some(pace(&b.verdict, b.target.backend.auth_mode))
    }

    /// Recomputes a group's verdict, bumps the sequence and tells everyone.
    fn publish(&mut self, name: &str, previous_phase: Option<GroupPhase>, fx: &mut Effects) {
        let observed = self.settings.observed;
        let Some(g) = self.groups.get_mut(name) else { return };
        g.recompute();
        self.sequence += 1;
        g.sequence = self.sequence;
        let phase = g.verdict.phase;
        if observed {
            fx.push(Effect::Observe(Observed::GroupVerdict {
                group: name.to_owned(),
                verdict: g.verdict.clone(),
            }));
        }
        fx.push(Effect::Health {
            group: name.to_owned(),
            status: Some(serving_status(phase)),
        });
        if previous_phase != Some(phase) {
            info!(group = %name, from = previous_phase.map_or("NONE", |p| p.as_str_name()), to = phase.as_str_name(), detail = %g.verdict.message, "group phase");
        }
        if self.watched {
            fx.push(Effect::Publish(Event {
                kind: EventKind::Changed,
                sequence: self.sequence,
                group: g.snapshot(name),
            }));
        }
        self.first_verdicts(fx);
    }

    fn first_verdicts(&mut self, fx: &mut Effects) {
        // "First verdict" means every backend of every group, not just every
        // group's phase: a group can leave PENDING with backends still unprobed.
        if self.all_verdicts_logged || self.groups.values().any(|g| g.verdict.summary.unknown > 0) {
            return;
        }
        self.all_verdicts_logged = true;
        fx.push(Effect::FirstVerdicts {
            groups: self.groups.len(),
            backends: self.groups.values().map(|g| g.backends.len()).sum(),
        });
    }

    /// The current snapshot of one group (built once per change, then cached).
    pub fn group(&mut self, name: &str) -> Result<Arc<GroupSnapshot>, EngineError> {
        let g = self.groups.get_mut(name).ok_or_else(|| EngineError::GroupNotFound(name.to_owned()))?;
        Ok(g.snapshot(name))
    }

    /// Snapshots of one group (or all, for None, in name order).
    pub fn snapshot(&mut self, group: Option<&str>) -> Result<Vec<Arc<GroupSnapshot>>, EngineError> {
        match group {
            Some(name) => Ok(vec![self.group(name)?]),
            None => Ok(self.groups.iter_mut().map(|(name, g)| g.snapshot(name)).collect()),
        }
    }

    /// How long a probe of one backend may take (its policy's timeout).
    pub fn probe_timeout(&self, group: &str, backend: &str) -> Result<Duration, EngineError> {
        Ok(self.backend(group, backend)?.target.backend.policy.timeout)
    }

    /// Grants an on-demand probe of one backend, at most one per
    /// `probe_backend_interval` per backend.
    pub fn probe_backend(&mut self, group: String, backend: String, now: Instant) -> Result<ProbeTicket, EngineError> {
        let limit = self.settings.probe_backend_interval;
        let g = self.groups.get_mut(&group).ok_or_else(|| EngineError::GroupNotFound(group.clone()))?;
        let b = g.backends.get_mut(&backend).ok_or_else(|| EngineError::BackendNotFound {
            group: group.clone(),
            backend: backend.clone(),
        })?;
        if b.discovered.is_some() {
            return Err(EngineError::Invalid(vec![FieldViolation {
                field: "backend".to_owned(),
                description: "is discovered through DNS: each endpoint is probed on its own schedule, and an on-demand probe of one endpoint is not served yet"
                    .to_owned(),
            }]));
        }
        if let Some(last) = b.last_probe_backend {
            let elapsed = now.saturating_duration_since(last);
            if elapsed < limit {
                return Err(EngineError::RateLimited {
                    backend,
                    elapsed_ms: elapsed.as_millis() as u64,
                    limit_ms: limit.as_millis() as u64,
                });
            }
        }
        b.last_probe_backend = Some(now);
        Ok(ticket(b, group, backend))
    }

    /// One backend, or the error naming what is missing.
    fn backend(&self, group: &str, backend: &str) -> Result<&BackendState, EngineError> {
        let g = self.groups.get(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        g.backends.get(backend).ok_or_else(|| EngineError::BackendNotFound {
            group: group.to_owned(),
            backend: backend.to_owned(),
        })
    }

    /// A probe of one backend whose result folds into nothing: another
    /// replica asks whether this one reaches it (indirect probes). Not rate
    /// limited here (the asking replica's burst policy bounds them) and not
    /// served for a discovered backend (a burst samples plain backends).
    pub fn check_ticket(&self, group: String, backend: String) -> Result<ProbeTicket, EngineError> {
        let b = self.backend(&group, &backend)?;
        if b.discovered.is_some() {
            return Err(EngineError::Invalid(vec![FieldViolation {
                field: "backend".to_owned(),
                description: "is discovered through DNS: its endpoints are checked one by one".to_owned(),
            }]));
        }
        Ok(ticket(b, group, backend))
    }
}

/// A failing result held back (fail-static: the prober doubts itself, or
/// asks the other replicas about a burst): no evidence against the backend
/// or endpoint, so its verdict and reason stand; only when it was probed, and
/// how long that took, are kept. Counted (`Observed::ProbeHeld`).
fn hold_result(last_probe: &mut Option<SystemTime>, last_latency: &mut Option<Duration>, r: &ProbeResult, now: SystemTime, observed: bool, fx: &mut Effects) {
    *last_probe = Some(now);
    *last_latency = Some(r.latency);
    if observed {
        fx.push(Effect::Observe(Observed::ProbeHeld {
            group: r.group.clone(),
            backend: r.backend.clone(),
        }));
    }
}

/// A probe of `b`'s current incarnation, with its target and policy.
fn ticket(b: &BackendState, group: String, backend: String) -> ProbeTicket {
    ProbeTicket {
        target: b.target.clone(),
        policy: b.target.backend.policy,
        group,
        backend,
        epoch: b.epoch,
        // The owner shell replaces it with the epoch's own (it holds the tasks).
        memory: Default::default(),
    }
}
