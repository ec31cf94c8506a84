//! Scenario 11: backends discovered from DNS against literal addresses, in
//! one run (issue 23's benchmark). 1,000 names with 10 A records each are
//! 10,000 endpoints, each probed on its own; the baseline is 10,000 backends
//! with the same 10 literal addresses. A real DNS server (dnsmasq) answers on
//! loopback, and the fixture listens on 127.0.0.1 to 127.0.0.11, same port.
//!
//! Figures: CPU per 1,000 probes and its ratio to the baseline, RSS per
//! endpoint, the DNS queries per second dnsmasq answered against names/TTL,
//! and how long a record change (an 11th address for one name) takes to be
//! published by the engine, which is what EDS and the API map from.

use serde_json::{Value, json};

use crate::Sizes;
use crate::child::Worker;
use crate::proc_stats::median;
use crate::table::{Report, num};
use mcp_fixture::dnsmasq::Dnsmasq;

/// Addresses per name.
const ADDRESSES: usize = 10;

/// The hosts file: `names` names, each with addresses 127.0.0.1 to .10, and
/// `n0.disc.test` with one more (.11) when `changed`.
fn hosts(names: usize, changed: bool) -> String {
    let mut out = String::new();
    for j in 0..names {
        for k in 1..=ADDRESSES {
            out.push_str(&format!("127.0.0.{k} n{j}.disc.test\n"));
        }
    }
    if changed {
        out.push_str(&format!("127.0.0.{} n0.disc.test\n", ADDRESSES + 1));
    }
    out
}

fn med(results: &[Value], key: &str) -> f64 {
    median(&results.iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect::<Vec<_>>())
}

/// Scenario 11.
pub fn discovery(report: &mut Report, fixture: &mut Worker, addr: &str, sizes: &Sizes) {
    for k in 2..=ADDRESSES + 1 {
        fixture.command(&format!("also 127.0.0.{k}"));
    }
    let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
    let names = sizes.discovery_names;
    let endpoints = names * ADDRESSES;
    let ttl = sizes.dns_ttl_s;
    let interval_ms = sizes.cost_interval_ms;
    let timeout_ms = if interval_ms > 5_000 { 5_000 } else { interval_ms / 2 };
    let warmup = interval_ms + sizes.settle_ms;
    let measure = (2 * interval_ms).max(sizes.min_measure_ms);
    // As in scenario 8: the DNS rate is measured after the first expiries
    // (TTL + one interval) and over a whole TTL, so it is the steady state.
    let ttl_ms = u64::from(ttl) * 1_000;
    let discovery = json!({"dns": {"minTtl": format!("{ttl}s")}});
    // results[0] literal, results[1] discovered; one entry per repeat.
    let mut results: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for rep in 0..sizes.repeats {
        for (vi, discovered) in [false, true].into_iter().enumerate() {
            eprintln!(
                "discovery: {} {}, repeat {} of {}",
                if discovered { names } else { endpoints },
                if discovered { "names × 10 addresses" } else { "literal backends" },
                rep + 1,
                sizes.repeats
            );
            let dns = Dnsmasq::start(&hosts(names, false), ttl);
            let args = if discovered {
                json!({
                    "addr": addr, "n": names, "hanging": 0, "interval_ms": interval_ms, "timeout_ms": timeout_ms,
                    "warmup_ms": warmup + ttl_ms, "measure_ms": measure.max(ttl_ms), "concurrency": 1024,
                    "url": format!("http://n{{i}}.disc.test:{port}{{path}}"),
                    "dns_server": dns.addr.to_string(), "discovery": discovery,
                    "change_to": ADDRESSES + 1,
                })
            } else {
                json!({
                    "addr": addr, "n": endpoints, "hanging": 0, "interval_ms": interval_ms, "timeout_ms": timeout_ms,
                    "warmup_ms": warmup, "measure_ms": measure, "concurrency": 1024,
                    "url": format!("http://127.0.0.{{k}}:{port}{{path}}"),
                })
            };
            let mut child = Worker::spawn("engine", &args);
            child.expect("MEASURING");
            let (q0, t0) = (dns.queries(), std::time::Instant::now());
            if discovered {
                child.expect("CHANGE");
                let (q1, secs) = (dns.queries(), t0.elapsed().as_secs_f64());
                dns.set_hosts(&hosts(names, true));
                dns.wait_reads(2);
                child.command("changed");
                let mut r = child.result();
                r["dns_queries_per_s"] = json!((q1 - q0) as f64 / secs);
                results[vi].push(r);
            } else {
                results[vi].push(child.result());
            }
        }
    }
    let rss_per_endpoint = |r: &Value| {
        let (after, before) = (r["rss_mib"].as_f64().unwrap_or(f64::NAN), r["rss_before_mib"].as_f64().unwrap_or(f64::NAN));
        (after - before) * 1024.0 / endpoints as f64
    };
    let name = |vi: usize| {
        if vi == 0 {
            format!("{endpoints} literal backends @ {} s", num(interval_ms as f64 / 1000.0))
        } else {
            format!("{names} names × {ADDRESSES} addresses @ {} s, TTL {ttl} s", num(interval_ms as f64 / 1000.0))
        }
    };
    let ratio = |key: &dyn Fn(&Value) -> f64| median(&results[1].iter().zip(&results[0]).map(|(d, l)| key(d) / key(l)).collect::<Vec<_>>());
    let cpu = |r: &Value| r["cpu_s_per_1000"].as_f64().unwrap_or(f64::NAN);
    for (vi, rs) in results.iter().enumerate() {
        let cpu_ratio = ratio(&cpu);
        report.add(
            "11 DNS discovery",
            &format!("{}: CPU s per 1,000 probes", name(vi)),
            if vi == 0 {
                num(med(rs, "cpu_s_per_1000"))
            } else {
                format!("{} ({}× literal)", num(med(rs, "cpu_s_per_1000")), num(cpu_ratio))
            },
            if vi == 1 { "≤ 1.1× literal" } else { "" },
            (vi == 1).then_some(cpu_ratio <= 1.1),
        );
        let kib = median(&rs.iter().map(rss_per_endpoint).collect::<Vec<_>>());
        let rss_ratio = ratio(&rss_per_endpoint);
        report.add(
            "11 DNS discovery",
            &format!("{}: RSS KiB per endpoint / lag p99 ms", name(vi)),
            if vi == 0 {
                format!("{} / {}", num(kib), num(med(rs, "lag_p99_ms")))
            } else {
                format!("{} ({}× literal) / {}", num(kib), num(rss_ratio), num(med(rs, "lag_p99_ms")))
            },
            if vi == 1 { "≤ 1.1× literal" } else { "" },
            (vi == 1).then_some(rss_ratio <= 1.1),
        );
        for r in rs {
            let want = if sizes.strict { 0.95 } else { 0.5 };
            let ok = r["success_ratio"].as_f64().unwrap_or(0.0);
            report.sanity(ok >= want, format!("{}: success ratio {ok:.3} below {want:.3}", name(vi)));
            report.sanity(r["probes"].as_f64().unwrap_or(0.0) > 0.0, format!("{}: no probes measured", name(vi)));
        }
    }
    let planned = names as f64 / f64::from(ttl);
    let qps = med(&results[1], "dns_queries_per_s");
    report.add(
        "11 DNS discovery",
        &format!("{}: DNS queries/s answered (names/TTL = {})", name(1), num(planned)),
        num(qps),
        "≤ names/TTL",
        // dnsmasq's counter moves in whole queries over a window of one TTL.
        Some(qps <= planned * 1.05),
    );
    let change = med(&results[1], "change_s");
    report.add(
        "11 DNS discovery",
        &format!("{}: s from a record change to the endpoints published", name(1)),
        num(change),
        &format!("≤ TTL ({ttl} s)"),
        Some(change <= f64::from(ttl) + 1.0),
    );
    for r in &results[1] {
        report.sanity(
            r["change_s"].as_f64().is_some_and(f64::is_finite),
            format!("{}: the record change never reached the engine", name(1)),
        );
        report.sanity(
            r["dns_queries_per_s"].as_f64().unwrap_or(0.0) > 0.0,
            format!("{}: no DNS queries seen", name(1)),
        );
    }
}
