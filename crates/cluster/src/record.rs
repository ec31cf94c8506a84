//! The verdict record in etcd (`{prefix}/verdicts/{group}/{backend}`): our
//! own versioned serde type, not the API's message, so a new API field never
//! changes what replicas exchange, and two binaries of different versions
//! read each other's records during a rolling upgrade.
//!
//! - **Version 1** (every binary before records were versioned): JSON
//!   `{writer, progress, health}`, `health` being the API's `BackendHealth`
//!   in proto3 JSON. Kept, read and written, for mixed clusters.
//! - **Version 2**: JSON with `"v": 2` and plain fields (status and codes by
//!   their proto enum names, times in Unix milliseconds).
//!
//! - **The group's incarnation** (`groupCreated`, version 2 only): the
//!   etcd create revision of the group key the verdict was computed for. The
//!   write is fenced on it (`verdicts`) and readers ignore a record of
//!   another incarnation (`shared`), so a verdict of a deleted group that
//!   reaches etcd late is never taken for the group applied again. A
//!   version-1 record has none: an old member writes it fenced by its lease
//!   only, and a new reader takes it only if it was written after the
//!   incarnation it holds was created (its mod revision); an old reader
//!   never sees version 2 (below), and a version-2 reader from before the
//!   field ignores it (unknown fields are skipped).
//!
//! - **The owner's outlier ejection** (`ejection`, an optional field of both
//!   versions, added after them): cause, count, since and until (the
//!   owner's wall clock, in Unix milliseconds, as every replica shows them)
//!   and `remainingMs`, the time left when the owner shared it (what a
//!   replica with another clock counts from when it takes the record).
//!   Absent when the backend is not ejected. A binary from before the field
//!   skips it (unknown fields are ignored in both versions), and this
//!   binary reads a record without it as "not ejected", so adding it needed
//!   no new version; a mixed cluster shares ejections among the members that
//!   read it.
//!
//! Every binary reads every version it knows. A writer writes the highest
//! version that every live member advertises (`Member::records`; a member
//! that advertises none is at version 1), so an old replica never meets a
//! record it cannot read, and the cluster moves to version 2 once the last
//! old replica is gone.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_core::verdict::Verdict;
use mcp_health_engine::seam::{CatalogFacts, Ejection, Observed, SharedEjection, SharedVerdict};
use mcp_health_engine::{duration, timestamp};
use mcp_health_proto::v1::{BackendHealth, BackendStatus, Reason as ReasonMessage, ReasonCode, ResourceMetadataState};

/// The highest record version this binary reads and writes (what it advertises).
pub const RECORD_VERSION: u32 = 2;

/// One verdict record: who wrote it, for which incarnation of its group, and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictRecord {
    /// The member id that wrote it.
    pub writer: String,
    /// The create revision of the group key the verdict belongs to; None for
    /// a group not in etcd (a config-file group) and in version 1.
    pub group_created: Option<i64>,
    pub verdict: SharedVerdict,
}

impl VerdictRecord {
    /// The record in `version`'s format (1, or 2 and above: this binary's).
    pub fn encode(&self, version: u32) -> Vec<u8> {
        // Serializing plain data (strings, numbers, derived structs) to a Vec
        // cannot fail.
        if version >= 2 {
            serde_json::to_vec(&V2::from(self)).unwrap_or_default()
        } else {
            serde_json::to_vec(&V1::from(self)).unwrap_or_default()
        }
    }

    /// A record of any version this binary knows; None for bytes that are
    /// not one (or a version newer than this binary, which the writers' rule
    /// never produces while this binary is a member).
    pub fn decode(bytes: &[u8]) -> Option<VerdictRecord> {
        #[derive(Deserialize)]
        struct Version {
            v: Option<u32>,
        }
        match serde_json::from_slice::<Version>(bytes).ok()?.v {
            None => serde_json::from_slice::<V1>(bytes).ok().map(VerdictRecord::from),
            Some(2) => serde_json::from_slice::<V2>(bytes).ok()?.try_into().ok(),
            Some(_) => None,
        }
    }

    /// The status, whatever the record's version (for logs and checkers).
    pub fn status(&self) -> BackendStatus {
        self.verdict.observed.verdict.status
    }
}

/// Version 1, exactly as binaries before versioning wrote and read it.
#[derive(Serialize, Deserialize)]
struct V1 {
    writer: String,
    progress: String,
    health: BackendHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ejection: Option<EjectionJson>,
}

/// The owner's ejection, in both versions (optional: absent, not ejected).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
struct EjectionJson {
    cause: String,
    count: u32,
    since_unix_ms: u64,
    until_unix_ms: u64,
    remaining_ms: u64,
}

impl From<&SharedEjection> for EjectionJson {
    fn from(e: &SharedEjection) -> EjectionJson {
        EjectionJson {
            cause: e.ejection.cause.clone(),
            count: e.ejection.count,
            since_unix_ms: unix_ms(e.ejection.since),
            until_unix_ms: unix_ms(e.ejection.until),
            remaining_ms: u64::try_from(e.remaining.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl From<EjectionJson> for SharedEjection {
    fn from(e: EjectionJson) -> SharedEjection {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        SharedEjection {
            ejection: Ejection {
                cause: e.cause,
                since: at(e.since_unix_ms),
                until: at(e.until_unix_ms),
                count: e.count,
            },
            remaining: Duration::from_millis(e.remaining_ms),
        }
    }
}

impl From<&VerdictRecord> for V1 {
    fn from(r: &VerdictRecord) -> V1 {
        let s = &r.verdict.observed;
        let catalog = &r.verdict.catalog;
        V1 {
            writer: r.writer.clone(),
            progress: s.verdict.progress.clone(),
            // The fields a version-1 reader takes (its `take_remote`); the
            // rest it recomputes from its own spec.
            health: BackendHealth {
                status: s.verdict.status as i32,
                consecutive_failures: s.verdict.consecutive_failures,
                consecutive_successes: s.verdict.consecutive_successes,
                reason: Some(ReasonMessage {
                    code: s.reason.code as i32,
                    http_status: s.reason.http_status.map_or(0, u32::from),
                    message: s.reason.message.clone(),
                }),
                last_latency: s.last_latency.map(duration),
                last_probe_time: s.last_probe.map(timestamp),
                last_transition_time: s.last_transition.map(timestamp),
                protocol_version: s.facts.protocol_version.clone(),
                server_name: s.facts.server_name.clone(),
                server_version: s.facts.server_version.clone(),
                tool_count: s.facts.tool_count,
                resource_metadata: s.facts.resource_metadata as i32,
                address: s.address.map(|a| a.to_string()).unwrap_or_default(),
                // Binaries before the catalog fields ignore these.
                catalog_fingerprint: catalog.fingerprint.clone(),
                catalog_changed_time: catalog.changed_at.map(timestamp),
                catalog_note: catalog.note.clone(),
                ..Default::default()
            },
            ejection: r.verdict.ejection.as_ref().map(EjectionJson::from),
        }
    }
}

impl From<V1> for VerdictRecord {
    fn from(v: V1) -> VerdictRecord {
        let h = v.health;
        let reason = h.reason.map_or_else(
            || Reason::new(ReasonCode::NotProbed, "not probed yet"),
            |r| Reason {
                code: ReasonCode::try_from(r.code).unwrap_or(ReasonCode::Unspecified),
                http_status: u16::try_from(r.http_status).ok().filter(|s| *s != 0),
                message: r.message,
            },
        );
        let time = |t: Option<pbjson_types::Timestamp>| -> Option<SystemTime> {
            let t = t?;
            Some(SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(t.seconds).ok()?, u32::try_from(t.nanos).ok()?))
        };
        VerdictRecord {
            writer: v.writer,
            group_created: None,
            verdict: SharedVerdict {
                observed: Observed {
                    verdict: Verdict {
                        status: BackendStatus::try_from(h.status).unwrap_or(BackendStatus::Unknown),
                        consecutive_failures: h.consecutive_failures,
                        consecutive_successes: h.consecutive_successes,
                        progress: v.progress,
                    },
                    reason,
                    facts: ServerFacts {
                        protocol_version: h.protocol_version,
                        server_name: h.server_name,
                        server_version: h.server_version,
                        tool_count: h.tool_count,
                        resource_metadata: ResourceMetadataState::try_from(h.resource_metadata).unwrap_or_default(),
                        catalog: None,
                    },
                    last_latency: h
                        .last_latency
                        .map(|d| Duration::new(u64::try_from(d.seconds).unwrap_or(0), u32::try_from(d.nanos).unwrap_or(0))),
                    last_probe: time(h.last_probe_time),
                    last_transition: time(h.last_transition_time),
                    address: h.address.parse().ok(),
                },
                catalog: CatalogFacts {
                    fingerprint: h.catalog_fingerprint,
                    changed_at: time(h.catalog_changed_time),
                    note: h.catalog_note,
                },
                ejection: v.ejection.map(SharedEjection::from),
            },
        }
    }
}

/// Version 2: plain values; enums by their proto names, which never change.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2 {
    v: u32,
    writer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_created: Option<i64>,
    status: String,
    consecutive_failures: u32,
    consecutive_successes: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    progress: String,
    reason: ReasonV2,
    facts: FactsV2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_latency_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_probe_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_transition_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default, skip_serializing_if = "CatalogV2::is_empty")]
    catalog: CatalogV2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ejection: Option<EjectionJson>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CatalogV2 {
    #[serde(skip_serializing_if = "String::is_empty")]
    fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_unix_ms: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
}

impl CatalogV2 {
    fn is_empty(&self) -> bool {
        self.fingerprint.is_empty() && self.changed_unix_ms.is_none() && self.note.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasonV2 {
    code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    message: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FactsV2 {
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    server_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    server_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_metadata: Option<String>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl From<&VerdictRecord> for V2 {
    fn from(r: &VerdictRecord) -> V2 {
        let s = &r.verdict.observed;
        let catalog = &r.verdict.catalog;
        V2 {
            v: 2,
            writer: r.writer.clone(),
            group_created: r.group_created,
            status: s.verdict.status.as_str_name().to_owned(),
            consecutive_failures: s.verdict.consecutive_failures,
            consecutive_successes: s.verdict.consecutive_successes,
            progress: s.verdict.progress.clone(),
            reason: ReasonV2 {
                code: s.reason.code.as_str_name().to_owned(),
                http_status: s.reason.http_status,
                message: s.reason.message.clone(),
            },
            facts: FactsV2 {
                protocol_version: s.facts.protocol_version.clone(),
                server_name: s.facts.server_name.clone(),
                server_version: s.facts.server_version.clone(),
                tool_count: s.facts.tool_count,
                resource_metadata: (s.facts.resource_metadata != ResourceMetadataState::Unspecified)
                    .then(|| s.facts.resource_metadata.as_str_name().to_owned()),
            },
            last_latency_us: s.last_latency.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            last_probe_unix_ms: s.last_probe.map(unix_ms),
            last_transition_unix_ms: s.last_transition.map(unix_ms),
            address: s.address.map(|a| a.to_string()),
            catalog: CatalogV2 {
                fingerprint: catalog.fingerprint.clone(),
                changed_unix_ms: catalog.changed_at.map(unix_ms),
                note: catalog.note.clone(),
            },
            ejection: r.verdict.ejection.as_ref().map(EjectionJson::from),
        }
    }
}

/// A version-2 record naming a status or code this binary does not know.
#[derive(Debug)]
struct UnknownName;

impl TryFrom<V2> for VerdictRecord {
    type Error = UnknownName;

    fn try_from(v: V2) -> Result<VerdictRecord, UnknownName> {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        Ok(VerdictRecord {
            writer: v.writer,
            group_created: v.group_created,
            verdict: SharedVerdict {
                observed: Observed {
                    verdict: Verdict {
                        status: BackendStatus::from_str_name(&v.status).ok_or(UnknownName)?,
                        consecutive_failures: v.consecutive_failures,
                        consecutive_successes: v.consecutive_successes,
                        progress: v.progress,
                    },
                    reason: Reason {
                        code: ReasonCode::from_str_name(&v.reason.code).ok_or(UnknownName)?,
                        http_status: v.reason.http_status,
                        message: v.reason.message,
                    },
                    facts: ServerFacts {
                        protocol_version: v.facts.protocol_version,
                        server_name: v.facts.server_name,
                        server_version: v.facts.server_version,
                        tool_count: v.facts.tool_count,
                        resource_metadata: match v.facts.resource_metadata {
                            None => ResourceMetadataState::Unspecified,
                            Some(name) => ResourceMetadataState::from_str_name(&name).ok_or(UnknownName)?,
                        },
                        catalog: None,
                    },
                    last_latency: v.last_latency_us.map(Duration::from_micros),
                    last_probe: v.last_probe_unix_ms.map(at),
                    last_transition: v.last_transition_unix_ms.map(at),
                    address: v.address.and_then(|a| a.parse().ok()),
                },
                catalog: CatalogFacts {
                    fingerprint: v.catalog.fingerprint,
                    changed_at: v.catalog.changed_unix_ms.map(at),
                    note: v.catalog.note,
                },
                ejection: v.ejection.map(SharedEjection::from),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> VerdictRecord {
        VerdictRecord {
            writer: "00000000000000aa".into(),
            group_created: None,
            verdict: SharedVerdict {
                observed: Observed {
                    verdict: Verdict {
                        status: BackendStatus::Degraded,
                        consecutive_failures: 0,
                        consecutive_successes: 4,
                        progress: "1 of 3 failed probes".into(),
                    },
                    reason: Reason {
                        code: ReasonCode::HttpStatus,
                        http_status: Some(503),
                        message: "HTTP 503".into(),
                    },
                    facts: ServerFacts {
                        protocol_version: "2025-06-18".into(),
                        server_name: "srv".into(),
                        server_version: "1.2.3".into(),
                        tool_count: Some(7),
                        resource_metadata: ResourceMetadataState::Valid,
                        catalog: None,
                    },
                    last_latency: Some(Duration::from_micros(12_345)),
                    // Whole milliseconds: version 2 keeps times to the millisecond.
                    last_probe: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123)),
                    last_transition: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_000)),
                    address: Some("127.0.0.1:8080".parse().unwrap()),
                },
                catalog: CatalogFacts::default(),
                ejection: None,
            },
        }
    }

    fn with_catalog() -> VerdictRecord {
        let mut r = full();
        r.verdict.catalog = CatalogFacts {
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            changed_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_100_000)),
            note: "gave up after 16 pages".into(),
        };
        r
    }

    /// Ejected by its owner; times in whole milliseconds, as the record keeps them.
    fn with_ejection() -> VerdictRecord {
        let mut r = full();
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_500);
        r.verdict.ejection = Some(SharedEjection {
            ejection: Ejection {
                cause: "5 consecutive failures in real traffic, the last: HTTP 503".into(),
                since,
                until: since + Duration::from_secs(60),
                count: 2,
            },
            remaining: Duration::from_millis(59_750),
        });
        r
    }

    fn empty() -> VerdictRecord {
        VerdictRecord {
            writer: "b".into(),
            group_created: None,
            verdict: SharedVerdict {
                observed: Observed {
                    verdict: Verdict::unknown(),
                    reason: Reason::new(ReasonCode::NotProbed, "not probed yet"),
                    facts: ServerFacts::default(),
                    last_latency: None,
                    last_probe: None,
                    last_transition: None,
                    address: None,
                },
                catalog: CatalogFacts::default(),
                ejection: None,
            },
        }
    }

    #[test]
    fn every_version_round_trips() {
        for record in [full(), empty(), with_catalog(), with_ejection()] {
            for version in [1, 2] {
                let bytes = record.encode(version);
                assert_eq!(
                    VerdictRecord::decode(&bytes).as_ref(),
                    Some(&record),
                    "version {version}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }

    /// The group's incarnation is in version 2 only: version 1 (the old
    /// binary's format) has no place for it and reads back without one.
    #[test]
    fn the_group_incarnation_is_kept_in_version_2_only() {
        let mut record = full();
        record.group_created = Some(4_711);
        let json: serde_json::Value = serde_json::from_slice(&record.encode(2)).unwrap();
        assert_eq!(json["groupCreated"], 4_711);
        assert_eq!(VerdictRecord::decode(&record.encode(2)), Some(record.clone()));
        let v1 = record.encode(1);
        assert!(!String::from_utf8_lossy(&v1).contains("4711"), "{}", String::from_utf8_lossy(&v1));
        assert_eq!(VerdictRecord::decode(&v1).map(|r| r.group_created), Some(None));
        // Absent (a config-file group), the field is not written at all.
        let json: serde_json::Value = serde_json::from_slice(&full().encode(2)).unwrap();
        assert!(json.get("groupCreated").is_none(), "{json}");
    }

    /// A record exactly as a binary from before versioning wrote it (its
    /// `SharedVerdict { writer, progress, health: BackendHealth }` as JSON):
    /// this binary reads it, and what this binary writes at version 1 has
    /// the same shape, so such a binary reads ours.
    #[test]
    fn version_1_is_the_format_binaries_before_versioning_wrote() {
        let old = br#"{"writer":"00000000000000aa","progress":"1 of 3 failed probes","health":{"name":"a","url":"http://127.0.0.1:8080/mcp","transport":"TRANSPORT_STREAMABLE_HTTP","status":"BACKEND_STATUS_DEGRADED","routable":true,"reason":{"code":"REASON_CODE_HTTP_STATUS","httpStatus":503,"message":"HTTP 503"},"consecutiveSuccesses":4,"lastLatency":"0.012345s","lastProbeTime":"2025-11-24T16:00:00.123+00:00","lastTransitionTime":"2025-11-24T16:00:00+00:00","protocolVersion":"2025-06-18","serverName":"srv","serverVersion":"1.2.3","toolCount":7,"resourceMetadata":"RESOURCE_METADATA_STATE_VALID","address":"127.0.0.1:8080"}}"#;
        assert_eq!(VerdictRecord::decode(old), Some(full()));
        // What we write at version 1 parses as the old struct did, with the same values.
        let ours: serde_json::Value = serde_json::from_slice(&full().encode(1)).unwrap();
        let theirs: serde_json::Value = serde_json::from_slice(old).unwrap();
        assert!(ours.get("v").is_none(), "an old reader needs no version field: {ours}");
        for field in [
            "status",
            "reason",
            "consecutiveSuccesses",
            "lastLatency",
            "lastProbeTime",
            "toolCount",
            "address",
            "serverName",
        ] {
            assert_eq!(ours["health"][field], theirs["health"][field], "{field}");
        }
        assert_eq!((&ours["writer"], &ours["progress"]), (&theirs["writer"], &theirs["progress"]));
    }

    /// The ejection is an optional field, added without a new version: a
    /// record without it (any binary from before, or a backend not ejected)
    /// reads as not ejected, the field is all a record with it adds (so an
    /// older reader, which skips unknown fields, reads the rest the same),
    /// and an old version-1 record with it beside its fields reads it.
    #[test]
    fn the_ejection_is_an_optional_field_of_both_versions() {
        for version in [1, 2] {
            let with: serde_json::Value = serde_json::from_slice(&with_ejection().encode(version)).unwrap();
            let mut without = with.clone();
            let ejection = without.as_object_mut().unwrap().remove("ejection").expect("written when ejected");
            assert_eq!(ejection["remainingMs"], 59_750, "version {version}: {ejection}");
            assert_eq!(ejection["sinceUnixMs"], 1_764_000_000_500u64, "version {version}: {ejection}");
            assert_eq!(ejection["count"], 2);
            // The rest is exactly the record as it was before the field.
            let plain: serde_json::Value = serde_json::from_slice(&full().encode(version)).unwrap();
            assert_eq!(without, plain, "version {version}");
            assert!(plain.get("ejection").is_none(), "not written when not ejected: {plain}");
            // A record without it (an older writer) reads as not ejected.
            let read = VerdictRecord::decode(&serde_json::to_vec(&without).unwrap()).unwrap();
            assert_eq!(read, full(), "version {version}");
        }
        // An older binary's reader skips the field: its structs are these
        // without it, and none denies unknown fields.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OlderV2 {
            v: u32,
            writer: String,
            status: String,
            reason: ReasonV2,
        }
        let older: OlderV2 = serde_json::from_slice(&with_ejection().encode(2)).expect("an older reader reads it");
        assert_eq!((older.v, older.status.as_str()), (2, "BACKEND_STATUS_DEGRADED"));
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OlderV1 {
            writer: String,
            progress: String,
            health: BackendHealth,
        }
        let older: OlderV1 = serde_json::from_slice(&with_ejection().encode(1)).expect("an older reader reads it");
        assert_eq!(older.health.status, BackendStatus::Degraded as i32);
    }

    #[test]
    fn version_2_is_plain_and_says_its_version() {
        let json: serde_json::Value = serde_json::from_slice(&full().encode(2)).unwrap();
        assert_eq!(json["v"], 2);
        assert_eq!(json["status"], "BACKEND_STATUS_DEGRADED");
        assert_eq!(json["reason"]["code"], "REASON_CODE_HTTP_STATUS");
        assert_eq!(json["lastProbeUnixMs"], 1_764_000_000_123u64);
        assert!(json.get("health").is_none(), "no API message inside: {json}");
    }

    #[test]
    fn unknown_versions_and_names_are_not_records() {
        for bytes in [
            &br#"{"v":3,"writer":"a"}"#[..],
            br#"{"v":2,"writer":"a","status":"BACKEND_STATUS_SOMETHING_NEW","consecutiveFailures":0,"consecutiveSuccesses":0,"reason":{"code":"REASON_CODE_OK","message":""},"facts":{}}"#,
            b"not json",
            b"[]",
        ] {
            assert_eq!(VerdictRecord::decode(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
