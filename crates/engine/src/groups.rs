//! What the engine state holds per group and per backend (`GroupState`,
//! `BackendState`, with a discovered backend's endpoints) and the domain
//! snapshot each builds for readers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::Origin;
use mcp_health_core::catalog::KnownCatalog;
use mcp_health_core::discovery::{DnsState, EndpointSet};
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_core::outlier::OutlierState;
use mcp_health_core::phase::{BackendView, GroupVerdict, group_verdict};
use mcp_health_core::snapshot::{BackendSnapshot, BackendSpecShown, CatalogFacts, GroupSnapshot, Observed, Place};
use mcp_health_core::spec::ValidBackend;
use mcp_health_core::verdict::Verdict;
use mcp_health_probe::ProbeTarget;
use mcp_health_proto::v1::{BackendStatus, GroupPhase, GroupSource, GroupSpec, ProbePolicy, ReasonCode};

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
    /// DNS discovery (issue 23): the endpoint set and each endpoint's own
    /// verdict; `epoch` is then the discovery task's, `verdict.status` the
    /// aggregate of the endpoints' (`BackendSnapshot::discovered`), and the
    /// fields above about probes stay unused. None: one endpoint, probed by
    /// the task of `epoch`.
    pub(super) discovered: Option<Discovered>,
}

/// A discovered backend's endpoints: where each stands in DNS (`set`) and
/// what its own probes observed (`endpoints`, the same addresses).
pub(super) struct Discovered {
    pub(super) set: EndpointSet<Instant>,
    pub(super) endpoints: BTreeMap<std::net::SocketAddr, EndpointState>,
    /// Cluster mode: the set was last taken from the backend's owner
    /// (`take_remote_endpoints`), not from this replica's own lookups; the
    /// owner alone drops leaving endpoints, so a follower keeps them until
    /// the owner's set says otherwise.
    pub(super) followed: bool,
}

/// One discovered endpoint: its probe task's epoch and what its probes observed.
pub(super) struct EndpointState {
    pub(super) epoch: u64,
    pub(super) verdict: Verdict,
    pub(super) reason: Reason,
    pub(super) facts: ServerFacts,
    pub(super) last_latency: Option<Duration>,
    pub(super) last_probe: Option<SystemTime>,
    pub(super) last_transition: Option<SystemTime>,
    /// Cluster mode: the verdict was last taken from another replica, not
    /// from a local probe (as `BackendState::remote_since_probe`).
    pub(super) remote: bool,
}

impl EndpointState {
    /// A new endpoint (its probe task spawned as `epoch`): UNKNOWN, not probed yet.
    pub(super) fn new(epoch: u64) -> EndpointState {
        EndpointState {
            epoch,
            verdict: Verdict::unknown(),
            reason: Reason::new(ReasonCode::NotProbed, "not probed yet"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
            remote: false,
        }
    }

    /// What this replica's probes (or a shared verdict) observed of the endpoint at `address`.
    pub(super) fn observed(&self, address: std::net::SocketAddr) -> Observed {
        Observed {
            address: Some(address),
            verdict: self.verdict.clone(),
            reason: self.reason.clone(),
            facts: self.facts.clone(),
            last_latency: self.last_latency,
            last_probe: self.last_probe,
            last_transition: self.last_transition,
        }
    }

    /// This endpoint's verdict as replicas share it (no catalog and no
    /// ejection: neither is kept per endpoint; the backend's ejection is
    /// shared with the backend's own verdict).
    pub(super) fn shared(&self, address: std::net::SocketAddr) -> crate::seam::SharedVerdict {
        crate::seam::SharedVerdict {
            observed: self.observed(address),
            catalog: CatalogFacts::default(),
            ejection: None,
        }
    }
}

impl BackendState {
    /// What this replica shares of the backend at `at` (the ejection's time
    /// left counted from then).
    pub(super) fn shared(&self, at: Instant) -> crate::seam::SharedVerdict {
        crate::seam::SharedVerdict {
            observed: self.observed(),
            catalog: self.catalog_facts(),
            ejection: self.outlier.ejection.as_ref().map(|(ejection, ends)| crate::seam::SharedEjection {
                ejection: ejection.clone(),
                remaining: ends.saturating_duration_since(at.into_std()),
            }),
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

    /// Every task epoch of this backend: its own (probe or discovery task)
    /// and each discovered endpoint's.
    pub(super) fn epochs(&self) -> Vec<u64> {
        let endpoints = self.discovered.iter().flat_map(|d| d.endpoints.values().map(|e| e.epoch));
        std::iter::once(self.epoch).chain(endpoints).collect()
    }

    /// This backend in the domain snapshot: one endpoint, at the address its
    /// probes connected to; or a discovered backend's endpoints.
    pub(super) fn snapshot(&self) -> BackendSnapshot {
        let backend = &self.target.backend;
        let spec = BackendSpecShown {
            name: backend.spec.name.clone(),
            url: backend.spec.url.clone(),
            transport: backend.transport,
            auth: backend.auth_mode,
            drain: backend.spec.drain,
            catalog: self.catalog_facts(),
        };
        match &self.discovered {
            None => BackendSnapshot::single(spec, self.observed(), self.outlier.ejection().cloned()),
            Some(d) => {
                let min_healthy_percent = backend.discovery.as_ref().and_then(|p| p.min_healthy_percent);
                // Validated to parse, written as addresses are shown.
                let drained: std::collections::BTreeSet<std::net::SocketAddr> = backend.spec.drained_endpoints.iter().filter_map(|a| a.parse().ok()).collect();
                d.snapshot(spec, min_healthy_percent, &drained)
            }
        }
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

impl Discovered {
    /// The backend's snapshot from its endpoints: each with its own verdict,
    /// every one UNHEALTHY with reason DNS once lookups failed past the TTL
    /// maximum, the ones the operator drains marked; refused addresses shown
    /// beside them, never probed.
    fn snapshot(
        &self,
        spec: BackendSpecShown,
        min_healthy_percent: Option<u32>,
        drained: &std::collections::BTreeSet<std::net::SocketAddr>,
    ) -> BackendSnapshot {
        let dns_failure = self.set.dns_failure();
        let mut endpoints: Vec<(Observed, Place)> = self
            .set
            .members
            .iter()
            .filter_map(|(addr, member)| {
                let e = self.endpoints.get(addr)?;
                let mut observed = e.observed(*addr);
                if let Some(detail) = dns_failure {
                    observed.verdict = Verdict {
                        status: BackendStatus::Unhealthy,
                        ..Verdict::unknown()
                    };
                    observed.reason = Reason::new(ReasonCode::Dns, format!("DNS lookups failing past the TTL maximum: {detail}"));
                }
                let place = Place {
                    leaving: member.leaving(),
                    refused: None,
                    priority: member.priority,
                    weight: member.weight,
                    drained: drained.contains(addr),
                };
                Some((observed, place))
            })
            .collect();
        endpoints.extend(self.set.refused.iter().map(|r| {
            let observed = Observed {
                address: Some(r.addr),
                verdict: Verdict::unknown(),
                reason: Reason::new(ReasonCode::NotProbed, r.reason.clone()),
                facts: ServerFacts::default(),
                last_latency: None,
                last_probe: None,
                last_transition: None,
            };
            let place = Place {
                refused: Some(r.reason.clone()),
                ..Place::default()
            };
            (observed, place)
        }));
        // No endpoint: UNKNOWN before the first answer, UNHEALTHY after an empty one.
        let empty = match self.set.dns {
            DnsState::Unresolved => BackendStatus::Unknown,
            _ => BackendStatus::Unhealthy,
        };
        BackendSnapshot::discovered(spec, endpoints, min_healthy_percent, empty)
    }
}

pub(super) struct GroupState {
    /// The spec's group policy. The rest of the spec as applied is not kept
    /// twice: each backend's is its probe target's (`spec`, `has_spec`).
    pub(super) policy: Option<ProbePolicy>,
    /// The spec's backend order (`spec_order`): its i-th backend is the
    /// `order[i]`-th of `backends`, which are sorted by name.
    pub(super) order: Vec<u32>,
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
    /// The backends in the spec's order.
    fn in_spec_order(&self) -> impl Iterator<Item = &BackendState> {
        let sorted: Vec<&BackendState> = self.backends.values().collect();
        self.order.iter().map(move |i| sorted[*i as usize])
    }

    /// Whether `spec` is the spec this group was applied with (its name aside).
    pub(super) fn has_spec(&self, spec: &GroupSpec) -> bool {
        spec.policy == self.policy
            && spec.backends.len() == self.order.len()
            && self.in_spec_order().zip(&spec.backends).all(|(b, s)| b.target.backend.spec == *s)
    }

    /// The spec this group (named `name`) was applied with.
    pub(super) fn spec(&self, name: &str) -> GroupSpec {
        GroupSpec {
            name: name.to_owned(),
            backends: self.in_spec_order().map(|b| b.target.backend.spec.clone()).collect(),
            policy: self.policy,
        }
    }

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

/// Where each of `spec`'s backends stands among them sorted by name (as a
/// group's `backends` map holds them). Validation refused duplicate names.
pub(super) fn spec_order(spec: &GroupSpec) -> Vec<u32> {
    let mut by_name: Vec<usize> = (0..spec.backends.len()).collect();
    by_name.sort_by(|a, b| spec.backends[*a].name.cmp(&spec.backends[*b].name));
    let mut order = vec![0; by_name.len()];
    for (rank, i) in by_name.into_iter().enumerate() {
        // At most `max_backends_per_group` backends, far below u32::MAX.
        order[i] = rank as u32;
    }
    order
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
