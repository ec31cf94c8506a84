//! The daemon's logs and traces: the tracing subscriber (text or JSON logs on
//! stderr; transition lines carry the event in `message` and its text in
//! `detail`) and, with the `otel` feature, OTLP/gRPC export of the spans (one
//! `probe` span per probe).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Trace export settings.
#[derive(Clone, Debug, Default)]
pub struct TraceExport {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` or
    /// `https://collector:4317`. None: no export.
    pub otlp_endpoint: Option<String>,
    /// PEM CA bundle to verify an `https` collector with, instead of the
    /// webpki roots.
    pub otlp_ca_cert: Option<std::path::PathBuf>,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint needs a build with the `otel` feature: cargo build --release --features otel")]
    NotBuiltIn,
    #[error("--otlp-endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// Flushes exported spans when the daemon stops; a no-op without export.
#[must_use = "dropping the guard without shutdown() may lose the last spans"]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports what is still buffered and stops the exporter.
    pub async fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            // The SDK's shutdown blocks until the batch is exported.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(error = %e, "trace export did not shut down cleanly");
            }
        }
    }
}

/// Installs the global subscriber: `MCP_HEALTH_LOG` (default `info`) filters
/// both the log lines and the exported spans. Call inside the tokio runtime
/// (the OTLP exporter's channel runs on it).
pub fn init(format: LogFormat, export: &TraceExport) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_env("MCP_HEALTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal and without NO_COLOR (as mcp-healthctl
    // does): a file, a pipe or a log collector gets plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    match &export.otlp_endpoint {
        None => {
            registry.try_init().map_err(|e| TelemetryError::Install(e.to_string()))?;
            Ok(TelemetryGuard {
                #[cfg(feature = "otel")]
                provider: None,
            })
        }
        #[cfg(feature = "otel")]
        Some(endpoint) => {
            let (layer, provider) = otel::layer(endpoint, export.otlp_ca_cert.as_deref(), &export.service_name)?;
            registry.with(layer).try_init().map_err(|e| TelemetryError::Install(e.to_string()))?;
            tracing::info!(endpoint = %endpoint, "exporting spans over OTLP/gRPC");
            Ok(TelemetryGuard { provider: Some(provider) })
        }
        #[cfg(not(feature = "otel"))]
        Some(_) => Err(TelemetryError::NotBuiltIn),
    }
}

#[cfg(feature = "otel")]
mod otel {
    use std::path::Path;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tonic::transport::{Certificate, ClientTlsConfig};

    use super::TelemetryError;

    /// The tracing layer that turns spans into OTLP spans, and its provider.
    /// Sampling follows the standard `OTEL_TRACES_SAMPLER`/`_ARG` variables
    /// (every probe is a root span, so `traceidratio` thins them evenly).
    pub fn layer<S>(
        endpoint: &str,
        ca_cert: Option<&Path>,
        service_name: &str,
    ) -> Result<
        (
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
            SdkTracerProvider,
        ),
        TelemetryError,
    >
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let bad = |reason: String| TelemetryError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let url = url::Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
        let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint);
        let builder = match url.scheme() {
            "http" => builder,
            "https" => builder.with_tls_config(tls(&url, ca_cert).map_err(bad)?),
            other => return Err(bad(format!("scheme {other:?}: use http:// or https://"))),
        };
        let exporter = builder.build().map_err(|e| bad(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
            .build();
        let tracer = provider.tracer("mcp-health");
        Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
    }

    /// TLS to the collector: rustls (ring), verified against `ca_cert` or the
    /// webpki roots, for the URL's host name.
    fn tls(url: &url::Url, ca_cert: Option<&Path>) -> Result<ClientTlsConfig, String> {
        let host = url.host_str().ok_or("the URL has no host")?;
        let config = ClientTlsConfig::new().domain_name(host.trim_start_matches('[').trim_end_matches(']'));
        Ok(match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read --otlp-ca-cert {}: {e}", path.display()))?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_webpki_roots(),
        })
    }
}

// Without the feature only; with it, tests/otel_export.rs covers export.
#[cfg(all(test, not(feature = "otel")))]
mod tests {
    use super::*;

    /// Without the feature the flag is still accepted by the parser, so the
    /// operator gets this error rather than "unexpected argument".
    #[test]
    fn export_without_the_otel_feature_is_refused_with_the_fix() {
        let export = TraceExport {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            otlp_ca_cert: None,
            service_name: "mcp-healthd".into(),
        };
        let Err(err) = init(LogFormat::Text, &export) else {
            panic!("export without the otel feature was accepted");
        };
        assert!(matches!(err, TelemetryError::NotBuiltIn));
        assert!(err.to_string().contains("--features otel"), "{err}");
    }
}
