//! The owner task: the only holder of group and backend state. It applies
//! specs, folds probe results through the verdict state machine, recomputes a
//! group's phase when a verdict changes, and publishes changes. It never awaits
//! a watcher: changes go out on a broadcast channel that cannot block it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{error, info};

mod remote;

use super::scheduler::{BackendTask, Timed};
use super::state::{BackendState, GroupState, same_identity};
use super::view;
use super::{Applied, Command, EngineConfig, EngineError, Event, EventKind, Origin, Probed, Subscription};
use crate::core::outcome::{OutcomeClass, ProbeOutcome, Reason, ServerFacts};
use crate::core::verdict::{Verdict, observe};
use crate::health::{HealthStatuses, serving_status};
use crate::probe::{ProbeTarget, SharedProbe};
use crate::proto::v1::{BackendStatus, GroupPhase, ReasonCode};
use crate::spec::{Policy, ValidGroup};
use crate::store::{Persist, StoreError};

/// A probe's result on its way to the owner.
pub struct ProbeResult {
    pub group: String,
    pub backend: String,
    /// Which incarnation of the backend was probed; results for a replaced or
    /// removed backend are dropped, so they can never bring it back.
    pub epoch: u64,
    pub outcome: ProbeOutcome,
    pub latency: Duration,
    pub scheduling_lag: Duration,
    /// Set for on-demand probes, which wait for the verdict they produced.
    pub reply: Option<oneshot::Sender<Result<Probed, EngineError>>>,
}

/// Permission to probe one backend on demand.
pub struct ManualTicket {
    pub target: Arc<ProbeTarget>,
    pub policy: Policy,
    group: String,
    backend: String,
    epoch: u64,
}

impl ManualTicket {
    pub fn result(&self, timed: Timed) -> ProbeResult {
        ProbeResult {
            group: self.group.clone(),
            backend: self.backend.clone(),
            epoch: self.epoch,
            outcome: timed.outcome,
            latency: timed.latency,
            scheduling_lag: Duration::ZERO,
            reply: None,
        }
    }
}

pub struct Owner {
    config: EngineConfig,
    tx: mpsc::Sender<Command>,
    prober: SharedProbe,
    limiter: Arc<Semaphore>,
    health: HealthStatuses,
    groups: BTreeMap<String, GroupState>,
    revision: u64,
    next_epoch: u64,
    events: broadcast::Sender<Event>,
    started: Instant,
    all_verdicts_logged: bool,
    /// Where API groups are stored; None keeps them in memory only.
    persist: Option<Arc<dyn Persist>>,
}

impl Owner {
    pub fn new(config: EngineConfig, tx: mpsc::Sender<Command>, prober: SharedProbe, limiter: Arc<Semaphore>, health: HealthStatuses) -> Self {
        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        Owner {
            config,
            tx,
            prober,
            limiter,
            health,
            groups: BTreeMap::new(),
            revision: 0,
            next_epoch: 1,
            events,
            started: Instant::now(),
            all_verdicts_logged: false,
            persist: None,
        }
    }

    pub fn with_persist(mut self, persist: Option<Arc<dyn Persist>>) -> Self {
        self.persist = persist;
        self
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Apply {
                    groups,
                    origin,
                    replace_origin,
                    reply,
                } => {
                    let _ = reply.send(self.apply(groups, origin, replace_origin).await);
                }
                Command::Delete { group, reply } => {
                    let _ = reply.send(self.delete_api(&group).await);
                }
                Command::Restore { groups, reply } => {
                    let _ = reply.send(self.restore(groups));
                }
                Command::ProbeResult(result) => self.probe_result(result),
                Command::Get { group, reply } => {
                    let r = self.groups.get_mut(&group).map(|g| g.health(&group)).ok_or(EngineError::GroupNotFound(group));
                    let _ = reply.send(r);
                }
                Command::List { reply } => {
                    let list = self.groups.iter().map(|(name, g)| view::overview(&g.group_facts(name))).collect();
                    let _ = reply.send(list);
                }
                Command::Watch { group, reply } => {
                    let _ = reply.send(self.watch(group));
                }
                Command::ManualProbe { group, backend, reply } => {
                    let _ = reply.send(self.manual_probe(group, backend));
                }
                Command::RemoteVerdict { group, backend, verdict } => self.remote_verdict(&group, &backend, verdict),
                Command::Shutdown { reply } => {
                    self.shutdown();
                    let _ = reply.send(());
                    // Returning drops the broadcast sender, which ends every watch stream.
                    return;
                }
            }
        }
    }

    fn spawn(&mut self, group: &str, target: &Arc<ProbeTarget>) -> (u64, AbortHandle) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let task = BackendTask {
            group: group.to_owned(),
            backend: target.backend.spec.name.clone(),
            epoch,
            target: target.clone(),
            policy: target.backend.policy,
            prober: self.prober.clone(),
            limiter: self.limiter.clone(),
            owner: self.tx.clone(),
            observer: self.config.observer.clone(),
            cluster: self.config.cluster.clone(),
        };
        (epoch, tokio::spawn(task.run()).abort_handle())
    }

    fn new_backend(&mut self, group: &str, target: Arc<ProbeTarget>) -> BackendState {
        let (epoch, task) = self.spawn(group, &target);
        if let Some(o) = &self.config.observer {
            o.backend_status(group, &target.backend.spec.name, None, BackendStatus::Unknown);
        }
        BackendState {
            target,
            epoch,
            verdict: Verdict::unknown(),
            reason: Reason::new(ReasonCode::NotProbed, "not probed yet"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
            task,
            last_manual_probe: None,
            remote_since_probe: None,
        }
    }

    fn check_origin(&self, name: &str, origin: &Origin) -> Result<(), EngineError> {
        match self.groups.get(name).map(|g| &g.origin) {
            Some(Origin::ConfigFile(path)) if *origin == Origin::Api => Err(EngineError::ReadOnly {
                group: name.to_owned(),
                path: path.display().to_string(),
            }),
            Some(Origin::Api) if *origin != Origin::Api => Err(EngineError::NameConflict {
                group: name.to_owned(),
                other: "a group applied over the API (kept in the --data-dir store); delete it with DeleteGroup or rename one of them".to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Runs a store write on the blocking pool (a commit waits for the disk).
    /// The owner waits for it: no other command is handled in between, so the
    /// state checked before the write is still the state changed after it.
    async fn persist(&self, write: impl FnOnce(&dyn Persist) -> Result<(), StoreError> + Send + 'static) -> Result<(), EngineError> {
        let Some(store) = self.persist.clone() else { return Ok(()) };
        match tokio::task::spawn_blocking(move || write(&*store)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                error!(error = %e, "store write failed; change rejected");
                Err(EngineError::Store(e.to_string()))
            }
            Err(e) => Err(EngineError::Store(format!("store task failed: {e}"))),
        }
    }

    /// Puts the API groups whose spec changes, with the generation they will get.
    async fn persist_api_groups(&self, groups: &[(ValidGroup, Vec<Arc<ProbeTarget>>)]) -> Result<(), EngineError> {
        for (g, _) in groups {
            let existing = self.groups.get(&g.spec.name);
            if existing.is_some_and(|e| e.spec == g.spec && e.origin == Origin::Api) {
                continue;
            }
            let generation = existing.map_or(1, |e| e.generation + 1);
            let spec = g.spec.clone();
            self.persist(move |store| store.put(&spec, generation)).await?;
        }
        Ok(())
    }

    /// An API delete: checked, then removed from the store, then from the engine.
    async fn delete_api(&mut self, name: &str) -> Result<(), EngineError> {
        match self.groups.get(name).map(|g| &g.origin) {
            None => return Err(EngineError::GroupNotFound(name.to_owned())),
            Some(Origin::ConfigFile(path)) => {
                return Err(EngineError::ReadOnly {
                    group: name.to_owned(),
                    path: path.display().to_string(),
                });
            }
            Some(Origin::Api) => {}
        }
        let owned = name.to_owned();
        self.persist(move |store| store.remove(&owned)).await?;
        self.delete(name, None)
    }

    /// Brings back stored API groups at start-up, with their stored generations.
    fn restore(&mut self, groups: Vec<(ValidGroup, Vec<Arc<ProbeTarget>>, u64)>) -> Result<Vec<Applied>, EngineError> {
        for (g, _, _) in &groups {
            self.check_origin(&g.spec.name, &Origin::Api)?;
        }
        let added = groups.iter().filter(|(g, _, _)| !self.groups.contains_key(&g.spec.name)).count();
        if self.groups.len() + added > self.config.limits.max_groups {
            return Err(EngineError::TooManyGroups(self.config.limits.max_groups));
        }
        Ok(groups
            .into_iter()
            .map(|(g, targets, generation)| self.apply_group(g, targets, Origin::Api, Some(generation)))
            .collect())
    }

    /// Applies groups all or nothing: every check runs before the first change,
    /// and API groups are stored after the checks and before the change.
    async fn apply(&mut self, groups: Vec<(ValidGroup, Vec<Arc<ProbeTarget>>)>, origin: Origin, replace_origin: bool) -> Result<Vec<Applied>, EngineError> {
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
        if self.groups.len() + added - stale.len() > self.config.limits.max_groups {
            return Err(EngineError::TooManyGroups(self.config.limits.max_groups));
        }
        if origin == Origin::Api {
            self.persist_api_groups(&groups).await?;
        }
        for name in stale {
            let _ = self.delete(&name, Some(&origin));
        }
        Ok(groups
            .into_iter()
            .map(|(g, targets)| self.apply_group(g, targets, origin.clone(), None))
            .collect())
    }

    /// `restored` is the generation of a group read back from the store.
    fn apply_group(&mut self, valid: ValidGroup, targets: Vec<Arc<ProbeTarget>>, origin: Origin, restored: Option<u64>) -> Applied {
        let name = valid.spec.name.clone();
        if let Some(g) = self.groups.get(&name) {
            if g.spec == valid.spec && g.origin == origin {
                return Applied {
                    spec: valid.spec,
                    generation: g.generation,
                    changed: false,
                };
            }
        }
        let mut old = self.groups.get_mut(&name).map(|g| std::mem::take(&mut g.backends)).unwrap_or_default();
        let mut backends = BTreeMap::new();
        for target in targets {
            let bname = target.backend.spec.name.clone();
            let state = match old.remove(&bname) {
                Some(mut prev) if same_identity(&prev.target.backend.spec, &target.backend.spec) => {
                    if prev.target.backend.policy != target.backend.policy || prev.target.backend.depth != target.backend.depth {
                        // Same endpoint, new timing: keep the verdict, restart the timer.
                        prev.task.abort();
                        let (epoch, task) = self.spawn(&name, &target);
                        prev.epoch = epoch;
                        prev.task = task;
                    }
                    prev.target = target;
                    prev
                }
                Some(prev) => {
                    prev.task.abort();
                    info!(group = %name, backend = %bname, "backend changed; restarting at UNKNOWN");
                    self.new_backend(&name, target)
                }
                None => self.new_backend(&name, target),
            };
            backends.insert(bname, state);
        }
        for (bname, removed) in old {
            removed.task.abort();
            if let Some(o) = &self.config.observer {
                o.backend_removed(&name, &bname);
            }
            info!(group = %name, backend = %bname, "backend removed");
        }
        let generation = restored.unwrap_or_else(|| self.groups.get(&name).map_or(1, |g| g.generation + 1));
        let group = GroupState {
            spec: valid.spec.clone(),
            generation,
            origin,
            revision: 0,
            verdict: view::verdict(std::iter::empty()),
            backends,
            cached: None,
        };
        let previous_phase = self.groups.insert(name.clone(), group).map(|g| g.verdict.phase);
        self.publish(&name, previous_phase);
        info!(group = %name, generation, backends = valid.backends.len(), "group applied");
        Applied {
            spec: valid.spec,
            generation,
            changed: true,
        }
    }

    /// Deletes a group. `origin` restricts which groups may be deleted (None: the API's rules).
    fn delete(&mut self, name: &str, origin: Option<&Origin>) -> Result<(), EngineError> {
        let Some(g) = self.groups.get(name) else {
            return Err(EngineError::GroupNotFound(name.to_owned()));
        };
        match (origin, &g.origin) {
            (None, Origin::ConfigFile(path)) => {
                return Err(EngineError::ReadOnly {
                    group: name.to_owned(),
                    path: path.display().to_string(),
                });
            }
            (Some(want), have) if want != have => return Err(EngineError::GroupNotFound(name.to_owned())),
            _ => {}
        }
        let Some(mut g) = self.groups.remove(name) else {
            return Err(EngineError::GroupNotFound(name.to_owned()));
        };
        for b in g.backends.values() {
            b.task.abort();
        }
        if let Some(o) = &self.config.observer {
            o.group_deleted(name, &g.backends.keys().cloned().collect::<Vec<_>>());
        }
        self.revision += 1;
        g.revision = self.revision;
        g.cached = None;
        let last = g.health(name);
        self.health.remove(name);
        let _ = self.events.send(Event {
            kind: EventKind::Deleted,
            revision: self.revision,
            group: last,
        });
        info!(group = %name, "group deleted");
        Ok(())
    }

    fn probe_result(&mut self, r: ProbeResult) {
        if let Some(observer) = &self.config.observer {
            observer.probe_finished(&r);
        }
        let reply = |result: Result<Probed, EngineError>, r: Option<oneshot::Sender<_>>| {
            if let Some(tx) = r {
                let _ = tx.send(result);
            }
        };
        let Some(g) = self.groups.get_mut(&r.group) else {
            return reply(Err(EngineError::GroupNotFound(r.group)), r.reply);
        };
        let Some(b) = g.backends.get_mut(&r.backend).filter(|b| b.epoch == r.epoch) else {
            // A result for a removed or replaced backend: dropped, never resurrected.
            return reply(
                Err(EngineError::BackendNotFound {
                    group: r.group,
                    backend: r.backend,
                }),
                r.reply,
            );
        };
        if let Some(o) = &self.config.observer {
            o.probe_applied(&r);
        }
        let backend = &b.target.backend;
        let prev = b.verdict.clone();
        let next = observe(&prev, r.outcome.class, backend.auth_mode, backend.policy.thresholds);
        let now = SystemTime::now();
        b.last_probe = Some(now);
        b.last_latency = Some(r.latency);
        let prev_reason = b.reason.code;
        b.reason = r.outcome.reason;
        if r.outcome.class != OutcomeClass::Failure {
            // Keep what the server last said about itself through failures.
            let facts = r.outcome.facts;
            if !facts.protocol_version.is_empty() {
                b.facts = facts;
            } else {
                b.facts.resource_metadata = facts.resource_metadata;
            }
        }
        let status_changed = next.status != prev.status;
        let changed = status_changed || next.progress != prev.progress;
        let shared_changed = changed || prev_reason != b.reason.code || b.remote_since_probe.take().is_some();
        if status_changed {
            if let Some(o) = &self.config.observer {
                o.backend_status(&r.group, &r.backend, Some(prev.status), next.status);
            }
            b.last_transition = Some(now);
            info!(
                group = %r.group,
                backend = %r.backend,
                from = prev.status.as_str_name(),
                to = next.status.as_str_name(),
                reason = b.reason.code.as_str_name(),
                message = %b.reason.message,
                "backend transition"
            );
        }
        b.verdict = next;
        if let (Some(c), true) = (&self.config.cluster, shared_changed) {
            c.verdict_changed(&r.group, &r.backend, &b.verdict.progress, &view::backend_health(&b.facts()));
        }
        // Only an on-demand probe waits for its backend's view; scheduled probes skip building it.
        let backend_view = r.reply.is_some().then(|| view::backend_health(&b.facts()));
        if changed {
            let previous = g.verdict.phase;
            self.publish(&r.group, Some(previous));
        } else {
            g.cached = None;
        }
        if let (Some(tx), Some(backend)) = (r.reply, backend_view) {
            let phase = self.groups.get(&r.group).map_or(GroupPhase::Unspecified, |g| g.verdict.phase);
            let _ = tx.send(Ok(Probed { backend, phase }));
        }
    }

    /// Recomputes a group's verdict, bumps the revision and tells everyone.
    fn publish(&mut self, name: &str, previous_phase: Option<GroupPhase>) {
        let Some(g) = self.groups.get_mut(name) else { return };
        g.recompute();
        self.revision += 1;
        g.revision = self.revision;
        let phase = g.verdict.phase;
        if let Some(o) = &self.config.observer {
            o.group_verdict(name, &g.verdict);
        }
        self.health.set(name, serving_status(phase));
        if previous_phase != Some(phase) {
            info!(group = %name, from = previous_phase.map_or("NONE", |p| p.as_str_name()), to = phase.as_str_name(), message = %g.verdict.message, "group phase");
        }
        // The full view costs O(backends); build it only when someone watches.
        // (Readers that come later build it on demand from the same state.)
        if self.events.receiver_count() > 0 {
            let health = g.health(name);
            // A lagging receiver is resynchronized by its stream with a snapshot.
            let _ = self.events.send(Event {
                kind: EventKind::Changed,
                revision: self.revision,
                group: health,
            });
        }
        self.log_first_verdicts();
    }

    fn log_first_verdicts(&mut self) {
        // "First verdict" means every backend of every group, not just every
        // group's phase: a group can leave PENDING with backends still unprobed.
        if self.all_verdicts_logged || self.groups.values().any(|g| g.verdict.summary.unknown > 0) {
            return;
        }
        self.all_verdicts_logged = true;
        let backends: usize = self.groups.values().map(|g| g.backends.len()).sum();
        info!(
            groups = self.groups.len(),
            backends,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "every group has its first verdict"
        );
    }

    fn watch(&mut self, group: Option<String>) -> Result<Subscription, EngineError> {
        let events = self.events.subscribe();
        let snapshot = match group {
            Some(name) => {
                let g = self.groups.get_mut(&name).ok_or_else(|| EngineError::GroupNotFound(name.clone()))?;
                vec![g.health(&name)]
            }
            None => self.groups.iter_mut().map(|(name, g)| g.health(name)).collect(),
        };
        Ok(Subscription {
            revision: self.revision,
            snapshot,
            events,
        })
    }

    fn manual_probe(&mut self, group: String, backend: String) -> Result<ManualTicket, EngineError> {
        let limit = self.config.manual_probe_interval;
        let g = self.groups.get_mut(&group).ok_or_else(|| EngineError::GroupNotFound(group.clone()))?;
        let b = g.backends.get_mut(&backend).ok_or_else(|| EngineError::BackendNotFound {
            group: group.clone(),
            backend: backend.clone(),
        })?;
        let now = Instant::now();
        if let Some(last) = b.last_manual_probe {
            let elapsed = now.duration_since(last);
            if elapsed < limit {
                return Err(EngineError::RateLimited {
                    backend,
                    elapsed_ms: elapsed.as_millis() as u64,
                    limit_ms: limit.as_millis() as u64,
                });
            }
        }
        b.last_manual_probe = Some(now);
        Ok(ManualTicket {
            target: b.target.clone(),
            policy: b.target.backend.policy,
            group,
            backend,
            epoch: b.epoch,
        })
    }

    fn shutdown(&mut self) {
        for g in self.groups.values() {
            for b in g.backends.values() {
                b.task.abort();
            }
        }
        self.limiter.close();
        // Close the store now, before the reply: a daemon started right after
        // `stop` returns can open it again.
        self.persist = None;
        self.health.set_all_not_serving();
        info!(groups = self.groups.len(), "engine stopped; probes cancelled");
    }
}
