//! The scale benchmark: one command that measures the eleven scenarios of
//! BENCHMARKS.md and prints a Markdown table of medians and same-run ratios.
//!
//! `cargo bench --bench scale` runs the full sizes; `BENCH_SMOKE=1` (or
//! `-- --smoke`) runs every scenario at tiny sizes and only checks that the
//! harness works. `BENCH_ONLY=1,3` picks scenarios; `BENCH_REPEATS=N` sets the
//! repeats. The binary re-executes itself for its child roles (see `child`).

mod catalog;
mod check;
mod child;
mod cost;
mod discovery;
mod fanout;
mod fronts;
mod history;
mod probing;
mod proc_stats;
mod roles;
mod table;
mod verdict;

use std::process::ExitCode;

use child::Worker;
use table::Report;

/// Sizes of one harness run.
pub struct Sizes {
    /// Smoke mode: nearly every healthy probe must succeed (tiny load; one
    /// scheduling hiccup on a shared 2-core box is not a harness bug).
    pub strict: bool,
    pub repeats: usize,
    pub backends: Vec<usize>,
    pub intervals_ms: Vec<u64>,
    /// Margin past the first interval before measuring.
    pub settle_ms: u64,
    pub min_measure_ms: u64,
    pub peak_backends: usize,
    pub peak_concurrency: usize,
    pub peak_measure_ms: u64,
    pub verdict_cycles: usize,
    pub watch_streams: Vec<usize>,
    pub watch_changes: usize,
    pub check_concurrency: usize,
    pub check_measure_ms: u64,
    /// Backends whose history is filled (scenario 7).
    pub history_backends: usize,
    /// Scenario 8: backends per variant, their interval, the DNS records' TTL.
    pub cost_backends: usize,
    pub cost_interval_ms: u64,
    pub dns_ttl_s: u32,
    /// Scenario 9: backends applied at once, and the front's connection cap.
    pub startup_backends: usize,
    pub startup_cap: usize,
    /// Scenario 9: the interval, and the first probes per second with the spread.
    pub startup_interval_ms: u64,
    pub startup_rate: u32,
    /// Scenario 10: backends per mode and their interval.
    pub catalog_backends: usize,
    pub catalog_interval_ms: u64,
    /// Scenario 11: names with 10 addresses each (at `cost_interval_ms` and
    /// `dns_ttl_s`), against 10× as many literal backends.
    pub discovery_names: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            strict: false,
            repeats: 3,
            backends: vec![1_000, 10_000],
            intervals_ms: vec![10_000, 1_000],
            settle_ms: 1_000,
            min_measure_ms: 6_000,
            peak_backends: 2_000,
            peak_concurrency: 64,
            peak_measure_ms: 5_000,
            verdict_cycles: 10,
            watch_streams: vec![1_000, 10_000],
            watch_changes: 5,
            check_concurrency: 64,
            check_measure_ms: 5_000,
            history_backends: 10_000,
            cost_backends: 10_000,
            cost_interval_ms: 10_000,
            dns_ttl_s: 30,
            startup_backends: 10_000,
            catalog_backends: 1_000,
            catalog_interval_ms: 1_000,
            startup_cap: 200,
            startup_interval_ms: 10_000,
            startup_rate: 1000,
            discovery_names: 1_000,
        }
    }

    fn smoke() -> Sizes {
        Sizes {
            strict: true,
            repeats: 1,
            backends: vec![20],
            intervals_ms: vec![500],
            settle_ms: 200,
            min_measure_ms: 1_000,
            peak_backends: 50,
            peak_concurrency: 8,
            peak_measure_ms: 1_000,
            verdict_cycles: 1,
            watch_streams: vec![20],
            watch_changes: 2,
            check_concurrency: 4,
            check_measure_ms: 500,
            history_backends: 200,
            cost_backends: 20,
            cost_interval_ms: 500,
            dns_ttl_s: 1,
            startup_backends: 50,
            catalog_backends: 20,
            // catalogInterval's minimum is 1 s, and the worst-case mode reads at every probe.
            catalog_interval_ms: 1_000,
            startup_cap: 10,
            startup_interval_ms: 2_000,
            startup_rate: 50,
            discovery_names: 5,
        }
    }
}

/// Every probe allocates short-lived buffers on many threads; mimalloc's
/// thread-local free lists cost measurably less CPU than glibc malloc there
/// (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(child::ROLE_ENV) {
        match role.as_str() {
            "fixture" => roles::fixture(),
            "engine" => roles::engine_run(),
            "bare-http" => roles::bare_http(),
            "grpc-server" => roles::grpc_server(),
            "history" => history::history_child(),
            "startup" => cost::startup_run(),
            other => {
                eprintln!("unknown {} {other:?}", child::ROLE_ENV);
                return ExitCode::from(2);
            }
        }
        return ExitCode::SUCCESS;
    }
    roles::install_crypto();
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1") || std::env::args().any(|a| a == "--smoke");
    let mut sizes = if smoke { Sizes::smoke() } else { Sizes::full() };
    if let Some(r) = std::env::var("BENCH_REPEATS").ok().and_then(|r| r.parse().ok()) {
        sizes.repeats = r;
    }
    let only: Option<Vec<u32>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let wanted = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));

    let mut fixture = Worker::spawn("fixture", &serde_json::json!({}));
    let fixture_addr = fixture.expect("ADDR");
    let mut report = Report::default();
    let started = std::time::Instant::now();
    if wanted(1) || wanted(3) {
        probing::scale(&mut report, &mut fixture, &fixture_addr, &sizes);
    }
    if wanted(2) {
        probing::ceiling(&mut report, &fixture_addr, &sizes);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if wanted(4) {
        rt.block_on(verdict::verdict(&mut report, &sizes));
    }
    if wanted(5) {
        rt.block_on(fanout::fanout(&mut report, &fixture_addr, &sizes));
    }
    if wanted(6) {
        rt.block_on(check::check(&mut report, &fixture_addr, &sizes));
    }
    if wanted(7) {
        history::history(&mut report, &sizes);
    }
    if wanted(8) {
        cost::cost(&mut report, &mut fixture, &fixture_addr, &sizes);
    }
    if wanted(9) {
        cost::startup(&mut report, &mut fixture, &sizes);
    }
    if wanted(10) {
        catalog::catalog(&mut report, &sizes);
    }
    if wanted(11) {
        discovery::discovery(&mut report, &mut fixture, &fixture_addr, &sizes);
    }
    let fixture_rss = fixture.command("rss");
    drop(fixture);

    println!();
    println!(
        "mcp-health scale benchmark ({}; {} repeats; medians; {} cores; took {:.0} s; fixture child RSS {fixture_rss} MiB)",
        if smoke { "SMOKE sizes: timings meaningless" } else { "full sizes" },
        sizes.repeats,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    println!();
    report.print();
    if report.broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} harness check(s) failed:", report.broken.len());
        for b in &report.broken {
            eprintln!("  - {b}");
        }
        ExitCode::FAILURE
    }
}
