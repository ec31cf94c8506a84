//! The seam between the engine and cluster mode (`mcp_health_cluster`): which
//! backends this replica probes, the verdicts it shares, and the verdicts it
//! receives from the others. None (single node): every backend is probed
//! here and nothing is shared.

use mcp_health_proto::v1::BackendHealth;

pub trait ClusterSeam: Send + Sync + std::fmt::Debug + 'static {
    /// Whether this replica probes `group/backend` now. Asked by each
    /// backend's scheduler before every probe, so it must be quick.
    fn owns(&self, group: &str, backend: &str) -> bool;
    /// A local probe changed the backend's verdict (status, reason or
    /// progress): share it. Called on the owner task; must never block.
    fn verdict_changed(&self, group: &str, backend: &str, progress: &str, health: &BackendHealth);
}

/// A verdict another replica shared, to be taken as this backend's state.
#[derive(Clone, Debug)]
pub struct RemoteVerdict {
    pub progress: String,
    pub health: BackendHealth,
}
