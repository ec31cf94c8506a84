//! Classification of transport errors and HTTP statuses into reason codes,
//! with messages we write ourselves (never a body, never a header value).

use std::error::Error as _;

use crate::core::outcome::Reason;
use crate::proto::v1::ReasonCode;

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

/// Classifies a failed request by walking the error's source chain.
pub fn transport_error(err: &reqwest::Error) -> Reason {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut dns = false;
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
        if let Some(refused) = e.downcast_ref::<super::ssrf::Refused>() {
            return Reason::new(ReasonCode::Dns, refused.to_string());
        }
        if let Some(failed) = e.downcast_ref::<super::dns::DnsFailed>() {
            return Reason::new(ReasonCode::Dns, failed.to_string());
        }
        // hyper-util's resolver error type is private; its message is stable.
        if e.to_string().starts_with("dns error") {
            dns = true;
        }
        source = e.source();
    }
    if dns {
        return Reason::new(ReasonCode::Dns, "dns lookup failed");
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
