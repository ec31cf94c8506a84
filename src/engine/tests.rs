//! Engine tests with paused time and a scripted prober: scheduling cadence,
//! thresholds over time, hanging backends and slow watchers, with no sleeps
//! and no network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::core::outcome::{ProbeOutcome, Reason, ServerFacts};
use crate::probe::{Probe, ProbeFuture, ProbeMemory, ProbeReport};
use crate::proto::v1::{BackendStatus, ReasonCode};
use crate::spec::validate_group;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    Up,
    Down,
    /// Never answers, ignoring its deadline, to exercise the scheduler's own bound.
    Hang,
}

/// A prober whose answer per backend URL is set by the test.
#[derive(Default)]
struct Scripted {
    scripts: Mutex<HashMap<String, Script>>,
    calls: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl Scripted {
    fn set(&self, url: &str, s: Script) {
        self.scripts.lock().unwrap().insert(url.to_owned(), s);
    }
    fn calls(&self, url: &str) -> usize {
        self.calls.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

impl Probe for Scripted {
    fn probe<'a>(&'a self, target: &'a ProbeTarget, _: &'a mut ProbeMemory, _deadline: Instant) -> ProbeFuture<'a> {
        let url = target.backend.spec.url.clone();
        *self.calls.lock().unwrap().entry(url.clone()).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        let script = self.scripts.lock().unwrap().get(&url).copied().unwrap_or(Script::Up);
        Box::pin(async move {
            let outcome = match script {
                Script::Up => ProbeOutcome::success(ServerFacts {
                    protocol_version: "2025-06-18".into(),
                    ..Default::default()
                }),
                Script::Down => ProbeOutcome::failure(Reason::new(ReasonCode::ConnectionRefused, "connection refused")),
                Script::Hang => std::future::pending().await,
            };
            ProbeReport {
                outcome,
                latency: Duration::from_millis(1),
            }
        })
    }
}

fn spec(yaml: &str) -> ValidGroup {
    let spec: crate::proto::v1::GroupSpec = serde_yaml_ng::from_str(yaml).unwrap();
    validate_group(&spec, "spec", &Default::default()).unwrap()
}

fn start(prober: Arc<Scripted>, watch_buffer: usize) -> Engine {
    let config = EngineConfig {
        watch_buffer,
        ..EngineConfig::default()
    };
    Engine::start(config, prober, HealthStatuses::default())
}

async fn status_of(engine: &Engine, group: &str, backend: &str) -> BackendStatus {
    let h = engine.get(group.into()).await.unwrap();
    let b = h.backends.iter().find(|b| b.name == backend).unwrap();
    BackendStatus::try_from(b.status).unwrap()
}

const TWO: &str = "name: g\nbackends:\n  - name: ok\n    url: http://ok.test/mcp\n  - name: bad\n    url: http://bad.test/mcp\n";

#[tokio::test(start_paused = true)]
async fn first_probe_is_immediate_and_thresholds_follow_the_interval() {
    let prober = Arc::new(Scripted::default());
    let engine = start(prober.clone(), 64);
    let t0 = Instant::now();
    engine.apply(spec(TWO), Origin::Api).await.unwrap();
    let mut sub = engine.watch(Some("g".into())).await.unwrap();
    // Both first verdicts arrive without any time passing.
    while engine.get("g".into()).await.unwrap().summary.unwrap().unknown > 0 {
        sub.events.recv().await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(status_of(&engine, "g", "bad").await, BackendStatus::Healthy);

    // Default policy: 10 s interval ±10 %, 3 failures to UNHEALTHY.
    prober.set("http://bad.test/mcp", Script::Down);
    loop {
        let e = sub.events.recv().await.unwrap();
        let b = e.group.backends.iter().find(|b| b.name == "bad").unwrap();
        if b.status == BackendStatus::Unhealthy as i32 {
            break;
        }
    }
    // Three failed probes after the second one (at 5–10 s): within 10 + 3 × 11 s.
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5 + 9 + 9) && elapsed <= Duration::from_secs(10 + 11 + 11 + 11),
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
    let bad = h.backends.iter().find(|b| b.name == "bad").unwrap();
    assert_eq!(bad.reason.as_ref().unwrap().code, ReasonCode::Timeout as i32);
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
    let ok_successes = before.backends[1].consecutive_successes;
    assert!(ok_successes >= 2);

    // Drop "bad"; keep "ok" unchanged.
    let applied = engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://ok.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    assert_eq!(applied.generation, 2);
    let after = engine.get("g".into()).await.unwrap();
    assert_eq!(after.backends.len(), 1, "{after:#?}");
    assert_eq!(after.backends[0].consecutive_successes, ok_successes, "unchanged backend keeps its counters");

    // Change its URL: back to UNKNOWN until probed (the new URL's probe hangs,
    // so the verdict stays UNKNOWN while we look).
    prober.set("http://moved.test/mcp", Script::Hang);
    engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://moved.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    let moved = engine.get("g".into()).await.unwrap();
    assert_eq!(moved.backends[0].status, BackendStatus::Unknown as i32);
    // An identical apply changes nothing.
    let same = engine
        .apply(spec("name: g\nbackends:\n  - name: ok\n    url: http://moved.test/mcp\n"), Origin::Api)
        .await
        .unwrap();
    assert!(!same.changed);
    engine.shutdown().await;
}

/// A store whose writes wait at a gate the test opens (a slow fsync).
#[derive(Default)]
struct GatedStore {
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
    entered: tokio::sync::Notify,
    puts: AtomicUsize,
}

impl GatedStore {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl crate::store::Persist for GatedStore {
    fn put(&self, _: &crate::proto::v1::GroupSpec, _: u64) -> Result<(), crate::store::StoreError> {
        self.entered.notify_one();
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn remove(&self, _: &str) -> Result<(), crate::store::StoreError> {
        Ok(())
    }
}

// Real time here: tokio does not auto-advance a paused clock while a blocking
// task (the gated write) runs. Nothing waits on a timer: the result comes from
// an on-demand probe, and the deadline only turns a stall into a failure.
#[tokio::test]
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
    let probed = tokio::time::timeout(Duration::from_secs(60), engine.probe_now("g".into(), "bad".into())).await;
    let probed = probed.expect("probe results stalled behind a store write").unwrap();
    assert_eq!(probed.backend.status, BackendStatus::Unhealthy as i32);
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
