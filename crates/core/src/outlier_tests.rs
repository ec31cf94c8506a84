//! Table tests for outlier ejection: every case goes through `check_steps`,
//! which feeds reports and probes at given seconds to one backend's state.

use std::time::{Duration, Instant, SystemTime};

use super::outlier::{GroupEjections, OutlierPolicy, OutlierState, Reported, TrafficOutcome as O, ejection_time, may_eject};

/// One step: a report, or a passing probe, at a second.
#[derive(Clone, Copy, Debug)]
enum Step {
    Report(O),
    Probe,
}

/// What a step must leave: the backend ejected (with that count) or not,
/// and whether a report was capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    In,
    Ejected(u32),
    Capped,
}

const P: OutlierPolicy = OutlierPolicy {
    consecutive_failures: 3,
    base_ejection_time: Duration::from_secs(10),
    max_ejection_time: Duration::from_secs(25),
    max_ejected_percent: 50,
};

const ALONE: GroupEjections = GroupEjections { ejected: 0, total: 4 };

/// Feeds `steps` (at the given seconds) to a fresh state under `policy`, the
/// group standing at `group` for every report, and checks each result.
#[track_caller]
fn check_steps(name: &str, policy: OutlierPolicy, group: GroupEjections, steps: &[(u64, Step, Want)]) {
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH;
    let mut s = OutlierState::default();
    for (i, (at, step, want)) in steps.iter().enumerate() {
        let (now, wall) = (t0 + Duration::from_secs(*at), w0 + Duration::from_secs(*at));
        let got = match step {
            Step::Report(o) => match s.report(*o, &policy, group, now, wall) {
                Reported::Capped => Want::Capped,
                Reported::Ejected(e) => {
                    assert_eq!(e.since, wall, "{name} step {i}");
                    assert_eq!(e.until, wall + ejection_time(&policy, e.count), "{name} step {i}");
                    Want::Ejected(e.count)
                }
                Reported::Counted => s.ejection().map_or(Want::In, |e| Want::Ejected(e.count)),
            },
            Step::Probe => {
                s.probe_passed(now);
                s.ejection().map_or(Want::In, |e| Want::Ejected(e.count))
            }
        };
        assert_eq!(got, *want, "{name} step {i} ({step:?} at {at}s): {s:?}");
    }
}

#[test]
fn consecutive_failures_eject_and_only_failures_count() {
    use Step::{Probe, Report as R};
    use Want::{Ejected, In};
    let fail = [
        O::ConnectFailure,
        O::Reset,
        O::Timeout,
        O::HttpStatus(503),
        O::HttpStatus(500),
        O::JsonRpcError {
            code: -32603,
            tools_call: true,
        },
        O::JsonRpcError {
            code: -32000,
            tools_call: true,
        },
    ];
    for f in fail {
        check_steps(&format!("{f:?}"), P, ALONE, &[(0, R(f), In), (1, R(f), In), (2, R(f), Ejected(1))]);
    }
    // Anything else ends a run (the server answered): 4xx, JSON-RPC errors that
    // blame the request or are not to tools/call, tool errors, 2xx.
    let answered = [
        O::Ok,
        O::HttpStatus(404),
        O::HttpStatus(429),
        O::HttpStatus(401),
        O::ToolError,
        O::JsonRpcError {
            code: -32602,
            tools_call: true,
        },
        O::JsonRpcError {
            code: -32601,
            tools_call: true,
        },
        O::JsonRpcError {
            code: -32603,
            tools_call: false,
        },
    ];
    for ok in answered {
        let f = R(O::HttpStatus(502));
        check_steps(
            &format!("{ok:?}"),
            P,
            ALONE,
            &[(0, f, In), (1, f, In), (2, R(ok), In), (3, f, In), (4, f, In), (5, f, Ejected(1))],
        );
        // Alone it never ejects.
        check_steps(
            &format!("{ok:?} alone"),
            P,
            ALONE,
            &[(0, R(ok), In), (1, R(ok), In), (2, R(ok), In), (3, R(ok), In)],
        );
    }
    // While ejected, reports change nothing; a probe before the time is over
    // does not end it; the first passing probe after it does.
    let f = R(O::Timeout);
    check_steps(
        "return",
        P,
        ALONE,
        &[
            (0, f, In),
            (0, f, In),
            (0, f, Ejected(1)),
            (1, R(O::Ok), Ejected(1)),
            (9, Probe, Ejected(1)),
            (10, f, Ejected(1)),
            (10, Probe, In),
            (11, f, In),
        ],
    );
}

#[test]
fn repeated_ejections_last_longer_up_to_the_maximum_and_decay_while_in() {
    use Step::{Probe, Report as R};
    use Want::{Ejected, In};
    let f = R(O::HttpStatus(503));
    // Ejected at 0 (10 s), back at 10; again at 10 (20 s), back at 30; again
    // at 30: 3 × 10 s capped at 25 s.
    check_steps(
        "growth",
        P,
        ALONE,
        &[
            (0, f, In),
            (0, f, In),
            (0, f, Ejected(1)),
            (10, Probe, In),
            (10, f, In),
            (10, f, In),
            (10, f, Ejected(2)),
            (29, Probe, Ejected(2)),
            (30, Probe, In),
            (30, f, In),
            (30, f, In),
            (30, f, Ejected(3)),
            (54, Probe, Ejected(3)),
            (55, Probe, In),
        ],
    );
    // Twenty seconds in after a second ejection take two off its count.
    check_steps(
        "decay",
        P,
        ALONE,
        &[
            (0, f, In),
            (0, f, In),
            (0, f, Ejected(1)),
            (10, Probe, In),
            (10, f, In),
            (10, f, In),
            (10, f, Ejected(2)),
            (30, Probe, In),
            (50, f, In),
            (50, f, In),
            (50, f, Ejected(1)),
        ],
    );
    assert_eq!(ejection_time(&P, 0), Duration::from_secs(10));
    assert_eq!(ejection_time(&P, 2), Duration::from_secs(20));
    assert_eq!(ejection_time(&P, 100), Duration::from_secs(25));
}

#[test]
fn the_group_cap_holds_but_one_backend_may_always_go() {
    use Step::Report as R;
    use Want::{Capped, In};
    let f = R(O::Reset);
    let g = |ejected, total| GroupEjections { ejected, total };
    // (ejected now, total, max %, may eject one more)
    let rows = [
        (0, 3, 10, true),
        (1, 3, 10, false),
        (0, 1, 10, true),
        (1, 4, 50, true),
        (2, 4, 50, false),
        (1, 3, 50, false),
        (2, 3, 100, true),
        (0, 3, 0, false),
    ];
    for (ejected, total, max, want) in rows {
        assert_eq!(may_eject(g(ejected, total), max), want, "{ejected} of {total} ejected, max {max}%");
    }
    // Capped: the run stands, and the next failure tries again.
    let capped = OutlierPolicy { max_ejected_percent: 10, ..P };
    check_steps("capped", capped, g(1, 3), &[(0, f, In), (0, f, In), (0, f, Capped), (1, f, Capped)]);
}
