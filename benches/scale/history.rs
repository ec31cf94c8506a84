//! Scenario 7: the memory of the transition history at 10,000 backends, in a
//! child process of its own (RSS before and after), for two shapes: every
//! backend with a full hour of latency and one transition (a healthy fleet),
//! and every backend at the worst case (also 64 transitions kept, past the
//! bound). It also reports the heap bytes the records account for.

use std::time::Duration;

use mcp_health::core::outcome::Reason;
use mcp_health::history::{History, MAX_TRANSITIONS};
use mcp_health::proto::v1::{BackendStatus, ReasonCode};
use serde_json::json;

use crate::Sizes;
use crate::child::{Worker, args, say};
use crate::proc_stats::{median, rss_mib};
use crate::roles::GROUP_SIZE;
use crate::table::{Report, num};

const MINUTE_MS: u64 = 60_000;
const T0: u64 = 1_800_000_000_000;

/// Child role `history`: fills a History for `n` backends as `shape` says and reports.
pub fn history_child() {
    let a = args();
    let n = a["n"].as_u64().expect("n") as usize;
    let worst = a["shape"].as_str() == Some("worst");
    let before = rss_mib();
    let history = History::new();
    let refused = Reason::new(ReasonCode::ConnectionRefused, "connection refused");
    let ok = Reason::new(ReasonCode::Ok, "handshake succeeded");
    for i in 0..n {
        let (group, backend) = (format!("g{}", i / GROUP_SIZE), format!("b{i}"));
        history.observe_status(&group, &backend, None, BackendStatus::Unknown, T0);
        // An hour of probes, one every 10 s: every minute bucket in use.
        for s in 0..360u64 {
            let now = T0 + s * 10_000;
            let flap = worst && s % 2 == 1 && s / 2 < MAX_TRANSITIONS as u64 * 2;
            let reason = if flap { &refused } else { &ok };
            history.observe_probe(&group, &backend, now, Duration::from_millis(1 + s % 7), reason);
            let to = if flap { BackendStatus::Unhealthy } else { BackendStatus::Healthy };
            let from = if s == 0 {
                BackendStatus::Unknown
            } else if flap {
                BackendStatus::Healthy
            } else {
                BackendStatus::Unhealthy
            };
            if s == 0 || (worst && s / 2 < MAX_TRANSITIONS as u64 * 2) {
                history.observe_status(&group, &backend, Some(from), to, now);
            }
        }
    }
    let after = rss_mib();
    let heap = history.heap_bytes();
    let sample = history.backend("g0", "b0", T0 + 60 * MINUTE_MS - 1).expect("b0 recorded");
    say(&format!(
        "RESULT {}",
        json!({
            "backends": history.backends(),
            "rss_delta_mib": after - before,
            "heap_bytes": heap,
            "transitions_b0": sample.transitions.len(),
            "minutes_b0": sample.latency.len(),
        })
    ));
}

/// Scenario 7.
pub fn history(report: &mut Report, sizes: &Sizes) {
    let n = sizes.history_backends;
    for shape in ["healthy", "worst"] {
        let results: Vec<serde_json::Value> = (0..sizes.repeats)
            .map(|i| {
                eprintln!("history: {n} backends, {shape}, repeat {} of {}", i + 1, sizes.repeats);
                Worker::spawn("history", &json!({"n": n, "shape": shape})).result()
            })
            .collect();
        let med = |k: &str| median(&results.iter().map(|r| r[k].as_f64().unwrap_or(f64::NAN)).collect::<Vec<_>>());
        let per_backend_rss = med("rss_delta_mib") * 1024.0 * 1024.0 / n as f64;
        let per_backend_heap = med("heap_bytes") / n as f64;
        let label = if shape == "worst" {
            format!("{n} backends, worst case ({MAX_TRANSITIONS} transitions kept + full hour of latency)")
        } else {
            format!("{n} backends, healthy (1 transition + full hour of latency)")
        };
        report.add("7 history memory", &format!("{label}: RSS growth MiB"), num(med("rss_delta_mib")), "", None);
        report.add(
            "7 history memory",
            &format!("{label}: bytes per backend, RSS / records' heap"),
            format!("{} / {}", num(per_backend_rss), num(per_backend_heap)),
            if shape == "worst" { "bounded (< 16 KiB)" } else { "" },
            // Judged at full size only: at smoke sizes the allocator's first arenas dominate.
            (shape == "worst" && !sizes.strict).then_some(per_backend_rss < 16.0 * 1024.0),
        );
        for r in &results {
            report.sanity(r["backends"].as_u64() == Some(n as u64), format!("history {shape}: not every backend recorded"));
            report.sanity(
                r["minutes_b0"].as_u64() == Some(60),
                format!("history {shape}: the latency ring does not span the hour"),
            );
            let want = if shape == "worst" { MAX_TRANSITIONS as u64 } else { 1 };
            report.sanity(
                r["transitions_b0"].as_u64() == Some(want),
                format!("history {shape}: {} transitions kept, want {want}", r["transitions_b0"]),
            );
        }
    }
}
