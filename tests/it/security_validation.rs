//! Validation at the API edge: INVALID_ARGUMENT with google.rpc.BadRequest
//! naming every offending field (as grpcurl shows it), configurable limits,
//! and the SSRF guard on literal link-local and metadata addresses.

use crate::common;

use std::process::Command;

use common::*;
use mcp_health::daemon::DaemonOptions;
use mcp_health::engine::EngineConfig;
use mcp_health::proto::v1::*;
use mcp_health::spec::Limits;
use tonic::Code;
use tonic_types::StatusExt;

const GRPCURL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/grpcurl");

fn limits(max_backends_per_group: usize, max_groups: usize, allow_link_local_backends: bool) -> DaemonOptions {
    DaemonOptions {
        engine: EngineConfig {
            limits: Limits {
                max_backends_per_group,
                max_groups,
                allow_link_local_backends,
            },
            ..EngineConfig::default()
        },
        ..DaemonOptions::default()
    }
}

/// The fields of the BadRequest details of an INVALID_ARGUMENT status.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad = status.get_details_bad_request().expect("google.rpc.BadRequest details");
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

#[tokio::test]
async fn grpcurl_shows_every_offending_field() {
    assert!(
        std::path::Path::new(GRPCURL).exists(),
        "{GRPCURL} is missing: run `bash scripts/setup-python.sh` to install grpcurl into .venv"
    );
    let mut d = TestDaemon::empty().await;
    let request = r#"{"spec": {
        "name": "Not_A_Label",
        "policy": {"interval": "5s", "timeout": "10s", "unhealthyThreshold": 0},
        "backends": [
            {"name": "ok", "url": "ftp://127.0.0.1/mcp"},
            {"name": "ok", "url": "http://169.254.169.254/latest/meta-data"},
            {"name": "-bad", "url": "http://[fe80::1]:8080/mcp", "protocolVersion": "1999-01-01"},
            {"name": "meta6", "url": "http://[fd00:ec2::254]/mcp"},
            {"name": "zero", "url": "http://0.0.0.0:8080/mcp"}
        ]}}"#;
    let addr = d.addr.to_string();
    // On the blocking pool: the daemon under test shares this runtime.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(GRPCURL)
            .args([
                "-plaintext",
                "-format-error",
                "-d",
                request,
                &addr,
                "mcphealth.v1.GroupHealthService/ApplyGroup",
            ])
            .output()
    })
    .await
    .unwrap()
    .expect("run grpcurl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("InvalidArgument") || text.contains("\"code\": 3"), "{text}");
    assert!(text.contains("google.rpc.BadRequest"), "grpcurl decodes the details: {text}");
    for field in [
        "spec.name",
        "spec.policy.timeout",
        "spec.policy.unhealthyThreshold",
        "spec.backends[0].url",
        "spec.backends[1].name",
        "spec.backends[1].url",
        "spec.backends[2].name",
        "spec.backends[2].url",
        "spec.backends[2].protocolVersion",
        "spec.backends[3].url",
        "spec.backends[4].url",
    ] {
        let named = [format!("\"field\":\"{field}\""), format!("\"field\": \"{field}\"")]
            .iter()
            .any(|f| text.contains(f.as_str()));
        assert!(named, "grpcurl output does not name {field}:\n{text}");
    }
    assert!(text.contains("--allow-link-local-backends"), "the SSRF violation says how to allow it: {text}");
    // Nothing changed.
    assert!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn link_local_and_metadata_urls_are_refused_unless_allowed() {
    let mut d = TestDaemon::empty().await;
    for url in [
        "http://169.254.169.254/",
        "http://169.254.0.1:8080/mcp",
        "http://[fe80::1%25eth0]/mcp",
        "http://[::ffff:169.254.169.254]/",
        "http://[::]:80/",
        "https://[fd00:ec2::254]/",
    ] {
        let spec = group_yaml(&format!("name: g\nbackends:\n  - name: a\n    url: \"{url}\"\n"));
        let err = d.apply_err(spec).await;
        // A URL the parser rejects outright is also a url violation.
        assert_eq!(violated_fields(&err), vec!["spec.backends[0].url"], "{url}: {err:?}");
    }
    let oauth = group_yaml(
        "name: g\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n    auth:\n      mode: AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS\n      oauth2ClientCredentials:\n        tokenUrl: http://169.254.169.254/token\n        clientId: {env: ID}\n        clientSecret: {env: SECRET}\n",
    );
    assert_eq!(
        violated_fields(&d.apply_err(oauth).await),
        vec!["spec.backends[0].auth.oauth2ClientCredentials.tokenUrl"]
    );
    d.stop().await;

    // With the explicit flag, the same URL validates (validate_only: nothing is probed).
    let mut d = TestDaemon::start(limits(1000, 1000, true)).await;
    let spec = group_yaml("name: g\nbackends:\n  - name: a\n    url: http://169.254.169.254/\n");
    let ok = d
        .client
        .apply_group(ApplyGroupRequest {
            spec: Some(spec),
            validate_only: true,
        })
        .await
        .expect("allowed");
    assert!(!ok.into_inner().changed);
    assert!(
        d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty(),
        "validate_only changed nothing"
    );
    d.stop().await;
}

#[tokio::test]
async fn size_limits_are_configurable() {
    let mut d = TestDaemon::start(limits(2, 2, false)).await;
    let three = group_yaml(
        "name: g\nbackends:\n  - {name: a, url: 'http://127.0.0.1:9/a'}\n  - {name: b, url: 'http://127.0.0.1:9/b'}\n  - {name: c, url: 'http://127.0.0.1:9/c'}\n",
    );
    let err = d.apply_err(three).await;
    assert_eq!(violated_fields(&err), vec!["spec.backends"]);
    assert!(err.message().contains("limit is 2"), "{}", err.message());

    let one = |name: &str| group_yaml(&format!("name: {name}\nbackends:\n  - {{name: a, url: 'http://127.0.0.1:9/a'}}\n"));
    d.apply(one("first")).await;
    d.apply(one("second")).await;
    let err = d.apply_err(one("third")).await;
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("limit is 2"), "{}", err.message());
    // Replacing an existing group is not a new group.
    d.apply(group_yaml("name: second\nbackends: []\n")).await;
    assert_eq!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.len(), 2);
    d.stop().await;
}

#[tokio::test]
async fn an_empty_group_with_an_invalid_policy_is_refused() {
    let mut d = TestDaemon::empty().await;
    let spec = group_yaml("name: g\npolicy: {interval: 5s, timeout: 10s, jitterPercent: 90}\nbackends: []\n");
    assert_eq!(
        violated_fields(&d.apply_err(spec).await),
        vec!["spec.policy.jitterPercent", "spec.policy.timeout"]
    );
    assert!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn a_client_secret_is_never_sent_over_plain_http_off_the_machine() {
    let mut d = TestDaemon::empty().await;
    let oauth = |token_url: &str| {
        group_yaml(&format!(
            "name: g\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n    auth:\n      mode: AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS\n      oauth2ClientCredentials:\n        tokenUrl: {token_url}\n        clientId: {{env: ID}}\n        clientSecret: {{env: SECRET}}\n"
        ))
    };
    for refused in ["http://auth.example.com/token", "http://10.0.0.7:8080/token"] {
        let err = d.apply_err(oauth(refused)).await;
        assert_eq!(
            violated_fields(&err),
            vec!["spec.backends[0].auth.oauth2ClientCredentials.tokenUrl"],
            "{refused}"
        );
        assert!(err.message().contains("https"), "{}", err.message());
    }
    for accepted in ["https://auth.example.com/token", "http://127.0.0.1:8080/token", "http://[::1]:8080/token"] {
        let ok = d
            .client
            .apply_group(ApplyGroupRequest {
                spec: Some(oauth(accepted)),
                validate_only: true,
            })
            .await;
        assert!(ok.is_ok(), "{accepted}: {ok:?}");
    }
    d.stop().await;
}
