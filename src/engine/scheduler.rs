//! One task per backend: sleeps until its next planned probe (with jitter),
//! takes a permit from the global limit, probes, and reports to the owner.
//! A hanging backend holds only its own task and one permit, never another's.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::results::ProbeResult;
use super::spread::StartPacer;
use super::{Command, InFlight, ProbeObserver};
use crate::core::outcome::{ProbeOutcome, Reason};
use crate::probe::{Probe, ProbeMemory, ProbeTarget};
use crate::proto::v1::ReasonCode;
use crate::spec::Policy;

/// Extra time past the policy timeout before the scheduler abandons a probe
/// that ignores its own deadline; the prober normally finishes first.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// A probe's outcome with the latency already judged against the policy.
pub struct Timed {
    pub outcome: ProbeOutcome,
    pub latency: Duration,
}

/// What one backend incarnation (epoch) has learnt across probes (the
/// detected revision), shared by its scheduled probes and the on-demand ones
/// (`ProbeBackend`), so both take the same path and the same round trips.
pub type SharedMemory = Arc<Mutex<ProbeMemory>>;

/// Runs one probe on a copy of the shared memory and keeps what it learnt:
/// the lock is never held across the probe (nor by the owner task).
pub async fn probe_shared(prober: &dyn Probe, target: &ProbeTarget, memory: &SharedMemory, policy: Policy) -> Timed {
    // A poisoned lock only means a panic mid-assignment; the memory is still a valid value.
    let mut local = memory.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let timed = probe_once(prober, target, &mut local, policy).await;
    *memory.lock().unwrap_or_else(PoisonError::into_inner) = local;
    timed
}

/// Runs one probe bounded by the policy timeout.
pub async fn probe_once(prober: &dyn Probe, target: &ProbeTarget, memory: &mut ProbeMemory, policy: Policy) -> Timed {
    let start = Instant::now();
    let deadline = start + policy.timeout;
    match tokio::time::timeout_at(deadline + DEADLINE_GRACE, prober.probe(target, memory, deadline)).await {
        Ok(report) => Timed {
            outcome: report.outcome.judge_latency(report.latency, policy.degraded_latency),
            latency: report.latency,
        },
        Err(_) => {
            let latency = start.elapsed();
            Timed {
                outcome: ProbeOutcome::failure(Reason::new(ReasonCode::Timeout, format!("no reply within {} ms", policy.timeout.as_millis()))),
                latency,
            }
        }
    }
}

/// The interval until the next probe: `interval` spread by ±jitter.
fn jittered(interval: Duration, jitter_percent: u32, rng: &mut impl Rng) -> Duration {
    if jitter_percent == 0 {
        return interval;
    }
    let j = f64::from(jitter_percent) / 100.0;
    interval.mul_f64(rng.random_range((1.0 - j)..=(1.0 + j)))
}

pub struct BackendTask {
    pub group: String,
    pub backend: String,
    pub epoch: u64,
    pub target: Arc<ProbeTarget>,
    pub policy: Policy,
    pub prober: Arc<dyn Probe>,
    pub limiter: Arc<Semaphore>,
    pub owner: mpsc::Sender<Command>,
    pub observer: Option<Arc<dyn ProbeObserver>>,
    pub pacer: Arc<StartPacer>,
    /// Cluster mode: probe only while this replica owns the backend.
    pub cluster: Option<Arc<dyn super::seam::ClusterSeam>>,
    /// Shared with `ProbeBackend` for this epoch (the owner hands it out).
    pub memory: SharedMemory,
}

impl BackendTask {
    /// Probes first when the start-up spread allows (`spread`), then on a
    /// jittered timer. Without a spread (`initialSpread: 0s`) the first probe
    /// is at once and the second lands at a random point of the first
    /// interval, so backends added together still drift apart.
    pub async fn run(self) {
        let spread = self.policy.initial_spread.min(self.policy.interval);
        let mut planned = self.pacer.first_start(spread);
        let mut first = true;
        loop {
            tokio::time::sleep_until(planned).await;
            if self.cluster.as_ref().is_some_and(|c| !c.owns(&self.group, &self.backend)) {
                // Another replica probes it; ask again at the next planned time.
                planned = (planned + self.policy.interval).max(Instant::now());
                continue;
            }
            let Ok(permit) = self.limiter.acquire().await else { return };
            let started = Instant::now();
            let in_flight = InFlight::probe(self.observer.as_ref());
            let timed = probe_shared(&*self.prober, &self.target, &self.memory, self.policy).await;
            drop(in_flight);
            drop(permit);
            let result = ProbeResult {
                group: self.group.clone(),
                backend: self.backend.clone(),
                epoch: self.epoch,
                outcome: timed.outcome,
                latency: timed.latency,
                scheduling_lag: started.saturating_duration_since(planned),
                interval: self.policy.interval,
                reply: None,
            };
            if self.owner.send(Command::ProbeResult(Box::new(result))).await.is_err() {
                return;
            }
            let next = {
                let mut rng = rand::rng();
                if first && spread.is_zero() {
                    self.policy.interval.mul_f64(rng.random_range(0.5..=1.0))
                } else {
                    jittered(self.policy.interval, self.policy.jitter_percent, &mut rng)
                }
            };
            first = false;
            // Plan from the previous plan so jitter does not drift; if we fell
            // behind (a long probe), plan from now instead of bursting.
            planned = (planned + next).max(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = rand::rng();
        let interval = Duration::from_secs(10);
        for _ in 0..1000 {
            let d = jittered(interval, 10, &mut rng);
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11), "{d:?}");
        }
        assert_eq!(jittered(interval, 0, &mut rng), interval);
    }
}
