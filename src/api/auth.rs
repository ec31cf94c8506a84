//! The admin guard: who may call the mutating RPCs (ApplyGroup, DeleteGroup,
//! ProbeBackend). A bearer token from `--admin-token-file` (compared in
//! constant time) and/or a client certificate verified against
//! `--tls-client-ca`. Read RPCs and grpc.health never pass through it.

use std::path::Path;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the admin token file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the admin token file {path} is empty")]
    Empty { path: String },
    #[error("the admin token in {path} is not a valid header value (printable ASCII, no spaces)")]
    Malformed { path: String },
}

/// The admin token. Its Debug output never shows the secret.
#[derive(Clone)]
pub struct AdminToken(Vec<u8>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Reads a token file; surrounding whitespace (a trailing newline) is ignored.
    pub fn from_file(path: &Path) -> Result<AdminToken, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AuthError::Empty {
                path: path.display().to_string(),
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::Malformed {
                path: path.display().to_string(),
            });
        }
        Ok(AdminToken(token.as_bytes().to_vec()))
    }

    /// Whether `candidate` is the token. Constant time in the content; only
    /// the length can be learned from timing, which tokens of a fixed length hide.
    fn matches(&self, candidate: &[u8]) -> bool {
        self.0.ct_eq(candidate).into()
    }
}

/// What a caller of a mutating RPC must present.
#[derive(Clone, Debug, Default)]
pub struct AdminGuard {
    token: Option<AdminToken>,
    require_client_cert: bool,
}

impl AdminGuard {
    pub fn new(token: Option<AdminToken>, require_client_cert: bool) -> AdminGuard {
        AdminGuard { token, require_client_cert }
    }

    /// Whether anything protects the mutating RPCs.
    pub fn protects(&self) -> bool {
        self.token.is_some() || self.require_client_cert
    }

    /// Admits or refuses a call of the mutating RPC `rpc` with UNAUTHENTICATED.
    /// Messages never echo what the caller sent.
    pub fn check<T>(&self, req: &Request<T>, rpc: &str) -> Result<(), Status> {
        if self.require_client_cert && req.peer_certs().is_none_or(|c| c.is_empty()) {
            return Err(Status::unauthenticated(format!(
                "{rpc} needs a client certificate signed by the daemon's --tls-client-ca"
            )));
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        let Some(value) = req.metadata().get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "{rpc} needs the admin token: send metadata \"authorization: Bearer <token>\""
            )));
        };
        let presented = value.as_bytes();
        let credentials = match presented.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => presented[7..].trim_ascii(),
            _ => {
                return Err(Status::unauthenticated(format!(
                    "{rpc} needs the admin token as \"authorization: Bearer <token>\""
                )));
            }
        };
        if token.matches(credentials) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!("{rpc}: the admin token is not valid")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: &str) -> AdminGuard {
        AdminGuard::new(Some(AdminToken(token.as_bytes().to_vec())), false)
    }

    fn request(auth: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(a) = auth {
            req.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        req
    }

    #[test]
    fn token_checks() {
        let g = guard("s3cret-token");
        assert!(g.check(&request(Some("Bearer s3cret-token")), "ApplyGroup").is_ok());
        assert!(g.check(&request(Some("bearer s3cret-token")), "ApplyGroup").is_ok());
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
            Some("Bearer "),
        ] {
            let err = g.check(&request(bad), "ApplyGroup").unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(!err.message().contains("s3cret"), "the token leaked: {}", err.message());
        }
        assert!(AdminGuard::default().check(&request(None), "ApplyGroup").is_ok());
        assert!(!AdminGuard::default().protects());
        assert!(g.protects());
    }

    #[test]
    fn client_cert_required_without_tls_is_refused() {
        let g = AdminGuard::new(None, true);
        let err = g.check(&request(None), "DeleteGroup").unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("client certificate"), "{}", err.message());
    }

    #[test]
    fn token_file_is_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let t = AdminToken::from_file(&path).unwrap();
        assert!(t.matches(b"abc123"));
        assert!(!format!("{t:?}").contains("abc123"));
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(AdminToken::from_file(&path), Err(AuthError::Empty { .. })));
        assert!(matches!(AdminToken::from_file(&dir.path().join("missing")), Err(AuthError::Read { .. })));
    }
}
