//! Engine tests of DNS discovery (issue 23) with paused time: a prober whose
//! lookups and per-address probes the test scripts, no network. The cadence
//! of lookups (the TTL clamp), endpoints added and dropped with the answers,
//! a leaving endpoint dropped at its first failed probe, and what a backend
//! reads before, without and after answers.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use mcp_health_core::discovery::{Lookup, Record};
use mcp_health_core::outcome::{ProbeOutcome, Reason, ServerFacts};
use mcp_health_core::snapshot::BackendSnapshot;
use mcp_health_core::spec::validate_group;
use mcp_health_probe::{DiscoverFuture, Probe, ProbeFuture, ProbeMemory, ProbeReport};
use mcp_health_proto::v1::{BackendStatus, ReasonCode};

const S: Duration = Duration::from_secs(1);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 8080))
}

fn answer(lasts: &[u8], ttl_secs: u64) -> Lookup {
    Lookup::Answer {
        records: lasts
            .iter()
            .map(|l| Record {
                addr: addr(*l),
                priority: 0,
                weight: 0,
            })
            .collect(),
        refused: vec![],
        ttl: S * ttl_secs as u32,
    }
}

/// Lookups answer the scripted answers in order, the last one again and
/// again (held while the test keeps `hold`'s permits); probes of a pinned
/// address fail when the test says so.
struct Dns {
    answers: Mutex<VecDeque<Lookup>>,
    lookups: Mutex<Vec<Instant>>,
    down: Mutex<Vec<SocketAddr>>,
    probes: Mutex<HashMap<SocketAddr, usize>>,
    hold: tokio::sync::Semaphore,
}

impl Dns {
    fn answering(lookups: Vec<Lookup>) -> Arc<Dns> {
        Arc::new(Dns {
            answers: Mutex::new(lookups.into()),
            lookups: Mutex::default(),
            down: Mutex::default(),
            probes: Mutex::default(),
            hold: tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS),
        })
    }
    /// From the next lookup on, `lookup`.
    fn set(&self, lookup: Lookup) {
        *self.answers.lock().unwrap() = VecDeque::from([lookup]);
    }
    fn down(&self, last: u8, down: bool) {
        let mut d = self.down.lock().unwrap();
        d.retain(|a| *a != addr(last));
        if down {
            d.push(addr(last));
        }
    }
    fn probes(&self, last: u8) -> usize {
        self.probes.lock().unwrap().get(&addr(last)).copied().unwrap_or(0)
    }
    fn gaps(&self) -> Vec<Duration> {
        self.lookups.lock().unwrap().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl Probe for Dns {
    fn probe<'a>(&'a self, target: &'a ProbeTarget, _memory: &'a mut ProbeMemory, _deadline: Instant) -> ProbeFuture<'a> {
        let pin = target.pin.expect("a discovered endpoint's probe is pinned to its address");
        *self.probes.lock().unwrap().entry(pin).or_default() += 1;
        let down = self.down.lock().unwrap().contains(&pin);
        Box::pin(async move {
            let outcome = if down {
                ProbeOutcome::failure(Reason::new(ReasonCode::ConnectionRefused, "connection refused"))
            } else {
                ProbeOutcome::success(ServerFacts {
                    protocol_version: "2025-06-18".into(),
                    ..Default::default()
                })
            };
            ProbeReport {
                outcome,
                latency: Duration::from_millis(1),
            }
        })
    }

    fn discover<'a>(&'a self, _target: &'a ProbeTarget) -> DiscoverFuture<'a> {
        Box::pin(async move {
            // Held while the test keeps the permits (`hold.forget_permits`).
            drop(self.hold.acquire().await);
            self.lookups.lock().unwrap().push(Instant::now());
            let mut answers = self.answers.lock().unwrap();
            let next = if answers.len() > 1 { answers.pop_front() } else { answers.front().cloned() };
            next.unwrap_or(Lookup::Failed {
                detail: "no answer scripted".into(),
            })
        })
    }
}

/// A group of one discovered backend with `policy` and `dns` (YAML flow mappings).
fn discovered(policy: &str, dns: &str) -> mcp_health_core::spec::ValidGroup {
    let yaml = format!("name: g\npolicy: {policy}\nbackends:\n  - name: pods\n    url: http://pods.test:8080/mcp\n    discovery:\n      dns: {dns}\n");
    validate_group(&serde_yaml_ng::from_str(&yaml).unwrap(), "spec", &Default::default()).unwrap()
}

fn start(dns: Arc<Dns>) -> Engine {
    Engine::start(EngineConfig::default(), dns, HealthStatuses::default())
}

async fn backend(engine: &Engine) -> BackendSnapshot {
    engine.get("g".into()).await.unwrap().backend("pods").unwrap().clone()
}

/// Each endpoint as (last octet, status, leaving), in address order.
fn endpoints(b: &BackendSnapshot) -> Vec<(u8, BackendStatus, bool)> {
    b.endpoints
        .iter()
        .map(|e| {
            let SocketAddr::V4(a) = e.observed.address.unwrap() else { panic!("{e:?}") };
            (a.ip().octets()[3], e.status(), e.place.leaving)
        })
        .collect()
}

/// Waits (in paused time) until the backend reads as `want` says.
async fn until(engine: &Engine, what: &str, want: impl Fn(&BackendSnapshot) -> bool) -> BackendSnapshot {
    let t0 = Instant::now();
    loop {
        let b = backend(engine).await;
        if want(&b) {
            return b;
        }
        assert!(t0.elapsed() < Duration::from_secs(3600), "{what}: {b:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

use HealthyOrNot::*;
#[derive(Clone, Copy)]
enum HealthyOrNot {
    H,
    U,
}

/// The endpoints as (last octet, status, leaving) with `H`/`U` for HEALTHY/UNHEALTHY.
fn rows(want: &[(u8, HealthyOrNot, bool)]) -> Vec<(u8, BackendStatus, bool)> {
    want.iter()
        .map(|(l, s, leaving)| {
            let status = match s {
                H => BackendStatus::Healthy,
                U => BackendStatus::Unhealthy,
            };
            (*l, status, *leaving)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn lookups_run_at_the_answer_ttl_clamped_by_the_policy() {
    // (answer, the gap after it): a TTL below the minimum, within, above the
    // maximum; a failed lookup asks again at the minimum.
    let steps: Vec<(Lookup, Duration)> = vec![
        (answer(&[1], 1), 5 * S),
        (answer(&[1], 30), 30 * S),
        (answer(&[1], 3600), 60 * S),
        (Lookup::Failed { detail: "timed out".into() }, 5 * S),
        (answer(&[1], 7), 7 * S),
        (answer(&[1], 7), 7 * S),
    ];
    let dns = Dns::answering(steps.iter().map(|(l, _)| l.clone()).collect());
    let engine = start(dns.clone());
    engine
        .apply(discovered("{interval: 3600s}", "{minTtl: 5s, maxTtl: 60s}"), Origin::Api)
        .await
        .unwrap();
    let want: Vec<Duration> = steps[..steps.len() - 1].iter().map(|(_, gap)| *gap).collect();
    while dns.gaps().len() < want.len() {
        tokio::time::sleep(S).await;
    }
    assert_eq!(&dns.gaps()[..want.len()], &want[..]);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn endpoints_follow_the_answers_each_with_its_own_verdict() {
    let dns = Dns::answering(vec![answer(&[1, 2, 3], 10)]);
    let engine = start(dns.clone());
    engine
        .apply(
            discovered("{interval: 2s, timeout: 1s, unhealthyThreshold: 1}", "{minTtl: 5s, maxTtl: 60s}"),
            Origin::Api,
        )
        .await
        .unwrap();
    let b = until(&engine, "three HEALTHY endpoints", |b| b.status() == BackendStatus::Healthy).await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false), (2, H, false), (3, H, false)]));
    assert!(b.discovered && b.routable());

    // One dies: only it reads UNHEALTHY; the backend stays routable (DEGRADED).
    dns.down(2, true);
    let b = until(&engine, "endpoint 2 UNHEALTHY", |b| {
        endpoints(b).contains(&(2, BackendStatus::Unhealthy, false))
    })
    .await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false), (2, U, false), (3, H, false)]));
    assert_eq!(b.status(), BackendStatus::Degraded);
    assert!(b.routable());
    let g = engine.get("g".into()).await.unwrap();
    assert_eq!(g.phase(), GroupPhase::Degraded, "{:?}", g.verdict);

    // 3 -> 5: the new ones appear and are probed; the dead one is still in DNS.
    dns.down(2, false);
    dns.set(answer(&[1, 2, 3, 4, 5], 10));
    let b = until(&engine, "five HEALTHY endpoints", |b| {
        endpoints(b).len() == 5 && b.status() == BackendStatus::Healthy
    })
    .await;
    assert_eq!(
        endpoints(&b),
        rows(&[(1, H, false), (2, H, false), (3, H, false), (4, H, false), (5, H, false)])
    );

    // 5 -> 2: the three removed ones turn leaving (not routable, not counted);
    // a dead one is dropped at its first failed probe, the live ones after
    // the removal grace (two TTLs).
    dns.down(3, true);
    dns.set(answer(&[1, 2], 10));
    let b = until(&engine, "three leaving", |b| {
        b.endpoints.iter().filter(|e| e.place.leaving).count() == 3 || endpoints(b).len() < 5
    })
    .await;
    assert!(b.endpoints.iter().filter(|e| e.place.leaving).all(|e| !e.routable), "{b:#?}");
    assert_eq!(b.status(), BackendStatus::Healthy, "leaving endpoints are not counted");
    let b = until(&engine, "the dead leaving one dropped", |b| !endpoints(b).iter().any(|e| e.0 == 3)).await;
    assert!(
        endpoints(&b).iter().any(|e| e.0 == 4 || e.0 == 5),
        "live leaving ones stay within the grace: {b:#?}"
    );
    let probes_of_3 = dns.probes(3);
    let b = until(&engine, "the live leaving ones dropped after the grace", |b| endpoints(b).len() == 2).await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false), (2, H, false)]));
    // Their probe tasks stopped with them.
    let (p3, p4) = (dns.probes(3), dns.probes(4));
    tokio::time::sleep(60 * S).await;
    assert_eq!((dns.probes(3), dns.probes(4)), (p3, p4));
    assert_eq!(p3, probes_of_3, "a dropped endpoint is never probed again");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_leaving_endpoint_is_dropped_at_its_first_failed_probe() {
    let dns = Dns::answering(vec![answer(&[1, 2], 30)]);
    let engine = start(dns.clone());
    // Three failures to UNHEALTHY: the leaving endpoint goes at its first, long before.
    engine
        .apply(
            discovered(
                "{interval: 2s, timeout: 1s, unhealthyThreshold: 3}",
                "{minTtl: 30s, maxTtl: 60s, removalGrace: 3600s}",
            ),
            Origin::Api,
        )
        .await
        .unwrap();
    until(&engine, "two HEALTHY endpoints", |b| endpoints(b) == rows(&[(1, H, false), (2, H, false)])).await;
    dns.set(answer(&[1], 30));
    let b = until(&engine, "endpoint 2 leaving", |b| endpoints(b).iter().any(|e| e.0 == 2 && e.2)).await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false), (2, H, true)]), "still probed, HEALTHY, but leaving");
    assert!(!b.endpoints[1].routable);
    let before = dns.probes(2);
    dns.down(2, true);
    let b = until(&engine, "endpoint 2 dropped", |b| endpoints(b).len() == 1).await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false)]));
    assert_eq!(dns.probes(2), before + 1, "dropped at its first failed probe");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_backend_reads_unknown_before_an_answer_unhealthy_after_an_empty_one_and_dns_past_the_ttl_maximum() {
    let dns = Dns::answering(vec![answer(&[], 10)]);
    dns.hold.forget_permits(tokio::sync::Semaphore::MAX_PERMITS);
    let engine = start(dns.clone());
    engine
        .apply(discovered("{interval: 2s, timeout: 1s}", "{minTtl: 5s, maxTtl: 20s}"), Origin::Api)
        .await
        .unwrap();
    tokio::time::sleep(60 * S).await;
    let b = backend(&engine).await;
    assert_eq!((b.status(), b.endpoints.len()), (BackendStatus::Unknown, 0), "no answer yet");
    dns.hold.add_permits(tokio::sync::Semaphore::MAX_PERMITS);
    let b = until(&engine, "UNHEALTHY without endpoints", |b| b.status() == BackendStatus::Unhealthy).await;
    assert!(b.endpoints.is_empty() && !b.routable());
    assert_eq!(b.endpoints_message(), "no endpoints in DNS");

    // Lookups that fail keep the last good set until the TTL maximum, then
    // every endpoint reads UNHEALTHY with reason DNS.
    dns.set(answer(&[1], 10));
    until(&engine, "one HEALTHY endpoint", |b| b.status() == BackendStatus::Healthy).await;
    dns.set(Lookup::Failed { detail: "SERVFAIL".into() });
    let t0 = Instant::now();
    let b = until(&engine, "UNHEALTHY with reason DNS", |b| b.status() == BackendStatus::Unhealthy).await;
    assert!(t0.elapsed() >= 5 * S, "the last good set is kept a while: {:?}", t0.elapsed());
    let e = &b.endpoints[0];
    assert_eq!(
        (e.status(), e.observed.reason.code, e.routable),
        (BackendStatus::Unhealthy, ReasonCode::Dns, false)
    );
    assert!(e.observed.reason.message.contains("SERVFAIL"), "{e:?}");
    // An answer again: the endpoint's own verdict shows again.
    dns.set(answer(&[1], 10));
    until(&engine, "HEALTHY again", |b| b.status() == BackendStatus::Healthy).await;
    engine.shutdown().await;
}

/// Self-doubt holds DNS expiry too: lookups that fail while the prober
/// doubts itself (its resolver gives no answer) keep the last good set past
/// the TTL maximum; trusted again, the same failures expire it.
#[tokio::test(start_paused = true)]
async fn a_doubting_prober_keeps_the_last_set_through_failed_lookups() {
    let dns = Dns::answering(vec![answer(&[1], 10)]);
    let config = EngineConfig {
        doubt: mcp_health_core::doubt::DoubtPolicy {
            clear_checks: 1,
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, dns.clone(), HealthStatuses::default());
    engine
        .apply(discovered("{interval: 2s, timeout: 1s}", "{minTtl: 5s, maxTtl: 20s}"), Origin::Api)
        .await
        .unwrap();
    until(&engine, "one HEALTHY endpoint", |b| b.status() == BackendStatus::Healthy).await;
    let no_resolver = mcp_health_core::doubt::Evidence {
        resolver_answered: Some(false),
        ..Default::default()
    };
    engine.report_doubt(no_resolver).await.unwrap();
    dns.set(Lookup::Failed { detail: "SERVFAIL".into() });
    // Three times the TTL maximum: still the last good set, still HEALTHY.
    tokio::time::sleep(60 * S).await;
    let b = backend(&engine).await;
    assert_eq!(endpoints(&b), rows(&[(1, H, false)]), "{b:#?}");
    assert!(engine.doubt().borrow().is_some());
    // The resolver check answers again: trusted, the failed lookups expire the set.
    engine
        .report_doubt(mcp_health_core::doubt::Evidence {
            resolver_answered: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = until(&engine, "UNHEALTHY with reason DNS", |b| b.status() == BackendStatus::Unhealthy).await;
    assert_eq!(b.endpoints[0].observed.reason.code, ReasonCode::Dns);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deleting_a_discovered_backend_stops_its_lookups_and_probes() {
    let dns = Dns::answering(vec![answer(&[1, 2], 5)]);
    let engine = start(dns.clone());
    engine
        .apply(discovered("{interval: 2s, timeout: 1s}", "{minTtl: 5s}"), Origin::Api)
        .await
        .unwrap();
    until(&engine, "two HEALTHY endpoints", |b| {
        endpoints(b).len() == 2 && b.status() == BackendStatus::Healthy
    })
    .await;
    engine.delete("g".into()).await.unwrap();
    let (lookups, p1, p2) = (dns.lookups.lock().unwrap().len(), dns.probes(1), dns.probes(2));
    tokio::time::sleep(120 * S).await;
    assert_eq!((dns.lookups.lock().unwrap().len(), dns.probes(1), dns.probes(2)), (lookups, p1, p2));
    engine.shutdown().await;
}

/// Drain one endpoint (issue 23): it keeps being probed and its verdict
/// shown, is not routable and not counted; an address the backend does not
/// have is refused (field `endpoint`); the drain is kept per address in the
/// spec while the backend exists, so an address that leaves DNS and comes
/// back is drained again; its end makes the endpoint routable again.
#[tokio::test(start_paused = true)]
async fn one_endpoint_is_drained_by_address_and_stays_drained_through_dns() {
    let dns = Dns::answering(vec![answer(&[1, 2, 3], 5)]);
    let engine = start(dns.clone());
    engine
        .apply(
            discovered(
                "{interval: 2s, timeout: 1s, unhealthyThreshold: 1}",
                "{minTtl: 5s, maxTtl: 60s, removalGrace: 0s}",
            ),
            Origin::Api,
        )
        .await
        .unwrap();
    until(&engine, "three HEALTHY endpoints", |b| {
        endpoints(b) == rows(&[(1, H, false), (2, H, false), (3, H, false)])
    })
    .await;
    let drained = |b: &BackendSnapshot| -> Vec<(u8, bool, bool)> {
        b.endpoints
            .iter()
            .map(|e| {
                (
                    e.observed.address.unwrap().ip().to_string().rsplit('.').next().unwrap().parse().unwrap(),
                    e.place.drained,
                    e.routable,
                )
            })
            .collect()
    };

    let applied = engine.set_drain("g".into(), "pods".into(), Some(addr(2)), true).await.unwrap();
    assert!(applied.changed);
    assert_eq!(applied.spec.backends[0].drained_endpoints, ["10.0.0.2:8080"]);
    let b = backend(&engine).await;
    assert_eq!(drained(&b), [(1, false, true), (2, true, false), (3, false, true)]);
    assert_eq!(endpoints(&b), rows(&[(1, H, false), (2, H, false), (3, H, false)]), "the verdicts stand");
    assert_eq!((b.status(), b.routable()), (BackendStatus::Healthy, true));
    assert_eq!(b.endpoints_message(), "2 of 2 endpoints routable; 1 drained");
    let probes = dns.probes(2);
    tokio::time::sleep(10 * S).await;
    assert!(dns.probes(2) > probes, "a drained endpoint is still probed");
    let again = engine.set_drain("g".into(), "pods".into(), Some(addr(2)), true).await.unwrap();
    assert!(!again.changed, "already drained");

    // Addresses the backend does not have.
    for (endpoint, drain) in [(addr(9), true), (addr(9), false)] {
        match engine.set_drain("g".into(), "pods".into(), Some(endpoint), drain).await {
            Err(EngineError::Invalid(v)) => assert_eq!(v[0].field, "endpoint", "{v:?}"),
            other => panic!("{endpoint} drain={drain}: {other:?}"),
        }
    }

    // It leaves DNS and is dropped: the drain is kept with the address.
    dns.set(answer(&[1, 3], 5));
    until(&engine, "endpoint 2 gone", |b| endpoints(b).len() == 2).await;
    let g = engine.get("g".into()).await.unwrap();
    assert!(g.backend("pods").unwrap().routable());
    // It comes back: drained again.
    dns.set(answer(&[1, 2, 3], 5));
    let b = until(&engine, "endpoint 2 back", |b| endpoints(b).len() == 3).await;
    assert_eq!(drained(&b), [(1, false, true), (2, true, false), (3, false, true)]);

    let ended = engine.set_drain("g".into(), "pods".into(), Some(addr(2)), false).await.unwrap();
    assert!(ended.changed && ended.spec.backends[0].drained_endpoints.is_empty());
    let b = until(&engine, "endpoint 2 routable", |b| b.endpoints.iter().all(|e| e.routable)).await;
    assert_eq!(drained(&b), [(1, false, true), (2, false, true), (3, false, true)]);
    engine.shutdown().await;
}
