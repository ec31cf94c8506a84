//! Operator drain: SetBackendDrain and the spec's `drain`. A drained backend is
//! still probed and shows its observed verdict, is not routable in the phase,
//! and is shown as draining in Get and Watch; an API group's drain is stored
//! (a new generation, kept across restarts); a config-file group is drained in
//! its file, not over the API.

use crate::common;

use common::*;
use mcp_fixture::FixtureServer;
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::v1::*;
use tonic::Code;

fn spec(a: &str, b: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: g\npolicy: {{interval: 0.2s, timeout: 0.15s}}\nbackends:\n  - {{name: a, url: \"{a}\"}}\n  - {{name: b, url: \"{b}\"}}\n"
    ))
}

fn drain(group: &str, backend: &str, drain: bool) -> SetBackendDrainRequest {
    SetBackendDrainRequest {
        group: group.into(),
        backend: backend.into(),
        drain,
        ..Default::default()
    }
}

fn probe_time(b: &BackendHealth) -> (i64, i32) {
    b.last_probe_time.map(|t| (t.seconds, t.nanos)).unwrap_or_default()
}

#[tokio::test]
async fn a_drained_backend_is_probed_shown_and_not_routable_and_the_drain_is_stored() {
    let (fa, fb) = (FixtureServer::start().await.unwrap(), FixtureServer::start().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let opts = || DaemonOptions {
        data_dir: Some(dir.path().to_owned()),
        ..DaemonOptions::default()
    };
    let mut d = TestDaemon::start(opts()).await;
    d.apply(spec(&fa.url(), &fb.url())).await;
    d.wait_group("g", "g READY", |h| phase(h) == GroupPhase::Ready).await;
    let mut watch = d
        .client
        .watch_group_health(WatchGroupHealthRequest { group: "g".into() })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap(); // the snapshot

    let r = d.client.set_backend_drain(drain("g", "a", true)).await.unwrap().into_inner();
    assert_eq!((r.changed, r.generation), (true, 2));
    assert!(r.spec.unwrap().backends.iter().any(|b| b.name == "a" && b.drain));

    let h = d.get("g").await;
    let a = backend(&h, "a");
    assert_eq!(
        (status(a), a.draining, a.routable),
        (BackendStatus::Healthy, true, false),
        "observed verdict kept, not routable"
    );
    assert_eq!(phase(&h), GroupPhase::Degraded);
    let s = h.summary.unwrap();
    assert_eq!((s.total, s.routable, s.healthy, s.draining), (2, 1, 2, 1));
    assert_eq!(h.message, "1 of 2 backends routable; 1 backend is draining");
    // Watch shows it too.
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let m = watch.message().await.unwrap().expect("watch open");
            if m.groups.iter().any(|g| g.backends.iter().any(|b| b.name == "a" && b.draining)) {
                break m;
            }
        }
    })
    .await
    .expect("a watch message with a draining");
    assert_eq!(seen.kind, WatchEventKind::Changed as i32);
    // Still probed.
    let before = probe_time(a);
    d.wait_group("g", "a probed again while drained", |h| probe_time(backend(h, "a")) > before)
        .await;

    // Draining again changes nothing.
    let again = d.client.set_backend_drain(drain("g", "a", true)).await.unwrap().into_inner();
    assert_eq!((again.changed, again.generation), (false, 2));

    // Kept across a restart.
    d.stop().await;
    let mut d = TestDaemon::start(opts()).await;
    let h = d
        .wait_group("g", "restored, a probed", |h| status(backend(h, "a")) == BackendStatus::Healthy)
        .await;
    assert_eq!((h.generation, backend(&h, "a").draining, backend(&h, "a").routable), (2, true, false));

    let r = d.client.set_backend_drain(drain("g", "a", false)).await.unwrap().into_inner();
    assert_eq!((r.changed, r.generation), (true, 3));
    d.wait_group("g", "READY again", |h| phase(h) == GroupPhase::Ready).await;

    let missing = d.client.set_backend_drain(drain("g", "zz", true)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let empty = d.client.set_backend_drain(drain("g", "", true)).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("backend"), "{}", empty.message());
    d.stop().await;
}

#[tokio::test]
async fn a_config_file_group_is_drained_in_its_file() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.yaml");
    std::fs::write(
        &path,
        format!(
            "groups:\n  - name: g\n    backends:\n      - {{name: a, url: \"{}\", drain: true}}\n",
            fixture.url()
        ),
    )
    .unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        config: Some(path.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let h = d.wait_group("g", "a probed", |h| status(backend(h, "a")) == BackendStatus::Healthy).await;
    assert_eq!(
        (backend(&h, "a").draining, backend(&h, "a").routable, phase(&h)),
        (true, false, GroupPhase::Failed)
    );
    let refused = d.client.set_backend_drain(drain("g", "a", false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains(path.to_str().unwrap()), "{}", refused.message());
    d.stop().await;
}
