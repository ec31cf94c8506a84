//! Engine tests of bursts in cluster mode (issue 21 §3) with paused time: a
//! scripted prober and a seam that records the bursts the engine asks the
//! other replicas about. While they are asked, failing probes are held back;
//! their answer decides: they fail too (a real outage: verdicts move), they
//! reach the backends (this replica doubts itself: verdicts hold), or nobody
//! can be asked (nothing is held).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tests::{Script, Scripted, spec, status_of};
use super::*;
use mcp_health_core::burst::BurstPolicy;
use mcp_health_core::doubt::{Cause, DoubtPolicy};
use mcp_health_proto::v1::BackendStatus;

/// Owns every backend; records each burst's sample; `askable`: whether
/// another replica could be asked.
#[derive(Debug, Default)]
struct Peers {
    askable: AtomicBool,
    bursts: Mutex<Vec<Vec<(String, String)>>>,
}

impl seam::ClusterSeam for Peers {
    fn owns(&self, _: &str, _: &str) -> bool {
        true
    }
    fn verdict_changed(&self, _: &str, _: &str, _: &seam::SharedVerdict) {}
    fn burst(&self, sample: &[(String, String)]) -> bool {
        self.bursts.lock().unwrap().push(sample.to_vec());
        self.askable.load(Ordering::SeqCst)
    }
}

const BACKENDS: [&str; 4] = ["a", "b", "c", "d"];

fn url(b: &str) -> String {
    format!("http://{b}.test/mcp")
}

/// One step of a case.
#[derive(Clone, Debug)]
enum Step {
    /// Every backend answers so from now on.
    Set(Script),
    /// Wait (paused time) until every backend ran this many more probes.
    Probes(usize),
    /// The other replicas' answer.
    Answer(Option<bool>),
    /// How many backends are UNHEALTHY, bursts asked about so far, and the
    /// doubt's causes ("" for none). (The first backend to fail folds its
    /// failure before there is a burst: DEGRADED, still routable.)
    Expect(usize, usize, &'static str),
}

async fn run(name: &str, askable: bool, steps: &[Step]) {
    let prober = Arc::new(Scripted::default());
    let peers = Arc::new(Peers::default());
    peers.askable.store(askable, Ordering::SeqCst);
    let config = EngineConfig {
        cluster: Some(peers.clone()),
        doubt: DoubtPolicy {
            clear_checks: 2,
            ..DoubtPolicy::default()
        },
        burst: Some(BurstPolicy {
            window: Duration::from_secs(30),
            min_backends: 2,
            min_percent: 50,
            sample: 2,
            suspect_for: Duration::from_secs(300),
        }),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, prober.clone(), HealthStatuses::default());
    let mut yaml = "name: g\npolicy: {interval: 10s, edgeInterval: 2s, jitterPercent: 0, unhealthyThreshold: 3, healthyThreshold: 1}\nbackends:\n".to_owned();
    for b in BACKENDS {
        yaml.push_str(&format!("  - name: {b}\n    url: {}\n", url(b)));
    }
    engine.apply(spec(&yaml), Origin::Api).await.unwrap();
    for b in BACKENDS {
        while status_of(&engine, "g", b).await != BackendStatus::Healthy {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let doubt = engine.doubt();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Set(s) => BACKENDS.iter().for_each(|b| prober.set(&url(b), *s)),
            Step::Probes(n) => {
                let until: Vec<usize> = BACKENDS.iter().map(|b| prober.calls(&url(b)) + n).collect();
                while BACKENDS.iter().zip(&until).any(|(b, u)| prober.calls(&url(b)) < *u) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Step::Answer(reach) => {
                engine.peers_answered(*reach).await.unwrap();
                engine.get("g".into()).await.unwrap();
            }
            Step::Expect(status, bursts, causes) => {
                let mut unhealthy = 0;
                for b in BACKENDS {
                    unhealthy += usize::from(status_of(&engine, "g", b).await == BackendStatus::Unhealthy);
                }
                let shown = doubt.borrow().as_ref().map(|d| d.causes.labels()).unwrap_or_default();
                let got = (unhealthy, peers.bursts.lock().unwrap().len(), shown);
                assert_eq!(got, (*status, *bursts, causes.to_string()), "{name}: step {i} ({step:?})");
            }
        }
    }
    if let Some(sample) = peers.bursts.lock().unwrap().first() {
        assert_eq!(sample.len(), 2, "{name}: the sample is the policy's size");
        assert!(sample.iter().all(|(g, b)| g == "g" && BACKENDS.contains(&b.as_str())), "{name}: {sample:?}");
    }
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_held_until_the_other_replicas_answer_and_their_answer_decides() {
    const NONE: usize = 0;
    const ALL: usize = BACKENDS.len();
    use Step::*;
    let peers = Cause::PeersReach.label();
    let cases: Vec<(&str, bool, Vec<Step>)> = vec![
        (
            "the others fail too: a real outage, seen once they answer",
            true,
            vec![
                Set(Script::Down),
                Probes(2),
                Expect(NONE, 1, ""),
                Answer(Some(false)),
                Probes(3),
                Expect(ALL, 1, ""),
            ],
        ),
        (
            "the others reach them: this replica doubts itself and holds",
            true,
            vec![
                Set(Script::Down),
                Probes(2),
                Answer(Some(true)),
                Expect(NONE, 1, peers),
                Probes(6),
                // A doubt asks no more (the burst window passed meanwhile).
                Expect(NONE, 1, peers),
                // Two answers that they fail too end the doubt; failures fold again.
                Answer(Some(false)),
                Answer(Some(false)),
                Expect(NONE, 1, ""),
                Probes(3),
                Expect(ALL, 1, ""),
            ],
        ),
        ("nobody to ask: nothing is held", false, vec![Set(Script::Down), Probes(3), Expect(ALL, 1, "")]),
        ("healthy backends make no burst", true, vec![Probes(3), Expect(NONE, 0, "")]),
    ];
    for (name, askable, steps) in cases {
        run(name, askable, &steps).await;
    }
}
