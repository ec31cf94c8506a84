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

/// One endpoint as the engine reports it: (last octet of 10.0.0.x:80, status, state, drained).
type Ep = (u8, BackendStatus, mcp_health_core::snapshot::EndpointState, bool);

fn views(eps: &[Ep]) -> Vec<crate::EndpointView> {
    eps.iter()
        .map(|&(n, status, state, drained)| crate::EndpointView {
            address: std::net::SocketAddr::from(([10, 0, 0, n], 80)),
            status,
            state,
            reason: if state == mcp_health_core::snapshot::EndpointState::Refused {
                Reason::new(ReasonCode::NotProbed, "link-local address")
            } else if status == BackendStatus::Unhealthy {
                Reason::new(ReasonCode::ConnectionRefused, "connection refused")
            } else {
                Reason::new(ReasonCode::Ok, "handshake succeeded")
            },
            drained,
        })
        .collect()
}

/// Feeds successive endpoint reports of one discovered backend and checks
/// the entries its history gains, as (address, from, to, message); the
/// backend's own status is only moved by `backend_status`.
fn endpoints_case(name: &str, reports: &[&[Ep]], want: &[(&str, BackendStatus, BackendStatus, &str)]) {
    let h = History::new();
    h.backend_status("g", "b", None, BackendStatus::Unknown);
    h.backend_status("g", "b", Some(BackendStatus::Unknown), BackendStatus::Healthy);
    for r in reports {
        h.endpoints("g", "b", &views(r));
    }
    let b = h.backend("g", "b", 0).unwrap();
    let got: Vec<_> = b
        .transitions
        .iter()
        .filter_map(|t| Some((t.endpoint?.to_string(), t.from, t.to, t.reason.message.to_string())))
        .collect();
    let want: Vec<_> = want.iter().map(|&(a, f, t, m)| (a.to_owned(), f, t, m.to_owned())).collect();
    assert_eq!(got, want, "{name}");
    assert_eq!(b.status, BackendStatus::Healthy, "{name}: endpoint entries leave the backend's status alone");
    let proto = b.to_proto();
    let shown: Vec<_> = proto.transitions.iter().map(|t| t.endpoint.as_str()).collect();
    assert_eq!(shown.first(), Some(&""), "{name}: the backend's own transition has no endpoint");
    assert_eq!(shown.len(), want.len() + 1, "{name}");
    assert!(shown[1..].iter().zip(&want).all(|(s, w)| *s == w.0), "{name}: {shown:?}");
    assert_eq!(h.timeline(0, 100).len(), want.len() + 1, "{name}: endpoint entries reach the timeline too");
}

#[test]
fn endpoint_transitions_table() {
    use BackendStatus::*;
    use mcp_health_core::snapshot::EndpointState::*;
    endpoints_case("nothing reported", &[], &[]);
    endpoints_case(
        "added, then one endpoint's status moves",
        &[
            &[(1, Unknown, NotRoutable, false), (2, Unknown, NotRoutable, false)],
            &[(1, Healthy, Routable, false), (2, Unknown, NotRoutable, false)],
            &[(1, Healthy, Routable, false), (2, Unhealthy, NotRoutable, false)],
        ],
        &[
            ("10.0.0.1:80", Unknown, Unknown, "endpoint added"),
            ("10.0.0.2:80", Unknown, Unknown, "endpoint added"),
            ("10.0.0.1:80", Unknown, Healthy, "handshake succeeded"),
            ("10.0.0.2:80", Unknown, Unhealthy, "connection refused"),
        ],
    );
    endpoints_case(
        "a report with nothing new adds nothing",
        &[&[(1, Healthy, Routable, false)], &[(1, Healthy, Routable, false)]],
        &[("10.0.0.1:80", Healthy, Healthy, "endpoint added")],
    );
    endpoints_case(
        "leaves DNS, then is dropped",
        &[&[(1, Healthy, Routable, false)], &[(1, Healthy, Leaving, false)], &[]],
        &[
            ("10.0.0.1:80", Healthy, Healthy, "endpoint added"),
            ("10.0.0.1:80", Healthy, Healthy, "endpoint left DNS"),
            ("10.0.0.1:80", Healthy, Healthy, "endpoint dropped"),
        ],
    );
    endpoints_case(
        "drained and undrained",
        &[
            &[(1, Healthy, Routable, false)],
            &[(1, Healthy, NotRoutable, true)],
            &[(1, Healthy, Routable, false)],
        ],
        &[
            ("10.0.0.1:80", Healthy, Healthy, "endpoint added"),
            ("10.0.0.1:80", Healthy, Healthy, "endpoint drained"),
            ("10.0.0.1:80", Healthy, Healthy, "endpoint no longer drained"),
        ],
    );
    endpoints_case(
        "refused by the SSRF rule",
        &[&[(9, Unknown, Refused, false)]],
        &[("10.0.0.9:80", Unknown, Unknown, "endpoint refused: link-local address")],
    );
}

#[test]
fn endpoint_entries_are_bounded_with_the_backend_transitions() {
    use mcp_health_core::snapshot::EndpointState::*;
    let h = History::new();
    for i in 0..(MAX_TRANSITIONS * 2) {
        let status = if i % 2 == 0 { BackendStatus::Healthy } else { BackendStatus::Unhealthy };
        h.endpoints("g", "b", &views(&[(1, status, Routable, false)]));
    }
    let b = h.backend("g", "b", 0).unwrap();
    assert_eq!(b.transitions.len(), MAX_TRANSITIONS);
    assert_eq!(b.dropped as usize, MAX_TRANSITIONS);
    assert!(b.transitions.iter().all(|t| t.endpoint.is_some()));
}
