//! One task per backend: sleeps until its next planned probe (with jitter),
//! takes a permit from the global limit, probes, and reports to the owner,
//! which answers with the pace the folded verdict asks for (the edge interval
//! while a change is pending). A hanging backend holds only its own task and
//! one permit, never another's.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::results::{ProbeResult, SharedMemory, Timed};
use super::spread::StartPacer;
use super::{Command, InFlight, ProbeObserver};
use mcp_health_core::catalog::{CatalogRead, blocked, diff, missing_tools};
use mcp_health_core::check::check_name;
use mcp_health_core::outcome::{OutcomeClass, ProbeOutcome, Reason, retry_wait};
use mcp_health_core::spec::Policy;
use mcp_health_core::verdict::Pace;
use mcp_health_probe::{Probe, ProbeMemory, ProbeTarget};
use mcp_health_proto::v1::{BackendSpec, CatalogOnChange, ReasonCode};

/// Extra time past the policy timeout before the scheduler abandons a probe
/// that ignores its own deadline; the prober normally finishes first.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

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
            outcome: judge_checks(
                judge_catalog(
                    report.outcome.judge_latency(report.latency, policy.degraded_latency),
                    &target.backend.spec,
                    memory,
                ),
                &target.backend.spec,
                memory,
            ),
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

/// Keeps a whole catalog the probe read in the backend's probe memory, and
/// judges the backend's catalog policy (BLOCK: `ProbeOutcome::judge_blocked`)
/// and required tools (`ProbeOutcome::judge_required`) against the last one
/// read: the probes between two catalog reads are handshake-only, and judged
/// by the last read. A refused catalog says more than a missing tool, so it
/// is judged first.
fn judge_catalog(outcome: ProbeOutcome, spec: &BackendSpec, memory: &mut ProbeMemory) -> ProbeOutcome {
    if let Some(CatalogRead::Whole(catalog)) = &outcome.facts.catalog {
        memory.catalog = Some(catalog.clone());
    }
    let Some(catalog) = memory.catalog.clone() else { return outcome };
    let mut outcome = outcome;
    if let Some(policy) = spec.catalog.as_ref().filter(|p| p.on_change == CatalogOnChange::Block as i32) {
        if blocked(&policy.accepted, &catalog) {
            let since = memory.accepted_catalog.as_ref().map(|accepted| diff(accepted, &catalog));
            outcome = outcome.judge_blocked(&catalog.fingerprint, since.as_ref());
        } else {
            memory.accepted_catalog = Some(catalog.clone());
        }
    }
    if spec.required_tools.is_empty() {
        return outcome;
    }
    let missing = missing_tools(&spec.required_tools, &catalog);
    outcome.judge_required(&missing)
}

/// Judges the backend's synthetic checks by their last results in the
/// backend's probe memory: the first failing one, in spec order, makes a live
/// answer a CHECK_FAILED failure (`ProbeOutcome::judge_check`). The probes
/// between two runs of a check are judged by its last run, so hysteresis
/// counts probes as for any failure.
fn judge_checks(outcome: ProbeOutcome, spec: &BackendSpec, memory: &ProbeMemory) -> ProbeOutcome {
    let failing = spec.checks.iter().enumerate().find_map(|(j, c)| {
        let failure = memory.checks.get(&j)?.failure.as_ref()?;
        Some((check_name(c), failure))
    });
    match failing {
        Some((name, failure)) => outcome.judge_check(failure.reason(name)),
        None => outcome,
    }
}

/// When the next probe runs: the regular plan (`planned + next`, so jitter
/// does not drift), or, when the backend asked to wait (`retry_after`), no
/// sooner than that wait capped by `hold` after the answer (`now`). Never
/// before `now`: a probe that fell behind is not followed by a burst.
fn next_plan(planned: Instant, next: Duration, now: Instant, retry_after: Option<Duration>, hold: Duration) -> Instant {
    (planned + next).max(now + retry_wait(retry_after, hold))
}

/// Where a run of bare 429s stands: the first of the run started at `since`.
/// A bare 429 within `hold` of it holds the verdict; past it, it is a failure.
/// Any other outcome ends the run.
fn judge_throttle(outcome: ProbeOutcome, throttled_since: &mut Option<Instant>, started: Instant, now: Instant, hold: Duration) -> ProbeOutcome {
    if outcome.class != OutcomeClass::Throttled {
        *throttled_since = None;
        return outcome;
    }
    let since = *throttled_since.get_or_insert(started);
    outcome.judge_hold(now.saturating_duration_since(since), hold)
}

/// The interval until the next probe: `interval` spread by ±jitter.
fn jittered(interval: Duration, jitter_percent: u32, rng: &mut impl Rng) -> Duration {
    if jitter_percent == 0 {
        return interval;
    }
    let j = f64::from(jitter_percent) / 100.0;
    interval.mul_f64(rng.random_range((1.0 - j)..=(1.0 + j)))
}

/// The edge interval spread by the jitter downward only: backends that
/// failed together still drift apart, and the edge interval stays a bound
/// (the documented worst case counts it whole).
fn jittered_below(edge: Duration, jitter_percent: u32, rng: &mut impl Rng) -> Duration {
    if jitter_percent == 0 {
        return edge;
    }
    let j = f64::from(jitter_percent) / 100.0;
    edge.mul_f64(rng.random_range((1.0 - j)..=1.0))
}

/// The time from a probe's planned start to the next one's. While a change
/// is pending (`Pace::Edge`), the edge interval; otherwise the interval
/// spread by ±jitter, or after a first probe made at once without a spread
/// (`first_unspread`) a random point of the first interval, so backends
/// added together drift apart. `next_plan` then lets a wait the backend
/// asked for win over either.
fn next_interval(policy: &Policy, pace: Pace, first_unspread: bool, rng: &mut impl Rng) -> Duration {
    match pace {
        Pace::Edge => jittered_below(policy.edge_interval(), policy.jitter_percent, rng),
        Pace::Steady if first_unspread => policy.interval.mul_f64(rng.random_range(0.5..=1.0)),
        Pace::Steady => jittered(policy.interval, policy.jitter_percent, rng),
    }
}

/// What one probe tells the timer.
struct Step {
    pace: Pace,
    answered: Instant,
    retry_after: Option<Duration>,
}

pub struct BackendTask {
    pub group: String,
    pub backend: String,
    pub epoch: u64,
    pub target: Arc<ProbeTarget>,
    pub policy: Policy,
    pub prober: Arc<dyn Probe>,
    pub limiter: Arc<Semaphore>,
    /// Weak: a probe task never keeps the engine alive (see `owner.rs`).
    pub owner: mpsc::WeakSender<Command>,
    pub observer: Option<Arc<dyn ProbeObserver>>,
    pub pacer: Arc<StartPacer>,
    /// Cluster mode: probe only while this replica owns the backend.
    pub cluster: Option<Arc<dyn super::seam::ClusterSeam>>,
    /// Shared with `ProbeBackend` for this epoch (the owner hands it out).
    pub memory: SharedMemory,
    /// Wakes the task to probe before its planned time (an ejection's
    /// confirmation, `Effect::Confirm`), never before a wait the backend asked for.
    pub wake: Arc<tokio::sync::Notify>,
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
        let mut throttled_since = None;
        // No probe before this: the wait the backend last asked for.
        let mut not_before = Instant::now();
        loop {
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(planned) => break,
                    () = self.wake.notified() => {
                        planned = planned.min(Instant::now().max(not_before));
                    }
                }
            }
            let owned = |c: &Arc<dyn super::seam::ClusterSeam>| match self.target.pin {
                Some(address) => c.owns_endpoint(&self.group, &self.backend, address),
                None => c.owns(&self.group, &self.backend),
            };
            if self.cluster.as_ref().is_some_and(|c| !owned(c)) {
                // Another replica probes it; ask again at the next planned time.
                planned = (planned + self.policy.interval).max(Instant::now());
                continue;
            }
            // Boxed: a probe's state (the permit wait, a copy of the probe memory,
            // the timeout, the outcome, the send to the owner) lives on the heap
            // only while the probe runs, so an idle backend's task holds little
            // more than its timer (`tests::an_idle_probe_task_stays_small`;
            // BENCHMARKS.md, "Where the memory at 10,000 backends goes").
            let Some(step) = Box::pin(self.probe_and_report(planned, &mut throttled_since)).await else {
                return;
            };
            let next = next_interval(&self.policy, step.pace, first && spread.is_zero(), &mut rand::rng());
            first = false;
            let now = Instant::now().max(step.answered);
            not_before = now + retry_wait(step.retry_after, self.policy.rate_limit_hold);
            planned = next_plan(planned, next, now, step.retry_after, self.policy.rate_limit_hold);
        }
    }

    /// One probe planned for `planned`: waits for a permit, probes, sends the
    /// result to the owner and awaits the pace it answers. None when the
    /// engine is gone.
    async fn probe_and_report(&self, planned: Instant, throttled_since: &mut Option<Instant>) -> Option<Step> {
        let permit = self.limiter.acquire().await.ok()?;
        let started = Instant::now();
        let in_flight = InFlight::probe(self.observer.as_ref());
        let timed = probe_shared(&*self.prober, &self.target, &self.memory, self.policy).await;
        drop(in_flight);
        drop(permit);
        let answered = Instant::now();
        let outcome = judge_throttle(timed.outcome, throttled_since, started, answered, self.policy.rate_limit_hold);
        let retry_after = outcome.retry_after;
        let (pace_tx, pace_rx) = oneshot::channel();
        let result = ProbeResult {
            group: self.group.clone(),
            backend: self.backend.clone(),
            epoch: self.epoch,
            endpoint: self.target.pin,
            outcome,
            latency: timed.latency,
            scheduling_lag: started.saturating_duration_since(planned),
            interval: self.policy.interval,
            reply: None,
            pace: Some(pace_tx),
        };
        let owner = self.owner.upgrade()?;
        owner.send(Command::ProbeResult(Box::new(result))).await.ok()?;
        drop(owner);
        // The owner's verdict, with this result folded in, decides the pace:
        // one source of truth, which on-demand probes and shared verdicts
        // also feed. Unanswered (result dropped, engine stopping): steady.
        let pace = pace_rx.await.unwrap_or(Pace::Steady);
        Some(Step { pace, answered, retry_after })
    }
}

/// One task per discovered backend (issue 23): looks its name up, hands the
/// lookup to the owner (`Command::DnsAnswer`) and waits as long as the owner
/// answers (the answer's TTL clamped by the policy, `Change::next_lookup`).
pub struct DiscoveryTask {
    pub group: String,
    pub backend: String,
    pub epoch: u64,
    pub target: Arc<ProbeTarget>,
    pub prober: Arc<dyn Probe>,
    /// Weak: a discovery task never keeps the engine alive (see `owner.rs`).
    pub owner: mpsc::WeakSender<Command>,
    /// Cluster mode: look up only while this replica owns the backend; the
    /// others take the set its owner shares (`Command::RemoteEndpoints`).
    pub cluster: Option<Arc<dyn super::seam::ClusterSeam>>,
}

impl DiscoveryTask {
    pub async fn run(self) {
        // How soon a replica that does not own the backend asks again (a
        // failover starts the new owner's lookups within this).
        let recheck = self
            .target
            .backend
            .discovery
            .as_ref()
            .map_or(mcp_health_core::discovery::DEFAULT_MIN_TTL, |p| p.min_ttl);
        loop {
            if self.cluster.as_ref().is_some_and(|c| !c.owns(&self.group, &self.backend)) {
                tokio::time::sleep(recheck).await;
                continue;
            }
            let lookup = self.prober.discover(&self.target).await;
            let (next_tx, next_rx) = oneshot::channel();
            let Some(owner) = self.owner.upgrade() else { return };
            let sent = owner
                .send(Command::DnsAnswer {
                    answer: super::state::DnsAnswer {
                        group: self.group.clone(),
                        backend: self.backend.clone(),
                        epoch: self.epoch,
                        lookup,
                    },
                    next: next_tx,
                })
                .await;
            drop(owner);
            if sent.is_err() {
                return;
            }
            // Unanswered: the incarnation is gone (its task is being aborted).
            let Ok(next) = next_rx.await else { return };
            tokio::time::sleep(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failing_check_in_spec_order_makes_a_live_answer_check_failed() {
        use mcp_health_core::check::{CheckFailure, FailureClass};
        use mcp_health_core::outcome::ServerFacts;
        use mcp_health_probe::CheckMemory;
        use mcp_health_proto::v1::ToolCheck;
        let spec = BackendSpec {
            checks: vec![
                ToolCheck {
                    tool: "status".into(),
                    ..ToolCheck::default()
                },
                ToolCheck {
                    name: "billing".into(),
                    tool: "invoice".into(),
                    ..ToolCheck::default()
                },
                ToolCheck {
                    tool: "third".into(),
                    ..ToolCheck::default()
                },
            ],
            ..BackendSpec::default()
        };
        let ran = |failures: &[(usize, Option<FailureClass>)]| {
            let mut m = ProbeMemory::default();
            for (j, f) in failures {
                let failure = f.map(|class| CheckFailure::new(class, "why"));
                m.checks.insert(*j, CheckMemory { due: Instant::now(), failure });
            }
            m
        };
        let live = || ProbeOutcome::success(ServerFacts::default());
        let refused = || live().judge_required(&["x"]);
        // (outcome, checks' last results, class and reason after, message)
        let cases: Vec<(ProbeOutcome, ProbeMemory, OutcomeClass, ReasonCode, &str)> = vec![
            (live(), ran(&[]), OutcomeClass::Success, ReasonCode::Ok, "handshake succeeded"),
            (
                live(),
                ran(&[(0, None), (1, None)]),
                OutcomeClass::Success,
                ReasonCode::Ok,
                "handshake succeeded",
            ),
            (
                live(),
                ran(&[(0, None), (1, Some(FailureClass::Timeout)), (2, Some(FailureClass::IsError))]),
                OutcomeClass::Failure,
                ReasonCode::CheckFailed,
                "check billing failed (timeout): why",
            ),
            (
                live(),
                ran(&[(2, Some(FailureClass::JsonRpc))]),
                OutcomeClass::Failure,
                ReasonCode::CheckFailed,
                "check third failed (JSON-RPC error): why",
            ),
            // A refusal or a failed probe says more, and is kept.
            (
                refused(),
                ran(&[(0, Some(FailureClass::Transport))]),
                OutcomeClass::Refused,
                ReasonCode::RequiredToolMissing,
                "required tools missing from the catalog: x",
            ),
            (
                ProbeOutcome::failure(Reason::new(ReasonCode::Timeout, "no reply")),
                ran(&[(0, Some(FailureClass::Transport))]),
                OutcomeClass::Failure,
                ReasonCode::Timeout,
                "no reply",
            ),
        ];
        for (outcome, memory, class, code, message) in cases {
            let judged = judge_checks(outcome, &spec, &memory);
            assert_eq!((judged.class, judged.reason.code, judged.reason.message.as_str()), (class, code, message));
        }
    }

    #[test]
    fn the_next_plan_honours_a_wait_within_the_interval_and_the_hold() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let hold = s(300);
        // (planned, next, now, retry_after, want): times in seconds from t0.
        let cases: &[(u64, u64, u64, Option<Duration>, u64)] = &[
            // No wait asked: the regular plan, or now if we fell behind.
            (0, 10, 1, None, 10),
            (0, 10, 30, None, 30),
            // A wait shorter than the interval never brings the probe sooner.
            (0, 10, 1, Some(s(2)), 10),
            // A longer one is honoured from the answer...
            (0, 10, 1, Some(s(60)), 61),
            // ...up to the hold, never longer.
            (0, 10, 1, Some(s(3600)), 301),
            (0, 10, 1, Some(Duration::MAX), 301),
            // An interval longer than the hold still wins.
            (0, 600, 1, Some(s(3600)), 600),
        ];
        for &(planned, next, now, retry_after, want) in cases {
            let got = next_plan(t0 + s(planned), s(next), t0 + s(now), retry_after, hold);
            assert_eq!(got - t0, s(want), "planned {planned} next {next} now {now} wait {retry_after:?}");
        }
        assert_eq!(
            next_plan(t0, s(10), t0 + s(1), Some(s(60)), Duration::ZERO) - t0,
            s(10),
            "hold 0s: no wait honoured"
        );
    }

    #[test]
    fn a_run_of_bare_429s_is_held_then_fails() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let bare = || ProbeOutcome::throttled(Reason::http(ReasonCode::RateLimited, 429, "HTTP 429"));
        let mut since = None;
        // (started, answered, outcome, want): the run starts with its first probe.
        let steps: Vec<(u64, u64, ProbeOutcome, OutcomeClass)> = vec![
            (0, 1, bare(), OutcomeClass::Throttled),
            (60, 61, bare(), OutcomeClass::Throttled),
            (299, 299, bare(), OutcomeClass::Throttled),
            (300, 300, bare(), OutcomeClass::Failure),
            (400, 400, bare(), OutcomeClass::Failure),
            // Any other answer ends the run; the next bare 429 starts a new one.
            (500, 500, ProbeOutcome::success(Default::default()), OutcomeClass::Success),
            (510, 510, bare(), OutcomeClass::Throttled),
            (809, 809, bare(), OutcomeClass::Throttled),
            (810, 811, bare(), OutcomeClass::Failure),
        ];
        for (i, (started, answered, outcome, want)) in steps.into_iter().enumerate() {
            let got = judge_throttle(outcome, &mut since, t0 + s(started), t0 + s(answered), s(300));
            assert_eq!(got.class, want, "step {i}");
        }
    }

    #[test]
    fn the_pace_picks_the_interval_and_jitter_never_lengthens_the_edge() {
        let mut rng = rand::rng();
        let ms = Duration::from_millis;
        let policy = |interval: u64, edge: Option<u64>, jitter_percent: u32| Policy {
            interval: ms(interval),
            edge_interval_set: edge.map(ms),
            jitter_percent,
            ..Policy::default()
        };
        // (policy, pace, first without a spread, shortest, longest): in ms.
        let cases = [
            (policy(10_000, None, 0), Pace::Steady, false, 10_000, 10_000),
            (policy(10_000, None, 0), Pace::Edge, false, 2_000, 2_000),
            (policy(10_000, Some(500), 0), Pace::Edge, false, 500, 500),
            (policy(10_000, Some(500), 20), Pace::Edge, false, 400, 500),
            (policy(10_000, Some(500), 20), Pace::Steady, false, 8_000, 12_000),
            (policy(10_000, Some(500), 20), Pace::Steady, true, 5_000, 10_000),
            // A change pending after the very first probe (not possible from
            // UNKNOWN, but a shared verdict may be): the edge wins.
            (policy(10_000, Some(500), 0), Pace::Edge, true, 500, 500),
        ];
        for (policy, pace, first_unspread, lo, hi) in cases {
            let got: Vec<Duration> = (0..500).map(|_| next_interval(&policy, pace, first_unspread, &mut rng)).collect();
            assert!(
                got.iter().all(|d| *d >= ms(lo) && *d <= ms(hi)),
                "{policy:?} {pace:?} {first_unspread}: {got:?}"
            );
            if lo < hi {
                assert!(got.iter().any(|d| *d != got[0]), "jitter applies: {policy:?} {pace:?}");
            }
        }
    }

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
