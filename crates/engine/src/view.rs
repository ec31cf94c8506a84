//! Building the API's view of groups and backends from the owner's state.
//! The phase comes from `core::phase::group_verdict` and nowhere else.

use std::time::{Duration, SystemTime};

use mcp_health_core::catalog::KnownCatalog;
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_core::phase::{BackendView, GroupVerdict, group_verdict};
use mcp_health_core::spec::ValidBackend;
use mcp_health_core::verdict::Verdict;
use mcp_health_proto::v1::{self as pb, BackendHealth, GroupHealth, GroupOverview, GroupSource};

/// What the owner knows about one backend, as the view needs it.
pub struct BackendFacts<'a> {
    pub backend: &'a ValidBackend,
    pub verdict: &'a Verdict,
    pub reason: &'a Reason,
    pub facts: &'a ServerFacts,
    pub last_latency: Option<Duration>,
    pub last_probe: Option<SystemTime>,
    pub last_transition: Option<SystemTime>,
    pub peer: Option<std::net::SocketAddr>,
    pub catalog: &'a KnownCatalog,
}

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

pub fn backend_view(b: &ValidBackend, v: &Verdict) -> BackendView {
    BackendView {
        status: v.status,
        auth: b.auth_mode,
        draining: b.spec.drain,
    }
}

/// The verdict every reader of a group sees.
pub fn verdict<'a>(backends: impl IntoIterator<Item = (&'a ValidBackend, &'a Verdict)>) -> GroupVerdict {
    group_verdict(backends.into_iter().map(|(b, v)| backend_view(b, v)))
}

pub fn backend_health(f: &BackendFacts<'_>) -> BackendHealth {
    let routable = backend_view(f.backend, f.verdict).routable();
    let message = if f.verdict.progress.is_empty() {
        f.reason.message.clone()
    } else {
        format!("{}: {}", f.verdict.progress, f.reason.message)
    };
    BackendHealth {
        name: f.backend.spec.name.clone(),
        url: f.backend.spec.url.clone(),
        transport: f.backend.transport as i32,
        auth_mode: f.backend.auth_mode as i32,
        status: f.verdict.status as i32,
        routable,
        reason: Some(pb::Reason {
            code: f.reason.code as i32,
            http_status: f.reason.http_status.map(u32::from).unwrap_or(0),
            message: f.reason.message.clone(),
        }),
        message,
        consecutive_failures: f.verdict.consecutive_failures,
        consecutive_successes: f.verdict.consecutive_successes,
        last_latency: f.last_latency.map(duration),
        last_probe_time: f.last_probe.map(timestamp),
        last_transition_time: f.last_transition.map(timestamp),
        protocol_version: f.facts.protocol_version.clone(),
        server_name: f.facts.server_name.clone(),
        server_version: f.facts.server_version.clone(),
        tool_count: f.facts.tool_count,
        resource_metadata: f.facts.resource_metadata as i32,
        draining: f.backend.spec.drain,
        address: f.peer.map(|a| a.to_string()).unwrap_or_default(),
        catalog_fingerprint: f.catalog.fingerprint.clone(),
        catalog_changed_time: f.catalog.changed_at.map(timestamp),
        catalog_note: f.catalog.note.clone(),
    }
}

pub struct GroupFacts<'a> {
    pub name: &'a str,
    pub verdict: &'a GroupVerdict,
    /// The engine sequence number of the group's last change (the proto's `revision`).
    pub sequence: u64,
    pub generation: u64,
    pub source: GroupSource,
}

pub fn group_health(g: &GroupFacts<'_>, backends: Vec<BackendHealth>) -> GroupHealth {
    GroupHealth {
        name: g.name.to_owned(),
        phase: g.verdict.phase as i32,
        summary: Some(g.verdict.summary),
        message: g.verdict.message.clone(),
        backends,
        revision: g.sequence,
        generation: g.generation,
        source: g.source as i32,
    }
}

pub fn overview(g: &GroupFacts<'_>) -> GroupOverview {
    GroupOverview {
        name: g.name.to_owned(),
        phase: g.verdict.phase as i32,
        summary: Some(g.verdict.summary),
        message: g.verdict.message.clone(),
        source: g.source as i32,
    }
}
