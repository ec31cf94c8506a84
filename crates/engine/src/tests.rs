//! Engine tests with paused time and a scripted prober: scheduling cadence,
//! thresholds over time, hanging backends and slow watchers, with no sleeps
//! and no network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use mcp_health_core::outcome::{ProbeOutcome, Reason, ServerFacts};
use mcp_health_core::spec::validate_group;
use mcp_health_probe::{Probe, ProbeFuture, ProbeMemory, ProbeReport};
use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health_proto::v1::{BackendStatus, ReasonCode};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Script {
    Up,
    Down,
    /// Never answers, ignoring its deadline, to exercise the scheduler's own bound.
    Hang,
    /// Refused, once the test releases it (`Scripted::release`).
    HeldDown,
    /// JSON-RPC -32023 from the server itself, asking for this many seconds.
    RateLimited(Option<u64>),
    /// A bare 429 from a front, with this Retry-After in seconds.
    Bare429(Option<u64>),
    /// 503 with this Retry-After in seconds.
    Unavailable(Option<u64>),
}

/// A prober whose answer per backend URL is set by the test.
#[derive(Default)]
pub(crate) struct Scripted {
    scripts: Mutex<HashMap<String, Script>>,
    calls: Mutex<HashMap<String, usize>>,
    /// When each backend was probed (tokio's clock).
    times: Mutex<HashMap<String, Vec<Instant>>>,
    total: AtomicUsize,
    /// The revision each probe found remembered, in order (an answering
    /// probe remembers "2025-06-18", as a real one detects it).
    remembered: Mutex<Vec<Option<String>>>,
    /// Lets a `HeldDown` probe answer.
    release: tokio::sync::Notify,
}

impl Scripted {
    pub(crate) fn set(&self, url: &str, s: Script) {
        self.scripts.lock().unwrap().insert(url.to_owned(), s);
    }
    pub(crate) fn calls(&self, url: &str) -> usize {
        self.calls.lock().unwrap().get(url).copied().unwrap_or(0)
    }
    /// The gaps between consecutive probes of `url`.
    fn gaps(&self, url: &str) -> Vec<Duration> {
        let times = self.times.lock().unwrap().get(url).cloned().unwrap_or_default();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl Probe for Scripted {
    fn probe<'a>(&'a self, target: &'a ProbeTarget, memory: &'a mut ProbeMemory, _deadline: Instant) -> ProbeFuture<'a> {
        let url = target.backend.spec.url.clone();
        self.remembered.lock().unwrap().push(memory.detected_revision.clone());
        *self.calls.lock().unwrap().entry(url.clone()).or_default() += 1;
        self.times.lock().unwrap().entry(url.clone()).or_default().push(Instant::now());
        self.total.fetch_add(1, Ordering::Relaxed);
        let script = self.scripts.lock().unwrap().get(&url).copied().unwrap_or(Script::Up);
        Box::pin(async move {
            let outcome = match script {
                Script::Up => {
                    memory.detected_revision = Some("2025-06-18".into());
                    ProbeOutcome::success(ServerFacts {
                        protocol_version: "2025-06-18".into(),
                        ..Default::default()
                    })
                }
                Script::Down => ProbeOutcome::failure(Reason::new(ReasonCode::ConnectionRefused, "connection refused")),
                Script::Hang => std::future::pending().await,
                Script::HeldDown => {
                    self.release.notified().await;
                    ProbeOutcome::failure(Reason::new(ReasonCode::ConnectionRefused, "connection refused"))
                }
                Script::RateLimited(wait) => ProbeOutcome {
                    retry_after: wait.map(Duration::from_secs),
                    ..ProbeOutcome::rate_limited(Reason::http(ReasonCode::RateLimited, 429, "-32023"), ServerFacts::default())
                },
                Script::Bare429(wait) => ProbeOutcome {
                    retry_after: wait.map(Duration::from_secs),
                    ..ProbeOutcome::throttled(Reason::http(ReasonCode::RateLimited, 429, "bare 429"))
                },
                Script::Unavailable(wait) => ProbeOutcome {
                    retry_after: wait.map(Duration::from_secs),
                    ..ProbeOutcome::failure(Reason::http(ReasonCode::HttpStatus, 503, "HTTP 503"))
                },
            };
            ProbeReport {
                outcome,
                latency: Duration::from_millis(1),
            }
        })
    }
}

pub(crate) fn spec(yaml: &str) -> ValidGroup {
    let spec: mcp_health_proto::v1::GroupSpec = serde_yaml_ng::from_str(yaml).unwrap();
    validate_group(&spec, "spec", &Default::default()).unwrap()
}

fn start(prober: Arc<Scripted>, watch_buffer: usize) -> Engine {
    let config = EngineConfig {
        watch_buffer,
        ..EngineConfig::default()
    };
    Engine::start(config, prober, HealthStatuses::default())
}

pub(crate) async fn status_of(engine: &Engine, group: &str, backend: &str) -> BackendStatus {
    let h = engine.get(group.into()).await.unwrap();
    h.backend(backend).unwrap().status()
}

const TWO: &str = "name: g\nbackends:\n  - name: ok\n    url: http://ok.test/mcp\n  - name: bad\n    url: http://bad.test/mcp\n";

#[tokio::test(start_paused = true)]
async fn first_probe_is_immediate_and_a_failure_is_confirmed_at_the_edge_interval() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    let t0 = Instant::now();
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    // Both first verdicts arrive without any time passing.
    while engine.get("g".into()).await.unwrap().verdict.summary.unknown > 0 {
        sub.events.recv().await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(status_of(&engine, "g", "bad").await, BackendStatus::Healthy);

    // Default policy: 10 s interval ±10 %, 3 failures to UNHEALTHY.
    prober.set("http://bad.test/mcp", Script::Down);
    loop {
        let e = sub.events.recv().await.unwrap();
        if e.group.backend("bad").unwrap().status() == BackendStatus::Unhealthy {
            break;
        }
    }
    // Three failed probes: the first at the next interval (9–11 s), the two
    // that confirm it at the default edge interval (2 s, jittered down to 1.6 s).
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(9_000 + 2 * 1_600) && elapsed <= Duration::from_secs(11 + 2 + 2),
        "{elapsed:?}"
    );
    assert_eq!(status_of(&engine, "g", "ok").await, BackendStatus::Healthy);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_backend_never_delays_another() {
    let prober = Arc::new(Scripted::default());
    prober.set("http://bad.test/mcp", Script::Hang);
    let engine = start(prober.clone(), 64);
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(100)).await;
    // ~1 probe at once, then one per 9–11 s: at least 9 in 100 s.
    let ok = prober.calls("http://ok.test/mcp");
    assert!(ok >= 9, "healthy backend probed {ok} times");
    // The hanging one is abandoned at timeout + grace (7 s) and keeps its own cadence.
    let bad = prober.calls("http://bad.test/mcp");
    assert!(bad >= 5, "hanging backend probed {bad} times");
    assert_eq!(status_of(&engine, "g", "bad").await, BackendStatus::Unhealthy);
    let h = engine.get("g".into()).await.unwrap();
    assert_eq!(h.backend("bad").unwrap().endpoint().observed.reason.code, ReasonCode::Timeout);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_stuck_watcher_never_stalls_the_owner() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 4);
    engine
        .apply(
            spec("name: g\npolicy:\n  interval: 1s\n  timeout: 0.5s\n  unhealthyThreshold: 1\nbackends:\n  - name: flappy\n    url: http://flappy.test/mcp\n"),
            Origin::Api,
        )
        .await
        .unwrap();
    // Subscribed and never read.
    let mut stuck = engine.watch(None).await.unwrap();
    for i in 0..40 {
        prober.set("http://flappy.test/mcp", if i % 2 == 0 { Script::Down } else { Script::Up });
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The owner kept going: probes ran and reads answer at once.
    assert!(prober.total.load(Ordering::Relaxed) >= 30);
    assert!(engine.get("g".into()).await.is_ok());
    // The stuck watcher is told it lagged, which makes its stream resynchronize.
    assert!(matches!(stuck.events.recv().await, Err(tokio::sync::broadcast::error::RecvError::Lagged(_))));
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn removed_backends_are_gone_and_changed_ones_restart_at_unknown() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let before = engine.get("g".into()).await.unwrap();
    let ok_successes = before.backends[1].endpoint().observed.verdict.consecutive_successes;
    assert!(ok_successes >= 2);

    // Drop "bad"; keep "ok" unchanged.
    let applied = engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://ok.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    assert_eq!(applied.generation, 2);
    let after = engine.get("g".into()).await.unwrap();
    assert_eq!(after.backends.len(), 1, "{after:#?}");
    assert_eq!(
        after.backends[0].endpoint().observed.verdict.consecutive_successes,
        ok_successes,
        "unchanged backend keeps its counters"
    );

    // Change its URL: back to UNKNOWN until probed (the new URL's probe hangs,
    // so the verdict stays UNKNOWN while we look).
    prober.set("http://moved.test/mcp", Script::Hang);
    engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://moved.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    let moved = engine.get("g".into()).await.unwrap();
    assert_eq!(moved.backends[0].status(), BackendStatus::Unknown);
    // An identical apply changes nothing.
    let same = engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://moved.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    assert!(!same.changed);
    engine.shutdown().await;
}

/// A group of `n` backends with `policy` (a YAML flow mapping).
fn big_group(name: &str, n: usize, policy: &str) -> ValidGroup {
    let mut yaml = format!("name: {name}\npolicy: {policy}\nbackends:\n");
    for i in 0..n {
        yaml.push_str(&format!("  - name: b{i}\n    url: http://{name}-{i}.test/mcp\n"));
    }
    let limits = mcp_health_core::spec::Limits {
        max_backends_per_group: n.max(1),
        ..Default::default()
    };
    validate_group(&serde_yaml_ng::from_str(&yaml).unwrap(), "spec", &limits).unwrap()
}

/// Backends probed at least once by `at` after `t0` (timers fire on whole
/// milliseconds: check between slots), with the group's phase then.
async fn started_by(engine: &Engine, prober: &Scripted, t0: Instant, at: Duration, group: &str) -> (usize, GroupPhase) {
    tokio::time::sleep_until(t0 + at).await;
    let phase = engine.get(group.into()).await.unwrap().phase();
    (prober.calls.lock().unwrap().len(), phase)
}

fn paced(per_second: u32, prober: Arc<Scripted>) -> Engine {
    let config = EngineConfig {
        initial_probes_per_second: per_second,
        watch_buffer: 4096,
        ..EngineConfig::default()
    };
    Engine::start(config, prober, HealthStatuses::default())
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn first_probes_are_paced_a_burst_at_once_then_a_steady_rate() {
    let prober = Arc::new(Scripted::default());
    // 400 first probes a second (one per 2.5 ms), 40 at once; the window (10 s) is never reached.
    let engine = paced(400, prober.clone());
    let t0 = Instant::now();
    engine.apply(big_group("big", 1000, "{interval: 10s}"), Origin::Api).await.unwrap();
    let (n, phase) = started_by(&engine, &prober, t0, MS, "big").await;
    // The burst at once. The group is routable as soon as its first backends
    // have verdicts: READY, as the backends not probed yet are neutral (issue
    // 19); before any verdict it is PENDING, like any new group.
    assert_eq!((n, phase), (40, GroupPhase::Ready), "the burst at once");
    let (n, _) = started_by(&engine, &prober, t0, 451 * MS, "big").await;
    assert_eq!(n, 40 + 180, "one per 2.5 ms after the burst");
    let (n, phase) = started_by(&engine, &prober, t0, 2401 * MS, "big").await;
    assert_eq!((n, phase), (1000, GroupPhase::Ready));
    // A small group applied after a quiet spell (the burst has refilled) is probed at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1 = Instant::now();
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    let (n, phase) = started_by(&engine, &prober, t1, MS, "g").await;
    assert_eq!((n, phase), (1002, GroupPhase::Ready));
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_first_probe_waits_past_its_window() {
    let prober = Arc::new(Scripted::default());
    let engine = paced(100, prober.clone());
    let t0 = Instant::now();
    // Paced, 1000 first probes would take 10 s; the window is min(interval 2 s, initialSpread 5 s).
    engine
        .apply(big_group("big", 1000, "{interval: 2s, timeout: 1s, initialSpread: 5s}"), Origin::Api)
        .await
        .unwrap();
    let (n, _) = started_by(&engine, &prober, t0, MS, "big").await;
    assert!((10..=20).contains(&n), "a burst of 10, and the random share of the first millisecond: {n}");
    let (n, _) = started_by(&engine, &prober, t0, 1001 * MS, "big").await;
    assert!(n > 110 && n < 900, "spread over the window: {n}");
    let (n, phase) = started_by(&engine, &prober, t0, 2001 * MS, "big").await;
    assert_eq!((n, phase), (1000, GroupPhase::Ready), "every first probe within the window");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn initial_spread_zero_probes_everything_at_once() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 4096);
    let t0 = Instant::now();
    engine.apply(big_group("big", 1000, "{initialSpread: 0s}"), Origin::Api).await.unwrap();
    let (n, phase) = started_by(&engine, &prober, t0, MS, "big").await;
    assert_eq!((n, phase), (1000, GroupPhase::Ready));
    engine.shutdown().await;
}

/// A store whose writes wait at a gate the test opens (a slow fsync or etcd).
struct GatedStore {
    closed: tokio::sync::watch::Sender<bool>,
    entered: tokio::sync::Notify,
    puts: AtomicUsize,
}

impl Default for GatedStore {
    fn default() -> Self {
        GatedStore {
            closed: tokio::sync::watch::Sender::new(false),
            entered: tokio::sync::Notify::new(),
            puts: AtomicUsize::new(0),
        }
    }
}

impl GatedStore {
    fn set_closed(&self, closed: bool) {
        self.closed.send_replace(closed);
    }
}

impl crate::store::Persist for GatedStore {
    fn put<'a>(&'a self, _: &'a mcp_health_proto::v1::GroupSpec, _: u64) -> crate::store::StoreFuture<'a> {
        Box::pin(async move {
            self.entered.notify_one();
            let mut closed = self.closed.subscribe();
            // The sender lives in `self`, so the channel cannot close while we wait.
            let _ = closed.wait_for(|closed| !closed).await;
            self.puts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
    fn remove<'a>(&'a self, _: &'a str) -> crate::store::StoreFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

// Nothing waits on a timer: the result comes from an on-demand probe, and the
// deadline (reached at once by the paused clock if the owner stalls) only
// turns a stall into a failure.
#[tokio::test(start_paused = true)]
async fn a_slow_store_write_never_stalls_probe_results_and_the_ack_waits_for_it() {
    let prober = Arc::new(Scripted::default());
    prober.set("http://bad.test/mcp", Script::Down);
    let store = Arc::new(GatedStore::default());
    let engine = Engine::start_with_store(EngineConfig::default(), prober.clone(), HealthStatuses::default(), Some(store.clone()));
    engine.apply(spec(TWO), Origin::Api).await.unwrap();

    store.set_closed(true);
    let writer = engine.clone();
    let pending = tokio::spawn(async move {
        writer
            .apply(spec("name: h\nbackends:\n  - name: x\n    url: http://x.test/mcp\n"), Origin::Api)
            .await
    });
    store.entered.notified().await;

    // While the write waits for the disk, g's results still fold in.
    let probed = tokio::time::timeout(Duration::from_secs(60), engine.probe_backend("g".into(), "bad".into())).await;
    let probed = probed.expect("probe results stalled behind a store write").unwrap();
    assert_eq!(probed.backend.status(), BackendStatus::Unhealthy);
    // The change is neither acknowledged nor visible before its commit.
    assert!(matches!(engine.get("h".into()).await, Err(EngineError::GroupNotFound(_))));
    assert!(!pending.is_finished());
    assert_eq!(store.puts.load(Ordering::SeqCst), 1);

    store.set_closed(false);
    let applied = pending.await.unwrap().unwrap();
    assert_eq!((applied.generation, store.puts.load(Ordering::SeqCst)), (1, 2));
    assert!(engine.get("h".into()).await.is_ok());
    engine.shutdown().await;
}

/// A store that records its writes.
#[derive(Default)]
struct RecordingStore {
    writes: Mutex<Vec<String>>,
}

impl crate::store::Persist for RecordingStore {
    fn put<'a>(&'a self, spec: &'a mcp_health_proto::v1::GroupSpec, generation: u64) -> crate::store::StoreFuture<'a> {
        self.writes.lock().unwrap().push(format!("put {} {generation}", spec.name));
        Box::pin(async { Ok(()) })
    }
    fn remove<'a>(&'a self, name: &'a str) -> crate::store::StoreFuture<'a> {
        self.writes.lock().unwrap().push(format!("remove {name}"));
        Box::pin(async { Ok(()) })
    }
}

/// A group deleted on another replica is already gone from the store: the
/// engine forgets it without a write (a remove could hit a group re-created
/// there meanwhile), and refuses it for a config-file group like a delete.
#[tokio::test(start_paused = true)]
async fn forget_removes_a_group_without_a_store_write() {
    let store = Arc::new(RecordingStore::default());
    let engine = Engine::start_with_store(
        EngineConfig::default(),
        Arc::new(Scripted::default()),
        HealthStatuses::default(),
        Some(store.clone()),
    );
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    engine.forget("g".into()).await.unwrap();
    assert!(matches!(engine.get("g".into()).await, Err(EngineError::GroupNotFound(_))));
    assert!(matches!(engine.forget("g".into()).await, Err(EngineError::GroupNotFound(_))));
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    engine.delete("g".into()).await.unwrap();
    assert_eq!(*store.writes.lock().unwrap(), ["put g 1", "put g 1", "remove g"]);
    engine
        .replace_all(vec![spec(TWO)], Origin::ConfigFile("/etc/groups.yaml".into()))
        .await
        .unwrap();
    assert!(matches!(engine.forget("g".into()).await, Err(EngineError::ReadOnly { .. })));
    engine.shutdown().await;
}

/// Cluster mode as the engine sees it: another replica owns every backend.
#[derive(Debug)]
struct OwnsNothing;

impl seam::ClusterSeam for OwnsNothing {
    fn owns(&self, _: &str, _: &str) -> bool {
        false
    }
    fn verdict_changed(&self, _: &str, _: &str, _: &seam::SharedVerdict) {}
}

/// Cluster mode with ownership the test moves.
#[derive(Debug, Default)]
struct Owns(std::sync::atomic::AtomicBool);

impl seam::ClusterSeam for Owns {
    fn owns(&self, _: &str, _: &str) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn verdict_changed(&self, _: &str, _: &str, _: &seam::SharedVerdict) {}
}

/// A scheduled probe that ends after its backend moved to another replica
/// (it started while this one probed every backend, degraded, and ended after
/// it rejoined) changes nothing here: the owner's shared verdict stands.
/// Folded, its result (a failure the partition caused) replaced that verdict
/// for good, since the owner shares only changes (found by the fault-schedule
/// harness, seed 42, fault 192: a replica cut off from etcd and the fleet
/// showed every backend DEGRADED after the heal, the others HEALTHY).
#[tokio::test(start_paused = true)]
async fn a_scheduled_result_for_a_backend_owned_elsewhere_now_is_dropped() {
    let prober = Arc::new(Scripted::default());
    let owns = Arc::new(Owns::default());
    owns.0.store(true, Ordering::SeqCst);
    let config = EngineConfig {
        cluster: Some(owns.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, prober.clone(), HealthStatuses::default());
    let url = "http://a.test/mcp";
    engine
        .apply(
            spec("name: g\npolicy: {interval: 60s}\nbackends:\n  - name: a\n    url: http://a.test/mcp\n"),
            Origin::Api,
        )
        .await
        .unwrap();
    while status_of(&engine, "g", "a").await != BackendStatus::Healthy {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next probe starts while this replica owns the backend...
    prober.set(url, Script::HeldDown);
    while prober.calls(url) < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // ... and ends, refused, after the backend moved to another replica.
    owns.0.store(false, Ordering::SeqCst);
    prober.release.notify_one();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(prober.calls(url), 2);
    assert_eq!(
        status_of(&engine, "g", "a").await,
        BackendStatus::Healthy,
        "a result for a backend owned elsewhere was folded"
    );
    engine.shutdown().await;
}

/// A verdict shared for a group whose creation is still being written to the
/// store lands once it commits: the owner elsewhere may have probed the group
/// (read from etcd) before this replica committed it, and shares only changes,
/// so a verdict dropped here would leave the backend UNKNOWN for good.
#[tokio::test(start_paused = true)]
async fn a_shared_verdict_for_a_group_being_written_lands_after_the_commit() {
    let prober = Arc::new(Scripted::default());
    let store = Arc::new(GatedStore::default());
    let config = EngineConfig {
        cluster: Some(Arc::new(OwnsNothing)),
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_store(config, prober, HealthStatuses::default(), Some(store.clone()));
    store.set_closed(true);
    let writer = engine.clone();
    let pending = tokio::spawn(async move {
        writer
            .apply(spec("name: h\nbackends:\n  - name: x\n    url: http://x.test/mcp\n"), Origin::Api)
            .await
    });
    store.entered.notified().await;
    let verdict = seam::SharedVerdict {
        observed: mcp_health_core::snapshot::Observed {
            verdict: mcp_health_core::verdict::Verdict {
                status: BackendStatus::Healthy,
                ..mcp_health_core::verdict::Verdict::unknown()
            },
            reason: Reason::new(ReasonCode::Ok, "ok"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: None,
            last_transition: None,
            address: None,
        },
        catalog: Default::default(),
        ejection: None,
    };
    engine.remote_verdict("h".into(), "x".into(), verdict).await.unwrap();
    store.set_closed(false);
    pending.await.unwrap().unwrap();
    assert_eq!(status_of(&engine, "h", "x").await, BackendStatus::Healthy, "the owner's verdict was lost");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_on_demand_probe_starts_from_what_the_scheduled_probes_learnt() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    engine
        .apply(
            spec("name: g\npolicy: {interval: 3600s}\nbackends:\n  - name: a\n    url: http://a.test/mcp\n"),
            Origin::Api,
        )
        .await
        .unwrap();
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    while status_of(&engine, "g", "a").await == BackendStatus::Unknown {
        sub.events.recv().await.unwrap();
    }
    engine.probe_backend("g".into(), "a".into()).await.unwrap();
    // The scheduled probe detected the revision; the on-demand one reuses it
    // (a real prober skips server/discover: one round trip, not two).
    assert_eq!(*prober.remembered.lock().unwrap(), [None, Some("2025-06-18".to_owned())]);

    // A restart (new URL, new epoch) forgets it: another server may answer.
    engine
        .apply(
            spec("name: g\npolicy: {interval: 3600s}\nbackends:\n  - name: a\n    url: http://b.test/mcp\n"),
            Origin::Api,
        )
        .await
        .unwrap();
    while status_of(&engine, "g", "a").await == BackendStatus::Unknown {
        sub.events.recv().await.unwrap();
    }
    assert_eq!(prober.remembered.lock().unwrap().last(), Some(&None));
    engine.shutdown().await;
}

/// One backend as the API shows it.
async fn backend_of(engine: &Engine, group: &str, backend: &str) -> mcp_health_proto::v1::BackendHealth {
    let h = engine.get(group.into()).await.unwrap();
    crate::api_view::backend_health(h.backend(backend).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_json_rpc_rate_limit_is_degraded_routable_and_waits_as_asked() {
    let prober = Arc::new(Scripted::default());
    let url = "http://limited.test/mcp";
    prober.set(url, Script::RateLimited(Some(60)));
    let engine = start(prober.clone(), 64);
    let yaml = format!("name: g\npolicy: {{unhealthyThreshold: 1, jitterPercent: 0, initialSpread: 0s}}\nbackends:\n  - name: limited\n    url: {url}\n");
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    let b = backend_of(&engine, "g", "limited").await;
    assert_eq!((b.status, b.routable), (BackendStatus::Degraded as i32, true));
    assert_eq!(b.reason.unwrap().code, ReasonCode::RateLimited as i32);
    assert_eq!(b.consecutive_failures, 0, "never counted as a failure");
    let phase = engine.get("g".into()).await.unwrap().phase();
    assert_eq!(phase, GroupPhase::Degraded, "routable: the group is not FAILED");
    // retryAfterMs of 60 s over a 10 s interval: every probe waited the 60 s asked for.
    let gaps = prober.gaps(url);
    assert!(gaps.len() >= 8, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g >= Duration::from_secs(60) && *g < Duration::from_secs(61)), "{gaps:?}");

    // A wait shorter than the interval never brings a probe sooner.
    prober.set(url, Script::RateLimited(Some(2)));
    tokio::time::sleep(Duration::from_secs(61)).await;
    let n = prober.gaps(url).len();
    tokio::time::sleep(Duration::from_secs(100)).await;
    let gaps = prober.gaps(url);
    assert!(gaps[n..].iter().all(|g| *g >= Duration::from_secs(10)), "{gaps:?}");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_on_demand_probe_overtaken_by_a_restart_is_aborted_not_not_found() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    let one = |url: &str| spec(&format!("name: g\npolicy: {{interval: 3600s}}\nbackends:\n  - name: a\n    url: {url}\n"));
    engine.apply(one("http://a.test/mcp"), Origin::Api).await.unwrap();
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    while status_of(&engine, "g", "a").await == BackendStatus::Unknown {
        sub.events.recv().await.unwrap();
    }
    // The on-demand probe hangs (until the scheduler's own bound) ...
    prober.set("http://a.test/mcp", Script::Hang);
    let probing = tokio::spawn({
        let engine = engine.clone();
        async move { engine.probe_backend("g".into(), "a".into()).await }
    });
    while prober.calls("http://a.test/mcp") < 2 {
        tokio::task::yield_now().await;
    }
    // ... while a re-apply moves the backend: a new incarnation of a backend that exists.
    engine.apply(one("http://moved.test/mcp"), Origin::Api).await.unwrap();
    let err = probing.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, EngineError::BackendRestarted { group, backend } if group == "g" && backend == "a"),
        "{err:?}"
    );
    // The API maps it to ABORTED (`mcp_health_edges::api::status`, tested there).
    let message = err.to_string();
    assert!(message.contains("restarted by a change") && message.contains("probe it again"), "{message}");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_hold_is_capped_by_it() {
    let prober = Arc::new(Scripted::default());
    let url = "http://limited.test/mcp";
    prober.set(url, Script::RateLimited(Some(3600)));
    let engine = start(prober.clone(), 64);
    let yaml = format!("name: g\npolicy: {{rateLimitHold: 120s, jitterPercent: 0, initialSpread: 0s}}\nbackends:\n  - name: limited\n    url: {url}\n");
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1000)).await;
    let gaps = prober.gaps(url);
    assert!(gaps.len() >= 7, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g >= Duration::from_secs(120) && *g < Duration::from_secs(121)), "{gaps:?}");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_bare_429_holds_the_verdict_for_the_hold_then_fails() {
    let prober = Arc::new(Scripted::default());
    let url = "http://cdn.test/mcp";
    let engine = start(prober.clone(), 64);
    let yaml = format!(
        "name: g\npolicy: {{unhealthyThreshold: 1, rateLimitHold: 60s, jitterPercent: 0, initialSpread: 0s}}\nbackends:\n  - name: cdn\n    url: {url}\n"
    );
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status_of(&engine, "g", "cdn").await, BackendStatus::Healthy);

    prober.set(url, Script::Bare429(Some(5)));
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    let first = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = backend_of(&engine, "g", "cdn").await;
        if b.reason.as_ref().unwrap().code == ReasonCode::RateLimited as i32 {
            break Instant::now();
        }
    };
    // Held: HEALTHY and routable, with the reason, for the whole hold.
    while first.elapsed() < Duration::from_secs(55) {
        let b = backend_of(&engine, "g", "cdn").await;
        assert_eq!((b.status, b.routable), (BackendStatus::Healthy as i32, true), "{b:?}");
        assert_eq!(b.reason.unwrap().http_status, 429);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Past the hold: UNHEALTHY with the reason, and the group FAILED.
    let failed = loop {
        let e = sub.events.recv().await.unwrap();
        let b = e.group.backend("cdn").unwrap().clone();
        if b.status() == BackendStatus::Unhealthy {
            break b;
        }
    };
    assert!(first.elapsed() >= Duration::from_secs(59), "{:?}", first.elapsed());
    assert_eq!(failed.endpoint().observed.reason.code, ReasonCode::RateLimited);
    assert_eq!(engine.get("g".into()).await.unwrap().phase(), GroupPhase::Failed);
    // Retry-After: 5 under a 10 s interval: the probes kept the interval
    // (after the first gap, which initialSpread 0s draws from half to one interval).
    let gaps = prober.gaps(url);
    assert!(gaps[1..].iter().all(|g| *g >= Duration::from_secs(10)), "{gaps:?}");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_503_with_retry_after_is_a_failure_whose_next_probe_waits() {
    let prober = Arc::new(Scripted::default());
    let url = "http://busy.test/mcp";
    prober.set(url, Script::Unavailable(Some(45)));
    let engine = start(prober.clone(), 64);
    let yaml = format!("name: g\npolicy: {{unhealthyThreshold: 1, jitterPercent: 0, initialSpread: 0s}}\nbackends:\n  - name: busy\n    url: {url}\n");
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    tokio::time::sleep(Duration::from_secs(500)).await;
    let b = backend_of(&engine, "g", "busy").await;
    assert_eq!(b.status, BackendStatus::Unhealthy as i32);
    assert_eq!(b.reason.unwrap().code, ReasonCode::HttpStatus as i32);
    let gaps = prober.gaps(url);
    assert!(gaps.len() >= 9, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g >= Duration::from_secs(45) && *g < Duration::from_secs(46)), "{gaps:?}");
    engine.shutdown().await;
}

/// One scheduler scenario: a backend's script over time and the gaps between
/// its probes that must follow (in ms, each within a tick of the timer).
struct Cadence {
    name: &'static str,
    /// The group's policy (a YAML flow mapping); one backend, first probed at 0.
    policy: &'static str,
    /// From when (ms) the backend answers how.
    script: &'static [(u64, Script)],
    /// How long the test runs (s).
    until: u64,
    gaps_ms: &'static [u64],
    status: BackendStatus,
}

/// Runs a `Cadence` on paused time and returns the gaps between probes and
/// the final status.
async fn run_cadence(case: &Cadence) -> (Vec<Duration>, BackendStatus) {
    let prober = Arc::new(Scripted::default());
    let url = "http://edge.test/mcp";
    let engine = start(prober.clone(), 64);
    let t0 = Instant::now();
    let yaml = format!("name: g\npolicy: {}\nbackends:\n  - name: b\n    url: {url}\n", case.policy);
    // What it answers from 0 is set before the apply, which probes at once.
    for &(_, script) in case.script.iter().filter(|(at, _)| *at == 0) {
        prober.set(url, script);
    }
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    for &(at, script) in case.script.iter().filter(|(at, _)| *at > 0) {
        tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
        prober.set(url, script);
    }
    tokio::time::sleep_until(t0 + Duration::from_secs(case.until)).await;
    let status = status_of(&engine, "g", "b").await;
    engine.shutdown().await;
    (prober.gaps(url), status)
}

#[tokio::test(start_paused = true)]
async fn a_pending_change_is_probed_at_the_edge_interval_until_confirmed_or_refuted() {
    use Script::{Down, Hang, Unavailable, Up};
    // Probes at 0, 10, 20 s (jitter 0, a one-backend group starts at once).
    const P: &str = "{interval: 10s, edgeInterval: 1s, unhealthyThreshold: 3, healthyThreshold: 3, jitterPercent: 0}";
    let cases = [
        Cadence {
            name: "a failure while HEALTHY: edge until UNHEALTHY, then the interval",
            policy: P,
            script: &[(0, Up), (15_000, Down)],
            until: 45,
            gaps_ms: &[10_000, 10_000, 1_000, 1_000, 10_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "recovery is symmetric: edge until HEALTHY",
            policy: P,
            script: &[(0, Down), (15_000, Up)],
            until: 45,
            gaps_ms: &[10_000, 10_000, 1_000, 1_000, 10_000, 10_000],
            status: BackendStatus::Healthy,
        },
        Cadence {
            name: "a refuted change goes back to the interval",
            policy: P,
            script: &[(0, Up), (15_000, Down), (20_500, Up)],
            until: 45,
            gaps_ms: &[10_000, 10_000, 1_000, 10_000, 10_000],
            status: BackendStatus::Healthy,
        },
        Cadence {
            name: "a refuted recovery goes back to the interval",
            policy: P,
            script: &[(0, Down), (15_000, Up), (20_500, Down)],
            until: 45,
            gaps_ms: &[10_000, 10_000, 1_000, 10_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "a Retry-After longer than the edge wins",
            policy: P,
            script: &[(0, Up), (15_000, Unavailable(Some(4)))],
            until: 45,
            gaps_ms: &[10_000, 10_000, 4_000, 4_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "a Retry-After shorter than the edge does not slow it",
            policy: "{interval: 10s, edgeInterval: 3s, unhealthyThreshold: 3, jitterPercent: 0}",
            script: &[(0, Up), (15_000, Unavailable(Some(1)))],
            until: 45,
            gaps_ms: &[10_000, 10_000, 3_000, 3_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "a hang: the next probe right after the scheduler gives up (timeout + 2 s grace)",
            policy: "{interval: 10s, timeout: 1s, edgeInterval: 1s, unhealthyThreshold: 3, jitterPercent: 0}",
            script: &[(0, Up), (15_000, Hang)],
            until: 42,
            gaps_ms: &[10_000, 10_000, 3_000, 3_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "the default edge: a fifth of the interval",
            policy: "{interval: 10s, unhealthyThreshold: 3, jitterPercent: 0}",
            script: &[(0, Up), (15_000, Down)],
            until: 35,
            gaps_ms: &[10_000, 10_000, 2_000, 2_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
        Cadence {
            name: "unhealthyThreshold 1: nothing pending, no edge",
            policy: "{interval: 10s, edgeInterval: 1s, unhealthyThreshold: 1, jitterPercent: 0}",
            script: &[(0, Up), (15_000, Down)],
            until: 45,
            gaps_ms: &[10_000, 10_000, 10_000, 10_000],
            status: BackendStatus::Unhealthy,
        },
    ];
    for case in &cases {
        let (gaps, status) = run_cadence(case).await;
        let got: Vec<u64> = gaps.iter().map(|g| g.as_millis() as u64).collect();
        let close = got.len() == case.gaps_ms.len() && got.iter().zip(case.gaps_ms).all(|(g, w)| g.abs_diff(*w) <= 1);
        assert!(close, "{}: gaps {got:?}, want {:?}", case.name, case.gaps_ms);
        assert_eq!(status, case.status, "{}", case.name);
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_edge_intervals_and_never_lengthens_them() {
    let case = Cadence {
        name: "jitter 20 %",
        policy: "{interval: 10s, edgeInterval: 1s, unhealthyThreshold: 12, jitterPercent: 20}",
        script: &[(0, Script::Up), (1_000, Script::Down)],
        until: 40,
        gaps_ms: &[],
        status: BackendStatus::Unhealthy,
    };
    let (gaps, status) = run_cadence(&case).await;
    assert_eq!(status, BackendStatus::Unhealthy);
    // The first gap is the jittered interval; the next 11 the edge, jittered below.
    let edges: Vec<u64> = gaps[1..12].iter().map(|g| g.as_millis() as u64).collect();
    assert!(gaps[0] >= Duration::from_secs(8) && gaps[0] <= Duration::from_secs(12), "{gaps:?}");
    assert!(edges.iter().all(|g| (800..=1_001).contains(g)), "{edges:?}");
    assert!(edges.iter().any(|g| *g != edges[0]), "jitter applies: {edges:?}");
    assert!(gaps[12] >= Duration::from_secs(8), "UNHEALTHY: back to the interval: {gaps:?}");
}

/// An engine whose last handle drops without `shutdown()` ends its owner
/// task and every probe task (nothing keeps the command channel open but
/// `Engine` handles), and says so on grpc.health.
#[tokio::test(start_paused = true)]
async fn an_engine_dropped_without_shutdown_stops_probing() {
    let prober = Arc::new(Scripted::default());
    let health = HealthStatuses::default();
    let engine = Engine::start(EngineConfig::default(), prober.clone(), health.clone());
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    while engine.get("g".into()).await.unwrap().verdict.summary.unknown > 0 {
        sub.events.recv().await.unwrap();
    }
    // Probing on its timer: two more rounds in 30 s.
    let before = prober.total.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(prober.total.load(Ordering::Relaxed) >= before + 4, "the engine was not probing");
    assert_eq!(health.get("g"), Some(ServingStatus::Serving));

    drop(engine);
    // The owner sees its channel close: the watch feed ends...
    loop {
        match sub.events.recv().await {
            Err(broadcast::error::RecvError::Closed) => break,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
        }
    }
    // ...grpc.health says NOT_SERVING, and no probe runs again.
    assert_eq!(health.get("g"), Some(ServingStatus::NotServing));
    let stopped = prober.total.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(prober.total.load(Ordering::Relaxed), stopped, "probe tasks outlived their engine");
}

/// The one watch feed: a snapshot first; changes of the watched group only,
/// in order; and a fresh snapshot (marked as a resync) in place of the
/// changes a reader missed by falling behind the broadcast buffer.
#[tokio::test(start_paused = true)]
async fn a_feed_that_falls_behind_gets_a_fresh_snapshot_in_place_of_what_it_missed() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 2);
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    engine
        .apply(spec("name: h\nbackends:\n  - name: x\n    url: http://x.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    let mut feed = engine.feed(Some("g".into())).await.unwrap();
    let first = match feed.next().await.unwrap().unwrap() {
        FeedItem::Snapshot { sequence, groups, resync } => {
            assert!(!resync);
            assert_eq!(groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["g"]);
            sequence
        }
        other => panic!("a feed starts with its snapshot, got {other:?}"),
    };
    // Read promptly while g's and h's backends fail: only g's changes, in order.
    prober.set("http://bad.test/mcp", Script::Down);
    prober.set("http://x.test/mcp", Script::Down);
    let mut last = first;
    loop {
        match feed.next().await.unwrap().unwrap() {
            FeedItem::Change(e) => {
                assert_eq!(e.group.name, "g");
                assert!(e.sequence > last, "{} after {last}", e.sequence);
                last = e.sequence;
                if e.group.backends.iter().any(|b| b.name == "bad" && b.status() == BackendStatus::Unhealthy) {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    // Stop reading while g's other backend flaps for minutes: far more
    // changes than the buffer of 2 holds.
    for round in 0..6 {
        let script = if round % 2 == 0 { Script::Down } else { Script::Up };
        prober.set("http://ok.test/mcp", script);
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let now = engine.get("g".into()).await.unwrap();
    match feed.next().await.unwrap().unwrap() {
        FeedItem::Snapshot { sequence, groups, resync } => {
            assert!(resync, "a snapshot after falling behind says so");
            assert!(sequence > last);
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].backends, now.backends, "the fresh snapshot is the state now");
        }
        other => panic!("expected a fresh snapshot after lagging, got {other:?}"),
    }
    engine.shutdown().await;
    // The engine stopped: the feed ends.
    while let Some(item) = feed.next().await {
        assert!(item.is_ok());
    }
}

/// An idle backend's probe task is only its timer and its settings: what a
/// probe needs (a copy of the probe memory, the timeout, the outcome) is
/// boxed while it runs. At 10,000 backends each KiB of this future is
/// 10 MiB of RSS (BENCHMARKS.md, "Where the memory at 10,000 backends goes":
/// 2.0 KiB per task before the probe step was boxed).
#[test]
fn an_idle_probe_task_stays_small() {
    let spec: GroupSpec = serde_yaml_ng::from_str("{name: g, backends: [{name: a, url: 'http://127.0.0.1:1/mcp'}]}").unwrap();
    let valid = validate_group(&spec, "spec", &Default::default()).unwrap();
    let clients = Arc::new(ClientCache::new(false, &DnsSettings::default()));
    let target = Arc::new(ProbeTarget::new("g", valid.backends[0].clone(), &clients).unwrap());
    let (tx, _rx) = mpsc::channel(1);
    let task = scheduler::BackendTask {
        group: "g".into(),
        backend: "a".into(),
        epoch: 1,
        target,
        policy: valid.backends[0].policy,
        prober: Arc::new(Scripted::default()),
        limiter: Arc::new(Semaphore::new(1)),
        owner: tx.downgrade(),
        observer: None,
        pacer: Arc::new(spread::StartPacer::new(100)),
        cluster: None,
        memory: Default::default(),
        wake: Default::default(),
    };
    let size = std::mem::size_of_val(&task.run());
    assert!(size <= 1024, "an idle probe task's future is {size} bytes");
}

/// What happens at a time (ms) in an ejection scenario, to backend `b{i}`.
#[derive(Clone, Copy, Debug)]
enum At {
    /// It answers probes so from now on.
    Script(usize, Script),
    /// A gateway reports this outcome this many times.
    Report(usize, mcp_health_core::outlier::TrafficOutcome, u32),
    /// It shows this status, and its ejection count (None: not ejected).
    Shows(usize, BackendStatus, Option<u32>),
}

/// One ejection scenario: a group of `backends` (b0, b1, …, all up at
/// first), what happens when, and when b0 is probed.
struct Ejecting {
    name: &'static str,
    policy: &'static str,
    backends: usize,
    steps: &'static [(u64, At)],
    until: u64,
    /// When b0 is probed, in ms from the apply.
    b0_probes_ms: &'static [u64],
}

async fn run_ejecting(case: &Ejecting) {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    let url = |i: usize| format!("http://b{i}.test/mcp");
    let t0 = Instant::now();
    let backends: String = (0..case.backends).map(|i| format!("  - name: b{i}\n    url: {}\n", url(i))).collect();
    let yaml = format!("name: g\npolicy: {}\nbackends:\n{backends}", case.policy);
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    let name = case.name;
    for &(at, step) in case.steps {
        tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
        match step {
            At::Script(i, s) => prober.set(&url(i), s),
            At::Report(i, outcome, n) => {
                let summary = engine
                    .report_outcomes("g".into(), format!("b{i}"), vec![outcome; n as usize], ReportOrigin::Traffic)
                    .await
                    .unwrap();
                assert_eq!(summary.accepted, n, "{name} at {at} ms");
            }
            At::Shows(i, status, count) => {
                let g = engine.get("g".into()).await.unwrap();
                let b = g.backend(&format!("b{i}")).unwrap();
                let shown = (b.status(), b.ejection.as_ref().map(|e| e.count));
                assert_eq!(shown, (status, count), "{name}: b{i} at {at} ms");
                assert_eq!(b.routable(), count.is_none() && status != BackendStatus::Unhealthy, "{name}: b{i} at {at} ms");
            }
        }
    }
    tokio::time::sleep_until(t0 + Duration::from_millis(case.until)).await;
    let times: Vec<u64> = prober
        .times
        .lock()
        .unwrap()
        .get(&url(0))
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| (*t - t0).as_millis() as u64)
        .collect();
    let close = times.len() == case.b0_probes_ms.len() && times.iter().zip(case.b0_probes_ms).all(|(g, w)| g.abs_diff(*w) <= 1);
    assert!(close, "{name}: b0 probed at {times:?} ms, want {:?}", case.b0_probes_ms);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn real_traffic_ejects_confirms_at_once_and_returns_only_after_its_time_and_a_passing_probe() {
    use At::{Report, Script as Set, Shows};
    use BackendStatus::{Healthy, Unhealthy};
    use Script::{Down, Up};
    use mcp_health_core::outlier::TrafficOutcome as O;
    const P: &str = "{interval: 10s, edgeInterval: 1s, unhealthyThreshold: 3, jitterPercent: 0, outlier: {consecutiveFailures: 3, baseEjectionTime: 5s, maxEjectionTime: 8s, maxEjectedPercent: 100}}";
    let cases = [
        Ejecting {
            name: "the handshake works: ejected and HEALTHY, probed at once, back when its time is over",
            policy: P,
            backends: 2,
            steps: &[
                (
                    2_500,
                    Report(
                        0,
                        O::JsonRpcError {
                            code: -32603,
                            tools_call: true,
                        },
                        2,
                    ),
                ),
                (2_500, Shows(0, Healthy, None)),
                (2_500, Report(0, O::HttpStatus(503), 1)),
                (2_600, Shows(0, Healthy, Some(1))),
                (2_600, Shows(1, Healthy, None)),
                (7_400, Shows(0, Healthy, Some(1))),
                (7_600, Shows(0, Healthy, None)),
            ],
            until: 20_000,
            // The first probe, one at once on the ejection, one when its time
            // is over; then the interval from there.
            b0_probes_ms: &[0, 2_500, 7_500, 17_500],
        },
        Ejecting {
            name: "hard down: ejected, confirmed UNHEALTHY at the edge interval, back only at a passing probe after its time",
            policy: P,
            backends: 2,
            steps: &[
                (2_000, Set(0, Down)),
                (2_500, Report(0, O::ConnectFailure, 3)),
                (2_600, Shows(0, BackendStatus::Degraded, Some(1))),
                (4_600, Shows(0, Unhealthy, Some(1))),
                // Its time is over at 7.5 s, but that probe fails.
                (8_000, Shows(0, Unhealthy, Some(1))),
                (16_000, Set(0, Up)),
                (17_600, Shows(0, Healthy, None)),
            ],
            until: 20_000,
            b0_probes_ms: &[0, 2_500, 3_500, 4_500, 7_500, 17_500],
        },
        Ejecting {
            name: "a second ejection lasts longer (5 s, then 8 s: 10 s capped)",
            policy: P,
            backends: 2,
            steps: &[
                (1_000, Report(0, O::Timeout, 3)),
                (6_100, Shows(0, Healthy, None)),
                (7_000, Report(0, O::Reset, 3)),
                (14_900, Shows(0, Healthy, Some(2))),
                (15_100, Shows(0, Healthy, None)),
            ],
            until: 16_000,
            b0_probes_ms: &[0, 1_000, 6_000, 7_000, 15_000],
        },
        Ejecting {
            name: "4xx and tool errors keep it in",
            policy: P,
            backends: 2,
            steps: &[
                (1_000, Report(0, O::HttpStatus(404), 10)),
                (1_000, Report(0, O::ToolError, 10)),
                (
                    1_000,
                    Report(
                        0,
                        O::JsonRpcError {
                            code: -32602,
                            tools_call: true,
                        },
                        10,
                    ),
                ),
                (1_100, Shows(0, Healthy, None)),
            ],
            until: 5_000,
            b0_probes_ms: &[0],
        },
        Ejecting {
            name: "the cap holds when every backend fails: one of three at 10 %",
            policy: "{interval: 10s, jitterPercent: 0, outlier: {consecutiveFailures: 3}}",
            backends: 3,
            steps: &[
                (1_000, Report(0, O::HttpStatus(502), 3)),
                (1_000, Report(1, O::HttpStatus(502), 5)),
                (1_000, Report(2, O::HttpStatus(502), 5)),
                (1_100, Shows(0, Healthy, Some(1))),
                (1_100, Shows(1, Healthy, None)),
                (1_100, Shows(2, Healthy, None)),
            ],
            until: 5_000,
            b0_probes_ms: &[0, 1_000],
        },
    ];
    for case in &cases {
        run_ejecting(case).await;
    }
}

/// Cluster mode with ownership the test moves, recording what the engine
/// hands the cluster: reports for the owner, shared verdicts.
#[derive(Debug, Default)]
struct Recording {
    owns: std::sync::atomic::AtomicBool,
    queue_full: std::sync::atomic::AtomicBool,
    forwarded: Mutex<Vec<(String, String, usize)>>,
    shared: Mutex<Vec<seam::SharedVerdict>>,
}

impl seam::ClusterSeam for Recording {
    fn owns(&self, _: &str, _: &str) -> bool {
        self.owns.load(Ordering::SeqCst)
    }
    fn verdict_changed(&self, _: &str, _: &str, verdict: &seam::SharedVerdict) {
        self.shared.lock().unwrap().push(verdict.clone());
    }
    fn forward_outcomes(&self, group: &str, backend: &str, outcomes: &[mcp_health_core::outlier::TrafficOutcome]) -> seam::Forwarded {
        if self.queue_full.load(Ordering::SeqCst) {
            return seam::Forwarded::Dropped;
        }
        self.forwarded.lock().unwrap().push((group.to_owned(), backend.to_owned(), outcomes.len()));
        seam::Forwarded::Queued
    }
}

fn recording_engine(prober: Arc<Scripted>) -> (Engine, Arc<Recording>) {
    let seam = Arc::new(Recording::default());
    seam.owns.store(true, Ordering::SeqCst);
    let config = EngineConfig {
        cluster: Some(seam.clone()),
        ..EngineConfig::default()
    };
    (Engine::start(config, prober, HealthStatuses::default()), seam)
}

/// Cluster mode: reports for a backend another replica owns go to the
/// cluster for the owner (or are dropped when its queue is full, never
/// waited for); reports that came forwarded are never forwarded again; the
/// owner folds them and shares the ejection with its verdict.
#[tokio::test(start_paused = true)]
async fn reports_for_a_backend_owned_elsewhere_are_forwarded_and_the_owners_ejection_shared() {
    use mcp_health_core::outlier::TrafficOutcome as O;
    let prober = Arc::new(Scripted::default());
    prober.set("http://a.test/mcp", Script::Up);
    let (engine, seam) = recording_engine(prober);
    let policy = "{interval: 60s, outlier: {consecutiveFailures: 2, baseEjectionTime: 30s}}";
    engine
        .apply(
            spec(&format!("name: g\npolicy: {policy}\nbackends:\n  - name: a\n    url: http://a.test/mcp\n")),
            Origin::Api,
        )
        .await
        .unwrap();
    seam.owns.store(false, Ordering::SeqCst);
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 3], ReportOrigin::Traffic)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.forwarded, summary.dropped, summary.not_owned), (0, 3, 0, 0));
    assert_eq!(*seam.forwarded.lock().unwrap(), [("g".to_owned(), "a".to_owned(), 3)]);
    assert!(
        engine.get("g".into()).await.unwrap().backend("a").unwrap().ejection.is_none(),
        "not folded here"
    );
    seam.queue_full.store(true, Ordering::SeqCst);
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 2], ReportOrigin::Traffic)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.forwarded, summary.dropped), (0, 0, 2));
    seam.queue_full.store(false, Ordering::SeqCst);
    // Forwarded already: one hop only, counted as not owned.
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 2], ReportOrigin::Forwarded)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.forwarded, summary.not_owned), (0, 0, 2));
    assert_eq!(seam.forwarded.lock().unwrap().len(), 1);
    // Unknown names are still not found, and not forwarded.
    assert!(matches!(
        engine.report_outcomes("g".into(), "zzz".into(), vec![O::Timeout], ReportOrigin::Traffic).await,
        Err(EngineError::BackendNotFound { .. })
    ));
    // The owner folds forwarded reports, ejects, and shares the ejection.
    seam.owns.store(true, Ordering::SeqCst);
    seam.shared.lock().unwrap().clear();
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 2], ReportOrigin::Forwarded)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.ejected), (2, true));
    let shared = seam.shared.lock().unwrap().last().cloned().expect("the ejection is shared");
    let ejection = shared.ejection.expect("with the ejection");
    assert_eq!((ejection.ejection.count, ejection.remaining), (1, Duration::from_secs(30)));
    assert!(ejection.ejection.cause.contains("2 consecutive failures"), "{}", ejection.ejection.cause);
    engine.shutdown().await;
}

/// Cluster mode: the owner's shared ejection holds the backend out on a
/// replica that does not own it (not routable, shown with its cause) and
/// its return brings it back; a replica that takes the backend over keeps
/// the ejection and ends it itself at the first passing probe once the time
/// left is over, sharing the return.
#[tokio::test(start_paused = true)]
async fn a_shared_ejection_holds_on_every_replica_and_the_next_owner_ends_it() {
    let prober = Arc::new(Scripted::default());
    prober.set("http://a.test/mcp", Script::Up);
    let (engine, seam) = recording_engine(prober.clone());
    seam.owns.store(false, Ordering::SeqCst);
    let policy = "{interval: 60s, jitterPercent: 0, outlier: {consecutiveFailures: 2, baseEjectionTime: 5s}}";
    engine
        .apply(
            spec(&format!("name: g\npolicy: {policy}\nbackends:\n  - name: a\n    url: http://a.test/mcp\n")),
            Origin::Api,
        )
        .await
        .unwrap();
    let since = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_000);
    let verdict = |ejected: Option<u32>| seam::SharedVerdict {
        observed: mcp_health_core::snapshot::Observed {
            verdict: mcp_health_core::verdict::Verdict {
                status: BackendStatus::Healthy,
                consecutive_successes: 1,
                ..mcp_health_core::verdict::Verdict::unknown()
            },
            reason: Reason::new(ReasonCode::Ok, "ok"),
            facts: ServerFacts::default(),
            last_latency: None,
            last_probe: Some(since),
            last_transition: None,
            address: None,
        },
        catalog: Default::default(),
        ejection: ejected.map(|count| seam::SharedEjection {
            ejection: mcp_health_core::outlier::Ejection {
                cause: "2 consecutive failures in real traffic, the last: HTTP 503".into(),
                since,
                until: since + Duration::from_secs(5),
                count,
            },
            remaining: Duration::from_secs(5),
        }),
    };
    let shown = |engine: Engine| async move {
        let g = engine.get("g".into()).await.unwrap();
        let b = g.backend("a").unwrap();
        (b.status(), b.ejection.as_ref().map(|e| e.count), b.routable())
    };
    engine.remote_verdict("g".into(), "a".into(), verdict(Some(1))).await.unwrap();
    assert_eq!(shown(engine.clone()).await, (BackendStatus::Healthy, Some(1), false), "ejected by its owner");
    let probes = prober.calls("http://a.test/mcp");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(shown(engine.clone()).await.1, Some(1), "a replica that does not own it never ends it");
    assert_eq!(prober.calls("http://a.test/mcp"), probes, "nor probes it");
    engine.remote_verdict("g".into(), "a".into(), verdict(None)).await.unwrap();
    assert_eq!(shown(engine.clone()).await, (BackendStatus::Healthy, None, true), "returned by its owner");
    // Ejected again (its second), then the owner dies and this replica takes over.
    engine.remote_verdict("g".into(), "a".into(), verdict(Some(2))).await.unwrap();
    seam.owns.store(true, Ordering::SeqCst);
    seam.shared.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(shown(engine.clone()).await.1, Some(2), "held by the new owner until its time is over");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        shown(engine.clone()).await,
        (BackendStatus::Healthy, None, true),
        "ended by the new owner's probe"
    );
    assert!(prober.calls("http://a.test/mcp") > probes, "the new owner probed it");
    let shared = seam.shared.lock().unwrap().clone();
    assert!(shared.last().is_some_and(|v| v.ejection.is_none()), "the return is shared: {shared:?}");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history_records_an_ejection_and_its_return() {
    use mcp_health_core::outlier::TrafficOutcome as O;
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    let policy = "{interval: 10s, jitterPercent: 0, outlier: {consecutiveFailures: 2, baseEjectionTime: 5s}}";
    engine
        .apply(
            spec(&format!("name: g\npolicy: {policy}\nbackends:\n  - name: b\n    url: http://b.test/mcp\n")),
            Origin::Api,
        )
        .await
        .unwrap();
    let summary = engine
        .report_outcomes("g".into(), "b".into(), vec![O::Timeout, O::Timeout], ReportOrigin::Traffic)
        .await
        .unwrap();
    assert!(summary.ejected);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let h = engine.history().backend("g", "b", history::unix_ms(std::time::SystemTime::now())).unwrap();
    let shown: Vec<(bool, String, u32)> = h
        .ejections
        .iter()
        .map(|e| match &e.ejected {
            Some((cause, _, count)) => (true, cause.to_string(), *count),
            None => (false, String::new(), 0),
        })
        .collect();
    assert_eq!(
        shown,
        [
            (true, "2 consecutive failures in real traffic, the last: timeout".to_owned(), 1),
            (false, String::new(), 0)
        ]
    );
    let proto = h.to_proto();
    assert_eq!(proto.ejections.len(), 2);
    assert!(proto.ejections[0].ejected && proto.ejections[0].until.is_some() && !proto.ejections[1].ejected);
    engine.shutdown().await;
}

/// Cluster mode: only the owner probes a backend, so only it could confirm or
/// end an ejection; another replica counts the reports and folds none.
#[tokio::test(start_paused = true)]
async fn reports_for_a_backend_owned_elsewhere_are_counted_not_folded() {
    use mcp_health_core::outlier::TrafficOutcome as O;
    let prober = Arc::new(Scripted::default());
    let owns = Arc::new(Owns::default());
    owns.0.store(true, Ordering::SeqCst);
    let config = EngineConfig {
        cluster: Some(owns.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, prober.clone(), HealthStatuses::default());
    let policy = "{interval: 60s, outlier: {consecutiveFailures: 2}}";
    engine
        .apply(
            spec(&format!("name: g\npolicy: {policy}\nbackends:\n  - name: a\n    url: http://a.test/mcp\n")),
            Origin::Api,
        )
        .await
        .unwrap();
    owns.0.store(false, Ordering::SeqCst);
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 3], ReportOrigin::Traffic)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.not_owned, summary.ejected), (0, 3, false));
    assert!(engine.get("g".into()).await.unwrap().backend("a").unwrap().ejection.is_none());
    // A backend that does not exist is still not found.
    assert!(matches!(
        engine.report_outcomes("g".into(), "zzz".into(), vec![O::Timeout], ReportOrigin::Traffic).await,
        Err(EngineError::BackendNotFound { .. })
    ));
    // The owner folds them.
    owns.0.store(true, Ordering::SeqCst);
    let summary = engine
        .report_outcomes("g".into(), "a".into(), vec![O::Timeout; 2], ReportOrigin::Traffic)
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.not_owned, summary.ejected), (2, 0, true));
    engine.shutdown().await;
}

/// One step of a self-doubt case.
#[derive(Clone, Debug)]
enum DoubtStep {
    /// The doubt task's check with this evidence.
    Check(mcp_health_core::doubt::Evidence),
    /// The backend answers so from now on.
    Set(Script),
    /// Wait (paused time) until this many more probes of the backend ran.
    Probes(usize),
    /// The backend's status, whether a doubt is shown, and the probes held so far.
    Expect(BackendStatus, bool, u64),
}

fn no_canary_answers() -> mcp_health_core::doubt::Evidence {
    mcp_health_core::doubt::Evidence {
        canaries: 1,
        ..Default::default()
    }
}

fn canary_answers() -> mcp_health_core::doubt::Evidence {
    mcp_health_core::doubt::Evidence {
        canaries: 1,
        canaries_answered: 1,
        ..Default::default()
    }
}

/// Runs a self-doubt case: one backend (interval 10 s, unhealthy threshold
/// 3, edge 2 s) under `doubt`, the steps in order.
async fn run_doubting(name: &str, doubt: mcp_health_core::doubt::DoubtPolicy, steps: &[DoubtStep]) {
    let prober = Arc::new(Scripted::default());
    let engine = Engine::start(
        EngineConfig {
            doubt,
            ..EngineConfig::default()
        },
        prober.clone(),
        HealthStatuses::default(),
    );
    let url = "http://b.test/mcp";
    let policy = "{interval: 10s, edgeInterval: 2s, jitterPercent: 0, unhealthyThreshold: 3, healthyThreshold: 2}";
    engine
        .apply(
            spec(&format!("name: g\npolicy: {policy}\nbackends:\n  - name: b\n    url: {url}\n")),
            Origin::Api,
        )
        .await
        .unwrap();
    while status_of(&engine, "g", "b").await == BackendStatus::Unknown {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let doubt_rx = engine.doubt();
    for (i, step) in steps.iter().enumerate() {
        match step {
            DoubtStep::Check(e) => {
                engine.report_doubt(e.clone()).await.unwrap();
                // A read after the command: the owner has handled it.
                engine.get("g".into()).await.unwrap();
            }
            DoubtStep::Set(s) => prober.set(url, *s),
            DoubtStep::Probes(n) => {
                let until = prober.calls(url) + n;
                while prober.calls(url) < until {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // The last probe's result is folded before the next read.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            DoubtStep::Expect(status, doubted, held) => {
                let h = engine.history().backend("g", "b", history::unix_ms(std::time::SystemTime::now())).unwrap();
                let got = (status_of(&engine, "g", "b").await, doubt_rx.borrow().is_some(), h.held);
                assert_eq!(got, (*status, *doubted, *held), "{name}: step {i} ({step:?})");
            }
        }
    }
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_doubting_prober_holds_failing_verdicts_until_it_trusts_itself_or_max_hold_passes() {
    use BackendStatus::{Healthy, Unhealthy};
    use DoubtStep::*;
    use mcp_health_core::doubt::DoubtPolicy;
    let policy = DoubtPolicy {
        max_lag: Duration::from_secs(1),
        clear_checks: 2,
        max_hold: Duration::from_secs(300),
    };
    let cases: Vec<(&str, DoubtPolicy, Vec<DoubtStep>)> = vec![
        (
            "without doubt a dead backend turns UNHEALTHY",
            policy,
            vec![Check(canary_answers()), Set(Script::Down), Probes(3), Expect(Unhealthy, false, 0)],
        ),
        (
            "in doubt no failure moves the verdict; trusted again, they do",
            policy,
            vec![
                Check(no_canary_answers()),
                Expect(Healthy, true, 0),
                Set(Script::Down),
                Probes(6),
                Expect(Healthy, true, 6),
                Check(canary_answers()),
                Expect(Healthy, true, 6),
                Check(canary_answers()),
                Expect(Healthy, false, 6),
                Probes(3),
                Expect(Unhealthy, false, 6),
            ],
        ),
        (
            "in doubt a passing probe still improves a verdict",
            policy,
            vec![
                Set(Script::Down),
                Probes(3),
                Expect(Unhealthy, false, 0),
                Check(no_canary_answers()),
                Set(Script::Up),
                Probes(2),
                Expect(Healthy, true, 0),
            ],
        ),
        (
            "past max_hold verdicts move while the doubt is still shown",
            DoubtPolicy {
                max_hold: Duration::from_secs(25),
                ..policy
            },
            // Held at +10 s and +20 s (steady pace); from +30 s on they count.
            vec![
                Check(no_canary_answers()),
                Set(Script::Down),
                Probes(2),
                Expect(Healthy, true, 2),
                Probes(3),
                Expect(Unhealthy, true, 2),
            ],
        ),
        (
            "a scheduling lag past max_lag is doubt too",
            policy,
            vec![
                Check(mcp_health_core::doubt::Evidence {
                    lag: Duration::from_secs(3),
                    ..Default::default()
                }),
                Set(Script::Down),
                Probes(4),
                Expect(Healthy, true, 4),
            ],
        ),
    ];
    for (name, doubt, steps) in cases {
        run_doubting(name, doubt, &steps).await;
    }
}
