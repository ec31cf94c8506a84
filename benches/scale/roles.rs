//! What each child process does: serve the N simulated backends, run the
//! probe engine at scale, run the bare HTTP baseline, or serve gRPC health
//! (ours or bare tonic-health). Each reports in `child` protocol lines.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_fixture::{Behavior, FixtureOptions, FixtureServer};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::engine::{EndpointView, Engine, EngineConfig, Origin, ProbeObserver, ProbeResult};
use mcp_health::health::HealthStatuses;
use mcp_health::probe::HttpProber;
use mcp_health::proto::v1::{BackendSpec, DiscoverySpec, GroupSpec, ProbePolicy, TlsSpec};
use mcp_health::spec::{Limits, validate_group};
use serde_json::json;
use tokio::time::Instant;

use crate::child::{args, say, serve_commands};
use crate::proc_stats::{cpu_time, quantile, rss_mib};

/// Backends per group: the default per-group limit.
pub const GROUP_SIZE: usize = 1000;

pub fn install_crypto() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

pub fn arg_u64(a: &serde_json::Value, key: &str) -> u64 {
    a[key].as_u64().unwrap_or_else(|| panic!("child argument {key} missing"))
}

/// Path of backend `i`; hanging backends have their own path prefix.
pub fn backend_path(i: usize, hanging: bool) -> String {
    if hanging { format!("/h{i}") } else { format!("/b{i}") }
}

/// The fixture: one server answering `initialize` on every path, without
/// session ids, so a probe is exactly one fresh-connection POST (the same
/// request the bare baseline sends). Commands: `hang COUNT` makes /h0../h{COUNT-1}
/// hang; `rss` answers its RSS in MiB; `tls CERT KEY MAX` starts a TLS front
/// (an ingress, `mcp_fixture::tls`) before it, at most MAX connections open
/// (0: no cap), and answers its port; `tlsstats PORT` answers that front's
/// `connections full resumed refused`.
pub fn fixture() {
    let rt = runtime();
    let opts = FixtureOptions {
        session_ids: false,
        ..FixtureOptions::default()
    };
    let opts = FixtureOptions {
        // Scenario 10 starts a fixture whose tools/list returns this many tools.
        tools: args()["tools"].as_u64().map_or(opts.tools, |n| n as usize),
        ..opts
    };
    let server = rt.block_on(FixtureServer::start_with(opts.clone())).expect("fixture listens");
    // Scenario 11: the same server on more loopback addresses, same port.
    let mut more = Vec::new();
    say(&format!("ADDR {}", server.addr()));
    let mut fronts = std::collections::HashMap::new();
    serve_commands(|cmd| {
        if let Some(reply) = crate::fronts::front_command(&rt, &mut fronts, server.addr(), cmd) {
            return reply;
        }
        let mut words = cmd.split_whitespace();
        match (words.next(), words.next().and_then(|n| n.parse::<usize>().ok())) {
            (Some("hang"), Some(count)) => {
                server.set_path_behaviors((0..count).map(|i| (backend_path(i, true), Behavior::Hang)));
                String::new()
            }
            (Some("rss"), _) => format!("{:.1}", rss_mib()),
            (Some("also"), _) => {
                let ip: std::net::IpAddr = cmd["also".len()..].trim().parse().expect("also <loopback ip>");
                let at = SocketAddr::new(ip, server.addr().port());
                more.push(
                    rt.block_on(FixtureServer::start_on(at, opts.clone()))
                        .expect("fixture listens on one more address"),
                );
                String::new()
            }
            // Scenario 10: what the probes moved so far, as the fixture counts it.
            (Some("io"), _) => {
                let s = server.stats();
                format!("{} {} {} {}", s.initialize, s.tools_list, s.bytes_received, s.bytes_sent)
            }
            _ => format!("unknown command {cmd:?}"),
        }
    });
}

/// Records what the engine reports of each probe: the healthy backends'
/// scheduling lags (only while recording) and every outcome.
#[derive(Debug, Default)]
struct Recorder {
    recording: std::sync::atomic::AtomicBool,
    lags_ms: Mutex<Vec<f64>>,
    probes: AtomicU64,
    /// Probes of healthy (`b…`) backends, and how many of them succeeded.
    healthy_probes: AtomicU64,
    healthy_successes: AtomicU64,
    /// Successes of hanging (`h…`) backends: any is a harness bug.
    hanging_successes: AtomicU64,
    /// Scenario 11: how many endpoints backend `b0` has now (discovered
    /// backends only), as the engine last published them.
    b0_endpoints: AtomicU64,
}

impl ProbeObserver for Recorder {
    fn probe_finished(&self, r: &ProbeResult) {
        self.probes.fetch_add(1, Relaxed);
        let success = r.outcome.class == OutcomeClass::Success;
        if r.backend.starts_with('b') {
            self.healthy_probes.fetch_add(1, Relaxed);
            self.healthy_successes.fetch_add(u64::from(success), Relaxed);
        } else if success {
            self.hanging_successes.fetch_add(1, Relaxed);
        }
        if self.recording.load(Relaxed) && r.backend.starts_with('b') {
            // A poisoned lock means a panic elsewhere already failed the run.
            self.lags_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(r.scheduling_lag.as_secs_f64() * 1e3);
        }
    }

    fn endpoints(&self, _group: &str, backend: &str, endpoints: &[EndpointView]) {
        if backend == "b0" {
            self.b0_endpoints.store(endpoints.len() as u64, Relaxed);
        }
    }
}

pub fn duration(d: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Group specs for `n` backends at `url` (`{i}` is the backend's number,
/// `{path}` its path), with `tls`; the first `hanging` of them hanging.
pub fn groups_with(url: &str, tls: Option<TlsSpec>, n: usize, hanging: usize, policy: ProbePolicy) -> Vec<GroupSpec> {
    let backends: Vec<BackendSpec> = (0..n)
        .map(|i| {
            let hang = i < hanging;
            let name = if hang { format!("h{i}") } else { format!("b{i}") };
            BackendSpec {
                name,
                url: url
                    .replace("{i}", &i.to_string())
                    .replace("{k}", &(i % 10 + 1).to_string())
                    .replace("{path}", &backend_path(i, hang)),
                tls: tls.clone(),
                ..BackendSpec::default()
            }
        })
        .collect();
    backends
        .chunks(GROUP_SIZE)
        .enumerate()
        .map(|(g, chunk)| GroupSpec {
            name: format!("g{g}"),
            backends: chunk.to_vec(),
            policy: Some(policy),
        })
        .collect()
}

/// One engine run: N backends, measured after a warm-up of about one interval.
/// Reports probes/s, CPU, the healthy backends' scheduling lag and RSS.
/// Optional arguments (scenario 7): `url` (a `groups_with` template), `tls`
/// (a TlsSpec in proto3 JSON), `dns_server`; the child says `MEASURING` as
/// the measurement starts. Scenario 11: `discovery` (a DiscoverySpec in proto3
/// JSON, set on every backend), and `change_to` (backend `b0`'s endpoint
/// count after a record change): after measuring, the child says `CHANGE`,
/// waits for the parent's `changed` (sent once DNS serves the new records)
/// and reports how long the engine took to publish `change_to` endpoints.
pub fn engine_run() {
    install_crypto();
    let a = args();
    let addr: SocketAddr = a["addr"].as_str().and_then(|s| s.parse().ok()).expect("addr argument");
    let (n, hanging) = (arg_u64(&a, "n") as usize, arg_u64(&a, "hanging") as usize);
    let interval = Duration::from_millis(arg_u64(&a, "interval_ms"));
    let timeout = Duration::from_millis(arg_u64(&a, "timeout_ms"));
    let warmup = Duration::from_millis(arg_u64(&a, "warmup_ms"));
    let measure = Duration::from_millis(arg_u64(&a, "measure_ms"));
    let concurrency = arg_u64(&a, "concurrency") as usize;
    let url = a["url"].as_str().map_or_else(|| format!("http://{addr}{{path}}"), str::to_owned);
    let tls: Option<TlsSpec> = serde_json::from_value(a["tls"].clone()).expect("tls argument");
    let dns_server: Option<SocketAddr> = a["dns_server"].as_str().map(|s| s.parse().expect("dns_server argument"));
    let rt = runtime();
    let result = rt.block_on(async move {
        let recorder = Arc::new(Recorder::default());
        let rss_before = rss_mib();
        let config = EngineConfig {
            limits: Limits {
                max_backends_per_group: GROUP_SIZE,
                max_groups: 1000,
                ..Limits::default()
            },
            max_concurrent_probes: concurrency,
            observer: Some(recorder.clone()),
            dns: mcp_health::probe::DnsSettings { server: dns_server },
            ..EngineConfig::default()
        };
        let engine = Engine::start(config, Arc::new(HttpProber::default()), HealthStatuses::default());
        let policy = ProbePolicy {
            interval: Some(duration(interval)),
            timeout: Some(duration(timeout)),
            ..ProbePolicy::default()
        };
        let mut specs = groups_with(&url, tls, n, hanging, policy);
        // Scenario 10: every backend at depth TOOLS, its catalog read every
        // `catalog_interval_ms` (the policy's default when absent).
        if a["depth"].as_str() == Some("tools") {
            for g in &mut specs {
                for b in &mut g.backends {
                    b.depth = mcp_health::proto::v1::ProbeDepth::Tools as i32;
                }
                if let (Some(p), Some(ms)) = (g.policy.as_mut(), a["catalog_interval_ms"].as_u64()) {
                    p.catalog_interval = Some(duration(Duration::from_millis(ms)));
                }
            }
        }
        let discovery: Option<DiscoverySpec> = serde_json::from_value(a["discovery"].clone()).expect("discovery argument");
        if discovery.is_some() {
            for b in specs.iter_mut().flat_map(|g| g.backends.iter_mut()) {
                b.discovery = discovery.clone();
            }
        }
        for spec in specs {
            let valid = validate_group(&spec, "", engine.limits()).expect("bench group specs are valid");
            engine.apply(valid, Origin::Api).await.expect("apply");
        }
        tokio::time::sleep(warmup).await;
        say("MEASURING");
        recorder.recording.store(true, Relaxed);
        let counts = |r: &Recorder| {
            (
                r.probes.load(Relaxed),
                r.healthy_probes.load(Relaxed),
                r.healthy_successes.load(Relaxed),
                r.hanging_successes.load(Relaxed),
            )
        };
        let (cpu0, (probes0, hp0, ok0, hung_ok0), t0) = (cpu_time(), counts(&recorder), Instant::now());
        tokio::time::sleep(measure).await;
        let (cpu1, (probes1, hp1, ok1, hung_ok1), elapsed) = (cpu_time(), counts(&recorder), t0.elapsed());
        recorder.recording.store(false, Relaxed);
        let rss = rss_mib();
        let change_s = match a["change_to"].as_u64() {
            Some(want) => Some(record_change(&recorder, want).await),
            None => None,
        };
        let mut lags = std::mem::take(&mut *recorder.lags_ms.lock().unwrap_or_else(|p| p.into_inner()));
        engine.shutdown().await;
        let probes = (probes1 - probes0) as f64;
        let cpu = (cpu1 - cpu0).as_secs_f64();
        json!({
            "probes": probes,
            "probes_per_s": probes / elapsed.as_secs_f64(),
            // Over the healthy backends only: the hanging ones' timeouts are
            // expected failures, and their count in a short window is lumpy.
            "success_ratio": if hp1 > hp0 { (ok1 - ok0) as f64 / (hp1 - hp0) as f64 } else { 0.0 },
            "hanging_successes": hung_ok1 - hung_ok0,
            "cpu_cores": cpu / elapsed.as_secs_f64(),
            "cpu_s_per_1000": if probes > 0.0 { cpu / probes * 1000.0 } else { f64::NAN },
            "lag_samples": lags.len(),
            "lag_p50_ms": quantile(&mut lags, 0.50),
            "lag_p99_ms": quantile(&mut lags, 0.99),
            "rss_mib": rss,
            "rss_before_mib": rss_before,
            "change_s": change_s,
        })
    });
    say(&format!("RESULT {result}"));
}

/// Scenario 11's record change, from the engine child's side: says `CHANGE`,
/// waits for the parent's `changed` line, then for backend `b0` to have
/// `want` endpoints. Returns the seconds that took (NaN past two minutes).
async fn record_change(recorder: &Recorder, want: u64) -> f64 {
    say("CHANGE");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    if !matches!(line, Ok(Ok(ref l)) if l.trim() == "changed") {
        panic!("the parent did not say `changed`: {line:?}");
    }
    let t0 = Instant::now();
    while recorder.b0_endpoints.load(Relaxed) != want {
        if t0.elapsed() > Duration::from_secs(120) {
            say("OK");
            return f64::NAN;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("OK");
    t0.elapsed().as_secs_f64()
}

/// The physical ceiling: `concurrency` loops of fresh-connection POST
/// `initialize` with the prober's HTTP stack (reqwest, http1 only, no idle
/// connections) against the same server, for `measure_ms`.
pub fn bare_http() {
    install_crypto();
    let a = args();
    let addr: SocketAddr = a["addr"].as_str().and_then(|s| s.parse().ok()).expect("addr argument");
    let n = arg_u64(&a, "n") as usize;
    let concurrency = arg_u64(&a, "concurrency") as usize;
    let measure = Duration::from_millis(arg_u64(&a, "measure_ms"));
    let rt = runtime();
    let result = rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
        let done = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let stop = Instant::now() + measure;
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let (client, done, ok) = (client.clone(), done.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < stop {
                    let url = format!("http://{addr}{}", backend_path(i % n, false));
                    let sent = client
                        .post(url)
                        .header("accept", "application/json, text/event-stream")
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    if let Ok(resp) = sent
                        && resp.status().is_success() && resp.bytes().await.is_ok_and(|b| b.starts_with(b"{")) {
                            ok.fetch_add(1, Relaxed);
                        }
                    done.fetch_add(1, Relaxed);
                    i += concurrency;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (cpu_time() - cpu0).as_secs_f64();
        let requests = done.load(Relaxed) as f64;
        json!({
            "requests_per_s": requests / elapsed,
            "success_ratio": if requests > 0.0 { ok.load(Relaxed) as f64 / requests } else { 0.0 },
            "cpu_s_per_1000": if requests > 0.0 { cpu / requests * 1000.0 } else { f64::NAN },
        })
    });
    say(&format!("RESULT {result}"));
}

/// A gRPC server for the Check and Watch benchmarks: `kind` "daemon" is
/// mcp-healthd (its groups come over the API), "bare" is tonic-health with one
/// static SERVING status. Commands: `rss` answers its RSS in MiB.
pub fn grpc_server() {
    install_crypto();
    let a = args();
    let kind = a["kind"].as_str().unwrap_or("daemon").to_owned();
    let rt = runtime();
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let _guard = rt.block_on(async {
        match kind.as_str() {
            "bare" => {
                let (reporter, service) = tonic_health::server::health_reporter();
                reporter.set_service_status("bench", tonic_health::ServingStatus::Serving).await;
                let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
                say(&format!("ADDR {}", listener.local_addr().expect("bound address")));
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let server = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming);
                (None, Some(tokio::spawn(server)))
            }
            _ => {
                // Room for the fan-out scenario's 10,000 streams (the default is lower).
                let opts = DaemonOptions {
                    listen,
                    max_watch_streams: 20_000,
                    ..DaemonOptions::default()
                };
                let daemon = Daemon::start(opts).await.expect("daemon starts");
                say(&format!("ADDR {}", daemon.local_addr()));
                (Some(daemon), None)
            }
        }
    });
    serve_commands(|cmd| match cmd {
        "rss" => format!("{:.1}", rss_mib()),
        _ => format!("unknown command {cmd:?}"),
    });
}
