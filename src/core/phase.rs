//! The one place a group's routable phase, its summary counts and its human
//! message are computed. The gRPC API, grpc.health.v1, logs and metrics all
//! derive from `group_verdict`.

use crate::proto::v1::{BackendStatus, GroupPhase, Summary};

/// What every reader of a group sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupVerdict {
    pub phase: GroupPhase,
    pub summary: Summary,
    pub message: String,
}

/// One backend as the phase sees it: its status and whether it is routable
/// (which depends on its auth mode, so the caller decides it with
/// [`crate::core::verdict::is_routable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendView {
    pub status: BackendStatus,
    pub routable: bool,
}

/// Computes the group phase from its backends.
///
/// - FAILED when the group has no backends, or none is routable (once any has a verdict).
/// - PENDING while no backend has a verdict yet.
/// - READY when every backend is routable and none is DEGRADED.
/// - DEGRADED otherwise.
pub fn group_verdict(backends: impl IntoIterator<Item = BackendView>) -> GroupVerdict {
    let summary = summarize(backends);
    let phase = if summary.total == 0 {
        GroupPhase::Failed
    } else if summary.unknown == summary.total {
        GroupPhase::Pending
    } else if summary.routable == 0 {
        GroupPhase::Failed
    } else if summary.routable == summary.total && summary.degraded == 0 {
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
        s.routable += u32::from(b.routable);
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
    if phase == GroupPhase::Pending {
        return format!("waiting for the first verdict on {}", backends(s.total));
    }
    let mut message = if s.routable == s.total {
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
        (s.unknown, verb(s.unknown, "is not probed yet", "are not probed yet")),
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
