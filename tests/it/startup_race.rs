//! The start-up race (ToolHive #4278): a backend probed before it listens is
//! marked unhealthy, and recovers at the next probe once it comes up, because
//! no probe reuses another's connection state.

use crate::common;

use common::*;
use mcp_fixture::{FixtureOptions, FixtureServer, reserve_port};
use mcp_health::proto::v1::*;

#[tokio::test]
async fn a_backend_that_comes_up_after_the_prober_recovers() {
    let addr = reserve_port();
    let mut d = TestDaemon::empty().await;
    d.apply(group_yaml(&format!(
        "name: race\npolicy:\n  interval: 0.3s\n  timeout: 0.2s\n  unhealthyThreshold: 1\nbackends:\n  - name: late\n    url: http://{addr}/mcp\n"
    )))
    .await;
    let h = d
        .wait_group("race", "FAILED while the port is closed", |h| phase(h) == GroupPhase::Failed)
        .await;
    assert_eq!(reason(backend(&h, "late")), ReasonCode::ConnectionRefused);

    let server = FixtureServer::start_on(addr, FixtureOptions::default()).await.unwrap();
    let h = d.wait_group("race", "READY once the backend is up", |h| phase(h) == GroupPhase::Ready).await;
    assert_eq!(status(backend(&h, "late")), BackendStatus::Healthy);
    assert_eq!(server.stats().reused_connections, 0);
    d.stop().await;
}
