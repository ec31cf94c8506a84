//! Assembles the daemon: engine, config file, gRPC services (ours,
//! grpc.health.v1, reflection) on one listener, and an orderly shutdown.

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
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
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
    #[error("grpc server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("the listener failed")]
    Accept(#[source] std::io::Error),
    #[error(transparent)]
    MetricsServe(#[from] crate::metrics::ServeError),
    #[error("server task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the {server} server on {addr} stopped on its own")]
    ServerEnded {
        server: &'static str,
        addr: SocketAddr,
        #[source]
        cause: Option<Box<DaemonError>>,
    },
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
    #[error("--data-dir and --etcd-endpoints exclude each other: in a cluster, API groups live in etcd")]
    DataDirInCluster,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot use --tls-cert {cert} with --tls-key {key}")]
    TlsConfig {
        cert: String,
        key: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(
        "refusing to listen on {addr}: ApplyGroup, DeleteGroup, ProbeBackend, SetBackendDrain and AcceptCatalog would be open to anyone who can reach it; \
         set --admin-token-file or --tls-client-ca (mTLS), listen on a loopback address, \
         or pass --insecure-allow-open-mutations to accept the risk"
    )]
    OpenMutations { addr: SocketAddr },
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
            cluster: None,
        }
    }
}

/// Who may mutate, refusing an unprotected non-loopback listener.
fn admin_guard(opts: &DaemonOptions) -> Result<AdminGuard, DaemonError> {
    let token = opts.admin_token_file.as_deref().map(AdminTokenFile::open).transpose()?;
    let mtls = opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    let guard = AdminGuard::new(token, mtls);
    if !guard.protects() && !opts.listen.ip().is_loopback() {
        if !opts.insecure_allow_open_mutations {
            return Err(DaemonError::OpenMutations { addr: opts.listen });
        }
        warn!(addr = %opts.listen, "INSECURE: ApplyGroup, DeleteGroup, ProbeBackend, SetBackendDrain and AcceptCatalog are open to anyone who can reach this address (--insecure-allow-open-mutations)");
    }
    Ok(guard)
}

/// Groups read back from the store, with their generations.
type Restored = Vec<(ValidGroup, u64)>;

/// Opens the store and reads its groups back, validated under today's flags.
fn open_store(dir: &std::path::Path, limits: &Limits) -> Result<(Arc<RedbStore>, Restored), DaemonError> {
    let store = RedbStore::open(dir)?;
    let groups = crate::store::validate_stored(store.load()?, limits)?;
    Ok((Arc::new(store), groups))
}

/// Restores stored groups and loads the config file; on failure the engine
/// is stopped so nothing (the store's lock included) outlives the attempt.
async fn load_groups(
    engine: &Engine,
    restored: Restored,
    config_path: Option<&std::path::Path>,
    config_status: &ConfigStatusHandle,
) -> Result<Option<String>, DaemonError> {
    let result = async {
        if !restored.is_empty() {
            let count = restored.len();
            engine.restore(restored).await.map_err(DaemonError::Restore)?;
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
    .await;
    if result.is_err() {
        engine.shutdown().await;
    }
    result
}

/// One server task of the daemon (gRPC, health-only, metrics).
struct ServerTask {
    name: &'static str,
    addr: SocketAddr,
    done: BoxFuture<'static, Result<(), DaemonError>>,
}

impl ServerTask {
    fn new<E: Into<DaemonError> + Send + 'static>(name: &'static str, addr: SocketAddr, task: JoinHandle<Result<(), E>>) -> ServerTask {
        ServerTask {
            name,
            addr,
            done: Box::pin(async move {
                match task.await {
                    Ok(r) => r.map_err(Into::into),
                    Err(e) => Err(DaemonError::Task(e)),
                }
            }),
        }
    }
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    engine: Engine,
    statuses: HealthStatuses,
    shutdown: CancellationToken,
    servers: Vec<ServerTask>,
    metrics_addr: Option<SocketAddr>,
    health_addr: Option<SocketAddr>,
    ui_addr: Option<SocketAddr>,
    cluster: Option<ClusterNode>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let listen_error = |e: std::io::Error| DaemonError::Listen { addr, source: e };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until the shutdown token, a serve error, or a
/// listener that died.
fn serve<L>(router: tonic::transport::server::Router<L>, listener: TcpListener, signal: CancellationToken) -> JoinHandle<Result<(), DaemonError>>
where
    L: tower::Layer<tonic::service::Routes> + Send + 'static,
    L::Service: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let (accept, failed) = listener::watch(listener);
    tokio::spawn(async move {
        tokio::select! {
            r = router.serve_with_incoming_shutdown(accept.into_stream(), signal.cancelled_owned()) => r.map_err(DaemonError::Serve),
            e = failed.wait() => Err(DaemonError::Accept(e)),
        }
    })
}

pub use crate::errors::chain;

impl Daemon {
    /// Checks every flag and file, binds, loads the config (refusing to start
    /// on an invalid one), then starts probing and serving. Everything that
    /// can fail is built before anything starts; the one step that can fail
    /// after the engine started (restoring and loading groups) stops it, so a
    /// failed start leaves nothing running: no task, no listener, no store lock.
    pub async fn start(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let admin = admin_guard(&opts)?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &opts.tls {
            builder = builder.tls_config(tls.config().await?).map_err(|e| DaemonError::TlsConfig {
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
        let reflection_v1 = reflection().build_v1().map_err(DaemonError::Reflection)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(DaemonError::Reflection)?;
        let mut cluster = None;
        let (persist, restored) = match (&opts.cluster, &opts.data_dir) {
            (Some(_), Some(_)) => return Err(DaemonError::DataDirInCluster),
            (Some(c), None) => {
                let (node, groups) = ClusterNode::connect(c, &opts.engine.limits).await?;
                info!(endpoints = ?c.endpoints, prefix = %c.prefix, groups = groups.len(), "cluster mode: groups read from etcd");
                let store = node.store.clone();
                cluster = Some(node);
                (Some(store as Arc<dyn Persist>), groups)
            }
            (None, Some(dir)) => {
                let (store, groups) = open_store(dir, &opts.engine.limits)?;
                info!(data_dir = %dir.display(), groups = groups.len(), "store opened");
                (Some(store as Arc<dyn Persist>), groups)
            }
            (None, None) => {
                warn!("no --data-dir: groups applied over the API live in memory only and are lost on restart");
                (None, Vec::new())
            }
        };
        let (listener, addr) = bind(opts.listen).await?;
        let health_listener = match opts.health_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let metrics_listener = match opts.metrics_listen {
            Some(a) => Some(MetricsListener::bind(a).await?),
            None => None,
        };
        let ui_listener = match opts.ui_listen {
            Some(a) => Some(crate::ui::UiServer::bind(a).await?),
            None => None,
        };
        let mut engine_config = opts.engine.clone();
        if let Some(node) = cluster.as_mut() {
            // Joins before the engine's first probe, so ownership is known.
            node.join(addr.to_string()).await?;
            engine_config.cluster = Some(node.seam());
        }

        // From here on things run. Nothing below fails but `load_groups`,
        // which stops the engine on failure; the listeners close as they drop.
        let shutdown = CancellationToken::new();
        let statuses = HealthStatuses::default();
        let prober = opts.prober.clone().unwrap_or_else(|| Arc::new(HttpProber::default()));
        let metrics = metrics_listener.as_ref().map(|_| {
            let mut metrics = crate::metrics::Metrics::new();
            if let Some(node) = &cluster {
                // Owned backends are counted over the engine's backends, as its history has them.
                let history = engine_config.history.get_or_insert_default().clone();
                metrics = metrics.with_collector(crate::cluster::metrics::ClusterMetrics::new(node.status.clone(), history));
            }
            Arc::new(metrics)
        });
        if let Some(m) = &metrics {
            engine_config.observer = Some(m.clone());
        }
        let engine = Engine::start_with_store(engine_config, prober, statuses.clone(), persist);
        let config_status = ConfigStatusHandle::default();
        let config_text = match load_groups(&engine, restored, opts.config.as_deref(), &config_status).await {
            Ok(text) => text,
            Err(e) => {
                if let Some(mut node) = cluster {
                    node.stop().await;
                }
                return Err(e);
            }
        };
        // xDS reads the engine's watch, so it starts after the engine.
        let xds = if opts.xds {
            match crate::xds::catalog::start(engine.clone(), opts.xds_debounce, shutdown.clone()).await {
                Ok(catalog) => {
                    info!(
                        debounce_ms = opts.xds_debounce.as_millis() as u64,
                        "xDS on (--xds): ADS and EDS served on the gRPC listener, one ClusterLoadAssignment mcp-health/<group> per group"
                    );
                    Some(crate::xds::XdsService::new(catalog, shutdown.clone(), opts.max_xds_streams))
                }
                Err(e) => {
                    engine.shutdown().await;
                    if let Some(mut node) = cluster {
                        node.stop().await;
                    }
                    return Err(DaemonError::Xds(e));
                }
            }
        } else {
            None
        };
        if let Some(node) = cluster.as_mut() {
            node.start(engine.clone());
        }

        if let (Some(path), Some(text)) = (&opts.config, config_text) {
            tokio::spawn(config::watch(engine.clone(), path.clone(), text, config_status.clone(), shutdown.clone()));
        }
        let mut servers = Vec::new();
        let ui_addr = ui_listener.map(|listener| {
            let ui = crate::ui::UiServer::serve(listener, engine.clone(), shutdown.clone());
            let addr = ui.local_addr();
            servers.push(ServerTask::new("status page (--ui-listen)", addr, ui.into_task()));
            addr
        });
        let metrics_addr = metrics_listener.as_ref().map(MetricsListener::local_addr);
        if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
            let addr = listener.local_addr();
            servers.push(ServerTask::new(
                "metrics (--metrics-listen)",
                addr,
                listener.serve(metrics, shutdown.clone()).into_task(),
            ));
        }
        let watch_streams = WatchStreams::new(opts.max_watch_streams).with_observer(engine.observer().cloned());
        let group_service = GroupService::new(engine.clone(), shutdown.clone(), config_status)
            .with_admin_guard(admin)
            .with_watch_streams(watch_streams.clone())
            .with_cluster(cluster.as_ref().map(|n| (n.status.clone(), n.lease_ttl())))
            .with_probe_router(cluster.as_ref().map(ClusterNode::probe_router));
        let health_service = || HealthService::new(statuses.clone(), shutdown.clone()).with_watch_streams(watch_streams.clone());
        let health_addr = health_listener.map(|(listener, health_addr)| {
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
                    .map(|x| AggregatedDiscoveryServiceServer::new(x).max_decoding_message_size(opts.max_message_bytes)),
            )
            .add_optional_service(xds.map(|x| EndpointDiscoveryServiceServer::new(x).max_decoding_message_size(opts.max_message_bytes)));
        servers.push(ServerTask::new("grpc", addr, serve(router, listener, shutdown.clone())));
        info!(%addr, "mcp-healthd serving");
        Ok(Daemon {
            addr,
            engine,
            statuses,
            shutdown,
            servers,
            metrics_addr,
            health_addr,
            ui_addr,
            cluster,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the plaintext health-only listener is, when `health_listen` was set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// Where the status page is served, when `ui_listen` was set.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui_addr
    }

    /// Where `/metrics` is served, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Health goes NOT_SERVING, probes stop, streams end, then the servers stop.
    pub async fn stop(self) -> Result<(), DaemonError> {
        info!("shutting down: health NOT_SERVING, stopping probes and streams");
        self.statuses.set_all_not_serving();
        self.engine.shutdown().await;
        if let Some(mut node) = self.cluster {
            // Revokes the lease: the others take over this replica's backends at once.
            node.stop().await;
        }
        self.shutdown.cancel();
        let mut result = Ok(());
        for server in self.servers {
            let r = server.done.await;
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Serves until `stop` resolves (then stops, Ok) or a server ends on its
    /// own (then logs why, stops everything and returns the error naming it).
    pub async fn serve_until(mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), DaemonError> {
        let ended = tokio::select! {
            () = stop => None,
            (result, i, _) = select_all(self.servers.iter_mut().map(|s| &mut s.done)) => Some((i, result)),
        };
        let Some((i, result)) = ended else {
            return self.stop().await;
        };
        let server = self.servers.remove(i);
        let err = DaemonError::ServerEnded {
            server: server.name,
            addr: server.addr,
            cause: result.err().map(Box::new),
        };
        error!(server = server.name, addr = %server.addr, error = %chain(&err), "a server stopped on its own; shutting down");
        if let Err(e) = self.stop().await {
            warn!(error = %chain(&e), "while shutting down");
        }
        Err(err)
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

    fn opts(listen: &str) -> DaemonOptions {
        DaemonOptions {
            listen: listen.parse().unwrap(),
            ..DaemonOptions::default()
        }
    }

    #[test]
    fn open_mutations_are_refused_only_beyond_loopback() {
        assert!(admin_guard(&opts("127.0.0.1:0")).is_ok());
        assert!(admin_guard(&opts("[::1]:0")).is_ok());
        for listen in ["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051"] {
            let err = admin_guard(&opts(listen)).unwrap_err().to_string();
            assert!(err.contains("refusing to listen") && err.contains("--insecure-allow-open-mutations"), "{err}");
            assert!(
                admin_guard(&DaemonOptions {
                    insecure_allow_open_mutations: true,
                    ..opts(listen)
                })
                .is_ok()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken").unwrap();
        let guarded = admin_guard(&DaemonOptions {
            admin_token_file: Some(token),
            ..opts("0.0.0.0:50051")
        })
        .unwrap();
        assert!(guarded.protects());
        let tls = ServerTls {
            cert: "c".into(),
            key: "k".into(),
            client_ca: Some("ca".into()),
        };
        assert!(
            admin_guard(&DaemonOptions {
                tls: Some(tls),
                ..opts("0.0.0.0:50051")
            })
            .unwrap()
            .protects()
        );
    }
}
