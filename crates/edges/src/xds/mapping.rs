//! What a group becomes in Envoy's EDS: the resource name, one
//! `ClusterLoadAssignment` per group, one `LbEndpoint` per backend, and the one
//! function from a backend's verdict to Envoy's `health_status`. Pure: no I/O,
//! and no name resolution: an endpoint's address is the one a probe connected
//! to (`BackendHealth.address`), which passed our resolver and SSRF guard.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint};
use envoy_types::pb::google::protobuf::{Struct, Value, value};

use mcp_health_core::verdict::is_routable;
use mcp_health_proto::v1::{AuthMode, BackendHealth, BackendStatus, GroupHealth, ReasonCode};

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

/// Envoy's health status of one backend, or None when it is withheld from the
/// assignment: the verdict, as routable as the phase counts it
/// (`core::verdict::is_routable`), with the operator's drain over it. README's
/// "What Envoy receives" table is this one.
///
/// | verdict | auth mode | draining | `health_status` |
/// |---|---|---|---|
/// | UNKNOWN (not probed yet) | any | any | withheld: Envoy routes to UNKNOWN hosts |
/// | any other | any | yes | DRAINING |
/// | HEALTHY | any | no | HEALTHY |
/// | DEGRADED | any | no | DEGRADED (used when too few are HEALTHY) |
/// | UNAUTHENTICATED | PER_USER | no | HEALTHY (routable: the 401 proves it is up) |
/// | UNAUTHENTICATED | other | no | UNHEALTHY (a misconfiguration) |
/// | UNHEALTHY | any | no | UNHEALTHY |
///
/// DEGRADED stays DEGRADED: it is routable (Envoy sends it the share of traffic
/// the HEALTHY hosts cannot take, priority load by overprovisioning factor), and
/// Envoy prefers HEALTHY hosts over it, which is what our DEGRADED means: slow,
/// rate-limited or failing below the threshold. Mapping it to HEALTHY would send
/// a slow backend a full share; mapping it to UNHEALTHY would contradict `routable`.
pub fn endpoint_health(status: BackendStatus, auth: AuthMode, draining: bool) -> Option<HealthStatus> {
    let health = match status {
        // Envoy treats a host of UNKNOWN health as routable (compare
        // `ignore_new_hosts_until_first_hc`): withhold it until it is judged.
        BackendStatus::Unknown | BackendStatus::Unspecified => return None,
        _ if draining => HealthStatus::Draining,
        BackendStatus::Healthy => HealthStatus::Healthy,
        BackendStatus::Degraded => HealthStatus::Degraded,
        BackendStatus::Unauthenticated if is_routable(status, auth) => HealthStatus::Healthy,
        BackendStatus::Unauthenticated | BackendStatus::Unhealthy => HealthStatus::Unhealthy,
    };
    Some(health)
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

/// One backend as an `LbEndpoint`, or None when it is withheld: not probed yet
/// ([`endpoint_health`]), or no probe has reached it, so there is no address a
/// probe connected to. The address is `BackendHealth.address`; a named host
/// keeps its name as the endpoint's `hostname` (for `auto_host_rewrite`).
pub fn lb_endpoint(group: &str, b: &BackendHealth) -> Option<LbEndpoint> {
    let status = BackendStatus::try_from(b.status).unwrap_or_default();
    let auth = AuthMode::try_from(b.auth_mode).unwrap_or_default();
    let health = endpoint_health(status, auth, b.draining)?;
    let addr: SocketAddr = b.address.parse().ok()?;
    let hostname = match url_host_port(&b.url) {
        Some((host, _)) if host.parse::<std::net::IpAddr>().is_err() => host,
        _ => String::new(),
    };
    Some(LbEndpoint {
        health_status: health as i32,
        metadata: Some(metadata(group, b)),
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: addr.ip().to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(addr.port()))),
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
/// backend that is not withheld in one locality.
pub fn cluster_load_assignment(group: &GroupHealth) -> ClusterLoadAssignment {
    let lb_endpoints = group.backends.iter().filter_map(|b| lb_endpoint(&group.name, b)).collect::<Vec<_>>();
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
    use mcp_health_core::phase::{BackendView, group_verdict};
    use mcp_health_engine::health::serving_status;
    use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
    use mcp_health_proto::v1::Reason;

    /// Whether Envoy load-balances to a host with this status (UNKNOWN counts
    /// as healthy in Envoy; DEGRADED is used when too few are HEALTHY). A
    /// withheld host gets nothing.
    fn envoy_routes(h: Option<HealthStatus>) -> bool {
        matches!(h, Some(HealthStatus::Healthy | HealthStatus::Degraded | HealthStatus::Unknown))
    }

    /// README's "What Envoy receives" table, literally: a one-backend group of
    /// each status × auth mode × drain, and what Envoy gets, the API's
    /// `routable`, and grpc.health of the group. None: withheld.
    #[test]
    fn what_envoy_receives_table() {
        use AuthMode::{None as NoAuth, Oauth2ClientCredentials as OAuth, PerUser, StaticHeader as Header};
        use BackendStatus as S;
        use HealthStatus as H;
        use ServingStatus::{NotServing, Serving};
        const ANY_AUTH: &[AuthMode] = &[NoAuth, PerUser, Header, OAuth];
        /// (verdict, auth modes, drained, what Envoy gets, the API's routable, grpc.health).
        type Row = (S, &'static [AuthMode], bool, Option<H>, bool, ServingStatus);
        let table: &[Row] = &[
            (S::Unknown, ANY_AUTH, false, None, false, NotServing),
            (S::Unknown, ANY_AUTH, true, None, false, NotServing),
            (S::Healthy, ANY_AUTH, false, Some(H::Healthy), true, Serving),
            (S::Healthy, ANY_AUTH, true, Some(H::Draining), false, NotServing),
            (S::Degraded, ANY_AUTH, false, Some(H::Degraded), true, Serving),
            (S::Degraded, ANY_AUTH, true, Some(H::Draining), false, NotServing),
            (S::Unauthenticated, &[PerUser], false, Some(H::Healthy), true, Serving),
            (S::Unauthenticated, &[NoAuth, Header, OAuth], false, Some(H::Unhealthy), false, NotServing),
            (S::Unauthenticated, ANY_AUTH, true, Some(H::Draining), false, NotServing),
            (S::Unhealthy, ANY_AUTH, false, Some(H::Unhealthy), false, NotServing),
            (S::Unhealthy, ANY_AUTH, true, Some(H::Draining), false, NotServing),
        ];
        let mut rows = 0;
        for &(status, auths, draining, want_eds, want_routable, want_serving) in table {
            for &auth in auths {
                let row = format!("{status:?} {auth:?} draining={draining}");
                let mut b = backend("a", "http://mcp.internal:9000/mcp", status, auth);
                b.draining = draining;
                b.address = "10.1.2.3:9000".into();
                let view = BackendView { status, auth, draining };
                b.routable = view.routable();
                let group = GroupHealth {
                    name: "g".into(),
                    backends: vec![b],
                    ..Default::default()
                };
                let cla = cluster_load_assignment(&group);
                let eds = cla.endpoints.first().map(|l| HealthStatus::try_from(l.lb_endpoints[0].health_status).unwrap());
                assert_eq!(eds, want_eds, "{row}: EDS");
                assert_eq!(view.routable(), want_routable, "{row}: the API's routable");
                assert_eq!(serving_status(group_verdict([view]).phase), want_serving, "{row}: grpc.health");
                assert_eq!(envoy_routes(eds), want_routable, "{row}: Envoy routes exactly what is routable");
                rows += 1;
            }
        }
        assert_eq!(rows, 5 * 2 * 4, "every status x auth mode x drain");
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
    fn a_group_becomes_one_assignment_with_probed_addresses_metadata_and_health() {
        let with = |mut b: BackendHealth, address: &str| {
            b.address = address.into();
            b
        };
        let group = GroupHealth {
            name: "tools".into(),
            backends: vec![
                with(
                    backend("a", "http://127.0.0.1:8081/mcp", BackendStatus::Healthy, AuthMode::None),
                    "127.0.0.1:8081",
                ),
                with(
                    backend("b", "https://[::1]/v1/mcp", BackendStatus::Unauthenticated, AuthMode::PerUser),
                    "[::1]:443",
                ),
                // A name: the address its probe connected to, never a lookup of our own.
                with(
                    backend("c", "http://mcp.internal:9000/x", BackendStatus::Unhealthy, AuthMode::None),
                    "10.1.2.3:9000",
                ),
                // Judged, but no probe ever reached it (a DNS failure, a refused address): withheld.
                backend("d", "http://unresolvable.internal/x", BackendStatus::Unhealthy, AuthMode::None),
                // Not probed yet: withheld, even with an address.
                with(
                    backend("e", "http://127.0.0.1:8082/mcp", BackendStatus::Unknown, AuthMode::None),
                    "127.0.0.1:8082",
                ),
            ],
            ..Default::default()
        };
        let cla = cluster_load_assignment(&group);
        assert_eq!(cla.cluster_name, "mcp-health/tools");
        let eps = &cla.endpoints[0].lb_endpoints;
        assert_eq!(eps.len(), 3, "the backend never reached and the one not probed yet are withheld");
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
        // A group whose backends are all withheld has no locality at all.
        let pending = GroupHealth {
            name: "p".into(),
            backends: vec![backend("x", "http://127.0.0.1:1/mcp", BackendStatus::Unknown, AuthMode::None)],
            ..Default::default()
        };
        assert!(cluster_load_assignment(&pending).endpoints.is_empty());
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
