//! Assembles the daemon: engine, config file, gRPC services (ours,
//! grpc.health.v1, reflection) on one listener, and an orderly shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::group_service::GroupService;
use crate::api::health_service::HealthService;
use crate::config::{self, ConfigError, ConfigStatusHandle};
use crate::engine::{Engine, EngineConfig};
use crate::health::HealthStatuses;
use crate::probe::{HttpProber, SharedProbe};
use crate::proto::grpc_health_v1::health_server::HealthServer;
use crate::proto::v1::group_health_service_server::GroupHealthServiceServer;

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
    #[error("grpc server failed: {0}")]
    Serve(String),
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
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            config: None,
            engine: EngineConfig::default(),
            prober: None,
            metrics_listen: None,
        }
    }
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    engine: Engine,
    statuses: HealthStatuses,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), DaemonError>>,
    metrics_addr: Option<SocketAddr>,
}

impl Daemon {
    /// Binds, loads the config (refusing to start on an invalid one), starts
    /// probing and serving.
    pub async fn start(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|e| DaemonError::Listen { addr: opts.listen.to_string(), reason: e.to_string() })?;
        let addr = listener.local_addr().map_err(|e| DaemonError::Listen { addr: opts.listen.to_string(), reason: e.to_string() })?;
        let shutdown = CancellationToken::new();
        let statuses = HealthStatuses::default();
        let prober = opts.prober.clone().unwrap_or_else(|| Arc::new(HttpProber::default()));
        let mut engine_config = opts.engine.clone();
        let mut metrics_addr = None;
        if let Some(metrics_listen) = opts.metrics_listen {
            let metrics = Arc::new(crate::metrics::Metrics::new());
            engine_config.observer = Some(metrics.clone());
            metrics_addr = Some(crate::metrics::MetricsServer::start(metrics_listen, metrics, shutdown.clone()).await?.local_addr());
        }
        let engine = Engine::start(engine_config, prober, statuses.clone());
        let config_status = ConfigStatusHandle::default();

        if let Some(path) = &opts.config {
            let (text, groups) = config::load(path, engine.limits())?;
            config::apply(&engine, path, groups, &config_status).await?;
            tokio::spawn(config::watch(engine.clone(), path.clone(), text, config_status.clone(), shutdown.clone()));
        }

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| DaemonError::Reflection(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| DaemonError::Reflection(e.to_string()))?;
        let router = tonic::transport::Server::builder()
            .add_service(GroupHealthServiceServer::new(GroupService::new(engine.clone(), shutdown.clone(), config_status)))
            .add_service(HealthServer::new(HealthService::new(statuses.clone(), shutdown.clone())))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let signal = shutdown.clone();
        let server = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal.cancelled_owned())
                .await
                .map_err(|e| DaemonError::Serve(e.to_string()))
        });
        info!(%addr, "mcp-healthd serving");
        Ok(Daemon { addr, engine, statuses, shutdown, server, metrics_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Health goes NOT_SERVING, probes stop, streams end, then the server stops.
    pub async fn stop(self) -> Result<(), DaemonError> {
        info!("shutting down: health NOT_SERVING, stopping probes and streams");
        self.statuses.set_all_not_serving();
        self.engine.shutdown().await;
        self.shutdown.cancel();
        match self.server.await {
            Ok(result) => result,
            Err(e) => Err(DaemonError::Serve(e.to_string())),
        }
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
