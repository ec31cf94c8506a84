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
use crate::seam::{SharedDns, SharedEndpoints, SharedMember, SharedVerdict};
use mcp_health_core::discovery::{DnsState, EndpointSet, Lookup, Member, Presence};
use mcp_health_core::doubt::Hold;
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
                followed: false,
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
        if matches!(lookup, Lookup::Failed { .. }) && self.doubt.hold(&self.settings.doubt, at.into_std()) == Hold::Holding {
            // Fail-static, as for probes: a lookup that failed while the
            // prober doubts itself (its resolver, say) is no evidence against
            // the name. The set and its DNS state stand; asked again soon.
            return Some(policy.min_ttl);
        }
        let d = b.discovered.as_mut()?;
        let before = d.set.clone();
        // A lookup of our own: this replica speaks for the set now (it owns the backend).
        let was_followed = std::mem::replace(&mut d.followed, false);
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
        if changed || was_followed {
            self.share_endpoints(group, backend, fx);
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
        if self.doubt.holds_back(r.outcome.class, &self.settings.doubt, at.into_std()) {
            super::hold_result(&mut e.last_probe, &mut e.last_latency, r, now, observed, fx);
            g.cached = None;
            return Ok(());
        }
        let prev = e.verdict.clone();
        let prev_code = e.reason.code;
        let was_remote = std::mem::replace(&mut e.remote, false);
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
        let leaving = d.set.members.get(&addr).is_some_and(|m| m.leaving());
        // Shared on change, at the first local probe after taking the
        // endpoint over, and (followed) at a failed probe of a leaving
        // endpoint: the backend's owner drops it then, for every replica.
        if self.settings.shared && (changed || e.reason.code != prev_code || was_remote || (d.followed && failed && leaving)) {
            fx.push(Effect::ShareEndpointVerdict {
                group: r.group.clone(),
                backend: r.backend.clone(),
                address: addr,
                verdict: Box::new(e.shared(addr)),
            });
        }
        let mut gone: Vec<(SocketAddr, u64)> = Vec::new();
        if !d.followed {
            if failed && d.set.probe_failed(addr) {
                info!(group = %r.group, backend = %r.backend, endpoint = %addr, "endpoint left DNS and failed a probe; dropped");
                gone.push((addr, r.epoch));
            }
            gone.extend(d.set.expire(at, &policy).into_iter().filter_map(|a| Some((a, d.endpoints.get(&a)?.epoch))));
        }
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
        if !gone.is_empty() {
            self.share_endpoints(&r.group, &r.backend, fx);
        }
        Ok(())
    }

    /// Cluster mode: shares the backend's endpoint set as it stands here
    /// (the shell passes it on only while this replica owns the backend).
    fn share_endpoints(&self, group: &str, backend: &str, fx: &mut Effects) {
        if !self.settings.shared {
            return;
        }
        let Some(d) = self.groups.get(group).and_then(|g| g.backends.get(backend)).and_then(|b| b.discovered.as_ref()) else {
            return;
        };
        fx.push(Effect::ShareEndpoints {
            group: group.to_owned(),
            backend: backend.to_owned(),
            endpoints: Box::new(shared_set(&d.set)),
        });
    }

    /// Cluster mode: the endpoint set the backend's owner shared replaces
    /// this replica's, at `at`: new addresses get a probe task each (PENDING,
    /// under the start-up spread), addresses gone from it lose theirs, each
    /// endpoint kept keeps its verdict. Ignored by the owner once its own
    /// lookups answered (its own set comes back through the watch too).
    #[allow(clippy::too_many_arguments)]
    pub fn take_remote_endpoints(&mut self, group: &str, backend: &str, shared: &SharedEndpoints, owned: bool, at: Instant, now: SystemTime, fx: &mut Effects) {
        let Some(b) = self.groups.get_mut(group).and_then(|g| g.backends.get_mut(backend)) else {
            return;
        };
        let target = b.target.clone();
        let Some(d) = b.discovered.as_mut() else { return };
        if owned && !d.followed && !matches!(d.set.dns, DnsState::Unresolved) {
            return;
        }
        d.followed = true;
        let set = followed_set(shared, at);
        let dropped: Vec<u64> = d
            .endpoints
            .iter()
            .filter(|(addr, _)| !set.members.contains_key(addr))
            .map(|(_, e)| e.epoch)
            .collect();
        d.endpoints.retain(|addr, _| set.members.contains_key(addr));
        let added: Vec<SocketAddr> = set.members.keys().filter(|a| !d.endpoints.contains_key(a)).copied().collect();
        let before = std::mem::replace(&mut d.set, set);
        let changed = !added.is_empty()
            || !dropped.is_empty()
            || d.set
                .members
                .iter()
                .map(|(a, m)| (a, m.priority, m.weight, m.leaving()))
                .ne(before.members.iter().map(|(a, m)| (a, m.priority, m.weight, m.leaving())))
            || d.set.refused != before.refused
            || d.set.dns_failure() != before.dns_failure()
            || matches!(d.set.dns, DnsState::Unresolved) != matches!(before.dns, DnsState::Unresolved);
        for epoch in dropped {
            fx.push(Effect::Abort { epoch });
        }
        for addr in added {
            let epoch = self.spawn(&Arc::new(target.pinned_to(addr)), fx);
            if let Some(d) = self.discovered_mut(group, backend) {
                d.endpoints.insert(addr, EndpointState::new(epoch));
            }
        }
        if changed {
            self.settle_discovered(group, backend, now, fx);
        }
    }

    /// Cluster mode: a discovered endpoint's verdict another replica shared
    /// replaces this replica's, unless this replica owns the endpoint and has
    /// probed it since (then its own is shared again if they differ, as
    /// `take_remote` does for a backend). The replica that speaks for the set
    /// drops a leaving endpoint whose shared verdict shows a failed probe, as
    /// it would at a failed probe of its own.
    #[allow(clippy::too_many_arguments)]
    pub fn take_remote_endpoint(
        &mut self,
        group: &str,
        backend: &str,
        address: SocketAddr,
        remote: SharedVerdict,
        owned: bool,
        at: Instant,
        now: SystemTime,
        fx: &mut Effects,
    ) {
        let Some(g) = self.groups.get_mut(group) else { return };
        let Some(b) = g.backends.get_mut(backend) else { return };
        let policy = b.target.backend.discovery.clone().unwrap_or_default();
        let Some(d) = b.discovered.as_mut() else { return };
        let Some(e) = d.endpoints.get_mut(&address) else { return };
        let remote = remote.observed;
        let differs = remote.verdict.status != e.verdict.status || remote.verdict.progress != e.verdict.progress || remote.reason.code != e.reason.code;
        if owned && e.last_probe.is_some() && !e.remote {
            if differs && self.settings.shared {
                fx.push(Effect::ShareEndpointVerdict {
                    group: group.to_owned(),
                    backend: backend.to_owned(),
                    address,
                    verdict: Box::new(e.shared(address)),
                });
            }
            return;
        }
        if remote.verdict.status != e.verdict.status {
            info!(group = %group, backend = %backend, endpoint = %address, from = e.verdict.status.as_str_name(), to = remote.verdict.status.as_str_name(), "endpoint transition (shared)");
        }
        let failed = remote.verdict.consecutive_failures > 0;
        e.verdict = remote.verdict;
        e.reason = remote.reason;
        e.facts = remote.facts;
        e.last_latency = remote.last_latency;
        e.last_probe = remote.last_probe;
        e.last_transition = remote.last_transition;
        e.remote = true;
        let mut gone: Vec<u64> = Vec::new();
        if !d.followed {
            if failed && d.set.probe_failed(address) {
                info!(group = %group, backend = %backend, endpoint = %address, "endpoint left DNS and failed a probe elsewhere; dropped");
                gone.extend(d.endpoints.remove(&address).map(|e| e.epoch));
            }
            for a in d.set.expire(at, &policy) {
                gone.extend(d.endpoints.remove(&a).map(|e| e.epoch));
            }
        }
        for epoch in &gone {
            fx.push(Effect::Abort { epoch: *epoch });
        }
        if differs || !gone.is_empty() {
            self.settle_discovered(group, backend, now, fx);
        } else {
            g.cached = None;
        }
        if !gone.is_empty() {
            self.share_endpoints(group, backend, fx);
        }
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
            fx.push(Effect::Observe(endpoints_observed(group, backend, &snapshot)));
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

impl EngineState {
    /// Tells observers a discovered backend's endpoints as they stand, for a
    /// change no probe or lookup made (the operator drained or undrained one).
    pub(super) fn observe_endpoints(&mut self, group: &str, backend: &str, fx: &mut Effects) {
        if !self.settings.observed {
            return;
        }
        let Some(b) = self.groups.get_mut(group).and_then(|g| g.backends.get_mut(backend)) else {
            return;
        };
        if b.discovered.is_some() {
            let snapshot = b.snapshot();
            fx.push(Effect::Observe(endpoints_observed(group, backend, &snapshot)));
        }
    }
}

/// A discovered backend's endpoints as observers see them.
fn endpoints_observed(group: &str, backend: &str, snapshot: &mcp_health_core::snapshot::BackendSnapshot) -> Observed {
    let endpoints = snapshot
        .endpoints
        .iter()
        .filter_map(|e| {
            Some(crate::EndpointView {
                address: e.observed.address?,
                status: e.status(),
                state: e.state(),
                reason: e.observed.reason.clone(),
                drained: e.place.drained,
            })
        })
        .collect();
    Observed::Endpoints {
        group: group.to_owned(),
        backend: backend.to_owned(),
        endpoints,
    }
}

/// An endpoint set as replicas share it: without this replica's times.
pub(crate) fn shared_set(set: &EndpointSet<Instant>) -> SharedEndpoints {
    SharedEndpoints {
        members: set
            .members
            .iter()
            .map(|(address, m)| SharedMember {
                address: *address,
                priority: m.priority,
                weight: m.weight,
                leaving: m.leaving(),
            })
            .collect(),
        refused: set.refused.clone(),
        dns: match &set.dns {
            DnsState::Unresolved => SharedDns::Unresolved,
            DnsState::Fresh { .. } => SharedDns::Fresh,
            DnsState::Stale { detail, .. } => SharedDns::Stale { detail: detail.clone() },
            DnsState::Expired { detail } => SharedDns::Expired { detail: detail.clone() },
        },
        ttl: set.ttl,
    }
}

/// A shared endpoint set taken at `at`: its times are when this replica
/// took it (it neither drops nor expires anything on them while it follows;
/// a replica that takes the backend over counts from its takeover).
pub(crate) fn followed_set(shared: &SharedEndpoints, at: Instant) -> EndpointSet<Instant> {
    EndpointSet {
        members: shared
            .members
            .iter()
            .map(|m| {
                let presence = if m.leaving { Presence::Leaving { since: at } } else { Presence::Active };
                (
                    m.address,
                    Member {
                        priority: m.priority,
                        weight: m.weight,
                        presence,
                    },
                )
            })
            .collect(),
        refused: shared.refused.clone(),
        dns: match &shared.dns {
            SharedDns::Unresolved => DnsState::Unresolved,
            SharedDns::Fresh => DnsState::Fresh { at },
            SharedDns::Stale { detail } => DnsState::Stale {
                last_good: at,
                detail: detail.clone(),
            },
            SharedDns::Expired { detail } => DnsState::Expired { detail: detail.clone() },
        },
        ttl: shared.ttl,
    }
}
