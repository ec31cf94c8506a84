//! The admin guard: who may call the mutating RPCs (ApplyGroup, DeleteGroup,
//! ProbeBackend, SetBackendDrain, AcceptCatalog, ReportOutcomes). A bearer token from `--admin-token-file` (compared in
//! constant time) and/or a client certificate verified against
//! `--tls-client-ca`. Read RPCs and grpc.health never pass through it.

use std::io::Read;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use tokio::io::AsyncReadExt;
use tonic::{Request, Status};
use tracing::warn;

/// A token file larger than this is refused: tokens are short, and the read
/// happens on every mutating call.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the admin token file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the admin token file {path} is empty")]
    Empty { path: String },
    #[error("the admin token in {path} is not a valid header value (printable ASCII, no spaces)")]
    Malformed { path: String },
    #[error("the admin token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes")]
    TooLarge { path: String },
}

fn read_error(path: &Path, e: std::io::Error) -> AuthError {
    AuthError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
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
    /// Reads a token file; surrounding whitespace (a trailing newline) is
    /// ignored. Blocking: for start-up and tests; calls use [`AdminToken::read`].
    pub fn from_file(path: &Path) -> Result<AdminToken, AuthError> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| read_error(path, e))?;
        AdminToken::parse(path, &bytes)
    }

    /// [`AdminToken::from_file`] off the async worker threads (tokio::fs).
    pub async fn read(path: &Path) -> Result<AdminToken, AuthError> {
        let mut bytes = Vec::new();
        let file = tokio::fs::File::open(path).await.map_err(|e| read_error(path, e))?;
        file.take(MAX_TOKEN_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| read_error(path, e))?;
        AdminToken::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<AdminToken, AuthError> {
        let shown = || path.display().to_string();
        if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return Err(AuthError::TooLarge { path: shown() });
        }
        let token = bytes.trim_ascii();
        if token.is_empty() {
            return Err(AuthError::Empty { path: shown() });
        }
        if !token.iter().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::Malformed { path: shown() });
        }
        Ok(AdminToken(token.to_vec()))
    }

    /// Whether `candidate` is the token. Constant time in the content; only
    /// the length can be learned from timing, which tokens of a fixed length hide.
    fn matches(&self, candidate: &[u8]) -> bool {
        self.0.ct_eq(candidate).into()
    }
}

/// `--admin-token-file`, read afresh at every mutating call: a rotated token
/// (a rewritten file, or a Kubernetes Secret's symlink swap) takes effect at
/// the next call and the old one stops working, with no restart and no
/// watcher to fall behind. Mutating calls are rare, so the read is cheap.
#[derive(Clone, Debug)]
pub struct AdminTokenFile {
    path: PathBuf,
}

impl AdminTokenFile {
    /// Checks the file once, so a daemon with an unusable token never starts.
    pub fn open(path: &Path) -> Result<AdminTokenFile, AuthError> {
        AdminToken::from_file(path)?;
        Ok(AdminTokenFile { path: path.to_owned() })
    }

    async fn current(&self) -> Result<AdminToken, AuthError> {
        AdminToken::read(&self.path).await
    }
}

/// What a caller of a mutating RPC must present.
#[derive(Clone, Debug, Default)]
pub struct AdminGuard {
    token: Option<AdminTokenFile>,
    require_client_cert: bool,
}

impl AdminGuard {
    pub fn new(token: Option<AdminTokenFile>, require_client_cert: bool) -> AdminGuard {
        AdminGuard { token, require_client_cert }
    }

    /// Whether anything protects the mutating RPCs.
    pub fn protects(&self) -> bool {
        self.token.is_some() || self.require_client_cert
    }

    /// Admits or refuses a call of the mutating RPC `rpc` with UNAUTHENTICATED.
    /// Messages never echo what the caller sent. The token file is read
    /// with tokio::fs, never blocking the worker that serves the call.
    pub async fn check<T>(&self, req: &Request<T>, rpc: &str) -> Result<(), Status> {
        if self.require_client_cert && req.peer_certs().is_none_or(|c| c.is_empty()) {
            return Err(Status::unauthenticated(format!(
                "{rpc} needs a client certificate signed by the daemon's --tls-client-ca"
            )));
        }
        let Some(token_file) = &self.token else {
            return Ok(());
        };
        // Fail closed: a token file that went missing or bad mid-run refuses
        // every mutation rather than falling back to an old token.
        let token = token_file.current().await.map_err(|e| {
            warn!(rpc, error = %e, "refusing a mutating call: the admin token file is unusable");
            Status::unavailable(format!("{rpc}: the daemon cannot read its admin token file; see the daemon's log"))
        })?;
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

    /// A guard over a token file holding `token`; the directory lives as long as the guard is used.
    fn guard(token: &str) -> (tempfile::TempDir, PathBuf, AdminGuard) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, token).unwrap();
        let file = AdminTokenFile::open(&path).unwrap();
        (dir, path, AdminGuard::new(Some(file), false))
    }

    fn request(auth: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(a) = auth {
            req.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        req
    }

    #[tokio::test]
    async fn token_checks() {
        let (_dir, _, g) = guard("s3cret-token");
        assert!(g.check(&request(Some("Bearer s3cret-token")), "ApplyGroup").await.is_ok());
        assert!(g.check(&request(Some("bearer s3cret-token")), "ApplyGroup").await.is_ok());
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
            Some("Bearer "),
        ] {
            let err = g.check(&request(bad), "ApplyGroup").await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(!err.message().contains("s3cret"), "the token leaked: {}", err.message());
        }
        assert!(AdminGuard::default().check(&request(None), "ApplyGroup").await.is_ok());
        assert!(!AdminGuard::default().protects());
        assert!(g.protects());
    }

    #[tokio::test]
    async fn client_cert_required_without_tls_is_refused() {
        let g = AdminGuard::new(None, true);
        let err = g.check(&request(None), "DeleteGroup").await.unwrap_err();
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
        std::fs::write(&path, "a b").unwrap();
        assert!(matches!(AdminToken::from_file(&path), Err(AuthError::Malformed { .. })));
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        assert!(matches!(AdminToken::from_file(&path), Err(AuthError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn a_rotated_token_takes_effect_at_the_next_call() {
        let (_dir, path, g) = guard("old-token");
        assert!(g.check(&request(Some("Bearer old-token")), "ApplyGroup").await.is_ok());
        std::fs::write(&path, "new-token\n").unwrap();
        let err = g.check(&request(Some("Bearer old-token")), "ApplyGroup").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(g.check(&request(Some("Bearer new-token")), "ApplyGroup").await.is_ok());
    }

    #[tokio::test]
    async fn an_unusable_token_file_fails_closed() {
        let (_dir, path, g) = guard("the-token");
        for broken in ["", "two words"] {
            std::fs::write(&path, broken).unwrap();
            let err = g.check(&request(Some("Bearer the-token")), "DeleteGroup").await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unavailable, "{broken:?}");
            assert!(
                err.message().contains("DeleteGroup") && !err.message().contains("the-token"),
                "{}",
                err.message()
            );
        }
        std::fs::remove_file(&path).unwrap();
        let err = g.check(&request(Some("Bearer the-token")), "DeleteGroup").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        std::fs::write(&path, "the-token").unwrap();
        assert!(g.check(&request(Some("Bearer the-token")), "DeleteGroup").await.is_ok());
    }
}
