//! The history observer driven through the calls the owner task makes.

use std::time::Duration;

use super::*;
use mcp_health_core::outcome::{ProbeOutcome, Reason, ServerFacts};
use mcp_health_proto::v1::ReasonCode;

fn result(group: &str, backend: &str, outcome: ProbeOutcome, latency_ms: u64) -> ProbeResult {
    ProbeResult {
        group: group.into(),
        backend: backend.into(),
        epoch: 1,
        endpoint: None,
        outcome,
        latency: Duration::from_millis(latency_ms),
        scheduling_lag: Duration::ZERO,
        interval: Duration::from_secs(10),
        reply: None,
        pace: None,
    }
}

fn refused() -> ProbeOutcome {
    ProbeOutcome::failure(Reason::new(ReasonCode::ConnectionRefused, "connection refused"))
}

#[test]
fn transitions_cite_the_probe_that_caused_them() {
    use BackendStatus::*;
    let h = History::new();
    h.backend_status("g", "b", None, Unknown);
    h.probe_applied(&result("g", "b", ProbeOutcome::success(ServerFacts::default()), 12));
    h.backend_status("g", "b", Some(Unknown), Healthy);
    h.probe_applied(&result("g", "b", refused(), 3));
    h.backend_status("g", "b", Some(Healthy), Degraded);
    let now = unix_ms(SystemTime::now());
    let b = h.backend("g", "b", now).unwrap();
    let got: Vec<_> = b
        .transitions
        .iter()
        .map(|t| (t.from, t.to, t.reason.code, &*t.reason.message, t.latency))
        .collect();
    assert_eq!(
        got,
        [
            (Unknown, Healthy, ReasonCode::Ok, "handshake succeeded", Some(Duration::from_millis(12))),
            (
                Healthy,
                Degraded,
                ReasonCode::ConnectionRefused,
                "connection refused",
                Some(Duration::from_millis(3))
            ),
        ]
    );
    assert_eq!(b.status, Degraded);
    assert_eq!(b.latency.iter().map(|p| p.probes).sum::<u32>(), 2);
    let timeline = h.timeline(0, 10);
    assert_eq!(timeline.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h.timeline(1, 10).len(), 1, "only what is newer than the given seq");
    assert_eq!(h.timeline(0, 1)[0].seq, 2, "the newest when limited");
}

#[test]
fn added_restarted_removed_deleted() {
    use BackendStatus::*;
    let h = History::new();
    h.backend_status("g", "b", None, Unknown);
    assert!(h.backend("g", "b", 0).unwrap().transitions.is_empty(), "being added is not a transition");
    h.probe_applied(&result("g", "b", refused(), 1));
    h.backend_status("g", "b", Some(Unknown), Unhealthy);
    // A spec change restarts it at UNKNOWN.
    h.backend_status("g", "b", None, Unknown);
    let b = h.backend("g", "b", 0).unwrap();
    assert_eq!(
        b.transitions.last().map(|t| (t.from, t.to, t.reason.code)),
        Some((Unhealthy, Unknown, ReasonCode::NotProbed))
    );
    h.backend_removed("g", "b");
    assert_eq!(
        h.backend("g", "b", 0),
        Err(HistoryError::BackendNotFound {
            group: "g".into(),
            backend: "b".into()
        })
    );
    h.backend_status("g", "c", None, Unknown);
    h.group_deleted("g", &["c".into()]);
    assert_eq!(h.backend("g", "c", 0), Err(HistoryError::GroupNotFound("g".into())));
    assert_eq!(h.timeline(0, 100).len(), 2, "the timeline outlives what it mentions");
    assert_eq!(h.backends(), 0);
}

#[test]
fn timeline_is_bounded() {
    let h = History::new();
    for i in 0..(TIMELINE_LEN as u64 + 10) {
        h.backend_status(
            "g",
            "b",
            Some(BackendStatus::Unknown),
            if i % 2 == 0 { BackendStatus::Healthy } else { BackendStatus::Unhealthy },
        );
    }
    let all = h.timeline(0, usize::MAX);
    assert_eq!(all.len(), TIMELINE_LEN);
    assert_eq!(all.last().map(|e| e.seq), Some(TIMELINE_LEN as u64 + 10));
}
