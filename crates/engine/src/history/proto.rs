//! A backend's history as the API's `GetBackendHistoryResponse`.

use std::time::{Duration, UNIX_EPOCH};

use super::{BackendHistory, CatalogEvent, LatencyPoint, Transition};
use crate::{duration, timestamp};
use mcp_health_proto::v1::{BackendTransition, CatalogChange, GetBackendHistoryResponse, LatencyBucket, Reason};

fn at(ms: u64) -> pbjson_types::Timestamp {
    timestamp(UNIX_EPOCH + Duration::from_millis(ms))
}

fn transition(t: &Transition) -> BackendTransition {
    BackendTransition {
        from_status: t.from as i32,
        to_status: t.to as i32,
        reason: Some(Reason {
            code: t.reason.code as i32,
            http_status: t.reason.http_status.map_or(0, u32::from),
            message: t.reason.message.to_string(),
        }),
        time: Some(at(t.at_ms)),
        latency: t.latency.map(duration),
        endpoint: t.endpoint.map(|a| a.to_string()).unwrap_or_default(),
    }
}

fn catalog_change(e: &CatalogEvent) -> CatalogChange {
    let strings = |v: &[Box<str>]| v.iter().map(ToString::to_string).collect();
    CatalogChange {
        time: Some(at(e.at_ms)),
        from_fingerprint: e.from.to_string(),
        to_fingerprint: e.to.to_string(),
        added: strings(&e.added),
        removed: strings(&e.removed),
        changed: strings(&e.changed),
    }
}

fn bucket(p: &LatencyPoint) -> LatencyBucket {
    LatencyBucket {
        start: Some(at(p.start_ms)),
        probes: p.probes,
        mean: Some(duration(p.mean)),
        max: Some(duration(p.max)),
    }
}

impl BackendHistory {
    pub fn to_proto(&self) -> GetBackendHistoryResponse {
        GetBackendHistoryResponse {
            group: self.group.clone(),
            backend: self.backend.clone(),
            since: Some(at(self.since_ms)),
            transitions: self.transitions.iter().map(transition).collect(),
            dropped_transitions: self.dropped,
            latency: self.latency.iter().map(bucket).collect(),
            status: self.status as i32,
            catalog_changes: self.catalog_changes.iter().map(catalog_change).collect(),
            ejections: self
                .ejections
                .iter()
                .map(|e| mcp_health_proto::v1::EjectionEvent {
                    time: Some(at(e.at_ms)),
                    ejected: e.ejected.is_some(),
                    cause: e.ejected.as_ref().map(|(c, _, _)| c.to_string()).unwrap_or_default(),
                    until: e.ejected.as_ref().map(|(_, u, _)| at(*u)),
                    count: e.ejected.as_ref().map_or(0, |(_, _, n)| *n),
                })
                .collect(),
            held_probes: self.held,
        }
    }
}
