//! Table tests for the verdict state machine and the group phase. Every case
//! goes through one helper per table, so a new case is one line.

use std::time::Duration;

use super::outcome::OutcomeClass::{self, AuthRequired, Failure, RateLimited, Refused, Slow, Success, Throttled, ToolsFailing};
use super::outcome::{ProbeOutcome, Reason, retry_wait};
use super::phase::{BackendView, aggregate_status, group_verdict};
use super::verdict::{Pace, Thresholds, Verdict, is_routable, observe, pace};
use mcp_health_proto::v1::{AuthMode, BackendStatus as S, GroupPhase as P, ReasonCode};

const T3_1: Thresholds = Thresholds { unhealthy: 3, healthy: 1 };
const T3_2: Thresholds = Thresholds { unhealthy: 3, healthy: 2 };
const T1_1: Thresholds = Thresholds { unhealthy: 1, healthy: 1 };

/// Feeds `observations` to a fresh UNKNOWN verdict and checks the status (and
/// routability) after each one. The verdict stands on a refusal when the last
/// observation was one, as the engine tells from the backend's reason.
#[track_caller]
fn check_sequence(auth: AuthMode, t: Thresholds, steps: &[(OutcomeClass, S, bool)]) {
    let mut v = Verdict::unknown();
    let mut refused_before = false;
    for (i, (class, want_status, want_routable)) in steps.iter().enumerate() {
        v = observe(&v, refused_before, *class, auth, t);
        refused_before = *class == Refused;
        assert_eq!(
            (v.status, is_routable(v.status, auth)),
            (*want_status, *want_routable),
            "step {i} ({class:?}) with {auth:?} {t:?}: got {v:?}"
        );
    }
}

#[test]
fn transitions() {
    use AuthMode::{None as NoAuth, PerUser, StaticHeader};
    // First conclusive result decides at once.
    check_sequence(NoAuth, T3_1, &[(Success, S::Healthy, true)]);
    check_sequence(NoAuth, T3_1, &[(Slow, S::Degraded, true)]);
    check_sequence(NoAuth, T3_1, &[(ToolsFailing, S::Degraded, true)]);
    check_sequence(NoAuth, T3_1, &[(Failure, S::Unhealthy, false)]);
    check_sequence(PerUser, T3_1, &[(AuthRequired, S::Unauthenticated, true)]);
    // 401 with auth NONE: a misconfiguration, not routable.
    check_sequence(NoAuth, T3_1, &[(AuthRequired, S::Unauthenticated, false)]);
    check_sequence(StaticHeader, T3_1, &[(AuthRequired, S::Unauthenticated, false)]);
    // A failure blip below the threshold: DEGRADED and still routable, then back.
    check_sequence(
        NoAuth,
        T3_1,
        &[
            (Success, S::Healthy, true),
            (Failure, S::Degraded, true),
            (Failure, S::Degraded, true),
            (Success, S::Healthy, true),
        ],
    );
    // The threshold-th failure makes the backend UNHEALTHY.
    check_sequence(
        NoAuth,
        T3_1,
        &[
            (Success, S::Healthy, true),
            (Failure, S::Degraded, true),
            (Failure, S::Degraded, true),
            (Failure, S::Unhealthy, false),
        ],
    );
    check_sequence(NoAuth, T1_1, &[(Success, S::Healthy, true), (Failure, S::Unhealthy, false)]);
    // Recovery after UNHEALTHY needs `healthy` consecutive successes.
    check_sequence(NoAuth, T3_1, &[(Failure, S::Unhealthy, false), (Success, S::Healthy, true)]);
    check_sequence(
        NoAuth,
        T3_2,
        &[
            (Failure, S::Unhealthy, false),
            (Success, S::Unhealthy, false),
            (Failure, S::Unhealthy, false),
            (Success, S::Unhealthy, false),
            (Slow, S::Degraded, true),
        ],
    );
    // A per-user backend that starts failing and then answers 401 again recovers.
    check_sequence(PerUser, T3_1, &[(Failure, S::Unhealthy, false), (AuthRequired, S::Unauthenticated, true)]);
    // Per-user backend blips below the threshold stay routable.
    check_sequence(
        PerUser,
        T3_1,
        &[
            (AuthRequired, S::Unauthenticated, true),
            (Failure, S::Degraded, true),
            (AuthRequired, S::Unauthenticated, true),
        ],
    );
    // A healthy NONE backend that starts answering 401 becomes non-routable at the threshold.
    check_sequence(
        NoAuth,
        T3_1,
        &[
            (Success, S::Healthy, true),
            (AuthRequired, S::Degraded, true),
            (AuthRequired, S::Degraded, true),
            (AuthRequired, S::Unauthenticated, false),
        ],
    );
    // Slow and fast alternate without ever leaving the routable set.
    check_sequence(
        NoAuth,
        T3_1,
        &[(Slow, S::Degraded, true), (Success, S::Healthy, true), (Slow, S::Degraded, true)],
    );
    // Failing tools are DEGRADED like slowness, and recover the same way.
    check_sequence(
        NoAuth,
        T3_2,
        &[(Success, S::Healthy, true), (ToolsFailing, S::Degraded, true), (Success, S::Healthy, true)],
    );
}

#[test]
fn rate_limits() {
    use AuthMode::{None as NoAuth, PerUser};
    // A JSON-RPC -32023 answer: DEGRADED and routable at once, from any start.
    check_sequence(NoAuth, T3_1, &[(RateLimited, S::Degraded, true)]);
    check_sequence(NoAuth, T1_1, &[(Success, S::Healthy, true), (RateLimited, S::Degraded, true)]);
    // It never counts toward unhealthyThreshold, however many in a row.
    check_sequence(
        NoAuth,
        T1_1,
        &[
            (Success, S::Healthy, true),
            (RateLimited, S::Degraded, true),
            (RateLimited, S::Degraded, true),
            (RateLimited, S::Degraded, true),
            (RateLimited, S::Degraded, true),
            (Success, S::Healthy, true),
        ],
    );
    // The server answered, so it ends a run of failures: two failures, a
    // -32023, two more failures stay below a threshold of 3.
    check_sequence(
        NoAuth,
        T3_1,
        &[
            (Success, S::Healthy, true),
            (Failure, S::Degraded, true),
            (Failure, S::Degraded, true),
            (RateLimited, S::Degraded, true),
            (Failure, S::Degraded, true),
            (Failure, S::Degraded, true),
            (Failure, S::Unhealthy, false),
        ],
    );
    // From UNHEALTHY it counts toward recovery like a slow success.
    check_sequence(NoAuth, T3_1, &[(Failure, S::Unhealthy, false), (RateLimited, S::Degraded, true)]);
    check_sequence(
        NoAuth,
        T3_2,
        &[
            (Failure, S::Unhealthy, false),
            (RateLimited, S::Unhealthy, false),
            (RateLimited, S::Degraded, true),
        ],
    );
    // A bare 429 within the hold changes nothing, whatever the status.
    check_sequence(
        NoAuth,
        T1_1,
        &[(Throttled, S::Unknown, false), (Throttled, S::Unknown, false), (Success, S::Healthy, true)],
    );
    check_sequence(
        NoAuth,
        T1_1,
        &[(Success, S::Healthy, true), (Throttled, S::Healthy, true), (Throttled, S::Healthy, true)],
    );
    check_sequence(NoAuth, T1_1, &[(Failure, S::Unhealthy, false), (Throttled, S::Unhealthy, false)]);
    check_sequence(
        PerUser,
        T1_1,
        &[(AuthRequired, S::Unauthenticated, true), (Throttled, S::Unauthenticated, true)],
    );
    check_sequence(NoAuth, T3_1, &[(RateLimited, S::Degraded, true), (Throttled, S::Degraded, true)]);
}

#[test]
fn a_held_verdict_keeps_its_counters_and_progress() {
    let t = T3_2;
    let mut v = observe(&Verdict::unknown(), false, Success, AuthMode::None, t);
    v = observe(&v, false, Failure, AuthMode::None, t);
    let before = v.clone();
    // Bare 429s neither reset the failure run nor advance it.
    for _ in 0..5 {
        v = observe(&v, false, Throttled, AuthMode::None, t);
        assert_eq!(v, before);
    }
    v = observe(&v, false, Failure, AuthMode::None, t);
    assert_eq!(
        (v.status, v.consecutive_failures, v.progress.as_str()),
        (S::Degraded, 2, "2 of 3 failed probes")
    );
    // A -32023 answer ends the run (the server answered) and counts as a success.
    v = observe(&v, false, RateLimited, AuthMode::None, t);
    assert_eq!((v.status, v.consecutive_failures, v.consecutive_successes), (S::Degraded, 0, 1));
}

/// Checks what a bare 429 is after a run of them lasted `held_s` under a hold of `hold_s`.
#[track_caller]
fn check_hold(class: OutcomeClass, held_s: u64, hold_s: u64, want: OutcomeClass) {
    let reason = Reason::http(ReasonCode::RateLimited, 429, "HTTP 429");
    let outcome = match class {
        Throttled => ProbeOutcome::throttled(reason),
        RateLimited => ProbeOutcome::rate_limited(reason, Default::default()),
        _ => ProbeOutcome::failure(reason),
    };
    let judged = outcome.judge_hold(Duration::from_secs(held_s), Duration::from_secs(hold_s));
    assert_eq!(judged.class, want, "{class:?} held {held_s}s of {hold_s}s");
    // The reason stays RATE_LIMITED with the HTTP status, so an UNHEALTHY verdict says why.
    assert_eq!((judged.reason.code, judged.reason.http_status), (ReasonCode::RateLimited, Some(429)));
}

#[test]
fn a_bare_429_is_held_until_the_hold_runs_out() {
    check_hold(Throttled, 0, 300, Throttled);
    check_hold(Throttled, 299, 300, Throttled);
    check_hold(Throttled, 300, 300, Failure);
    check_hold(Throttled, 3600, 300, Failure);
    // rateLimitHold: 0s makes every bare 429 a failure at once.
    check_hold(Throttled, 0, 0, Failure);
    // A -32023 answer is never held and never turned into a failure.
    check_hold(RateLimited, 3600, 300, RateLimited);
    check_hold(Failure, 0, 300, Failure);
}

#[test]
fn the_wait_a_backend_asks_for_is_capped() {
    let s = Duration::from_secs;
    let cases: &[(Option<Duration>, Duration, Duration)] = &[
        (None, s(300), Duration::ZERO),
        (Some(s(5)), s(300), s(5)),
        (Some(s(300)), s(300), s(300)),
        (Some(s(3600)), s(300), s(300)),
        (Some(Duration::from_millis(1500)), s(300), Duration::from_millis(1500)),
        (Some(s(5)), Duration::ZERO, Duration::ZERO),
    ];
    for &(hint, cap, want) in cases {
        assert_eq!(retry_wait(hint, cap), want, "hint {hint:?} cap {cap:?}");
    }
}

#[test]
fn progress_and_counters() {
    let t = T3_2;
    let mut v = observe(&Verdict::unknown(), false, Success, AuthMode::None, t);
    v = observe(&v, false, Failure, AuthMode::None, t);
    assert_eq!(
        (v.consecutive_failures, v.consecutive_successes, v.progress.as_str()),
        (1, 0, "1 of 3 failed probes")
    );
    v = observe(&v, false, Failure, AuthMode::None, t);
    assert_eq!(v.progress, "2 of 3 failed probes");
    v = observe(&v, false, Failure, AuthMode::None, t);
    assert_eq!((v.status, v.progress.as_str()), (S::Unhealthy, ""));
    v = observe(&v, false, Success, AuthMode::None, t);
    assert_eq!(
        (v.status, v.consecutive_failures, v.progress.as_str()),
        (S::Unhealthy, 0, "1 of 2 successful probes needed to recover")
    );
    v = observe(&v, false, Success, AuthMode::None, t);
    assert_eq!((v.status, v.consecutive_successes, v.progress.as_str()), (S::Healthy, 2, ""));
}

/// Feeds `steps` to a fresh UNKNOWN verdict and checks the pace after each
/// one; the pace is Edge exactly when the verdict shows progress toward a
/// threshold (one source of truth for "a change is pending").
#[track_caller]
fn check_pace(auth: AuthMode, t: Thresholds, steps: &[(OutcomeClass, Pace)]) {
    let mut v = Verdict::unknown();
    let mut refused_before = false;
    assert_eq!(pace(&v, auth), Pace::Steady, "UNKNOWN");
    for (i, (class, want)) in steps.iter().enumerate() {
        v = observe(&v, refused_before, *class, auth, t);
        refused_before = *class == Refused;
        let got = pace(&v, auth);
        assert_eq!(got, *want, "step {i} ({class:?}) with {auth:?} {t:?}: got {v:?}");
        assert_eq!(got == Pace::Edge, !v.progress.is_empty(), "step {i}: pace and progress disagree: {v:?}");
    }
}

#[test]
fn a_pending_change_asks_for_the_edge_interval() {
    use AuthMode::{None as NoAuth, PerUser, StaticHeader};
    use Pace::{Edge, Steady};
    // A new backend's first observation decides at once: nothing is pending.
    check_pace(NoAuth, T3_2, &[(Failure, Steady)]);
    check_pace(NoAuth, T3_2, &[(Success, Steady)]);
    // A failure while HEALTHY: edge until the threshold confirms it...
    check_pace(
        NoAuth,
        T3_1,
        &[(Success, Steady), (Failure, Edge), (Failure, Edge), (Failure, Steady), (Failure, Steady)],
    );
    // ...or a success refutes it.
    check_pace(NoAuth, T3_1, &[(Success, Steady), (Failure, Edge), (Success, Steady)]);
    // Recovery is symmetric: successes while UNHEALTHY, below healthyThreshold.
    check_pace(NoAuth, T3_2, &[(Failure, Steady), (Success, Edge), (Success, Steady), (Success, Steady)]);
    check_pace(NoAuth, T3_2, &[(Failure, Steady), (Success, Edge), (Failure, Steady)]);
    // healthyThreshold 1 (the default): the first success confirms at once.
    check_pace(NoAuth, T3_1, &[(Failure, Steady), (Success, Steady)]);
    // unhealthyThreshold 1: the first failure confirms at once.
    check_pace(NoAuth, T1_1, &[(Success, Steady), (Failure, Steady)]);
    // Slow, tools failing and -32023 are good evidence: DEGRADED, no change pending.
    check_pace(
        NoAuth,
        T3_1,
        &[(Success, Steady), (Slow, Steady), (ToolsFailing, Steady), (RateLimited, Steady)],
    );
    // ...but a failure of a slow backend is.
    check_pace(NoAuth, T3_1, &[(Slow, Steady), (Failure, Edge)]);
    // A bare 429 within the hold is no evidence: the pending change stays pending.
    check_pace(
        NoAuth,
        T3_1,
        &[(Success, Steady), (Failure, Edge), (Throttled, Edge), (Failure, Edge), (Failure, Steady)],
    );
    check_pace(NoAuth, T3_1, &[(Success, Steady), (Throttled, Steady)]);
    // A 401 is a failure for a static-header backend and liveness for a per-user one.
    check_pace(StaticHeader, T3_2, &[(Success, Steady), (AuthRequired, Edge)]);
    check_pace(StaticHeader, T3_2, &[(AuthRequired, Steady), (Success, Edge), (Success, Steady)]);
    check_pace(PerUser, T3_1, &[(Success, Steady), (AuthRequired, Steady)]);
    // A policy refusal decides at once both ways: nothing is ever pending.
    check_pace(NoAuth, T3_2, &[(Success, Steady), (Refused, Steady), (Success, Steady)]);
}

#[test]
fn a_policy_refusal_takes_the_backend_out_at_once_and_its_end_brings_it_back_at_once() {
    use AuthMode::{None as NoAuth, PerUser};
    let t = Thresholds { unhealthy: 5, healthy: 5 };
    // Out at the first refusal, whatever unhealthyThreshold says; back at the
    // first probe that is not refused, whatever healthyThreshold says.
    check_sequence(
        NoAuth,
        t,
        &[(Success, S::Healthy, true), (Refused, S::Unhealthy, false), (Success, S::Healthy, true)],
    );
    check_sequence(
        NoAuth,
        t,
        &[(Slow, S::Degraded, true), (Refused, S::Unhealthy, false), (Slow, S::Degraded, true)],
    );
    check_sequence(
        NoAuth,
        t,
        &[
            (Refused, S::Unhealthy, false),
            (Refused, S::Unhealthy, false),
            (ToolsFailing, S::Degraded, true),
        ],
    );
    check_sequence(PerUser, t, &[(Refused, S::Unhealthy, false), (AuthRequired, S::Unauthenticated, true)]);
    check_sequence(NoAuth, t, &[(Refused, S::Unhealthy, false), (RateLimited, S::Degraded, true)]);
    // A refusal in the middle of a run of failures ends the hysteresis too.
    check_sequence(
        NoAuth,
        t,
        &[(Success, S::Healthy, true), (Failure, S::Degraded, true), (Refused, S::Unhealthy, false)],
    );
    // A network failure after a refusal is judged as any failure: recovery
    // from it takes healthyThreshold good probes again.
    check_sequence(
        NoAuth,
        Thresholds { unhealthy: 5, healthy: 2 },
        &[
            (Refused, S::Unhealthy, false),
            (Failure, S::Unhealthy, false),
            (Success, S::Unhealthy, false),
            (Success, S::Healthy, true),
        ],
    );
    // A refused backend that fails outright stays out.
    check_sequence(NoAuth, t, &[(Refused, S::Unhealthy, false), (Failure, S::Unhealthy, false)]);
    // The counters still count: a refusal is a failure, and ends a run of successes.
    let v = observe(&Verdict::unknown(), false, Success, NoAuth, t);
    let v = observe(&v, false, Refused, NoAuth, t);
    assert_eq!((v.consecutive_failures, v.consecutive_successes, v.progress.as_str()), (1, 0, ""));
    let v = observe(&v, true, Success, NoAuth, t);
    assert_eq!(
        (v.status, v.consecutive_failures, v.consecutive_successes, v.progress.as_str()),
        (S::Healthy, 0, 1, "")
    );
}

/// Checks the phase, the routable count and the message of a group.
#[track_caller]
fn check_phase(backends: &[(S, AuthMode)], want: P, want_routable: u32, want_message: &str) {
    let drained: Vec<(S, AuthMode, bool)> = backends.iter().map(|(s, a)| (*s, *a, false)).collect();
    check_drained_phase(&drained, want, want_routable, want_message);
}

/// Like `check_phase`, with each backend's operator drain.
#[track_caller]
fn check_drained_phase(backends: &[(S, AuthMode, bool)], want: P, want_routable: u32, want_message: &str) {
    let aside: Vec<_> = backends.iter().map(|(s, a, d)| (*s, *a, *d, false)).collect();
    check_aside_phase(&aside, want, want_routable, want_message);
}

/// Like `check_phase`, with each backend's operator drain and ejection.
#[track_caller]
fn check_aside_phase(backends: &[(S, AuthMode, bool, bool)], want: P, want_routable: u32, want_message: &str) {
    let verdict = group_verdict(backends.iter().map(|(status, auth, draining, ejected)| BackendView {
        status: *status,
        auth: *auth,
        draining: *draining,
        ejected: *ejected,
    }));
    assert_eq!(
        (verdict.phase, verdict.summary.routable, verdict.message.as_str()),
        (want, want_routable, want_message),
        "backends {backends:?}"
    );
    assert_eq!(verdict.summary.total as usize, backends.len());
}

#[test]
fn phases() {
    use AuthMode::{None as NoAuth, PerUser};
    // Every backend PER_USER and answering 401: READY.
    check_phase(
        &[(S::Unauthenticated, PerUser), (S::Unauthenticated, PerUser)],
        P::Ready,
        2,
        "all 2 backends routable; 2 backends require authentication",
    );
    // Mixed healthy and per-user: READY.
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unauthenticated, PerUser), (S::Healthy, NoAuth)],
        P::Ready,
        3,
        "all 3 backends routable; 1 backend requires authentication",
    );
    // All down: FAILED.
    check_phase(
        &[(S::Unhealthy, NoAuth), (S::Unhealthy, NoAuth)],
        P::Failed,
        0,
        "0 of 2 backends routable; 2 backends are unhealthy",
    );
    // All slow: DEGRADED, not FAILED.
    check_phase(
        &[(S::Degraded, NoAuth), (S::Degraded, NoAuth)],
        P::Degraded,
        2,
        "all 2 backends routable; 2 backends are degraded",
    );
    // 401 with auth NONE: not routable.
    check_phase(
        &[(S::Unauthenticated, NoAuth)],
        P::Failed,
        0,
        "0 of 1 backend routable; 1 backend requires authentication",
    );
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unauthenticated, NoAuth), (S::Healthy, NoAuth)],
        P::Degraded,
        2,
        "2 of 3 backends routable; 1 backend requires authentication",
    );
    // Some routable, some not.
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unhealthy, NoAuth)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is unhealthy",
    );
    // No verdict yet: PENDING. A group with no backends: FAILED.
    check_phase(
        &[(S::Unknown, NoAuth), (S::Unknown, PerUser)],
        P::Pending,
        0,
        "waiting for the first verdict on 2 backends",
    );
    check_phase(&[], P::Failed, 0, "the group has no backends");
    check_phase(&[(S::Healthy, NoAuth)], P::Ready, 1, "the backend is routable");
}

/// Issue 19 §4: a backend not probed yet is neutral. An apply of 4 backends,
/// one dead and judged first, was FAILED for a moment; a reload that added a
/// backend to a READY group turned it DEGRADED until the new one was probed.
#[test]
fn backends_not_probed_yet_are_neutral() {
    use AuthMode::{None as NoAuth, PerUser};
    // No routable backend, some not probed yet: still PENDING, never FAILED.
    check_phase(
        &[(S::Unhealthy, NoAuth), (S::Unknown, NoAuth), (S::Unknown, NoAuth), (S::Unknown, NoAuth)],
        P::Pending,
        0,
        "waiting for the first verdict on 3 of 4 backends; 1 backend is unhealthy",
    );
    check_phase(
        &[(S::Unauthenticated, NoAuth), (S::Unknown, PerUser)],
        P::Pending,
        0,
        "waiting for the first verdict on 1 of 2 backends; 1 backend requires authentication",
    );
    check_drained_phase(
        &[(S::Healthy, NoAuth, true), (S::Unknown, NoAuth, false)],
        P::Pending,
        0,
        "waiting for the first verdict on 1 of 2 backends; 1 backend is draining",
    );
    // A READY group that gains a backend stays READY until it is judged.
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unknown, NoAuth)],
        P::Ready,
        1,
        "1 of 2 backends routable; 1 backend is not probed yet",
    );
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unauthenticated, PerUser), (S::Unknown, NoAuth)],
        P::Ready,
        2,
        "2 of 3 backends routable; 1 backend requires authentication, 1 backend is not probed yet",
    );
    // Once a routable backend exists, what the judged ones say decides.
    check_phase(
        &[(S::Healthy, NoAuth), (S::Unhealthy, NoAuth), (S::Unknown, NoAuth)],
        P::Degraded,
        1,
        "1 of 3 backends routable; 1 backend is unhealthy, 1 backend is not probed yet",
    );
    check_phase(
        &[(S::Degraded, NoAuth), (S::Unknown, NoAuth)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is degraded, 1 backend is not probed yet",
    );
    // Every backend judged and none routable: FAILED.
    check_phase(
        &[(S::Unhealthy, NoAuth), (S::Unhealthy, NoAuth)],
        P::Failed,
        0,
        "0 of 2 backends routable; 2 backends are unhealthy",
    );
}

#[test]
fn drained_backends_are_never_routable_and_keep_their_status() {
    use AuthMode::{None as NoAuth, PerUser};
    check_drained_phase(
        &[(S::Healthy, NoAuth, false), (S::Healthy, NoAuth, true)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is draining",
    );
    check_drained_phase(
        &[(S::Healthy, NoAuth, true), (S::Unauthenticated, PerUser, true)],
        P::Failed,
        0,
        "0 of 2 backends routable; 1 backend requires authentication, 2 backends are draining",
    );
    check_drained_phase(
        &[(S::Unhealthy, NoAuth, true), (S::Healthy, NoAuth, false)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is unhealthy, 1 backend is draining",
    );
    check_drained_phase(&[(S::Unknown, NoAuth, true)], P::Pending, 0, "waiting for the first verdict on 1 backend");
    // Routability table: drain overrides every status and auth mode.
    for status in [S::Unknown, S::Healthy, S::Degraded, S::Unhealthy, S::Unauthenticated] {
        for auth in [NoAuth, PerUser, AuthMode::StaticHeader, AuthMode::Oauth2ClientCredentials] {
            let view = |draining, ejected| BackendView {
                status,
                auth,
                draining,
                ejected,
            };
            assert_eq!(view(false, false).routable(), is_routable(status, auth), "{status:?} {auth:?}");
            assert!(!view(true, false).routable(), "{status:?} {auth:?} drained");
            assert!(!view(false, true).routable(), "{status:?} {auth:?} ejected");
        }
    }
}

#[test]
fn ejected_backends_are_never_routable_and_keep_their_status() {
    use AuthMode::None as NoAuth;
    check_aside_phase(
        &[(S::Healthy, NoAuth, false, true), (S::Healthy, NoAuth, false, false)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is ejected",
    );
    check_aside_phase(
        &[(S::Healthy, NoAuth, false, true), (S::Unhealthy, NoAuth, false, true)],
        P::Failed,
        0,
        "0 of 2 backends routable; 1 backend is unhealthy, 2 backends are ejected",
    );
    check_aside_phase(
        &[(S::Healthy, NoAuth, true, true), (S::Degraded, NoAuth, false, false)],
        P::Degraded,
        1,
        "1 of 2 backends routable; 1 backend is degraded, 1 backend is draining, 1 backend is ejected",
    );
}

/// A backend's status from its endpoints' statuses (issue 23), and that the
/// one routability rule (`BackendView::routable`) agrees with it.
#[track_caller]
fn check_aggregate(endpoints: &[S], auth: AuthMode, min_pct: Option<u32>, want: Option<S>) {
    let got = aggregate_status(endpoints.iter().copied(), auth, min_pct);
    assert_eq!(got, want, "{endpoints:?} {auth:?} min {min_pct:?}");
}

#[test]
fn a_backend_reads_its_endpoints() {
    use AuthMode::{None as NoAuth, PerUser};
    use S::{Degraded as D, Healthy as H, Unauthenticated as A, Unhealthy as U, Unknown as K};
    check_aggregate(&[], NoAuth, None, None);
    // One endpoint: its own status.
    for s in [H, D, U, K, A] {
        check_aggregate(&[s], NoAuth, None, Some(s));
        check_aggregate(&[s], PerUser, None, Some(s));
    }
    check_aggregate(&[H, H, H], NoAuth, None, Some(H));
    // Any endpoint not routable, or degraded, makes the backend DEGRADED while one is routable.
    check_aggregate(&[H, H, U], NoAuth, None, Some(D));
    check_aggregate(&[H, D], NoAuth, None, Some(D));
    check_aggregate(&[H, U, U, U, U, U, U, U, U, U], NoAuth, None, Some(D));
    check_aggregate(&[U, U], NoAuth, None, Some(U));
    // A new address not probed yet is neutral.
    check_aggregate(&[H, H, K], NoAuth, None, Some(H));
    check_aggregate(&[K, K], NoAuth, None, Some(K));
    check_aggregate(&[U, K], NoAuth, None, Some(U));
    // UNAUTHENTICATED: routable for per-user backends only.
    check_aggregate(&[A, A], PerUser, None, Some(A));
    check_aggregate(&[A, U], PerUser, None, Some(D));
    check_aggregate(&[A, A], NoAuth, None, Some(A));
    check_aggregate(&[A, H], NoAuth, None, Some(D));
    check_aggregate(&[A, U], NoAuth, None, Some(U));
    // A required share of the judged endpoints.
    check_aggregate(&[H, U, U, U], NoAuth, Some(50), Some(U));
    check_aggregate(&[H, H, U, U], NoAuth, Some(50), Some(D));
    check_aggregate(&[H, H, U, K], NoAuth, Some(60), Some(D));
    check_aggregate(&[H, U, K, K], NoAuth, Some(60), Some(U));
    check_aggregate(&[H, H], NoAuth, Some(100), Some(H));
    check_aggregate(&[H, D], NoAuth, Some(100), Some(D));
    check_aggregate(&[H, U], NoAuth, Some(0), Some(D));
    // The aggregate is routable exactly when the rule says so.
    for (endpoints, pct) in [(&[H, U][..], None), (&[U, U][..], None), (&[H, U, U][..], Some(50)), (&[K][..], None)] {
        let status = aggregate_status(endpoints.iter().copied(), NoAuth, pct).unwrap();
        let view = BackendView {
            status,
            auth: NoAuth,
            draining: false,
            ejected: false,
        };
        let routable = endpoints.iter().filter(|s| is_routable(**s, NoAuth)).count() as u32;
        let judged = endpoints.iter().filter(|s| **s != K).count() as u32;
        let want = routable > 0 && pct.is_none_or(|p| routable * 100 >= p * judged);
        assert_eq!(view.routable(), want, "{endpoints:?} {pct:?}");
    }
}
