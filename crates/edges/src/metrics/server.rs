//! The `/metrics` HTTP endpoint (axum), on its own listener so scrapes never
//! share a port with the gRPC API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// OpenMetrics text, which Prometheus negotiates and prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The bound metrics listener: binding can fail, serving cannot, so the
/// daemon binds before it starts anything.
pub struct MetricsListener {
    addr: SocketAddr,
    listener: TcpListener,
}

/// A running metrics endpoint; it stops when the shutdown token is cancelled.
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<Result<(), ServeError>>,
}

/// Why the metrics server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("metrics server failed")]
    Serve(#[source] std::io::Error),
    #[error("metrics listener failed")]
    Listener(#[source] std::io::Error),
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}")).into_response(),
    }
}

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> Result<MetricsListener, MetricsError> {
        let err = |e: std::io::Error| MetricsError::Listen { addr, source: e };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        Ok(MetricsListener { addr, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn serve(self, metrics: Arc<Metrics>, shutdown: CancellationToken) -> MetricsServer {
        let app = Router::new().route("/metrics", get(scrape)).with_state(metrics);
        let (accept, failed) = crate::listener::watch(self.listener);
        let task = tokio::spawn(async move {
            tokio::select! {
                r = axum::serve(accept, app).with_graceful_shutdown(shutdown.cancelled_owned()) => r.map_err(ServeError::Serve),
                e = failed.wait() => Err(ServeError::Listener(e)),
            }
        });
        tracing::info!(addr = %self.addr, "metrics serving on /metrics");
        MetricsServer { addr: self.addr, task }
    }
}

impl MetricsServer {
    pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Result<MetricsServer, MetricsError> {
        Ok(MetricsListener::bind(addr).await?.serve(metrics, shutdown))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server task: it ends after the shutdown token was cancelled, or on its own (an error).
    pub fn into_task(self) -> JoinHandle<Result<(), ServeError>> {
        self.task
    }
}
