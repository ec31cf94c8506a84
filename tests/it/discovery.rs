//! DNS discovery (issue 23) against a real DNS server on loopback (dnsmasq,
//! its records changed at runtime by rewriting its hosts file and SIGHUP):
//! `Dns::discover` finds every address of a name with the answer's TTL, SRV
//! targets with their ports, priorities and weights, refuses metadata
//! addresses without dropping the others, says an unknown name plainly (an
//! empty answer) and a dead resolver as a failed lookup; a probe pinned to one
//! endpoint's address connects there and keeps the name (Host, TLS SNI).

use crate::common::pki;
use crate::probe_support::{assert_failure, assert_success, install_crypto, probe_once};

use std::net::SocketAddr;
use std::sync::Arc;

use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_fixture::tls::{TlsFront, server_config};
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::core::discovery::{Lookup, Record};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::dns::DiscoverName;
use mcp_health::probe::{ClientCache, Dns, DnsSettings, ProbeTarget};
use mcp_health::proto::v1::{GroupSpec, ReasonCode};
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
/// endpoint's address. (Without a `discovery` spec: validation refuses one
/// until the engine serves it, `core::discovery::SERVED`.)
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
