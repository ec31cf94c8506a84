//! Table tests for bursts of failing probes: every case goes through
//! `check_bursts`, which feeds results at given milliseconds to one `BurstState`.

use std::time::{Duration, Instant};

use super::burst::{BurstPolicy, BurstState};

const P: BurstPolicy = BurstPolicy {
    window: Duration::from_secs(10),
    min_backends: 2,
    min_percent: 50,
    sample: 2,
    suspect_for: Duration::from_secs(5),
};

/// One result: (millisecond, backend, new failure) and the sample the burst
/// it starts asks about (None: no burst starts).
type Case = (&'static str, BurstPolicy, Vec<(u64, &'static str, bool, Option<Vec<&'static str>>)>);

#[track_caller]
fn check_bursts(cases: Vec<Case>) {
    for (name, policy, steps) in cases {
        let t0 = Instant::now();
        let mut s = BurstState::default();
        for (i, (ms, key, failed, want)) in steps.iter().enumerate() {
            let got = s.note(*key, *failed, t0 + Duration::from_millis(*ms), &policy);
            assert_eq!(got, *want, "{name}: step {i} ({key} at {ms} ms)");
        }
    }
}

#[test]
fn bursts_start_on_enough_new_failures_once_per_window() {
    check_bursts(vec![
        (
            "every backend passing: no burst",
            P,
            vec![(0, "a", false, None), (1, "b", false, None), (2, "c", false, None)],
        ),
        (
            "one failure is below min_backends",
            P,
            vec![(0, "a", false, None), (1, "b", false, None), (2, "c", true, None)],
        ),
        (
            "two of four fail: the burst starts at the second, earliest first",
            P,
            vec![
                (0, "a", false, None),
                (1, "b", false, None),
                (2, "c", false, None),
                (3, "d", false, None),
                (10, "d", true, None),
                (20, "b", true, Some(vec!["d", "b"])),
                // Once per window.
                (30, "a", true, None),
                (9_000, "c", true, None),
                // A window later, it may start again.
                // A backend failing on is no news: only a run that starts does.
                (10_020, "a", true, None),
                // d's earlier run fell out of the window: its run starts again
                // now. Recent: a (failing since 30 ms), c (9 s), d.
                (10_030, "d", true, Some(vec!["a", "c"])),
            ],
        ),
        (
            "two of five are below half",
            P,
            vec![
                (0, "a", false, None),
                (1, "b", false, None),
                (2, "c", false, None),
                (3, "d", false, None),
                (4, "e", false, None),
                (10, "a", true, None),
                (20, "b", true, None),
                (30, "c", true, Some(vec!["a", "b"])),
            ],
        ),
        (
            "a backend that passes again is no longer failing",
            P,
            vec![
                (0, "a", false, None),
                (1, "b", false, None),
                (10, "a", true, None),
                (20, "a", false, None),
                (30, "b", true, None),
            ],
        ),
        (
            "results older than the window no longer count",
            P,
            vec![
                (0, "a", true, None),
                (0, "x", false, None),
                (20_000, "b", false, None),
                (20_001, "c", false, None),
                (20_002, "b", true, None),
            ],
        ),
        (
            "a failure stays as old as its first in the window",
            BurstPolicy { sample: 1, ..P },
            vec![(0, "a", true, None), (5, "b", false, None), (100, "b", true, Some(vec!["a"]))],
        ),
    ]);
}

#[test]
fn old_results_are_pruned() {
    let t0 = Instant::now();
    let mut s = BurstState::default();
    for k in 0..100u32 {
        s.note(k, false, t0, &P);
    }
    assert_eq!(s.len(), 100);
    s.note(1000, false, t0 + Duration::from_secs(11), &P);
    assert_eq!(s.len(), 1, "a window later only the newest result is left");
    s.forget(&1000);
    assert!(s.is_empty());
}

#[test]
fn the_failing_count_follows_every_change() {
    // Checked through its effect: below min_backends nothing starts, at it a burst does.
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let p = BurstPolicy { min_percent: 1, ..P };
    let mut s = BurstState::default();
    assert_eq!(s.note("a", true, at(0), &p), None);
    assert_eq!(s.note("a", false, at(1), &p), None, "a passes: no longer failing");
    assert_eq!(s.note("b", true, at(2), &p), None, "one failing, not two");
    s.forget(&"b");
    assert_eq!(s.note("c", true, at(3), &p), None, "b forgotten: one failing again");
    assert_eq!(s.note("d", true, at(4), &p), Some(vec!["c", "d"]));
}
