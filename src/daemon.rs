//! Assembles the daemon: engine, config file, gRPC services (ours,
//! grpc.health.v1, reflection) on one listener, and an orderly shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::auth::{AdminGuard, AdminTokenFile, AuthError};
use crate::api::group_service::GroupService;
use crate::api::health_service::HealthService;
use crate::api::limits::{OversizeAsResourceExhausted, WatchStreams};
use crate::api::tls::{ServerTls, TlsError};
use crate::cluster::node::ClusterNode;
use crate::config::{self, ConfigError, ConfigStatusHandle};
use crate::engine::{Engine, EngineConfig};
use crate::health::HealthStatuses;
use crate::probe::{HttpProber, SharedProbe};
use crate::proto::grpc_health_v1::health_server::HealthServer;
use crate::proto::v1::group_health_service_server::GroupHealthServiceServer;
use crate::spec::{Limits, ValidGroup, validate_group};
use crate::store::{Persist, RedbStore, StoreError};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build reflection: {0}")]
    Reflection(String),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Ui(#[from] crate::ui::UiError),
    #[error("grpc server failed: {0}")]
    Serve(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored group {group:?} is not valid under the current flags: {reason}; fix the flags or delete the group with an earlier daemon")]
    StoredGroupInvalid { group: String, reason: String },
    #[error("cannot restore the stored groups: {0}")]
    Restore(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot configure tls: {0}")]
    TlsConfig(String),
    #[error(
        "refusing to listen on {addr}: ApplyGroup, DeleteGroup and ProbeBackend would be open to anyone who can reach it; \
         set --admin-token-file or --tls-client-ca (mTLS), listen on a loopback address, \
         or pass --insecure-allow-open-mutations to accept the risk"
    )]
    OpenMutations { addr: SocketAddr },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::node::ClusterError),
    #[error("--data-dir and --etcd-endpoints exclude each other: in a cluster, API groups live in etcd")]
    DataDirInCluster,
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
        warn!(addr = %opts.listen, "INSECURE: ApplyGroup, DeleteGroup and ProbeBackend are open to anyone who can reach this address (--insecure-allow-open-mutations)");
    }
    Ok(guard)
}

/// Groups read back from the store, with their generations.
type Restored = Vec<(ValidGroup, u64)>;

/// Opens the store and reads its groups back, validated under today's flags.
fn open_store(dir: &std::path::Path, limits: &Limits) -> Result<(Arc<RedbStore>, Restored), DaemonError> {
    let store = RedbStore::open(dir)?;
    let mut groups = Vec::new();
    for stored in store.load()? {
        let name = stored.spec.name.clone();
        let valid = validate_group(&stored.spec, &name, limits).map_err(|v| DaemonError::StoredGroupInvalid {
            group: name.clone(),
            reason: v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        })?;
        groups.push((valid, stored.generation));
    }
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
            engine.restore(restored).await.map_err(|e| DaemonError::Restore(e.to_string()))?;
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

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    engine: Engine,
    statuses: HealthStatuses,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), DaemonError>>,
    metrics_addr: Option<SocketAddr>,
    ui_addr: Option<SocketAddr>,
    health_only: Option<(SocketAddr, JoinHandle<Result<(), DaemonError>>)>,
    cluster: Option<ClusterNode>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let listen_error = |e: std::io::Error| DaemonError::Listen {
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    Ok((listener, local))
}

impl Daemon {
    /// Binds, loads the config (refusing to start on an invalid one), starts
    /// probing and serving.
    pub async fn start(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let admin = admin_guard(&opts)?;
        let tls = opts.tls.as_ref().map(ServerTls::config).transpose()?;
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
        let ui_listener = match opts.ui_listen {
            Some(a) => Some(crate::ui::UiServer::bind(a).await?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let statuses = HealthStatuses::default();
        let prober = opts.prober.clone().unwrap_or_else(|| Arc::new(HttpProber::default()));
        let mut engine_config = opts.engine.clone();
        let mut metrics_addr = None;
        if let Some(metrics_listen) = opts.metrics_listen {
            let mut metrics = crate::metrics::Metrics::new();
            if let Some(node) = &cluster {
                metrics = metrics.with_collector(crate::cluster::metrics::ClusterMetrics(node.status.clone()));
            }
            let metrics = Arc::new(metrics);
            engine_config.observer = Some(metrics.clone());
            metrics_addr = Some(
                crate::metrics::MetricsServer::start(metrics_listen, metrics, shutdown.clone())
                    .await?
                    .local_addr(),
            );
        }
        if let Some(node) = cluster.as_mut() {
            node.join(addr.to_string()).await?;
            engine_config.cluster = Some(node.seam());
        }
        let engine = Engine::start_with_store(engine_config, prober, statuses.clone(), persist);
        let config_status = ConfigStatusHandle::default();

        let config_text = load_groups(&engine, restored, opts.config.as_deref(), &config_status).await?;
        if let Some(node) = cluster.as_mut() {
            node.start(engine.clone());
        }
        if let (Some(path), Some(text)) = (&opts.config, config_text) {
            tokio::spawn(config::watch(engine.clone(), path.clone(), text, config_status.clone(), shutdown.clone()));
        }
        let ui_addr = ui_listener.map(|l| crate::ui::UiServer::serve(l, engine.clone(), shutdown.clone()).local_addr());
        let watch_streams = WatchStreams::new(opts.max_watch_streams).with_observer(engine.observer().cloned());
        let group_service = GroupService::new(engine.clone(), shutdown.clone(), config_status)
            .with_admin_guard(admin)
            .with_watch_streams(watch_streams.clone())
            .with_cluster(cluster.as_ref().map(|n| (n.status.clone(), n.lease_ttl())));
        let health_service = || HealthService::new(statuses.clone(), shutdown.clone()).with_watch_streams(watch_streams.clone());
        let health_only = health_listener.map(|(listener, health_addr)| {
            // Plaintext by design: only grpc.health.v1, which carries no secret and takes no input but a name.
            let router = tonic::transport::Server::builder().add_service(HealthServer::new(health_service()).max_decoding_message_size(opts.max_message_bytes));
            let signal = shutdown.clone();
            let task = tokio::spawn(async move {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal.cancelled_owned())
                    .await
                    .map_err(|e| DaemonError::Serve(e.to_string()))
            });
            info!(addr = %health_addr, "grpc.health.v1 also served in plaintext (--health-listen)");
            (health_addr, task)
        });
        let oversize = OversizeAsResourceExhausted {
            max_message_bytes: opts.max_message_bytes,
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(|e| DaemonError::TlsConfig(e.to_string()))?;
        }

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| DaemonError::Reflection(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| DaemonError::Reflection(e.to_string()))?;
        let xds = match opts.xds {
            true => match crate::xds::catalog::start(engine.clone(), opts.xds_debounce, shutdown.clone()).await {
                Ok(catalog) => Some(crate::xds::XdsService::new(catalog, shutdown.clone())),
                Err(e) => {
                    engine.shutdown().await;
                    return Err(DaemonError::Serve(e.to_string()));
                }
            },
            false => None,
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
        let signal = shutdown.clone();
        let server = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal.cancelled_owned())
                .await
                .map_err(|e| DaemonError::Serve(e.to_string()))
        });
        info!(%addr, "mcp-healthd serving");
        Ok(Daemon {
            addr,
            engine,
            statuses,
            shutdown,
            server,
            metrics_addr,
            ui_addr,
            health_only,
            cluster,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the plaintext health-only listener is, when `health_listen` was set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_only.as_ref().map(|(a, _)| *a)
    }

    /// Where `/metrics` is served, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the status page is served, when `ui_listen` was set.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui_addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Health goes NOT_SERVING, probes stop, streams end, then the server stops.
    pub async fn stop(self) -> Result<(), DaemonError> {
        info!("shutting down: health NOT_SERVING, stopping probes and streams");
        self.statuses.set_all_not_serving();
        if let Some(mut node) = self.cluster {
            // Revokes the lease: the others take over this replica's backends at once.
            node.stop().await;
        }
        self.engine.shutdown().await;
        self.shutdown.cancel();
        let joined = |r: Result<Result<(), DaemonError>, tokio::task::JoinError>| r.unwrap_or_else(|e| Err(DaemonError::Serve(e.to_string())));
        let main = joined(self.server.await);
        let health = match self.health_only {
            Some((_, task)) => joined(task.await),
            None => Ok(()),
        };
        main.and(health)
    }

    /// Runs until the server stops on its own (an error) or `stop` is called.
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
