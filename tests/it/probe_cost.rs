//! What a probe costs on a real fleet's terms: https backends behind a TLS
//! front that counts full and resumed handshakes (session resumption across
//! probes, each on a fresh TCP connection; `tls.resumption: false`), host
//! names resolved through a real DNS server on loopback (dnsmasq: TTLs, a
//! record changed mid-test, failures keeping reason DNS, the SSRF guard), and
//! IPv6 backends ([::1] and AAAA names).

use crate::common;
use crate::lifecycle_bin;
use crate::probe_support;

use std::net::SocketAddr;
use std::sync::Arc;

use common::pki;
use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_fixture::tls::{TlsFront, TlsStats, server_config};
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::{ClientCache, DnsSettings, ProbeTarget};
use mcp_health::proto::v1::ReasonCode;
use probe_support::*;
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::{Value, json};

/// A CA (PEM in a file under `dir`) and a TLS front config for `names`.
fn tls_setup(dir: &tempfile::TempDir, names: &[&str]) -> (String, rustls::ServerConfig) {
    install_crypto();
    let (ca_pem, issuer) = pki::ca("probe cost test ca");
    let (cert, key) = pki::leaf(names, ExtendedKeyUsagePurpose::ServerAuth, &issuer);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    (ca_file.display().to_string(), server_config(&cert, &key).unwrap())
}

fn target_in(clients: &Arc<ClientCache>, backend: Value) -> ProbeTarget {
    install_crypto();
    let spec: mcp_health::proto::v1::GroupSpec = serde_json::from_value(json!({"name": "g", "backends": [backend]})).unwrap();
    let group = mcp_health::spec::validate_group(&spec, "spec", &Default::default()).unwrap_or_else(|v| panic!("{v:?}"));
    let backend = group.backends.into_iter().next().unwrap();
    ProbeTarget::new("g", backend, clients).unwrap()
}

async fn probe_n(t: &ProbeTarget, n: usize) {
    for i in 0..n {
        let r = probe_once(t).await;
        assert_eq!(r.outcome.class, OutcomeClass::Success, "probe {i}: {:#?}", r.outcome);
    }
}

/// Full and resumed handshakes, after checking that every connection had a handshake.
fn handshakes(s: TlsStats) -> (u64, u64) {
    assert_eq!(s.connections, s.full + s.resumed, "{s:?}");
    (s.full, s.resumed)
}

#[tokio::test]
async fn tls_sessions_resume_across_probes_on_fresh_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, config) = tls_setup(&dir, &["127.0.0.1"]);
    let fixture = FixtureServer::start().await.unwrap();
    let front = TlsFront::start("127.0.0.1:0".parse().unwrap(), config.clone(), fixture.addr(), None)
        .await
        .unwrap();
    let addr = front.addr();
    let t = target(json!({"name": "b", "url": format!("https://{addr}/mcp"), "tls": {"caFile": ca_file}}));

    probe_n(&t, 4).await;
    // A probe is a few requests (initialize, then DELETE of the session), each
    // on a fresh TCP connection, at the front and at the server behind it:
    // nothing pooled, nothing reused. One key exchange, then resumption.
    let s = fixture.stats();
    assert_eq!((s.reused_connections, s.initialize), (0, 4));
    let per_probe = s.connections / 4;
    assert!(per_probe >= 2, "{s:?}");
    assert_eq!(front.stats().connections, s.connections);
    assert_eq!(handshakes(front.stats()), (1, 4 * per_probe - 1));

    // A restarted server (a new ticket key) cannot resume: one full handshake, then resumption again.
    front.stop().await;
    let config = server_config_again(&config);
    let front = TlsFront::start(addr, config, fixture.addr(), None).await.unwrap();
    probe_n(&t, 3).await;
    assert_eq!(handshakes(front.stats()), (1, 3 * per_probe - 1));
    assert_eq!(fixture.stats().reused_connections, 0);
}

/// The same certificate with a fresh ticket key: what a restarted server has.
fn server_config_again(config: &rustls::ServerConfig) -> rustls::ServerConfig {
    let mut c = config.clone();
    c.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    c
}

#[tokio::test]
async fn resumption_false_makes_every_probe_a_full_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, config) = tls_setup(&dir, &["127.0.0.1"]);
    let fixture = FixtureServer::start().await.unwrap();
    let front = TlsFront::start("127.0.0.1:0".parse().unwrap(), config, fixture.addr(), None).await.unwrap();
    let url = format!("https://{}/mcp", front.addr());
    // Both settings in one cache (one daemon): each keeps its own behaviour.
    let clients = Arc::new(ClientCache::default());
    let full = target_in(&clients, json!({"name": "b", "url": url, "tls": {"caFile": ca_file, "resumption": false}}));
    probe_n(&full, 3).await;
    let per_probe = fixture.stats().connections / 3;
    assert_eq!(handshakes(front.stats()), (3 * per_probe, 0));
    let resuming = target_in(&clients, json!({"name": "b", "url": url, "tls": {"caFile": ca_file}}));
    probe_n(&resuming, 3).await;
    assert_eq!(
        handshakes(front.stats()),
        (3 * per_probe + 1, 3 * per_probe - 1),
        "the opt-out stored no session the default setting could use"
    );
    probe_n(&full, 1).await;
    assert_eq!(handshakes(front.stats()), (4 * per_probe + 1, 3 * per_probe - 1));
}

#[test]
fn resumption_on_a_plain_http_url_is_a_field_violation() {
    let spec: mcp_health::proto::v1::GroupSpec = serde_json::from_value(json!({"name": "g", "backends": [
        {"name": "b", "url": "http://127.0.0.1:1/mcp", "tls": {"resumption": false}}
    ]}))
    .unwrap();
    let v = mcp_health::spec::validate_group(&spec, "spec", &Default::default()).expect_err("invalid");
    assert_eq!(v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["spec.backends[0].tls"]);
}

fn dns_clients(dns: &Dnsmasq) -> Arc<ClientCache> {
    Arc::new(ClientCache::new(false, &DnsSettings { server: Some(dns.addr) }))
}

fn url(host: &str, port: u16) -> Value {
    json!({"name": "b", "url": format!("http://{host}:{port}/mcp")})
}

#[tokio::test]
async fn names_are_cached_for_their_ttl_and_a_failed_connect_resolves_again() {
    // A long TTL: only the failed connection can make the daemon ask again.
    let dns = Dnsmasq::start("127.0.0.1 moving.test\n", 3600);
    let a = FixtureServer::start().await.unwrap();
    let port = a.addr().port();
    let clients = dns_clients(&dns);
    let t = target_in(&clients, url("moving.test", port));
    probe_n(&t, 3).await;
    assert_eq!(clients.dns().lookups(), 1, "answers come from the cache while the TTL lasts");
    assert_eq!(dns.queries(), 1);

    // The backend moves to 127.0.0.2, same port; the old address refuses.
    dns.set_hosts("127.0.0.2 moving.test\n");
    dns.wait_reads(2);
    let b = FixtureServer::start_on(SocketAddr::from(([127, 0, 0, 2], port)), FixtureOptions::default())
        .await
        .unwrap();
    a.stop().await;
    let r = probe_once(&t).await;
    assert_failure(&r, ReasonCode::ConnectionRefused);
    // The very next probe asks the server again and reaches the new address.
    probe_n(&t, 1).await;
    assert_eq!(b.stats().initialize, 1);
    assert_eq!(clients.dns().lookups(), 2);
    probe_n(&t, 2).await;
    assert_eq!(clients.dns().lookups(), 2);
}

#[tokio::test]
async fn an_expired_ttl_picks_up_a_changed_record() {
    // TTL 1 s: a changed record is seen once the cached answer expires, with
    // no failure in between (both addresses serve).
    let dns = Dnsmasq::start("127.0.0.1 ttl.test\n", 1);
    let a = FixtureServer::start().await.unwrap();
    let port = a.addr().port();
    let b = FixtureServer::start_on(SocketAddr::from(([127, 0, 0, 3], port)), FixtureOptions::default())
        .await
        .unwrap();
    let clients = dns_clients(&dns);
    let t = target_in(&clients, url("ttl.test", port));
    probe_n(&t, 1).await;
    assert_eq!((a.stats().initialize, b.stats().initialize), (1, 0));
    dns.set_hosts("127.0.0.3 ttl.test\n");
    dns.wait_reads(2);
    common::eventually(
        "a probe reaches the new address",
        || async {
            probe_n(&t, 1).await;
            Some(b.stats().initialize)
        },
        |n| *n > 0,
    )
    .await;
    assert!(clients.dns().lookups() >= 2);
}

#[tokio::test]
async fn resolution_failures_keep_reason_dns() {
    let dns = Dnsmasq::start("169.254.169.254 metadata.test\n127.0.0.1 ok.test\n", 60);
    let clients = dns_clients(&dns);
    let f = FixtureServer::start().await.unwrap();
    let port = f.addr().port();
    let r = probe_once(&target_in(&clients, url("missing.test", port))).await;
    assert_failure(&r, ReasonCode::Dns);
    assert!(r.outcome.reason.message.contains("missing.test"), "{}", r.outcome.reason.message);
    // The SSRF guard applies to every answer of the caching resolver.
    let r = probe_once(&target_in(&clients, url("metadata.test", port))).await;
    assert_failure(&r, ReasonCode::Dns);
    assert!(r.outcome.reason.message.contains("--allow-link-local-backends"), "{}", r.outcome.reason.message);
    // Failures are not cached: once the name exists, the next probe succeeds.
    dns.set_hosts("127.0.0.1 missing.test\n");
    dns.wait_reads(2);
    probe_n(&target_in(&clients, url("missing.test", port)), 1).await;
}

#[tokio::test]
async fn ipv6_backends_literal_and_aaaa_names() {
    let f = FixtureServer::start_on("[::1]:0".parse().unwrap(), FixtureOptions::default()).await.unwrap();
    let port = f.addr().port();
    probe_n(&target(url("[::1]", port)), 1).await;
    let dns = Dnsmasq::start("::1 v6only.test\n", 60);
    let clients = dns_clients(&dns);
    probe_n(&target_in(&clients, url("v6only.test", port)), 2).await;
    assert_eq!(f.stats().initialize, 3);

    // https over IPv6 with a name, resuming like IPv4.
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, config) = tls_setup(&dir, &["v6only.test"]);
    let front = TlsFront::start("[::1]:0".parse().unwrap(), config, f.addr(), None).await.unwrap();
    let t = target_in(
        &clients,
        json!({"name": "b", "url": format!("https://v6only.test:{}/mcp", front.addr().port()), "tls": {"caFile": ca_file}}),
    );
    let before = f.stats().connections;
    probe_n(&t, 2).await;
    let connections = f.stats().connections - before;
    assert_eq!(handshakes(front.stats()), (1, connections - 1));
}

#[tokio::test]
async fn sessions_are_kept_for_many_servers_not_just_rustls_default_32() {
    // 100 host names behind one front (an ingress), one daemon-wide cache:
    // the second round resumes on every name.
    let names: Vec<String> = (0..100).map(|i| format!("b{i}.many.test")).collect();
    let dns = Dnsmasq::start(&names.iter().map(|n| format!("127.0.0.1 {n}\n")).collect::<String>(), 3600);
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, config) = tls_setup(&dir, &["*.many.test"]);
    let fixture = FixtureServer::start().await.unwrap();
    let front = TlsFront::start("127.0.0.1:0".parse().unwrap(), config, fixture.addr(), None).await.unwrap();
    let clients = dns_clients(&dns);
    let targets: Vec<ProbeTarget> = names
        .iter()
        .map(|n| {
            let url = format!("https://{n}:{}/mcp", front.addr().port());
            target_in(&clients, json!({"name": "b", "url": url, "tls": {"caFile": ca_file}}))
        })
        .collect();
    for t in &targets {
        probe_n(t, 1).await;
    }
    let (full, _) = handshakes(front.stats());
    assert_eq!(full, 100, "one full handshake per name");
    for t in &targets {
        probe_n(t, 1).await;
    }
    assert_eq!(handshakes(front.stats()).0, 100, "the second round resumed on every name");
    assert_eq!(clients.sessions().len(), 100);
}

#[tokio::test]
async fn the_daemon_resolves_through_dns_server_and_resumes_sessions() {
    // The real binary: --dns-server, and a config file with https names,
    // `tls.resumption` and `initialSpread` in the proto3 JSON mapping.
    let dns = Dnsmasq::start("127.0.0.1 api.daemon.test\n127.0.0.1 full.daemon.test\n", 60);
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, config) = tls_setup(&dir, &["api.daemon.test", "full.daemon.test"]);
    let fixture = FixtureServer::start().await.unwrap();
    let front = TlsFront::start("127.0.0.1:0".parse().unwrap(), config, fixture.addr(), None).await.unwrap();
    let port = front.addr().port();
    let config_file = dir.path().join("config.yaml");
    std::fs::write(
        &config_file,
        format!(
            "groups:\n  - name: names\n    policy: {{interval: 0.3s, timeout: 0.25s, initialSpread: 1s}}\n    backends:\n      \
             - {{name: api, url: 'https://api.daemon.test:{port}/mcp', tls: {{caFile: '{ca_file}'}}}}\n      \
             - {{name: full, url: 'https://full.daemon.test:{port}/mcp', tls: {{caFile: '{ca_file}', resumption: false}}}}\n"
        ),
    )
    .unwrap();
    let daemon = lifecycle_bin::Daemon::spawn(&["--dns-server", &dns.addr.to_string(), "--config", config_file.to_str().unwrap()]);
    let client = daemon.client().await;
    let front = &front;
    common::eventually(
        "both backends HEALTHY, some sessions resumed, several full handshakes",
        || {
            let mut client = client.clone();
            async move {
                let h = client
                    .get_group_health(mcp_health::proto::v1::GetGroupHealthRequest { group: "names".into() })
                    .await
                    .ok()?
                    .into_inner()
                    .health?;
                let s = front.stats();
                Some((common::phase(&h), s.full, s.resumed))
            }
        },
        |(phase, full, resumed)| *phase == mcp_health::proto::v1::GroupPhase::Ready && *full >= 4 && *resumed >= 2,
    )
    .await;
    assert!(dns.queries() >= 2, "the daemon asked the DNS server");
    daemon.stop().await;
}
