//! The endpoint-set record in etcd (`{prefix}/endpoints/{group}/{backend}`):
//! a DNS-discovered backend's addresses as its owner resolved them, our own
//! versioned serde type (like `record`'s verdicts), mapped from and to the
//! engine's `seam::SharedEndpoints`. Only the backend's owner resolves the
//! name and writes it; every other replica takes it as its own set, so all
//! replicas hold the same endpoints.
//!
//! - **Version 1**: JSON with `"v": 1`: the writer, the group's incarnation
//!   (`groupCreated`, as in verdict records), each member's address, SRV
//!   priority and weight and whether it is leaving DNS, the refused
//!   addresses with why, where the lookups stand (`dns`: `UNRESOLVED`,
//!   `FRESH`, `STALE` or `EXPIRED`, with `dnsDetail` for the last two) and
//!   the clamped TTL. Unknown fields are skipped, so a later binary may add
//!   optional ones; a later version must be written only once every live
//!   member advertises it (as `MemberView::record_version` does for verdicts).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use mcp_health_engine::seam::{RefusedAddr, SharedDns, SharedEndpoints, SharedMember};

/// The endpoint-set record version this binary writes.
pub const ENDPOINTS_VERSION: u32 = 1;

/// One endpoint-set record: who wrote it, for which incarnation of its group, and the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointsRecord {
    /// The member id that wrote it (the backend's owner then).
    pub writer: String,
    /// The create revision of the group key the set belongs to; None for a
    /// group not in etcd (a config-file group).
    pub group_created: Option<i64>,
    pub endpoints: SharedEndpoints,
}

impl EndpointsRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data (strings, numbers, derived structs) to a Vec cannot fail.
        serde_json::to_vec(&V1::from(self)).unwrap_or_default()
    }

    /// A record of a version this binary knows; None for bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Option<EndpointsRecord> {
        #[derive(Deserialize)]
        struct Version {
            v: Option<u32>,
        }
        match serde_json::from_slice::<Version>(bytes).ok()?.v {
            Some(ENDPOINTS_VERSION) => serde_json::from_slice::<V1>(bytes).ok()?.try_into().ok(),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1 {
    v: u32,
    writer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_created: Option<i64>,
    #[serde(default)]
    members: Vec<MemberV1>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refused: Vec<RefusedV1>,
    dns: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    dns_detail: String,
    ttl_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberV1 {
    address: String,
    #[serde(default)]
    priority: u16,
    #[serde(default)]
    weight: u16,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    leaving: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefusedV1 {
    address: String,
    reason: String,
}

impl From<&EndpointsRecord> for V1 {
    fn from(r: &EndpointsRecord) -> V1 {
        let e = &r.endpoints;
        let (dns, dns_detail) = match &e.dns {
            SharedDns::Unresolved => ("UNRESOLVED", String::new()),
            SharedDns::Fresh => ("FRESH", String::new()),
            SharedDns::Stale { detail } => ("STALE", detail.clone()),
            SharedDns::Expired { detail } => ("EXPIRED", detail.clone()),
        };
        V1 {
            v: ENDPOINTS_VERSION,
            writer: r.writer.clone(),
            group_created: r.group_created,
            members: e
                .members
                .iter()
                .map(|m| MemberV1 {
                    address: m.address.to_string(),
                    priority: m.priority,
                    weight: m.weight,
                    leaving: m.leaving,
                })
                .collect(),
            refused: e
                .refused
                .iter()
                .map(|r| RefusedV1 {
                    address: r.addr.to_string(),
                    reason: r.reason.clone(),
                })
                .collect(),
            dns: dns.to_owned(),
            dns_detail,
            ttl_ms: u64::try_from(e.ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Why bytes that parse as JSON are not a record.
#[derive(Debug)]
struct NotARecord;

impl TryFrom<V1> for EndpointsRecord {
    type Error = NotARecord;

    fn try_from(v: V1) -> Result<EndpointsRecord, NotARecord> {
        let address = |s: &str| s.parse::<SocketAddr>().map_err(|_| NotARecord);
        let dns = match v.dns.as_str() {
            "UNRESOLVED" => SharedDns::Unresolved,
            "FRESH" => SharedDns::Fresh,
            "STALE" => SharedDns::Stale { detail: v.dns_detail },
            "EXPIRED" => SharedDns::Expired { detail: v.dns_detail },
            _ => return Err(NotARecord),
        };
        Ok(EndpointsRecord {
            writer: v.writer,
            group_created: v.group_created,
            endpoints: SharedEndpoints {
                members: v
                    .members
                    .iter()
                    .map(|m| {
                        Ok(SharedMember {
                            address: address(&m.address)?,
                            priority: m.priority,
                            weight: m.weight,
                            leaving: m.leaving,
                        })
                    })
                    .collect::<Result<_, NotARecord>>()?,
                refused: v
                    .refused
                    .into_iter()
                    .map(|r| {
                        Ok(RefusedAddr {
                            addr: address(&r.address)?,
                            reason: r.reason,
                        })
                    })
                    .collect::<Result<_, NotARecord>>()?,
                dns,
                ttl: Duration::from_millis(v.ttl_ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(last: u8, port: u16, leaving: bool) -> SharedMember {
        SharedMember {
            address: SocketAddr::from(([127, 0, 0, last], port)),
            priority: u16::from(last % 2),
            weight: u16::from(last) * 10,
            leaving,
        }
    }

    fn record(members: Vec<SharedMember>, dns: SharedDns) -> EndpointsRecord {
        EndpointsRecord {
            writer: "00000000000000aa".into(),
            group_created: Some(42),
            endpoints: SharedEndpoints {
                members,
                refused: vec![RefusedAddr {
                    addr: "169.254.169.254:80".parse().unwrap(),
                    reason: "link-local (cloud metadata)".into(),
                }],
                dns,
                ttl: Duration::from_secs(30),
            },
        }
    }

    #[test]
    fn every_set_round_trips() {
        let v6 = SharedMember {
            address: "[fd00::1]:443".parse().unwrap(),
            priority: 0,
            weight: 0,
            leaving: false,
        };
        let cases = [
            record(vec![], SharedDns::Unresolved),
            record(vec![member(2, 8080, false), member(3, 8081, true), v6], SharedDns::Fresh),
            record(vec![member(2, 8080, false)], SharedDns::Stale { detail: "SERVFAIL".into() }),
            record(vec![member(2, 8080, true)], SharedDns::Expired { detail: "timed out".into() }),
            EndpointsRecord {
                group_created: None,
                ..record(vec![], SharedDns::Fresh)
            },
        ];
        for r in cases {
            assert_eq!(EndpointsRecord::decode(&r.encode()), Some(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn version_1_is_plain_json() {
        let r = record(
            vec![member(2, 8080, false), member(3, 8081, true)],
            SharedDns::Stale { detail: "SERVFAIL".into() },
        );
        let json: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "v": 1,
                "writer": "00000000000000aa",
                "groupCreated": 42,
                "members": [
                    {"address": "127.0.0.2:8080", "priority": 0, "weight": 20},
                    {"address": "127.0.0.3:8081", "priority": 1, "weight": 30, "leaving": true},
                ],
                "refused": [{"address": "169.254.169.254:80", "reason": "link-local (cloud metadata)"}],
                "dns": "STALE",
                "dnsDetail": "SERVFAIL",
                "ttlMs": 30000,
            })
        );
        // A later binary's optional fields are skipped; a set written by hand in the documented format reads.
        let later = br#"{"v":1,"writer":"b","members":[{"address":"127.0.0.9:80","zone":"x"}],"dns":"FRESH","ttlMs":5000,"newField":true}"#;
        let read = EndpointsRecord::decode(later).unwrap();
        assert_eq!(
            read.endpoints.members,
            [SharedMember {
                address: "127.0.0.9:80".parse().unwrap(),
                priority: 0,
                weight: 0,
                leaving: false
            }]
        );
        assert_eq!(read.endpoints.dns, SharedDns::Fresh);
    }

    #[test]
    fn other_versions_and_bad_values_are_not_records() {
        for bytes in [
            &br#"{"v":2,"writer":"a","dns":"FRESH","ttlMs":1}"#[..],
            br#"{"writer":"a","dns":"FRESH","ttlMs":1}"#,
            br#"{"v":1,"writer":"a","dns":"SOMETIMES","ttlMs":1}"#,
            br#"{"v":1,"writer":"a","members":[{"address":"pods.test:80"}],"dns":"FRESH","ttlMs":1}"#,
            br#"{"v":1,"writer":"a","refused":[{"address":"x","reason":"y"}],"dns":"FRESH","ttlMs":1}"#,
            b"not json",
        ] {
            assert_eq!(EndpointsRecord::decode(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
