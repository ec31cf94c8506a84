//! The secured surface: the admin token on mutating RPCs (reads and
//! grpc.health stay open), server TLS and mTLS, the refusal to start with
//! mutations open beyond loopback, and request limits (watch streams, message size).

use crate::common;
use crate::lifecycle_bin;

use common::pki::{ca, leaf};
use common::*;
use mcp_health::api::tls::ServerTls;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::grpc_health_v1::health_client::HealthClient;
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use rcgen::ExtendedKeyUsagePurpose;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const TOKEN: &str = "0123456789abcdef-admin-token";

fn spec(name: &str) -> GroupSpec {
    group_yaml(&format!(
        "name: {name}\npolicy:\n  interval: 3600s\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n"
    ))
}

fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

#[tokio::test]
async fn mutations_need_the_admin_token_and_reads_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        admin_token_file: Some(token_file),
        ..DaemonOptions::default()
    })
    .await;
    let c = &mut d.client;

    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
        let apply = c.apply_group(with_token(apply_request(spec("g")), token)).await.unwrap_err();
        let delete = c.delete_group(with_token(DeleteGroupRequest { group: "g".into() }, token)).await.unwrap_err();
        let probe = c
            .probe_backend(with_token(
                ProbeBackendRequest {
                    group: "g".into(),
                    backend: "a".into(),
                },
                token,
            ))
            .await
            .unwrap_err();
        let drain = c
            .set_backend_drain(with_token(
                SetBackendDrainRequest {
                    group: "g".into(),
                    backend: "a".into(),
                    drain: true,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap_err();
        for (rpc, err) in [
            ("ApplyGroup", apply),
            ("DeleteGroup", delete),
            ("ProbeBackend", probe),
            ("SetBackendDrain", drain),
        ] {
            assert_eq!(err.code(), Code::Unauthenticated, "{rpc} with {token:?}: {err:?}");
            assert!(err.message().contains(rpc), "{}", err.message());
            assert!(
                !err.message().contains(TOKEN) && !token.is_some_and(|t| err.message().contains(t)),
                "no secret in errors: {}",
                err.message()
            );
        }
    }
    assert!(
        c.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty(),
        "refused applies changed nothing"
    );

    let applied = c.apply_group(with_token(apply_request(spec("g")), Some(TOKEN))).await.unwrap().into_inner();
    assert_eq!(applied.generation, 1);
    // ProbeBackend passes the guard (its answer is whatever the probe says).
    let probed = c
        .probe_backend(with_token(
            ProbeBackendRequest {
                group: "g".into(),
                backend: "a".into(),
            },
            Some(TOKEN),
        ))
        .await;
    assert!(probed.as_ref().map_or_else(|e| e.code() != Code::Unauthenticated, |_| true), "{probed:?}");

    // Reads and grpc.health need no token.
    assert_eq!(c.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.len(), 1);
    c.get_group_health(GetGroupHealthRequest { group: "g".into() }).await.unwrap();
    c.get_config_status(GetConfigStatusRequest {}).await.unwrap();
    c.watch_group_health(WatchGroupHealthRequest { group: "g".into() })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    d.health.check(HealthCheckRequest { service: String::new() }).await.unwrap();

    c.delete_group(with_token(DeleteGroupRequest { group: "g".into() }, Some(TOKEN))).await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn a_rotated_admin_token_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        admin_token_file: Some(token_file.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let c = &mut d.client;
    c.apply_group(with_token(apply_request(spec("g")), Some(TOKEN))).await.unwrap();

    // Rotation the way Kubernetes does it: a new file renamed over the old.
    const ROTATED: &str = "rotated-admin-token-0123456789";
    let staged = dir.path().join("token.new");
    std::fs::write(&staged, ROTATED).unwrap();
    std::fs::rename(&staged, &token_file).unwrap();
    let old = c
        .delete_group(with_token(DeleteGroupRequest { group: "g".into() }, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "the old token stops working: {old:?}");
    c.delete_group(with_token(DeleteGroupRequest { group: "g".into() }, Some(ROTATED)))
        .await
        .unwrap();

    // A token file gone bad mid-run refuses mutations (UNAVAILABLE) instead
    // of opening them or accepting a stale token; reads carry on.
    std::fs::write(&token_file, "").unwrap();
    let err = c.apply_group(with_token(apply_request(spec("g")), Some(ROTATED))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("admin token file") && !err.message().contains(ROTATED),
        "{}",
        err.message()
    );
    assert!(c.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    d.stop().await;
}

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
    stranger_cert: String,
    stranger_key: String,
}

fn pki() -> Pki {
    let (ca_pem, issuer) = ca("mcp-health test ca");
    let (_, stranger_issuer) = ca("some other ca");
    let (server_cert, server_key) = leaf(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &issuer);
    let (client_cert, client_key) = leaf(&["operator"], ExtendedKeyUsagePurpose::ClientAuth, &issuer);
    let (stranger_cert, stranger_key) = leaf(&["stranger"], ExtendedKeyUsagePurpose::ClientAuth, &stranger_issuer);
    Pki {
        ca: ca_pem,
        server_cert,
        server_key,
        client_cert,
        client_key,
        stranger_cert,
        stranger_key,
    }
}

async fn tls_daemon(dir: &std::path::Path, pki: &Pki, mtls: bool) -> Daemon {
    install_crypto();
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let tls = ServerTls {
        cert: write("server.pem", &pki.server_cert),
        key: write("server.key", &pki.server_key),
        client_ca: mtls.then(|| write("ca.pem", &pki.ca)),
    };
    Daemon::start(DaemonOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
        ..DaemonOptions::default()
    })
    .await
    .expect("tls daemon starts")
}

async fn tls_channel(d: &Daemon, pki: &Pki, identity: Option<(&str, &str)>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{}", d.local_addr()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn the_server_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let d = tls_daemon(dir.path(), &pki, false).await;
    let mut client = GroupHealthServiceClient::new(tls_channel(&d, &pki, None).await.expect("tls connect"));
    client.apply_group(apply_request(spec("g"))).await.expect("loopback, no token: open");
    assert_eq!(client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.len(), 1);
    let mut health = HealthClient::new(tls_channel(&d, &pki, None).await.unwrap());
    health.check(HealthCheckRequest { service: "g".into() }).await.unwrap();

    // Plaintext gets no gRPC answer from a TLS server.
    let served = match Channel::from_shared(format!("http://{}", d.local_addr())).unwrap().connect().await {
        Err(_) => false,
        Ok(channel) => GroupHealthServiceClient::new(channel).list_groups(ListGroupsRequest {}).await.is_ok(),
    };
    assert!(!served, "plaintext was served");
    d.stop().await.unwrap();
}

#[tokio::test]
async fn mtls_guards_mutations_and_leaves_reads_open() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let d = tls_daemon(dir.path(), &pki, true).await;

    // No client certificate: reads and grpc.health work, mutations are refused.
    let mut anonymous = GroupHealthServiceClient::new(tls_channel(&d, &pki, None).await.expect("connect without a client cert"));
    anonymous.list_groups(ListGroupsRequest {}).await.expect("reads stay open");
    HealthClient::new(tls_channel(&d, &pki, None).await.unwrap())
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    let err = anonymous.apply_group(apply_request(spec("g"))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("client certificate"), "{}", err.message());
    let err = anonymous.delete_group(DeleteGroupRequest { group: "g".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A certificate from another CA fails the handshake.
    let stranger = match tls_channel(&d, &pki, Some((&pki.stranger_cert, &pki.stranger_key))).await {
        Err(_) => None,
        Ok(channel) => Some(GroupHealthServiceClient::new(channel).apply_group(apply_request(spec("g"))).await),
    };
    assert!(
        stranger.as_ref().is_none_or(|r| r.is_err()),
        "a stranger's certificate was accepted: {stranger:?}"
    );

    // The operator's certificate admits mutations.
    let mut operator = GroupHealthServiceClient::new(tls_channel(&d, &pki, Some((&pki.client_cert, &pki.client_key))).await.unwrap());
    assert_eq!(operator.apply_group(apply_request(spec("g"))).await.unwrap().into_inner().generation, 1);
    operator.delete_group(DeleteGroupRequest { group: "g".into() }).await.unwrap();
    d.stop().await.unwrap();
}

#[test]
fn the_daemon_refuses_to_start_with_mutations_open_beyond_loopback() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (status, stderr) = lifecycle_bin::run_to_exit(&["--listen", listen]);
        assert_eq!(status.code(), Some(1), "{listen}: {stderr}");
        assert!(
            stderr.contains("refusing to listen on") && stderr.contains("--admin-token-file"),
            "{listen}: {stderr}"
        );
    }
    // Loopback needs no protection.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "\n").unwrap();
    let (status, stderr) = lifecycle_bin::run_to_exit(&["--listen", "127.0.0.1:0", "--admin-token-file", token_file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("is empty"), "an empty token file is refused: {stderr}");
}

#[tokio::test]
async fn watch_streams_are_capped() {
    let mut d = TestDaemon::start(DaemonOptions {
        max_watch_streams: 2,
        ..DaemonOptions::default()
    })
    .await;
    let first = d.client.watch_group_health(WatchGroupHealthRequest::default()).await.expect("first watch");
    let _second = d.health.watch(HealthCheckRequest { service: String::new() }).await.expect("second watch");
    let err = d.client.watch_group_health(WatchGroupHealthRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("limit is 2") && err.message().contains("--max-watch-streams"),
        "{}",
        err.message()
    );
    let err = d.health.watch(HealthCheckRequest { service: String::new() }).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Unary reads are not streams and stay available.
    d.client.list_groups(ListGroupsRequest {}).await.unwrap();

    // Closing a stream frees its slot.
    drop(first);
    let client = d.client.clone();
    let _freed = eventually(
        "a slot frees up",
        || {
            let mut c = client.clone();
            async move { Some(c.watch_group_health(WatchGroupHealthRequest::default()).await.map(|_| ()).map_err(|e| e.code())) }
        },
        |r| r.is_ok(),
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn oversized_requests_get_resource_exhausted() {
    let mut d = TestDaemon::start(DaemonOptions {
        max_message_bytes: 2048,
        ..DaemonOptions::default()
    })
    .await;
    let mut big = spec("big");
    for i in 0..100 {
        big.backends.push(BackendSpec {
            name: format!("b{i}"),
            url: format!("http://127.0.0.1:9/backend-{i}"),
            ..Default::default()
        });
    }
    let err = d.apply_err(big).await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("2048") && err.message().contains("--max-message-bytes"),
        "{}",
        err.message()
    );
    assert!(d.client.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups.is_empty());
    // A request under the limit passes.
    d.apply(spec("small")).await;
    d.stop().await;
}

#[tokio::test]
async fn a_plaintext_health_listener_serves_only_grpc_health_beside_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let d = Daemon::start(DaemonOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: Some(ServerTls {
            cert: write("server.pem", &pki.server_cert),
            key: write("server.key", &pki.server_key),
            client_ca: None,
        }),
        ..DaemonOptions::default()
    })
    .await
    .expect("daemon starts");
    let health_addr = d.health_addr().expect("health listener");
    let plain = Channel::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .expect("plaintext connect");

    // Kubernetes-style plaintext Check works on the health port.
    let mut health = HealthClient::new(plain.clone());
    let status = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    // The API is not served there: mutations and reads stay behind TLS.
    let err = GroupHealthServiceClient::new(plain).list_groups(ListGroupsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    // Both listeners stop with the daemon, and a health watch sees NOT_SERVING first.
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    d.stop().await.unwrap();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::NotServing as i32);
}
