//! Scenario 10 (issue 22): what reading a tool catalog costs. One fixture
//! child lists 100 tools; engine children probe N backends of it at depth
//! INITIALIZE, at depth TOOLS with the default `catalogInterval` (5 min: the
//! catalog is read at a backend's first probe, then the probes between reads
//! are what is measured), and at depth TOOLS reading the catalog at every
//! probe due (`catalogInterval` = the interval: the worst case; a probe that
//! jitter brings before the catalog is due skips it). The modes take
//! turns within each repeat, so each ratio is of runs made side by side.

use serde_json::{Value, json};

use crate::Sizes;
use crate::child::Worker;
use crate::proc_stats::median;
use crate::table::{Report, num};

/// Tools the fixture lists, as the benchmark asks.
const TOOLS: u64 = 100;

struct Mode {
    label: &'static str,
    depth: &'static str,
    /// None: the policy's default.
    catalog_interval_ms: Option<u64>,
}

pub fn catalog(report: &mut Report, sizes: &Sizes) {
    let mut fixture = Worker::spawn("fixture", &json!({"tools": TOOLS}));
    let addr = fixture.expect("ADDR");
    let (n, interval_ms) = (sizes.catalog_backends, sizes.catalog_interval_ms);
    let modes = [
        Mode {
            label: "depth INITIALIZE",
            depth: "initialize",
            catalog_interval_ms: None,
        },
        Mode {
            label: "depth TOOLS, default catalogInterval (between reads)",
            depth: "tools",
            catalog_interval_ms: None,
        },
        Mode {
            label: "depth TOOLS, catalogInterval = the interval (worst case)",
            depth: "tools",
            catalog_interval_ms: Some(interval_ms),
        },
    ];
    let warmup = interval_ms + sizes.settle_ms;
    let measure = (2 * interval_ms).max(sizes.min_measure_ms);
    let mut results: Vec<Vec<Value>> = modes.iter().map(|_| Vec::new()).collect();
    for i in 0..sizes.repeats {
        for (m, mode) in modes.iter().enumerate() {
            eprintln!("catalog: {}, repeat {} of {}", mode.label, i + 1, sizes.repeats);
            let mut args = json!({
                "addr": addr, "n": n, "hanging": 0, "interval_ms": interval_ms,
                "timeout_ms": (interval_ms / 2).min(5_000), "warmup_ms": warmup, "measure_ms": measure,
                "concurrency": 1024, "depth": mode.depth,
            });
            if let Some(ms) = mode.catalog_interval_ms {
                args["catalog_interval_ms"] = json!(ms);
            }
            // Bytes per probe as the fixture counts them on the wire, over the
            // engine's measuring window (from its MEASURING line to its result).
            let mut engine = Worker::spawn("engine", &args);
            engine.expect("MEASURING");
            let before = io(&mut fixture);
            let mut result = engine.result();
            let after = io(&mut fixture);
            let probes = after[0] - before[0];
            result["tools_lists"] = json!(after[1] - before[1]);
            result["tools_lists_per_1000"] = json!(if probes > 0.0 { (after[1] - before[1]) * 1000.0 / probes } else { f64::NAN });
            result["bytes_per_probe"] = json!(if probes > 0.0 {
                (after[2] + after[3] - before[2] - before[3]) / probes
            } else {
                f64::NAN
            });
            results[m].push(result);
        }
    }
    drop(fixture);
    let med = |m: usize, key: &str| median(&results[m].iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect::<Vec<_>>());
    let scenario = "10 catalog";
    let base_cpu = med(0, "cpu_s_per_1000");
    let base_rss = med(0, "rss_mib");
    for (m, mode) in modes.iter().enumerate() {
        let name = format!("{n} backends @ {} s, {TOOLS} tools, {}", interval_ms as f64 / 1000.0, mode.label);
        let cpu = med(m, "cpu_s_per_1000");
        let ratio = cpu / base_cpu;
        let default_tools = m == 1;
        report.add(
            scenario,
            &format!("{name}: CPU s per 1,000 probes (ratio to INITIALIZE)"),
            format!("{} ({})", num(cpu), num(ratio)),
            if default_tools { "< 1.2x" } else { "" },
            default_tools.then_some(ratio < 1.2),
        );
        report.add(
            scenario,
            &format!("{name}: tools/list per 1,000 probes"),
            num(med(m, "tools_lists_per_1000")),
            "",
            None,
        );
        report.add(
            scenario,
            &format!("{name}: bytes per probe on the wire (both directions)"),
            num(med(m, "bytes_per_probe")),
            "",
            None,
        );
        let rss = med(m, "rss_mib");
        report.add(
            scenario,
            &format!("{name}: RSS MiB (KiB per backend above INITIALIZE)"),
            format!("{} ({})", num(rss), num((rss - base_rss) * 1024.0 / n as f64)),
            "",
            None,
        );
        for r in &results[m] {
            report.sanity(r["probes"].as_f64().unwrap_or(0.0) > 0.0, format!("{name}: no probes measured"));
            let want = if sizes.strict { 0.95 } else { 0.5 };
            let ok = r["success_ratio"].as_f64().unwrap_or(0.0);
            report.sanity(ok >= want, format!("{name}: success ratio {ok:.3} below {want:.3}"));
        }
    }
    // A catalog read moves the 100 tools: a mode that reads at every probe
    // moves more bytes per probe than one that never does, or the harness
    // did not read catalogs at all.
    report.sanity(
        med(2, "bytes_per_probe") > med(0, "bytes_per_probe") * 1.5,
        "catalog: reading the catalog at every probe moved no more bytes than INITIALIZE",
    );
    report.sanity(
        results[2].iter().all(|r| r["tools_lists"].as_f64().unwrap_or(0.0) > 0.0),
        "catalog: no tools/list in the mode that reads the catalog at every probe",
    );
}

/// The fixture's counters: initialize and tools/list requests, bytes received and sent.
fn io(fixture: &mut Worker) -> Vec<f64> {
    let line = fixture.command("io");
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(v.len(), 4, "the fixture's io line: {line:?}");
    v
}
