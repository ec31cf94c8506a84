//! The API's messages mapped from the domain snapshot (`core::snapshot`):
//! `GroupHealth`, `BackendHealth` and `GroupOverview`. The one mapping to the
//! API's wire, used by the API edge and by the cluster's forwarded probe
//! answers; nothing here computes a verdict, the phase or `routable`.

use std::time::{Duration, SystemTime};

use mcp_health_core::snapshot::{BackendSnapshot, EndpointSnapshot, GroupSnapshot};
use mcp_health_proto::v1::{self as pb, BackendHealth, EndpointHealth, GroupHealth, GroupOverview};

pub fn timestamp(t: SystemTime) -> pbjson_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn duration(d: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// One backend as the API shows it: its status (its endpoint's, or the
/// aggregate of a discovered backend's), and the facts of its first endpoint;
/// a discovered backend's endpoints each in `endpoints`, and its message says
/// how many are routable.
pub fn backend_health(b: &BackendSnapshot) -> BackendHealth {
    let first = b.endpoints.first();
    let observed = first.map(|e| &e.observed);
    let message = if b.discovered {
        b.endpoints_message()
    } else {
        first.map(EndpointSnapshot::message).unwrap_or_default()
    };
    BackendHealth {
        name: b.name.clone(),
        url: b.url.clone(),
        transport: b.transport as i32,
        auth_mode: b.auth as i32,
        status: b.status() as i32,
        routable: b.routable(),
        reason: observed.map(|o| reason(&o.reason)),
        message,
        consecutive_failures: observed.map_or(0, |o| o.verdict.consecutive_failures),
        consecutive_successes: observed.map_or(0, |o| o.verdict.consecutive_successes),
        last_latency: observed.and_then(|o| o.last_latency).map(duration),
        last_probe_time: observed.and_then(|o| o.last_probe).map(timestamp),
        last_transition_time: observed.and_then(|o| o.last_transition).map(timestamp),
        protocol_version: observed.map(|o| o.facts.protocol_version.clone()).unwrap_or_default(),
        server_name: observed.map(|o| o.facts.server_name.clone()).unwrap_or_default(),
        server_version: observed.map(|o| o.facts.server_version.clone()).unwrap_or_default(),
        tool_count: observed.and_then(|o| o.facts.tool_count),
        resource_metadata: observed.map_or(0, |o| o.facts.resource_metadata as i32),
        draining: b.drain,
        address: observed.and_then(|o| o.address).map(|a| a.to_string()).unwrap_or_default(),
        catalog_fingerprint: b.catalog.fingerprint.clone(),
        catalog_changed_time: b.catalog.changed_at.map(timestamp),
        catalog_note: b.catalog.note.clone(),
        ejection: b.ejection.as_ref().map(|j| pb::Ejection {
            cause: j.cause.clone(),
            since: Some(timestamp(j.since)),
            until: Some(timestamp(j.until)),
            count: j.count,
        }),
        endpoints: if b.discovered {
            b.endpoints.iter().map(endpoint_health).collect()
        } else {
            Vec::new()
        },
    }
}

fn reason(r: &mcp_health_core::outcome::Reason) -> pb::Reason {
    pb::Reason {
        code: r.code as i32,
        http_status: r.http_status.map(u32::from).unwrap_or(0),
        message: r.message.clone(),
    }
}

/// One endpoint of a discovered backend.
pub fn endpoint_health(e: &EndpointSnapshot) -> EndpointHealth {
    let o = &e.observed;
    EndpointHealth {
        address: o.address.map(|a| a.to_string()).unwrap_or_default(),
        status: e.status() as i32,
        routable: e.routable,
        reason: Some(reason(&o.reason)),
        message: e.message(),
        leaving: e.place.leaving,
        refused: e.place.refused.clone().unwrap_or_default(),
        priority: u32::from(e.place.priority),
        weight: u32::from(e.place.weight),
        last_latency: o.last_latency.map(duration),
        last_probe_time: o.last_probe.map(timestamp),
        last_transition_time: o.last_transition.map(timestamp),
        protocol_version: o.facts.protocol_version.clone(),
        server_version: o.facts.server_version.clone(),
        drained: e.place.drained,
    }
}

pub fn group_health(g: &GroupSnapshot) -> GroupHealth {
    GroupHealth {
        name: g.name.clone(),
        phase: g.verdict.phase as i32,
        summary: Some(g.verdict.summary),
        message: g.verdict.message.clone(),
        backends: g.backends.iter().map(backend_health).collect(),
        revision: g.sequence,
        generation: g.generation,
        source: g.source as i32,
    }
}

pub fn overview(g: &GroupSnapshot) -> GroupOverview {
    GroupOverview {
        name: g.name.clone(),
        phase: g.verdict.phase as i32,
        summary: Some(g.verdict.summary),
        message: g.verdict.message.clone(),
        source: g.source as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_health_core::outcome::{Reason, ServerFacts};
    use mcp_health_core::snapshot::{BackendSpecShown, CatalogFacts, Observed, Place};
    use mcp_health_core::verdict::Verdict;
    use mcp_health_proto::v1::{AuthMode, BackendStatus, ReasonCode, Transport};

    fn spec() -> BackendSpecShown {
        BackendSpecShown {
            name: "pods".into(),
            url: "http://pods.test:8080/mcp".into(),
            transport: Transport::StreamableHttp,
            auth: AuthMode::None,
            drain: false,
            catalog: CatalogFacts::default(),
        }
    }

    fn observed(address: &str, status: BackendStatus, code: ReasonCode) -> Observed {
        Observed {
            address: Some(address.parse().unwrap()),
            verdict: Verdict { status, ..Verdict::unknown() },
            reason: Reason::new(code, "why"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
        }
    }

    #[test]
    fn a_discovered_backend_lists_its_endpoints_and_a_single_one_none() {
        let single = backend_health(&BackendSnapshot::single(
            spec(),
            observed("10.0.0.1:8080", BackendStatus::Healthy, ReasonCode::Ok),
            None,
        ));
        assert_eq!((single.status(), single.routable, single.endpoints.len()), (BackendStatus::Healthy, true, 0));
        assert_eq!(single.address, "10.0.0.1:8080");

        let place = |leaving, refused: Option<&str>, priority, weight| Place {
            leaving,
            refused: refused.map(str::to_owned),
            priority,
            weight,
            drained: false,
        };
        let b = BackendSnapshot::discovered(
            spec(),
            vec![
                (observed("10.0.0.1:8080", BackendStatus::Healthy, ReasonCode::Ok), place(false, None, 10, 60)),
                (
                    observed("10.0.0.2:8080", BackendStatus::Unhealthy, ReasonCode::ConnectionRefused),
                    place(false, None, 10, 40),
                ),
                (observed("10.0.0.3:8080", BackendStatus::Healthy, ReasonCode::Ok), place(true, None, 0, 0)),
                (
                    observed("169.254.169.254:8080", BackendStatus::Unknown, ReasonCode::Ok),
                    place(false, Some("refused: link-local"), 0, 0),
                ),
            ],
            None,
            BackendStatus::Unhealthy,
        );
        let h = backend_health(&b);
        assert_eq!((h.status(), h.routable), (BackendStatus::Degraded, true), "one of two in DNS is dead");
        assert_eq!(h.message, "1 of 2 endpoints routable; 1 leaving DNS (draining); 1 refused");
        let rows: Vec<(&str, BackendStatus, bool, bool, &str, u32, u32)> = h
            .endpoints
            .iter()
            .map(|e| (e.address.as_str(), e.status(), e.routable, e.leaving, e.refused.as_str(), e.priority, e.weight))
            .collect();
        assert_eq!(
            rows,
            [
                ("10.0.0.1:8080", BackendStatus::Healthy, true, false, "", 10, 60),
                ("10.0.0.2:8080", BackendStatus::Unhealthy, false, false, "", 10, 40),
                ("10.0.0.3:8080", BackendStatus::Healthy, false, true, "", 0, 0),
                ("169.254.169.254:8080", BackendStatus::Unknown, false, false, "refused: link-local", 0, 0),
            ]
        );
        assert_eq!(h.endpoints[1].reason.as_ref().map(|r| r.code()), Some(ReasonCode::ConnectionRefused));
        // No endpoint at all: the caller's status, nothing to show of one.
        let none = backend_health(&BackendSnapshot::discovered(spec(), vec![], None, BackendStatus::Unhealthy));
        assert_eq!(
            (none.status(), none.routable, none.message.as_str(), none.reason),
            (BackendStatus::Unhealthy, false, "no endpoints in DNS", None)
        );
    }
}
