//! A thin etcd v3 client over the vendored API (tonic, client side only): the
//! KV, Watch, Lease and Auth calls the cluster needs, over every endpoint in
//! turn, with TLS, mTLS and user/password authentication.
//!
//! Why not the `etcd-client` crate: its build script compiles etcd's protos
//! with a system `protoc`, which this repository never requires (build.rs
//! uses protox). The calls we need are few and plain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::flags::ClusterOptions;
use super::keys::prefix_end;
use crate::etcd_api::etcdserverpb::{
    AuthenticateRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, auth_client::AuthClient, compare, kv_client::KvClient,
    lease_client::LeaseClient, request_op, response_op, watch_client::WatchClient, watch_request,
};
use crate::etcd_api::mvccpb::{Event, KeyValue, event::EventType};

/// Deadline of one unary call on one endpoint.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read {flag} {path}: {source}")]
    ReadFile {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid etcd endpoint {0:?}")]
    Endpoint(String),
    #[error("https etcd endpoints need --etcd-ca-cert")]
    NoCa,
    #[error("etcd tls: {0}")]
    Tls(String),
    /// Every endpoint failed, at least one in the TLS handshake: a
    /// configuration error (wrong CA, rejected client certificate), named as such.
    #[error("TLS handshake with etcd failed: {0} (check --etcd-ca-cert, --etcd-cert and --etcd-key)")]
    Handshake(String),
    /// No endpoint answered; the last error says why (never the password).
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    #[error("etcd refused the request: {0}")]
    Refused(String),
    #[error("etcd watch ended: {0}")]
    WatchEnded(String),
    #[error("etcd history compacted past revision {0}")]
    Compacted(i64),
    #[error("etcd lease {0:x} expired")]
    LeaseExpired(i64),
}

/// Adds the auth token (and, for streams, "hasleader") to every request.
#[derive(Clone)]
pub struct TokenAuth {
    token: Arc<RwLock<Option<AsciiMetadataValue>>>,
}

impl Interceptor for TokenAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // A poisoned lock still holds a plain value.
        if let Some(t) = self.token.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            req.metadata_mut().insert("token", t.clone());
        }
        // Streams (watch, keep-alive) end when their etcd member loses its
        // leader, instead of going silent on a partitioned member.
        req.metadata_mut().insert("hasleader", AsciiMetadataValue::from_static("true"));
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, TokenAuth>;

struct Inner {
    endpoints: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    auth: TokenAuth,
    user: Option<(String, String)>,
}

/// A cheap, cloneable etcd client.
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

/// Reads on tokio's blocking pool, so a slow disk never stalls the runtime.
async fn read(flag: &'static str, path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    tokio::fs::read(path).await.map_err(|source| EtcdError::ReadFile {
        flag,
        path: path.display().to_string(),
        source,
    })
}

/// The TLS error behind a failed call, if that is why it failed. tonic keeps
/// the connector's error as the status' source; rustls' error sits inside an
/// `io::Error`, whose own `source()` skips it, hence the `get_ref`.
fn tls_failure(s: &Status) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if let Some(tls) = e.downcast_ref::<rustls::Error>().or_else(|| inner?.downcast_ref::<rustls::Error>()) {
            return Some(tls.to_string());
        }
        cause = e.source();
    }
    None
}

/// Whether another endpoint (or a later attempt) may succeed.
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled | Code::Internal
    )
}

impl Etcd {
    /// Builds the channels (connected lazily) and authenticates when a user is set.
    pub async fn connect(opts: &ClusterOptions) -> Result<Etcd, EtcdError> {
        let tls = if opts.endpoints.iter().any(|e| e.starts_with("https://")) {
            let ca = opts.ca_cert.as_deref().ok_or(EtcdError::NoCa)?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--etcd-ca-cert", ca).await?));
            if let Some((cert, key)) = &opts.client_cert {
                tls = tls.identity(Identity::from_pem(read("--etcd-cert", cert).await?, read("--etcd-key", key).await?));
            }
            Some(tls)
        } else {
            None
        };
        let mut channels = Vec::new();
        for url in &opts.endpoints {
            let mut ep = Endpoint::from_shared(url.clone())
                .map_err(|_| EtcdError::Endpoint(url.clone()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(2))
                .keep_alive_while_idle(true);
            if let (Some(tls), true) = (&tls, url.starts_with("https://")) {
                ep = ep.tls_config(tls.clone()).map_err(|e| EtcdError::Tls(e.to_string()))?;
            }
            channels.push(ep.connect_lazy());
        }
        let user = match &opts.user {
            Some((name, file)) => {
                let password = String::from_utf8_lossy(&read("--etcd-password-file", file).await?)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                Some((name.clone(), password))
            }
            None => None,
        };
        let etcd = Etcd {
            inner: Arc::new(Inner {
                endpoints: opts.endpoints.clone(),
                channels,
                current: AtomicUsize::new(0),
                auth: TokenAuth {
                    token: Arc::new(RwLock::new(None)),
                },
                user,
            }),
        };
        if etcd.inner.user.is_some() {
            etcd.authenticate().await?;
        }
        Ok(etcd)
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    fn svc(&self, i: usize) -> Svc {
        InterceptedService::new(self.inner.channels[i].clone(), self.inner.auth.clone())
    }

    async fn authenticate(&self) -> Result<(), EtcdError> {
        let Some((name, password)) = self.inner.user.clone() else { return Ok(()) };
        let token = self
            .unary_no_reauth(move |svc| {
                let (name, password) = (name.clone(), password.clone());
                async move {
                    let mut c = AuthClient::new(svc);
                    c.authenticate(timed(AuthenticateRequest { name, password }))
                        .await
                        .map(|r| r.into_inner().token)
                }
            })
            .await?;
        let value = AsciiMetadataValue::try_from(token.as_str()).map_err(|_| EtcdError::Refused("etcd returned an unusable auth token".into()))?;
        *self.inner.auth.token.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    /// Runs `call` on the current endpoint, moving on to the next on errors
    /// that another endpoint may not have; each endpoint is tried once.
    async fn unary_no_reauth<T, F, Fut>(&self, call: F) -> Result<T, EtcdError>
    where
        F: Fn(Svc) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let n = self.inner.channels.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = String::new();
        let mut handshake = None;
        for k in 0..n {
            let i = (start + k) % n;
            match call(self.svc(i)).await {
                Ok(v) => {
                    self.inner.current.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(s) if retryable(&s) => {
                    last = format!("{}: {}", self.inner.endpoints[i], s.message());
                    if let Some(tls) = tls_failure(&s) {
                        handshake = Some(format!("{}: {tls}", self.inner.endpoints[i]));
                    }
                }
                Err(s) => return Err(EtcdError::Refused(format!("{:?}: {}", s.code(), s.message()))),
            }
        }
        Err(match handshake {
            Some(why) => EtcdError::Handshake(why),
            None => EtcdError::Unavailable(last),
        })
    }

    /// `unary_no_reauth`, authenticating again once if the token expired.
    async fn unary<T, F, Fut>(&self, call: F) -> Result<T, EtcdError>
    where
        F: Fn(Svc) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        match self.unary_no_reauth(&call).await {
            Err(EtcdError::Refused(m)) if self.inner.user.is_some() && m.starts_with("Unauthenticated") => {
                self.authenticate().await?;
                self.unary_no_reauth(&call).await
            }
            r => r,
        }
    }

    /// Every key under `prefix`, and the store revision they were read at.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), EtcdError> {
        let req = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        };
        self.unary(|svc| {
            let req = req.clone();
            async move {
                let r = KvClient::new(svc).range(timed(req)).await?.into_inner();
                Ok((r.kvs, r.header.map_or(0, |h| h.revision)))
            }
        })
        .await
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.unary(|svc| {
            let req = req.clone();
            async move { Ok(KvClient::new(svc).txn(timed(req)).await?.into_inner()) }
        })
        .await
    }

    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, EtcdError> {
        let r = self.txn(TxnRequest {
            success: vec![put_op(key, value, lease)],
            ..Default::default()
        });
        Ok(r.await?.header.map_or(0, |h| h.revision))
    }

    pub async fn lease_grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let req = LeaseGrantRequest {
            ttl: ttl.as_secs() as i64,
            id: 0,
        };
        self.unary(|svc| async move { Ok(LeaseClient::new(svc).lease_grant(timed(req)).await?.into_inner().id) })
            .await
    }

    /// Renews a lease once; the TTL it has now. An expired lease is an error.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let ttl = self
            .unary(|svc| async move {
                let mut stream = LeaseClient::new(svc)
                    .lease_keep_alive(timed(futures_util::stream::iter([LeaseKeepAliveRequest { id }])))
                    .await?
                    .into_inner();
                match stream.message().await? {
                    Some(r) => Ok(r.ttl),
                    None => Err(Status::unavailable("keep-alive stream closed")),
                }
            })
            .await?;
        if ttl <= 0 { Err(EtcdError::LeaseExpired(id)) } else { Ok(ttl) }
    }

    /// The remaining TTL of a lease (-1 when it no longer exists).
    pub async fn lease_time_to_live(&self, id: i64) -> Result<i64, EtcdError> {
        let req = LeaseTimeToLiveRequest { id, keys: false };
        self.unary(|svc| async move { Ok(LeaseClient::new(svc).lease_time_to_live(timed(req)).await?.into_inner().ttl) })
            .await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        let req = LeaseRevokeRequest { id };
        self.unary(|svc| async move { LeaseClient::new(svc).lease_revoke(timed(req)).await.map(drop) })
            .await
    }

    /// Watches every key under `prefix` from `start_revision` (inclusive).
    /// The stream yields each response's events with its header revision; it
    /// ends with an error when the endpoint fails or loses its leader, and
    /// the caller watches again from the last revision it saw plus one.
    pub async fn watch_prefix(&self, prefix: &str, start_revision: i64) -> Result<impl Stream<Item = Result<(i64, Vec<Event>), EtcdError>> + use<>, EtcdError> {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision,
                progress_notify: true,
                ..Default::default()
            })),
        };
        let stream = self
            .unary(|svc| {
                let create = create.clone();
                async move {
                    // The request stream stays open: closing it would end the watch.
                    let requests = futures_util::stream::iter([create]).chain(futures_util::stream::pending());
                    let mut stream = WatchClient::new(svc).watch(Request::new(requests)).await?.into_inner();
                    // Wait for "created", so a watch that returned is in place.
                    match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await {
                        Ok(Ok(Some(r))) if r.created && !r.canceled => Ok(stream),
                        Ok(Ok(Some(r))) => Err(Status::failed_precondition(format!(
                            "watch not created: {} (compacted to {})",
                            r.cancel_reason, r.compact_revision
                        ))),
                        Ok(Ok(None)) => Err(Status::unavailable("watch stream closed")),
                        Ok(Err(s)) => Err(s),
                        Err(_) => Err(Status::deadline_exceeded("watch not created in time")),
                    }
                }
            })
            .await
            .map_err(|e| match e {
                EtcdError::Refused(m) if m.contains("compacted") => EtcdError::Compacted(start_revision),
                e => e,
            })?;
        Ok(futures_util::stream::unfold(Some(stream), |state| async move {
            let mut stream = state?;
            let item = match stream.message().await {
                Ok(Some(r)) if r.canceled => {
                    if r.compact_revision > 0 {
                        Err(EtcdError::Compacted(r.compact_revision))
                    } else {
                        Err(EtcdError::WatchEnded(r.cancel_reason))
                    }
                }
                Ok(Some(r)) => return Some((Ok((r.header.map_or(0, |h| h.revision), r.events)), Some(stream))),
                Ok(None) => Err(EtcdError::WatchEnded("stream closed".into())),
                Err(s) => Err(EtcdError::WatchEnded(s.message().to_owned())),
            };
            Some((item, None))
        }))
    }
}

fn timed<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(CALL_TIMEOUT);
    r
}

pub fn put_op(key: &str, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub fn delete_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

pub fn delete_prefix_op(prefix: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        })),
    }
}

/// Reads one key (in a transaction's failure branch: why a compare failed).
pub fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// The key-values the `index`th operation of a transaction read (`get_op`);
/// empty when that operation was not a read or found nothing.
pub fn read_in(resp: &TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// `version(key) == version` (0: the key does not exist).
pub fn version_is(key: &str, version: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Version as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::Version(version)),
        ..Default::default()
    }
}

/// `create_revision(key) == revision`: the key is the incarnation created at
/// `revision` (not one deleted and created again since).
pub fn created_at(key: &str, revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

/// `version(key) > 0`: the key exists.
pub fn exists(key: &str) -> Compare {
    Compare {
        result: compare::CompareResult::Greater as i32,
        target: compare::CompareTarget::Version as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    }
}

/// `lease(key) == lease`: the key exists and is attached to that lease.
pub fn lease_is(key: &str, lease: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Lease as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::Lease(lease)),
        ..Default::default()
    }
}

pub fn is_put(e: &Event) -> bool {
    e.r#type == EventType::Put as i32
}
