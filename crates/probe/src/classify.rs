//! Classification of transport errors and HTTP statuses into reason codes,
//! with messages we write ourselves (never a body, never a header value).

use std::error::Error as _;

use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

/// A rustls error wrapped in (possibly nested) io errors. `io::Error::source`
/// skips the wrapped error itself, so the chain walk alone misses it: hyper's
/// TLS connector wraps rustls' `InvalidData` io error in an `Other` one.
fn rustls_inside(io: &std::io::Error) -> Option<&rustls::Error> {
    let mut inner = io.get_ref()?;
    for _ in 0..4 {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}

/// Classifies a failed request by the types in the error's source chain,
/// never by its text. Every probe client resolves through `dns::DnsResolver`,
/// so a failed or refused lookup carries our own `DnsFailed` or `ssrf::Refused`
/// (hyper-util wraps it in its private "dns error", which we never read).
pub fn transport_error(err: &reqwest::Error) -> Reason {
    if let Some(refused) = super::ssrf::refused_in(err) {
        return Reason::new(ReasonCode::Dns, refused.to_string());
    }
    if let Some(failed) = super::dns::failed_in(err) {
        return Reason::new(ReasonCode::Dns, failed.to_string());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Reason::new(ReasonCode::ConnectionRefused, "connection refused"),
                std::io::ErrorKind::TimedOut => return Reason::new(ReasonCode::Timeout, "connection timed out"),
                _ => {}
            }
            if let Some(inner) = rustls_inside(io) {
                return Reason::new(ReasonCode::Tls, format!("tls: {inner}"));
            }
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Reason::new(ReasonCode::Tls, format!("tls: {tls}"));
        }
        source = e.source();
    }
    if err.is_timeout() {
        return Reason::new(ReasonCode::Timeout, "timed out");
    }
    if err.is_connect() {
        return Reason::new(ReasonCode::Connection, "connection failed");
    }
    if err.is_body() || err.is_decode() {
        return Reason::new(ReasonCode::Connection, "connection closed while reading the reply");
    }
    Reason::new(ReasonCode::Connection, "request failed")
}

/// Classifies a non-2xx HTTP status. `credentials_sent` tells whether the probe
/// carried credentials of its own, which turns a 401/403 into a rejection.
pub fn http_status(status: u16, credentials_sent: bool) -> Reason {
    match status {
        401 | 403 if credentials_sent => Reason::http(
            ReasonCode::CredentialsRejected,
            status,
            format!("HTTP {status}: the probe's credentials were rejected"),
        ),
        401 | 403 => Reason::http(ReasonCode::AuthRequired, status, format!("HTTP {status}: authentication required")),
        300..=399 => Reason::http(ReasonCode::Redirect, status, format!("HTTP {status}: redirect (not followed)")),
        _ => Reason::http(ReasonCode::HttpStatus, status, format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientCache, DnsSettings};

    /// The error of one real GET through a probe client.
    async fn error_of(client: &reqwest::Client, url: &str) -> reqwest::Error {
        let request = client.get(url).timeout(std::time::Duration::from_secs(1));
        request.send().await.expect_err(url)
    }

    #[tokio::test]
    async fn transport_errors_by_their_types() {
        // Names come from a real DNS server on loopback; nothing leaves the machine.
        let dns = mcp_fixture::dnsmasq::Dnsmasq::start("169.254.169.254 metadata.test\n127.0.0.1 local.test\n", 60);
        let clients = std::sync::Arc::new(ClientCache::new(false, &DnsSettings { server: Some(dns.addr) }));
        let client = clients.client_for(None).unwrap().client();
        let plain = mcp_fixture::FixtureServer::start().await.unwrap();
        let hang = mcp_fixture::FixtureServer::start().await.unwrap();
        hang.set_behavior(mcp_fixture::Behavior::Hang);
        let closed = mcp_fixture::reserve_port();
        // A server that accepts, reads nothing and closes.
        let rude = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rude_port = rude.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = rude.accept().await {
                drop(socket);
            }
        });

        // (url, code, what the message says)
        let cases = [
            (
                "http://metadata.test/mcp".to_owned(),
                ReasonCode::Dns,
                "refused: metadata.test resolves only to link-local",
            ),
            ("http://nowhere.test/mcp".to_owned(), ReasonCode::Dns, "dns lookup of nowhere.test failed"),
            (
                format!("http://local.test:{}/mcp", closed.port()),
                ReasonCode::ConnectionRefused,
                "connection refused",
            ),
            (plain.url().replace("http://", "https://"), ReasonCode::Tls, "tls: "),
            (hang.url(), ReasonCode::Timeout, "timed out"),
            (format!("http://local.test:{rude_port}/mcp"), ReasonCode::Connection, ""),
        ];
        for (url, code, says) in cases {
            let err = error_of(&client, &url).await;
            let reason = transport_error(&err);
            assert_eq!(reason.code, code, "{url}: {reason:?} from {err:?}");
            assert!(reason.message.starts_with(says), "{url}: {:?}", reason.message);
        }
        // The typed lookups find our errors wherever they sit in the chain.
        let refused = error_of(&client, "http://metadata.test/mcp").await;
        assert_eq!(mcp_health_core::ssrf::refused_in(&refused).map(|r| r.host.as_str()), Some("metadata.test"));
        assert!(crate::dns::failed_in(&refused).is_none());
        let failed = error_of(&client, "http://nowhere.test/mcp").await;
        assert_eq!(crate::dns::failed_in(&failed).map(|f| f.host.as_str()), Some("nowhere.test"));
        assert!(mcp_health_core::ssrf::refused_in(&failed).is_none());
    }

    #[test]
    fn statuses() {
        let cases: &[(u16, bool, ReasonCode)] = &[
            (401, false, ReasonCode::AuthRequired),
            (403, false, ReasonCode::AuthRequired),
            (401, true, ReasonCode::CredentialsRejected),
            (403, true, ReasonCode::CredentialsRejected),
            (301, false, ReasonCode::Redirect),
            (307, true, ReasonCode::Redirect),
            (404, false, ReasonCode::HttpStatus),
            (405, false, ReasonCode::HttpStatus),
            (500, false, ReasonCode::HttpStatus),
            (503, true, ReasonCode::HttpStatus),
        ];
        for &(status, creds, want) in cases {
            let r = http_status(status, creds);
            assert_eq!((r.code, r.http_status), (want, Some(status)), "status {status} creds {creds}");
        }
    }
}
