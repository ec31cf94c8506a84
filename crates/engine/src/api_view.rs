//! The API's messages mapped from the domain snapshot (`core::snapshot`):
//! `GroupHealth`, `BackendHealth` and `GroupOverview`. The one mapping to the
//! API's wire, used by the API edge and by the cluster's forwarded probe
//! answers; nothing here computes a verdict, the phase or `routable`.

use std::time::{Duration, SystemTime};

use mcp_health_core::snapshot::{BackendSnapshot, GroupSnapshot};
use mcp_health_proto::v1::{self as pb, BackendHealth, GroupHealth, GroupOverview};

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

/// One backend as the API shows it: its (only) endpoint's verdict, until the
/// API has an endpoint list.
pub fn backend_health(b: &BackendSnapshot) -> BackendHealth {
    let e = b.endpoint();
    BackendHealth {
        name: b.name.clone(),
        url: b.url.clone(),
        transport: b.transport as i32,
        auth_mode: b.auth as i32,
        status: e.observed.verdict.status as i32,
        routable: b.routable(),
        reason: Some(pb::Reason {
            code: e.observed.reason.code as i32,
            http_status: e.observed.reason.http_status.map(u32::from).unwrap_or(0),
            message: e.observed.reason.message.clone(),
        }),
        message: e.message(),
        consecutive_failures: e.observed.verdict.consecutive_failures,
        consecutive_successes: e.observed.verdict.consecutive_successes,
        last_latency: e.observed.last_latency.map(duration),
        last_probe_time: e.observed.last_probe.map(timestamp),
        last_transition_time: e.observed.last_transition.map(timestamp),
        protocol_version: e.observed.facts.protocol_version.clone(),
        server_name: e.observed.facts.server_name.clone(),
        server_version: e.observed.facts.server_version.clone(),
        tool_count: e.observed.facts.tool_count,
        resource_metadata: e.observed.facts.resource_metadata as i32,
        draining: b.drain,
        address: e.observed.address.map(|a| a.to_string()).unwrap_or_default(),
        catalog_fingerprint: b.catalog.fingerprint.clone(),
        catalog_changed_time: b.catalog.changed_at.map(timestamp),
        catalog_note: b.catalog.note.clone(),
        ejection: b.ejection.as_ref().map(|j| pb::Ejection {
            cause: j.cause.clone(),
            since: Some(timestamp(j.since)),
            until: Some(timestamp(j.until)),
            count: j.count,
        }),
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
