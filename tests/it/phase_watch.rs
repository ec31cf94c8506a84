//! The group phase as a Watch consumer sees it while backends are judged one
//! by one (issue 19 §4): an apply of four backends with one dead never shows a
//! FAILED that never was, and a reload that adds a backend to a READY group
//! never takes it out of READY.

use crate::common;

use common::*;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::proto::v1::*;
use tokio_stream::StreamExt;

/// Reads an all-groups Watch until `done` holds for group `name`, returning
/// every phase of that group seen on the way.
async fn phases_until(stream: &mut tonic::Streaming<WatchGroupHealthResponse>, name: &str, done: impl Fn(&GroupHealth) -> bool) -> Vec<GroupPhase> {
    let mut seen = Vec::new();
    let follow = async {
        loop {
            let m = stream.next().await.expect("the stream stays open").expect("a message");
            let Some(g) = m.groups.iter().find(|g| g.name == name) else { continue };
            if seen.last() != Some(&phase(g)) {
                seen.push(phase(g));
            }
            if done(g) {
                return;
            }
        }
    };
    // A bound on a test that would otherwise wait forever, not a timing assertion.
    tokio::time::timeout(std::time::Duration::from_secs(60), follow)
        .await
        .unwrap_or_else(|_| panic!("never done; phases seen {seen:?}"));
    seen
}

#[tokio::test]
async fn backends_judged_one_by_one_never_show_a_failure_that_never_was() {
    let fixture = FixtureServer::start().await.unwrap();
    // The live backends answer after the dead one is judged (refused at once).
    for i in 0..4 {
        fixture.set_path_behavior(&format!("/slow{i}"), Behavior::Slow(std::time::Duration::from_millis(400)));
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut d = TestDaemon::empty().await;
    let live = |n: usize| -> String {
        (0..n)
            .map(|i| format!("  - {{name: live{i}, url: '{}'}}\n", fixture.url_for(&format!("/slow{i}"))))
            .collect()
    };
    let policy = "policy: {interval: 600s, timeout: 5s, degradedLatency: 3s, unhealthyThreshold: 1, initialSpread: 0s}\n";
    let mut stream = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: String::new() })
        .await
        .unwrap()
        .into_inner();
    let snapshot = stream.next().await.unwrap().unwrap();
    assert_eq!(WatchEventKind::try_from(snapshot.kind).unwrap(), WatchEventKind::Snapshot);
    d.apply(group_yaml(&format!(
        "name: g\n{policy}backends:\n  - {{name: dead, url: 'http://127.0.0.1:{closed}/mcp'}}\n{}",
        live(3)
    )))
    .await;
    let all_judged = |g: &GroupHealth| g.backends.iter().all(|b| status(b) != BackendStatus::Unknown);
    let seen = phases_until(&mut stream, "g", all_judged).await;
    assert_eq!(
        seen,
        [GroupPhase::Pending, GroupPhase::Degraded],
        "1 dead of 4, judged first: PENDING, then DEGRADED"
    );

    // A READY group that gains a backend stays READY until it is judged.
    d.apply(group_yaml(&format!("name: r\n{policy}backends:\n{}", live(2)))).await;
    phases_until(&mut stream, "r", |g| phase(g) == GroupPhase::Ready).await;
    d.apply(group_yaml(&format!("name: r\n{policy}backends:\n{}", live(3)))).await;
    let seen = phases_until(&mut stream, "r", |g| g.backends.len() == 3 && all_judged(g)).await;
    assert!(seen.iter().all(|p| *p == GroupPhase::Ready), "the reload kept r READY: {seen:?}");
    d.stop().await;
}
