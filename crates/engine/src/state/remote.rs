//! The state's side of shared verdicts (cluster mode): a verdict another
//! replica published replaces this replica's state of the backend, unless
//! this replica owns the backend and has probed it itself since (its own
//! result is at least as fresh). Until the new owner's first result, the
//! last shared verdict stands. An owner that is shown a shared verdict other
//! than its own shares its own again at its next probe: an owner shares only
//! changes, so a share it lost would otherwise leave the other replicas on
//! the old verdict for good (found by the fault-schedule harness, seed 42:
//! no convergence after a partition from etcd, or from etcd and the fleet).
//!
//! The owner's outlier ejection comes with its verdict and replaces this
//! replica's (`take_ejection`): the backend is not routable here either, and
//! a replica that becomes the owner keeps the ejection (its time left counted
//! from when the record was taken) and ends it at its own first passing probe
//! once that time is over, woken then (`Effect::Confirm`).

use std::time::SystemTime;

use tokio::time::Instant;
use tracing::info;

use super::EngineState;
use crate::effects::{Effect, Effects, Observed};
use crate::groups::BackendState;
use crate::seam::{Ejection, SharedEjection, SharedVerdict};

impl EngineState {
    /// `owned`: whether this replica owns the backend now; `clock`: the
    /// monotonic now (an ejection's time left counts from it) and the wall
    /// clock (a return's time, shown).
    pub fn take_remote(&mut self, group: &str, backend: &str, remote: SharedVerdict, owned: bool, clock: (Instant, SystemTime), fx: &mut Effects) {
        let observed = self.settings.observed;
        let Some(g) = self.groups.get_mut(group) else { return };
        let Some(b) = g.backends.get_mut(backend) else { return };
        if b.discovered.is_some() {
            // Cluster mode refuses discovered backends (`check_discovery_served`).
            return;
        }
        let SharedVerdict {
            observed: remote,
            catalog,
            ejection,
        } = remote;
        if owned && b.last_probe.is_some() && !b.remote_since_probe {
            if remote.verdict.status != b.verdict.status
                || remote.verdict.progress != b.verdict.progress
                || remote.reason.code != b.reason.code
                || ejection.as_ref().map(|e| e.ejection.count) != b.outlier.ejection().map(|e| e.count)
            {
                b.share_next = true;
            }
            return;
        }
        let ejection_changed = take_ejection(b, group, backend, ejection, clock, observed, fx);
        let changed = remote.verdict.status != b.verdict.status
            || remote.verdict.progress != b.verdict.progress
            || remote.reason.code != b.reason.code
            || remote.address != b.peer
            || catalog.fingerprint != b.catalog.fingerprint
            || catalog.note != b.catalog.note
            || ejection_changed;
        if remote.verdict.status != b.verdict.status && observed {
            fx.push(Effect::Observe(Observed::BackendStatus {
                group: group.to_owned(),
                backend: backend.to_owned(),
                from: Some(b.verdict.status),
                to: remote.verdict.status,
            }));
        }
        b.verdict = remote.verdict;
        b.reason = remote.reason;
        b.facts = remote.facts;
        b.catalog.take_shared(&catalog.fingerprint, catalog.changed_at, &catalog.note);
        b.last_latency = remote.last_latency;
        b.last_probe = remote.last_probe;
        b.last_transition = remote.last_transition;
        b.peer = remote.address;
        b.remote_since_probe = true;
        if changed {
            let previous = g.verdict.phase;
            self.publish(group, Some(previous), fx);
        } else {
            g.cached = None;
        }
    }
}

/// Replaces the backend's ejection with the owner's; returns whether it
/// changed what readers see (ejected or not, or another ejection).
fn take_ejection(
    b: &mut BackendState,
    group: &str,
    backend: &str,
    shared: Option<SharedEjection>,
    (at, now): (Instant, SystemTime),
    observed: bool,
    fx: &mut Effects,
) -> bool {
    match shared {
        None => {
            let Some(ended) = b.outlier.ejection.take() else { return false };
            b.outlier.returned_at = Some(at.into_std());
            info!(group, backend, cause = %ended.0.cause, "backend returned from ejection (shared by its owner)");
            fx.observe_ejection(observed, group, backend, None, now);
            true
        }
        Some(SharedEjection { ejection, remaining }) => {
            if b.outlier.ejection().is_some_and(|held| same_ejection(held, &ejection)) {
                return false;
            }
            let ends = at + remaining;
            // The count times this backend's next ejection, should this
            // replica come to own it (no reset by a failover).
            b.outlier.multiplier = b.outlier.multiplier.max(ejection.count);
            b.outlier.consecutive_failures = 0;
            b.outlier.ejection = Some((ejection.clone(), ends.into_std()));
            info!(group, backend, cause = %ejection.cause, count = ejection.count, "backend ejected (shared by its owner)");
            // Should this replica own the backend when the time is over, its
            // probe then may end the ejection (a wake of a backend it does not
            // own probes nothing: its scheduler asks first).
            fx.push(Effect::Confirm {
                epoch: b.epoch,
                at: Some(ends),
            });
            let since = ejection.since;
            fx.observe_ejection(observed, group, backend, Some(ejection), since);
            true
        }
    }
}

/// Whether two ejections are the same one: the record keeps times to the
/// millisecond, so the owner's own (to the nanosecond) and the record's are
/// compared there.
fn same_ejection(a: &Ejection, b: &Ejection) -> bool {
    let ms = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    a.count == b.count && a.cause == b.cause && ms(a.since) == ms(b.since)
}
