//! The state's side of DNS discovery (issue 23): a discovered backend's
//! lookups reconciled into its endpoint set (`core::discovery::EndpointSet`),
//! a probe task per endpoint (its own epoch, pinned to the address), each
//! endpoint's probe results folded into its own verdict, and the backend's
//! status kept as the aggregate of its endpoints' (`BackendSnapshot::discovered`),
//! which the group's phase counts like any backend's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::info;

use super::EngineState;
use crate::EngineError;
use crate::effects::{Effect, Effects, Observed};
use crate::groups::{BackendState, Discovered, EndpointState};
use crate::results::ProbeResult;
use mcp_health_core::discovery::{DnsState, EndpointSet, Lookup};
use mcp_health_core::outcome::{OutcomeClass, ServerFacts, is_refusal};
use mcp_health_core::verdict::{Pace, Verdict, observe, pace, passes};
use mcp_health_probe::ProbeTarget;

/// One lookup of a discovered backend, from its discovery task (`epoch`).
#[derive(Debug)]
pub struct DnsAnswer {
    pub group: String,
    pub backend: String,
    pub epoch: u64,
    pub lookup: Lookup,
}

impl EngineState {
    /// Starts a discovered backend: its discovery task (the backend's epoch)
    /// and no endpoint until the first answer.
    pub(super) fn start_discovery(&mut self, target: &Arc<ProbeTarget>, fx: &mut Effects) -> (u64, Discovered) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        fx.push(Effect::Discover { epoch, target: target.clone() });
        let policy = target.backend.discovery.clone().unwrap_or_default();
        let set = EndpointSet::new(&policy);
        (
            epoch,
            Discovered {
                set,
                endpoints: Default::default(),
            },
        )
    }

    /// A discovered backend whose timing changed (`BackendAction::Retime`):
    /// every task restarts with the new target, the endpoints keep their verdicts.
    pub(super) fn retime_discovered(&mut self, b: &mut BackendState, target: Arc<ProbeTarget>, fx: &mut Effects) {
        for epoch in b.epochs() {
            fx.push(Effect::Abort { epoch });
        }
        b.epoch = self.next_epoch;
        self.next_epoch += 1;
        fx.push(Effect::Discover {
            epoch: b.epoch,
            target: target.clone(),
        });
        if let Some(d) = b.discovered.as_mut() {
            for (addr, e) in d.endpoints.iter_mut() {
                e.epoch = self.spawn(&Arc::new(target.pinned_to(*addr)), fx);
            }
        }
        b.target = target;
    }

    /// Folds one lookup of a discovered backend at `at`: new addresses get a probe task each (UNKNOWN, under
    /// the start-up spread), dropped ones lose theirs. Returns when to look
    /// up again; None for a removed or replaced incarnation (its task is
    /// aborted anyway).
    pub fn dns_answer(&mut self, answer: DnsAnswer, at: Instant, now: SystemTime, fx: &mut Effects) -> Option<Duration> {
        let DnsAnswer { group, backend, epoch, lookup } = answer;
        let (group, backend) = (group.as_str(), backend.as_str());
        let b = self.groups.get_mut(group)?.backends.get_mut(backend)?;
        if b.epoch != epoch {
            return None;
        }
        let target = b.target.clone();
        let policy = target.backend.discovery.clone().unwrap_or_default();
        let d = b.discovered.as_mut()?;
        let before = d.set.clone();
        let change = d.set.reconcile(lookup, at, &policy);
        for addr in &change.dropped {
            if let Some(e) = d.endpoints.remove(addr) {
                fx.push(Effect::Abort { epoch: e.epoch });
            }
        }
        let mut spawned = Vec::with_capacity(change.added.len());
        for addr in &change.added {
            let pinned = Arc::new(target.pinned_to(*addr));
            spawned.push((*addr, pinned));
        }
        for (addr, pinned) in spawned {
            let epoch = self.spawn(&pinned, fx);
            let d = self.discovered_mut(group, backend)?;
            d.endpoints.insert(addr, EndpointState::new(epoch));
        }
        let d = self.discovered_mut(group, backend)?;
        let resolved = |s: &EndpointSet<Instant>| !matches!(s.dns, DnsState::Unresolved);
        let changed = d.set.members != before.members
            || d.set.refused != before.refused
            || d.set.dns_failure() != before.dns_failure()
            || resolved(&d.set) != resolved(&before);
        if !change.added.is_empty() || !change.dropped.is_empty() {
            info!(group = %group, backend = %backend, added = change.added.len(), dropped = change.dropped.len(), endpoints = d.set.members.len(), "endpoints discovered");
        }
        if changed {
            self.settle_discovered(group, backend, now, fx);
        }
        Some(change.next_lookup)
    }

    fn discovered_mut(&mut self, group: &str, backend: &str) -> Option<&mut Discovered> {
        self.groups.get_mut(group)?.backends.get_mut(backend)?.discovered.as_mut()
    }

    /// Folds a probe result of one discovered endpoint into its own verdict.
    /// A result for a dropped endpoint or a replaced task is dropped; a
    /// failed probe of an endpoint that left DNS drops it (`probe_failed`).
    pub(super) fn fold_endpoint(&mut self, r: &ProbeResult, now: SystemTime, at: Instant, fx: &mut Effects) -> Result<(), EngineError> {
        let observed = self.settings.observed;
        let restarted = || EngineError::BackendRestarted {
            group: r.group.clone(),
            backend: r.backend.clone(),
        };
        let g = self.groups.get_mut(&r.group).ok_or_else(|| EngineError::GroupNotFound(r.group.clone()))?;
        let b = g.backends.get_mut(&r.backend).ok_or_else(|| EngineError::BackendNotFound {
            group: r.group.clone(),
            backend: r.backend.clone(),
        })?;
        let auth = b.target.backend.auth_mode;
        let thresholds = b.target.backend.policy.thresholds;
        let policy = b.target.backend.discovery.clone().unwrap_or_default();
        let d = b.discovered.as_mut().ok_or_else(restarted)?;
        let addr = r.endpoint.ok_or_else(restarted)?;
        let e = d.endpoints.get_mut(&addr).filter(|e| e.epoch == r.epoch).ok_or_else(restarted)?;
        if observed {
            fx.push(Effect::Observe(Observed::ProbeApplied));
        }
        let prev = e.verdict.clone();
        let next = observe(&prev, is_refusal(e.reason.code), r.outcome.class, auth, thresholds);
        e.last_probe = Some(now);
        e.last_latency = Some(r.latency);
        e.reason = r.outcome.reason.clone();
        if !r.outcome.facts.protocol_version.is_empty() {
            // Kept through failures, like a one-endpoint backend's; the catalog
            // is not kept per endpoint.
            e.facts = ServerFacts {
                catalog: None,
                ..r.outcome.facts.clone()
            };
        }
        let mut changed = next.status != prev.status || next.progress != prev.progress;
        if next.status != prev.status {
            e.last_transition = Some(now);
            info!(group = %r.group, backend = %r.backend, endpoint = %addr, from = prev.status.as_str_name(), to = next.status.as_str_name(), reason = e.reason.code.as_str_name(), detail = %e.reason.message, "endpoint transition");
        }
        e.verdict = next;
        let failed = r.outcome.class != OutcomeClass::Throttled && !passes(r.outcome.class, auth);
        let mut gone: Vec<(SocketAddr, u64)> = Vec::new();
        if failed && d.set.probe_failed(addr) {
            info!(group = %r.group, backend = %r.backend, endpoint = %addr, "endpoint left DNS and failed a probe; dropped");
            gone.push((addr, r.epoch));
        }
        gone.extend(d.set.expire(at, &policy).into_iter().filter_map(|a| Some((a, d.endpoints.get(&a)?.epoch))));
        for (a, epoch) in &gone {
            d.endpoints.remove(a);
            fx.push(Effect::Abort { epoch: *epoch });
            changed = true;
        }
        if changed {
            self.settle_discovered(&r.group, &r.backend, now, fx);
        } else {
            g.cached = None;
        }
        Ok(())
    }

    /// The pace one discovered endpoint's verdict asks of its task.
    pub(super) fn endpoint_pace(&self, group: &str, backend: &str, addr: SocketAddr) -> Option<Pace> {
        let b = self.groups.get(group)?.backends.get(backend)?;
        let e = b.discovered.as_ref()?.endpoints.get(&addr)?;
        Some(pace(&e.verdict, b.target.backend.auth_mode))
    }

    /// A discovered backend's endpoints changed: its status becomes their
    /// aggregate (a transition is observed and logged like any backend's),
    /// and the group is published.
    fn settle_discovered(&mut self, group: &str, backend: &str, now: SystemTime, fx: &mut Effects) {
        let observed = self.settings.observed;
        let Some(g) = self.groups.get_mut(group) else { return };
        let Some(b) = g.backends.get_mut(backend) else { return };
        let snapshot = b.snapshot();
        let status = snapshot.status;
        let prev = b.verdict.status;
        if observed {
            let endpoints = snapshot
                .endpoints
                .iter()
                .filter_map(|e| {
                    Some(crate::EndpointView {
                        address: e.observed.address?,
                        status: e.status(),
                        state: e.state(),
                    })
                })
                .collect();
            fx.push(Effect::Observe(Observed::Endpoints {
                group: group.to_owned(),
                backend: backend.to_owned(),
                endpoints,
            }));
        }
        if status != prev {
            b.verdict = Verdict { status, ..Verdict::unknown() };
            b.last_transition = Some(now);
            if observed {
                fx.push(Effect::Observe(Observed::BackendStatus {
                    group: group.to_owned(),
                    backend: backend.to_owned(),
                    from: Some(prev),
                    to: status,
                }));
            }
            info!(group = %group, backend = %backend, from = prev.as_str_name(), to = status.as_str_name(), "backend transition (aggregate of its endpoints)");
        }
        let previous = g.verdict.phase;
        self.publish(group, Some(previous), fx);
    }
}
