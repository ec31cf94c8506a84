//! What the engine state asks its shell (the owner task) to do: the `Effects`
//! of one step, carried out in order after the state has changed.

use std::sync::Arc;

use mcp_health_core::phase::GroupVerdict;
use mcp_health_probe::ProbeTarget;
use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health_proto::v1::{BackendStatus, GroupSpec};

use super::Event;

/// One thing to do. The shell carries effects out in the order given.
#[derive(Debug)]
pub enum Effect {
    /// Start the probe task of one backend incarnation.
    Spawn { epoch: u64, target: Arc<ProbeTarget> },
    /// Start the discovery task of a discovered backend's incarnation: it
    /// looks the name up and hands each answer to the owner
    /// (`Command::DnsAnswer`), again when the answer says.
    Discover { epoch: u64, target: Arc<ProbeTarget> },
    /// Stop the probe (or discovery) task of that incarnation.
    Abort { epoch: u64 },
    /// Set (Some) or remove (None) a group's grpc.health.v1 status.
    Health { group: String, status: Option<ServingStatus> },
    /// Publish a change or a deletion to the watchers (the group's snapshot,
    /// built by the state).
    Publish(Event),
    /// Every backend of every group has its first verdict (emitted once).
    FirstVerdicts { groups: usize, backends: usize },
    /// Tell the observer (only emitted when there is one).
    Observe(Observed),
    /// Wake the probe task of that incarnation: at once (None) or at an
    /// instant (an ejection's end). It probes within its permits, no sooner
    /// than a wait the backend asked for, then keeps the pace the verdict asks.
    Confirm { epoch: u64, at: Option<tokio::time::Instant> },
    /// Cluster mode: share a local verdict change (`ClusterSeam::verdict_changed`).
    ShareVerdict {
        group: String,
        backend: String,
        /// Boxed: several times the size of every other effect.
        verdict: Box<crate::seam::SharedVerdict>,
    },
    /// Cluster mode: share a local verdict change of one discovered endpoint
    /// (`ClusterSeam::endpoint_verdict_changed`).
    ShareEndpointVerdict {
        group: String,
        backend: String,
        address: std::net::SocketAddr,
        verdict: Box<crate::seam::SharedVerdict>,
    },
    /// Cluster mode: share a discovered backend's endpoint set, changed by
    /// this replica's lookups or drops (`ClusterSeam::endpoints_changed`;
    /// the shell shares it only while this replica owns the backend).
    ShareEndpoints {
        group: String,
        backend: String,
        endpoints: Box<crate::seam::SharedEndpoints>,
    },
    /// Publish the prober's self-doubt (None: it trusts itself again).
    Doubt(Option<crate::DoubtView>),
    /// Cluster mode: many backends started failing at once; ask the other
    /// replicas whether they reach these (group, backend) pairs
    /// (`ClusterSeam::burst`). Failing probes are held back meanwhile.
    Burst(Vec<(String, String)>),
}

/// The observer calls of `ProbeObserver`, as data.
#[derive(Debug, PartialEq)]
pub enum Observed {
    /// The probe result being folded was for a live backend (`probe_applied`).
    ProbeApplied,
    BackendStatus {
        group: String,
        backend: String,
        from: Option<BackendStatus>,
        to: BackendStatus,
    },
    GroupVerdict {
        group: String,
        verdict: GroupVerdict,
    },
    BackendRemoved {
        group: String,
        backend: String,
    },
    GroupDeleted {
        group: String,
        backends: Vec<String>,
    },
    /// A backend was ejected from real traffic (Some), or returned (None).
    Ejection {
        group: String,
        backend: String,
        ejection: Option<mcp_health_core::outlier::Ejection>,
        at: std::time::SystemTime,
    },
    /// A discovered backend's endpoints, after a change.
    Endpoints {
        group: String,
        backend: String,
        endpoints: Vec<crate::EndpointView>,
    },
    /// A failing probe of a live backend was held back by self-doubt.
    ProbeHeld {
        group: String,
        backend: String,
    },
    /// The prober's self-doubt changed.
    Doubt(Option<crate::DoubtView>),
    /// A backend's tool catalog moved from one known fingerprint to another.
    CatalogChanged {
        group: String,
        backend: String,
        change: mcp_health_core::catalog::CatalogChange,
    },
}

/// The one durable write a change needs before it may take effect.
#[derive(Debug, Default, PartialEq)]
pub struct StoreWrite {
    pub puts: Vec<(GroupSpec, u64)>,
    pub removes: Vec<String>,
}

impl StoreWrite {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.removes.is_empty()
    }
}

/// The effects of one step of the state.
#[derive(Debug, Default)]
pub struct Effects {
    pub actions: Vec<Effect>,
}

impl Effects {
    pub fn push(&mut self, e: Effect) {
        self.actions.push(e);
    }

    /// Tells the observer (when there is one: `observed`) that the backend
    /// was ejected at `at`, or that its ejection ended (`ejection` None).
    pub(crate) fn observe_ejection(
        &mut self,
        observed: bool,
        group: &str,
        backend: &str,
        ejection: Option<mcp_health_core::outlier::Ejection>,
        at: std::time::SystemTime,
    ) {
        if observed {
            self.push(Effect::Observe(Observed::Ejection {
                group: group.to_owned(),
                backend: backend.to_owned(),
                ejection,
                at,
            }));
        }
    }
}
