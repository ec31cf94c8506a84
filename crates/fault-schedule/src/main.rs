//! fault-schedule: random fault schedules against a real mcp-health cluster
//! (3 etcd nodes, 3 mcp-healthd replicas in network namespaces of their own,
//! a fleet of fixture MCP servers), everything recorded, then checked.
//!
//! `cargo run -p fault-schedule -- --seed 42 --faults 200`
//! (root: network namespaces; `cargo build --bins` first for mcp-healthd).
//! Exit status 1 with the failing seed printed when the checker finds a
//! violation.

#[path = "../../../tests/it/etcd_support/mod.rs"]
mod etcd_support;
#[path = "../../../tests/it/netns_support/mod.rs"]
mod netns_support;

mod checker;
mod faults;
mod history;
mod load;
mod sut;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use history::{History, Shared, lock, stop_pair};
use load::Gate;
use sut::System;

struct Args {
    seed: u64,
    faults: usize,
    backends: usize,
    groups: usize,
    /// Judge safety only (CI): a convergence past the cap does not fail the run.
    safety_only: bool,
    /// Print the schedule the seed gives and exit (no root, nothing started).
    plan_only: bool,
    bin: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: fault-schedule [--seed N] [--faults N] [--backends N] [--groups N] [--safety-only] [--plan] [--bin PATH]\n\
         defaults: --seed 42 --faults 20 --backends 4 (per group) --groups 3 --bin target/debug/mcp-healthd"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        seed: 42,
        faults: 20,
        backends: 4,
        groups: 3,
        safety_only: false,
        plan_only: false,
        bin: PathBuf::from("target/debug/mcp-healthd"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--seed" => a.seed = value().parse().unwrap_or_else(|_| usage()),
            "--faults" => a.faults = value().parse().unwrap_or_else(|_| usage()),
            "--backends" => a.backends = value().parse().unwrap_or_else(|_| usage()),
            "--groups" => a.groups = value().parse().unwrap_or_else(|_| usage()),
            "--bin" => a.bin = PathBuf::from(value()),
            "--safety-only" => a.safety_only = true,
            "--plan" => a.plan_only = true,
            _ => usage(),
        }
    }
    if a.backends < 2 || a.groups == 0 {
        usage();
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> ExitCode {
    let args = parse();
    if args.plan_only {
        let plan = faults::plan(args.seed, args.faults, args.backends * args.groups);
        let mut kinds = std::collections::BTreeSet::new();
        for (n, p) in plan.iter().enumerate() {
            println!("fault {:>4}/{}: {:?} held {:?}", n + 1, plan.len(), p.kind, p.hold);
            kinds.insert(p.kind.label());
        }
        println!("kinds {} of {}: {kinds:?}", kinds.len(), history::FaultKind::LABELS.len());
        return ExitCode::SUCCESS;
    }
    // etcd's data on tmpfs when there is one: fsyncs on a loaded disk stall
    // elections far more than any fault here. Set before any thread exists.
    if std::env::var_os("TMPDIR").is_none() && std::path::Path::new("/dev/shm").is_dir() {
        // SAFETY: single-threaded here (the runtime is built below).
        unsafe { std::env::set_var("TMPDIR", "/dev/shm") };
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let began = Instant::now();
    let plan = faults::plan(args.seed, args.faults, args.backends * args.groups);
    println!(
        "fault-schedule: seed {} faults {} backends {} groups {}",
        args.seed, args.faults, args.backends, args.groups
    );
    let mut system = System::start(&args.bin, args.backends * args.groups).await;
    let history: Shared = Default::default();
    let (stop_tx, stop) = stop_pair();
    let etcd = system.etcd.client().await;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(history::record_etcd(
        etcd.clone(),
        format!("{}/", sut::PREFIX),
        history.clone(),
        stop.clone(),
    )));
    for (i, r) in system.replicas.iter().enumerate() {
        tasks.push(tokio::spawn(history::record_watch(i, r.client.clone(), history.clone(), stop.clone())));
        tasks.push(tokio::spawn(history::record_status(i, r.client.clone(), history.clone(), stop.clone())));
    }
    // Each group has backends of its own: the fleet's log then names (group, backend) by server.
    let fleet: Vec<(String, String)> = system.fleet.iter().enumerate().map(|(i, f)| (format!("fleet-{i}"), f.url())).collect();
    let clients: Vec<sut::Client> = system.replicas.iter().map(|r| r.client.clone()).collect();
    let gate = Gate::default();
    for g in 0..args.groups {
        let seed = args.seed.wrapping_mul(1000).wrapping_add(g as u64);
        tasks.push(tokio::spawn(load::run_group(
            format!("g{g}"),
            seed,
            clients.clone(),
            fleet[g * args.backends..(g + 1) * args.backends].to_vec(),
            history.clone(),
            gate.clone(),
            stop.clone(),
        )));
    }
    // Ctrl-C or SIGTERM ends the schedule early; the run still checks what it
    // recorded and stops every process and namespace it started.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
            println!("interrupted: finishing the current fault, then checking");
            interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    // Let the load put the groups in place before the first fault.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (n, p) in plan.iter().enumerate() {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let mut fault = faults::run(&mut system, p).await;
        fault.converged = faults::converge(&system, &etcd, fault.healed, &gate).await;
        println!(
            "fault {:>4}/{}: {:?} held {:?}; converged after {:?}",
            n + 1,
            plan.len(),
            fault.kind,
            p.hold,
            fault.converged
        );
        faults::collect_requests(&system, &history);
        lock(&history).faults.push(fault);
        // Some load between faults.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    gate.pause().await;
    // The recorder's watch must reach etcd's last revision before the check.
    let (_, last) = etcd.range_prefix(&format!("{}/", sut::PREFIX)).await.unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lock(&history).watched_revision < last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    faults::collect_requests(&system, &history);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let sources: Vec<_> = system.replicas.iter().map(|r| r.fleet_source()).collect();
    let h: History = std::mem::take(&mut *lock(&history));
    let verdict = checker::check(&h, &sources);
    report(&args, &h, &verdict, began.elapsed(), last);
    let failed = !verdict.safety.is_empty() || (!args.safety_only && !verdict.liveness.is_empty());
    if failed {
        let logs = system.keep_logs();
        println!(
            "FAILED: seed {} — replay: cargo run -p fault-schedule -- --seed {} --faults {} (replica logs kept in {})",
            args.seed,
            args.seed,
            args.faults,
            logs.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn report(args: &Args, h: &History, v: &checker::Verdict, took: Duration, last_revision: i64) {
    use history::Outcome;
    let acked = h.ops.iter().filter(|o| matches!(o.outcome, Outcome::Acked { .. })).count();
    let indeterminate = h.ops.iter().filter(|o| matches!(o.outcome, Outcome::Indeterminate(_))).count();
    let failed = h.ops.len() - acked - indeterminate;
    let mut conv: Vec<Duration> = h.faults.iter().filter_map(|f| f.converged).collect();
    conv.sort();
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &h.faults {
        let k = f.kind.label();
        *kinds.entry(k).or_default() += 1;
    }
    println!("\n== fault-schedule report (seed {}) ==", args.seed);
    println!("run time               {:.0?}", took);
    println!("faults injected        {} {kinds:?}", h.faults.len());
    let missed = h.faults.iter().filter(|f| !f.took).count();
    if missed > 0 {
        println!("  {missed} of them not seen to take (a clock jump absent from the replica's probe times)");
    }
    println!(
        "operations             {} ({acked} acknowledged, {indeterminate} indeterminate, {failed} refused)",
        h.ops.len()
    );
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for o in &h.ops {
        if let Outcome::Failed(m) | Outcome::Indeterminate(m) = &o.outcome {
            let short: String = m.chars().take(90).collect();
            *reasons.entry(short).or_default() += 1;
        }
    }
    for (m, n) in reasons.iter().take(8) {
        println!("  {n:>5} x {m}");
    }
    println!("etcd events recorded   {} (to revision {last_revision})", h.events.len());
    println!(
        "writes checked         {} group writes, {} verdict writes",
        v.writes_checked, v.verdicts_checked
    );
    println!("probe intervals        {} (fleet requests {})", v.probe_windows_checked, h.requests.len());
    println!("watch messages         {}", v.watch_messages_checked);
    println!(
        "convergence            p50 {:.2?} p99 {:.2?} max {:.2?} ({} of {} within the cap)",
        percentile(&conv, 0.5),
        percentile(&conv, 0.99),
        conv.last().copied().unwrap_or_default(),
        conv.len(),
        h.faults.len()
    );
    println!("safety violations      {}", v.safety.len());
    for s in v.safety.iter().take(30) {
        println!("  - {s}");
    }
    println!("liveness violations    {}", v.liveness.len());
    for s in v.liveness.iter().take(10) {
        println!("  - {s}");
    }
}
