//! Scenarios 8 and 9: what a probe costs on a real fleet's terms, and
//! start-up. Backends are `https://` behind a TLS front (an ingress, in the
//! fixture child) and host names served by a real DNS server on loopback
//! (dnsmasq, `mcp_fixture::dnsmasq`); every figure is set against plain
//! `http://` with literal IPs in the same run.
//!
//! 8: 10,000 backends @ 10 s in five variants (http/IP baseline, https/IP
//! full handshake, https/IP resumption, http/names, https/names resumption):
//! CPU per 1,000 probes and its ratio to the baseline, cores, lag p99, and
//! the DNS queries/s dnsmasq answered against backends/TTL.
//! 9: 10,000 https/names backends applied at once behind a front that allows
//! only 200 connections at a time, with and without the start-up spread:
//! peak probes in flight, time to every first verdict, false UNHEALTHY.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mcp_fixture::dnsmasq::Dnsmasq;
use mcp_health::engine::{Engine, EngineConfig, Origin, ProbeObserver, ProbeResult};
use mcp_health::health::HealthStatuses;
use mcp_health::probe::{DnsSettings, HttpProber};
use mcp_health::proto::v1::{BackendStatus, ProbePolicy, TlsSpec};
use mcp_health::spec::{Limits, validate_group};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Sizes;
use crate::child::{Worker, args, say};
use crate::proc_stats::{cpu_time, median};
use crate::roles::{GROUP_SIZE, arg_u64, duration, groups_with, install_crypto, runtime};
use crate::table::{Report, num};

/// The domain of the benchmark's host names (`b{i}.bench.test`).
const DOMAIN: &str = "bench.test";

/// A CA and a wildcard leaf for `*.bench.test` and 127.0.0.1, written to a
/// temporary directory: (dir, ca.pem path, cert path, key path).
fn pki() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "bench ca");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec![format!("*.{DOMAIN}"), "127.0.0.1".to_owned()]).expect("params");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write pem");
        p.display().to_string()
    };
    let ca_file = write("ca.pem", ca_cert.pem());
    let cert_file = write("cert.pem", cert.pem());
    let key_file = write("key.pem", key.serialize_pem());
    (dir, ca_file, cert_file, key_file)
}

fn hosts(n: usize) -> String {
    (0..n).map(|i| format!("127.0.0.1 b{i}.{DOMAIN}\n")).collect()
}

fn tls_stats(fixture: &mut Worker, port: u16) -> [u64; 4] {
    let reply = fixture.command(&format!("tlsstats {port}"));
    let v: Vec<u64> = reply.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    [0, 1, 2, 3].map(|i| v.get(i).copied().unwrap_or(0))
}

/// One variant of scenario 8.
struct Variant {
    label: &'static str,
    https: bool,
    names: bool,
    resumption: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        label: "http, literal IP (baseline)",
        https: false,
        names: false,
        resumption: false,
    },
    Variant {
        label: "https, literal IP, full handshake",
        https: true,
        names: false,
        resumption: false,
    },
    Variant {
        label: "https, literal IP, resumption",
        https: true,
        names: false,
        resumption: true,
    },
    Variant {
        label: "http, names via DNS",
        https: false,
        names: true,
        resumption: false,
    },
    Variant {
        label: "https, names via DNS, resumption",
        https: true,
        names: true,
        resumption: true,
    },
];

fn secs(ms: u64) -> String {
    format!("{} s", num(ms as f64 / 1000.0))
}

fn med(results: &[Value], key: &str) -> f64 {
    median(&results.iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect::<Vec<_>>())
}

/// Scenario 8.
pub fn cost(report: &mut Report, fixture: &mut Worker, addr: &str, sizes: &Sizes) {
    let (_dir, ca_file, cert, key) = pki();
    let port: u16 = fixture.command(&format!("tls {cert} {key} 0")).parse().expect("front port");
    let fixture_port = addr.rsplit(':').next().unwrap_or_default().to_owned();
    let n = sizes.cost_backends;
    let ttl = sizes.dns_ttl_s;
    let dns = Dnsmasq::start(&hosts(n), ttl);
    let interval_ms = sizes.cost_interval_ms;
    let timeout_ms = if interval_ms > 5_000 { 5_000 } else { interval_ms / 2 };
    let warmup = interval_ms + sizes.settle_ms;
    let measure = (2 * interval_ms).max(sizes.min_measure_ms);
    // With names, the first round fills the cache and nothing expires until
    // a TTL later: the DNS rate is measured only after the first expiries
    // (TTL + one interval) and over a whole TTL, so it is the steady state.
    let ttl_ms = u64::from(ttl) * 1_000;
    let dns_warmup = warmup + ttl_ms;
    let dns_measure = measure.max(ttl_ms);
    // results[variant][repeat]
    let mut results: Vec<Vec<Value>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    for rep in 0..sizes.repeats {
        for (vi, v) in VARIANTS.iter().enumerate() {
            eprintln!("cost: {n} backends, {}, repeat {} of {}", v.label, rep + 1, sizes.repeats);
            let host = if v.names { format!("b{{i}}.{DOMAIN}") } else { "127.0.0.1".to_owned() };
            let (scheme, p) = if v.https {
                ("https", port.to_string())
            } else {
                ("http", fixture_port.clone())
            };
            let tls = v.https.then(|| json!({"caFile": ca_file, "resumption": v.resumption}));
            let args = json!({
                "addr": addr, "n": n, "hanging": 0, "interval_ms": interval_ms, "timeout_ms": timeout_ms,
                "warmup_ms": if v.names { dns_warmup } else { warmup },
                "measure_ms": if v.names { dns_measure } else { measure },
                "concurrency": 1024,
                "url": format!("{scheme}://{host}:{p}{{path}}"), "tls": tls,
                "dns_server": dns.addr.to_string(),
            });
            let mut child = Worker::spawn("engine", &args);
            child.expect("MEASURING");
            let (q0, t0, tls0) = (dns.queries(), std::time::Instant::now(), tls_stats(fixture, port));
            let mut r = child.result();
            let (q1, secs, tls1) = (dns.queries(), t0.elapsed().as_secs_f64(), tls_stats(fixture, port));
            r["dns_queries_per_s"] = json!((q1 - q0) as f64 / secs);
            r["tls_full"] = json!(tls1[1] - tls0[1]);
            r["tls_resumed"] = json!(tls1[2] - tls0[2]);
            results[vi].push(r);
        }
    }
    let base = &results[0];
    for (vi, v) in VARIANTS.iter().enumerate() {
        let rs = &results[vi];
        let name = format!("{n} @ {}, {}", secs(interval_ms), v.label);
        let ratios: Vec<f64> = rs
            .iter()
            .zip(base)
            .map(|(r, b)| r["cpu_s_per_1000"].as_f64().unwrap_or(f64::NAN) / b["cpu_s_per_1000"].as_f64().unwrap_or(f64::NAN))
            .collect();
        let ratio = if vi == 0 {
            String::new()
        } else {
            format!(" ({}× baseline)", num(median(&ratios)))
        };
        report.add(
            "8 probe cost",
            &format!("{name}: CPU s per 1,000 probes"),
            format!("{}{ratio}", num(med(rs, "cpu_s_per_1000"))),
            "",
            None,
        );
        let target = v.https && v.names;
        let (cores, p99) = (med(rs, "cpu_cores"), med(rs, "lag_p99_ms"));
        report.add(
            "8 probe cost",
            &format!("{name}: CPU cores / lag p99 ms / successful %"),
            format!("{} / {} / {}", num(cores), num(p99), num(med(rs, "success_ratio") * 100.0)),
            if target { "< 0.4 / < 100" } else { "" },
            target.then_some(cores < 0.4 && p99 < 100.0),
        );
        if v.https {
            let full = med(rs, "tls_full");
            let resumed = med(rs, "tls_resumed");
            report.add(
                "8 probe cost",
                &format!("{name}: handshakes resumed %"),
                num(100.0 * resumed / (full + resumed).max(1.0)),
                if v.resumption { "" } else { "0 (opt-out)" },
                (!v.resumption).then_some(resumed == 0.0),
            );
        }
        if v.names {
            let planned = n as f64 / f64::from(ttl);
            report.add(
                "8 probe cost",
                &format!("{name}: DNS queries/s answered (backends/TTL = {})", num(planned)),
                num(med(rs, "dns_queries_per_s")),
                "≈ backends/TTL",
                None,
            );
        }
        for r in rs {
            let want = if sizes.strict { 0.95 } else { 0.5 };
            let ok = r["success_ratio"].as_f64().unwrap_or(0.0);
            report.sanity(ok >= want, format!("{name}: success ratio {ok:.3} below {want:.3}"));
            report.sanity(r["probes"].as_f64().unwrap_or(0.0) > 0.0, format!("{name}: no probes measured"));
            if v.names {
                report.sanity(r["dns_queries_per_s"].as_f64().unwrap_or(0.0) > 0.0, format!("{name}: no DNS queries seen"));
            }
            if v.https && v.resumption {
                report.sanity(r["tls_resumed"].as_u64().unwrap_or(0) > 0, format!("{name}: no session resumed"));
            }
        }
    }
}

/// Scenario 9.
pub fn startup(report: &mut Report, fixture: &mut Worker, sizes: &Sizes) {
    let (_dir, ca_file, cert, key) = pki();
    let cap = sizes.startup_cap;
    let port: u16 = fixture.command(&format!("tls {cert} {key} {cap}")).parse().expect("front port");
    let n = sizes.startup_backends;
    let dns = Dnsmasq::start(&hosts(n), 300);
    let mut by_mode: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for rep in 0..sizes.repeats {
        for (mi, spread) in [false, true].into_iter().enumerate() {
            eprintln!("startup: {n} backends, spread {spread}, repeat {} of {}", rep + 1, sizes.repeats);
            let args = json!({
                "n": n, "spread": spread, "interval_ms": sizes.startup_interval_ms, "rate": sizes.startup_rate,
                "url": format!("https://b{{i}}.{DOMAIN}:{port}{{path}}"),
                "tls": {"caFile": ca_file}, "dns_server": dns.addr.to_string(),
            });
            by_mode[mi].push(Worker::spawn("startup", &args).result());
        }
    }
    let rate = sizes.startup_rate;
    let labels = ["no spread (initialSpread 0s)".to_owned(), format!("spread ({rate}/s, {} at once)", rate / 10)];
    for (mi, label) in labels.iter().enumerate() {
        let rs = &by_mode[mi];
        let name = format!("{n} https/names backends @ {}, ≤ {cap} connections, {label}", secs(sizes.startup_interval_ms));
        report.add(
            "9 start-up",
            &format!("{name}: peak probes in flight"),
            num(med(rs, "peak_in_flight")),
            "",
            None,
        );
        report.add(
            "9 start-up",
            &format!("{name}: s to every first verdict"),
            num(med(rs, "all_verdicts_s")),
            "",
            None,
        );
        let false_unhealthy = med(rs, "false_unhealthy");
        report.add(
            "9 start-up",
            &format!("{name}: false UNHEALTHY"),
            num(false_unhealthy),
            if mi == 1 { "0" } else { "" },
            (mi == 1).then_some(false_unhealthy == 0.0),
        );
        for r in rs {
            report.sanity(
                r["verdicts"].as_u64() == Some(n as u64),
                format!("{name}: not every backend got a verdict: {r}"),
            );
        }
    }
}

/// Counts what scenario 9 reports: probes in flight (and their peak),
/// backends with a first verdict, and those whose first verdict was UNHEALTHY.
#[derive(Debug, Default)]
struct StartWatch {
    in_flight: AtomicI64,
    peak: AtomicI64,
    verdicts: AtomicU64,
    unhealthy: AtomicU64,
}

impl ProbeObserver for StartWatch {
    fn probe_finished(&self, _: &ProbeResult) {}

    fn probes_in_flight(&self, delta: i64) {
        let now = self.in_flight.fetch_add(delta, Relaxed) + delta;
        self.peak.fetch_max(now, Relaxed);
    }

    fn backend_status(&self, _: &str, _: &str, from: Option<BackendStatus>, to: BackendStatus) {
        if from == Some(BackendStatus::Unknown) {
            self.verdicts.fetch_add(1, Relaxed);
            if to == BackendStatus::Unhealthy {
                self.unhealthy.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The `startup` child: applies every group at once and waits for every
/// backend's first verdict (at most three intervals).
pub fn startup_run() {
    install_crypto();
    let a = args();
    let n = arg_u64(&a, "n") as usize;
    let spread = a["spread"].as_bool().unwrap_or(true);
    let interval = Duration::from_millis(arg_u64(&a, "interval_ms"));
    let rate = u32::try_from(arg_u64(&a, "rate")).unwrap_or(u32::MAX);
    let url = a["url"].as_str().expect("url argument").to_owned();
    let tls: Option<TlsSpec> = serde_json::from_value(a["tls"].clone()).expect("tls argument");
    let dns_server: Option<SocketAddr> = a["dns_server"].as_str().map(|s| s.parse().expect("dns_server argument"));
    let rt = runtime();
    let result = rt.block_on(async move {
        let watch = Arc::new(StartWatch::default());
        let config = EngineConfig {
            limits: Limits {
                max_backends_per_group: GROUP_SIZE,
                max_groups: 1000,
                ..Limits::default()
            },
            observer: Some(watch.clone()),
            dns: DnsSettings { server: dns_server },
            initial_probes_per_second: rate,
            ..EngineConfig::default()
        };
        let engine = Engine::start(config, Arc::new(HttpProber::default()), HealthStatuses::default());
        let policy = ProbePolicy {
            interval: Some(duration(interval)),
            timeout: Some(duration((interval / 2).min(Duration::from_secs(5)))),
            initial_spread: (!spread).then(|| duration(Duration::ZERO)),
            ..ProbePolicy::default()
        };
        let mut valid = Vec::new();
        for spec in groups_with(&url, tls, n, 0, policy) {
            valid.push(validate_group(&spec, "", engine.limits()).expect("bench group specs are valid"));
        }
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        // One apply of every group, as a config file at start-up.
        engine.replace_all(valid, Origin::ConfigFile("bench.yaml".into())).await.expect("apply");
        let deadline = t0 + 3 * interval;
        while watch.verdicts.load(Relaxed) < n as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let all = t0.elapsed().as_secs_f64();
        let cpu = (cpu_time() - cpu0).as_secs_f64();
        engine.shutdown().await;
        json!({
            "verdicts": watch.verdicts.load(Relaxed),
            "false_unhealthy": watch.unhealthy.load(Relaxed),
            "peak_in_flight": watch.peak.load(Relaxed),
            "all_verdicts_s": all,
            "cpu_s": cpu,
        })
    });
    say(&format!("RESULT {result}"));
}
