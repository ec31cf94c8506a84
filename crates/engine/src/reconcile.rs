//! Reconciliation decisions, as pure functions: which generation an applied
//! group gets and whether it is unchanged (decided here and nowhere else), and
//! what happens to each backend when a group's spec changes.

use mcp_health_core::spec::ValidBackend;
use mcp_health_proto::v1::BackendSpec;

use super::Origin;

/// What an apply does to one group: the generation it will have, and whether
/// anything changes. The store write and the engine's change both read this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    pub generation: u64,
    pub changed: bool,
}

/// The group as it is now, as far as planning needs it.
pub struct Current<'a> {
    /// Whether the applied spec is the one the group already has.
    pub same_spec: bool,
    pub origin: &'a Origin,
    pub generation: u64,
}

/// Plans an apply from `origin` over `current`. An identical spec
/// from the same origin is unchanged and keeps its generation; anything else
/// is generation + 1 (1 for a new group), or `restored` for a group read back
/// from the store.
pub fn plan_group(current: Option<Current<'_>>, origin: &Origin, restored: Option<u64>) -> GroupPlan {
    match current {
        Some(c) if c.same_spec && c.origin == origin => GroupPlan {
            generation: c.generation,
            changed: false,
        },
        Some(c) => GroupPlan {
            generation: restored.unwrap_or(c.generation + 1),
            changed: true,
        },
        None => GroupPlan {
            generation: restored.unwrap_or(1),
            changed: true,
        },
    }
}

/// What a spec change does to one backend still in the group (one that is
/// gone is removed: its task stops and its state is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendAction {
    /// New in the group: starts at UNKNOWN with a new probe task.
    Add,
    /// Nothing that matters to probing changed: verdict and task carry over.
    Keep,
    /// Same endpoint, new timing, depth, required tools or catalog policy:
    /// the verdict carries over, the task restarts.
    Retime,
    /// A different endpoint or credential: restarts at UNKNOWN with a new task.
    Restart,
}

/// Decides what happens to a backend that was `prev` (None: new) and is now `next`.
pub fn backend_action(prev: Option<&ValidBackend>, next: &ValidBackend) -> BackendAction {
    match prev {
        None => BackendAction::Add,
        Some(p) if !same_identity(&p.spec, &next.spec) => BackendAction::Restart,
        // The task judges required tools and the catalog policy with its own copy of the spec.
        Some(p)
            if p.policy != next.policy
                || p.depth != next.depth
                || p.spec.required_tools != next.spec.required_tools
                || p.spec.catalog != next.spec.catalog
                || p.spec.checks != next.spec.checks =>
        {
            BackendAction::Retime
        }
        Some(_) => BackendAction::Keep,
    }
}

/// Whether two specs name the same backend endpoint and credentials, so its
/// verdict carries over. A change of URL, transport, auth, TLS, revision pin
/// or DNS discovery restarts the backend at UNKNOWN.
pub fn same_identity(a: &BackendSpec, b: &BackendSpec) -> bool {
    a.url == b.url && a.transport == b.transport && a.auth == b.auth && a.tls == b.tls && a.protocol_version == b.protocol_version && a.discovery == b.discovery
}
