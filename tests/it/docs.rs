//! The documentation agrees with the binaries: every flag and environment
//! variable `mcp-healthd --help` shows is in README's flag table, the help
//! texts name every guarded RPC, and boolean variables take the usual
//! spellings.

use crate::lifecycle_bin;

use std::process::Command;

fn help(bin: &str) -> String {
    let out = Command::new(bin).arg("--help").output().expect("run --help");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// README's flag table: the lines of the table under "### Flags".
fn readme_flag_table() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Flags\n").nth(1).expect("a Flags section");
    let section = section.split("\n#").next().unwrap();
    section.lines().filter(|l| l.starts_with('|')).collect::<Vec<_>>().join("\n")
}

/// The help paragraph of one flag: its line and the lines up to the next flag.
fn flag_help(help: &str, flag: &str) -> String {
    let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines.next().unwrap_or_else(|| panic!("{flag} in --help:\n{help}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.trim_start().starts_with('-')))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_flag_table_has_every_flag_and_variable_of_help() {
    let help = help(env!("CARGO_BIN_EXE_mcp-healthd"));
    let table = readme_flag_table();
    let flags: Vec<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--") && w.len() > 2 && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .filter(|w| !["--help", "--version"].contains(w))
        .collect();
    let vars: Vec<&str> = help
        .match_indices("[env: ")
        .map(|(i, _)| help[i + 6..].split(['=', ']']).next().unwrap())
        .collect();
    assert!(
        flags.contains(&"--otel-service-name") && vars.contains(&"MCP_HEALTH_XDS"),
        "parsed: {flags:?} {vars:?}"
    );
    let missing_flags: Vec<_> = flags
        .iter()
        .filter(|f| !table.contains(&format!("`{f}`")) && !table.contains(&format!("`{f} ")))
        .collect();
    let missing_vars: Vec<_> = vars.iter().filter(|v| !table.contains(&format!("`{v}`"))).collect();
    assert!(
        missing_flags.is_empty() && missing_vars.is_empty(),
        "README's flag table lacks flags {missing_flags:?} and variables {missing_vars:?}"
    );
    // MCP_HEALTH_LOG (the filter) is not a flag, but --help says it exists.
    assert!(help.replace("MCP_HEALTH_LOG_FORMAT", "").contains("MCP_HEALTH_LOG"), "{help}");
}

#[test]
fn help_texts_and_the_exposure_error_name_set_backend_drain() {
    let daemon = help(env!("CARGO_BIN_EXE_mcp-healthd"));
    for flag in ["--admin-token-file", "--insecure-allow-open-mutations"] {
        let text = flag_help(&daemon, flag);
        assert!(text.contains("SetBackendDrain"), "{flag}: {text}");
    }
    let ctl = help(env!("CARGO_BIN_EXE_mcp-healthctl"));
    let text = flag_help(&ctl, "--token-file");
    assert!(text.contains("drain"), "--token-file: {text}");

    let (status, stderr) = lifecycle_bin::run_to_exit(&["--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(stderr.contains("refusing to listen") && stderr.contains("SetBackendDrain"), "{stderr}");
}

/// The services server reflection lists (what `grpcurl list` prints).
async fn reflected_services(addr: std::net::SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    match replies.message().await.expect("a reply").and_then(|r| r.message_response) {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("not a service list: {other:?}"),
    }
}

/// `MCP_HEALTH_XDS=1` turns xDS on, says so at start-up and lists the xDS
/// services in reflection; `=off` leaves it off.
#[tokio::test]
async fn boolean_variables_take_the_usual_spellings_and_xds_says_it_is_on() {
    const ADS: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
    const EDS: &str = "envoy.service.endpoint.v3.EndpointDiscoveryService";
    let xds_line = |d: &lifecycle_bin::Daemon| d.log.iter().any(|l| l.contains("xDS on (--xds)"));
    for (value, on) in [("1", true), ("yes", true), ("on", true), ("true", true), ("0", false), ("off", false)] {
        let d = tokio::task::spawn_blocking(move || lifecycle_bin::Daemon::spawn_with_env(&[], &[("MCP_HEALTH_XDS", value)]))
            .await
            .unwrap();
        assert_eq!(xds_line(&d), on, "MCP_HEALTH_XDS={value}: {:?}", d.log);
        let services = reflected_services(d.addr).await;
        assert!(services.iter().any(|s| s == "mcphealth.v1.GroupHealthService"), "{services:?}");
        assert_eq!(
            (services.iter().any(|s| s == ADS), services.iter().any(|s| s == EDS)),
            (on, on),
            "MCP_HEALTH_XDS={value}: {services:?}"
        );
    }
}

/// The normal (non-dev, non-build) dependencies of one workspace crate, by
/// crate name, as `cargo tree` resolves them from Cargo.lock.
fn dependency_names(package: &str) -> std::collections::BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').next().map(str::to_owned))
        .collect()
}

/// ARCHITECTURE.md "Crates": the layers the compiler keeps apart. The core
/// depends on no runtime, and nothing below the edges links tonic or axum.
#[test]
fn the_crate_layers_hold() {
    const RUNTIME: &[&str] = &["tokio", "tonic", "hyper", "reqwest", "axum", "mio"];
    let core = dependency_names("mcp-health-core");
    assert!(core.contains("mcp-health-proto") && core.contains("prost"), "{core:?}");
    let runtime: Vec<&&str> = RUNTIME.iter().filter(|c| core.contains(**c)).collect();
    assert!(runtime.is_empty(), "the core depends on {runtime:?}");
    for below_the_edges in ["mcp-health-probe", "mcp-health-engine"] {
        let deps = dependency_names(below_the_edges);
        assert!(deps.contains("mcp-health-core") && deps.contains("tokio"), "{below_the_edges}: {deps:?}");
        for edge_only in ["tonic", "axum", "mcp-health-edges", "mcp-health-cluster"] {
            assert!(!deps.contains(edge_only), "{below_the_edges} depends on {edge_only}");
        }
    }
    let cluster = dependency_names("mcp-health-cluster");
    assert!(cluster.contains("mcp-health-engine") && !cluster.contains("mcp-health-edges"), "{cluster:?}");
}

/// The body of `fn name` in `file` (from its signature to the first line that
/// closes it at the signature's indentation).
fn fn_body(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = text.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("{file} has no fn {name}"));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..start].chars().take_while(|c| *c == ' ').collect::<String>();
    let close = format!("\n{indent}}}\n");
    let end = text[start..].find(&close).map(|i| start + i + close.len()).unwrap();
    text[start..end].to_owned()
}

/// Adding a `BackendStatus` variant must fail to compile in every edge that
/// shows or maps a status: each of these matches names every variant and has
/// no catch-all arm (`_ =>` or a bare binding), so the compiler, not a
/// reviewer, finds the edge that forgot it. Guards (`_ if draining =>`) do not
/// count toward exhaustiveness, so they are allowed.
#[test]
fn every_status_match_at_the_edges_is_exhaustive_without_a_catch_all() {
    use mcp_health::proto::v1::BackendStatus;
    let variants: Vec<String> = (0..).map_while(|i| BackendStatus::try_from(i).ok()).map(|s| format!("{s:?}")).collect();
    assert_eq!(variants.len(), 6, "{variants:?}");
    // An arm whose pattern is `_` or a lowercase binding, with no guard.
    let catch_all = |body: &str| {
        body.lines()
            .map(str::trim)
            .find(|l| {
                l.split_once("=>").is_some_and(|(pattern, _)| {
                    let p = pattern.trim();
                    !p.is_empty() && p.chars().all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit())
                })
            })
            .map(str::to_owned)
    };
    for (file, function) in [
        ("crates/edges/src/ui/model.rs", "shown"),
        ("crates/edges/src/xds/mapping.rs", "endpoint_health"),
        ("crates/edges/src/metrics/mod.rs", "status_label"),
        ("src/cli/render.rs", "status"),
    ] {
        let body = fn_body(file, function);
        assert!(body.contains("match "), "{file} {function}: no match\n{body}");
        for v in &variants {
            assert!(
                body.contains(&format!("::{v}")) || body.contains(&format!("S::{v}")),
                "{file} {function} does not name {v}"
            );
        }
        assert_eq!(catch_all(&body), None, "{file} {function} has a catch-all arm");
    }
}
