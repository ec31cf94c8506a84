//! Probing one MCP backend over HTTP: the request, bounded reading of the
//! reply, JSON-RPC checks and classification into a `ProbeOutcome`.

mod body;
pub mod client;
mod classify;
mod credentials;
mod jsonrpc;
mod sse;
mod streamable;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::outcome::ProbeOutcome;
use crate::spec::ValidBackend;

pub use client::{ClientCache, ClientError};

/// Default cap on the bytes one probe reads from a backend.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Everything needed to probe one backend. Built once per backend spec.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    pub backend: ValidBackend,
    /// A client that never keeps idle connections, so every probe opens its
    /// own connection and no pooled state survives from one probe to the next.
    pub client: reqwest::Client,
}

/// What a prober learns and keeps across probes of one backend.
#[derive(Clone, Debug, Default)]
pub struct ProbeMemory {
    /// The protocol revision detected on an earlier probe.
    pub detected_revision: Option<String>,
}

/// The outcome of a probe and how long the readiness call took.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub outcome: ProbeOutcome,
    pub latency: Duration,
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeReport> + Send + 'a>>;

/// Something that can probe a backend. The engine holds an `Arc<dyn Probe>`,
/// so scheduler tests can script outcomes without a network.
pub trait Probe: Send + Sync + 'static {
    /// Probes `target`, finishing by `deadline`.
    fn probe<'a>(&'a self, target: &'a ProbeTarget, memory: &'a mut ProbeMemory, deadline: Instant) -> ProbeFuture<'a>;
}

/// The real prober: MCP over HTTP(S).
#[derive(Clone, Debug)]
pub struct HttpProber {
    pub max_response_bytes: usize,
}

impl Default for HttpProber {
    fn default() -> Self {
        HttpProber { max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES }
    }
}

impl Probe for HttpProber {
    fn probe<'a>(&'a self, target: &'a ProbeTarget, memory: &'a mut ProbeMemory, deadline: Instant) -> ProbeFuture<'a> {
        Box::pin(streamable::probe(self, target, memory, deadline))
    }
}

/// Shared handle to a prober.
pub type SharedProbe = Arc<dyn Probe>;
