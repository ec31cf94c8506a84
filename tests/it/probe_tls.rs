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
