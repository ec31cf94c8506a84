//! The one place a group's routable phase, its summary counts and its human
//! message are computed. The gRPC API, grpc.health.v1, logs and metrics all
//! derive from `group_verdict`.

use crate::verdict::is_routable;
use mcp_health_proto::v1::{AuthMode, BackendStatus, GroupPhase, Summary};

/// What every reader of a group sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupVerdict {
    pub phase: GroupPhase,
    pub summary: Summary,
    pub message: String,
}

/// One backend as the phase sees it: its observed status, its auth mode
/// (which decides whether UNAUTHENTICATED is routable), whether the
/// operator drains it and whether real traffic ejected it (`core::outlier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendView {
    pub status: BackendStatus,
    pub auth: AuthMode,
    pub draining: bool,
    pub ejected: bool,
}

impl BackendView {
    /// Whether traffic may go to the backend: its verdict is routable
    /// ([`is_routable`]), the operator does not drain it and it is not
    /// ejected. Every reader's `routable` (the API, grpc.health through the
    /// phase, metrics, xDS) is this.
    pub fn routable(&self) -> bool {
        !self.draining && !self.ejected && is_routable(self.status, self.auth)
    }
}

/// A backend's status from its endpoints' (a backend with one endpoint has
/// its endpoint's status; issue 23 gives discovered backends several). Only
/// endpoints still in DNS are counted: leaving and refused ones are not. None
/// when there is none (the caller says why: not resolved yet, or no addresses).
///
/// Routable (HEALTHY, or UNAUTHENTICATED for a per-user backend, when every
/// judged endpoint reads so; DEGRADED otherwise) while at least one endpoint
/// is routable, and, with `min_healthy_percent`, at least that share of the
/// judged endpoints; so "9 of 10 dead" reads DEGRADED, never READY. Not
/// routable otherwise: UNKNOWN while none is judged, UNAUTHENTICATED when
/// every judged one is, else UNHEALTHY. An UNKNOWN endpoint (a new address
/// not probed yet) is neutral, as a backend is in the phase.
pub fn aggregate_status(endpoints: impl IntoIterator<Item = BackendStatus>, auth: AuthMode, min_healthy_percent: Option<u32>) -> Option<BackendStatus> {
    let (mut total, mut unknown, mut routable, mut unauthenticated) = (0u32, 0u32, 0u32, 0u32);
    let mut first_judged = None;
    let mut all_same = true;
    for status in endpoints {
        total += 1;
        match status {
            BackendStatus::Unknown | BackendStatus::Unspecified => {
                unknown += 1;
                continue;
            }
            BackendStatus::Unauthenticated => unauthenticated += 1,
            _ => {}
        }
        routable += u32::from(is_routable(status, auth));
        all_same &= *first_judged.get_or_insert(status) == status;
    }
    if total == 0 {
        return None;
    }
    let judged = total - unknown;
    let enough = min_healthy_percent.is_none_or(|pct| u64::from(routable) * 100 >= u64::from(pct) * u64::from(judged));
    Some(if routable > 0 && enough {
        match first_judged {
            Some(s @ (BackendStatus::Healthy | BackendStatus::Unauthenticated)) if all_same => s,
            _ => BackendStatus::Degraded,
        }
    } else if judged == 0 {
        BackendStatus::Unknown
    } else if unauthenticated == judged {
        BackendStatus::Unauthenticated
    } else {
        BackendStatus::Unhealthy
    })
}

/// Computes the group phase from its backends. A backend not probed yet
/// (UNKNOWN) is neutral: it neither makes a group FAILED nor takes it out of
/// READY, so an apply or a reload never shows a failure that never was.
///
/// - FAILED when the group has no backends, or none is routable and every
///   backend has a verdict. A drained or ejected backend is not routable,
///   whatever its status.
/// - PENDING while no backend is routable and some have no verdict yet.
/// - READY when some backend is routable, every backend with a verdict is
///   routable, and none is DEGRADED.
/// - DEGRADED otherwise.
pub fn group_verdict(backends: impl IntoIterator<Item = BackendView>) -> GroupVerdict {
    let summary = summarize(backends);
    // UNKNOWN is never routable (`is_routable`), so `routable` counts judged backends only.
    let judged = summary.total - summary.unknown;
    let phase = if summary.total == 0 {
        GroupPhase::Failed
    } else if summary.routable == 0 {
        if summary.unknown > 0 { GroupPhase::Pending } else { GroupPhase::Failed }
    } else if summary.routable == judged && summary.degraded == 0 {
        GroupPhase::Ready
    } else {
        GroupPhase::Degraded
    };
    let message = describe(phase, &summary);
    GroupVerdict { phase, summary, message }
}

fn summarize(backends: impl IntoIterator<Item = BackendView>) -> Summary {
    let mut s = Summary::default();
    for b in backends {
        s.total += 1;
        s.routable += u32::from(b.routable());
        s.draining += u32::from(b.draining);
        s.ejected += u32::from(b.ejected);
        match b.status {
            BackendStatus::Healthy => s.healthy += 1,
            BackendStatus::Degraded => s.degraded += 1,
            BackendStatus::Unhealthy => s.unhealthy += 1,
            BackendStatus::Unauthenticated => s.unauthenticated += 1,
            BackendStatus::Unknown | BackendStatus::Unspecified => s.unknown += 1,
        }
    }
    s
}

/// "1 backend" / "2 backends".
fn backends(n: u32) -> String {
    if n == 1 { "1 backend".to_owned() } else { format!("{n} backends") }
}

fn describe(phase: GroupPhase, s: &Summary) -> String {
    if s.total == 0 {
        return "the group has no backends".to_owned();
    }
    let mut message = if phase == GroupPhase::Pending {
        if s.unknown == s.total {
            return format!("waiting for the first verdict on {}", backends(s.total));
        }
        format!("waiting for the first verdict on {} of {}", s.unknown, backends(s.total))
    } else if s.routable == s.total {
        if s.total == 1 {
            "the backend is routable".to_owned()
        } else {
            format!("all {} routable", backends(s.total))
        }
    } else {
        format!("{} of {} routable", s.routable, backends(s.total))
    };
    let verb = |n: u32, one: &str, many: &str| format!("{} {}", backends(n), if n == 1 { one } else { many });
    let details: Vec<String> = [
        (s.unauthenticated, verb(s.unauthenticated, "requires authentication", "require authentication")),
        (s.degraded, verb(s.degraded, "is degraded", "are degraded")),
        (s.unhealthy, verb(s.unhealthy, "is unhealthy", "are unhealthy")),
        // A PENDING message already names the backends without a verdict.
        (
            if phase == GroupPhase::Pending { 0 } else { s.unknown },
            verb(s.unknown, "is not probed yet", "are not probed yet"),
        ),
        (s.draining, verb(s.draining, "is draining", "are draining")),
        (s.ejected, verb(s.ejected, "is ejected", "are ejected")),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(_, text)| text)
    .collect();
    if !details.is_empty() {
        message.push_str("; ");
        message.push_str(&details.join(", "));
    }
    message
}
