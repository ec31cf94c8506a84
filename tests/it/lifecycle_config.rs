//! The `--config` file: reload on change and on SIGHUP, last-good semantics
//! for invalid files (nothing half-applied, the error shown by
//! GetConfigStatus), read-only config groups, and names claimed by both the
//! file and the store.

use crate::common;
use crate::lifecycle_bin;

use std::path::Path;

use common::*;
use mcp_fixture::FixtureServer;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::proto::v1::*;
use tonic::Code;

fn group(name: &str, url: &str) -> String {
    format!("  - name: {name}\n    policy:\n      interval: 3600s\n    backends:\n      - name: a\n        url: {url}\n")
}

fn write_config(path: &Path, groups: &[String]) {
    // Write then rename, as an operator's tooling (or a ConfigMap swap) would:
    // the poller never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("groups:\n{}", groups.concat())).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn names(d: &mut TestDaemon) -> Vec<String> {
    d.client
        .list_groups(ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect()
}

async fn config_status(d: &TestDaemon) -> GetConfigStatusResponse {
    d.client.clone().get_config_status(GetConfigStatusRequest {}).await.unwrap().into_inner()
}

async fn wait_config(d: &TestDaemon, what: &str, pred: impl Fn(&GetConfigStatusResponse) -> bool) -> GetConfigStatusResponse {
    let client = d.client.clone();
    eventually(
        what,
        || {
            let mut c = client.clone();
            async move { Some(c.get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner()) }
        },
        pred,
    )
    .await
}

#[tokio::test]
async fn file_changes_reload_and_an_invalid_file_keeps_the_last_good_config() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.yaml");
    write_config(&path, &[group("one", &fixture.url_for("/one"))]);
    let mut d = TestDaemon::start(DaemonOptions {
        config: Some(path.clone()),
        ..DaemonOptions::default()
    })
    .await;
    assert_eq!(names(&mut d).await, vec!["one"]);
    let initial = config_status(&d).await;
    assert_eq!(
        (initial.path.as_str(), initial.groups.clone(), initial.last_error.as_str()),
        (path.to_str().unwrap(), vec!["one".to_owned()], "")
    );

    // A valid change is picked up without a signal.
    write_config(&path, &[group("one", &fixture.url_for("/one")), group("two", &fixture.url_for("/two"))]);
    wait_config(&d, "two loaded", |s| s.groups == ["one", "two"]).await;
    assert_eq!(names(&mut d).await, vec!["one", "two"]);
    assert_eq!(d.get("two").await.source, GroupSource::ConfigFile as i32);
    let one_before = d.wait_group("one", "one healthy", |h| status(&h.backends[0]) == BackendStatus::Healthy).await;

    // An invalid file: one changed group, one valid new group, two invalid
    // ones. Nothing of it applies; the error names every offending field.
    write_config(
        &path,
        &[
            group("one", &fixture.url_for("/moved")),
            group("three", &fixture.url_for("/three")),
            group("Bad_Name", &fixture.url_for("/x")),
            group("four", "ftp://127.0.0.1/"),
        ],
    );
    let bad = wait_config(&d, "the reload error", |s| !s.last_error.is_empty()).await;
    assert!(
        bad.last_error.contains("groups[2].name") && bad.last_error.contains("groups[3].backends[0].url"),
        "{}",
        bad.last_error
    );
    assert!(bad.last_error.contains(path.to_str().unwrap()), "the error names the file: {}", bad.last_error);
    assert!(bad.last_error_time.is_some());
    assert_eq!(bad.groups, ["one", "two"], "the last good config stays in force");
    assert_eq!(names(&mut d).await, vec!["one", "two"], "nothing half-applied");
    let one_after = d.get("one").await;
    assert_eq!(one_after.backends[0].url, fixture.url_for("/one"));
    assert_eq!(one_after.generation, one_before.generation);

    // Unparseable YAML is reported too.
    std::fs::write(&path, "groups: [ {name: one").unwrap();
    wait_config(&d, "the parse error", |s| s.last_error.contains("cannot parse")).await;
    assert_eq!(names(&mut d).await, vec!["one", "two"]);

    // A good file again clears the error and applies, deleting `two`.
    write_config(&path, &[group("one", &fixture.url_for("/one"))]);
    let good = wait_config(&d, "recovery", |s| s.last_error.is_empty() && s.groups == ["one"]).await;
    assert!(good.last_good_load_time.is_some());
    assert_eq!(names(&mut d).await, vec!["one"]);
    d.stop().await;
}

#[tokio::test]
async fn config_groups_are_read_only_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.yaml");
    write_config(&path, &[group("filed", "http://127.0.0.1:9/mcp")]);
    let mut d = TestDaemon::start(DaemonOptions {
        config: Some(path.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let file = path.to_str().unwrap();

    let spec = group_yaml("name: filed\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/other\n");
    let err = d.apply_err(spec).await;
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(file) && err.message().contains("filed"), "{}", err.message());
    let err = d.client.delete_group(DeleteGroupRequest { group: "filed".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(file), "{}", err.message());
    assert_eq!(d.get("filed").await.backends[0].url, "http://127.0.0.1:9/mcp");
    d.stop().await;
}

#[tokio::test]
async fn a_name_in_both_the_file_and_the_store_is_rejected_at_start_and_at_reload() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let path = dir.path().join("groups.yaml");
    let mut d = TestDaemon::start(DaemonOptions {
        data_dir: Some(data_dir.clone()),
        ..DaemonOptions::default()
    })
    .await;
    d.apply(group_yaml("name: shared\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/api\n"))
        .await;
    d.stop().await;

    // At start-up: the daemon refuses, naming the group, the file and the store.
    write_config(&path, &[group("shared", "http://127.0.0.1:9/file")]);
    common::install_crypto();
    let opts = DaemonOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        config: Some(path.clone()),
        data_dir: Some(data_dir.clone()),
        ..DaemonOptions::default()
    };
    let err = Daemon::start(opts).await.err().expect("start refused").to_string();
    assert!(
        err.contains("\"shared\"") && err.contains(path.to_str().unwrap()) && err.contains("API"),
        "{err}"
    );

    // At reload: the file keeps its last good content; the store's group stays.
    write_config(&path, &[group("filed", "http://127.0.0.1:9/file")]);
    let mut d = TestDaemon::start(DaemonOptions {
        config: Some(path.clone()),
        data_dir: Some(data_dir.clone()),
        ..DaemonOptions::default()
    })
    .await;
    assert_eq!(names(&mut d).await, vec!["filed", "shared"]);
    write_config(
        &path,
        &[
            group("filed", "http://127.0.0.1:9/file"),
            group("shared", "http://127.0.0.1:9/file"),
            group("new", "http://127.0.0.1:9/file"),
        ],
    );
    let bad = wait_config(&d, "the conflict", |s| !s.last_error.is_empty()).await;
    assert!(bad.last_error.contains("\"shared\"") && bad.last_error.contains("API"), "{}", bad.last_error);
    assert_eq!(bad.groups, ["filed"]);
    assert_eq!(names(&mut d).await, vec!["filed", "shared"], "nothing half-applied: `new` is absent");
    let shared = d.get("shared").await;
    assert_eq!(
        (shared.source, shared.backends[0].url.as_str()),
        (GroupSource::Api as i32, "http://127.0.0.1:9/api")
    );

    // At apply: a name the file holds is refused, naming the file.
    let err = d.apply_err(group_yaml("name: filed\nbackends: []\n")).await;
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(path.to_str().unwrap()), "{}", err.message());
    d.stop().await;
}

#[tokio::test]
async fn sighup_forces_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.yaml");
    write_config(&path, &[group("one", "http://127.0.0.1:9/mcp")]);
    let daemon = lifecycle_bin::Daemon::spawn(&["--config", path.to_str().unwrap()]);
    let mut client = daemon.client().await;
    let first = client.get_config_status(GetConfigStatusRequest {}).await.unwrap().into_inner();
    let t0 = first.last_good_load_time.expect("loaded at start");
    // Unchanged content is never reloaded by the poller; only SIGHUP forces it.
    // Wait for the clock to move past t0 so a reload is visible in the time.
    let t0_ns = t0.seconds as i128 * 1_000_000_000 + t0.nanos as i128;
    eventually(
        "the clock passes t0",
        || async { Some(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128) },
        |now| *now > t0_ns,
    )
    .await;
    daemon.signal("HUP");
    let reloaded = eventually(
        "a reload after SIGHUP",
        || {
            let mut c = client.clone();
            async move { Some(c.get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner()) }
        },
        |s| {
            s.last_good_load_time
                .as_ref()
                .is_some_and(|t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128 > t0_ns)
        },
    )
    .await;
    assert_eq!(reloaded.groups, ["one"]);
    assert!(reloaded.last_error.is_empty());
    assert!(daemon.stop().await.success());
}

/// Without --data-dir the conflict message says the API group is in memory
/// (not in a store that does not exist), and deleting the API group, as the
/// message advises, puts the file's group in its place at once: no SIGHUP,
/// no edit of the file.
#[tokio::test]
async fn deleting_the_conflicting_api_group_brings_the_files_group_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.yaml");
    write_config(&path, &[group("filed", "http://127.0.0.1:9/file")]);
    let mut d = TestDaemon::start(DaemonOptions {
        config: Some(path.clone()),
        ..DaemonOptions::default()
    })
    .await;
    d.apply(group_yaml("name: shared\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/api\n"))
        .await;
    write_config(&path, &[group("filed", "http://127.0.0.1:9/file"), group("shared", "http://127.0.0.1:9/file")]);
    let bad = wait_config(&d, "the conflict", |s| !s.last_error.is_empty()).await;
    assert!(
        bad.last_error.contains("\"shared\"") && bad.last_error.contains("kept in memory") && !bad.last_error.contains("--data-dir store"),
        "{}",
        bad.last_error
    );

    d.client.delete_group(DeleteGroupRequest { group: "shared".into() }).await.expect("delete");
    let good = wait_config(&d, "the file reloaded after the delete", |s| s.last_error.is_empty()).await;
    assert_eq!(good.groups, ["filed", "shared"]);
    let shared = d.get("shared").await;
    assert_eq!(
        (shared.source, shared.backends[0].url.as_str()),
        (GroupSource::ConfigFile as i32, "http://127.0.0.1:9/file")
    );
    d.stop().await;
}
