//! An MCP server built with the official Rust SDK, `rmcp`, served over
//! Streamable HTTP the way its examples do (axum, `StreamableHttpService`,
//! `LocalSessionManager`), for the interop matrix (tests/it/interop_matrix.rs).
//!
//! `interop-rmcp [--port N] [--stateless]`: binds 127.0.0.1:N (0: the OS
//! picks), prints `{"url": "http://127.0.0.1:P/mcp"}` once listening, and
//! exits when stdin reaches EOF or on SIGTERM/ctrl-c. By default sessions are
//! on (`legacy_session_mode`, with SSE priming events); `--stateless` turns
//! them off. Tools: `sum` and `echo`.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_router};
use tokio::io::AsyncReadExt;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SumRequest {
    a: i64,
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoRequest {
    text: String,
}

#[derive(Debug, Clone)]
struct Interop;

#[tool_router(server_handler)]
impl Interop {
    #[tool(description = "Add two integers")]
    fn sum(&self, Parameters(SumRequest { a, b }): Parameters<SumRequest>) -> String {
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Echo the given text back")]
    fn echo(&self, Parameters(EchoRequest { text }): Parameters<EchoRequest>) -> String {
        text
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut port = 0u16;
    let mut stateless = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| std::io::Error::other("--port needs a number"))?
            }
            "--stateless" => stateless = true,
            other => return Err(std::io::Error::other(format!("unknown argument {other}"))),
        }
    }
    let ct = tokio_util::sync::CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!stateless)
        .with_cancellation_token(ct.child_token());
    let service = StreamableHttpService::new(|| Ok(Interop), LocalSessionManager::default().into(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("{}", serde_json::json!({"url": format!("http://{addr}/mcp")}));
    let stop = async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        let eof = async { while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {} };
        tokio::select! {
            _ = eof => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        ct.cancel();
    };
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}
