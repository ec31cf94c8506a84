//! The engine: one owner task holds every group's mutable state and takes
//! commands; one scheduler task per backend probes on its own timer. Readers
//! get values back over oneshot channels, watchers a snapshot then changes.

pub mod api_view;
pub mod config;
mod doubt;
mod effects;
mod feed;
mod groups;
pub mod health;
pub mod history;
mod observer;
mod owner;
mod reconcile;
mod results;
mod scheduler;
pub mod seam;
mod spread;
mod state;
pub mod store;
mod tee;

#[cfg(test)]
mod burst_tests;
#[cfg(test)]
mod discovery_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::health::HealthStatuses;
use crate::history::History;
use crate::store::Persist;
use mcp_health_core::snapshot::{BackendSnapshot, GroupSnapshot};
use mcp_health_core::spec::{FieldViolation, Limits, ValidGroup};
use mcp_health_probe::{ClientCache, DnsSettings, ProbeTarget, SharedProbe};
use mcp_health_proto::v1::{GroupPhase, GroupSpec};

pub use api_view::{duration, timestamp};
pub use doubt::{DoubtChecks, DoubtView};
pub use feed::{Feed, FeedItem};
pub use observer::{InFlight, WatchApi};
pub use results::{ProbeResult, ProbeTicket};
pub use state::ReportSummary;

/// What changed, as watchers receive it.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    /// The engine's change sequence number (the API's `revision` field; not
    /// an MCP protocol revision). It rises with every published change.
    pub sequence: u64,
    pub group: Arc<GroupSnapshot>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Changed,
    Deleted,
}

/// Where a group's spec comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Api,
    ConfigFile(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("group {0:?} not found")]
    GroupNotFound(String),
    #[error("backend {backend:?} not found in group {group:?}")]
    BackendNotFound { group: String, backend: String },
    /// An on-demand probe's result arrived after a change restarted the
    /// backend (a new epoch): the verdict it would show is not the probe's.
    #[error("backend {backend:?} of group {group:?} was restarted by a change while it was being probed; probe it again")]
    BackendRestarted { group: String, backend: String },
    #[error("invalid group spec: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    #[error("group {group:?} is defined by the config file {path}; change it there")]
    ReadOnly { group: String, path: String },
    #[error("group {group:?} is already defined by {other}")]
    NameConflict { group: String, other: String },
    #[error("too many groups: the limit is {0}")]
    TooManyGroups(usize),
    #[error("backend {backend:?} was probed on demand {elapsed_ms} ms ago; the limit is one probe per {limit_ms} ms")]
    RateLimited { backend: String, elapsed_ms: u64, limit_ms: u64 },
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("the change was not applied")]
    Store(#[source] crate::store::StoreError),
}

/// The result of an apply.
#[derive(Clone, Debug)]
pub struct Applied {
    pub spec: GroupSpec,
    pub generation: u64,
    pub changed: bool,
}

/// The fresh verdict of an on-demand probe.
#[derive(Clone, Debug)]
pub struct Probed {
    pub backend: BackendSnapshot,
    pub phase: GroupPhase,
}

/// A watcher's start: the snapshot and the change feed that follows it.
pub struct Subscription {
    /// The change sequence number the snapshot reflects.
    pub sequence: u64,
    pub snapshot: Vec<Arc<GroupSnapshot>>,
    pub events: broadcast::Receiver<Event>,
}

pub(crate) enum Command {
    Apply {
        groups: Vec<(ValidGroup, Vec<Arc<ProbeTarget>>)>,
        origin: Origin,
        replace_origin: bool,
        reply: oneshot::Sender<Result<Vec<Applied>, EngineError>>,
    },
    Delete {
        group: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Like `Delete`, for a group the store no longer holds (deleted on
    /// another replica); not written again.
    Forget {
        group: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Checks an apply as `Apply` would (origins, the group limit) and changes nothing.
    CheckApply {
        /// Boxed: a spec is several times the size of every other command.
        group: Box<(ValidGroup, Vec<Arc<ProbeTarget>>)>,
        origin: Origin,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// API groups read back from the store at start-up, with their generations; not written again.
    Restore {
        groups: Vec<(ValidGroup, Vec<Arc<ProbeTarget>>, u64)>,
        reply: oneshot::Sender<Result<Vec<Applied>, EngineError>>,
    },
    /// Boxed: a result is several times the size of every other command.
    ProbeResult(Box<ProbeResult>),
    Get {
        group: String,
        reply: oneshot::Sender<Result<Arc<GroupSnapshot>, EngineError>>,
    },
    List {
        reply: oneshot::Sender<Vec<Arc<GroupSnapshot>>>,
    },
    Watch {
        group: Option<String>,
        reply: oneshot::Sender<Result<Subscription, EngineError>>,
    },
    ProbeBackend {
        group: String,
        backend: String,
        reply: oneshot::Sender<Result<ProbeTicket, EngineError>>,
    },
    /// One backend's probe timeout (a read; cluster mode's forwarded probes wait on it).
    ProbeTimeout {
        group: String,
        backend: String,
        reply: oneshot::Sender<Result<Duration, EngineError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Sets one backend's `drain` (or one endpoint's, in `drainedEndpoints`)
    /// in an API group's spec (stored like an apply).
    SetDrain {
        group: String,
        backend: String,
        endpoint: Option<std::net::SocketAddr>,
        drain: bool,
        reply: oneshot::Sender<Result<Vec<Applied>, EngineError>>,
    },
    /// Adds a fingerprint to a backend's accepted catalogs (`AcceptCatalog`).
    AcceptCatalog {
        group: String,
        backend: String,
        fingerprint: String,
        reply: oneshot::Sender<Result<Vec<Applied>, EngineError>>,
    },
    /// Outcomes of real traffic to one backend (`ReportOutcomes`).
    ReportOutcomes {
        group: String,
        backend: String,
        outcomes: Vec<mcp_health_core::outlier::TrafficOutcome>,
        /// Forwarded by another replica (cluster mode): folded if owned
        /// here, never forwarded again.
        forwarded: bool,
        reply: oneshot::Sender<Result<ReportSummary, EngineError>>,
    },
    /// A discovered backend's lookup (from its discovery task):
    /// answered with when to look up again (dropped for a gone incarnation).
    DnsAnswer {
        answer: state::DnsAnswer,
        next: oneshot::Sender<Duration>,
    },
    /// A verdict shared by another replica (cluster mode).
    RemoteVerdict {
        group: String,
        backend: String,
        verdict: Box<seam::SharedVerdict>,
    },
    /// A discovered endpoint's verdict shared by another replica (cluster mode).
    RemoteEndpointVerdict {
        group: String,
        backend: String,
        address: std::net::SocketAddr,
        verdict: Box<seam::SharedVerdict>,
    },
    /// A discovered backend's endpoint set shared by its owner (cluster mode).
    RemoteEndpoints {
        group: String,
        backend: String,
        endpoints: Box<seam::SharedEndpoints>,
    },
    /// One check of this node's own evidence (the doubt task's).
    Doubt(mcp_health_core::doubt::Evidence),
    /// What the other replicas answered about a burst (cluster mode).
    PeersAnswered(Option<bool>),
    /// A probe of one backend that folds into nothing (`Engine::check_backend`).
    CheckTicket {
        group: String,
        backend: String,
        reply: oneshot::Sender<Result<ProbeTicket, EngineError>>,
    },
}

/// Where reports of real traffic come from (`Engine::report_outcomes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOrigin {
    /// A gateway's `ReportOutcomes` or an access log, received here.
    Traffic,
    /// Forwarded by another replica to this one as the backend's owner.
    Forwarded,
}

/// What a probe that folds into nothing found (`Engine::check_backend`).
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub class: mcp_health_core::outcome::OutcomeClass,
    pub reason: mcp_health_core::outcome::Reason,
}

impl Checked {
    /// Whether the backend was reached: any answer but `Failure` proves
    /// the path works (a refusal or a 401 too), as self-doubt counts it.
    pub fn reached(&self) -> bool {
        self.class != mcp_health_core::outcome::OutcomeClass::Failure
    }
}

/// One endpoint of a discovered backend, as observers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    pub address: std::net::SocketAddr,
    pub status: mcp_health_proto::v1::BackendStatus,
    pub state: mcp_health_core::snapshot::EndpointState,
    /// The reason of its latest verdict (for a refused endpoint, why).
    pub reason: mcp_health_core::outcome::Reason,
    /// The operator drains it (`BackendSpec.drained_endpoints`).
    pub drained: bool,
}

/// Follows the engine without recomputing anything: for metrics (and, with
/// `probe_finished`, benchmarks). Every method defaults to doing nothing. They
/// are called from the owner task (and probe tasks, API streams) as things
/// happen, so they must be quick and never block.
pub trait ProbeObserver: Send + Sync + std::fmt::Debug + 'static {
    /// Every probe result (scheduled and on demand, for removed backends too)
    /// before the owner folds it in; the scale benchmark reads its scheduling lag.
    fn probe_finished(&self, _result: &ProbeResult) {}

    /// A result for a live backend, about to be folded into its verdict
    /// (results for removed or replaced backends are not reported here).
    fn probe_applied(&self, _result: &ProbeResult) {}
    /// A backend's status is now `to`; `from` is None for a backend just added
    /// or restarted at UNKNOWN (not a transition).
    fn backend_status(&self, _group: &str, _backend: &str, _from: Option<mcp_health_proto::v1::BackendStatus>, _to: mcp_health_proto::v1::BackendStatus) {}
    /// The group's verdict as the owner just published it (`core::phase`'s one computation).
    fn group_verdict(&self, _group: &str, _verdict: &mcp_health_core::phase::GroupVerdict) {}
    /// A backend left its group; the group lives on.
    fn backend_removed(&self, _group: &str, _backend: &str) {}
    /// A group was deleted, with the backends it had.
    fn group_deleted(&self, _group: &str, _backends: &[String]) {}
    /// A backend was ejected from real traffic (Some), or returned from its
    /// ejection (None), at `at`.
    fn ejection(&self, _group: &str, _backend: &str, _ejection: Option<&mcp_health_core::outlier::Ejection>, _at: std::time::SystemTime) {}
    /// A backend's tool catalog changed (names and fingerprints only).
    fn catalog_changed(&self, _group: &str, _backend: &str, _change: &mcp_health_core::catalog::CatalogChange) {}
    /// A DNS-discovered backend's endpoints changed (an address came or went,
    /// or an endpoint's status or routing state moved): every endpoint now,
    /// as (address, status, state).
    fn endpoints(&self, _group: &str, _backend: &str, _endpoints: &[EndpointView]) {}
    /// A failing probe of a live backend was held back (not folded into its
    /// verdict) because the prober doubts itself.
    fn probe_held(&self, _group: &str, _backend: &str) {}
    /// The prober started doubting itself, its causes changed (Some), or it
    /// trusts itself again (None).
    fn doubt(&self, _doubt: Option<&DoubtView>) {}
    /// A probe started (+1) or ended (-1); see [`InFlight`].
    fn probes_in_flight(&self, _delta: i64) {}
    /// A watch stream of `api` opened (+1) or closed (-1); see [`InFlight`].
    fn watch_streams(&self, _api: WatchApi, _delta: i64) {}
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Probes in flight at once, across all backends.
    pub max_concurrent_probes: usize,
    /// Minimum time between two on-demand probes of one backend.
    pub probe_backend_interval: Duration,
    /// Buffered changes per watcher before it is resynchronized with a snapshot.
    pub watch_buffer: usize,
    /// Told of every probe result (after the history, which is always kept); None adds nothing.
    pub observer: Option<Arc<dyn ProbeObserver>>,
    /// Where probes resolve backend host names.
    pub dns: DnsSettings,
    /// First probes (after start-up or an apply) started per second at most,
    /// across all backends, within each backend's `initialSpread` window.
    pub initial_probes_per_second: u32,
    /// Cluster mode: ownership and shared verdicts; None for a single node.
    pub cluster: Option<Arc<dyn seam::ClusterSeam>>,
    /// The history to keep (given when something outside the engine reads it
    /// from the start, like the cluster's metrics); None: a new one.
    pub history: Option<Arc<History>>,
    /// When the prober doubts itself, and for how long it holds failing probes back.
    pub doubt: mcp_health_core::doubt::DoubtPolicy,
    /// The doubt task's checks; None: no task (nothing is ever doubted).
    pub doubt_checks: Option<DoubtChecks>,
    /// Cluster mode: when failing probes make a burst the other replicas are
    /// asked about (`ClusterSeam::burst`); None: bursts are not looked for.
    pub burst: Option<mcp_health_core::burst::BurstPolicy>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            max_concurrent_probes: 1024,
            probe_backend_interval: Duration::from_secs(1),
            watch_buffer: 4096,
            observer: None,
            dns: DnsSettings::default(),
            initial_probes_per_second: 1000,
            cluster: None,
            history: None,
            doubt: Default::default(),
            doubt_checks: None,
            burst: None,
        }
    }
}

/// A cheap, cloneable handle to the engine.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Command>,
    clients: Arc<ClientCache>,
    prober: SharedProbe,
    limiter: Arc<Semaphore>,
    limits: Limits,
    observer: Option<Arc<dyn ProbeObserver>>,
    history: Arc<History>,
    /// How many groups have been deleted (API or cluster deletes, and groups
    /// the config file dropped): the config watcher retries a reload that
    /// failed on a name conflict when this moves.
    deletions: watch::Receiver<u64>,
    /// The prober's self-doubt as the owner last published it.
    doubt: watch::Receiver<Option<DoubtView>>,
}

impl Engine {
    /// Starts the owner task. Groups start probing as soon as they are applied.
    pub fn start(config: EngineConfig, prober: SharedProbe, health: HealthStatuses) -> Engine {
        Self::start_with_store(config, prober, health, None)
    }

    /// Starts the owner task with a durable store for API groups: every API
    /// apply and delete is committed to `persist` before it takes effect.
    pub fn start_with_store(mut config: EngineConfig, prober: SharedProbe, health: HealthStatuses, persist: Option<Arc<dyn Persist>>) -> Engine {
        // History is always kept; the configured observer (metrics) follows it.
        let history = config.history.take().unwrap_or_default();
        config.observer = Some(tee::compose(history.clone(), config.observer.take()));
        let (tx, rx) = mpsc::channel(1024);
        let limiter = Arc::new(Semaphore::new(config.max_concurrent_probes));
        let (deleted, deletions) = watch::channel(0);
        let owner = owner::Owner::new(config.clone(), tx.downgrade(), prober.clone(), limiter.clone(), health, persist, deleted);
        let doubt = owner.doubt();
        tokio::spawn(owner.run(rx));
        let clients = Arc::new(ClientCache::new(config.limits.allow_link_local_backends, &config.dns));
        if let Some(checks) = config.doubt_checks.clone() {
            tokio::spawn(
                doubt::DoubtTask {
                    checks,
                    dns: clients.dns(),
                    owner: tx.downgrade(),
                }
                .run(),
            );
        }
        Engine {
            tx,
            clients,
            prober,
            limiter,
            limits: config.limits,
            observer: config.observer,
            history,
            deletions,
            doubt,
        }
    }

    /// The prober's self-doubt now (None: it trusts itself), and its changes.
    pub fn doubt(&self) -> watch::Receiver<Option<DoubtView>> {
        self.doubt.clone()
    }

    /// Hands one check of this node's evidence to the owner (what the doubt
    /// task does at every check; tests drive it directly).
    pub async fn report_doubt(&self, evidence: mcp_health_core::doubt::Evidence) -> Result<(), EngineError> {
        self.tx.send(Command::Doubt(evidence)).await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Changes whenever a group is deleted (see [`Engine`]'s `deletions`).
    pub fn deletions(&self) -> watch::Receiver<u64> {
        self.deletions.clone()
    }

    /// Every backend's transition history and latency (since this engine started).
    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// The observer the engine reports to, for the API's watch-stream counts.
    pub fn observer(&self) -> Option<&Arc<dyn ProbeObserver>> {
        self.observer.as_ref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Builds probe targets (HTTP clients, TLS material) before anything changes,
    /// so a bad CA file is reported as a field violation and changes nothing.
    /// CA and key files are read on a blocking thread, never on an async worker.
    async fn targets(&self, group: &ValidGroup, prefix: &str) -> Result<Vec<Arc<ProbeTarget>>, EngineError> {
        let clients = self.clients.clone();
        let name = group.spec.name.clone();
        let backends = group.backends.clone();
        let prefix = prefix.to_owned();
        let build = move || {
            let mut violations = Vec::new();
            let mut targets = Vec::with_capacity(backends.len());
            for (i, b) in backends.into_iter().enumerate() {
                match ProbeTarget::new(&name, b, &clients) {
                    Ok(t) => targets.push(Arc::new(t)),
                    Err(e) => violations.push(FieldViolation {
                        field: format!("{prefix}backends[{i}].tls"),
                        description: e.to_string(),
                    }),
                }
            }
            if violations.is_empty() {
                Ok(targets)
            } else {
                Err(EngineError::Invalid(violations))
            }
        };
        // The closure does not panic; a join error means the runtime is shutting down.
        tokio::task::spawn_blocking(build).await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// Creates or replaces one group.
    pub async fn apply(&self, group: ValidGroup, origin: Origin) -> Result<Applied, EngineError> {
        let targets = self.targets(&group, "spec.").await?;
        let mut applied = self
            .call(|reply| Command::Apply {
                groups: vec![(group, targets)],
                origin,
                replace_origin: false,
                reply,
            })
            .await??;
        applied.pop().ok_or(EngineError::ShuttingDown)
    }

    /// Checks one group as [`Engine::apply`] would (probe targets, origins,
    /// the group limit) and changes nothing: a dry run refuses what the
    /// apply would refuse.
    pub async fn check_apply(&self, group: ValidGroup, origin: Origin) -> Result<(), EngineError> {
        let targets = self.targets(&group, "spec.").await?;
        self.call(|reply| Command::CheckApply {
            group: Box::new((group, targets)),
            origin,
            reply,
        })
        .await?
    }

    /// Makes the groups of `origin` exactly `groups`, all or nothing: groups of
    /// that origin missing from the list are deleted. Used for the config file.
    pub async fn replace_all(&self, groups: Vec<ValidGroup>, origin: Origin) -> Result<Vec<Applied>, EngineError> {
        let mut with_targets = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            let targets = self.targets(&g, &format!("groups[{i}].")).await?;
            with_targets.push((g, targets));
        }
        self.call(|reply| Command::Apply {
            groups: with_targets,
            origin,
            replace_origin: true,
            reply,
        })
        .await?
    }

    /// Brings back API groups read from the store, keeping their generations.
    /// They start at UNKNOWN and are probed at once, like any new group.
    pub async fn restore(&self, groups: Vec<(ValidGroup, u64)>) -> Result<Vec<Applied>, EngineError> {
        let mut with_targets = Vec::with_capacity(groups.len());
        for (g, generation) in groups {
            let targets = self.targets(&g, &format!("{}.", g.spec.name)).await?;
            with_targets.push((g, targets, generation));
        }
        self.call(|reply| Command::Restore { groups: with_targets, reply }).await?
    }

    pub async fn delete(&self, group: String) -> Result<(), EngineError> {
        self.call(|reply| Command::Delete { group, reply }).await?
    }

    /// Removes an API group the store already removed (deleted on another
    /// replica), without writing the store: checked and ordered like `delete`.
    pub async fn forget(&self, group: String) -> Result<(), EngineError> {
        self.call(|reply| Command::Forget { group, reply }).await?
    }

    pub async fn get(&self, group: String) -> Result<Arc<GroupSnapshot>, EngineError> {
        self.call(|reply| Command::Get { group, reply }).await?
    }

    /// Every group's snapshot, in name order.
    pub async fn list(&self) -> Result<Vec<Arc<GroupSnapshot>>, EngineError> {
        self.call(|reply| Command::List { reply }).await
    }

    /// A snapshot of one group (or all, for None) and the changes after it.
    pub async fn watch(&self, group: Option<String>) -> Result<Subscription, EngineError> {
        self.call(|reply| Command::Watch { group, reply }).await?
    }

    /// Probes one backend now, within the global concurrency limit, and
    /// returns the verdict that probe produced.
    pub async fn probe_backend(&self, group: String, backend: String) -> Result<Probed, EngineError> {
        let ticket = self.call(|reply| Command::ProbeBackend { group, backend, reply }).await??;
        let _permit = self.limiter.acquire().await.map_err(|_| EngineError::ShuttingDown)?;
        let _in_flight = InFlight::probe(self.observer.as_ref());
        let result = scheduler::probe_shared(&*self.prober, &ticket.target, &ticket.memory, ticket.policy).await;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::ProbeResult(Box::new(ProbeResult {
                reply: Some(reply),
                ..ticket.result(result)
            })))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// Probes one backend now and returns what it found, folding nothing:
    /// no verdict moves and no rate limit is spent (another replica asks
    /// whether this one reaches a backend it saw failing: indirect probes).
    /// Within the global concurrency limit.
    pub async fn check_backend(&self, group: String, backend: String) -> Result<Checked, EngineError> {
        let ticket = self.call(|reply| Command::CheckTicket { group, backend, reply }).await??;
        let _permit = self.limiter.acquire().await.map_err(|_| EngineError::ShuttingDown)?;
        let _in_flight = InFlight::probe(self.observer.as_ref());
        let timed = scheduler::probe_shared(&*self.prober, &ticket.target, &ticket.memory, ticket.policy).await;
        Ok(Checked {
            class: timed.outcome.class,
            reason: timed.outcome.reason,
        })
    }

    /// Hands the other replicas' answer about a burst to the owner (cluster
    /// mode): Some(true) when they reach backends this replica saw failing.
    pub async fn peers_answered(&self, reach: Option<bool>) -> Result<(), EngineError> {
        self.tx.send(Command::PeersAnswered(reach)).await.map_err(|_| EngineError::ShuttingDown)
    }

    /// How long a probe of one backend may take (its policy's timeout).
    pub async fn probe_timeout(&self, group: String, backend: String) -> Result<Duration, EngineError> {
        self.call(|reply| Command::ProbeTimeout { group, backend, reply }).await?
    }

    /// Drains a backend of an API group, or ends its drain: the spec's `drain`,
    /// committed to the store like an apply. The verdict and the probe timer
    /// carry over (drain is not part of a backend's identity). With
    /// `endpoint`, one endpoint of a discovered backend (`drainedEndpoints`).
    pub async fn set_drain(&self, group: String, backend: String, endpoint: Option<std::net::SocketAddr>, drain: bool) -> Result<Applied, EngineError> {
        let mut applied = self
            .call(|reply| Command::SetDrain {
                group,
                backend,
                endpoint,
                drain,
                reply,
            })
            .await??;
        applied.pop().ok_or(EngineError::ShuttingDown)
    }

    /// Accepts the tool catalog `fingerprint` for a backend of an API group:
    /// added to the spec's `catalog.accepted`, committed to the store like an
    /// apply. The verdict carries over; the probe task restarts with the new spec.
    pub async fn accept_catalog(&self, group: String, backend: String, fingerprint: String) -> Result<Applied, EngineError> {
        let mut applied = self
            .call(|reply| Command::AcceptCatalog {
                group,
                backend,
                fingerprint,
                reply,
            })
            .await??;
        applied.pop().ok_or(EngineError::ShuttingDown)
    }

    /// Folds outcomes of real traffic to one backend (`ReportOutcomes`):
    /// consecutive failures eject it within its group's cap (`policy.outlier`).
    /// In cluster mode, reports for a backend another replica owns are
    /// handed to the cluster for the owner (`ClusterSeam::forward_outcomes`);
    /// reports another replica forwarded here (`ReportOrigin::Forwarded`)
    /// for a backend this one no longer owns are counted (`not_owned`), never
    /// forwarded again.
    pub async fn report_outcomes(
        &self,
        group: String,
        backend: String,
        outcomes: Vec<mcp_health_core::outlier::TrafficOutcome>,
        origin: ReportOrigin,
    ) -> Result<ReportSummary, EngineError> {
        self.call(|reply| Command::ReportOutcomes {
            group,
            backend,
            outcomes,
            forwarded: origin == ReportOrigin::Forwarded,
            reply,
        })
        .await?
    }

    /// Takes a verdict another replica shared as this backend's state (cluster mode).
    pub async fn remote_verdict(&self, group: String, backend: String, verdict: seam::SharedVerdict) -> Result<(), EngineError> {
        self.tx
            .send(Command::RemoteVerdict {
                group,
                backend,
                verdict: Box::new(verdict),
            })
            .await
            .map_err(|_| EngineError::ShuttingDown)
    }

    /// Takes a discovered endpoint's verdict another replica shared (cluster mode).
    pub async fn remote_endpoint_verdict(
        &self,
        group: String,
        backend: String,
        address: std::net::SocketAddr,
        verdict: seam::SharedVerdict,
    ) -> Result<(), EngineError> {
        self.tx
            .send(Command::RemoteEndpointVerdict {
                group,
                backend,
                address,
                verdict: Box::new(verdict),
            })
            .await
            .map_err(|_| EngineError::ShuttingDown)
    }

    /// Takes the endpoint set a discovered backend's owner shared (cluster mode).
    pub async fn remote_endpoints(&self, group: String, backend: String, endpoints: seam::SharedEndpoints) -> Result<(), EngineError> {
        self.tx
            .send(Command::RemoteEndpoints {
                group,
                backend,
                endpoints: Box::new(endpoints),
            })
            .await
            .map_err(|_| EngineError::ShuttingDown)
    }

    /// Stops every probe and ends every watch stream.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }
}
