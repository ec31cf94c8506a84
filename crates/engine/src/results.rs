//! What probes hand to the engine: a `ProbeResult` (scheduled or on demand),
//! the `Timed` outcome it carries, the memory a backend's probes share, and
//! the `ProbeTicket` that lets one backend be probed on demand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{EngineError, Probed};
use mcp_health_core::outcome::ProbeOutcome;
use mcp_health_core::spec::Policy;
use mcp_health_core::verdict::Pace;
use mcp_health_probe::{ProbeMemory, ProbeTarget};

/// A probe's outcome with the latency already judged against the policy.
pub struct Timed {
    pub outcome: ProbeOutcome,
    pub latency: Duration,
}

/// What one backend incarnation (epoch) has learnt across probes (the
/// detected revision), shared by its scheduled probes and the on-demand ones
/// (`ProbeBackend`), so both take the same path and the same round trips.
pub type SharedMemory = Arc<Mutex<ProbeMemory>>;

/// A probe's result on its way to the owner.
pub struct ProbeResult {
    pub group: String,
    pub backend: String,
    /// Which incarnation of the backend was probed; results for a replaced or
    /// removed backend are dropped, so they can never bring it back.
    pub epoch: u64,
    /// The discovered endpoint probed (its probe task's pinned address);
    /// None for a backend's one endpoint.
    pub endpoint: Option<std::net::SocketAddr>,
    pub outcome: ProbeOutcome,
    pub latency: Duration,
    pub scheduling_lag: Duration,
    /// The backend's probe interval (its policy's), for the metrics that tell
    /// "probes are not running" apart from a long interval.
    pub interval: Duration,
    /// Set for on-demand probes, which wait for the verdict they produced.
    pub reply: Option<oneshot::Sender<Result<Probed, EngineError>>>,
    /// Set by the scheduler, which learns from the owner the pace the folded
    /// verdict asks for (edge interval while a change is pending). Dropped
    /// unanswered for a result of a removed or replaced incarnation.
    pub pace: Option<oneshot::Sender<Pace>>,
}

/// Permission to probe one backend on demand (`ProbeBackend`).
pub struct ProbeTicket {
    pub target: Arc<ProbeTarget>,
    pub policy: Policy,
    pub(super) group: String,
    pub(super) backend: String,
    pub(super) epoch: u64,
    /// The probe memory of this epoch's scheduled probes (set by the owner).
    pub(super) memory: SharedMemory,
}

impl ProbeTicket {
    pub fn result(&self, timed: Timed) -> ProbeResult {
        ProbeResult {
            group: self.group.clone(),
            backend: self.backend.clone(),
            epoch: self.epoch,
            endpoint: None,
            outcome: timed.outcome,
            latency: timed.latency,
            scheduling_lag: Duration::ZERO,
            interval: self.policy.interval,
            reply: None,
            pace: None,
        }
    }
}
