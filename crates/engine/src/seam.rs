//! The seam between the engine and cluster mode (`mcp_health_cluster`): which
//! backends this replica probes, the verdicts it shares, and the verdicts it
//! receives from the others. None (single node): every backend is probed
//! here and nothing is shared.

pub use mcp_health_core::snapshot::{CatalogFacts, Observed};

pub trait ClusterSeam: Send + Sync + std::fmt::Debug + 'static {
    /// Whether this replica probes `group/backend` now. Asked by each
    /// backend's scheduler before every probe, so it must be quick.
    fn owns(&self, group: &str, backend: &str) -> bool;
    /// A local probe changed the backend's verdict (status, reason or
    /// progress): share it. Called on the owner task; must never block.
    fn verdict_changed(&self, group: &str, backend: &str, verdict: &SharedVerdict);
}

/// A backend's verdict as replicas share it, in plain values (the cluster
/// maps it to its own versioned etcd record, never to the API's message):
/// what one replica probed, another takes as the backend's state.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedVerdict {
    /// What the owner's probes observed: the address they connected to, the
    /// verdict (status, counters, progress), reason, facts and times. The same
    /// value the owner's snapshot shows.
    pub observed: Observed,
    /// The tool catalog's fingerprint as the owner knows it (not its tools).
    pub catalog: CatalogFacts,
}
