//! Helpers for the prober's integration tests: probe targets built from a
//! backend spec in JSON, one-shot probes, and a raw TCP server for answers no
//! well-behaved HTTP server would send.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::{ClientCache, HttpProber, Probe, ProbeMemory, ProbeReport, ProbeTarget};
use mcp_health::proto::v1::{GroupSpec, ReasonCode};
use mcp_health::spec::{Limits, validate_group};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn install_crypto() {
    // Ignored error: another test in this process installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A probe target for one backend given in the proto3 JSON mapping.
pub fn target(backend: Value) -> ProbeTarget {
    install_crypto();
    let spec: GroupSpec = serde_json::from_value(serde_json::json!({"name": "g", "backends": [backend]})).expect("group spec");
    let group = validate_group(&spec, "spec", &Limits::default()).unwrap_or_else(|v| panic!("invalid spec: {v:?}"));
    let backend = group.backends.into_iter().next().expect("one backend");
    ProbeTarget::new("g", backend, &Arc::new(ClientCache::default())).expect("clients")
}

/// A plain backend spec: name "b" at `url`.
pub fn plain(url: &str) -> Value {
    serde_json::json!({"name": "b", "url": url})
}

/// One probe with `timeout`, through `prober`.
pub async fn probe_with(prober: &HttpProber, t: &ProbeTarget, memory: &mut ProbeMemory, timeout: Duration) -> ProbeReport {
    prober.probe(t, memory, tokio::time::Instant::now() + timeout).await
}

/// One probe with a fresh memory and a 5 s timeout.
pub async fn probe_once(t: &ProbeTarget) -> ProbeReport {
    probe_with(&HttpProber::default(), t, &mut ProbeMemory::default(), Duration::from_secs(5)).await
}

#[track_caller]
pub fn assert_failure(r: &ProbeReport, code: ReasonCode) {
    assert_eq!((r.outcome.class, r.outcome.reason.code), (OutcomeClass::Failure, code), "{:#?}", r.outcome);
}

#[track_caller]
pub fn assert_success(r: &ProbeReport) {
    assert_eq!(r.outcome.class, OutcomeClass::Success, "{:#?}", r.outcome);
}

/// What the raw server sends for one request.
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// Keep the connection open (sending nothing more) instead of closing it.
    pub hold: bool,
}

impl RawReply {
    pub fn close(bytes: impl Into<Vec<u8>>) -> RawReply {
        RawReply {
            bytes: bytes.into(),
            hold: false,
        }
    }

    pub fn hold(bytes: impl Into<Vec<u8>>) -> RawReply {
        RawReply {
            bytes: bytes.into(),
            hold: true,
        }
    }
}

/// A TCP server on 127.0.0.1 that reads one request head per connection and
/// answers with whatever `answer` returns for its request line.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    /// Request lines seen, e.g. "GET /sse HTTP/1.1".
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    pub async fn start(answer: impl Fn(&str) -> RawReply + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let answer = Arc::new(answer);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let seen = seen.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(line.clone());
                    let reply = answer(&line);
                    let _ = sock.write_all(&reply.bytes).await;
                    if reply.hold {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                });
            }
        });
        RawServer { addr, requests, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
