//! What the engine state holds per group and per backend (`GroupState`,
//! `BackendState`) and the view each builds for readers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::Origin;
use super::view::{self, BackendFacts, GroupFacts};
use mcp_health_core::catalog::KnownCatalog;
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_core::phase::GroupVerdict;
use mcp_health_core::verdict::Verdict;
use mcp_health_probe::ProbeTarget;
use mcp_health_proto::v1::{GroupHealth, GroupPhase, GroupSource};

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
}

impl BackendState {
    /// This backend's state as replicas share it.
    pub(super) fn shared(&self) -> crate::seam::SharedVerdict {
        crate::seam::SharedVerdict {
            verdict: self.verdict.clone(),
            reason: self.reason.clone(),
            facts: self.facts.clone(),
            last_latency: self.last_latency,
            last_probe: self.last_probe,
            last_transition: self.last_transition,
            address: self.peer,
            catalog: crate::seam::SharedCatalog {
                fingerprint: self.catalog.fingerprint.clone(),
                changed_at: self.catalog.changed_at,
                note: self.catalog.note.clone(),
            },
        }
    }

    pub(super) fn facts(&self) -> BackendFacts<'_> {
        BackendFacts {
            backend: &self.target.backend,
            verdict: &self.verdict,
            reason: &self.reason,
            facts: &self.facts,
            last_latency: self.last_latency,
            last_probe: self.last_probe,
            last_transition: self.last_transition,
            peer: self.peer,
            catalog: &self.catalog,
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
    pub(super) cached: Option<Arc<GroupHealth>>,
}

impl GroupState {
    pub(super) fn source(&self) -> GroupSource {
        match self.origin {
            Origin::Api => GroupSource::Api,
            Origin::ConfigFile(_) => GroupSource::ConfigFile,
        }
    }

    pub(super) fn group_facts<'a>(&'a self, name: &'a str) -> GroupFacts<'a> {
        GroupFacts {
            name,
            verdict: &self.verdict,
            sequence: self.sequence,
            generation: self.generation,
            source: self.source(),
        }
    }

    pub(super) fn health(&mut self, name: &str) -> Arc<GroupHealth> {
        if let Some(h) = &self.cached {
            return h.clone();
        }
        let backends = self.backends.values().map(|b| view::backend_health(&b.facts())).collect();
        let h = Arc::new(view::group_health(&self.group_facts(name), backends));
        self.cached = Some(h.clone());
        h
    }

    pub(super) fn recompute(&mut self) -> GroupPhase {
        let previous = self.verdict.phase;
        self.verdict = view::verdict(self.backends.values().map(|b| (&b.target.backend, &b.verdict)));
        self.cached = None;
        previous
    }
}
