//! Envoy's Access Log Service as a source of real-traffic outcomes
//! (`--access-log-service`): `envoy.service.accesslog.v3.AccessLogService`
//! on the gRPC listener, behind the admin guard. Each HTTP entry is mapped to
//! a backend by (upstream cluster, upstream address, request path) and its
//! outcome folded like a `ReportOutcomes` report (`Engine::report_outcomes`).
//! The cluster is the group (`mcp-health/<group>`, the EDS resource name, or
//! the group's own name); the address is one our EDS gave Envoy (the address
//! the backend's probes connected to); the path picks among backends at one
//! address. Entries that map to no backend, or carry no upstream outcome,
//! are skipped: Envoy expects no answer and the log is lossy by design.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogService;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{StreamAccessLogsMessage, StreamAccessLogsResponse};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::api::auth::AdminGuard;
use mcp_health_core::outlier::TrafficOutcome;
use mcp_health_core::snapshot::GroupSnapshot;
use mcp_health_engine::{Engine, ReportOrigin};

/// One HTTP entry as the outlier detector reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub cluster: String,
    pub upstream: SocketAddr,
    /// The request path without its query.
    pub path: String,
    pub outcome: TrafficOutcome,
}

/// What an entry says, or None when it says nothing of a backend: no
/// upstream host was picked (no address), or no upstream answer nor failure.
/// Envoy's response flags say how the upstream failed (UF connect failure,
/// UT timeout, UC/UR reset); otherwise the response code is the outcome (a
/// JSON-RPC error inside a 200 is not in an access log: gateways that see
/// it send `ReportOutcomes`).
pub fn read(entry: &HttpAccessLogEntry) -> Option<Seen> {
    let common = entry.common_properties.as_ref()?;
    let sa = match common.upstream_remote_address.as_ref()?.address.as_ref()? {
        address::Address::SocketAddress(sa) => sa,
        _ => return None,
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
        return None;
    };
    let upstream = SocketAddr::new(sa.address.parse().ok()?, u16::try_from(port).ok()?);
    let flags = common.response_flags.unwrap_or_default();
    let code = entry.response.as_ref().and_then(|r| r.response_code).map_or(0, |c| c.value);
    let outcome = if flags.upstream_connection_failure {
        TrafficOutcome::ConnectFailure
    } else if flags.upstream_request_timeout {
        TrafficOutcome::Timeout
    } else if flags.upstream_remote_reset || flags.upstream_connection_termination {
        TrafficOutcome::Reset
    } else {
        match u16::try_from(code).ok().filter(|c| (100..600).contains(c))? {
            c if (200..300).contains(&c) => TrafficOutcome::Ok,
            c => TrafficOutcome::HttpStatus(c),
        }
    };
    let path = entry.request.as_ref().map(|r| r.path.as_str()).unwrap_or_default();
    Some(Seen {
        cluster: common.upstream_cluster.clone(),
        upstream,
        path: path.split('?').next().unwrap_or_default().to_owned(),
        outcome,
    })
}

/// The group an upstream cluster names: `mcp-health/<group>` (our EDS
/// resource name) or the group's own name.
pub fn group_of(cluster: &str) -> &str {
    cluster.strip_prefix("mcp-health/").unwrap_or(cluster)
}

/// The backend of `group` at `upstream` serving `path`: the one whose probes
/// connected to that address and whose URL has that path; or, when only one
/// backend is at that address, that one.
pub fn backend_at<'g>(group: &'g GroupSnapshot, upstream: SocketAddr, path: &str) -> Option<&'g str> {
    let at: Vec<_> = group
        .backends
        .iter()
        .filter(|b| b.endpoints.iter().any(|e| e.observed.address == Some(upstream)))
        .collect();
    let by_path = at
        .iter()
        .find(|b| url::Url::parse(&b.url).is_ok_and(|u| u.path() == path))
        .or(if at.len() == 1 { at.first() } else { None })?;
    Some(by_path.name.as_str())
}

/// For an upstream cluster that names no group (Envoy's own name for the EDS
/// cluster, e.g. `mcp_tools` in clients/envoy/envoy-eds.yaml): the one
/// backend of any group at `upstream` serving `path`; None when none or
/// several are (an entry is never guessed onto a backend).
pub fn backend_anywhere<'g>(groups: &'g [std::sync::Arc<GroupSnapshot>], upstream: SocketAddr, path: &str) -> Option<(&'g str, &'g str)> {
    let at: Vec<(&str, &str, bool)> = groups
        .iter()
        .flat_map(|g| {
            g.backends
                .iter()
                .filter(|b| b.endpoints.iter().any(|e| e.observed.address == Some(upstream)))
                .map(|b| (g.name.as_str(), b.name.as_str(), url::Url::parse(&b.url).is_ok_and(|u| u.path() == path)))
        })
        .collect();
    // The one at that address serving that path; else the only one at that address.
    let by_path: Vec<_> = at.iter().filter(|(.., same_path)| *same_path).collect();
    let one = match (by_path.as_slice(), at.as_slice()) {
        ([one], _) => *one,
        ([], [one]) => one,
        _ => return None,
    };
    Some((one.0, one.1))
}

pub struct AccessLogs {
    engine: Engine,
    admin: AdminGuard,
    shutdown: CancellationToken,
}

impl AccessLogs {
    pub fn new(engine: Engine, admin: AdminGuard, shutdown: CancellationToken) -> AccessLogs {
        AccessLogs { engine, admin, shutdown }
    }
}

impl AccessLogs {
    /// The group and backend an entry is for: in the group its cluster names
    /// when there is one, else the one backend of any group at its address.
    async fn locate(&self, seen: &Seen) -> Option<(String, String)> {
        if let Ok(snapshot) = self.engine.get(group_of(&seen.cluster).to_owned()).await {
            return backend_at(&snapshot, seen.upstream, &seen.path).map(|b| (snapshot.name.clone(), b.to_owned()));
        }
        let groups = self.engine.list().await.ok()?;
        backend_anywhere(&groups, seen.upstream, &seen.path).map(|(g, b)| (g.to_owned(), b.to_owned()))
    }
}

#[tonic::async_trait]
impl AccessLogService for AccessLogs {
    async fn stream_access_logs(&self, req: Request<tonic::Streaming<StreamAccessLogsMessage>>) -> Result<Response<StreamAccessLogsResponse>, Status> {
        self.admin.check(&req, "StreamAccessLogs").await?;
        let mut messages = req.into_inner();
        loop {
            let message = tokio::select! {
                m = messages.message() => m?,
                () = self.shutdown.cancelled() => return Err(Status::unavailable("the daemon is shutting down")),
            };
            let Some(message) = message else { break };
            let Some(LogEntries::HttpLogs(logs)) = message.log_entries else { continue };
            for entry in &logs.log_entry {
                let Some(seen) = read(entry) else { continue };
                let Some((group, backend)) = self.locate(&seen).await else {
                    debug!(cluster = %seen.cluster, upstream = %seen.upstream, path = %seen.path, "access log entry for no backend");
                    continue;
                };
                // A backend deleted meanwhile: skipped like an unknown one.
                let _ = self.engine.report_outcomes(group, backend, vec![seen.outcome], ReportOrigin::Traffic).await;
            }
        }
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::data::accesslog::v3::{AccessLogCommon, HttpRequestProperties, HttpResponseProperties, ResponseFlags};
    use envoy_types::pb::google::protobuf::UInt32Value;

    /// An entry as Envoy logs it: upstream `addr` (None: no host picked), response `code`, flags.
    pub(crate) fn entry(cluster: &str, addr: Option<&str>, path: &str, code: Option<u32>, flags: ResponseFlags) -> HttpAccessLogEntry {
        let upstream = addr.map(|a| {
            let sa: SocketAddr = a.parse().unwrap();
            Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: sa.ip().to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(sa.port()))),
                    ..Default::default()
                })),
            }
        });
        HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                upstream_cluster: cluster.into(),
                upstream_remote_address: upstream,
                response_flags: Some(flags),
                ..Default::default()
            }),
            request: Some(HttpRequestProperties {
                path: path.into(),
                ..Default::default()
            }),
            response: Some(HttpResponseProperties {
                response_code: code.map(|value| UInt32Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_entry_is_read_as_the_outcome_of_its_upstream() {
        let none = ResponseFlags::default();
        let uf = ResponseFlags {
            upstream_connection_failure: true,
            ..Default::default()
        };
        let ut = ResponseFlags {
            upstream_request_timeout: true,
            ..Default::default()
        };
        let ur = ResponseFlags {
            upstream_remote_reset: true,
            ..Default::default()
        };
        let uc = ResponseFlags {
            upstream_connection_termination: true,
            ..Default::default()
        };
        let a = Some("127.0.0.1:8081");
        // (entry, outcome; None: says nothing of a backend)
        let rows = [
            (entry("mcp-health/g", a, "/mcp", Some(200), none), Some(TrafficOutcome::Ok)),
            (entry("mcp-health/g", a, "/mcp", Some(503), none), Some(TrafficOutcome::HttpStatus(503))),
            (entry("mcp-health/g", a, "/mcp", Some(404), none), Some(TrafficOutcome::HttpStatus(404))),
            // The flags say how the upstream failed, whatever code Envoy answered downstream.
            (entry("mcp-health/g", a, "/mcp", Some(503), uf), Some(TrafficOutcome::ConnectFailure)),
            (entry("mcp-health/g", a, "/mcp", Some(504), ut), Some(TrafficOutcome::Timeout)),
            (entry("mcp-health/g", a, "/mcp", Some(503), ur), Some(TrafficOutcome::Reset)),
            (entry("mcp-health/g", a, "/mcp", Some(503), uc), Some(TrafficOutcome::Reset)),
            // No host picked (e.g. no healthy upstream): no backend to blame.
            (entry("mcp-health/g", None, "/mcp", Some(503), none), None),
            // No response code and no upstream failure.
            (entry("mcp-health/g", a, "/mcp", None, none), None),
        ];
        for (e, want) in rows {
            let seen = read(&e);
            assert_eq!(seen.as_ref().map(|s| s.outcome), want, "{e:?}");
            if let Some(s) = seen {
                assert_eq!(
                    (s.cluster.as_str(), s.upstream, s.path.as_str()),
                    ("mcp-health/g", "127.0.0.1:8081".parse().unwrap(), "/mcp")
                );
            }
        }
        let q = read(&entry("g", a, "/mcp?session=1", Some(200), none)).unwrap();
        assert_eq!((q.path.as_str(), group_of(&q.cluster), group_of("mcp-health/tools")), ("/mcp", "g", "tools"));
    }

    /// A group of backends, each (name, URL, the address its probes connected to).
    fn group(name: &str, backends: &[(&str, &str, &str)]) -> std::sync::Arc<GroupSnapshot> {
        use mcp_health_core::outcome::{Reason, ServerFacts};
        use mcp_health_core::phase::group_verdict;
        use mcp_health_core::snapshot::{BackendSnapshot, BackendSpecShown, CatalogFacts, Observed};
        use mcp_health_core::verdict::Verdict;
        use mcp_health_proto::v1::{AuthMode, GroupSource, ReasonCode, Transport};
        let backends: Vec<BackendSnapshot> = backends
            .iter()
            .map(|(b, url, addr)| {
                BackendSnapshot::single(
                    BackendSpecShown {
                        name: (*b).into(),
                        url: (*url).into(),
                        transport: Transport::StreamableHttp,
                        auth: AuthMode::None,
                        drain: false,
                        catalog: CatalogFacts::default(),
                    },
                    Observed {
                        address: Some(addr.parse().unwrap()),
                        verdict: Verdict::unknown(),
                        reason: Reason::new(ReasonCode::Ok, "ok"),
                        facts: ServerFacts::default(),
                        last_latency: None,
                        last_probe: None,
                        last_transition: None,
                    },
                    None,
                )
            })
            .collect();
        std::sync::Arc::new(GroupSnapshot {
            name: name.into(),
            sequence: 1,
            generation: 1,
            source: GroupSource::Api,
            verdict: group_verdict(backends.iter().map(|b| b.view())),
            backends,
        })
    }

    /// A cluster that names no group (Envoy's own name for the EDS cluster)
    /// finds the one backend at the address and path in any group, and none
    /// when two groups have one there: an entry is never guessed.
    #[test]
    fn an_entry_of_a_cluster_named_otherwise_finds_the_one_backend_at_its_address() {
        let tools = group(
            "tools",
            &[
                ("a", "http://127.0.0.1:8081/mcp", "127.0.0.1:8081"),
                ("b", "http://127.0.0.1:8082/mcp", "127.0.0.1:8082"),
            ],
        );
        let other = group(
            "other",
            &[
                ("c", "http://127.0.0.1:8083/mcp", "127.0.0.1:8083"),
                ("d", "http://127.0.0.1:8081/v2/mcp", "127.0.0.1:8081"),
            ],
        );
        let groups = [tools, other];
        let at = |addr: &str, path: &str| backend_anywhere(&groups, addr.parse().unwrap(), path);
        assert_eq!(at("127.0.0.1:8082", "/mcp"), Some(("tools", "b")));
        assert_eq!(
            at("127.0.0.1:8083", "/anything"),
            Some(("other", "c")),
            "one backend at the address: the path is not needed"
        );
        // Two backends at :8081, in two groups: the path tells them apart ...
        assert_eq!(at("127.0.0.1:8081", "/mcp"), Some(("tools", "a")));
        assert_eq!(at("127.0.0.1:8081", "/v2/mcp"), Some(("other", "d")));
        // ... and without a match it is neither.
        assert_eq!(at("127.0.0.1:8081", "/elsewhere"), None);
        assert_eq!(at("127.0.0.1:9999", "/mcp"), None);
    }
}
