//! The status page (`--ui-listen`, off by default): a read-only view of every
//! group, backend and recent transition, served by the daemon on its own
//! listener with axum. The HTML is rendered on the server (it works without
//! JavaScript); the embedded script keeps it live over Server-Sent Events fed
//! by the engine's own watch. Assets are compiled into the binary.

mod events;
pub mod model;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use mcp_health_core::snapshot::GroupSnapshot;
use mcp_health_engine::history::unix_ms;
use mcp_health_engine::{Engine, EngineError};
use model::{TIMELINE_SHOWN, Update};
use page::Scope;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// Concurrent live pages; past it the event stream answers 503 (the page
/// still works as a snapshot).
pub const MAX_EVENT_STREAMS: usize = 64;

/// How long a shutdown waits for open pages to close their connections.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("cannot listen for the status page on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the status page server failed")]
    Serve(#[source] std::io::Error),
    #[error("the status page listener failed")]
    Listener(#[source] std::io::Error),
}

#[derive(Clone)]
struct Ui {
    engine: Engine,
    shutdown: CancellationToken,
    streams: Arc<Semaphore>,
    /// Only on a loopback listener: the Host header must name loopback, so a
    /// DNS-rebinding page elsewhere cannot read this one.
    loopback_port: Option<u16>,
}

/// A running status page; it stops when the shutdown token is cancelled.
pub struct UiServer {
    addr: SocketAddr,
    task: JoinHandle<Result<(), UiError>>,
}

impl UiServer {
    /// Binds `addr` (before the engine starts, so a busy port changes nothing).
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, UiError> {
        let err = |e: std::io::Error| UiError::Listen { addr, source: e };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        listener.local_addr().map_err(err)?;
        Ok(listener)
    }

    /// Serves the page on a bound listener until `shutdown` is cancelled.
    pub fn serve(listener: TcpListener, engine: Engine, shutdown: CancellationToken) -> UiServer {
        // `bind` checked that the address is readable.
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let ui = Ui {
            engine,
            shutdown: shutdown.clone(),
            streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            loopback_port: addr.ip().is_loopback().then_some(addr.port()),
        };
        let app = Router::new()
            .route("/", get(index))
            .route("/g/{group}", get(group_page))
            .route("/g/{group}/b/{backend}", get(backend_page))
            .route("/events", get(events::stream))
            .route("/assets/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
            .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
            .fallback(|| async { not_found("no such page") })
            .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
            .with_state(ui);
        let (accept, failed) = crate::listener::watch(listener);
        let task = tokio::spawn(async move {
            let serve = axum::serve(accept, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
            // A reader that stopped reading (a full socket buffer) would hold a
            // graceful shutdown forever: after the drain time, stop waiting.
            let drained = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_DRAIN).await;
            };
            tokio::select! {
                r = serve => r.map_err(UiError::Serve),
                e = failed.wait() => Err(UiError::Listener(e)),
                () = drained => Ok(()),
            }
        });
        tracing::info!(%addr, "status page serving on http://{addr}/");
        UiServer { addr, task }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server task: it ends after the shutdown token was cancelled, or on its own (an error).
    pub fn into_task(self) -> JoinHandle<Result<(), UiError>> {
        self.task
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Whether a Host header names this loopback listener.
fn loopback_host(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else { return false };
    p == port.to_string() && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// Read-only (GET/HEAD), loopback Host on a loopback listener, and headers
/// that keep the page from running anything but its own script.
async fn guard(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return (StatusCode::METHOD_NOT_ALLOWED, "the status page is read-only").into_response();
    }
    if let Some(port) = ui.loopback_port {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !loopback_host(host, port) {
            return (StatusCode::MISDIRECTED_REQUEST, "this status page answers only to loopback host names").into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    resp
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    html(StatusCode::NOT_FOUND, page::message_page("Not found", what))
}

fn filter_of(query: Option<String>) -> String {
    query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

pub(crate) fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// The state `scope` shows: groups, and its timeline (the backend's own
/// transitions on a backend page).
pub(crate) async fn snapshot(engine: &Engine, scope: &Scope) -> Result<(Update, u64), EngineError> {
    let sub = engine.watch(scope.group.clone()).await?;
    Ok(snapshot_of(engine, scope, sub.sequence, &sub.snapshot))
}

/// The page's snapshot message for `groups` as of `sequence`, with the
/// timeline `scope` shows; and the newest timeline entry it covers.
pub(crate) fn snapshot_of(engine: &Engine, scope: &Scope, sequence: u64, groups: &[Arc<GroupSnapshot>]) -> (Update, u64) {
    let history = engine.history();
    let now = now_ms();
    let groups = groups.iter().map(|g| model::group(g, history, now)).collect();
    let newest = history.timeline(0, 1).last().map_or(0, |e| e.seq);
    let timeline = match (&scope.group, &scope.backend) {
        (Some(g), Some(b)) => history
            .backend(g, b, now)
            .map(|h| {
                h.transitions
                    .iter()
                    .map(|t| {
                        model::timeline(&mcp_health_engine::history::TimelineEntry {
                            seq: 0,
                            group: g.as_str().into(),
                            backend: b.as_str().into(),
                            transition: t.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        (group, _) => history
            .timeline(0, usize::MAX)
            .iter()
            .filter(|e| group.as_ref().is_none_or(|g| **g == *e.group))
            .map(model::timeline)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(TIMELINE_SHOWN)
            .rev()
            .collect(),
    };
    (
        Update {
            kind: "snapshot",
            revision: sequence,
            now_ms: now,
            since_ms: history.started_ms(),
            groups,
            deleted: Vec::new(),
            timeline,
            doubt: model::doubt(engine, SystemTime::now()),
        },
        newest,
    )
}

async fn render(ui: &Ui, scope: Scope) -> Response {
    match snapshot(&ui.engine, &scope).await {
        Ok((update, _)) => {
            if let (Some(b), Some(g)) = (&scope.backend, update.groups.first())
                && !g.backends.iter().any(|x| x.name == *b)
            {
                return not_found(&format!("backend {b:?} not found in group {:?}", g.name));
            }
            html(StatusCode::OK, page::render(&update, &scope))
        }
        Err(EngineError::GroupNotFound(g)) => not_found(&format!("group {g:?} not found")),
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, page::message_page("Unavailable", &e.to_string())),
    }
}

async fn index(State(ui): State<Ui>, RawQuery(q): RawQuery) -> Response {
    let scope = Scope {
        filter: filter_of(q),
        ..Scope::default()
    };
    render(&ui, scope).await
}

async fn group_page(State(ui): State<Ui>, Path(group): Path<String>, RawQuery(q): RawQuery) -> Response {
    let scope = Scope {
        group: Some(group),
        backend: None,
        filter: filter_of(q),
    };
    render(&ui, scope).await
}

async fn backend_page(State(ui): State<Ui>, Path((group, backend)): Path<(String, String)>, RawQuery(q): RawQuery) -> Response {
    let scope = Scope {
        group: Some(group),
        backend: Some(backend),
        filter: filter_of(q),
    };
    render(&ui, scope).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_on_the_same_port() {
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("[::1]:8080", true),
            ("127.0.0.1:8081", false),
            ("evil.example:8080", false),
            ("localhost", false),
            ("", false),
        ] {
            assert_eq!(loopback_host(host, 8080), ok, "{host}");
        }
    }

    #[test]
    fn filter_comes_from_q() {
        assert_eq!(filter_of(Some("q=a+b%3C".into())), "a b<");
        assert_eq!(filter_of(Some("x=1".into())), "");
        assert_eq!(filter_of(None), "");
    }
}
