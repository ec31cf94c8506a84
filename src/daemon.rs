//! Assembles the daemon in three stages: a `Plan` from the options alone
//! (validated, no I/O), then the resources it needs (TLS files, store or
//! cluster membership, listeners, engine, xDS catalog) acquired into `Held`,
//! then the running `Daemon`. `Held::release` gives everything back in reverse
//! order and is the one cleanup path, of a start that failed half-way and of
//! a stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::{BoxFuture, select_all};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::auth::{AdminGuard, AdminTokenFile, AuthError};
use crate::api::group_service::GroupService;
use crate::api::health_service::HealthService;
use crate::api::limits::{OversizeAsResourceExhausted, WatchStreams};
use crate::api::tls::{ServerTls, TlsError};
use crate::cluster::node::ClusterNode;
use crate::config::{self, ConfigError, ConfigStatusHandle};
use crate::engine::{Engine, EngineConfig};
use crate::health::HealthStatuses;
use crate::listener;
use crate::metrics::MetricsListener;
use crate::probe::{HttpProber, SharedProbe};
use crate::proto::grpc_health_v1::health_server::HealthServer;
use crate::proto::v1::group_health_service_server::GroupHealthServiceServer;
use crate::spec::{Limits, ValidGroup};
use crate::store::{Persist, RedbStore, StoreError};
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogServiceServer;

/// Why the daemon did not start or stopped with an error: one of its stages.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Options that contradict each other or the daemon's safety rules; found
/// before anything is read, bound or started.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("--data-dir and --etcd-endpoints exclude each other: in a cluster, API groups live in etcd")]
    DataDirInCluster,
    #[error(
        "refusing to listen on {addr}: ApplyGroup, DeleteGroup, ProbeBackend, SetBackendDrain, AcceptCatalog and ReportOutcomes would be open to anyone who can reach it; \
         set --admin-token-file or --tls-client-ca (mTLS), listen on a loopback address, \
         or pass --insecure-allow-open-mutations to accept the risk"
    )]
    OpenMutations { addr: SocketAddr },
    #[error("{first} and {second} both name {addr}: give each listener its own address")]
    SameAddress {
        first: &'static str,
        second: &'static str,
        addr: SocketAddr,
    },
}

/// A resource the start could not acquire; whatever it had acquired before
/// was released.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build reflection")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Ui(#[from] crate::ui::UiError),
    #[error("cannot start the xDS server")]
    Xds(#[source] crate::engine::EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot restore a stored group (fix the flags or delete the group with an earlier daemon)")]
    StoredGroupInvalid(#[from] crate::store::InvalidStoredGroup),
    #[error("cannot restore the stored groups")]
    Restore(#[source] crate::engine::EngineError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::node::ClusterError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot use --tls-cert {cert} with --tls-key {key}")]
    TlsConfig {
        cert: String,
        key: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A server of the running daemon that failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("grpc server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("the listener failed")]
    Accept(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::ServeError),
    #[error(transparent)]
    Ui(#[from] crate::ui::UiError),
    #[error("server task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the {server} server on {addr} stopped on its own")]
    ServerEnded {
        server: &'static str,
        addr: SocketAddr,
        #[source]
        cause: Option<Box<RunError>>,
    },
}

/// How to run the daemon.
#[derive(Clone)]
pub struct DaemonOptions {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
    pub engine: EngineConfig,
    /// The prober; None uses the real HTTP prober.
    pub prober: Option<SharedProbe>,
    /// Where to serve Prometheus `/metrics`; None (the default) serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the status page; None (the default) serves none.
    pub ui_listen: Option<SocketAddr>,
    /// A second, plaintext listener serving only grpc.health.v1, for probes
    /// (Kubernetes, Envoy) that cannot speak the main listener's TLS.
    pub health_listen: Option<SocketAddr>,
    /// Where API groups are stored; None keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// File holding the bearer token that mutating RPCs must present.
    pub admin_token_file: Option<PathBuf>,
    /// Server TLS, and mTLS for mutations when it names a client CA.
    pub tls: Option<ServerTls>,
    /// Allows listening beyond loopback with mutations unprotected.
    pub insecure_allow_open_mutations: bool,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most concurrent WatchGroupHealth plus grpc.health Watch streams.
    pub max_watch_streams: usize,
    /// Serve xDS (ADS and EDS, SotW and delta) on the listener (`--xds`).
    pub xds: bool,
    /// How long xDS collects a burst of changes before one push.
    pub xds_debounce: std::time::Duration,
    /// Most concurrent xDS streams (`--max-xds-streams`).
    pub max_xds_streams: usize,
    /// Serve Envoy's Access Log Service on the listener (`--access-log-service`):
    /// its HTTP entries are outcomes of real traffic (outlier ejection).
    pub access_log_service: bool,
    /// Per-address series of DNS-discovered endpoints in the metrics
    /// (`--metrics-endpoint-series`; 5 series per address).
    pub metrics_endpoint_series: bool,
    /// Cluster mode: API groups, membership and verdicts in etcd.
    pub cluster: Option<crate::cluster::ClusterOptions>,
}

/// tonic's default decoding limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
pub const DEFAULT_MAX_WATCH_STREAMS: usize = 10_000;

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            config: None,
            engine: EngineConfig::default(),
            prober: None,
            metrics_listen: None,
            ui_listen: None,
            health_listen: None,
            data_dir: None,
            admin_token_file: None,
            tls: None,
            insecure_allow_open_mutations: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_watch_streams: DEFAULT_MAX_WATCH_STREAMS,
            xds: false,
            xds_debounce: crate::xds::DEFAULT_DEBOUNCE,
            max_xds_streams: crate::xds::DEFAULT_MAX_XDS_STREAMS,
            access_log_service: false,
            metrics_endpoint_series: false,
            cluster: None,
        }
    }
}

/// Where API groups live.
#[derive(Clone, Debug, PartialEq)]
enum Storage {
    /// In memory only, lost on restart.
    Memory,
    /// In redb under `--data-dir`.
    DataDir(PathBuf),
    /// In etcd (`--etcd-endpoints`).
    Cluster,
}

/// What a start will do, decided from the options alone: no file is read,
/// no port bound. Everything a plan refuses is refused before any I/O.
#[derive(Clone, Debug, PartialEq)]
struct Plan {
    storage: Storage,
    /// Mutations are unprotected beyond loopback, as the operator accepted
    /// (`--insecure-allow-open-mutations`): the start warns.
    open_mutations: bool,
}

impl Plan {
    fn new(opts: &DaemonOptions) -> Result<Plan, PlanError> {
        let storage = match (&opts.cluster, &opts.data_dir) {
            (Some(_), Some(_)) => return Err(PlanError::DataDirInCluster),
            (Some(_), None) => Storage::Cluster,
            (None, Some(dir)) => Storage::DataDir(dir.clone()),
            (None, None) => Storage::Memory,
        };
        // Who may mutate: a token or a client certificate, or else only a
        // loopback listener (the token file itself is read at start).
        let protected = opts.admin_token_file.is_some() || opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let open_mutations = !protected && !opts.listen.ip().is_loopback();
        if open_mutations && !opts.insecure_allow_open_mutations {
            return Err(PlanError::OpenMutations { addr: opts.listen });
        }
        // Port 0 picks a free port per listener; any other address twice
        // would fail the second bind only after the first resources are held.
        let listeners = [
            ("--listen", Some(opts.listen)),
            ("--health-listen", opts.health_listen),
            ("--metrics-listen", opts.metrics_listen),
            ("--ui-listen", opts.ui_listen),
        ];
        for (i, (first, a)) in listeners.iter().enumerate() {
            for (second, b) in &listeners[i + 1..] {
                if let (Some(a), Some(b)) = (a, b)
                    && a == b
                    && a.port() != 0
                {
                    return Err(PlanError::SameAddress { first, second, addr: *a });
                }
            }
        }
        Ok(Plan { storage, open_mutations })
    }
}

/// Groups read back from the store, with their generations.
type Restored = Vec<(ValidGroup, u64)>;

/// Opens the store and reads its groups back, validated under today's flags.
fn open_store(dir: &std::path::Path, limits: &Limits) -> Result<(Arc<RedbStore>, Restored), StartError> {
    let store = RedbStore::open(dir)?;
    let groups = crate::store::validate_stored(store.load()?, limits)?;
    Ok((Arc::new(store), groups))
}

/// Restores stored groups and loads the config file, returning its text.
async fn load_groups(
    engine: &Engine,
    restored: Restored,
    config_path: Option<&std::path::Path>,
    config_status: &ConfigStatusHandle,
) -> Result<Option<String>, StartError> {
    if !restored.is_empty() {
        let count = restored.len();
        engine.restore(restored).await.map_err(StartError::Restore)?;
        info!(groups = count, "restored groups from the store; probing them afresh");
    }
    match config_path {
        Some(path) => {
            let (text, groups) = config::load(path, engine.limits())?;
            config::apply(engine, path, groups, config_status).await?;
            Ok(Some(text))
        }
        None => Ok(None),
    }
}

/// One server task of the daemon (gRPC, health-only, metrics, status page).
struct ServerTask {
    name: &'static str,
    addr: SocketAddr,
    done: BoxFuture<'static, Result<(), RunError>>,
}

impl ServerTask {
    fn new<E: Into<RunError> + Send + 'static>(name: &'static str, addr: SocketAddr, task: JoinHandle<Result<(), E>>) -> ServerTask {
        ServerTask {
            name,
            addr,
            done: Box::pin(async move {
                match task.await {
                    Ok(r) => r.map_err(Into::into),
                    Err(e) => Err(RunError::Task(e)),
                }
            }),
        }
    }
}

/// Listeners bound and not served yet; they close as they drop.
#[derive(Default)]
struct Bound {
    grpc: Option<(TcpListener, SocketAddr)>,
    health: Option<(TcpListener, SocketAddr)>,
    metrics: Option<MetricsListener>,
    ui: Option<TcpListener>,
}

/// Everything a start has acquired so far, in the order it was acquired.
/// `release` gives it back in reverse order: the one cleanup path, of a
/// start that failed at any step and of `Daemon::stop`.
#[derive(Default)]
struct Held {
    /// Health statuses: NOT_SERVING first on release.
    statuses: HealthStatuses,
    /// The store until the engine takes it (its file lock goes with it).
    store: Option<Arc<dyn Persist>>,
    /// Connected, then joined (a lease and a member key), then following.
    cluster: Option<ClusterNode>,
    bound: Bound,
    engine: Option<Engine>,
    /// Cancels the servers, the xDS catalog and the config watch.
    shutdown: CancellationToken,
    servers: Vec<ServerTask>,
}

impl Held {
    /// Releases everything in reverse order: health NOT_SERVING, the engine
    /// (probes, streams, its store), the cluster membership (the lease is
    /// revoked, so the others take over at once), then the servers and the
    /// listeners. The first server error is returned.
    async fn release(self) -> Result<(), RunError> {
        let Held {
            statuses,
            store,
            cluster,
            bound,
            engine,
            shutdown,
            servers,
        } = self;
        statuses.set_all_not_serving();
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
        if let Some(mut node) = cluster {
            node.stop().await;
        }
        shutdown.cancel();
        let mut result = Ok(());
        for server in servers.into_iter().rev() {
            let r = server.done.await;
            if result.is_ok() {
                result = r;
            }
        }
        drop(bound);
        drop(store);
        result
    }
}

/// Where the running daemon serves.
struct Addrs {
    grpc: SocketAddr,
    health: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    ui: Option<SocketAddr>,
}

/// A running daemon.
pub struct Daemon {
    addrs: Addrs,
    held: Held,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listen_error = |e: std::io::Error| StartError::Listen { addr, source: e };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until the shutdown token, a serve error, or a
/// listener that died.
fn serve<L>(router: tonic::transport::server::Router<L>, listener: TcpListener, signal: CancellationToken) -> JoinHandle<Result<(), RunError>>
where
    L: tower::Layer<tonic::service::Routes> + Send + 'static,
    L::Service: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let (accept, failed) = listener::watch(listener);
    tokio::spawn(async move {
        tokio::select! {
            r = router.serve_with_incoming_shutdown(accept.into_stream(), signal.cancelled_owned()) => r.map_err(RunError::Serve),
            e = failed.wait() => Err(RunError::Accept(e)),
        }
    })
}

pub use crate::errors::chain;

/// Acquires what `plan` needs into `held`, step by step; on an error the
/// caller releases `held`. Every check that needs no resource came first
/// (`Plan::new`); the rest fails as early as it can: files, store, ports and
/// membership before the engine starts.
async fn acquire(plan: &Plan, opts: &DaemonOptions, held: &mut Held) -> Result<Addrs, StartError> {
    let token = opts.admin_token_file.as_deref().map(AdminTokenFile::open).transpose()?;
    let admin = AdminGuard::new(token, opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some()));
    if plan.open_mutations {
        warn!(addr = %opts.listen, "INSECURE: ApplyGroup, DeleteGroup, ProbeBackend, SetBackendDrain, AcceptCatalog and ReportOutcomes are open to anyone who can reach this address (--insecure-allow-open-mutations)");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &opts.tls {
        builder = builder.tls_config(tls.config().await?).map_err(|e| StartError::TlsConfig {
            cert: tls.cert.display().to_string(),
            key: tls.key.display().to_string(),
            source: e,
        })?;
    }
    // With --xds, reflection lists Envoy's ADS and EDS services too.
    let reflection = || {
        let builder = tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET);
        if opts.xds {
            builder.register_encoded_file_descriptor_set(crate::proto::XDS_FILE_DESCRIPTOR_SET)
        } else {
            builder
        }
    };
    let reflection_v1 = reflection().build_v1().map_err(StartError::Reflection)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(StartError::Reflection)?;

    let restored = match (&plan.storage, &opts.cluster) {
        (Storage::Cluster, Some(c)) => {
            let (node, groups) = ClusterNode::connect(c, &opts.engine.limits).await?;
            info!(endpoints = ?c.endpoints, prefix = %c.prefix, groups = groups.len(), "cluster mode: groups read from etcd");
            held.store = Some(node.store.clone());
            held.cluster = Some(node);
            groups
        }
        (Storage::DataDir(dir), _) => {
            let (store, groups) = open_store(dir, &opts.engine.limits)?;
            info!(data_dir = %dir.display(), groups = groups.len(), "store opened");
            held.store = Some(store);
            groups
        }
        _ => {
            warn!("no --data-dir: groups applied over the API live in memory only and are lost on restart");
            Vec::new()
        }
    };

    let grpc = bind(opts.listen).await?;
    let addr = grpc.1;
    held.bound.grpc = Some(grpc);
    if let Some(a) = opts.health_listen {
        held.bound.health = Some(bind(a).await?);
    }
    if let Some(a) = opts.metrics_listen {
        held.bound.metrics = Some(MetricsListener::bind(a).await?);
    }
    if let Some(a) = opts.ui_listen {
        held.bound.ui = Some(crate::ui::UiServer::bind(a).await?);
    }
    let mut engine_config = opts.engine.clone();
    if let Some(node) = held.cluster.as_mut() {
        // Joins before the engine's first probe, so ownership is known.
        node.join(addr.to_string()).await?;
        engine_config.cluster = Some(node.seam());
        // A replica in doubt over a burst looks at it again as often as it checks itself.
        if let Some(checks) = &engine_config.doubt_checks {
            node.doubt_recheck = checks.interval;
        }
    }

    let metrics = held.bound.metrics.as_ref().map(|_| {
        let mut metrics = crate::metrics::Metrics::new();
        if opts.metrics_endpoint_series {
            metrics = metrics.with_endpoint_series();
        }
        if let Some(node) = &held.cluster {
            // Owned backends are counted over the engine's backends, as its history has them.
            let history = engine_config.history.get_or_insert_default().clone();
            metrics = metrics.with_collector(crate::cluster::metrics::ClusterMetrics::new(node.status.clone(), history));
        }
        Arc::new(metrics)
    });
    if let Some(m) = &metrics {
        engine_config.observer = Some(m.clone());
    }
    let prober = opts.prober.clone().unwrap_or_else(|| Arc::new(HttpProber::default()));
    let engine = Engine::start_with_store(engine_config, prober, held.statuses.clone(), held.store.take());
    held.engine = Some(engine.clone());
    let config_status = ConfigStatusHandle::default();
    let config_text = load_groups(&engine, restored, opts.config.as_deref(), &config_status).await?;
    // xDS reads the engine's watch, so it starts after the engine.
    let xds = if opts.xds {
        let catalog = crate::xds::catalog::start(engine.clone(), opts.xds_debounce, held.shutdown.clone())
            .await
            .map_err(StartError::Xds)?;
        info!(
            debounce_ms = opts.xds_debounce.as_millis() as u64,
            "xDS on (--xds): ADS and EDS served on the gRPC listener, one ClusterLoadAssignment mcp-health/<group> per group"
        );
        Some(crate::xds::XdsService::new(catalog, held.shutdown.clone(), opts.max_xds_streams))
    } else {
        None
    };

    // Nothing below fails: from here on things run.
    if let Some(node) = held.cluster.as_mut() {
        node.start(engine.clone());
    }
    let shutdown = held.shutdown.clone();
    if let (Some(path), Some(text)) = (&opts.config, config_text) {
        tokio::spawn(config::watch(engine.clone(), path.clone(), text, config_status.clone(), shutdown.clone()));
    }
    let servers = &mut held.servers;
    let ui_addr = held.bound.ui.take().map(|listener| {
        let ui = crate::ui::UiServer::serve(listener, engine.clone(), shutdown.clone());
        let addr = ui.local_addr();
        servers.push(ServerTask::new("status page (--ui-listen)", addr, ui.into_task()));
        addr
    });
    let metrics_addr = held.bound.metrics.as_ref().map(MetricsListener::local_addr);
    if let (Some(listener), Some(metrics)) = (held.bound.metrics.take(), metrics) {
        let addr = listener.local_addr();
        servers.push(ServerTask::new(
            "metrics (--metrics-listen)",
            addr,
            listener.serve(metrics, shutdown.clone()).into_task(),
        ));
    }
    let cluster = held.cluster.as_ref();
    let watch_streams = WatchStreams::new(opts.max_watch_streams).with_observer(engine.observer().cloned());
    let group_service = GroupService::new(engine.clone(), shutdown.clone(), config_status)
        .with_admin_guard(admin.clone())
        .with_watch_streams(watch_streams.clone())
        .with_cluster(cluster.map(|n| (n.status.clone(), n.lease_ttl())))
        .with_probe_router(cluster.map(ClusterNode::probe_router));
    let statuses = &held.statuses;
    let health_service = || HealthService::new(statuses.clone(), shutdown.clone()).with_watch_streams(watch_streams.clone());
    let health_addr = held.bound.health.take().map(|(listener, health_addr)| {
        // Plaintext by design: only grpc.health.v1, which carries no secret and takes no input but a name.
        let router = tonic::transport::Server::builder().add_service(HealthServer::new(health_service()).max_decoding_message_size(opts.max_message_bytes));
        servers.push(ServerTask::new(
            "grpc.health.v1 (--health-listen)",
            health_addr,
            serve(router, listener, shutdown.clone()),
        ));
        info!(addr = %health_addr, "grpc.health.v1 also served in plaintext (--health-listen)");
        health_addr
    });
    let oversize = OversizeAsResourceExhausted {
        max_message_bytes: opts.max_message_bytes,
    };
    let router = builder
        .layer(tower::util::MapResponseLayer::new(move |r| oversize.map(r)))
        .add_service(GroupHealthServiceServer::new(group_service).max_decoding_message_size(opts.max_message_bytes))
        .add_service(HealthServer::new(health_service()).max_decoding_message_size(opts.max_message_bytes))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_optional_service(
            xds.clone()
                .map(|x| crate::xds::AdsServer::new(x).max_decoding_message_size(opts.max_message_bytes)),
        )
        .add_optional_service(xds.map(|x| crate::xds::EdsServer::new(x).max_decoding_message_size(opts.max_message_bytes)))
        .add_optional_service(opts.access_log_service.then(|| {
            info!("Envoy's Access Log Service on (--access-log-service): HTTP entries are outcomes of real traffic, mapped by (cluster, address, path)");
            AccessLogServiceServer::new(crate::als::AccessLogs::new(engine.clone(), admin.clone(), shutdown.clone()))
                .max_decoding_message_size(opts.max_message_bytes)
        }));
    if let Some((listener, _)) = held.bound.grpc.take() {
        servers.push(ServerTask::new("grpc", addr, serve(router, listener, shutdown.clone())));
    }
    Ok(Addrs {
        grpc: addr,
        health: health_addr,
        metrics: metrics_addr,
        ui: ui_addr,
    })
}

impl Daemon {
    /// Plans from the options (refusing bad ones before any I/O), acquires
    /// every resource (files, store or cluster membership, listeners, the
    /// engine with its restored and config-file groups, xDS), then serves. A
    /// start that fails at any step releases what it had acquired through
    /// `Held::release`, leaving nothing running: no task, no listener, no
    /// store lock, no cluster lease.
    pub async fn start(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let plan = Plan::new(&opts)?;
        let mut held = Held::default();
        match acquire(&plan, &opts, &mut held).await {
            Ok(addrs) => {
                info!(addr = %addrs.grpc, "mcp-healthd serving");
                Ok(Daemon { addrs, held })
            }
            Err(e) => {
                if let Err(r) = held.release().await {
                    warn!(error = %chain(&r), "while releasing a failed start");
                }
                Err(e.into())
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addrs.grpc
    }

    /// Where the plaintext health-only listener is, when `health_listen` was set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.addrs.health
    }

    /// Where the status page is served, when `ui_listen` was set.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.addrs.ui
    }

    /// Where `/metrics` is served, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.addrs.metrics
    }

    pub fn engine(&self) -> &Engine {
        // Set by `acquire` before it returns, and only `release` (which
        // consumes the daemon) takes it out.
        self.held.engine.as_ref().expect("a running daemon has its engine")
    }

    /// Health goes NOT_SERVING, probes stop, streams end, the cluster lease
    /// is revoked, then the servers stop (`Held::release`).
    pub async fn stop(self) -> Result<(), DaemonError> {
        info!("shutting down: health NOT_SERVING, stopping probes and streams");
        Ok(self.held.release().await?)
    }

    /// Serves until `stop` resolves (then stops, Ok) or a server ends on its
    /// own (then logs why, stops everything and returns the error naming it).
    pub async fn serve_until(mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), DaemonError> {
        let ended = tokio::select! {
            () = stop => None,
            (result, i, _) = select_all(self.held.servers.iter_mut().map(|s| &mut s.done)) => Some((i, result)),
        };
        let Some((i, result)) = ended else {
            return self.stop().await;
        };
        let server = self.held.servers.remove(i);
        let err = RunError::ServerEnded {
            server: server.name,
            addr: server.addr,
            cause: result.err().map(Box::new),
        };
        error!(server = server.name, addr = %server.addr, error = %chain(&err), "a server stopped on its own; shutting down");
        if let Err(e) = self.stop().await {
            warn!(error = %chain(&e), "while shutting down");
        }
        Err(err.into())
    }

    /// Serves until SIGTERM or SIGINT (Ok) or until a server ends on its own (Err).
    pub async fn run(self) -> Result<(), DaemonError> {
        self.serve_until(Self::wait_for_signal()).await
    }

    /// Waits for SIGTERM or SIGINT.
    pub async fn wait_for_signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => info!("SIGTERM received"),
                        _ = int.recv() => info!("SIGINT received"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    fn listen(a: &str) -> DaemonOptions {
        DaemonOptions {
            listen: addr(a),
            ..DaemonOptions::default()
        }
    }

    fn mtls() -> ServerTls {
        ServerTls {
            cert: "c".into(),
            key: "k".into(),
            client_ca: Some("ca".into()),
        }
    }

    fn cluster() -> crate::cluster::ClusterOptions {
        crate::cluster::ClusterOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/mcp-health".into(),
            ca_cert: None,
            client_cert: None,
            user: None,
            lease_ttl: std::time::Duration::from_secs(5),
        }
    }

    /// The plan from options alone: what it decides, or what it refuses.
    #[test]
    fn plans() {
        let memory = Ok(Plan {
            storage: Storage::Memory,
            open_mutations: false,
        });
        let open = Ok(Plan {
            storage: Storage::Memory,
            open_mutations: true,
        });
        let refused = |a: &str| Err(PlanError::OpenMutations { addr: addr(a) });
        let same = |first, second, a: &str| Err(PlanError::SameAddress { first, second, addr: addr(a) });
        let rows: Vec<(&str, DaemonOptions, Result<Plan, PlanError>)> = vec![
            ("loopback v4", listen("127.0.0.1:0"), memory.clone()),
            ("loopback v6", listen("[::1]:0"), memory.clone()),
            ("any v4, unprotected", listen("0.0.0.0:50051"), refused("0.0.0.0:50051")),
            ("any v6, unprotected", listen("[::]:50051"), refused("[::]:50051")),
            ("a LAN address, unprotected", listen("10.0.0.5:50051"), refused("10.0.0.5:50051")),
            (
                "unprotected, risk accepted",
                DaemonOptions {
                    insecure_allow_open_mutations: true,
                    ..listen("0.0.0.0:50051")
                },
                open,
            ),
            (
                "a token file protects (read at start, not here)",
                DaemonOptions {
                    admin_token_file: Some("/nonexistent/token".into()),
                    ..listen("0.0.0.0:50051")
                },
                memory.clone(),
            ),
            (
                "mTLS protects",
                DaemonOptions {
                    tls: Some(mtls()),
                    ..listen("0.0.0.0:50051")
                },
                memory.clone(),
            ),
            (
                "TLS without a client CA does not",
                DaemonOptions {
                    tls: Some(ServerTls { client_ca: None, ..mtls() }),
                    ..listen("0.0.0.0:50051")
                },
                refused("0.0.0.0:50051"),
            ),
            (
                "a data dir",
                DaemonOptions {
                    data_dir: Some("/var/lib/mcp-health".into()),
                    ..listen("127.0.0.1:0")
                },
                Ok(Plan {
                    storage: Storage::DataDir("/var/lib/mcp-health".into()),
                    open_mutations: false,
                }),
            ),
            (
                "a cluster",
                DaemonOptions {
                    cluster: Some(cluster()),
                    ..listen("127.0.0.1:0")
                },
                Ok(Plan {
                    storage: Storage::Cluster,
                    open_mutations: false,
                }),
            ),
            (
                "a data dir in a cluster",
                DaemonOptions {
                    cluster: Some(cluster()),
                    data_dir: Some("/var/lib/mcp-health".into()),
                    ..listen("127.0.0.1:0")
                },
                Err(PlanError::DataDirInCluster),
            ),
            (
                "every listener on port 0",
                DaemonOptions {
                    health_listen: Some(addr("127.0.0.1:0")),
                    metrics_listen: Some(addr("127.0.0.1:0")),
                    ui_listen: Some(addr("127.0.0.1:0")),
                    ..listen("127.0.0.1:0")
                },
                memory.clone(),
            ),
            (
                "the status page on the gRPC address",
                DaemonOptions {
                    ui_listen: Some(addr("127.0.0.1:8080")),
                    ..listen("127.0.0.1:8080")
                },
                same("--listen", "--ui-listen", "127.0.0.1:8080"),
            ),
            (
                "metrics and health on one address",
                DaemonOptions {
                    health_listen: Some(addr("127.0.0.1:9000")),
                    metrics_listen: Some(addr("127.0.0.1:9000")),
                    ..listen("127.0.0.1:0")
                },
                same("--health-listen", "--metrics-listen", "127.0.0.1:9000"),
            ),
            (
                "one port on two addresses",
                DaemonOptions {
                    metrics_listen: Some(addr("127.0.0.2:9000")),
                    ..listen("127.0.0.1:9000")
                },
                memory,
            ),
        ];
        for (name, opts, want) in rows {
            assert_eq!(Plan::new(&opts), want, "{name}");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let err = Plan::new(&listen("0.0.0.0:50051")).unwrap_err().to_string();
        assert!(err.contains("refusing to listen") && err.contains("--insecure-allow-open-mutations"), "{err}");
        let err = PlanError::SameAddress {
            first: "--listen",
            second: "--ui-listen",
            addr: addr("127.0.0.1:8080"),
        };
        assert_eq!(
            err.to_string(),
            "--listen and --ui-listen both name 127.0.0.1:8080: give each listener its own address"
        );
    }
}
