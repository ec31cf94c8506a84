//! The state's side of outlier ejection (`ReportOutcomes`): reports from real
//! traffic folded into a backend's `core::outlier::OutlierState`, within its
//! group's cap; an ejection republishes the group (the backend is not
//! routable) and asks for confirmation (`Effect::Confirm`: a probe at once,
//! and one when its time is over). A probe result that passes ends an
//! ejection whose time is over (`end_ejection`, called by `fold`). In
//! cluster mode the owner folds the reports (the others forward theirs to
//! it) and shares an ejection and a return like a verdict change
//! (`Effect::ShareVerdict`); `take_remote` applies it on the other replicas.

use std::time::SystemTime;

use tokio::time::Instant;
use tracing::info;

use super::EngineState;
use crate::EngineError;
use crate::effects::{Effect, Effects};
use mcp_health_core::outlier::{GroupEjections, Reported, TrafficOutcome};

/// What a batch of reports for one backend did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportSummary {
    /// Reports folded.
    pub accepted: u32,
    /// Whether one of them ejected the backend.
    pub ejected: bool,
    /// Reports that reached the threshold while the group's cap held.
    pub capped: u32,
    /// Cluster mode: reports for a backend another replica owns, not folded
    /// here (only the owner probes it, so only it could end an ejection) and
    /// not forwarded either: no live owner is known (or they came forwarded
    /// already and this replica no longer owns the backend: no second hop).
    pub not_owned: u32,
    /// Cluster mode: reports queued for the backend's owner, which folds them.
    pub forwarded: u32,
    /// Cluster mode: reports for the owner dropped because the queue to the
    /// owners was full (etcd slower than the reports); never waited for.
    pub dropped: u32,
}

impl EngineState {
    /// Folds reports of real traffic to one backend, in order.
    pub fn report_outcomes(
        &mut self,
        group: &str,
        backend: &str,
        outcomes: &[TrafficOutcome],
        at: Instant,
        now: SystemTime,
        fx: &mut Effects,
    ) -> Result<ReportSummary, EngineError> {
        let (observed, shared) = (self.settings.observed, self.settings.shared);
        let g = self.groups.get_mut(group).ok_or_else(|| EngineError::GroupNotFound(group.to_owned()))?;
        match g.backends.get(backend) {
            None => {
                return Err(EngineError::BackendNotFound {
                    group: group.to_owned(),
                    backend: backend.to_owned(),
                });
            }
            // Its probes are per endpoint, so no one probe could confirm or
            // end an ejection of the whole backend: refused, not folded.
            Some(b) if b.discovered.is_some() => {
                return Err(EngineError::Invalid(vec![mcp_health_core::spec::FieldViolation {
                    field: "backend".to_owned(),
                    description: "is discovered through DNS: outlier ejection from real traffic is not served for discovered backends yet".to_owned(),
                }]));
            }
            Some(_) => {}
        }
        let total = g.backends.len();
        let mut summary = ReportSummary::default();
        for outcome in outcomes {
            let ejected = g.backends.values().filter(|b| b.outlier.is_ejected()).count();
            let Some(b) = g.backends.get_mut(backend) else { break };
            let policy = b.target.backend.policy.outlier;
            summary.accepted += 1;
            match b.outlier.report(*outcome, &policy, GroupEjections { ejected, total }, at.into_std(), now) {
                Reported::Counted => {}
                Reported::Capped => summary.capped += 1,
                Reported::Ejected(ejection) => {
                    summary.ejected = true;
                    info!(
                        group,
                        backend,
                        cause = %ejection.cause,
                        count = ejection.count,
                        ejection_ms = ejection.until.duration_since(ejection.since).unwrap_or_default().as_millis() as u64,
                        "backend ejected"
                    );
                    // Confirmation: a probe at once, and one when the time is over.
                    let ends = b.outlier.ends().map(Instant::from_std);
                    fx.push(Effect::Confirm { epoch: b.epoch, at: None });
                    if let Some(ends) = ends {
                        fx.push(Effect::Confirm {
                            epoch: b.epoch,
                            at: Some(ends),
                        });
                    }
                    fx.observe_ejection(observed, group, backend, Some(ejection), now);
                    // Shared like a verdict change, so every replica answers the same.
                    if shared {
                        fx.push(Effect::ShareVerdict {
                            group: group.to_owned(),
                            backend: backend.to_owned(),
                            verdict: Box::new(b.shared(at)),
                        });
                    }
                }
            }
        }
        if summary.ejected {
            let previous = g.verdict.phase;
            self.publish(group, Some(previous), fx);
        }
        Ok(summary)
    }
}

/// Ends the ejection of a backend whose probe passed at `at`, if its time is
/// over; returns whether it ended (the caller republishes). The caller has
/// the backend in hand (`fold`).
pub(super) fn end_ejection(
    b: &mut crate::groups::BackendState,
    group: &str,
    backend: &str,
    at: Instant,
    now: SystemTime,
    observed: bool,
    fx: &mut Effects,
) -> bool {
    let Some(ended) = b.outlier.probe_passed(at.into_std()) else { return false };
    info!(group, backend, cause = %ended.cause, count = ended.count, "backend returned from ejection");
    fx.observe_ejection(observed, group, backend, None, now);
    true
}
