//! The seam between the engine and cluster mode (`mcp_health_cluster`): which
//! backends (and which discovered endpoints) this replica probes, the
//! verdicts and endpoint sets it shares, and those it receives from the
//! others, and the bursts of failures it asks the others about. None (single
//! node): every backend is probed here and nothing is shared.

use std::net::SocketAddr;
use std::time::Duration;

pub use mcp_health_core::discovery::RefusedAddr;
pub use mcp_health_core::outlier::{Ejection, TrafficOutcome};
pub use mcp_health_core::snapshot::{CatalogFacts, Observed};

pub trait ClusterSeam: Send + Sync + std::fmt::Debug + 'static {
    /// Whether this replica probes `group/backend` now (for a discovered
    /// backend: whether it resolves the name and shares the endpoint set).
    /// Asked by each backend's scheduler before every probe, so it must be quick.
    fn owns(&self, group: &str, backend: &str) -> bool;
    /// Whether this replica probes one endpoint of a discovered backend now.
    /// Asked by each endpoint's scheduler before every probe. By default the
    /// backend's owner probes all of its endpoints.
    fn owns_endpoint(&self, group: &str, backend: &str, _address: SocketAddr) -> bool {
        self.owns(group, backend)
    }
    /// A local probe changed the backend's verdict (status, reason or
    /// progress): share it. Called on the owner task; must never block.
    fn verdict_changed(&self, group: &str, backend: &str, verdict: &SharedVerdict);
    /// A local probe changed a discovered endpoint's verdict: share it.
    /// Called on the owner task; must never block.
    fn endpoint_verdict_changed(&self, _group: &str, _backend: &str, _address: SocketAddr, _verdict: &SharedVerdict) {}
    /// This replica's lookups changed a discovered backend's endpoint set
    /// (only shared while it owns the backend). Called on the owner task;
    /// must never block.
    fn endpoints_changed(&self, _group: &str, _backend: &str, _endpoints: &SharedEndpoints) {}
    /// Reports of real traffic to a backend this replica does not own: hand
    /// them to its owner, which alone folds them (it alone probes the
    /// backend, so it alone could confirm or end an ejection). Called on the
    /// owner task; must never block: a full queue drops them and says so.
    fn forward_outcomes(&self, group: &str, backend: &str, outcomes: &[TrafficOutcome]) -> Forwarded {
        let _ = (group, backend, outcomes);
        Forwarded::NoOwner
    }
    /// Many backends this replica probes started failing at once (`core::burst`):
    /// ask other replicas whether they reach `sample`, (group, backend)
    /// pairs, and answer with `Engine::peers_answered`. Failing probes are
    /// held back until then (or the burst policy's `suspect_for`). Called on
    /// the owner task; must never block. Returns false when nobody can be
    /// asked (no other trusted member): nothing is held then.
    fn burst(&self, _sample: &[(String, String)]) -> bool {
        false
    }
}

/// What became of reports for a backend another replica owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Queued for the owner.
    Queued,
    /// Dropped: the queue to the owners is full (etcd slower than the reports).
    Dropped,
    /// No live owner is known (not forwarded, not folded).
    NoOwner,
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
    /// The owner's outlier ejection of the backend, if it is ejected.
    pub ejection: Option<SharedEjection>,
}

/// An ejection as the owner shares it. Replicas' clocks differ, so the
/// wall times are for showing (every replica shows the owner's), and the
/// time left is a duration: a replica that takes the record counts it from
/// when it took it (a new owner ends the ejection at the first passing probe
/// from then on; a record that waited in a queue or was re-read later only
/// holds the backend out longer, never shorter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedEjection {
    pub ejection: Ejection,
    /// How much of its time was left when the owner shared it.
    pub remaining: Duration,
}

/// A discovered backend's endpoint set as its owner shares it: where each
/// address stands in DNS, without times (each replica's clock is its own;
/// the owner alone drops leaving endpoints and expires a failing lookup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedEndpoints {
    pub members: Vec<SharedMember>,
    /// The latest answer's refused addresses: shown, never probed.
    pub refused: Vec<RefusedAddr>,
    pub dns: SharedDns,
    /// The last answer's TTL, clamped.
    pub ttl: Duration,
}

/// One address of a shared endpoint set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedMember {
    pub address: SocketAddr,
    pub priority: u16,
    pub weight: u16,
    /// Left DNS: DRAINING, still probed (`core::discovery::Presence::Leaving`).
    pub leaving: bool,
}

/// Where the owner's resolution of the name stands (`core::discovery::DnsState`, without times).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedDns {
    Unresolved,
    Fresh,
    Stale { detail: String },
    Expired { detail: String },
}
