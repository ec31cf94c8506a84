//! Edge intervals end to end: the daemon and a real fixture server, killed
//! (refused connections), restarted, then hanging. With the numbers
//! (interval 10 s, thresholds 3, edge 500 ms) each verdict arrives before
//! active-only probing could reach it. Asserted as order, never as
//! milliseconds: with jitter 0, active-only needs the first probe after the
//! event plus two more whole intervals, i.e. more than 2 intervals; the
//! daemon must get there within 2 intervals of the event. And from the
//! daemon's own history: the confirming failures come less than one interval
//! after the first one (active-only: two intervals).

use crate::common;

use std::time::{Duration, SystemTime};

use common::*;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::proto::v1::*;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(10);

fn spec(url: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: edge\npolicy:\n  interval: 10s\n  timeout: 0.3s\n  edgeInterval: 0.5s\n  unhealthyThreshold: 3\n  healthyThreshold: 3\n  jitterPercent: 0\nbackends:\n  - name: api\n    url: {url}\n"
    ))
}

/// Waits until the backend reads `want`, and fails if that takes 2 intervals
/// from `event`: active-only probing cannot get there sooner.
async fn reached_before_two_intervals(d: &TestDaemon, event: Instant, want: BackendStatus, what: &str) -> BackendHealth {
    let deadline = event + 2 * INTERVAL;
    loop {
        if let Some(h) = group_health(&d.client, "edge").await {
            let b = backend(&h, "api");
            if status(b) == want {
                return b.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not {want:?} within 2 intervals, no faster than active-only probing; last: {b:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time(t: &BackendTransition) -> SystemTime {
    let ts = t.time.as_ref().expect("a transition has a time");
    SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32)
}

#[tokio::test]
async fn a_killed_restarted_or_hanging_backend_is_judged_within_two_intervals() {
    let server = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(spec(&server.url())).await;
    d.wait_group("edge", "HEALTHY", |h| status(backend(h, "api")) == BackendStatus::Healthy).await;

    server.stop().await;
    let killed = Instant::now();
    let b = reached_before_two_intervals(&d, killed, BackendStatus::Unhealthy, "killed").await;
    assert_eq!(reason(&b), ReasonCode::ConnectionRefused);

    // Recovery is symmetric: healthyThreshold 3 at the edge interval.
    server.resume().await.unwrap();
    let restarted = Instant::now();
    let b = reached_before_two_intervals(&d, restarted, BackendStatus::Healthy, "restarted").await;
    assert!(b.consecutive_successes >= 3, "{b:#?}");

    // A hang: each failure takes the timeout, then the edge interval.
    server.set_behavior(Behavior::Hang);
    let hung = Instant::now();
    let b = reached_before_two_intervals(&d, hung, BackendStatus::Unhealthy, "hanging").await;
    assert_eq!(reason(&b), ReasonCode::Timeout);

    // The daemon's own record: each run of failures was confirmed less than
    // one interval after its first failure (active-only: two intervals later).
    let history = d
        .client
        .get_backend_history(GetBackendHistoryRequest {
            group: "edge".into(),
            backend: "api".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let moves: Vec<(BackendStatus, BackendStatus)> = history.transitions.iter().map(|t| (t.from_status(), t.to_status())).collect();
    use BackendStatus::{Degraded, Healthy, Unhealthy, Unknown};
    assert_eq!(
        moves,
        [
            (Unknown, Healthy),
            (Healthy, Degraded),
            (Degraded, Unhealthy),
            (Unhealthy, Healthy),
            (Healthy, Degraded),
            (Degraded, Unhealthy),
        ],
        "{history:#?}"
    );
    for run in [&history.transitions[1..3], &history.transitions[4..6]] {
        let confirmed_after = time(&run[1]).duration_since(time(&run[0])).unwrap();
        assert!(confirmed_after < INTERVAL, "confirmed {confirmed_after:?} after the first failure: {run:#?}");
    }
    server.set_behavior(Behavior::Healthy);
    d.stop().await;
}
