//! The public handle: listener lifecycle (start, stop, resume), the accept loop and
//! per-connection accounting (connections, keep-alive reuse, open-connection gauge).

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::state::{Shared, inc};
use crate::{Behavior, FixtureOptions, Flavor, ReplyFormat, RequestRecord, Stats, router};

/// A running fixture. Cheap to clone (an `Arc` inside); the server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct FixtureServer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

struct Running {
    accept: JoinHandle<()>,
    /// `true` tells every connection task to drop its connection.
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(r) = self.running.get_mut().take() {
            let _ = r.shutdown.send(true);
            r.accept.abort();
        }
    }
}

impl FixtureServer {
    /// Listen on `127.0.0.1:0` with default options.
    pub async fn start() -> io::Result<FixtureServer> {
        Self::start_with(FixtureOptions::default()).await
    }

    /// Listen on `127.0.0.1:0`.
    pub async fn start_with(opts: FixtureOptions) -> io::Result<FixtureServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
    }

    /// Listen on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr, opts: FixtureOptions) -> io::Result<FixtureServer> {
        let listener = TcpListener::bind(addr).await?;
        let shared = Arc::new(Shared::new(listener.local_addr()?, opts));
        let running = spawn_accept(listener, shared.clone());
        Ok(FixtureServer {
            inner: Arc::new(Inner {
                shared,
                running: Mutex::new(Some(running)),
            }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.shared.addr
    }

    /// The main endpoint: `http://127.0.0.1:PORT/mcp` (`/sse` for [`Flavor::LegacySse`]).
    pub fn url(&self) -> String {
        self.url_for(self.inner.shared.main_path)
    }

    /// `http://127.0.0.1:PORT{path}`; every path is an MCP endpoint.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.inner.shared.base, path)
    }

    /// The behaviour of every path without an override.
    pub fn set_behavior(&self, b: Behavior) {
        self.inner.shared.set_default(b);
    }

    /// Override the behaviour of one exact path (e.g. `"/s17"`).
    pub fn set_path_behavior(&self, path: &str, b: Behavior) {
        self.inner.shared.set_path(path, b);
    }

    /// Override many paths at once (one table swap instead of one per path).
    pub fn set_path_behaviors<P: AsRef<str>>(&self, entries: impl IntoIterator<Item = (P, Behavior)>) {
        let entries: Vec<(P, Behavior)> = entries.into_iter().collect();
        self.inner.shared.behaviors.rcu(|t| {
            let mut t = crate::state::BehaviorTable::clone(t);
            for (p, b) in &entries {
                t.paths.insert(p.as_ref().to_owned(), b.clone());
            }
            Arc::new(t)
        });
    }

    /// Drop every path override.
    pub fn clear_path_behaviors(&self) {
        self.inner.shared.behaviors.rcu(|t| {
            let mut t = crate::state::BehaviorTable::clone(t);
            t.paths.clear();
            Arc::new(t)
        });
    }

    pub fn set_reply_format(&self, f: ReplyFormat) {
        self.inner.shared.set_reply(f);
    }

    /// Stop accepting and close every open connection; new connects are refused.
    /// Idempotent. Returns once the listener is closed and connections are gone (or 2 s).
    pub async fn stop(&self) {
        let mut running = self.inner.running.lock().await;
        let Some(r) = running.take() else { return };
        let _ = r.shutdown.send(true);
        r.accept.abort();
        // Awaiting the aborted task guarantees its future (and the listener) is dropped.
        let _ = r.accept.await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.inner.shared.stats.open_connections.load(Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Listen again on the same address. No-op if running. Retries briefly if the port is
    /// still busy.
    pub async fn resume(&self) -> io::Result<()> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let addr = self.inner.shared.addr;
        let mut attempt = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        *running = Some(spawn_accept(listener, self.inner.shared.clone()));
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.inner.shared.stats.snapshot()
    }

    /// Takes the request log: every request since the last call (at most
    /// 100,000, the newest), oldest first, with its source address.
    pub fn drain_requests(&self) -> Vec<RequestRecord> {
        self.inner.shared.requests.lock().map(|mut log| log.drain(..).collect()).unwrap_or_default()
    }

    /// Every header of the most recent POST (including `MCP-Protocol-Version`).
    pub fn last_post_headers(&self) -> Option<HeaderMap> {
        self.inner.shared.last_headers.load_full().map(|h| HeaderMap::clone(&h))
    }

    /// `MCP-Protocol-Version` of the most recent POST, if it had one.
    pub fn last_protocol_version(&self) -> Option<String> {
        let h = self.inner.shared.last_headers.load_full()?;
        h.get("mcp-protocol-version")?.to_str().ok().map(str::to_owned)
    }

    /// The form fields (all but `client_secret`) of the latest token request.
    pub fn last_token_form(&self) -> Option<Vec<(String, String)>> {
        self.inner.shared.last_token_form.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Moves the token endpoint to `path` (its metadata says so); the old path
    /// then answers as any other.
    pub fn move_token_endpoint(&self, path: &str) {
        *self.inner.shared.token_path.lock().unwrap_or_else(|p| p.into_inner()) = path.to_owned();
    }

    /// The options the server was started with.
    pub fn options(&self) -> &FixtureOptions {
        &self.inner.shared.opts
    }

    /// The flavour the server speaks.
    pub fn flavor(&self) -> &Flavor {
        &self.inner.shared.opts.flavor
    }
}

fn spawn_accept(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let (shutdown, rx) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(listener, shared, rx));
    Running { accept, shutdown }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            // EMFILE and friends: back off instead of spinning, then keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        inc(&shared.stats.connections);
        inc(&shared.stats.open_connections);
        tokio::spawn(serve(stream, shared.clone(), shutdown.clone()));
    }
}

/// Decrements the open-connection gauge however the connection task ends (even aborted).
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.stats.open_connections.fetch_sub(1, Relaxed);
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let _guard = OpenGuard(shared.clone());
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let counted = shared.clone();
    let requests = Cell::new(0u32);
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let n = requests.get().saturating_add(1);
        requests.set(n);
        if n == 2 {
            inc(&shared.stats.reused_connections);
        }
        shared.log_request(RequestRecord {
            at: std::time::Instant::now(),
            peer,
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
        });
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(router::handle(shared, req).await) }
    });
    let conn = http1::Builder::new().timer(TokioTimer::new()).keep_alive(true).serve_connection(
        TokioIo::new(Counted {
            inner: stream,
            shared: counted,
        }),
        svc,
    );
    tokio::select! {
        _ = conn => {}
        // Either `true` was sent or the handle is gone: both mean close now.
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// A connection that adds the bytes it moves to the fixture's counters.
struct Counted {
    inner: TcpStream,
    shared: Arc<Shared>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.shared.stats.bytes_received.fetch_add(read, Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled {
            self.shared.stats.bytes_sent.fetch_add(*n as u64, Relaxed);
        }
        polled
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled {
            self.shared.stats.bytes_sent.fetch_add(*n as u64, Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
