//! DNS discovery (issue 23) against a real DNS server on loopback (dnsmasq,
//! its records changed at runtime by rewriting its hosts file and SIGHUP):
//! `Dns::discover` finds every address of a name with the answer's TTL, SRV
//! targets with their ports, priorities and weights, refuses metadata
//! addresses without dropping the others, says an unknown name plainly (an
//! empty answer) and a dead resolver as a failed lookup; a probe pinned to one
//! endpoint's address connects there and keeps the name (Host, TLS SNI).
//! Through a daemon (issue 23's tests 1 to 3): every address of a discovered
//! backend is an endpoint with its own verdict in Get and in EDS, a dead one
//! alone turns UNHEALTHY, endpoints follow the records as they change, and
//! a dead resolver's last good set is kept until `maxTtl` (then reason DNS)
//! and recovers when it returns (test 5).

use crate::common::pki;
use crate::probe_support::{assert_failure, assert_success, install_crypto, probe_once};

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::status;
use crate::xds_push::assignment_until;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_fixture::tls::{TlsFront, server_config};
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::core::discovery::{Lookup, Record};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::dns::DiscoverName;
use mcp_health::probe::{ClientCache, Dns, DnsSettings, ProbeTarget};
use mcp_health::proto::v1::{BackendStatus, GroupSpec, ReasonCode};
use mcp_health::spec::{Limits, validate_group};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one lookup should read: the records (address, priority, weight) in
/// order, the refused addresses, and the TTL's bounds in seconds.
struct Want<'a> {
    records: &'a [(&'a str, u16, u16)],
    refused: &'a [&'a str],
    ttl: (u64, u64),
}

/// Checks one lookup of `name` against `want`.
#[track_caller]
fn check(name: DiscoverName<'_>, lookup: Lookup, want: Want<'_>) {
    let Lookup::Answer { records, refused, ttl } = lookup else {
        panic!("{name:?}: the lookup failed: {lookup:?}");
    };
    let got: Vec<(String, u16, u16)> = records.iter().map(|r: &Record| (r.addr.to_string(), r.priority, r.weight)).collect();
    let want_records: Vec<(String, u16, u16)> = want.records.iter().map(|(a, p, w)| ((*a).to_owned(), *p, *w)).collect();
    assert_eq!(got, want_records, "{name:?}");
    let refused: Vec<String> = refused.iter().map(|r| r.addr.to_string()).collect();
    assert_eq!(refused, want.refused, "{name:?}: refused");
    assert!(
        (want.ttl.0..=want.ttl.1).contains(&ttl.as_secs()),
        "{name:?}: ttl {ttl:?} not within {:?} s",
        want.ttl
    );
}

async fn discover(dns: &Dns, name: DiscoverName<'_>) -> Lookup {
    let before = dns.lookups();
    let lookup = dns.discover(name).await;
    assert!(dns.lookups() > before, "{name:?}: every discovery lookup is a query");
    lookup
}

#[tokio::test]
async fn a_name_gives_every_address_with_the_urls_port_and_its_ttl() {
    let dns = Dnsmasq::start(
        "127.0.0.2 pods.test\n127.0.0.3 pods.test\n127.0.0.4 pods.test\n169.254.169.254 mixed.test\n127.0.0.5 mixed.test\n",
        30,
    );
    let resolver = Dns::new(&DnsSettings { server: Some(dns.addr) }, false);
    let pods = DiscoverName::Host { name: "pods.test", port: 8080 };
    let three = [("127.0.0.2:8080", 0, 0), ("127.0.0.3:8080", 0, 0), ("127.0.0.4:8080", 0, 0)];
    let mut got = discover(&resolver, pods).await;
    // The answer's order is the server's; the set is what counts.
    if let Lookup::Answer { records, .. } = &mut got {
        records.sort_by_key(|r| r.addr);
    }
    check(
        pods,
        got,
        Want {
            records: &three,
            refused: &[],
            ttl: (20, 30),
        },
    );

    // The records change: the next lookup asks the server again and sees it.
    dns.set_hosts("127.0.0.2 pods.test\n127.0.0.6 pods.test\n");
    dns.wait_reads(2);
    let mut got = discover(&resolver, pods).await;
    if let Lookup::Answer { records, .. } = &mut got {
        records.sort_by_key(|r| r.addr);
    }
    check(
        pods,
        got,
        Want {
            records: &[("127.0.0.2:8080", 0, 0), ("127.0.0.6:8080", 0, 0)],
            refused: &[],
            ttl: (20, 30),
        },
    );

    // A name with no records is an empty answer, said plainly, not a failure.
    let missing = DiscoverName::Host {
        name: "missing.test",
        port: 8080,
    };
    let got = discover(&resolver, missing).await;
    check(
        missing,
        got,
        Want {
            records: &[],
            refused: &[],
            ttl: (0, 0),
        },
    );
}

#[tokio::test]
async fn a_metadata_address_is_refused_and_the_good_one_kept() {
    let dns = Dnsmasq::start("169.254.169.254 mixed.test\n127.0.0.5 mixed.test\n", 30);
    let guarded = Dns::new(&DnsSettings { server: Some(dns.addr) }, false);
    let mixed = DiscoverName::Host {
        name: "mixed.test",
        port: 9000,
    };
    let got = discover(&guarded, mixed).await;
    let Lookup::Answer { refused, .. } = &got else { panic!("{got:?}") };
    assert!(refused[0].reason.contains("--allow-link-local-backends"), "{refused:?}");
    check(
        mixed,
        got,
        Want {
            records: &[("127.0.0.5:9000", 0, 0)],
            refused: &["169.254.169.254:9000"],
            ttl: (20, 30),
        },
    );
    // With --allow-link-local-backends nothing is refused.
    let open = Dns::new(&DnsSettings { server: Some(dns.addr) }, true);
    let mut got = discover(&open, mixed).await;
    if let Lookup::Answer { records, .. } = &mut got {
        records.sort_by_key(|r| r.addr);
    }
    check(
        mixed,
        got,
        Want {
            records: &[("127.0.0.5:9000", 0, 0), ("169.254.169.254:9000", 0, 0)],
            refused: &[],
            ttl: (20, 30),
        },
    );
}

#[tokio::test]
async fn an_srv_name_gives_each_target_on_its_own_port_with_priority_and_weight() {
    let dns = Dnsmasq::start_with(
        "127.0.0.2 a.test\n127.0.0.3 b.test\n",
        30,
        &[
            "--srv-host=_mcp._tcp.pods.test,b.test,9002,20,10",
            "--srv-host=_mcp._tcp.pods.test,a.test,9001,10,60",
        ],
    );
    let resolver = Dns::new(&DnsSettings { server: Some(dns.addr) }, false);
    let srv = DiscoverName::Srv("_mcp._tcp.pods.test");
    let got = discover(&resolver, srv).await;
    check(
        srv,
        got,
        Want {
            // Lowest priority first.
            records: &[("127.0.0.2:9001", 10, 60), ("127.0.0.3:9002", 20, 10)],
            refused: &[],
            ttl: (0, 30),
        },
    );
    let none = DiscoverName::Srv("_mcp._tcp.none.test");
    let got = discover(&resolver, none).await;
    check(
        none,
        got,
        Want {
            records: &[],
            refused: &[],
            ttl: (0, 0),
        },
    );
}

#[tokio::test]
async fn a_dead_resolver_is_a_failed_lookup_and_a_restarted_one_answers() {
    let mut dns = Dnsmasq::start("127.0.0.2 pods.test\n", 30);
    let resolver = Dns::new(&DnsSettings { server: Some(dns.addr) }, false);
    let pods = DiscoverName::Host { name: "pods.test", port: 80 };
    assert!(matches!(discover(&resolver, pods).await, Lookup::Answer { ref records, .. } if records.len() == 1));
    dns.stop();
    let got = discover(&resolver, pods).await;
    let Lookup::Failed { detail } = &got else { panic!("{got:?}") };
    assert!(detail.contains("pods.test"), "{detail}");
    dns.restart();
    let got = discover(&resolver, pods).await;
    let want: SocketAddr = "127.0.0.2:80".parse().unwrap();
    assert!(
        matches!(&got, Lookup::Answer { records, .. } if records.iter().map(|r| r.addr).eq([want])),
        "{got:?}"
    );
}

/// A target for a backend at `url` resolving through `dns`, to pin to one
/// endpoint's address (without a `discovery` spec: the probe is what counts here).
fn discovered_target(dns: &Dnsmasq, url: &str, extra: serde_json::Value) -> ProbeTarget {
    install_crypto();
    let mut backend = json!({"name": "b", "url": url});
    if let (Some(b), Some(extra)) = (backend.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    let spec: GroupSpec = serde_json::from_value(json!({"name": "g", "backends": [backend]})).unwrap();
    let group = validate_group(&spec, "spec", &Limits::default()).unwrap_or_else(|v| panic!("{v:?}"));
    let clients = Arc::new(ClientCache::new(false, &DnsSettings { server: Some(dns.addr) }));
    ProbeTarget::new("g", group.backends.into_iter().next().unwrap(), &clients).unwrap()
}

#[tokio::test]
async fn a_pinned_probe_connects_to_its_endpoint_and_keeps_the_name() {
    // The name resolves to .2 only; the probes pinned to .3 go there all the same.
    let dns = Dnsmasq::start("127.0.0.2 pods.test\n", 30);
    let two = FixtureServer::start_on("127.0.0.2:0".parse().unwrap(), FixtureOptions::default())
        .await
        .unwrap();
    let port = two.addr().port();
    let three = FixtureServer::start_on(SocketAddr::from(([127, 0, 0, 3], port)), FixtureOptions::default())
        .await
        .unwrap();
    let t = discovered_target(&dns, &format!("http://pods.test:{port}/mcp"), json!({}));
    let lookups = t.dns.lookups();
    let pin = SocketAddr::from(([127, 0, 0, 3], port));
    let r = probe_once(&t.pinned_to(pin)).await;
    assert_success(&r);
    assert_eq!(r.outcome.peer, Some(pin));
    assert_eq!((two.stats().initialize, three.stats().initialize), (0, 1));
    assert_eq!(t.dns.lookups(), lookups, "a pinned probe asks no DNS server");
    // Unpinned, the same target follows DNS.
    assert_success(&probe_once(&t).await);
    assert_eq!((two.stats().initialize, three.stats().initialize), (1, 1));
    // Pinned to an address nobody serves: refused, whatever the name resolves to.
    let r = probe_once(&t.pinned_to(SocketAddr::from(([127, 0, 0, 4], port)))).await;
    assert_failure(&r, ReasonCode::ConnectionRefused);
    // An SRV target's port replaces the URL's.
    let other = FixtureServer::start_on("127.0.0.3:0".parse().unwrap(), FixtureOptions::default())
        .await
        .unwrap();
    assert_success(&probe_once(&t.pinned_to(other.addr())).await);
    assert_eq!(other.stats().initialize, 1);

    // The Host header carries the name (and the endpoint's port).
    let listener = tokio::net::TcpListener::bind("127.0.0.5:0").await.unwrap();
    let raw = listener.local_addr().unwrap();
    let head = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf).to_lowercase()
    });
    let r = probe_once(&t.pinned_to(raw)).await;
    assert_eq!(r.outcome.class, OutcomeClass::Failure, "{:#?}", r.outcome);
    let head = head.await.unwrap();
    assert!(head.contains(&format!("\r\nhost: pods.test:{}\r\n", raw.port())), "{head}");
}

#[tokio::test]
async fn a_pinned_https_probe_verifies_the_certificate_of_the_name() {
    install_crypto();
    let dns = Dnsmasq::start("127.0.0.2 pods.test\n", 30);
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = pki::ca("discovery test ca");
    let (cert, key) = pki::leaf(&["pods.test"], ExtendedKeyUsagePurpose::ServerAuth, &issuer);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let backend = FixtureServer::start().await.unwrap();
    let front = TlsFront::start("127.0.0.3:0".parse().unwrap(), server_config(&cert, &key).unwrap(), backend.addr(), None)
        .await
        .unwrap();
    let t = discovered_target(
        &dns,
        &format!("https://pods.test:{}/mcp", front.addr().port()),
        json!({"tls": {"caFile": ca_file.display().to_string()}}),
    );
    // SNI and verification by the name, at an address DNS does not give.
    let r = probe_once(&t.pinned_to(front.addr())).await;
    assert_success(&r);
    assert_eq!(r.outcome.peer, Some(front.addr()));
}

/// A daemon resolving through `dns`, serving xDS.
async fn daemon(dns: &Dnsmasq) -> crate::common::TestDaemon {
    daemon_with(dns, mcp_health::daemon::DaemonOptions::default()).await
}

/// [`daemon`] with other options (metrics).
async fn daemon_with(dns: &Dnsmasq, opts: mcp_health::daemon::DaemonOptions) -> crate::common::TestDaemon {
    crate::common::TestDaemon::start(mcp_health::daemon::DaemonOptions {
        xds: true,
        xds_debounce: std::time::Duration::from_millis(10),
        engine: mcp_health::engine::EngineConfig {
            dns: DnsSettings { server: Some(dns.addr) },
            ..Default::default()
        },
        ..opts
    })
    .await
}

/// An MCP server on 127.0.0.`last`:`port` (0: any port).
async fn server_on(last: u8, port: u16) -> FixtureServer {
    FixtureServer::start_on(SocketAddr::from(([127, 0, 0, last], port)), FixtureOptions::default())
        .await
        .unwrap()
}

/// MCP servers on 127.0.0.`last` for each of `lasts`, all on one port.
async fn servers(lasts: &[u8]) -> Vec<FixtureServer> {
    let first = server_on(lasts[0], 0).await;
    let port = first.addr().port();
    let mut all = vec![first];
    for last in &lasts[1..] {
        all.push(server_on(*last, port).await);
    }
    all
}

/// dnsmasq's hosts file: `pods.test` at each of 127.0.0.`lasts`.
fn hosts(lasts: &[u8]) -> String {
    lasts.iter().map(|l| format!("127.0.0.{l} pods.test\n")).collect()
}

/// The discovered group: probed every second, one failure to UNHEALTHY,
/// looked up every second, the last good set kept `max_ttl` through failed
/// lookups, leaving endpoints kept `grace`.
fn discovered_group(port: u16, max_ttl: &str, grace: &str) -> GroupSpec {
    crate::common::group_yaml(&format!(
        "name: g\npolicy: {{interval: 1s, timeout: 0.5s, unhealthyThreshold: 1}}\nbackends:\n  \
         - name: pods\n    url: \"http://pods.test:{port}/mcp\"\n    discovery:\n      dns: {{minTtl: 1s, maxTtl: {max_ttl}, removalGrace: {grace}}}\n"
    ))
}

/// A daemon probing `pods.test` (dnsmasq, TTL 1 s) at 127.0.0.`in_dns`, with
/// MCP servers on 127.0.0.`serving` (one port), the discovered group applied
/// (`discovered_group`), once every address in DNS is a HEALTHY endpoint
/// (`ready`: the group's health then).
struct Pods {
    dns: Dnsmasq,
    servers: Vec<FixtureServer>,
    port: u16,
    d: crate::common::TestDaemon,
    ready: mcp_health::proto::v1::GroupHealth,
}

async fn pods(in_dns: &[u8], serving: &[u8], max_ttl: &str, grace: &str) -> Pods {
    let dns = Dnsmasq::start(&hosts(in_dns), 1);
    let servers = servers(serving).await;
    let port = servers[0].addr().port();
    let mut d = daemon(&dns).await;
    d.apply(discovered_group(port, max_ttl, grace)).await;
    let want = rows(port, &in_dns.iter().map(|l| (*l, BackendStatus::Healthy, false)).collect::<Vec<_>>());
    let ready = d.wait_group("g", "every address in DNS a HEALTHY endpoint", |h| endpoints_of(h) == want).await;
    Pods { dns, servers, port, d, ready }
}

/// The endpoints in Get: (address, status, leaving), in address order.
fn endpoints_of(h: &mcp_health::proto::v1::GroupHealth) -> Vec<(String, BackendStatus, bool)> {
    h.backends[0]
        .endpoints
        .iter()
        .map(|e| (e.address.clone(), BackendStatus::try_from(e.status).unwrap(), e.leaving))
        .collect()
}

/// Rows of `endpoints_of` for 127.0.0.`last`:`port`.
fn rows(port: u16, want: &[(u8, BackendStatus, bool)]) -> Vec<(String, BackendStatus, bool)> {
    want.iter().map(|(l, s, leaving)| (format!("127.0.0.{l}:{port}"), *s, *leaving)).collect()
}

/// EDS endpoints: (address, health), in address order.
fn eds(cla: &ClusterLoadAssignment) -> Vec<(String, HealthStatus)> {
    let mut got: Vec<(String, HealthStatus)> = crate::xds_push::endpoints(cla).into_iter().map(|(a, _, _, h)| (a, h)).collect();
    got.sort();
    got
}

fn eds_rows(want: &[(u8, HealthStatus)]) -> Vec<(String, HealthStatus)> {
    want.iter().map(|(l, h)| (format!("127.0.0.{l}"), *h)).collect()
}

/// Issue 23, tests 1 and 2: a name with three addresses gives three HEALTHY
/// endpoints in Get and three in EDS; when one server dies only its endpoint
/// turns UNHEALTHY, and the backend and the group stay routable.
#[tokio::test]
async fn three_addresses_are_three_endpoints_and_a_dead_one_alone_turns_unhealthy() {
    use BackendStatus::{Healthy, Unhealthy};
    let Pods {
        servers, port, d, ready: h, ..
    } = pods(&[2, 3, 4], &[2, 3, 4], "10s", "10s").await;
    assert_eq!(endpoints_of(&h), rows(port, &[(2, Healthy, false), (3, Healthy, false), (4, Healthy, false)]));
    assert_eq!(status(&h.backends[0]), Healthy);
    assert!(h.backends[0].routable);
    let cla = assignment_until(d.addr, "g", "three endpoints", |c| eds(c).len() == 3).await;
    assert_eq!(
        eds(&cla),
        eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Healthy), (4, HealthStatus::Healthy)])
    );

    servers[1].stop().await;
    let h = d
        .wait_group("g", "127.0.0.3 UNHEALTHY", |h| endpoints_of(h).iter().any(|e| e.1 == Unhealthy))
        .await;
    assert_eq!(endpoints_of(&h), rows(port, &[(2, Healthy, false), (3, Unhealthy, false), (4, Healthy, false)]));
    assert!(h.backends[0].routable, "two of three endpoints still take traffic");
    assert_eq!(status(&h.backends[0]), BackendStatus::Degraded);
    assert_eq!(h.phase, mcp_health::proto::v1::GroupPhase::Degraded as i32, "the group stays routable: {h:?}");
    let cla = assignment_until(d.addr, "g", "127.0.0.3 unhealthy", |c| eds(c).iter().any(|e| e.1 == HealthStatus::Unhealthy)).await;
    assert_eq!(
        eds(&cla),
        eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Unhealthy), (4, HealthStatus::Healthy)])
    );
    d.stop().await;
}

/// Issue 23, test 3: records change from three addresses to five, then two.
/// New endpoints appear; removed ones turn leaving (DRAINING in EDS); a dead
/// one is dropped at its first failed probe, live ones after removalGrace;
/// then they are gone from Get and EDS.
#[tokio::test]
async fn endpoints_follow_the_records_from_three_to_five_to_two() {
    use BackendStatus::Healthy;
    // Long enough a grace that the dead one's drop comes well before it.
    let Pods { dns, servers, port, d, .. } = pods(&[2, 3, 4], &[2, 3, 4, 5, 6], "10s", "10s").await;

    dns.set_hosts(&hosts(&[2, 3, 4, 5, 6]));
    d.wait_group("g", "five HEALTHY endpoints", |h| {
        endpoints_of(h)
            == rows(
                port,
                &[
                    (2, Healthy, false),
                    (3, Healthy, false),
                    (4, Healthy, false),
                    (5, Healthy, false),
                    (6, Healthy, false),
                ],
            )
    })
    .await;
    let cla = assignment_until(d.addr, "g", "five endpoints", |c| eds(c).len() == 5).await;
    assert!(eds(&cla).iter().all(|e| e.1 == HealthStatus::Healthy), "{cla:?}");

    // 127.0.0.4 dies and leaves DNS with .5 and .6, which live on.
    servers[2].stop().await;
    dns.set_hosts(&hosts(&[2, 3]));
    let h = d
        .wait_group("g", "the dead one dropped", |h| !endpoints_of(h).iter().any(|e| e.0.starts_with("127.0.0.4:")))
        .await;
    assert_eq!(
        endpoints_of(&h),
        rows(port, &[(2, Healthy, false), (3, Healthy, false), (5, Healthy, true), (6, Healthy, true)]),
        "the live ones that left DNS are still probed and draining within the grace"
    );
    assert!(h.backends[0].endpoints.iter().filter(|e| e.leaving).all(|e| !e.routable));
    assert_eq!(status(&h.backends[0]), Healthy, "leaving endpoints are not counted");
    let cla = assignment_until(d.addr, "g", "two draining", |c| {
        eds(c).iter().filter(|e| e.1 == HealthStatus::Draining).count() == 2
    })
    .await;
    assert_eq!(
        eds(&cla),
        eds_rows(&[
            (2, HealthStatus::Healthy),
            (3, HealthStatus::Healthy),
            (5, HealthStatus::Draining),
            (6, HealthStatus::Draining)
        ])
    );

    let h = d.wait_group("g", "the live ones dropped after the grace", |h| endpoints_of(h).len() == 2).await;
    assert_eq!(endpoints_of(&h), rows(port, &[(2, Healthy, false), (3, Healthy, false)]));
    let cla = assignment_until(d.addr, "g", "two endpoints", |c| eds(c).len() == 2).await;
    assert_eq!(eds(&cla), eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Healthy)]));
    d.stop().await;
}

/// The reason codes of the endpoints in Get, in address order.
fn endpoint_reasons(h: &mcp_health::proto::v1::GroupHealth) -> Vec<ReasonCode> {
    h.backends[0]
        .endpoints
        .iter()
        .map(|e| e.reason.as_ref().map_or(ReasonCode::Unspecified, |r| r.code()))
        .collect()
}

/// Issue 23, test 5: the resolver dies. The last good set is kept (every
/// state Get shows until the endpoints read DNS lists the three, HEALTHY);
/// past `maxTtl` after the last answer they read UNHEALTHY with reason DNS
/// (the backend too, not routable; UNHEALTHY in EDS); the resolver comes back
/// on its address and they recover.
#[tokio::test]
async fn a_dead_resolver_keeps_the_last_set_until_max_ttl_then_reads_dns_and_recovers() {
    use BackendStatus::{Healthy, Unhealthy};
    // The servers are bound: fields left to `..` go with the temporary.
    let Pods {
        mut dns,
        port,
        d,
        servers: _servers,
        ..
    } = pods(&[2, 3, 4], &[2, 3, 4], "5s", "10s").await;
    let healthy = rows(port, &[(2, Healthy, false), (3, Healthy, false), (4, Healthy, false)]);
    let failed = rows(port, &[(2, Unhealthy, false), (3, Unhealthy, false), (4, Unhealthy, false)]);

    dns.stop();
    let seen = std::sync::Mutex::new(Vec::new());
    let h = d
        .wait_group("g", "every endpoint UNHEALTHY with reason DNS", |h| {
            let expired = endpoint_reasons(h).contains(&ReasonCode::Dns);
            if !expired {
                seen.lock().unwrap().push(endpoints_of(h));
            }
            expired
        })
        .await;
    let seen = seen.into_inner().unwrap();
    assert!(!seen.is_empty(), "Get was read before the TTL maximum passed");
    assert!(seen.iter().all(|e| *e == healthy), "the last good set stands until maxTtl: {seen:#?}");
    assert_eq!(endpoints_of(&h), failed, "the set is kept, every endpoint UNHEALTHY");
    assert_eq!(endpoint_reasons(&h), [ReasonCode::Dns; 3]);
    assert!(h.backends[0].endpoints[0].reason.as_ref().unwrap().message.contains("pods.test"), "{h:#?}");
    assert_eq!((status(&h.backends[0]), h.backends[0].routable), (Unhealthy, false));
    assert_eq!(h.phase, mcp_health::proto::v1::GroupPhase::Failed as i32, "{h:#?}");
    let cla = assignment_until(d.addr, "g", "three unhealthy", |c| {
        eds(c).len() == 3 && eds(c).iter().all(|e| e.1 == HealthStatus::Unhealthy)
    })
    .await;
    assert_eq!(
        eds(&cla),
        eds_rows(&[(2, HealthStatus::Unhealthy), (3, HealthStatus::Unhealthy), (4, HealthStatus::Unhealthy)])
    );

    dns.restart();
    let h = d.wait_group("g", "the endpoints recovered", |h| endpoints_of(h) == healthy).await;
    assert!(!endpoint_reasons(&h).contains(&ReasonCode::Dns), "{h:#?}");
    assert_eq!((status(&h.backends[0]), h.backends[0].routable), (Healthy, true));
    assert_eq!(h.phase, mcp_health::proto::v1::GroupPhase::Ready as i32, "{h:#?}");
    assignment_until(d.addr, "g", "three healthy again", |c| {
        eds(c) == eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Healthy), (4, HealthStatus::Healthy)])
    })
    .await;
    d.stop().await;
}

/// Issue 23, test 4, through the daemon: an SRV name with two targets on two
/// ports gives two endpoints on those ports, HEALTHY in Get with their
/// priority and weight, and in EDS each at its port, the lower SRV priority
/// first (Envoy's priority 0) with the weight as `load_balancing_weight`.
#[tokio::test]
async fn an_srv_name_gives_two_endpoints_on_their_own_ports_in_get_and_eds() {
    let a = server_on(2, 0).await;
    let b = server_on(3, 0).await;
    let (pa, pb) = (a.addr().port(), b.addr().port());
    let dns = Dnsmasq::start_with(
        "127.0.0.2 a.test\n127.0.0.3 b.test\n",
        1,
        &[
            &format!("--srv-host=_mcp._tcp.pods.test,b.test,{pb},20,10"),
            &format!("--srv-host=_mcp._tcp.pods.test,a.test,{pa},10,60"),
        ],
    );
    let mut d = daemon(&dns).await;
    d.apply(crate::common::group_yaml(
        "name: g\npolicy: {interval: 1s, timeout: 0.5s, unhealthyThreshold: 1}\nbackends:\n  \
         - name: pods\n    url: \"http://pods.test/mcp\"\n    discovery:\n      dns: {srv: _mcp._tcp.pods.test, minTtl: 1s, maxTtl: 10s}\n",
    ))
    .await;
    let h = d
        .wait_group("g", "two HEALTHY endpoints", |h| {
            endpoints_of(h).len() == 2 && endpoints_of(h).iter().all(|e| e.1 == BackendStatus::Healthy)
        })
        .await;
    let shown: Vec<(String, u32, u32)> = h.backends[0].endpoints.iter().map(|e| (e.address.clone(), e.priority, e.weight)).collect();
    assert_eq!(shown, vec![(format!("127.0.0.2:{pa}"), 10, 60), (format!("127.0.0.3:{pb}"), 20, 10)]);
    assert!(h.backends[0].routable);
    let cla = assignment_until(d.addr, "g", "two endpoints", |c| {
        crate::xds_push::endpoints(c).iter().filter(|e| e.3 == HealthStatus::Healthy).count() == 2
    })
    .await;
    // (Envoy priority, [(port, weight)]) per locality.
    let localities: Vec<(u32, Vec<(u32, u32)>)> = cla
        .endpoints
        .iter()
        .map(|l| {
            let one = |e: &envoy_types::pb::envoy::config::endpoint::v3::LbEndpoint| {
                let alone = ClusterLoadAssignment {
                    endpoints: vec![envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints {
                        lb_endpoints: vec![e.clone()],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let port = crate::xds_push::endpoints(&alone)[0].1;
                (port, e.load_balancing_weight.as_ref().map_or(0, |w| w.value))
            };
            (l.priority, l.lb_endpoints.iter().map(one).collect())
        })
        .collect();
    assert_eq!(localities, vec![(0, vec![(u32::from(pa), 60)]), (1, vec![(u32::from(pb), 10)])]);
    d.stop().await;
}

/// Issue 23, test 6, through the daemon: a name that resolves to one good
/// address and one cloud-metadata address probes the good one and shows the
/// other as refused: never routable, withheld from EDS, counted as refused in
/// the metrics (and, opted in, a series per address).
#[tokio::test]
async fn a_refused_address_is_shown_as_refused_and_withheld_from_eds() {
    let good = server_on(5, 0).await;
    let port = good.addr().port();
    let dns = Dnsmasq::start("169.254.169.254 mixed.test\n127.0.0.5 mixed.test\n", 1);
    let opts = mcp_health::daemon::DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_endpoint_series: true,
        ..Default::default()
    };
    let mut d = daemon_with(&dns, opts).await;
    d.apply(crate::common::group_yaml(&format!(
        "name: g\npolicy: {{interval: 1s, timeout: 0.5s, unhealthyThreshold: 1}}\nbackends:\n  \
         - name: mixed\n    url: \"http://mixed.test:{port}/mcp\"\n    discovery:\n      dns: {{minTtl: 1s, maxTtl: 10s}}\n"
    )))
    .await;
    let h = d
        .wait_group("g", "the good endpoint HEALTHY", |h| {
            h.backends[0].endpoints.iter().any(|e| e.status == BackendStatus::Healthy as i32)
        })
        .await;
    let mut eps = h.backends[0].endpoints.clone();
    eps.sort_by(|x, y| x.address.cmp(&y.address));
    assert_eq!(eps.len(), 2, "{eps:#?}");
    let (good_ep, metadata) = if eps[0].address.starts_with("127.") {
        (&eps[0], &eps[1])
    } else {
        (&eps[1], &eps[0])
    };
    assert_eq!(good_ep.address, format!("127.0.0.5:{port}"));
    assert!(good_ep.routable && good_ep.refused.is_empty(), "{good_ep:#?}");
    assert_eq!(metadata.address, format!("169.254.169.254:{port}"));
    assert!(!metadata.routable, "{metadata:#?}");
    assert!(metadata.refused.contains("--allow-link-local-backends"), "{metadata:#?}");
    assert!(metadata.last_probe_time.is_none(), "a refused address is never probed: {metadata:#?}");
    assert_eq!(
        status(&h.backends[0]),
        BackendStatus::Healthy,
        "a refused address does not count against the backend"
    );
    let cla = assignment_until(d.addr, "g", "the good endpoint", |c| !crate::xds_push::endpoints(c).is_empty()).await;
    let shown: Vec<(String, u32)> = crate::xds_push::endpoints(&cla).into_iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(shown, vec![("127.0.0.5".to_owned(), u32::from(port))], "the refused address is withheld");

    // Metrics: counts by state, and (opted in) each address's status.
    crate::common::install_crypto();
    let url = format!("http://{}/metrics", d.daemon.as_ref().unwrap().metrics_addr().expect("metrics"));
    let count = |text: &str, state: &str| {
        let series = format!("mcp_health_backend_endpoints{{group=\"g\",backend=\"mixed\",state=\"{state}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(series.as_str())).map(str::to_owned)
    };
    let text = reqwest::get(&url).await.expect("scrape").text().await.expect("text");
    let counts: Vec<Option<String>> = ["routable", "not_routable", "leaving", "refused"].iter().map(|s| count(&text, s)).collect();
    assert_eq!(counts, ["1", "0", "0", "1"].map(|c| Some(c.to_owned())), "{text}");
    let healthy = format!("mcp_health_endpoint_status{{group=\"g\",backend=\"mixed\",address=\"127.0.0.5:{port}\",status=\"healthy\"}} 1");
    assert!(text.contains(&healthy), "{text}");
    d.stop().await;
}

/// Drain one endpoint through the daemon (issue 23): SetBackendDrain with an
/// endpoint's address drains it alone: still probed and HEALTHY in Get,
/// `drained` and not routable, DRAINING in EDS, kept in the stored spec; an
/// address the backend does not have is INVALID_ARGUMENT naming `endpoint`;
/// the end of the drain makes it HEALTHY in EDS again.
#[tokio::test]
async fn one_endpoint_drained_over_the_api_is_draining_in_eds_and_still_probed() {
    use mcp_health::proto::v1::SetBackendDrainRequest;
    let Pods {
        port,
        mut d,
        servers,
        dns: _dns,
        ..
    } = pods(&[2, 3], &[2, 3], "10s", "10s").await;
    let request = |endpoint: String, drain: bool| SetBackendDrainRequest {
        group: "g".into(),
        backend: "pods".into(),
        drain,
        endpoint,
    };
    let three = format!("127.0.0.3:{port}");
    let resp = d.client.set_backend_drain(request(three.clone(), true)).await.unwrap().into_inner();
    assert!(resp.changed);
    assert_eq!(resp.spec.unwrap().backends[0].drained_endpoints, std::slice::from_ref(&three));
    for bad in [format!("127.0.0.9:{port}"), "pods.test".to_owned()] {
        let err = d.client.set_backend_drain(request(bad.clone(), true)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}: {err:?}");
        let bad_request = tonic_types::StatusExt::get_details_bad_request(&err).expect("BadRequest details");
        let fields: Vec<&str> = bad_request.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["endpoint"], "{bad}: {err:?}");
    }

    let h = d
        .wait_group("g", "127.0.0.3 drained", |h| h.backends[0].endpoints.iter().any(|e| e.drained))
        .await;
    let shown: Vec<(String, BackendStatus, bool, bool)> = h.backends[0]
        .endpoints
        .iter()
        .map(|e| (e.address.clone(), BackendStatus::try_from(e.status).unwrap(), e.drained, e.routable))
        .collect();
    assert_eq!(
        shown,
        [
            (format!("127.0.0.2:{port}"), BackendStatus::Healthy, false, true),
            (three.clone(), BackendStatus::Healthy, true, false)
        ]
    );
    assert_eq!((status(&h.backends[0]), h.backends[0].routable), (BackendStatus::Healthy, true));
    let cla = assignment_until(d.addr, "g", "127.0.0.3 draining", |c| eds(c).iter().any(|e| e.1 == HealthStatus::Draining)).await;
    assert_eq!(eds(&cla), eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Draining)]));
    let probed = servers[1].stats().initialize;
    d.wait_group("g", "127.0.0.3 probed while drained", |_| servers[1].stats().initialize > probed)
        .await;

    let resp = d.client.set_backend_drain(request(three.clone(), false)).await.unwrap().into_inner();
    assert!(resp.changed && resp.spec.unwrap().backends[0].drained_endpoints.is_empty());
    assignment_until(d.addr, "g", "127.0.0.3 healthy again", |c| {
        eds(c) == eds_rows(&[(2, HealthStatus::Healthy), (3, HealthStatus::Healthy)])
    })
    .await;
    // The backend's history holds the drain and its end, with the address,
    // though no probe changed the endpoint's status.
    let history = d
        .client
        .get_backend_history(mcp_health::proto::v1::GetBackendHistoryRequest {
            group: "g".into(),
            backend: "pods".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let drains: Vec<&str> = history
        .transitions
        .iter()
        .filter(|t| t.endpoint == three)
        .filter_map(|t| t.reason.as_ref().map(|r| r.message.as_str()))
        .filter(|m| m.contains("drained"))
        .collect();
    assert_eq!(drains, ["endpoint drained", "endpoint no longer drained"], "{history:?}");
    d.stop().await;
}

/// Issue 23 (history): a discovered backend's history holds its endpoints'
/// entries with their addresses: each endpoint added, then the one whose
/// server died moving HEALTHY to UNHEALTHY with the probe's reason.
#[tokio::test]
async fn a_dead_endpoints_transition_is_in_the_backends_history_with_its_address() {
    use BackendStatus::{Healthy, Unhealthy};
    let Pods { servers, port, mut d, .. } = pods(&[2, 3], &[2, 3], "10s", "10s").await;
    servers[1].stop().await;
    d.wait_group("g", "127.0.0.3 UNHEALTHY", |h| endpoints_of(h).iter().any(|e| e.1 == Unhealthy))
        .await;
    let h = d
        .client
        .get_backend_history(mcp_health::proto::v1::GetBackendHistoryRequest {
            group: "g".into(),
            backend: "pods".into(),
        })
        .await
        .expect("history")
        .into_inner();
    let dead = format!("127.0.0.3:{port}");
    let of = |addr: &str| -> Vec<(BackendStatus, BackendStatus, ReasonCode, String)> {
        h.transitions
            .iter()
            .filter(|t| t.endpoint == addr)
            .map(|t| {
                let r = t.reason.clone().unwrap_or_default();
                (
                    BackendStatus::try_from(t.from_status).unwrap(),
                    BackendStatus::try_from(t.to_status).unwrap(),
                    ReasonCode::try_from(r.code).unwrap(),
                    r.message,
                )
            })
            .collect()
    };
    let dead_entries = of(&dead);
    assert!(dead_entries.iter().any(|e| e.3 == "endpoint added"), "{dead} added: {dead_entries:?}");
    assert_eq!(
        dead_entries.last().map(|e| (e.0, e.1, e.2)),
        Some((Healthy, Unhealthy, ReasonCode::ConnectionRefused)),
        "{h:?}"
    );
    let live = of(&format!("127.0.0.2:{port}"));
    assert!(live.iter().all(|e| e.1 != Unhealthy), "the live endpoint never went down: {live:?}");
    assert!(
        h.transitions.iter().any(|t| t.endpoint.is_empty()),
        "the backend's own transitions stay, without an endpoint: {h:?}"
    );
    d.stop().await;
}

/// Issue 23 (the page): a discovered backend's endpoints are rows under it on
/// the status page, each with its address and status: one serving, one dead.
#[tokio::test]
async fn the_status_page_shows_each_endpoint_under_its_backend() {
    use BackendStatus::{Healthy, Unhealthy};
    let dns = Dnsmasq::start(&hosts(&[2, 3]), 1);
    let servers = servers(&[2]).await;
    let port = servers[0].addr().port();
    let mut d = daemon_with(
        &dns,
        mcp_health::daemon::DaemonOptions {
            ui_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await;
    d.apply(discovered_group(port, "10s", "10s")).await;
    let want = rows(port, &[(2, Healthy, false), (3, Unhealthy, false)]);
    d.wait_group("g", ".2 HEALTHY and .3 UNHEALTHY", |h| endpoints_of(h) == want).await;
    let ui = d.daemon.as_ref().and_then(|d| d.ui_addr()).expect("the status page listens");
    let mut s = tokio::net::TcpStream::connect(ui).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", ui.port()).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let page = String::from_utf8(raw).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let backend = page.find("data-backend=\"g/pods\"").expect("the backend's row");
    for (last, status) in [(2, "HEALTHY"), (3, "UNHEALTHY")] {
        let at = page
            .find(&format!("data-address=\"127.0.0.{last}:{port}\" data-status=\"{status}\""))
            .unwrap_or_else(|| panic!("127.0.0.{last} {status}: {page}"));
        assert!(at > backend, "127.0.0.{last} under its backend");
    }
    assert_eq!(page.matches("class=\"endpoint ").count(), 2, "{page}");
    d.stop().await;
}
