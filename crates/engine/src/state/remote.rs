//! The state's side of shared verdicts (cluster mode): a verdict another
//! replica published replaces this replica's state of the backend, unless
//! this replica owns the backend and has probed it itself since (its own
//! result is at least as fresh). Until the new owner's first result, the
//! last shared verdict stands. An owner that is shown a shared verdict other
//! than its own shares its own again at its next probe: an owner shares only
//! changes, so a share it lost would otherwise leave the other replicas on
//! the old verdict for good (found by the fault-schedule harness, seed 42:
//! no convergence after a partition from etcd, or from etcd and the fleet).

use super::EngineState;
use crate::effects::{Effect, Effects, Observed};
use crate::seam::SharedVerdict;

impl EngineState {
    /// `owned`: whether this replica owns the backend now.
    pub fn take_remote(&mut self, group: &str, backend: &str, remote: SharedVerdict, owned: bool, fx: &mut Effects) {
        let observed = self.settings.observed;
        let Some(g) = self.groups.get_mut(group) else { return };
        let Some(b) = g.backends.get_mut(backend) else { return };
        if b.discovered.is_some() {
            // Cluster mode refuses discovered backends (`check_discovery_served`).
            return;
        }
        let SharedVerdict { observed: remote, catalog } = remote;
        if owned && b.last_probe.is_some() && !b.remote_since_probe {
            if remote.verdict.status != b.verdict.status || remote.verdict.progress != b.verdict.progress || remote.reason.code != b.reason.code {
                b.share_next = true;
            }
            return;
        }
        let changed = remote.verdict.status != b.verdict.status
            || remote.verdict.progress != b.verdict.progress
            || remote.reason.code != b.reason.code
            || remote.address != b.peer
            || catalog.fingerprint != b.catalog.fingerprint
            || catalog.note != b.catalog.note;
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
