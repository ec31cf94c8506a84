//! `mcp-healthctl` end to end: the real binary against a daemon on
//! 127.0.0.1:0 with fixture MCP backends, in every output mode, checking
//! exit codes (grpc_health_probe's for `check`).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::*;
use mcp_fixture::FixtureServer;
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::v1::*;

const CTL: &str = env!("CARGO_BIN_EXE_mcp-healthctl");

/// Runs the CLI against `server` off the async runtime (the daemon runs on it).
async fn ctl(server: &str, args: &[&str]) -> Output {
    ctl_with_stdin(server, args, None).await
}

async fn ctl_with_stdin(server: &str, args: &[&str], stdin: Option<String>) -> Output {
    let mut cmd = Command::new(CTL);
    cmd.arg("--server")
        .arg(server)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("MCP_HEALTH_OUTPUT");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("mcp-healthctl runs");
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

fn fast_group(name: &str, url: &str) -> String {
    format!("name: {name}\npolicy: {{interval: 0.3s, timeout: 0.2s, unhealthyThreshold: 1}}\nbackends:\n  - name: a\n    url: {url}\n")
}

async fn daemon_with_ready_group(fixture: &FixtureServer) -> (TestDaemon, String) {
    let mut d = TestDaemon::empty().await;
    d.apply_yaml(&fast_group("web", &fixture.url())).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;
    let server = format!("http://{}", d.addr);
    (d, server)
}

#[tokio::test]
async fn groups_and_get_in_every_output_mode() {
    let fixture = FixtureServer::start().await.unwrap();
    let (d, server) = daemon_with_ready_group(&fixture).await;

    let table = ctl(&server, &["groups"]).await;
    assert_exit(&table, 0);
    let text = stdout(&table);
    assert!(text.starts_with("NAME  PHASE  ROUTABLE  SOURCE  MESSAGE\n"), "{text}");
    assert!(text.contains("web   READY  1/1       api     the backend is routable"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped: {text:?}");

    let json = ctl(&server, &["groups", "-o", "json"]).await;
    assert_exit(&json, 0);
    let list: ListGroupsResponse = serde_json::from_str(&stdout(&json)).expect("proto3 JSON");
    assert_eq!(list.groups.len(), 1);
    assert_eq!((list.groups[0].name.as_str(), list.groups[0].phase), ("web", GroupPhase::Ready as i32));
    assert!(
        stdout(&json).contains("\"phase\": \"GROUP_PHASE_READY\""),
        "enum names per the JSON mapping: {}",
        stdout(&json)
    );

    let yaml = ctl(&server, &["groups", "-o", "yaml"]).await;
    assert_exit(&yaml, 0);
    let list: ListGroupsResponse = serde_yaml_ng::from_str(&stdout(&yaml)).expect("YAML of the JSON mapping");
    assert_eq!(list.groups[0].summary.unwrap().routable, 1);

    let get = ctl(&server, &["get", "web"]).await;
    assert_exit(&get, 0);
    let text = stdout(&get);
    assert!(text.starts_with("group web  phase READY  routable 1/1"), "{text}");
    assert!(text.contains("BACKEND  STATUS   ROUTABLE"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("a        HEALTHY  yes")), "{text}");

    for format in ["json", "yaml"] {
        let out = ctl(&server, &["get", "web", "-o", format]).await;
        assert_exit(&out, 0);
        let resp: GetGroupHealthResponse = if format == "json" {
            serde_json::from_str(&stdout(&out)).unwrap()
        } else {
            serde_yaml_ng::from_str(&stdout(&out)).unwrap()
        };
        let h = resp.health.unwrap();
        assert_eq!((h.name.as_str(), status(backend(&h, "a"))), ("web", BackendStatus::Healthy));
    }

    let missing = ctl(&server, &["get", "nope"]).await;
    assert_exit(&missing, 1);
    assert!(stderr(&missing).contains("NOT_FOUND: group \"nope\" not found"), "{}", stderr(&missing));
    d.stop().await;
}

#[tokio::test]
async fn check_uses_grpc_health_probe_exit_codes() {
    let fixture = FixtureServer::start().await.unwrap();
    let (d, server) = daemon_with_ready_group(&fixture).await;

    let server_check = ctl(&server, &["check"]).await;
    assert_exit(&server_check, 0);
    assert_eq!(stdout(&server_check), "status: SERVING\n");
    let group_check = ctl(&server, &["check", "web", "-o", "json"]).await;
    assert_exit(&group_check, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&group_check)).unwrap(),
        serde_json::json!({"status": "SERVING"})
    );

    fixture.stop().await;
    d.wait_group("web", "web FAILED", |h| phase(h) == GroupPhase::Failed).await;
    let failing = ctl(&server, &["check", "web", "-o", "yaml"]).await;
    assert_exit(&failing, 4);
    assert_eq!(stdout(&failing), "status: NOT_SERVING\n");

    let unknown = ctl(&server, &["check", "no-such-group"]).await;
    assert_exit(&unknown, 3);
    assert!(stderr(&unknown).contains("NOT_FOUND"), "{}", stderr(&unknown));

    // A port with nothing listening: the daemon's own port after it stopped.
    let addr = d.addr;
    d.stop().await;
    let refused = ctl(&format!("http://{addr}"), &["check"]).await;
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("cannot connect to"), "{}", stderr(&refused));
    let refused_groups = ctl(&format!("http://{addr}"), &["groups"]).await;
    assert_exit(&refused_groups, 2);
}

#[tokio::test]
async fn apply_reports_invalid_fields_one_by_one() {
    let fixture = FixtureServer::start().await.unwrap();
    let d = TestDaemon::empty().await;
    let server = format!("http://{}", d.addr);
    let dir = tempfile::tempdir().unwrap();

    let config = dir.path().join("groups.yaml");
    std::fs::write(
        &config,
        format!(
            "groups:\n  - {}  - {}",
            indent(&fast_group("one", &fixture.url())),
            indent(&fast_group("two", &fixture.url()))
        ),
    )
    .unwrap();
    let applied = ctl(&server, &["apply", "-f", config.to_str().unwrap()]).await;
    assert_exit(&applied, 0);
    assert_eq!(stdout(&applied), "group one applied (generation 1)\ngroup two applied (generation 1)\n");
    d.wait_group("two", "two READY", |h| phase(h) == GroupPhase::Ready).await;

    let again = ctl(&server, &["apply", "-f", config.to_str().unwrap(), "-o", "json"]).await;
    assert_exit(&again, 0);
    let lines: Vec<ApplyGroupResponse> = stdout(&again).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|r| !r.changed && r.generation == 1), "{lines:?}");

    let single = fast_group("three", &fixture.url());
    let dry = ctl_with_stdin(&server, &["apply", "-f", "-", "--dry-run"], Some(single.clone())).await;
    assert_exit(&dry, 0);
    assert_eq!(stdout(&dry), "group three is valid (dry run; nothing changed)\n");
    assert_exit(&ctl(&server, &["get", "three"]).await, 1);
    let from_stdin = ctl_with_stdin(&server, &["apply", "-f", "-", "-o", "yaml"], Some(single)).await;
    assert_exit(&from_stdin, 0);
    let resp: ApplyGroupResponse = serde_yaml_ng::from_str(stdout(&from_stdin).trim_start_matches("---\n")).unwrap();
    assert_eq!((resp.spec.unwrap().name.as_str(), resp.generation, resp.changed), ("three", 1, true));

    let bad = "name: Bad_Name\npolicy: {interval: 1s, timeout: 2s}\nbackends:\n  - name: x\n    url: ftp://example.invalid/mcp\n";
    let invalid = ctl_with_stdin(&server, &["apply", "-f", "-"], Some(bad.to_owned())).await;
    assert_exit(&invalid, 1);
    let err = stderr(&invalid);
    assert!(err.contains("group \"Bad_Name\": INVALID_ARGUMENT: 3 invalid fields"), "{err}");
    for field in ["  spec.name: ", "  spec.policy.timeout: ", "  spec.backends[0].url: "] {
        assert!(err.lines().any(|l| l.starts_with(field)), "{field} missing from:\n{err}");
    }

    let unparsable = ctl_with_stdin(&server, &["apply", "-f", "-"], Some("name: x\nbackends: 3\n".into())).await;
    assert_exit(&unparsable, 1);
    assert!(stderr(&unparsable).contains("cannot read stdin"), "{}", stderr(&unparsable));
    d.stop().await;
}

fn indent(yaml: &str) -> String {
    yaml.lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("{l}\n") } else { format!("    {l}\n") })
        .collect()
}

#[tokio::test]
async fn delete_and_probe() {
    let fixture = FixtureServer::start().await.unwrap();
    let (d, server) = daemon_with_ready_group(&fixture).await;

    let probed = ctl(&server, &["probe", "web", "a", "-o", "json"]).await;
    assert_exit(&probed, 0);
    let resp: ProbeBackendResponse = serde_json::from_str(&stdout(&probed)).unwrap();
    assert_eq!(
        (resp.backend.unwrap().status, resp.phase),
        (BackendStatus::Healthy as i32, GroupPhase::Ready as i32)
    );
    let missing_backend = ctl(&server, &["probe", "web", "zzz"]).await;
    assert_exit(&missing_backend, 1);
    assert!(stderr(&missing_backend).contains("backend \"zzz\" not found"), "{}", stderr(&missing_backend));

    let deleted = ctl(&server, &["delete", "web"]).await;
    assert_exit(&deleted, 0);
    assert_eq!(stdout(&deleted), "group web deleted\n");
    let twice = ctl(&server, &["delete", "web", "-o", "json"]).await;
    assert_exit(&twice, 1);
    assert!(stderr(&twice).contains("NOT_FOUND"), "{}", stderr(&twice));
    d.stop().await;
}

#[tokio::test]
async fn report_sends_outcomes_and_get_shows_the_ejection() {
    let fixture = FixtureServer::start().await.unwrap();
    let (mut d, server) = daemon_with_ready_group(&fixture).await;
    // The default policy.outlier: 5 failures in a row; one backend may always go.
    let kept = ctl(&server, &["report", "web", "a", "http-status", "--http-status", "404", "--count", "5"]).await;
    assert_exit(&kept, 0);
    assert_eq!(stdout(&kept), "5 accepted, 0 for an unknown group or backend, 0 invalid\n");
    let unknown = ctl(&server, &["report", "web", "zzz", "timeout"]).await;
    assert_exit(&unknown, 0);
    assert_eq!(stdout(&unknown), "0 accepted, 1 for an unknown group or backend, 0 invalid\n");
    let code = ["report", "web", "a", "json-rpc-error", "--json-rpc-code", "-32603", "--count", "5"];
    let ejected = ctl(&server, &code).await;
    assert_exit(&ejected, 0);
    assert_eq!(stdout(&ejected), "5 accepted, 0 for an unknown group or backend, 0 invalid\nejected web/a\n");
    let got = ctl(&server, &["get", "web"]).await;
    assert_exit(&got, 0);
    let line = stdout(&got).lines().find(|l| l.starts_with("a ")).unwrap_or_default().to_owned();
    assert!(
        line.contains("HEALTHY") && line.contains("no (ejected)") && line.contains("JSON-RPC error -32603 to tools/call"),
        "{}",
        stdout(&got)
    );
    assert!(backend(&d.get("web").await, "a").ejection.is_some());
    let history = ctl(&server, &["history", "web", "a"]).await;
    assert_exit(&history, 0);
    assert!(
        stdout(&history).contains("ejected until") && stdout(&history).contains("(ejection 1): 5 consecutive failures"),
        "{}",
        stdout(&history)
    );
    d.stop().await;
}

/// Reads the child's stdout lines on a thread until `want` matches one.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, seen: &mut Vec<String>, want: impl Fn(&str) -> bool) -> bool {
    for line in lines.by_ref() {
        let line = line.unwrap();
        let hit = want(&line);
        seen.push(line);
        if hit {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn watch_prints_one_line_per_change_when_piped() {
    let fixture = FixtureServer::start().await.unwrap();
    let (d, server) = daemon_with_ready_group(&fixture).await;
    let mut child = Command::new(CTL)
        .args(["--server", &server, "watch", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (snapshot_tx, snapshot_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let mut seen = Vec::new();
        let initial = read_until(&mut lines, &mut seen, |l| l.contains("group=web backend=a status=HEALTHY"));
        let _ = snapshot_tx.send(());
        let transition = read_until(&mut lines, &mut seen, |l| l.contains("group=web backend=a HEALTHY -> UNHEALTHY"));
        let deleted = read_until(&mut lines, &mut seen, |l| l.contains("group=web deleted"));
        // The stream of a single-group watch ends with its group: EOF follows.
        let ended = lines.next().is_none();
        (initial, transition, deleted, ended, seen)
    });
    // Fail the backend once the watch printed its snapshot, so the change comes as a transition.
    let _ = tokio::task::spawn_blocking(move || snapshot_rx.recv()).await.unwrap();
    fixture.stop().await;
    d.wait_group("web", "web FAILED", |h| phase(h) == GroupPhase::Failed).await;
    let mut client = d.client.clone();
    client.delete_group(DeleteGroupRequest { group: "web".into() }).await.unwrap();
    let (initial, transition, deleted, ended, seen) = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(initial && transition && deleted && ended, "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains("group=web phase READY -> FAILED")), "{seen:#?}");
    assert_eq!(status.code(), Some(0));
    d.stop().await;
}

#[tokio::test]
async fn watch_json_is_one_message_per_line() {
    let fixture = FixtureServer::start().await.unwrap();
    let (mut d, server) = daemon_with_ready_group(&fixture).await;
    let mut child = Command::new(CTL)
        .args(["--server", &server, "watch", "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (snapshot_tx, snapshot_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let mut msgs = Vec::new();
        for line in lines.by_ref() {
            let msg: WatchGroupHealthResponse = serde_json::from_str(&line.unwrap()).expect("each line is one message");
            let _ = snapshot_tx.send(());
            let done = msg.kind == WatchEventKind::Changed as i32 && msg.groups.iter().any(|g| g.name == "later");
            msgs.push(msg);
            if done {
                break;
            }
        }
        msgs
    });
    // The snapshot comes first; a group applied after it arrives as a change.
    let _ = tokio::task::spawn_blocking(move || snapshot_rx.recv()).await.unwrap();
    d.apply_yaml(&fast_group("later", &fixture.url())).await;
    let msgs = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(msgs[0].kind, WatchEventKind::Snapshot as i32, "{msgs:#?}");
    assert_eq!(msgs[0].groups[0].name, "web");
    assert!(msgs.last().unwrap().groups.iter().any(|g| g.name == "later"));
    d.stop().await;
}

#[tokio::test]
async fn usage_errors_and_completions() {
    let bad = ctl("http://127.0.0.1:9", &["get"]).await;
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("<GROUP>"), "{}", stderr(&bad));
    let bash = ctl("http://127.0.0.1:9", &["completions", "bash"]).await;
    assert_exit(&bash, 0);
    assert!(
        stdout(&bash).contains("complete -F _mcp__healthctl") && stdout(&bash).contains(" mcp-healthctl\n"),
        "{}",
        stdout(&bash)
    );
    let help = ctl("http://127.0.0.1:9", &["--help"]).await;
    assert_exit(&help, 0);
    assert!(stdout(&help).contains("4 not SERVING"), "{}", stdout(&help));
}

#[tokio::test]
async fn token_file_authorizes_mutations_and_is_never_printed() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-admin-token-0123456789";
    let admin = dir.path().join("admin-token");
    std::fs::write(&admin, format!("{token}\n")).unwrap();
    let d = TestDaemon::start(DaemonOptions {
        admin_token_file: Some(admin.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let server = format!("http://{}", d.addr);
    let spec = fast_group("guarded", &fixture.url());

    let refused = ctl_with_stdin(&server, &["apply", "-f", "-"], Some(spec.clone())).await;
    assert_exit(&refused, 1);
    assert!(stderr(&refused).contains("UNAUTHENTICATED"), "{}", stderr(&refused));

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let rejected = ctl_with_stdin(&server, &["--token-file", wrong.to_str().unwrap(), "apply", "-f", "-"], Some(spec.clone())).await;
    assert_exit(&rejected, 1);
    assert!(!stderr(&rejected).contains("not-the-token"), "{}", stderr(&rejected));

    let applied = ctl_with_stdin(&server, &["--token-file", admin.to_str().unwrap(), "apply", "-f", "-"], Some(spec)).await;
    assert_exit(&applied, 0);
    // The environment variable works like the flag; reads need no token.
    let mut cmd = Command::new(CTL);
    cmd.args(["--server", &server, "delete", "guarded"]).env("MCP_HEALTH_TOKEN_FILE", &admin);
    let deleted = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_exit(&deleted, 0);
    for o in [&refused, &rejected, &applied, &deleted] {
        assert!(!stdout(o).contains(token) && !stderr(o).contains(token), "the token leaked");
    }
    assert_exit(&ctl(&server, &["groups"]).await, 0);
    d.stop().await;
}

/// A dry run makes every check the apply makes: a group the config file
/// defines is refused with FAILED_PRECONDITION either way, and nothing changes.
#[tokio::test]
async fn a_dry_run_refuses_a_config_file_group_as_the_apply_does() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("groups.yaml");
    std::fs::write(&config, format!("groups:\n  - {}", fast_group("filed", &fixture.url()).replace('\n', "\n    "))).unwrap();
    let d = TestDaemon::start(DaemonOptions {
        config: Some(config.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let server = format!("http://{}", d.addr);
    let spec = fast_group("filed", &fixture.url_for("/elsewhere"));

    let applied = ctl_with_stdin(&server, &["apply", "-f", "-"], Some(spec.clone())).await;
    assert_exit(&applied, 1);
    assert!(stderr(&applied).contains("FAILED_PRECONDITION"), "{}", stderr(&applied));
    let dry = ctl_with_stdin(&server, &["apply", "-f", "-", "--dry-run"], Some(spec)).await;
    assert_exit(&dry, 1);
    assert!(
        stderr(&dry).contains("FAILED_PRECONDITION") && stderr(&dry).contains(config.to_str().unwrap()),
        "{}",
        stderr(&dry)
    );
    assert!(!stdout(&dry).contains("is valid"), "{}", stdout(&dry));
    d.stop().await;
}

/// What a newcomer reads: latency as the page writes it, `-o wide` with each
/// backend's URL, timestamps in the proto3 JSON form grpcurl prints (`Z`),
/// and `config-status` showing a failed reload.
#[tokio::test]
async fn wide_tables_proto3_timestamps_and_a_failed_reload_in_config_status() {
    let fixture = FixtureServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("groups.yaml");
    std::fs::write(&config, format!("groups:\n  - {}", fast_group("web", &fixture.url()).replace('\n', "\n    "))).unwrap();
    let d = TestDaemon::start(DaemonOptions {
        config: Some(config.clone()),
        ..DaemonOptions::default()
    })
    .await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready && h.backends[0].last_latency.is_some())
        .await;
    let server = format!("http://{}", d.addr);

    let table = ctl(&server, &["get", "web"]).await;
    assert_exit(&table, 0);
    let row = stdout(&table).lines().find(|l| l.starts_with("a ")).unwrap().to_owned();
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let latency = cells[3];
    assert!(
        latency.ends_with(" ms") && latency.trim_end_matches(" ms").parse::<f64>().is_ok() && latency.contains('.'),
        "latency as the page shows it (\"0.2 ms\"): {row}"
    );

    let wide = ctl(&server, &["get", "web", "-o", "wide"]).await;
    assert_exit(&wide, 0);
    let text = stdout(&wide);
    assert!(text.contains("REASON  URL") && text.contains(&fixture.url()), "{text}");
    assert!(!stdout(&table).contains(&fixture.url()), "the URL only in wide");

    let json = ctl(&server, &["get", "web", "-o", "json"]).await;
    assert_exit(&json, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let probed = value["health"]["backends"][0]["lastProbeTime"].as_str().expect("lastProbeTime").to_owned();
    assert!(probed.ends_with('Z') && !stdout(&json).contains("+00:00"), "{probed}");
    let _: GetGroupHealthResponse = serde_json::from_str(&stdout(&json)).expect("still proto3 JSON");

    let good = ctl(&server, &["config-status"]).await;
    assert_exit(&good, 0);
    assert!(
        stdout(&good).contains(config.to_str().unwrap()) && stdout(&good).contains("last reload     ok"),
        "{}",
        stdout(&good)
    );
    std::fs::write(&config, "groups:\n  - name: Not A Label\n").unwrap();
    let client = d.client.clone();
    eventually(
        "the failed reload",
        || {
            let mut c = client.clone();
            async move { Some(c.get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner()) }
        },
        |s| !s.last_error.is_empty(),
    )
    .await;
    let status = ctl(&server, &["config-status"]).await;
    assert_exit(&status, 0);
    assert!(stdout(&status).contains("last reload     FAILED at "), "{}", stdout(&status));
    assert!(stdout(&status).contains("groups[0].name"), "the error names the field: {}", stdout(&status));
    let json = ctl(&server, &["config-status", "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert!(value["lastErrorTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{value}");
    d.stop().await;
}
