//! What a group becomes in Envoy's EDS: the resource name, one
//! `ClusterLoadAssignment` per group, one `LbEndpoint` per backend, and the one
//! function from a backend's verdict to Envoy's `health_status`. Pure: no I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint};
use envoy_types::pb::google::protobuf::{Struct, Value, value};

use crate::core::verdict::is_routable;
use crate::proto::v1::{AuthMode, BackendHealth, BackendStatus, GroupHealth, ReasonCode};

/// Every group is served as the resource `mcp-health/<group>` (a cluster's
/// `eds_cluster_config.service_name`).
pub const RESOURCE_PREFIX: &str = "mcp-health/";

/// The `filter_metadata` namespace of each endpoint's metadata.
pub const METADATA_NAMESPACE: &str = "mcp-health";

/// The resource name of a group.
pub fn resource_name(group: &str) -> String {
    format!("{RESOURCE_PREFIX}{group}")
}

/// The group a resource name stands for; None for names outside the prefix,
/// which are not ours and do not exist.
pub fn group_of(resource: &str) -> Option<&str> {
    resource.strip_prefix(RESOURCE_PREFIX).filter(|g| !g.is_empty())
}

/// Envoy's health status of one backend: the verdict, as routable as the phase
/// counts it (`core::verdict::is_routable`), with the operator's drain over it.
///
/// | verdict | auth mode | draining | `health_status` |
/// |---|---|---|---|
/// | any | any | yes | DRAINING |
/// | HEALTHY | any | no | HEALTHY |
/// | DEGRADED | any | no | DEGRADED |
/// | UNAUTHENTICATED | PER_USER | no | HEALTHY (routable: the 401 proves it is up) |
/// | UNAUTHENTICATED | other | no | UNHEALTHY (a misconfiguration) |
/// | UNHEALTHY | any | no | UNHEALTHY |
/// | UNKNOWN | any | no | UNKNOWN (not probed yet) |
pub fn endpoint_health(status: BackendStatus, auth: AuthMode, draining: bool) -> HealthStatus {
    if draining {
        return HealthStatus::Draining;
    }
    match status {
        BackendStatus::Healthy => HealthStatus::Healthy,
        BackendStatus::Degraded => HealthStatus::Degraded,
        BackendStatus::Unauthenticated if is_routable(status, auth) => HealthStatus::Healthy,
        BackendStatus::Unauthenticated | BackendStatus::Unhealthy => HealthStatus::Unhealthy,
        BackendStatus::Unknown | BackendStatus::Unspecified => HealthStatus::Unknown,
    }
}

/// Where a backend's URL points: its host (an IP literal or a name) and port.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let u = url::Url::parse(url).ok()?;
    let port = u.port_or_known_default()?;
    let host = match u.host()? {
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
        url::Host::Domain(d) => d.to_owned(),
    };
    Some((host, port))
}

fn path_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_default()
}

fn string(s: impl Into<String>) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.into())),
    }
}

/// The endpoint metadata under [`METADATA_NAMESPACE`]: the backend's name,
/// group, MCP path, negotiated protocol revision, verdict, reason code and
/// whether it is draining, for routes (`metadata_match`) and access logs.
fn metadata(group: &str, b: &BackendHealth) -> Metadata {
    let reason = b.reason.as_ref().map(|r| r.code).and_then(|c| ReasonCode::try_from(c).ok()).unwrap_or_default();
    let status = BackendStatus::try_from(b.status).unwrap_or_default();
    let fields = [
        ("backend", string(&b.name)),
        ("group", string(group)),
        ("path", string(path_of(&b.url))),
        ("protocol_version", string(&b.protocol_version)),
        ("status", string(status.as_str_name())),
        ("reason", string(reason.as_str_name())),
        (
            "draining",
            Value {
                kind: Some(value::Kind::BoolValue(b.draining)),
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Metadata {
        filter_metadata: HashMap::from([(METADATA_NAMESPACE.to_owned(), Struct { fields })]),
        ..Default::default()
    }
}

/// One backend as an `LbEndpoint`, or None when its address is unknown (a
/// host name that did not resolve). `resolved` is the address of a named host.
pub fn lb_endpoint(group: &str, b: &BackendHealth, resolved: Option<IpAddr>) -> Option<LbEndpoint> {
    let (host, port) = url_host_port(&b.url)?;
    let (ip, hostname) = match host.parse::<IpAddr>() {
        Ok(ip) => (ip, String::new()),
        Err(_) => (resolved?, host),
    };
    let status = BackendStatus::try_from(b.status).unwrap_or_default();
    let auth = AuthMode::try_from(b.auth_mode).unwrap_or_default();
    Some(LbEndpoint {
        health_status: endpoint_health(status, auth, b.draining) as i32,
        metadata: Some(metadata(group, b)),
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
                    ..Default::default()
                })),
            }),
            hostname,
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// A group as one `ClusterLoadAssignment` named [`resource_name`], every
/// backend in one locality. `resolve` gives the address of a named host.
pub fn cluster_load_assignment(group: &GroupHealth, resolve: impl Fn(&str) -> Option<IpAddr>) -> ClusterLoadAssignment {
    let lb_endpoints = group
        .backends
        .iter()
        .filter_map(|b| {
            let host = url_host_port(&b.url).map(|(h, _)| h).unwrap_or_default();
            lb_endpoint(&group.name, b, resolve(&host))
        })
        .collect::<Vec<_>>();
    ClusterLoadAssignment {
        cluster_name: resource_name(&group.name),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// The assignment of a name under the prefix whose group does not exist: no
/// endpoints, so Envoy sends the cluster no traffic.
pub fn empty_assignment(resource: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: resource.to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::Reason;

    /// Whether Envoy load-balances to a host with this status (UNKNOWN counts
    /// as healthy in Envoy; DEGRADED is used when too few are HEALTHY).
    fn envoy_routes(h: HealthStatus) -> bool {
        matches!(h, HealthStatus::Healthy | HealthStatus::Degraded | HealthStatus::Unknown)
    }

    #[test]
    fn health_mapping_table() {
        use AuthMode::*;
        use BackendStatus as S;
        use HealthStatus as H;
        let table = [
            (S::Healthy, None, false, H::Healthy),
            (S::Degraded, None, false, H::Degraded),
            (S::Unauthenticated, PerUser, false, H::Healthy),
            (S::Unauthenticated, None, false, H::Unhealthy),
            (S::Unauthenticated, StaticHeader, false, H::Unhealthy),
            (S::Unauthenticated, Oauth2ClientCredentials, false, H::Unhealthy),
            (S::Unhealthy, PerUser, false, H::Unhealthy),
            (S::Unknown, None, false, H::Unknown),
            (S::Healthy, None, true, H::Draining),
            (S::Unauthenticated, PerUser, true, H::Draining),
            (S::Unhealthy, None, true, H::Draining),
            (S::Unknown, None, true, H::Draining),
        ];
        for (status, auth, draining, want) in table {
            assert_eq!(endpoint_health(status, auth, draining), want, "{status:?} {auth:?} draining={draining}");
        }
    }

    #[test]
    fn envoy_routes_exactly_what_the_phase_counts_routable_once_probed() {
        use AuthMode::*;
        for status in [
            BackendStatus::Healthy,
            BackendStatus::Degraded,
            BackendStatus::Unhealthy,
            BackendStatus::Unauthenticated,
        ] {
            for auth in [None, PerUser, StaticHeader, Oauth2ClientCredentials] {
                for draining in [false, true] {
                    let routable = !draining && is_routable(status, auth);
                    assert_eq!(
                        envoy_routes(endpoint_health(status, auth, draining)),
                        routable,
                        "{status:?} {auth:?} {draining}"
                    );
                }
            }
        }
    }

    fn backend(name: &str, url: &str, status: BackendStatus, auth: AuthMode) -> BackendHealth {
        BackendHealth {
            name: name.into(),
            url: url.into(),
            status: status as i32,
            auth_mode: auth as i32,
            protocol_version: "2025-06-18".into(),
            reason: Some(Reason {
                code: ReasonCode::Ok as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_group_becomes_one_assignment_with_addresses_metadata_and_health() {
        let group = GroupHealth {
            name: "tools".into(),
            backends: vec![
                backend("a", "http://127.0.0.1:8081/mcp", BackendStatus::Healthy, AuthMode::None),
                backend("b", "https://[::1]/v1/mcp", BackendStatus::Unauthenticated, AuthMode::PerUser),
                backend("c", "http://mcp.internal:9000/x", BackendStatus::Unhealthy, AuthMode::None),
                backend("d", "http://unresolvable.internal/x", BackendStatus::Healthy, AuthMode::None),
            ],
            ..Default::default()
        };
        let cla = cluster_load_assignment(&group, |h| (h == "mcp.internal").then(|| "10.1.2.3".parse().unwrap()));
        assert_eq!(cla.cluster_name, "mcp-health/tools");
        let eps = &cla.endpoints[0].lb_endpoints;
        assert_eq!(eps.len(), 3, "the unresolvable host is left out");
        let addr = |e: &LbEndpoint| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => match &ep.address.as_ref().unwrap().address {
                Some(address::Address::SocketAddress(s)) => (s.address.clone(), s.port_specifier.clone(), ep.hostname.clone()),
                _ => panic!(),
            },
            _ => panic!(),
        };
        let port = |p| Some(socket_address::PortSpecifier::PortValue(p));
        assert_eq!(addr(&eps[0]), ("127.0.0.1".into(), port(8081), String::new()));
        assert_eq!(addr(&eps[1]), ("::1".into(), port(443), String::new()));
        assert_eq!(addr(&eps[2]), ("10.1.2.3".into(), port(9000), "mcp.internal".into()));
        assert_eq!(eps.iter().map(|e| e.health_status).collect::<Vec<_>>(), [1, 1, 2]);
        let md = &eps[1].metadata.as_ref().unwrap().filter_metadata[METADATA_NAMESPACE].fields;
        let s = |k: &str| match &md[k].kind {
            Some(value::Kind::StringValue(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((s("backend"), s("group"), s("path")), ("b".into(), "tools".into(), "/v1/mcp".into()));
        assert_eq!(
            (s("protocol_version"), s("reason"), s("status")),
            ("2025-06-18".into(), "REASON_CODE_OK".into(), "BACKEND_STATUS_UNAUTHENTICATED".into())
        );
    }

    #[test]
    fn resource_names() {
        assert_eq!(resource_name("tools"), "mcp-health/tools");
        assert_eq!(group_of("mcp-health/tools"), Some("tools"));
        assert_eq!(group_of("mcp-health/"), None);
        assert_eq!(group_of("other/tools"), None);
        assert!(empty_assignment("mcp-health/gone").endpoints.is_empty());
    }
}
