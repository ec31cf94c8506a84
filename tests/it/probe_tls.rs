//! https backends: a TLS terminator (tokio-rustls, certificates made with
//! rcgen at test time) in front of the fixture, probed with a CA file, the
//! built-in roots, `dangerousSkipVerification`, and mTLS with and without a
//! client certificate.

use crate::common;
use crate::probe_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{TestDaemon, backend, reason, status};
use mcp_fixture::{FixtureOptions, FixtureServer, OAuthClient, TOKEN_PATH};
use mcp_health::proto::v1::{BackendStatus, ReasonCode};
use probe_support::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes ca.pem, server.pem/key, client.pem/key (signed by a client CA,
/// client-ca.pem) and other-ca.pem (a CA that signed nothing).
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: String| std::fs::write(dir.path().join(name), data).unwrap();
    let server_ca = ca("mcp-health test ca");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &server_ca)
        .unwrap();
    write("ca.pem", server_ca.pem());
    write("server.pem", cert.pem());
    write("server.key", key.serialize_pem());
    let client_ca = ca("mcp-health test client ca");
    let ckey = KeyPair::generate().unwrap();
    let mut cparams = CertificateParams::new(Vec::<String>::new()).unwrap();
    cparams.distinguished_name.push(DnType::CommonName, "probe");
    let ccert = cparams.signed_by(&ckey, &client_ca).unwrap();
    write("client-ca.pem", client_ca.pem());
    write("client.pem", ccert.pem());
    write("client.key", ckey.serialize_pem());
    write("other-ca.pem", ca("someone else").pem());
    Pki { dir }
}

/// Serves TLS on 127.0.0.1 and pipes each connection to the fixture.
async fn tls_front(pki: &Pki, fixture: &FixtureServer, client_ca: Option<&Path>) -> (String, tokio::task::JoinHandle<()>) {
    install_crypto();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let builder = rustls::ServerConfig::builder();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = fixture.addr();
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (format!("https://{addr}/mcp"), task)
}

fn https(url: &str, tls: serde_json::Value) -> serde_json::Value {
    json!({"name": "b", "url": url, "tls": tls})
}

#[tokio::test]
async fn server_verification() {
    let pki = pki();
    let f = FixtureServer::start().await.unwrap();
    let (url, _front) = tls_front(&pki, &f, None).await;

    let r = probe_once(&target(https(&url, json!({"caFile": pki.path("ca.pem")})))).await;
    assert_success(&r);
    // The built-in roots do not know the test CA.
    let r = probe_once(&target(json!({"name": "b", "url": url}))).await;
    assert_failure(&r, ReasonCode::Tls);
    let r = probe_once(&target(https(&url, json!({"caFile": pki.path("other-ca.pem")})))).await;
    assert_failure(&r, ReasonCode::Tls);
    let r = probe_once(&target(https(&url, json!({"dangerousSkipVerification": true})))).await;
    assert_success(&r);
}

/// The token endpoint has its own verified client: a backend's
/// `dangerousSkipVerification` never carries the client secret to an
/// unverified endpoint, and its caFile verifies the endpoint.
#[tokio::test]
async fn the_client_secret_goes_only_to_a_verified_token_endpoint() {
    let pki = pki();
    let f = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("issued-token".into()),
        oauth_client: Some(OAuthClient {
            id: "probe".into(),
            secret: "s3cret".into(),
            expires_in: 3600,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let (url, _front) = tls_front(&pki, &f, None).await;
    let token_url = url.replace("/mcp", TOKEN_PATH);
    assert!(token_url.starts_with("https://"), "{token_url}");
    std::fs::write(pki.path("id"), "probe").unwrap();
    std::fs::write(pki.path("secret"), "s3cret").unwrap();
    let backend = |tls: serde_json::Value| {
        json!({"name": "b", "url": url, "tls": tls, "auth": {"mode": "AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS", "oauth2ClientCredentials": {
            "tokenUrl": token_url, "clientId": {"file": pki.path("id")}, "clientSecret": {"file": pki.path("secret")}}}})
    };

    // The backend itself would be reached without verification, but the token endpoint is verified.
    let r = probe_once(&target(backend(json!({"dangerousSkipVerification": true})))).await;
    assert_failure(&r, ReasonCode::CredentialsUnavailable);
    assert!(r.outcome.reason.message.contains("token endpoint"), "{}", r.outcome.reason.message);
    assert_eq!(f.stats().token_requests, 0, "the client secret reached an unverified token endpoint");
    assert_eq!(f.stats().posts, 0, "the backend is never probed without its token");

    // The backend's caFile verifies the token endpoint too.
    assert_success(&probe_once(&target(backend(json!({"caFile": pki.path("ca.pem")})))).await);
    assert_eq!(f.stats().token_requests, 1);
}

#[tokio::test]
async fn mutual_tls() {
    let pki = pki();
    let f = FixtureServer::start().await.unwrap();
    let (url, _front) = tls_front(&pki, &f, Some(&pki.path("client-ca.pem"))).await;
    let with_cert = json!({"caFile": pki.path("ca.pem"), "clientCertFile": pki.path("client.pem"), "clientKeyFile": pki.path("client.key")});
    assert_success(&probe_once(&target(https(&url, with_cert))).await);
    let r = probe_once(&target(https(&url, json!({"caFile": pki.path("ca.pem")})))).await;
    assert_failure(&r, ReasonCode::Tls);
}

#[tokio::test]
async fn daemon_reports_https_backends() {
    let pki = pki();
    let f = FixtureServer::start().await.unwrap();
    let (url, _front) = tls_front(&pki, &f, None).await;
    let mut d = TestDaemon::empty().await;
    let spec = json!({"name": "tls", "policy": {"interval": "1s", "timeout": "0.8s"}, "backends": [
        https(&url, json!({"caFile": pki.path("ca.pem")})),
        {"name": "unknown-ca", "url": url},
    ]});
    d.apply(serde_json::from_value(spec).unwrap()).await;
    let h = d
        .wait_group("tls", "verdicts on both https backends", |h| {
            h.backends.iter().all(|b| status(b) != BackendStatus::Unknown)
        })
        .await;
    assert_eq!(status(backend(&h, "b")), BackendStatus::Healthy, "{h:#?}");
    assert_eq!(
        (status(backend(&h, "unknown-ca")), reason(backend(&h, "unknown-ca"))),
        (BackendStatus::Unhealthy, ReasonCode::Tls)
    );
    d.stop().await;
}

/// A target whose clients come from `clients` (one cache, as in a daemon).
fn target_in(clients: &Arc<mcp_health::probe::ClientCache>, backend: serde_json::Value) -> mcp_health::probe::ProbeTarget {
    install_crypto();
    let spec = serde_json::from_value(json!({"name": "g", "backends": [backend]})).unwrap();
    let group = mcp_health::spec::validate_group(&spec, "spec", &Default::default()).unwrap();
    mcp_health::probe::ProbeTarget::new("g", group.backends.into_iter().next().unwrap(), clients).unwrap()
}

#[tokio::test]
async fn a_rotated_ca_or_client_certificate_at_the_same_path_is_read_again() {
    let pki = pki();
    let f = FixtureServer::start().await.unwrap();
    let (url, _front) = tls_front(&pki, &f, None).await;
    let (mtls_url, _mtls_front) = tls_front(&pki, &f, Some(&pki.path("client-ca.pem"))).await;
    let read = |name: &str| std::fs::read(pki.path(name)).unwrap();
    let clients = Arc::new(mcp_health::probe::ClientCache::default());

    // A CA file rewritten in place.
    std::fs::write(pki.path("probe-ca.pem"), read("other-ca.pem")).unwrap();
    let t = target_in(&clients, https(&url, json!({"caFile": pki.path("probe-ca.pem")})));
    assert_failure(&probe_once(&t).await, ReasonCode::Tls);
    std::fs::write(pki.path("probe-ca.pem"), read("ca.pem")).unwrap();
    assert_success(&probe_once(&t).await);
    assert_eq!(clients.len(), 1, "the client of the old CA was dropped");

    // A client certificate and key replaced by renames (as a secret mount swaps them).
    let outsider = ca("not the client ca");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(Vec::<String>::new()).unwrap().signed_by(&key, &outsider).unwrap();
    std::fs::write(pki.path("probe.pem"), cert.pem()).unwrap();
    std::fs::write(pki.path("probe.key"), key.serialize_pem()).unwrap();
    let mtls = json!({"caFile": pki.path("ca.pem"), "clientCertFile": pki.path("probe.pem"), "clientKeyFile": pki.path("probe.key")});
    let m = target_in(&clients, https(&mtls_url, mtls.clone()));
    assert!(probe_once(&m).await.outcome.class != mcp_health::core::outcome::OutcomeClass::Success);
    std::fs::write(pki.path("new.pem"), read("client.pem")).unwrap();
    std::fs::write(pki.path("new.key"), read("client.key")).unwrap();
    std::fs::rename(pki.path("new.pem"), pki.path("probe.pem")).unwrap();
    std::fs::rename(pki.path("new.key"), pki.path("probe.key")).unwrap();
    assert_success(&probe_once(&m).await);
    assert_eq!(clients.len(), 2, "t's client and m's current one");

    // Another backend with the same files shares the client; a removed one's client goes.
    let same = target_in(&clients, https(&mtls_url, mtls));
    assert_eq!(clients.len(), 2);
    assert_success(&probe_once(&same).await);
    drop((m, same));
    let _skip = target_in(&clients, https(&url, json!({"dangerousSkipVerification": true})));
    assert_eq!(clients.len(), 2, "the removed backends' client was evicted; t's is still used");

    // A CA file that disappears is a TLS failure naming it, never the old client.
    std::fs::remove_file(pki.path("probe-ca.pem")).unwrap();
    let r = probe_once(&t).await;
    assert_failure(&r, ReasonCode::Tls);
    assert!(r.outcome.reason.message.contains("caFile"), "{}", r.outcome.reason.message);
}
