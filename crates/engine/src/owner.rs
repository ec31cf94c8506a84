//! The owner task: a thin shell around `EngineState`. It receives one command
//! at a time, asks the state, and carries out the effects it returns: probe
//! tasks, the store write, events, grpc.health statuses and observer calls.
//! It never awaits a watcher or a prober, and awaits a store write only
//! beside its command channel (reads and probe results go on meanwhile).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{error, info};

use super::effects::{Effect, Effects, Observed, StoreWrite};
use super::results::ProbeResult;
use super::results::SharedMemory;
use super::scheduler::{BackendTask, DiscoveryTask};
use super::spread::StartPacer;
use super::state::{Change, Checked, Committed, EngineState, Settings};
use super::{Applied, Command, EngineConfig, EngineError, Event, EventKind, ProbeObserver, Subscription};
use crate::health::HealthStatuses;
use crate::seam::Forwarded;
use crate::store::{Persist, StoreError, StoreFuture};
use mcp_health_probe::SharedProbe;

pub struct Owner {
    state: EngineState,
    /// The probe task of every live backend incarnation and its probe
    /// memory (shared with on-demand probes), by epoch.
    tasks: HashMap<u64, Task>,
    /// Weak, like the schedulers' senders: only `Engine` handles keep the
    /// command channel open, so the owner ends when the last one drops.
    tx: mpsc::WeakSender<Command>,
    prober: SharedProbe,
    limiter: Arc<Semaphore>,
    observer: Option<Arc<dyn ProbeObserver>>,
    /// Cluster mode: ownership (for the schedulers) and shared verdicts.
    cluster: Option<Arc<dyn super::seam::ClusterSeam>>,
    health: HealthStatuses,
    events: broadcast::Sender<Event>,
    /// Where API groups are stored; None keeps them in memory only.
    persist: Option<Arc<dyn Persist>>,
    started: Instant,
    /// Paces first probes (the start-up spread), shared by every backend task.
    pacer: Arc<StartPacer>,
    /// Counts deleted groups (`Engine::deletions`).
    deleted: watch::Sender<u64>,
    /// The prober's self-doubt as readers see it (`Engine::doubt`).
    doubt: watch::Sender<Option<super::DoubtView>>,
}

/// One backend incarnation's probe task, what it shares, and the timers that
/// will wake it (an ejection's end), stopped with it.
struct Task {
    handle: AbortHandle,
    memory: SharedMemory,
    wake: Arc<Notify>,
    timers: Vec<AbortHandle>,
}

impl Task {
    fn abort(self) {
        self.handle.abort();
        self.timers.iter().for_each(AbortHandle::abort);
    }
}

/// Who waits for a change.
enum Reply {
    Apply(oneshot::Sender<Result<Vec<Applied>, EngineError>>),
    Delete(oneshot::Sender<Result<(), EngineError>>),
}

impl Reply {
    fn send(self, r: Result<Committed, EngineError>) {
        match self {
            Reply::Apply(tx) => {
                let _ = tx.send(r.map(|c| match c {
                    Committed::Applied(applied) => applied,
                    Committed::Deleted => Vec::new(),
                }));
            }
            Reply::Delete(tx) => {
                let _ = tx.send(r.map(|_| ()));
            }
        }
    }
}

/// A store write in flight, and the checked change waiting for it. The
/// owner polls `write` beside its command channel, so the write never stalls
/// reads or probe results; the store keeps any blocking (a disk commit) off
/// this task.
struct Writing {
    write: StoreFuture<'static>,
    change: Change,
    reply: Reply,
}

enum Step {
    Next,
    Write(Writing),
    Stop,
}

enum Next {
    Command(Option<Command>),
    Written(Result<(), StoreError>),
}

/// How many spec changes may wait for a store write in flight. Past it the
/// owner stops reading commands until the write ends, so a slow disk or etcd
/// pushes back on callers through the bounded command channel instead of
/// moving it into an unbounded queue.
const MAX_DEFERRED: usize = 64;

impl Command {
    /// Commands that change specs (or stop the engine) wait while a store
    /// write is in flight, so the state checked before the write is the state
    /// changed after it. Probe results and reads go on. A shared verdict
    /// waits too: it may be for a group or backend the write is creating
    /// (another replica's owner can probe a group this replica wrote to etcd
    /// before this replica committed it), and taken now it would find nothing
    /// to land on and be lost for good, since owners share only changes
    /// (found by the fault-schedule harness, seed 42: a replica showed a
    /// backend UNKNOWN after applying its group, the owner HEALTHY).
    fn waits_for_store(&self) -> bool {
        matches!(
            self,
            Command::Apply { .. }
                | Command::CheckApply { .. }
                | Command::Delete { .. }
                | Command::Forget { .. }
                | Command::Restore { .. }
                | Command::SetDrain { .. }
                | Command::AcceptCatalog { .. }
                | Command::Shutdown { .. }
                | Command::RemoteVerdict { .. }
                | Command::RemoteEndpointVerdict { .. }
                | Command::RemoteEndpoints { .. }
        )
    }
}

impl Owner {
    pub fn new(
        config: EngineConfig,
        tx: mpsc::WeakSender<Command>,
        prober: SharedProbe,
        limiter: Arc<Semaphore>,
        health: HealthStatuses,
        persist: Option<Arc<dyn Persist>>,
        deleted: watch::Sender<u64>,
    ) -> Self {
        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        let settings = Settings {
            max_groups: config.limits.max_groups,
            probe_backend_interval: config.probe_backend_interval,
            observed: config.observer.is_some(),
            durable: persist.is_some(),
            shared: config.cluster.is_some(),
            doubt: config.doubt,
            burst: config.burst.filter(|_| config.cluster.is_some()),
        };
        Owner {
            state: EngineState::new(settings),
            tasks: HashMap::new(),
            tx,
            prober,
            limiter,
            observer: config.observer,
            cluster: config.cluster,
            health,
            events,
            persist,
            started: Instant::now(),
            pacer: Arc::new(StartPacer::new(config.initial_probes_per_second)),
            deleted,
            doubt: watch::Sender::new(None),
        }
    }

    /// Readers of the self-doubt this owner publishes (`Engine::doubt`).
    pub fn doubt(&self) -> watch::Receiver<Option<super::DoubtView>> {
        self.doubt.subscribe()
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut writing: Option<Writing> = None;
        let mut deferred: VecDeque<Command> = VecDeque::new();
        loop {
            let next = match writing.as_mut() {
                Some(w) => tokio::select! {
                    done = &mut w.write => Next::Written(done),
                    cmd = rx.recv(), if deferred.len() < MAX_DEFERRED => Next::Command(cmd),
                },
                None => Next::Command(match deferred.pop_front() {
                    Some(cmd) => Some(cmd),
                    None => rx.recv().await,
                }),
            };
            let cmd = match next {
                Next::Written(done) => {
                    if let Some(w) = writing.take() {
                        self.written(w, done);
                    }
                    continue;
                }
                Next::Command(Some(cmd)) => cmd,
                Next::Command(None) => {
                    // Every `Engine` handle is gone (dropped without
                    // `shutdown`): finish the write in flight, then stop
                    // every probe task as `Shutdown` would.
                    if let Some(mut w) = writing.take() {
                        let done = (&mut w.write).await;
                        self.written(w, done);
                    }
                    self.shutdown();
                    return;
                }
            };
            if writing.is_some() && cmd.waits_for_store() {
                deferred.push_back(cmd);
                continue;
            }
            match self.handle(cmd) {
                Step::Next => {}
                Step::Write(w) => writing = Some(w),
                Step::Stop => return,
            }
        }
    }

    /// A change's snapshot costs O(backends): the state builds it for
    /// publishing only while someone watches (readers build it on demand).
    /// Told before every step of the state and at every new subscription.
    fn note_watchers(&mut self) {
        self.state.set_watched(self.events.receiver_count() > 0);
    }

    fn handle(&mut self, cmd: Command) -> Step {
        self.note_watchers();
        match cmd {
            Command::Apply {
                groups,
                origin,
                replace_origin,
                reply,
            } => {
                let checked = self.state.check_apply(groups, origin, replace_origin);
                return self.change(checked, Reply::Apply(reply));
            }
            Command::Delete { group, reply } => {
                let checked = self.state.check_delete(&group);
                return self.change(checked, Reply::Delete(reply));
            }
            Command::Forget { group, reply } => {
                let checked = self.state.check_forget(&group);
                return self.change(checked, Reply::Delete(reply));
            }
            Command::CheckApply { group, origin, reply } => {
                // The same check as an apply; the checked change is dropped.
                let _ = reply.send(self.state.check_apply(vec![*group], origin, false).map(|_| ()));
            }
            Command::Restore { groups, reply } => {
                let checked = self.state.check_restore(groups);
                return self.change(checked, Reply::Apply(reply));
            }
            Command::SetDrain {
                group,
                backend,
                endpoint,
                drain,
                reply,
            } => {
                let checked = self.state.check_drain(&group, &backend, endpoint, drain);
                return self.change(checked, Reply::Apply(reply));
            }
            Command::AcceptCatalog {
                group,
                backend,
                fingerprint,
                reply,
            } => {
                let checked = self.state.check_accept_catalog(&group, &backend, &fingerprint);
                return self.change(checked, Reply::Apply(reply));
            }
            Command::ProbeResult(result) => self.probe_result(*result),
            Command::Get { group, reply } => {
                let _ = reply.send(self.state.group(&group));
            }
            Command::List { reply } => {
                let _ = reply.send(self.state.snapshot(None).unwrap_or_default());
            }
            Command::Watch { group, reply } => {
                let events = self.events.subscribe();
                self.note_watchers();
                let sub = self.state.snapshot(group.as_deref()).map(|snapshot| Subscription {
                    sequence: self.state.sequence(),
                    snapshot,
                    events,
                });
                let _ = reply.send(sub);
            }
            Command::ProbeBackend { group, backend, reply } => {
                let ticket = self.state.probe_backend(group, backend, Instant::now()).map(|mut ticket| {
                    if let Some(task) = self.tasks.get(&ticket.epoch) {
                        ticket.memory = task.memory.clone();
                    }
                    ticket
                });
                let _ = reply.send(ticket);
            }
            Command::ProbeTimeout { group, backend, reply } => {
                let _ = reply.send(self.state.probe_timeout(&group, &backend));
            }
            Command::ReportOutcomes {
                group,
                backend,
                outcomes,
                forwarded,
                reply,
            } => {
                // Cluster mode: only the owner probes the backend, so only
                // it could confirm an ejection or end it; elsewhere one would
                // never end. Handed to the cluster for the owner (never
                // waiting), or counted when no owner is known or they came
                // forwarded already (one hop: views that disagree for a
                // moment never bounce reports). A missing backend is still NotFound.
                if let Some(c) = self.cluster.as_ref().filter(|c| !c.owns(&group, &backend)) {
                    let n = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
                    let summary = match self.state.probe_timeout(&group, &backend) {
                        Err(e) => Err(e),
                        Ok(_) if forwarded => Ok(super::ReportSummary {
                            not_owned: n,
                            ..Default::default()
                        }),
                        Ok(_) => Ok(match c.forward_outcomes(&group, &backend, &outcomes) {
                            Forwarded::Queued => super::ReportSummary {
                                forwarded: n,
                                ..Default::default()
                            },
                            Forwarded::Dropped => super::ReportSummary {
                                dropped: n,
                                ..Default::default()
                            },
                            Forwarded::NoOwner => super::ReportSummary {
                                not_owned: n,
                                ..Default::default()
                            },
                        }),
                    };
                    let _ = reply.send(summary);
                    return Step::Next;
                }
                let mut fx = Effects::default();
                let reported = self
                    .state
                    .report_outcomes(&group, &backend, &outcomes, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
                let _ = reply.send(reported);
            }
            Command::DnsAnswer { answer, next } => {
                let mut fx = Effects::default();
                let after = self.state.dns_answer(answer, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
                if let Some(after) = after {
                    let _ = next.send(after);
                }
            }
            Command::RemoteVerdict { group, backend, verdict } => {
                let owned = self.cluster.as_ref().is_some_and(|c| c.owns(&group, &backend));
                let mut fx = Effects::default();
                self.state
                    .take_remote(&group, &backend, *verdict, owned, (Instant::now(), SystemTime::now()), &mut fx);
                self.execute(fx, None);
            }
            Command::RemoteEndpointVerdict {
                group,
                backend,
                address,
                verdict,
            } => {
                let owned = self.cluster.as_ref().is_some_and(|c| c.owns_endpoint(&group, &backend, address));
                let mut fx = Effects::default();
                self.state
                    .take_remote_endpoint(&group, &backend, address, *verdict, owned, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
            }
            Command::RemoteEndpoints { group, backend, endpoints } => {
                let owned = self.cluster.as_ref().is_some_and(|c| c.owns(&group, &backend));
                let mut fx = Effects::default();
                self.state
                    .take_remote_endpoints(&group, &backend, &endpoints, owned, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
            }
            Command::PeersAnswered(reach) => {
                let mut fx = Effects::default();
                self.state.peers_answered(reach, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
            }
            Command::CheckTicket { group, backend, reply } => {
                let ticket = self.state.check_ticket(group, backend).map(|mut ticket| {
                    if let Some(task) = self.tasks.get(&ticket.epoch) {
                        ticket.memory = task.memory.clone();
                    }
                    ticket
                });
                let _ = reply.send(ticket);
            }
            Command::Doubt(evidence) => {
                let mut fx = Effects::default();
                self.state.check_doubt(&evidence, Instant::now(), SystemTime::now(), &mut fx);
                self.execute(fx, None);
            }
            Command::Shutdown { reply } => {
                self.shutdown();
                let _ = reply.send(());
                // Returning drops the broadcast sender, which ends every watch stream.
                return Step::Stop;
            }
        }
        Step::Next
    }

    /// A checked change: committed at once, or after its store write.
    fn change(&mut self, checked: Result<Checked, EngineError>, reply: Reply) -> Step {
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                reply.send(Err(e));
                return Step::Next;
            }
        };
        match (checked.store, self.persist.clone()) {
            (Some(write), Some(store)) => Step::Write(Writing {
                write: Box::pin(async move { write_all(&*store, write).await }),
                change: checked.change,
                reply,
            }),
            _ => {
                let committed = self.commit(checked.change);
                reply.send(Ok(committed));
                Step::Next
            }
        }
    }

    fn written(&mut self, w: Writing, done: Result<(), StoreError>) {
        self.note_watchers();
        let result = match done {
            Ok(()) => Ok(self.commit(w.change)),
            Err(e) => {
                error!(error = %mcp_health_core::errors::chain(&e), "store write failed; change rejected");
                Err(EngineError::Store(e))
            }
        };
        w.reply.send(result);
    }

    fn commit(&mut self, change: Change) -> Committed {
        let mut fx = Effects::default();
        let committed = self.state.commit(change, &mut fx);
        self.execute(fx, None);
        committed
    }

    fn probe_result(&mut self, mut r: ProbeResult) {
        if let Some(o) = &self.observer {
            o.probe_finished(&r);
        }
        let reply = r.reply.take();
        let pace = r.pace.take();
        // Cluster mode: a scheduled probe of a backend another replica owns
        // now (started while this one probed everything, degraded, and ended
        // after it rejoined) says nothing the owner's shared verdict does not
        // say better; folded, a failure the partition caused would replace
        // that verdict here for good, since the owner shares only changes
        // (found by the fault-schedule harness, seed 42, fault 192). Dropped:
        // the scheduler, asked nothing, keeps its steady pace.
        let owned = |c: &Arc<dyn super::seam::ClusterSeam>| match r.endpoint {
            Some(address) => c.owns_endpoint(&r.group, &r.backend, address),
            None => c.owns(&r.group, &r.backend),
        };
        if reply.is_none() && self.cluster.as_ref().is_some_and(|c| !owned(c)) {
            return;
        }
        let mut fx = Effects::default();
        let folded = self.state.fold(&r, SystemTime::now(), Instant::now(), &mut fx);
        self.execute(fx, Some(&r));
        // The scheduler waits for this answer; a send never waits (oneshot),
        // so the owner still never awaits a prober. A dropped result (removed
        // or replaced incarnation) drops the sender: its task is aborted anyway.
        if let Some(tx) = pace
            && folded.is_ok()
            && let Some(p) = self.state.pace(&r.group, &r.backend, r.endpoint)
        {
            let _ = tx.send(p);
        }
        if let Some(tx) = reply {
            let _ = tx.send(folded.and_then(|()| self.state.probed(&r.group, &r.backend)));
        }
    }

    /// Carries out effects in order. `result` is the probe result being folded, if any.
    fn execute(&mut self, fx: Effects, result: Option<&ProbeResult>) {
        for effect in fx.actions {
            match effect {
                Effect::Spawn { epoch, target } => {
                    let task = BackendTask {
                        group: target.group.clone(),
                        backend: target.backend.spec.name.clone(),
                        epoch,
                        policy: target.backend.policy,
                        target,
                        prober: self.prober.clone(),
                        limiter: self.limiter.clone(),
                        owner: self.tx.clone(),
                        observer: self.observer.clone(),
                        cluster: self.cluster.clone(),
                        pacer: self.pacer.clone(),
                        memory: SharedMemory::default(),
                        wake: Arc::new(Notify::new()),
                    };
                    let (memory, wake) = (task.memory.clone(), task.wake.clone());
                    let handle = tokio::spawn(task.run()).abort_handle();
                    self.tasks.insert(
                        epoch,
                        Task {
                            handle,
                            memory,
                            wake,
                            timers: Vec::new(),
                        },
                    );
                }
                Effect::Discover { epoch, target } => {
                    let task = DiscoveryTask {
                        group: target.group.clone(),
                        backend: target.backend.spec.name.clone(),
                        epoch,
                        target,
                        prober: self.prober.clone(),
                        owner: self.tx.clone(),
                        cluster: self.cluster.clone(),
                    };
                    let handle = tokio::spawn(task.run()).abort_handle();
                    self.tasks.insert(
                        epoch,
                        Task {
                            handle,
                            memory: SharedMemory::default(),
                            wake: Arc::new(Notify::new()),
                            timers: Vec::new(),
                        },
                    );
                }
                Effect::Abort { epoch } => {
                    if let Some(task) = self.tasks.remove(&epoch) {
                        task.abort();
                    }
                }
                Effect::Confirm { epoch, at } => {
                    if let Some(task) = self.tasks.get_mut(&epoch) {
                        match at {
                            None => task.wake.notify_one(),
                            Some(at) => {
                                let wake = task.wake.clone();
                                task.timers.retain(|t| !t.is_finished());
                                let timer = tokio::spawn(async move {
                                    tokio::time::sleep_until(at).await;
                                    wake.notify_one();
                                });
                                task.timers.push(timer.abort_handle());
                            }
                        }
                    }
                }
                Effect::Health { group, status: Some(s) } => self.health.set(&group, s),
                Effect::Health { group, status: None } => self.health.remove(&group),
                Effect::Publish(event) => {
                    let deleted = event.kind == EventKind::Deleted;
                    // A lagging receiver is resynchronized by its feed with a snapshot.
                    let _ = self.events.send(event);
                    if deleted {
                        self.deleted.send_modify(|n| *n += 1);
                    }
                }
                Effect::FirstVerdicts { groups, backends } => {
                    info!(
                        groups,
                        backends,
                        elapsed_ms = self.started.elapsed().as_millis() as u64,
                        "every group has its first verdict"
                    );
                }
                Effect::ShareVerdict { group, backend, verdict } => {
                    if let Some(c) = &self.cluster {
                        c.verdict_changed(&group, &backend, &verdict);
                    }
                }
                Effect::ShareEndpointVerdict {
                    group,
                    backend,
                    address,
                    verdict,
                } => {
                    if let Some(c) = &self.cluster {
                        c.endpoint_verdict_changed(&group, &backend, address, &verdict);
                    }
                }
                Effect::ShareEndpoints { group, backend, endpoints } => {
                    // Only the backend's owner speaks for its set; a replica
                    // that follows it changes its copy only to match.
                    if let Some(c) = self.cluster.as_ref().filter(|c| c.owns(&group, &backend)) {
                        c.endpoints_changed(&group, &backend, &endpoints);
                    }
                }
                Effect::Doubt(view) => {
                    self.doubt.send_replace(view);
                }
                Effect::Burst(sample) => {
                    // Nobody to ask: hold nothing (a single replica's burst is no evidence).
                    if !self.cluster.as_ref().is_some_and(|c| c.burst(&sample)) {
                        self.state.end_suspicion();
                    }
                }
                Effect::Observe(call) => {
                    if let Some(o) = &self.observer {
                        observe(&**o, call, result);
                    }
                }
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
        self.limiter.close();
        // Close the store now, before the reply: a daemon started right after
        // `stop` returns can open it again. (No write is in flight: Shutdown
        // waits for it like any change.)
        self.persist = None;
        self.health.set_all_not_serving();
        info!(groups = self.state.group_count(), "engine stopped; probes cancelled");
    }
}

/// The one write of a change, in order.
async fn write_all(store: &dyn Persist, write: StoreWrite) -> Result<(), StoreError> {
    for (spec, generation) in &write.puts {
        store.put(spec, *generation).await?;
    }
    for name in &write.removes {
        store.remove(name).await?;
    }
    Ok(())
}

fn observe(o: &dyn ProbeObserver, call: Observed, result: Option<&ProbeResult>) {
    match call {
        Observed::ProbeApplied => {
            if let Some(r) = result {
                o.probe_applied(r);
            }
        }
        Observed::BackendStatus { group, backend, from, to } => o.backend_status(&group, &backend, from, to),
        Observed::GroupVerdict { group, verdict } => o.group_verdict(&group, &verdict),
        Observed::BackendRemoved { group, backend } => o.backend_removed(&group, &backend),
        Observed::GroupDeleted { group, backends } => o.group_deleted(&group, &backends),
        Observed::CatalogChanged { group, backend, change } => o.catalog_changed(&group, &backend, &change),
        Observed::Ejection { group, backend, ejection, at } => o.ejection(&group, &backend, ejection.as_ref(), at),
        Observed::Endpoints { group, backend, endpoints } => o.endpoints(&group, &backend, &endpoints),
        Observed::ProbeHeld { group, backend } => o.probe_held(&group, &backend),
        Observed::Doubt(view) => o.doubt(view.as_ref()),
    }
}
