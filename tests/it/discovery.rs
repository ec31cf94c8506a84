//! DNS discovery (issue 23) against a real DNS server on loopback (dnsmasq,
//! its records changed at runtime by rewriting its hosts file and SIGHUP):
//! `Dns::discover` finds every address of a name with the answer's TTL, SRV
//! targets with their ports, priorities and weights, refuses metadata
//! addresses without dropping the others, says an unknown name plainly (an
//! empty answer) and a dead resolver as a failed lookup.

use std::net::SocketAddr;

use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_health::core::discovery::{Lookup, Record};
use mcp_health::probe::dns::DiscoverName;
use mcp_health::probe::{Dns, DnsSettings};

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
