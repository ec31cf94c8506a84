//! The per-backend verdict state machine: one observation in, the next verdict
//! out. Hysteresis follows the policy's thresholds.

use crate::outcome::{OutcomeClass, auth_required_is_liveness};
use mcp_health_proto::v1::{AuthMode, BackendStatus};

/// The thresholds of a backend's policy, already validated to be at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures that take a routable backend to a non-routable status.
    pub unhealthy: u32,
    /// Consecutive successes that take a non-routable backend back to routable.
    pub healthy: u32,
}

/// The verdict on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: BackendStatus,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Progress toward the next threshold, e.g. "1 of 3 failed probes"; empty when none.
    pub progress: String,
}

impl Verdict {
    pub fn unknown() -> Self {
        Verdict {
            status: BackendStatus::Unknown,
            consecutive_failures: 0,
            consecutive_successes: 0,
            progress: String::new(),
        }
    }
}

/// Whether traffic may be sent to a backend with this status.
///
/// UNAUTHENTICATED is routable only for per-user backends: real traffic carries
/// each user's token, so a 401 to the anonymous probe proves the server is up.
/// For any other auth mode it means the probe's own credentials (or their
/// absence) were refused: a misconfiguration, not routable.
pub fn is_routable(status: BackendStatus, auth: AuthMode) -> bool {
    match status {
        BackendStatus::Healthy | BackendStatus::Degraded => true,
        BackendStatus::Unauthenticated => auth_required_is_liveness(auth),
        BackendStatus::Unknown | BackendStatus::Unhealthy | BackendStatus::Unspecified => false,
    }
}

/// How soon a backend's next scheduled probe should come, given its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// The verdict stands: the next probe at the policy's interval.
    Steady,
    /// The last probes disagree with the status and the threshold has not
    /// yet confirmed or refuted the change: the next probe at the policy's
    /// edge interval (Envoy's `unhealthy_edge_interval` and
    /// `healthy_edge_interval`, which Envoy uses while a change is pending).
    Edge,
}

/// The pace a verdict asks for: `Edge` while a change is pending, i.e. a
/// routable backend has failures below `unhealthyThreshold` or a non-routable
/// one has successes below `healthyThreshold` (the run that `progress`
/// describes). UNKNOWN is never pending: its first observation decides at once.
/// A DEGRADED backend that is merely slow or rate-limited has no failures, so
/// it keeps the steady pace.
pub fn pace(verdict: &Verdict, auth: AuthMode) -> Pace {
    let pending = match verdict.status {
        BackendStatus::Unknown | BackendStatus::Unspecified => false,
        s if is_routable(s, auth) => verdict.consecutive_failures > 0,
        _ => verdict.consecutive_successes > 0,
    };
    if pending { Pace::Edge } else { Pace::Steady }
}

/// What an observation is evidence of: whether the backend can take traffic,
/// and the status the observation points at. None: no evidence either way (a
/// bare 429 within the hold), which leaves the verdict as it was.
fn evidence(class: OutcomeClass, auth: AuthMode) -> Option<(bool, BackendStatus)> {
    Some(match class {
        OutcomeClass::Success => (true, BackendStatus::Healthy),
        // A -32023 answer is the MCP server itself answering: alive, but
        // asking us to slow down. Counted like slowness.
        OutcomeClass::Slow | OutcomeClass::ToolsFailing | OutcomeClass::RateLimited => (true, BackendStatus::Degraded),
        OutcomeClass::AuthRequired => (auth_required_is_liveness(auth), BackendStatus::Unauthenticated),
        OutcomeClass::Failure | OutcomeClass::Refused => (false, BackendStatus::Unhealthy),
        OutcomeClass::Throttled => return None,
    })
}

/// Whether one observation, on its own, says the backend can take traffic
/// (the good evidence `observe` counts toward `healthyThreshold`): what ends
/// an ejection whose time is over (`core::outlier`).
pub fn passes(class: OutcomeClass, auth: AuthMode) -> bool {
    evidence(class, auth).is_some_and(|(good, _)| good)
}

/// The next verdict after one observation.
///
/// - From UNKNOWN the first observation decides at once.
/// - From a routable status, bad evidence below the unhealthy threshold shows
///   DEGRADED with progress and stays routable; the threshold-th makes the
///   backend non-routable.
/// - From a non-routable status, `healthy` consecutive good observations are
///   needed to become routable again.
/// - A bare 429 (`Throttled`) changes nothing: status, counters and progress
///   are held (from UNKNOWN too), neither resetting nor advancing a run.
/// - A policy refusal (`Refused`: catalog not accepted, required tool
///   missing) makes the backend UNHEALTHY at once, whatever the unhealthy
///   threshold; and when `prev` stands on one (`refused_before`: its reason
///   is a refusal, `outcome::is_refusal`), the first good observation makes
///   it routable at once. Operators expect a policy verdict, not the
///   hysteresis meant for a flaky network.
pub fn observe(prev: &Verdict, refused_before: bool, class: OutcomeClass, auth: AuthMode, thresholds: Thresholds) -> Verdict {
    let Some((good, target)) = evidence(class, auth) else {
        return prev.clone();
    };
    let (failures, successes) = if good {
        (0, prev.consecutive_successes.saturating_add(1))
    } else {
        (prev.consecutive_failures.saturating_add(1), 0)
    };
    let next = |status, progress: String| Verdict {
        status,
        consecutive_failures: failures,
        consecutive_successes: successes,
        progress,
    };

    if prev.status == BackendStatus::Unknown || prev.status == BackendStatus::Unspecified {
        return next(target, String::new());
    }
    let was_routable = is_routable(prev.status, auth);
    match (was_routable, good) {
        (true, true) | (false, false) => next(target, String::new()),
        (true, false) if failures >= thresholds.unhealthy || class == OutcomeClass::Refused => next(target, String::new()),
        (true, false) => next(BackendStatus::Degraded, format!("{failures} of {} failed probes", thresholds.unhealthy)),
        (false, true) if successes >= thresholds.healthy || refused_before => next(target, String::new()),
        (false, true) => next(
            prev.status,
            format!("{successes} of {} successful probes needed to recover", thresholds.healthy),
        ),
    }
}
