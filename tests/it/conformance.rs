//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, installed with
//! its Node.js 22 in tests/interop/conformance by scripts/setup-interop.sh) with mcp-healthd
//! as the client: `tests/interop/conformance/healthd-client.sh` writes the config an
//! operator would (no `tokenUrl`), starts the daemon and exits 0 only when the backend is
//! healthy and routable; the suite checks every request it saw.

use std::path::{Path, PathBuf};
use std::process::Command;

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/conformance")
}

/// A file the setup script installs; a missing one fails with what to run.
fn installed(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: run scripts/setup-interop.sh", path.display());
    path
}

/// Runs one client scenario; its output when it did not pass.
fn run(scenario: &str) -> Result<String, String> {
    let dir = conformance_dir();
    let node_bin = installed(dir.join("node_modules/.bin"));
    let suite = installed(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"));
    let daemon = Path::new(env!("CARGO_BIN_EXE_mcp-healthd"));
    let bin_dir = daemon.parent().expect("the binaries' directory");
    // The suite writes its results/ under its working directory.
    let work = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", node_bin.display(), std::env::var("PATH").unwrap_or_default());
    let client = format!("bash {}", dir.join("healthd-client.sh").display());
    let out = Command::new(node_bin.join("node"))
        .arg(&suite)
        .args(["client", "--command", &client, "--scenario", scenario, "--timeout", "60000"])
        .current_dir(work.path())
        .env("PATH", path)
        .env("MCP_HEALTH_BIN_DIR", bin_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the conformance suite");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && text.contains("OVERALL: PASSED") {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn mcp_healthd_passes_the_conformance_client_scenarios() {
    // (scenario, a check the suite must report as passed)
    let cases = [
        ("initialize", "mcp-client-initialization"),
        // No tokenUrl in the spec: discovered from the server's metadata.
        ("auth/client-credentials-basic", "client-credentials-basic-auth"),
        ("auth/client-credentials-jwt", "client-credentials-jwt-verified"),
    ];
    for (scenario, check) in cases {
        match run(scenario) {
            Ok(text) => assert!(
                text.lines().any(|l| l.contains(&format!("[{check}")) && l.contains("SUCCESS")),
                "{scenario}: no SUCCESS for {check}:\n{text}"
            ),
            Err(text) => panic!("{scenario} did not pass:\n{text}"),
        }
    }
}
