//! OpenTelemetry export (feature `otel`): the real `mcp-healthd` binary sends
//! its probe spans to a fake OTLP/gRPC collector on loopback, with the fields
//! operators filter on and without the backend's secret; spans still buffered
//! at SIGTERM are flushed before exit.

#[path = "it/common/mod.rs"]
mod common;
#[path = "it/lifecycle_bin/mod.rs"]
mod lifecycle_bin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::eventually;
use lifecycle_bin::Daemon;
use mcp_fixture::{Behavior, FixtureServer};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use rcgen::ExtendedKeyUsagePurpose;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

const SECRET: &str = "otel-export-secret-5f2a9c";

/// Every export request the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(&self, req: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(req.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The collector's TLS identity: certificate and key PEM.
struct ServerIdentity {
    cert: String,
    key: String,
}

impl Collector {
    /// Serves on 127.0.0.1:0, over TLS with `tls`; returns the endpoint URL.
    async fn start(&self, tls: Option<&ServerIdentity>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        let mut server = tonic::transport::Server::builder();
        if let Some(id) = tls {
            let config = ServerTlsConfig::new().identity(Identity::from_pem(&id.cert, &id.key));
            server = server.tls_config(config).unwrap();
        }
        tokio::spawn(server.add_service(service).serve_with_incoming(TcpListenerStream::new(listener)));
        format!("{}://{addr}", if tls.is_some() { "https" } else { "http" })
    }

    /// The `probe` spans received so far, as attribute maps, with their service.name.
    fn probe_spans(&self) -> Vec<BTreeMap<String, String>> {
        let requests = self.0.lock().unwrap();
        let mut spans = Vec::new();
        for rs in requests.iter().flat_map(|r| &r.resource_spans) {
            let service = rs.resource.as_ref().map(|r| text(&r.attributes, "service.name")).unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans).filter(|s| s.name == "probe") {
                let mut fields: BTreeMap<String, String> = span.attributes.iter().map(|kv| (kv.key.clone(), value(kv))).collect();
                fields.insert("service.name".into(), service.clone());
                spans.push(fields);
            }
        }
        spans
    }

    /// Every byte the collector received, re-encoded.
    fn raw(&self) -> Vec<u8> {
        self.0.lock().unwrap().iter().flat_map(|r| r.encode_to_vec()).collect()
    }
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    attributes.iter().find(|kv| kv.key == key).map(value).unwrap_or_default()
}

fn spans_of<'a>(spans: &'a [BTreeMap<String, String>], backend: &str) -> Vec<&'a BTreeMap<String, String>> {
    spans.iter().filter(|s| s.get("backend").map(String::as_str) == Some(backend)).collect()
}

/// A config file with group `traced`: a STATIC_HEADER backend whose secret is
/// [`SECRET`], and a PER_USER backend answering 401.
fn write_config(dir: &tempfile::TempDir, healthy: &FixtureServer, oauth: &FixtureServer) -> std::path::PathBuf {
    let secret_file = dir.path().join("token");
    std::fs::write(&secret_file, SECRET).unwrap();
    let config = dir.path().join("groups.yaml");
    std::fs::write(
        &config,
        format!(
            r#"groups:
  - name: traced
    policy: {{interval: 1s, timeout: 0.5s}}
    backends:
      - name: with-secret
        url: {healthy}
        auth:
          mode: AUTH_MODE_STATIC_HEADER
          staticHeader: {{header: Authorization, valuePrefix: "Bearer ", value: {{file: {file}}}}}
      - name: per-user
        url: {oauth}
        auth: {{mode: AUTH_MODE_PER_USER}}
"#,
            healthy = healthy.url(),
            oauth = oauth.url(),
            file = secret_file.display(),
        ),
    )
    .unwrap();
    config
}

/// A collector, two fixture backends and the daemon exporting to the collector.
struct Setup {
    collector: Collector,
    healthy: FixtureServer,
    oauth: FixtureServer,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

/// With `tls`, the collector serves https with a certificate from a test CA
/// that the daemon gets as `--otlp-ca-cert`.
async fn setup(oauth_behavior: Behavior, tls: bool, env: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::default();
    let mut args = Vec::new();
    let endpoint = if tls {
        let (ca_pem, issuer) = common::pki::ca("otlp test ca");
        let (cert, key) = common::pki::leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &issuer);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        args.extend(["--otlp-ca-cert".to_owned(), ca_file.display().to_string()]);
        collector.start(Some(&ServerIdentity { cert, key })).await
    } else {
        collector.start(None).await
    };
    let healthy = FixtureServer::start().await.unwrap();
    let oauth = FixtureServer::start().await.unwrap();
    oauth.set_behavior(oauth_behavior);
    let config = write_config(&dir, &healthy, &oauth);
    args.extend(["--config".to_owned(), config.display().to_string(), "--otlp-endpoint".to_owned(), endpoint]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Daemon::spawn_with_env(&args, env);
    Setup {
        collector,
        healthy,
        oauth,
        daemon,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_spans_reach_an_otlp_collector_without_secrets() {
    // Every part is bound: a dropped fixture server would stop answering.
    let Setup {
        collector,
        healthy,
        oauth: _oauth,
        daemon,
        _dir,
    } = setup(
        Behavior::Unauthorized { resource_metadata: false },
        false,
        // Export every 100 ms rather than the SDK's 5 s default, to keep the test short.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100"), ("OTEL_SERVICE_NAME", "mcp-healthd-under-test")],
    )
    .await;

    // Spans arrive while the daemon runs, one per probe, with their fields.
    let spans = eventually(
        "probe spans of both backends at the collector",
        || async { Some(collector.probe_spans()) },
        |spans| !spans_of(spans, "with-secret").is_empty() && !spans_of(spans, "per-user").is_empty(),
    )
    .await;
    let with_secret = spans_of(&spans, "with-secret")[0];
    for (key, want) in [
        ("service.name", "mcp-healthd-under-test"),
        ("group", "traced"),
        ("transport", "streamable_http"),
        ("probe_type", "authenticated"),
        ("outcome", "healthy"),
        ("reason", "REASON_CODE_OK"),
        ("revision", "2025-11-25"),
    ] {
        assert_eq!(with_secret.get(key).map(String::as_str), Some(want), "{key} in {with_secret:#?}");
    }
    let per_user = spans_of(&spans, "per-user")[0];
    for (key, want) in [
        ("probe_type", "unauthenticated_liveness"),
        ("outcome", "auth"),
        ("reason", "REASON_CODE_AUTH_REQUIRED"),
    ] {
        assert_eq!(per_user.get(key).map(String::as_str), Some(want), "{key} in {per_user:#?}");
    }
    assert!(healthy.stats().initialize > 0, "the spans come from real probes");

    let status = daemon.stop().await;
    assert!(status.success(), "{status:?}");
    let raw = collector.raw();
    assert!(!raw.is_empty());
    assert!(
        !raw.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the static header's secret reached the collector"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_buffered_at_sigterm_are_flushed_before_exit() {
    // A batch delay far longer than the test: only the shutdown flush can export.
    let Setup {
        collector,
        healthy,
        oauth,
        daemon,
        _dir,
    } = setup(Behavior::Healthy, false, &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]).await;
    eventually(
        "a probe of each backend",
        || async { Some((healthy.stats().initialize, oauth.stats().initialize)) },
        |&(a, b)| a > 0 && b > 0,
    )
    .await;
    assert!(collector.probe_spans().is_empty(), "nothing is exported before the batch delay");
    let status = daemon.stop().await;
    assert!(status.success(), "{status:?}");
    let spans = collector.probe_spans();
    assert!(
        !spans_of(&spans, "with-secret").is_empty() && !spans_of(&spans, "per-user").is_empty(),
        "{spans:#?}"
    );
    assert!(spans.iter().all(|s| s["service.name"] == "mcp-healthd"), "the default service.name: {spans:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_verified_with_a_ca_file() {
    let Setup {
        collector,
        healthy: _healthy,
        oauth: _oauth,
        daemon,
        _dir,
    } = setup(Behavior::Healthy, true, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let spans = eventually(
        "probe spans at the https collector",
        || async { Some(collector.probe_spans()) },
        |spans| !spans_of(spans, "with-secret").is_empty(),
    )
    .await;
    assert_eq!(spans_of(&spans, "with-secret")[0]["outcome"], "healthy");
    let status = daemon.stop().await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_unreadable_otlp_ca_file_is_refused_at_start() {
    let (status, stderr) = lifecycle_bin::run_to_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--otlp-endpoint",
        "https://127.0.0.1:4317",
        "--otlp-ca-cert",
        "/nonexistent/otlp-ca.pem",
    ]);
    assert!(!status.success());
    assert!(stderr.contains("cannot read --otlp-ca-cert /nonexistent/otlp-ca.pem"), "{stderr}");
}

#[test]
fn an_otlp_endpoint_that_is_not_http_or_https_is_refused_at_start() {
    let (status, stderr) = lifecycle_bin::run_to_exit(&["--listen", "127.0.0.1:0", "--otlp-endpoint", "grpcs://collector.invalid:4317"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--otlp-endpoint grpcs://collector.invalid:4317") && stderr.contains("http://"),
        "{stderr}"
    );
}
