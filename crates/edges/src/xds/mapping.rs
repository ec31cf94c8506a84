//! What a group becomes in Envoy's EDS, mapped from the domain snapshot
//! (`core::snapshot`): the resource name, one `ClusterLoadAssignment` per
//! group, one `LbEndpoint` per backend endpoint, and the one function from an
//! endpoint's verdict and `routable` to Envoy's `health_status`. Pure: no I/O,
//! and no name resolution: an endpoint's address is the one a probe connected
//! to, which passed our resolver and SSRF guard.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint};
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value, value};

use mcp_health_core::snapshot::{BackendSnapshot, EndpointSnapshot, GroupSnapshot};
use mcp_health_proto::v1::BackendStatus;

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

/// Envoy's health status of one endpoint, or None when it is withheld from
/// the assignment: its verdict and its `routable` (computed once, in
/// `core::snapshot`), with the operator's drain over it. README's "What Envoy
/// receives" table is this one.
///
/// | verdict | routable | draining | `health_status` |
/// |---|---|---|---|
/// | UNKNOWN (not probed yet) | no | any | withheld: Envoy routes to UNKNOWN hosts |
/// | any other | no | yes | DRAINING |
/// | any other | no | no | UNHEALTHY (e.g. UNAUTHENTICATED with a probe credential: a misconfiguration) |
/// | HEALTHY | yes | no | HEALTHY |
/// | DEGRADED | yes | no | DEGRADED (used when too few are HEALTHY) |
/// | UNAUTHENTICATED | yes (PER_USER) | no | HEALTHY (the 401 proves it is up) |
///
/// DEGRADED stays DEGRADED: it is routable (Envoy sends it the share of traffic
/// the HEALTHY hosts cannot take, priority load by overprovisioning factor), and
/// Envoy prefers HEALTHY hosts over it, which is what our DEGRADED means: slow,
/// rate-limited or failing below the threshold. Mapping it to HEALTHY would send
/// a slow backend a full share; mapping it to UNHEALTHY would contradict `routable`.
pub fn endpoint_health(status: BackendStatus, routable: bool, draining: bool) -> Option<HealthStatus> {
    let health = match status {
        // Envoy treats a host of UNKNOWN health as routable (compare
        // `ignore_new_hosts_until_first_hc`): withhold it until it is judged.
        BackendStatus::Unknown | BackendStatus::Unspecified => return None,
        _ if draining => HealthStatus::Draining,
        _ if !routable => HealthStatus::Unhealthy,
        BackendStatus::Degraded => HealthStatus::Degraded,
        BackendStatus::Healthy | BackendStatus::Unauthenticated => HealthStatus::Healthy,
        // Never routable (`core::verdict::is_routable`); named so a new status fails to compile here.
        BackendStatus::Unhealthy => HealthStatus::Unhealthy,
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
fn metadata(group: &str, b: &BackendSnapshot, e: &EndpointSnapshot) -> Metadata {
    let fields = [
        ("backend", string(&b.name)),
        ("group", string(group)),
        ("path", string(path_of(&b.url))),
        ("protocol_version", string(&e.observed.facts.protocol_version)),
        ("status", string(e.status().as_str_name())),
        ("reason", string(e.observed.reason.code.as_str_name())),
        (
            "draining",
            Value {
                kind: Some(value::Kind::BoolValue(b.drain)),
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

/// One endpoint of a backend as an `LbEndpoint`, or None when it is withheld:
/// not probed yet ([`endpoint_health`]), or no probe has reached it, so there
/// is no address a probe connected to. A named host keeps its name as the
/// endpoint's `hostname` (for `auto_host_rewrite`).
///
/// A discovered endpoint that left DNS, or that the operator drains, is
/// DRAINING (it is still probed, and never routable); a refused one is withheld (never probed); its SRV weight
/// (when not 0) is its `load_balancing_weight`.
pub fn lb_endpoint(group: &str, b: &BackendSnapshot, e: &EndpointSnapshot) -> Option<LbEndpoint> {
    if e.place.refused.is_some() {
        return None;
    }
    let health = endpoint_health(e.status(), e.routable, b.drain || e.place.leaving || e.place.drained)?;
    let addr: SocketAddr = e.observed.address?;
    let hostname = match url_host_port(&b.url) {
        Some((host, _)) if host.parse::<std::net::IpAddr>().is_err() => host,
        _ => String::new(),
    };
    Some(LbEndpoint {
        health_status: health as i32,
        metadata: Some(metadata(group, b, e)),
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
        load_balancing_weight: (e.place.weight > 0).then(|| UInt32Value {
            value: u32::from(e.place.weight),
        }),
    })
}

/// A group as one `ClusterLoadAssignment` named [`resource_name`], every
/// endpoint that is not withheld in one locality per SRV priority: the
/// distinct priorities in order become Envoy's priorities 0, 1, … (Envoy
/// wants them contiguous), and an endpoint without SRV has priority 0.
pub fn cluster_load_assignment(group: &GroupSnapshot) -> ClusterLoadAssignment {
    let mut by_priority: std::collections::BTreeMap<u16, Vec<LbEndpoint>> = std::collections::BTreeMap::new();
    for b in &group.backends {
        for e in &b.endpoints {
            if let Some(lb) = lb_endpoint(&group.name, b, e) {
                by_priority.entry(e.place.priority).or_default().push(lb);
            }
        }
    }
    ClusterLoadAssignment {
        cluster_name: resource_name(&group.name),
        endpoints: by_priority
            .into_values()
            .enumerate()
            .map(|(rank, lb_endpoints)| LocalityLbEndpoints {
                lb_endpoints,
                // At most 65,536 distinct SRV priorities.
                priority: rank as u32,
                ..Default::default()
            })
            .collect(),
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
    use mcp_health_core::outcome::{Reason, ServerFacts};
    use mcp_health_core::phase::group_verdict;
    use mcp_health_core::snapshot::{BackendSpecShown, CatalogFacts, Observed};
    use mcp_health_core::verdict::Verdict;
    use mcp_health_engine::health::serving_status;
    use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
    use mcp_health_proto::v1::{AuthMode, GroupSource, ReasonCode, Transport};

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
                let b = backend("a", "http://mcp.internal:9000/mcp", status, auth, draining, Some("10.1.2.3:9000"));
                let routable = b.routable();
                let group = group("g", vec![b]);
                let cla = cluster_load_assignment(&group);
                let eds = cla.endpoints.first().map(|l| HealthStatus::try_from(l.lb_endpoints[0].health_status).unwrap());
                assert_eq!(eds, want_eds, "{row}: EDS");
                assert_eq!(routable, want_routable, "{row}: the API's routable");
                assert_eq!(serving_status(group.phase()), want_serving, "{row}: grpc.health");
                assert_eq!(envoy_routes(eds), want_routable, "{row}: Envoy routes exactly what is routable");
                rows += 1;
            }
        }
        assert_eq!(rows, 5 * 2 * 4, "every status x auth mode x drain");
    }

    /// An ejected backend (real traffic, `core::outlier`) keeps its verdict
    /// and leaves routing as a drained one does, but as UNHEALTHY: it is not
    /// going away, it failed.
    #[test]
    fn an_ejected_backend_is_unhealthy_to_envoy_whatever_its_verdict() {
        use HealthStatus as H;
        // (verdict, drained, what Envoy gets)
        let rows = [
            (BackendStatus::Healthy, false, H::Unhealthy),
            (BackendStatus::Degraded, false, H::Unhealthy),
            (BackendStatus::Unhealthy, false, H::Unhealthy),
            (BackendStatus::Healthy, true, H::Draining),
        ];
        for (status, drain, want) in rows {
            let mut b = backend("a", "http://127.0.0.1:8081/mcp", status, AuthMode::None, drain, Some("127.0.0.1:8081"));
            let ejection = mcp_health_core::snapshot::Ejection {
                cause: "5 consecutive failures in real traffic, the last: HTTP 503".into(),
                since: std::time::SystemTime::UNIX_EPOCH,
                until: std::time::SystemTime::UNIX_EPOCH,
                count: 1,
            };
            b = BackendSnapshot::single(
                BackendSpecShown {
                    name: b.name,
                    url: b.url,
                    transport: b.transport,
                    auth: b.auth,
                    drain: b.drain,
                    catalog: b.catalog,
                },
                b.endpoints.remove(0).observed,
                Some(ejection),
            );
            assert!(!b.routable(), "{status:?}");
            let group = group("g", vec![b]);
            let cla = cluster_load_assignment(&group);
            let eds = HealthStatus::try_from(cla.endpoints[0].lb_endpoints[0].health_status).unwrap();
            assert_eq!(eds, want, "{status:?} drained={drain}");
            assert_eq!(serving_status(group.phase()), ServingStatus::NotServing, "{status:?}");
        }
    }

    /// A one-endpoint backend, probed at `address` (None: no probe reached it).
    fn backend(name: &str, url: &str, status: BackendStatus, auth: AuthMode, drain: bool, address: Option<&str>) -> BackendSnapshot {
        BackendSnapshot::single(
            BackendSpecShown {
                name: name.into(),
                url: url.into(),
                transport: Transport::StreamableHttp,
                auth,
                drain,
                catalog: CatalogFacts::default(),
            },
            Observed {
                address: address.map(|a| a.parse().unwrap()),
                verdict: Verdict { status, ..Verdict::unknown() },
                reason: Reason::new(ReasonCode::Ok, "ok"),
                facts: ServerFacts {
                    protocol_version: "2025-06-18".into(),
                    ..Default::default()
                },
                last_latency: None,
                last_probe: None,
                last_transition: None,
            },
            None,
        )
    }

    /// A discovered backend of (address, status, leaving, refused, SRV priority, weight) rows.
    fn discovered(rows: &[(&str, BackendStatus, bool, bool, u16, u16)]) -> BackendSnapshot {
        let endpoints = rows
            .iter()
            .map(|&(address, status, leaving, refused, priority, weight)| {
                let b = backend("pods", "http://pods.test:8080/mcp", status, AuthMode::None, false, Some(address));
                let place = mcp_health_core::snapshot::Place {
                    leaving,
                    refused: refused.then(|| "refused: link-local".to_owned()),
                    priority,
                    weight,
                    drained: false,
                };
                (b.endpoints.into_iter().next().unwrap().observed, place)
            })
            .collect();
        BackendSnapshot::discovered(
            BackendSpecShown {
                name: "pods".into(),
                url: "http://pods.test:8080/mcp".into(),
                transport: Transport::StreamableHttp,
                auth: AuthMode::None,
                drain: false,
                catalog: CatalogFacts::default(),
            },
            endpoints,
            None,
            BackendStatus::Unhealthy,
        )
    }

    /// Each discovered endpoint is an `LbEndpoint` with its own health; SRV
    /// priorities become contiguous Envoy priorities, weights load balancing
    /// weights; a leaving endpoint drains, a refused one is withheld.
    #[test]
    fn discovered_endpoints_keep_their_health_priority_and_weight() {
        use BackendStatus::{Healthy, Unhealthy};
        let g = group(
            "g",
            vec![discovered(&[
                ("10.0.0.1:9001", Healthy, false, false, 10, 60),
                ("10.0.0.2:9001", Unhealthy, false, false, 10, 40),
                ("10.0.0.3:9002", Healthy, false, false, 20, 0),
                ("10.0.0.4:9001", Healthy, true, false, 10, 60),
                ("169.254.169.254:9001", Healthy, false, true, 10, 60),
            ])],
        );
        let cla = cluster_load_assignment(&g);
        let read = |l: &LocalityLbEndpoints| -> (u32, Vec<(String, HealthStatus, Option<u32>)>) {
            let endpoints = l
                .lb_endpoints
                .iter()
                .map(|e| {
                    let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                        panic!("{e:?}")
                    };
                    let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.clone()) else {
                        panic!("{ep:?}")
                    };
                    let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
                        panic!("{sa:?}")
                    };
                    (
                        format!("{}:{port}", sa.address),
                        HealthStatus::try_from(e.health_status).unwrap(),
                        e.load_balancing_weight.as_ref().map(|w| w.value),
                    )
                })
                .collect();
            (l.priority, endpoints)
        };
        let got: Vec<_> = cla.endpoints.iter().map(read).collect();
        let s = |a: &str| a.to_owned();
        assert_eq!(
            got,
            [
                (
                    0,
                    vec![
                        (s("10.0.0.1:9001"), HealthStatus::Healthy, Some(60)),
                        (s("10.0.0.2:9001"), HealthStatus::Unhealthy, Some(40)),
                        (s("10.0.0.4:9001"), HealthStatus::Draining, Some(60)),
                    ]
                ),
                (1, vec![(s("10.0.0.3:9002"), HealthStatus::Healthy, None)]),
            ]
        );
        // A one-endpoint backend beside it stays at priority 0 with no weight.
        let mixed = group(
            "g",
            vec![
                backend("one", "http://10.9.9.9:80/mcp", Healthy, AuthMode::None, false, Some("10.9.9.9:80")),
                discovered(&[("10.0.0.3:9002", Healthy, false, false, 20, 5)]),
            ],
        );
        let got: Vec<_> = cluster_load_assignment(&mixed).endpoints.iter().map(read).collect();
        assert_eq!(
            got,
            [
                (0, vec![(s("10.9.9.9:80"), HealthStatus::Healthy, None)]),
                (1, vec![(s("10.0.0.3:9002"), HealthStatus::Healthy, Some(5))]),
            ]
        );
    }

    /// A group of these backends, its verdict from `core::phase`.
    fn group(name: &str, backends: Vec<BackendSnapshot>) -> GroupSnapshot {
        GroupSnapshot {
            name: name.into(),
            sequence: 1,
            generation: 1,
            source: GroupSource::Api,
            verdict: group_verdict(backends.iter().map(BackendSnapshot::view)),
            backends,
        }
    }

    #[test]
    fn a_group_becomes_one_assignment_with_probed_addresses_metadata_and_health() {
        let tools = group(
            "tools",
            vec![
                backend(
                    "a",
                    "http://127.0.0.1:8081/mcp",
                    BackendStatus::Healthy,
                    AuthMode::None,
                    false,
                    Some("127.0.0.1:8081"),
                ),
                backend(
                    "b",
                    "https://[::1]/v1/mcp",
                    BackendStatus::Unauthenticated,
                    AuthMode::PerUser,
                    false,
                    Some("[::1]:443"),
                ),
                // A name: the address its probe connected to, never a lookup of our own.
                backend(
                    "c",
                    "http://mcp.internal:9000/x",
                    BackendStatus::Unhealthy,
                    AuthMode::None,
                    false,
                    Some("10.1.2.3:9000"),
                ),
                // Judged, but no probe ever reached it (a DNS failure, a refused address): withheld.
                backend("d", "http://unresolvable.internal/x", BackendStatus::Unhealthy, AuthMode::None, false, None),
                // Not probed yet: withheld, even with an address.
                backend(
                    "e",
                    "http://127.0.0.1:8082/mcp",
                    BackendStatus::Unknown,
                    AuthMode::None,
                    false,
                    Some("127.0.0.1:8082"),
                ),
            ],
        );
        let cla = cluster_load_assignment(&tools);
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
        let pending = group(
            "p",
            vec![backend("x", "http://127.0.0.1:1/mcp", BackendStatus::Unknown, AuthMode::None, false, None)],
        );
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
