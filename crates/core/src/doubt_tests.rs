//! Table tests for self-doubt: every case goes through `check_steps`, which
//! feeds checks and probe outcomes at given seconds to one `DoubtState`.

use std::time::{Duration, Instant, SystemTime};

use super::doubt::{Cause, Causes, DoubtChange, DoubtPolicy, DoubtState, Evidence, Hold};
use super::outcome::OutcomeClass;

/// One step: a check with this evidence, or a probe outcome to fold.
#[derive(Clone, Debug)]
enum Step {
    Check(Evidence),
    Probe(OutcomeClass),
    /// A burst is asked about until this second.
    Suspect(u64),
    /// The others answered: how many probes the suspicion held.
    EndSuspicion(u64),
}

/// What a step must leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// A check's change and the causes shown after it (empty: no doubt).
    Checked(DoubtChange, Causes),
    /// A probe held back (true) or folded (false), and the hold after it.
    Probed(bool, Hold),
}

const P: DoubtPolicy = DoubtPolicy {
    max_lag: Duration::from_secs(1),
    clear_checks: 2,
    max_hold: Duration::from_secs(60),
};

fn clean() -> Evidence {
    Evidence::default()
}

fn lag(ms: u64) -> Evidence {
    Evidence {
        lag: Duration::from_millis(ms),
        ..Evidence::default()
    }
}

fn canaries(total: usize, answered: usize) -> Evidence {
    Evidence {
        canaries: total,
        canaries_answered: answered,
        ..Evidence::default()
    }
}

fn resolver(answered: bool) -> Evidence {
    Evidence {
        resolver_answered: Some(answered),
        ..Evidence::default()
    }
}

fn only(c: Cause) -> Causes {
    Causes::default().with(c)
}

const NONE: Causes = Causes::NONE;

/// A case's steps: (second, step, what it must leave).
type Steps = Vec<(u64, Step, Want)>;

/// Feeds `steps` (at the given seconds) to a fresh state under `policy` and
/// checks what each leaves.
#[track_caller]
fn check_steps(name: &str, policy: DoubtPolicy, steps: &[(u64, Step, Want)]) {
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH;
    let mut s = DoubtState::default();
    for (i, (at, step, want)) in steps.iter().enumerate() {
        let now = t0 + Duration::from_secs(*at);
        let got = match step {
            Step::Check(e) => {
                let change = s.check(e, &policy, now, w0 + Duration::from_secs(*at));
                Want::Checked(change, s.doubt().map_or(NONE, |d| d.causes))
            }
            Step::Probe(class) => {
                let held = s.holds_back(*class, &policy, now);
                Want::Probed(held, s.hold(&policy, now))
            }
            Step::Suspect(until) => {
                s.suspect(t0 + Duration::from_secs(*until));
                Want::Probed(false, s.hold(&policy, now))
            }
            Step::EndSuspicion(held) => {
                assert_eq!(s.end_suspicion(), *held, "{name}: step {i}: probes the suspicion held");
                Want::Probed(false, s.hold(&policy, now))
            }
        };
        assert_eq!(got, *want, "{name}: step {i} ({step:?} at {at} s)");
    }
}

#[test]
fn evidence_gives_causes() {
    let cases: &[(&str, Evidence, Causes)] = &[
        ("nothing configured, no lag", clean(), NONE),
        ("lag at the threshold is no cause", lag(1000), NONE),
        ("lag past the threshold", lag(1001), only(Cause::SchedulingLag)),
        ("the resolver answered", resolver(true), NONE),
        ("the resolver gave no answer", resolver(false), only(Cause::Resolver)),
        ("no canary configured", canaries(0, 0), NONE),
        ("every canary answered", canaries(2, 2), NONE),
        ("one canary of two is down: its own problem", canaries(2, 1), NONE),
        ("no canary answered", canaries(2, 0), only(Cause::Canaries)),
        ("no peer was asked", Evidence::default(), NONE),
        (
            "the peers fail too: a real outage",
            Evidence {
                peers_reach: Some(false),
                ..Evidence::default()
            },
            NONE,
        ),
        (
            "the peers reach what this replica cannot",
            Evidence {
                peers_reach: Some(true),
                ..Evidence::default()
            },
            only(Cause::PeersReach),
        ),
        (
            "every cause at once",
            Evidence {
                lag: Duration::from_secs(5),
                resolver_answered: Some(false),
                canaries: 1,
                canaries_answered: 0,
                peers_reach: Some(true),
            },
            only(Cause::SchedulingLag).with(Cause::Resolver).with(Cause::Canaries).with(Cause::PeersReach),
        ),
    ];
    for (name, evidence, want) in cases {
        assert_eq!(evidence.causes(&P), *want, "{name}");
    }
    assert_eq!(only(Cause::SchedulingLag).with(Cause::Canaries).labels(), "scheduling_lag,canaries");
    assert_eq!(only(Cause::PeersReach).labels(), "peers_reach");
}

#[test]
fn doubt_enters_at_once_and_leaves_after_clean_checks() {
    use DoubtChange::*;
    use Step::Check as C;
    use Want::Checked as W;
    let canary = only(Cause::Canaries);
    let both = canary.with(Cause::Resolver);
    let cases: Vec<(&str, Steps)> = vec![
        ("clean checks never doubt", vec![(0, C(clean()), W(None, NONE)), (1, C(clean()), W(None, NONE))]),
        (
            "one bad check enters, two clean ones leave",
            vec![
                (0, C(canaries(1, 0)), W(Entered, canary)),
                (1, C(clean()), W(None, canary)),
                (
                    2,
                    C(clean()),
                    W(
                        Left {
                            lasted: Duration::from_secs(2),
                            held: 0,
                        },
                        NONE,
                    ),
                ),
            ],
        ),
        (
            "a bad check between clean ones starts the count again",
            vec![
                (0, C(canaries(1, 0)), W(Entered, canary)),
                (1, C(clean()), W(None, canary)),
                (2, C(canaries(1, 0)), W(None, canary)),
                (3, C(clean()), W(None, canary)),
                (
                    4,
                    C(clean()),
                    W(
                        Left {
                            lasted: Duration::from_secs(4),
                            held: 0,
                        },
                        NONE,
                    ),
                ),
            ],
        ),
        (
            "causes that change are shown",
            vec![
                (0, C(canaries(1, 0)), W(Entered, canary)),
                (
                    1,
                    C(Evidence {
                        resolver_answered: Some(false),
                        canaries: 1,
                        canaries_answered: 0,
                        ..Evidence::default()
                    }),
                    W(Causes, both),
                ),
                (2, C(resolver(false)), W(Causes, only(Cause::Resolver))),
            ],
        ),
    ];
    for (name, steps) in cases {
        check_steps(name, P, &steps);
    }
}

#[test]
fn failing_probes_are_held_within_max_hold_only() {
    use Hold::*;
    use OutcomeClass as O;
    use Step::{Check as C, Probe as Pr};
    use Want::{Checked as W, Probed as Got};
    let canary = only(Cause::Canaries);
    let cases: Vec<(&str, DoubtPolicy, Steps)> = vec![
        (
            "without doubt nothing is held",
            P,
            vec![(0, Pr(O::Failure), Got(false, Trusted)), (1, Pr(O::Success), Got(false, Trusted))],
        ),
        (
            "in doubt, failures are held and counted; other classes fold",
            P,
            vec![
                (0, C(canaries(1, 0)), W(DoubtChange::Entered, canary)),
                (1, Pr(O::Failure), Got(true, Holding)),
                (2, Pr(O::Failure), Got(true, Holding)),
                (3, Pr(O::Success), Got(false, Holding)),
                (4, Pr(O::Refused), Got(false, Holding)),
                (5, Pr(O::AuthRequired), Got(false, Holding)),
                (6, Pr(O::Slow), Got(false, Holding)),
                (7, C(clean()), W(DoubtChange::None, canary)),
                (
                    8,
                    C(clean()),
                    W(
                        DoubtChange::Left {
                            lasted: Duration::from_secs(8),
                            held: 2,
                        },
                        NONE,
                    ),
                ),
                (9, Pr(O::Failure), Got(false, Trusted)),
            ],
        ),
        (
            "past max_hold verdicts move again and the doubt stays",
            P,
            vec![
                (0, C(canaries(1, 0)), W(DoubtChange::Entered, canary)),
                (59, Pr(O::Failure), Got(true, Holding)),
                (60, Pr(O::Failure), Got(false, Expired)),
                (61, C(canaries(1, 0)), W(DoubtChange::None, canary)),
                (62, Pr(O::Failure), Got(false, Expired)),
            ],
        ),
        (
            "a new doubt holds again for max_hold",
            P,
            vec![
                (0, C(canaries(1, 0)), W(DoubtChange::Entered, canary)),
                (70, C(clean()), W(DoubtChange::None, canary)),
                (
                    71,
                    C(clean()),
                    W(
                        DoubtChange::Left {
                            lasted: Duration::from_secs(71),
                            held: 0,
                        },
                        NONE,
                    ),
                ),
                (72, C(canaries(1, 0)), W(DoubtChange::Entered, canary)),
                (73, Pr(O::Failure), Got(true, Holding)),
            ],
        ),
        (
            "max_hold zero shows doubt and holds nothing",
            DoubtPolicy { max_hold: Duration::ZERO, ..P },
            vec![
                (0, C(canaries(1, 0)), W(DoubtChange::Entered, canary)),
                (0, Pr(O::Failure), Got(false, Expired)),
            ],
        ),
    ];
    for (name, policy, steps) in cases {
        check_steps(name, policy, &steps);
    }
}

#[test]
fn a_burst_asked_about_holds_failures_until_the_others_answer_or_it_expires() {
    use Hold::*;
    use OutcomeClass as O;
    use Step::{Check as C, EndSuspicion as End, Probe as Pr, Suspect as S};
    use Want::{Checked as W, Probed as Got};
    let peers = only(Cause::PeersReach);
    let reach = |r: bool| Evidence {
        peers_reach: Some(r),
        ..Evidence::default()
    };
    let cases: Vec<(&str, Steps)> = vec![
        (
            "held while asking; the others fail too: failures fold again",
            vec![
                (0, S(5), Got(false, Trusted)),
                (1, Pr(O::Failure), Got(true, Trusted)),
                (2, Pr(O::Failure), Got(true, Trusted)),
                // Passing probes and proving answers fold even while asking.
                (2, Pr(O::Success), Got(false, Trusted)),
                (2, Pr(O::AuthRequired), Got(false, Trusted)),
                (3, End(2), Got(false, Trusted)),
                (3, C(reach(false)), W(DoubtChange::None, NONE)),
                (4, Pr(O::Failure), Got(false, Trusted)),
            ],
        ),
        (
            "the others reach them: a doubt holds from then on",
            vec![
                (0, S(5), Got(false, Trusted)),
                (1, Pr(O::Failure), Got(true, Trusted)),
                (2, End(1), Got(false, Trusted)),
                (2, C(reach(true)), W(DoubtChange::Entered, peers)),
                (9, Pr(O::Failure), Got(true, Holding)),
            ],
        ),
        (
            "nobody answers: the suspicion ends by itself",
            vec![
                (0, S(5), Got(false, Trusted)),
                (4, Pr(O::Failure), Got(true, Trusted)),
                (5, Pr(O::Failure), Got(false, Trusted)),
                (6, End(1), Got(false, Trusted)),
            ],
        ),
    ];
    for (name, steps) in cases {
        check_steps(name, P, &steps);
    }
}
