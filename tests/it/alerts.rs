//! The alert and dashboard pack (`clients/prometheus`, `clients/grafana`):
//! the rules pass `promtool check rules` and their own `promtool test rules`
//! cases; every query of the rules and the dashboard parses and names only
//! series the daemon exports or the rules record; and a real Prometheus that
//! scrapes a live daemon with the rules loaded fires McpHealthGroupFailed for
//! a dead group, and not for a healthy one.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use common::*;
use mcp_fixture::{FixtureServer, reserve_port};
use mcp_health::daemon::DaemonOptions;
use serde_json::Value;
use tokio::process::Command;

fn pack(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(path)
}

const RULES: &str = "prometheus/mcp-health.rules.yaml";
const RULE_TESTS: &str = "prometheus/mcp-health.rules.test.yaml";
const DASHBOARD: &str = "grafana/mcp-health-dashboard.json";

/// Runs promtool; its success and everything it said.
async fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("promtool (scripts/setup-tools.sh installs it)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[tokio::test]
async fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = pack("prometheus");
    let (ok, said) = promtool(&["check", "rules", RULES.rsplit('/').next().unwrap()], &dir).await;
    assert!(ok, "promtool check rules:\n{said}");
    let (ok, said) = promtool(&["test", "rules", RULE_TESTS.rsplit('/').next().unwrap()], &dir).await;
    assert!(ok, "promtool test rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every `expr` of a Grafana dashboard (panels, rows' panels).
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Grafana's variables as Prometheus would see them once Grafana filled them in.
fn as_promql(grafana: &str) -> String {
    grafana.replace("$__rate_interval", "5m")
}

/// The names of our series and recorded series a query uses.
fn names_in(query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while let Some(at) = query[i..].find("mcp_health") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':');
        let end = query[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(query.len(), |n| start + n);
        if boundary {
            out.insert(query[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// The sample names an exposition's families have: a counter `x` is sampled as
/// `x_total`, a histogram as `x_bucket`, `x_sum` and `x_count`.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn every_query_parses_and_names_only_series_the_daemon_exports() {
    // What a live daemon exports once it has probed (a family shows in the
    // exposition with its first series), and what a cluster member adds.
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await;
    d.apply_yaml(&format!("name: g\nbackends:\n  - {{name: b, url: '{}'}}\n", fixture.url())).await;
    let metrics_addr = d.daemon.as_ref().unwrap().metrics_addr().expect("metrics are served");
    let url = &format!("http://{metrics_addr}/metrics");
    let live = eventually(
        "a probe and a transition in the exposition",
        || async move { reqwest::get(url).await.ok()?.text().await.ok() },
        |t: &String| t.contains("mcp_health_group_backend_transitions_total{") && t.contains("mcp_health_probe_duration_seconds_count{"),
    )
    .await;
    let cluster = mcp_health::metrics::Metrics::new()
        .with_collector(mcp_health::cluster::metrics::ClusterMetrics::new(
            mcp_health::cluster::status::ClusterStatus::default(),
            Arc::default(),
        ))
        .encode()
        .unwrap();
    let mut exported = exported_names(&live);
    assert!(exported.contains("mcp_health_backend_last_probe_timestamp_seconds"), "{exported:?}");
    exported.extend(exported_names(&cluster));

    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(pack(RULES)).unwrap()).unwrap();
    let mut recorded = BTreeSet::new();
    let mut rule_queries = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            if let Some(r) = rule["record"].as_str() {
                recorded.insert(r.to_owned());
            }
            rule_queries.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(pack(DASHBOARD)).unwrap()).unwrap();
    let panel_queries: Vec<String> = dashboard_queries(&dashboard).iter().map(|q| as_promql(q)).collect();
    assert!(panel_queries.len() >= 10, "the dashboard's queries: {panel_queries:#?}");

    // Every query parses: promtool checks each as a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in panel_queries.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.rules.yaml"), file).unwrap();
    let (ok, said) = promtool(&["check", "rules", "dashboard.rules.yaml"], dir.path()).await;
    assert!(ok, "a dashboard query does not parse:\n{said}");

    // Every name is exported or recorded (and the template variable's too).
    let template = dashboard["templating"]["list"][1]["query"]["query"].as_str().unwrap().to_owned();
    for q in panel_queries.iter().chain(&rule_queries).chain([&template]) {
        for name in names_in(q) {
            assert!(
                exported.contains(&name) || recorded.contains(&name),
                "{name} (in `{q}`) is neither exported by the daemon nor recorded by the rules"
            );
        }
    }
    d.stop().await;
}

#[test]
fn names_in_finds_series_and_recorded_names_only() {
    assert_eq!(
        names_in("max by (group) (mcp_health_group_phase{phase=\"x\"}) / mcp_health:group_routable:max[5m] + not_ours"),
        BTreeSet::from(["mcp_health_group_phase".to_owned(), "mcp_health:group_routable:max".to_owned()])
    );
    assert!(names_in("xmcp_health_group_phase").is_empty());
}

/// A copy of the rules whose `for:` durations are zero, so that an alert
/// fires as soon as its expression holds (a test cannot wait 5 minutes; the
/// `for:` semantics are covered by the promtool unit tests).
fn rules_without_for() -> String {
    std::fs::read_to_string(pack(RULES))
        .unwrap()
        .lines()
        .map(|l| if l.trim_start().starts_with("for: ") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_real_prometheus_fires_group_failed_against_a_live_daemon() {
    let fixture = FixtureServer::start().await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut d = TestDaemon::start(DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await;
    let metrics_addr = d.daemon.as_ref().unwrap().metrics_addr().expect("metrics are served");
    d.apply_yaml(&format!(
        "name: dead\npolicy: {{interval: 1s, timeout: 0.8s, unhealthyThreshold: 1}}\nbackends:\n  - {{name: gone, url: 'http://127.0.0.1:{closed}/mcp'}}\n"
    ))
    .await;
    d.apply_yaml(&format!(
        "name: alive\npolicy: {{interval: 1s, timeout: 0.8s}}\nbackends:\n  - {{name: up, url: '{}'}}\n",
        fixture.url()
    ))
    .await;
    // Both judged before Prometheus starts: with no `for:`, a backend not judged
    // yet would fire McpHealthBackendNeverJudged for a moment.
    d.wait_group("alive", "alive READY", |h| phase(h) == mcp_health::proto::v1::GroupPhase::Ready)
        .await;
    d.wait_group("dead", "dead FAILED", |h| phase(h) == mcp_health::proto::v1::GroupPhase::Failed)
        .await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules_without_for()).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [rules.yaml]\nscrape_configs:\n  \
             - job_name: mcp-health\n    static_configs: [{{targets: ['{metrics_addr}']}}]\n"
        ),
    )
    .unwrap();
    let listen = reserve_port();
    let _prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (scripts/setup-tools.sh installs it)");
    let alerts = || async move {
        let url = url::Url::parse_with_params(&format!("http://{listen}/api/v1/query"), [("query", "ALERTS{alertstate=\"firing\"}")]).unwrap();
        let body: Value = serde_json::from_str(&reqwest::get(url).await.ok()?.text().await.ok()?).ok()?;
        let firing: BTreeSet<(String, String)> = body["data"]["result"]
            .as_array()?
            .iter()
            .map(|a| {
                let m = &a["metric"];
                (m["alertname"].as_str().unwrap_or("").to_owned(), m["group"].as_str().unwrap_or("").to_owned())
            })
            .collect();
        Some(firing)
    };
    let firing = eventually("McpHealthGroupFailed firing for group dead", alerts, |f| {
        f.contains(&("McpHealthGroupFailed".to_owned(), "dead".to_owned()))
    })
    .await;
    assert!(!firing.iter().any(|(_, group)| group == "alive"), "no alert for the healthy group: {firing:?}");
    d.stop().await;
}
