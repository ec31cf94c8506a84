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
    #[error("cannot listen for metrics on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

/// A running metrics endpoint; it stops when the shutdown token is cancelled.
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}")).into_response(),
    }
}

impl MetricsServer {
    pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Result<MetricsServer, MetricsError> {
        let err = |e: std::io::Error| MetricsError::Listen { addr, reason: e.to_string() };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let app = Router::new().route("/metrics", get(scrape)).with_state(metrics);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        tracing::info!(%addr, "metrics serving on /metrics");
        Ok(MetricsServer { addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the server to finish after the shutdown token was cancelled.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}
