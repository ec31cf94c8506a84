//! What the engine state holds per group and per backend (`GroupState`,
//! `BackendState`) and the domain snapshot each builds for readers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::Origin;
use mcp_health_core::catalog::KnownCatalog;
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_core::outlier::OutlierState;
use mcp_health_core::phase::{BackendView, GroupVerdict, group_verdict};
use mcp_health_core::snapshot::{BackendSnapshot, BackendSpecShown, CatalogFacts, GroupSnapshot, Observed};
use mcp_health_core::spec::ValidBackend;
use mcp_health_core::verdict::Verdict;
use mcp_health_probe::ProbeTarget;
use mcp_health_proto::v1::{GroupPhase, GroupSource};

pub(super) struct BackendState {
    pub(super) target: Arc<ProbeTarget>,
    pub(super) epoch: u64,
    pub(super) verdict: Verdict,
    pub(super) reason: Reason,
    pub(super) facts: ServerFacts,
    pub(super) last_latency: Option<Duration>,
    pub(super) last_probe: Option<SystemTime>,
    pub(super) last_transition: Option<SystemTime>,
    pub(super) last_probe_backend: Option<Instant>,
    /// Set when a shared verdict replaced this state since the last local
    /// probe (cluster mode): the next local result is shared even if it
    /// changes nothing here, so the cluster learns the new owner's probe.
    pub(super) remote_since_probe: bool,
    /// Set when the cluster shares a verdict for this owned backend that
    /// differs from this replica's own (a share of ours was skipped while
    /// degraded, lost to an etcd error, or overwritten by a late write from
    /// a former owner): the next local result is shared again.
    pub(super) share_next: bool,
    /// The address the latest probe to reach the backend connected to.
    pub(super) peer: Option<std::net::SocketAddr>,
    /// Its tool catalog as last read (depth TOOLS).
    pub(super) catalog: KnownCatalog,
    /// Outlier ejection from real traffic (`ReportOutcomes`), beside the verdict.
    pub(super) outlier: OutlierState,
}

impl BackendState {
    /// This backend's state as replicas share it.
    pub(super) fn shared(&self) -> crate::seam::SharedVerdict {
        crate::seam::SharedVerdict {
            observed: self.observed(),
            catalog: self.catalog_facts(),
        }
    }

    /// What the catalog shows (and replicas share) of this backend's.
    fn catalog_facts(&self) -> CatalogFacts {
        CatalogFacts {
            fingerprint: self.catalog.fingerprint.clone(),
            changed_at: self.catalog.changed_at,
            note: self.catalog.note.clone(),
        }
    }

    /// This backend in the domain snapshot: one endpoint, at the address its
    /// probes connected to.
    pub(super) fn snapshot(&self) -> BackendSnapshot {
        let backend = &self.target.backend;
        BackendSnapshot::single(
            BackendSpecShown {
                name: backend.spec.name.clone(),
                url: backend.spec.url.clone(),
                transport: backend.transport,
                auth: backend.auth_mode,
                drain: backend.spec.drain,
                catalog: self.catalog_facts(),
            },
            self.observed(),
            self.outlier.ejection().cloned(),
        )
    }

    /// What this replica's probes (or a shared verdict) observed of the backend.
    fn observed(&self) -> Observed {
        Observed {
            address: self.peer,
            verdict: self.verdict.clone(),
            reason: self.reason.clone(),
            facts: self.facts.clone(),
            last_latency: self.last_latency,
            last_probe: self.last_probe,
            last_transition: self.last_transition,
        }
    }
}

pub(super) struct GroupState {
    pub(super) spec: mcp_health_proto::v1::GroupSpec,
    pub(super) generation: u64,
    pub(super) origin: Origin,
    /// The engine sequence number of this group's last published change.
    pub(super) sequence: u64,
    pub(super) verdict: GroupVerdict,
    pub(super) backends: BTreeMap<String, BackendState>,
    /// The last built view; None once counters moved without a published change.
    pub(super) cached: Option<Arc<GroupSnapshot>>,
}

impl GroupState {
    pub(super) fn source(&self) -> GroupSource {
        match self.origin {
            Origin::Api => GroupSource::Api,
            Origin::ConfigFile(_) => GroupSource::ConfigFile,
        }
    }

    /// The group's snapshot (built once per change, then cached).
    pub(super) fn snapshot(&mut self, name: &str) -> Arc<GroupSnapshot> {
        if let Some(h) = &self.cached {
            return h.clone();
        }
        let h = Arc::new(GroupSnapshot {
            name: name.to_owned(),
            sequence: self.sequence,
            generation: self.generation,
            source: self.source(),
            verdict: self.verdict.clone(),
            backends: self.backends.values().map(BackendState::snapshot).collect(),
        });
        self.cached = Some(h.clone());
        h
    }

    pub(super) fn recompute(&mut self) -> GroupPhase {
        let previous = self.verdict.phase;
        self.verdict = group_verdict(self.backends.values().map(|b| backend_view(&b.target.backend, &b.verdict, &b.outlier)));
        self.cached = None;
        previous
    }
}

/// A backend as the phase counts it, from its spec, verdict and ejection.
pub(super) fn backend_view(b: &ValidBackend, v: &Verdict, o: &OutlierState) -> BackendView {
    BackendView {
        status: v.status,
        auth: b.auth_mode,
        draining: b.spec.drain,
        ejected: o.is_ejected(),
    }
}
