//! The durable store: API groups survive a restart with their generations,
//! come back probed afresh, and `kill -9` during a stream of applies loses no
//! acknowledged write. The engine never accepts what the store did not commit.

use crate::common;
use crate::lifecycle_bin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use mcp_fixture::{Behavior, FixtureServer};
use mcp_health::daemon::DaemonOptions;
use mcp_health::engine::{Engine, EngineConfig, EngineError, Origin};
use mcp_health::health::HealthStatuses;
use mcp_health::probe::HttpProber;
use mcp_health::proto::v1::*;
use mcp_health::spec::validate_group;
use mcp_health::store::{Persist, StoreError, StoreFuture};

fn with_data_dir(dir: &std::path::Path) -> DaemonOptions {
    DaemonOptions {
        data_dir: Some(dir.to_owned()),
        ..DaemonOptions::default()
    }
}

fn two_backends(name: &str, url_a: &str, url_b: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: {name}\npolicy:\n  interval: 3600s\nbackends:\n  - name: a\n    url: {url_a}\n  - name: b\n    url: {url_b}\n"
    ))
}

#[tokio::test]
async fn api_groups_survive_a_restart_with_generations_and_are_probed_afresh() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (fixture.url_for("/a"), fixture.url_for("/b"));

    let mut d = TestDaemon::start(with_data_dir(dir.path())).await;
    assert_eq!(d.apply(two_backends("keep", &a, &fixture.url_for("/old"))).await.generation, 1);
    let second = d.apply(two_backends("keep", &a, &b)).await;
    assert_eq!(second.generation, 2);
    d.apply(two_backends("gone", &a, &b)).await;
    d.client.delete_group(DeleteGroupRequest { group: "gone".into() }).await.expect("delete");
    let before = d
        .wait_group("keep", "both backends healthy", |h| {
            h.backends.iter().all(|b| status(b) == BackendStatus::Healthy)
        })
        .await;
    assert_eq!(before.generation, 2);
    d.stop().await;

    // While the daemon is down, /b starts hanging: after the restart it must
    // be probed afresh (UNKNOWN, never probed), not carry over its HEALTHY.
    fixture.set_path_behavior("/b", Behavior::Hang);
    let mut d = TestDaemon::start(with_data_dir(dir.path())).await;
    let groups = d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        vec!["keep"],
        "the deleted group stays deleted"
    );
    assert_eq!(groups[0].source, GroupSource::Api as i32);
    let after = d
        .wait_group("keep", "a probed afresh", |h| status(backend(h, "a")) == BackendStatus::Healthy)
        .await;
    assert_eq!(after.generation, 2, "the generation survives the restart");
    assert_eq!(status(backend(&after, "b")), BackendStatus::Unknown);
    assert_eq!(reason(backend(&after, "b")), ReasonCode::NotProbed);
    assert_eq!(backend(&after, "b").url, b);
    // The stored spec is the one applied last, and generations keep counting.
    let third = d.apply(two_backends("keep", &a, &fixture.url_for("/c"))).await;
    assert_eq!(third.generation, 3);
    let unchanged = d.apply(two_backends("keep", &a, &fixture.url_for("/c"))).await;
    assert!(!unchanged.changed);
    assert_eq!(unchanged.generation, 3);
    d.stop().await;

    let mut d = TestDaemon::start(with_data_dir(dir.path())).await;
    assert_eq!(d.get("keep").await.generation, 3);
    d.stop().await;
}

#[tokio::test]
async fn without_a_data_dir_api_groups_live_in_memory_only() {
    let mut d = TestDaemon::empty().await;
    d.apply(two_backends("mem", "http://127.0.0.1:9/a", "http://127.0.0.1:9/b")).await;
    assert_eq!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.len(), 1);
    d.stop().await;
    let mut d = TestDaemon::empty().await;
    assert!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    d.stop().await;
}

/// A store whose writes can be made to fail, recording what was committed.
#[derive(Default)]
struct FlakyStore {
    fail_puts: Mutex<bool>,
    fail_removes: Mutex<bool>,
    committed: Mutex<Vec<String>>,
}

impl FlakyStore {
    fn put_now(&self, spec: &GroupSpec, generation: u64) -> Result<(), StoreError> {
        if *self.fail_puts.lock().unwrap() {
            return Err(StoreError::Write("disk full".into()));
        }
        self.committed.lock().unwrap().push(format!("put {} {generation}", spec.name));
        Ok(())
    }

    fn remove_now(&self, name: &str) -> Result<(), StoreError> {
        if *self.fail_removes.lock().unwrap() {
            return Err(StoreError::Write("disk full".into()));
        }
        self.committed.lock().unwrap().push(format!("remove {name}"));
        Ok(())
    }
}

impl Persist for FlakyStore {
    fn put<'a>(&'a self, spec: &'a GroupSpec, generation: u64) -> StoreFuture<'a> {
        Box::pin(std::future::ready(self.put_now(spec, generation)))
    }

    fn remove<'a>(&'a self, name: &'a str) -> StoreFuture<'a> {
        Box::pin(std::future::ready(self.remove_now(name)))
    }
}

#[tokio::test]
async fn the_engine_never_accepts_a_change_the_store_did_not_commit() {
    let store = Arc::new(FlakyStore::default());
    let engine = Engine::start_with_store(
        EngineConfig::default(),
        Arc::new(HttpProber::default()),
        HealthStatuses::default(),
        Some(store.clone()),
    );
    let spec = |name: &str, port: u16| {
        validate_group(
            &two_backends(name, &format!("http://127.0.0.1:{port}/a"), "http://127.0.0.1:9/b"),
            "spec",
            &Default::default(),
        )
        .unwrap()
    };

    *store.fail_puts.lock().unwrap() = true;
    let err = engine.apply(spec("g", 9), Origin::Api).await.unwrap_err();
    assert!(matches!(err, EngineError::Store(_)), "{err}");
    assert!(
        matches!(engine.get("g".into()).await, Err(EngineError::GroupNotFound(_))),
        "a failed commit created the group"
    );

    *store.fail_puts.lock().unwrap() = false;
    assert_eq!(engine.apply(spec("g", 9), Origin::Api).await.unwrap().generation, 1);
    *store.fail_puts.lock().unwrap() = true;
    assert!(engine.apply(spec("g", 10), Origin::Api).await.is_err());
    let g = engine.get("g".into()).await.unwrap();
    assert_eq!(
        (g.generation, g.backends[0].url.as_str()),
        (1, "http://127.0.0.1:9/a"),
        "a failed commit changed the group"
    );
    // An identical apply changes nothing, so it needs no write and succeeds.
    assert!(!engine.apply(spec("g", 9), Origin::Api).await.unwrap().changed);

    *store.fail_removes.lock().unwrap() = true;
    assert!(matches!(engine.delete("g".into()).await, Err(EngineError::Store(_))));
    assert!(engine.get("g".into()).await.is_ok(), "a failed commit deleted the group");

    // A rejected change never reaches the store: config-file groups are never
    // stored, and an API apply over a config group is refused before any write.
    *store.fail_removes.lock().unwrap() = false;
    *store.fail_puts.lock().unwrap() = false;
    engine
        .replace_all(vec![spec("from-file", 9)], Origin::ConfigFile("/etc/groups.yaml".into()))
        .await
        .unwrap();
    assert!(matches!(
        engine.apply(spec("from-file", 11), Origin::Api).await,
        Err(EngineError::ReadOnly { .. })
    ));
    assert!(matches!(engine.delete("from-file".into()).await, Err(EngineError::ReadOnly { .. })));
    engine.delete("g".into()).await.unwrap();
    assert_eq!(*store.committed.lock().unwrap(), vec!["put g 1".to_owned(), "remove g".to_owned()]);
    engine.shutdown().await;
}

/// Spec number `k` of writer `w`: its backend URL records `k`, so the spec
/// read back after the crash tells which write it is.
fn numbered(w: usize, k: u64) -> GroupSpec {
    group_yaml(&format!(
        "name: w{w}\npolicy:\n  interval: 3600s\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/v{k}\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_stream_of_applies_loses_no_acknowledged_write() {
    const WRITERS: usize = 4;
    const KILL_AFTER_ACKS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let daemon = lifecycle_bin::Daemon::spawn(&["--data-dir", &data_dir]);
    let client = daemon.client().await;

    // Each writer applies its own group again and again, one write at a time,
    // and records the last generation the daemon acknowledged.
    let acked: Arc<Mutex<BTreeMap<usize, u64>>> = Arc::default();
    let (enough_tx, mut enough) = tokio::sync::mpsc::channel::<()>(WRITERS);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (mut client, acked, enough_tx) = (client.clone(), acked.clone(), enough_tx.clone());
        writers.push(tokio::spawn(async move {
            for k in 1.. {
                let Ok(reply) = client.apply_group(apply_request(numbered(w, k))).await else {
                    return;
                };
                let generation = reply.into_inner().generation;
                assert_eq!(generation, k, "writer {w} is the only writer of its group");
                let total = {
                    let mut acked = acked.lock().unwrap();
                    acked.insert(w, generation);
                    acked.values().sum::<u64>() as usize
                };
                if total >= KILL_AFTER_ACKS {
                    let _ = enough_tx.try_send(());
                }
            }
        }));
    }
    enough.recv().await.expect("writers made progress");
    // Writes are still in flight: the kill lands in the middle of the stream.
    daemon.kill9();
    for w in writers {
        w.await.expect("writer task");
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), WRITERS, "every writer had a write acknowledged: {acked:?}");

    // The store opens (it is readable after the crash) and holds every
    // acknowledged write: the same or a later generation, with its own spec.
    let restarted = lifecycle_bin::Daemon::spawn(&["--data-dir", &data_dir]);
    let mut client = restarted.client().await;
    for (w, generation) in &acked {
        let health = client
            .get_group_health(GetGroupHealthRequest { group: format!("w{w}") })
            .await
            .expect("group survived")
            .into_inner()
            .health
            .unwrap();
        assert!(
            health.generation >= *generation,
            "w{w}: acknowledged generation {generation}, restored {}",
            health.generation
        );
        // Unacknowledged writes may or may not have landed, but what is there is whole.
        assert_eq!(
            health.backends[0].url,
            format!("http://127.0.0.1:9/v{}", health.generation),
            "w{w}: spec and generation belong together"
        );
    }
    let listed = client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.len();
    assert_eq!(listed, WRITERS);
    assert!(restarted.stop().await.success(), "clean stop after recovery");
}

/// A second daemon on the same --data-dir is refused, and told why: another
/// mcp-healthd holds that directory (named), not redb's "Database already open".
#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_is_told_another_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let first = lifecycle_bin::Daemon::spawn(&["--data-dir", data_dir]);
    let (status, stderr) = lifecycle_bin::run_to_exit(&["--listen", "127.0.0.1:0", "--data-dir", data_dir]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("another mcp-healthd holds the data dir") && stderr.contains(data_dir),
        "{stderr}"
    );
    assert!(first.stop().await.success());
}
