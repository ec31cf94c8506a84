//! The metrics endpoint as a real Prometheus (Debian's `prometheus`, installed
//! by scripts/setup-tools.sh) scrapes it, and as `promtool check metrics`
//! lints it; and what each backend costs in series.

use crate::common;

use std::process::Stdio;

use common::*;
use mcp_fixture::{FixtureServer, reserve_port};
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::v1::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// The one scrape job of the test Prometheus.
const JOB: &str = "mcp-health";

async fn scrape(url: &str) -> String {
    reqwest::get(url).await.expect("scrape").text().await.expect("exposition")
}

/// The sample lines of an exposition: one per series.
fn series(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

fn spec(name: &str, backends: usize, url: &str) -> String {
    let mut yaml = format!("name: {name}\npolicy: {{interval: 1s, timeout: 0.8s}}\nbackends:\n");
    for i in 0..backends {
        yaml.push_str(&format!("  - name: b{i}\n    url: {url}\n"));
    }
    yaml
}

async fn wait_healthy(d: &TestDaemon, group: &str, backends: usize) {
    d.wait_group(group, &format!("{group}: {backends} healthy backends"), |h| {
        h.backends.len() == backends && h.backends.iter().all(|b| status(b) == BackendStatus::Healthy)
    })
    .await;
}

/// `promtool check metrics` on an exposition: the problems it reports. promtool
/// (2.42) lints with the Prometheus 0.0.4 text parser, which reads an
/// OpenMetrics counter family `x` (samples `x_total`) as an untyped `x_total`
/// without help: exactly that finding, for a family the exposition declares a
/// counter, is a format difference and is left out; any other finding stays.
async fn promtool(text: &str) -> Vec<String> {
    let counters: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let (ok, said) = promtool_raw(text).await;
    let problems: Vec<String> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let format_only = l.strip_suffix("_total no help text").is_some_and(|family| counters.contains(&family));
            !format_only
        })
        .map(str::to_owned)
        .collect();
    assert!(ok || !said.is_empty(), "promtool failed without saying why");
    problems
}

async fn promtool_raw(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/setup-tools.sh installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// A Prometheus server scraping `target` every second, killed on drop.
struct Prometheus {
    _child: Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: {JOB}\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let listen = reserve_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus (scripts/setup-tools.sh installs it)");
        Prometheus {
            _child: child,
            api: format!("http://{listen}/api/v1"),
            _dir: dir,
        }
    }

    /// The last lines Prometheus logged, for failure messages.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// An instant query's result vector, or None while Prometheus is not up.
    async fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let url = url::Url::parse_with_params(&format!("{}/query", self.api), [("query", promql)]).unwrap();
        let resp = reqwest::get(url).await.ok()?;
        let body: Value = serde_json::from_str(&resp.text().await.ok()?).ok()?;
        body["data"]["result"].as_array().cloned()
    }

    /// The single value of a query that yields one sample.
    async fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until Prometheus holds `want` series of ours from its latest scrape.
    async fn wait_series(&self, want: usize) {
        let promql = &format!("count({{job=\"{JOB}\", __name__=~\"mcp_health_.+\"}})");
        let this = self;
        eventually(
            &format!("prometheus to hold {want} mcp_health series"),
            || async move { Some((this.scalar(promql).await, this.log())) },
            |(n, _)| *n == Some(want as f64),
        )
        .await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_daemon_and_a_backend_costs_eight_series() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await;
    let metrics_addr = d.daemon.as_ref().unwrap().metrics_addr().expect("metrics are served");
    let url = &format!("http://{metrics_addr}/metrics");

    d.apply_yaml(&spec("web", 10, &fixture.url())).await;
    d.apply_yaml(&spec("api", 4, &fixture.url())).await;
    wait_healthy(&d, "web", 10).await;
    wait_healthy(&d, "api", 4).await;
    // Every backend has been probed at least once after turning healthy.
    let at_14 = eventually(
        "a last-duration gauge per backend",
        || async move { Some(scrape(url).await) },
        |t| t.matches("mcp_health_backend_last_probe_duration_seconds{").count() == 14,
    )
    .await;
    let problems = promtool(&at_14).await;
    assert!(problems.is_empty(), "promtool check metrics found problems: {problems:#?}\n{at_14}");

    let prometheus = &Prometheus::start(metrics_addr);
    eventually(
        "prometheus to scrape the daemon",
        || async move { Some((prometheus.scalar(&format!("up{{job=\"{JOB}\"}}")).await, prometheus.log())) },
        |(up, _)| *up == Some(1.0),
    )
    .await;
    prometheus.wait_series(series(&at_14).len()).await;

    // 40 more backends: the growth per backend is what 10,000 backends cost.
    d.apply_yaml(&spec("web", 50, &fixture.url())).await;
    wait_healthy(&d, "web", 50).await;
    let at_54 = eventually(
        "a last-duration gauge per backend",
        || async move { Some(scrape(url).await) },
        |t| t.matches("mcp_health_backend_last_probe_duration_seconds{").count() == 54,
    )
    .await;
    let per_backend = (series(&at_54).len() - series(&at_14).len()) / 40;
    assert_eq!(
        series(&at_54).len() - series(&at_14).len(),
        40 * 8,
        "each backend should add 8 series (5 status; last probe duration, time and interval)"
    );
    prometheus.wait_series(series(&at_54).len()).await;

    // In Prometheus: histograms per group and outcome only, a gauge per backend.
    let count = |promql: String| async move { prometheus.scalar(&promql).await };
    assert_eq!(
        count(format!("count(mcp_health_backend_last_probe_duration_seconds{{job=\"{JOB}\"}})")).await,
        Some(54.0)
    );
    assert_eq!(
        count(format!("count(mcp_health_probe_duration_seconds_count{{job=\"{JOB}\"}})")).await,
        Some(2.0),
        "one histogram per group (all outcomes healthy)"
    );
    let per_backend_buckets = prometheus
        .query(&format!("{{job=\"{JOB}\", __name__=~\"mcp_health_.+_bucket\", backend!=\"\"}}"))
        .await
        .expect("query");
    assert!(per_backend_buckets.is_empty(), "histogram buckets per backend: {per_backend_buckets:?}");
    let healthy = count(format!("sum(mcp_health_backend_status{{job=\"{JOB}\", status=\"healthy\"}})")).await;
    assert_eq!(healthy, Some(54.0));
    let problems = promtool(&at_54).await;
    assert!(problems.is_empty(), "promtool check metrics found problems: {problems:#?}");

    let fixed = series(&at_54).len() - 54 * per_backend;
    eprintln!(
        "series: {} at 14 backends in 2 groups, {} at 54; {per_backend} per backend, {fixed} fixed (2 groups); \
         at 10,000 backends in 2 groups: {}",
        series(&at_14).len(),
        series(&at_54).len(),
        fixed + 10_000 * per_backend
    );
    d.stop().await;
}
