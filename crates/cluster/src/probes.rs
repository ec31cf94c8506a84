//! The requester's side of on-demand probes in cluster mode (`ProbeRouter`,
//! used by the API's `ProbeBackend`): a backend this replica owns (or any,
//! while degraded or not joined) is probed here; any other is asked of its
//! owner through etcd (`answers.rs` answers), and the owner's verdict or
//! error comes back as a local probe's would. The engine never sees etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::etcd::{Etcd, EtcdError, delete_op, is_put};
use super::forward::{Answered, ProbeAnswer, ProbeRequest, Route, answer_wait, decode, encode, request_id, route};
use super::keys::Keys;
use super::status::{ClusterStatus, MemberView};
use crate::etcd_api::etcdserverpb::TxnRequest;
pub use crate::forward::ProbeReply;
use mcp_health_engine::{Engine, EngineError};

/// The member that owns a backend, as errors name it.
#[derive(Clone, Debug)]
pub struct Owner {
    pub id: String,
    /// Its advertised address; empty if unknown.
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name.as_str() {
            "" => write!(f, "member {}", self.id),
            name => write!(f, "member {} ({name})", self.id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The engine's error, this replica's or the owner's: the same status either way.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot ask the owner of {backend}, {owner}, to probe it")]
    Ask {
        owner: Owner,
        backend: String,
        #[source]
        source: EtcdError,
    },
    #[error("the owner of {backend}, {owner}, did not answer in time (waited {waited:?} for its probe)")]
    Silent { owner: Owner, backend: String, waited: Duration },
    #[error("the owner of {backend}, {owner}, left the cluster before answering; retry")]
    OwnerLeft { owner: Owner, backend: String },
    #[error("the owner of {backend}, {owner}, could not probe it: {message}")]
    Owner { owner: Owner, backend: String, message: String },
}

/// Routes `ProbeBackend` in cluster mode. Cheap to clone.
#[derive(Clone)]
pub struct ProbeRouter {
    etcd: Etcd,
    keys: Keys,
    status: ClusterStatus,
    /// The number of this replica's next request (ids are `{member}-{n}`).
    next: Arc<AtomicU64>,
}

/// One request to an owner.
struct Ask {
    id: String,
    group: String,
    backend: String,
    /// The requester, and the lease its request key is put under.
    me: String,
    lease: i64,
    owner: Owner,
    /// How long to wait for the answer.
    wait: Duration,
    /// An indirect probe (`ProbeRequest::indirect`).
    indirect: bool,
}

/// What the wait for an answer ended with.
enum Waited {
    Answer(Vec<u8>),
    Silent,
    OwnerLeft,
}

/// Pause between attempts to (re)watch the answer after an etcd failure.
const RETRY: Duration = Duration::from_millis(200);

impl ProbeRouter {
    pub fn new(etcd: Etcd, keys: Keys, status: ClusterStatus) -> ProbeRouter {
        ProbeRouter {
            etcd,
            keys,
            status,
            next: Arc::default(),
        }
    }

    /// Probes `group/backend` now: here, or by its owner. The answer is the
    /// API's: the backend as `BackendHealth` (an owner's answer travels so) and the phase.
    pub async fn probe_backend(&self, engine: &Engine, group: String, backend: String) -> Result<ProbeReply, ProbeError> {
        let (route, name) = self.status.with_view(|v| {
            let r = route(v, &group, &backend);
            let name = match &r {
                Route::Forward { owner, .. } => v.names.get(owner).cloned().unwrap_or_default(),
                Route::Local => String::new(),
            };
            (r, name)
        });
        let Route::Forward { me, lease, owner } = route else {
            return Ok(ProbeReply::from(&engine.probe_backend(group, backend).await?));
        };
        let owner = Owner { id: owner, name };
        let (owner, named, answer) = self.ask(engine, (me, lease), owner, group, backend, false).await?;
        match answer.result {
            Answered::Probed { backend, phase } => Ok(ProbeReply { backend: *backend, phase }),
            Answered::Checked { .. } => Err(ProbeError::Owner {
                owner,
                backend: named,
                message: "it answered a check, not a probe".into(),
            }),
            Answered::Error(e) => Err(owner_error(owner, named, e)),
        }
    }

    /// An indirect probe (issue 21 §3): asks member `peer` whether it
    /// reaches `group/backend`, a backend this replica saw failing in a
    /// burst. True when it reached it. The peer folds nothing.
    pub async fn check_via(&self, engine: &Engine, peer: Owner, group: String, backend: String) -> Result<bool, ProbeError> {
        let Some(me) = self.status.with_view(|v| v.me.clone().map(|me| (me, v.lease))) else {
            return Err(ProbeError::Engine(EngineError::ShuttingDown));
        };
        let (owner, named, answer) = self.ask(engine, me, peer, group, backend, true).await?;
        match answer.result {
            Answered::Checked { reached, .. } => Ok(reached),
            Answered::Probed { .. } => Err(ProbeError::Owner {
                owner,
                backend: named,
                message: "it answered a probe, not a check".into(),
            }),
            Answered::Error(e) => Err(owner_error(owner, named, e)),
        }
    }

    /// Asks `owner`, as member `me` holding its lease, to probe (or, for an
    /// indirect probe, check) `group/backend`, waiting as long as the
    /// backend's probe may take plus the etcd trips. In its own task
    /// (`forward`), so a caller that goes away (a client that hangs up)
    /// still leaves no keys behind.
    async fn ask(
        &self,
        engine: &Engine,
        (me, lease): (String, i64),
        owner: Owner,
        group: String,
        backend: String,
        indirect: bool,
    ) -> Result<(Owner, String, ProbeAnswer), ProbeError> {
        // An unknown backend here may be known to the owner (a group applied
        // a moment ago elsewhere): ask anyway, for the default wait.
        let wait = answer_wait(engine.probe_timeout(group.clone(), backend.clone()).await.ok());
        let ask = Ask {
            id: request_id(&me, self.next.fetch_add(1, Ordering::Relaxed)),
            group,
            backend,
            me,
            lease,
            owner,
            wait,
            indirect,
        };
        let router = self.clone();
        let forward = tokio::spawn(async move { router.forward(ask).await });
        // The task does not panic; a join error means the runtime is shutting down.
        forward.await.map_err(|_| ProbeError::Engine(EngineError::ShuttingDown))?
    }

    /// Puts the request, waits for the answer (or the deadline, or the
    /// member leaving) and removes both keys: the answer read, with who was
    /// asked and the backend as errors name it.
    async fn forward(self, ask: Ask) -> Result<(Owner, String, ProbeAnswer), ProbeError> {
        let Ask {
            id,
            group,
            backend,
            me,
            lease,
            owner,
            wait,
            indirect,
        } = ask;
        let request_key = self.keys.probe_request(&group, &backend, &id);
        let answer_key = self.keys.probe_answer(&id);
        let named = format!("{group}/{backend}");
        let request = ProbeRequest {
            requester: me,
            owner: owner.id.clone(),
            indirect,
        };
        let revision = match self.etcd.put(&request_key, encode(&request), lease).await {
            Ok(r) => r,
            Err(source) => {
                self.status.etcd_error();
                return Err(ProbeError::Ask { owner, backend: named, source });
            }
        };
        self.status.counters.probes_forwarded.fetch_add(1, Ordering::Relaxed);
        debug!(group, backend, request = id, owner = %owner, "probe forwarded to the owner");
        let waited = tokio::select! {
            value = self.answer(&answer_key, revision) => Waited::Answer(value),
            () = tokio::time::sleep(wait) => Waited::Silent,
            () = owner_left(self.status.subscribe(), &owner.id) => Waited::OwnerLeft,
        };
        // Both keys go, answered or not; the owner writes no answer once the request is gone.
        let txn = TxnRequest {
            compare: vec![],
            success: vec![delete_op(&request_key), delete_op(&answer_key)],
            failure: vec![],
        };
        if let Err(e) = self.etcd.txn(txn).await {
            self.status.etcd_error();
            warn!(request = id, error = %e, "cannot remove a probe request; it goes with this replica's lease");
        }
        let value = match waited {
            Waited::Answer(v) => v,
            Waited::Silent => {
                return Err(ProbeError::Silent {
                    owner,
                    backend: named,
                    waited: wait,
                });
            }
            Waited::OwnerLeft => return Err(ProbeError::OwnerLeft { owner, backend: named }),
        };
        let Some(answer) = decode::<ProbeAnswer>(&value) else {
            return Err(ProbeError::Owner {
                owner,
                backend: named,
                message: "its answer cannot be read".into(),
            });
        };
        Ok((owner, named, answer))
    }

    /// The answer written at `key` after `revision` (when the request was
    /// put, so no answer can be older): watched, and read again after a
    /// watch failure in case the watch missed it.
    async fn answer(&self, key: &str, revision: i64) -> Vec<u8> {
        let mut from = revision + 1;
        loop {
            match self.watch_answer(key, from).await {
                Ok(value) => return value,
                Err(e) => {
                    self.status.etcd_error();
                    debug!(key, error = %e, "watch of a probe answer interrupted; reading it");
                }
            }
            match self.etcd.range_prefix(key).await {
                Ok((kvs, at)) => {
                    if let Some(kv) = kvs.into_iter().find(|kv| kv.key == key.as_bytes()) {
                        return kv.value;
                    }
                    from = at + 1;
                }
                Err(_) => self.status.etcd_error(),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn watch_answer(&self, key: &str, from: i64) -> Result<Vec<u8>, EtcdError> {
        let mut stream = std::pin::pin!(self.etcd.watch_prefix(key, from).await?);
        while let Some(item) = stream.next().await {
            let (_, events) = item?;
            // A prefix watch: request `m-1`'s key is a prefix of `m-10`'s.
            let answer = events.into_iter().filter(is_put).filter_map(|e| e.kv).find(|kv| kv.key == key.as_bytes());
            if let Some(kv) = answer {
                return Ok(kv.value);
            }
        }
        Err(EtcdError::WatchEnded("stream ended".into()))
    }
}

/// The error an asked member answered with, as this replica's own would read.
fn owner_error(owner: Owner, backend: String, e: super::forward::OwnerError) -> ProbeError {
    match e.into_engine() {
        Ok(e) => ProbeError::Engine(e),
        Err(message) => ProbeError::Owner { owner, backend, message },
    }
}

/// Returns once `owner` is no longer a live member (its lease expired: it
/// can no longer answer, its fence refuses). Degraded keeps the last view.
async fn owner_left(mut view: watch::Receiver<MemberView>, owner: &str) {
    loop {
        if !view.borrow_and_update().members.contains(owner) {
            return;
        }
        if view.changed().await.is_err() {
            // The status outlives every request; should it go, wait for the deadline.
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_owner() {
        let owner = |name: &str| Owner {
            id: "1a2b".into(),
            name: name.into(),
        };
        let cases: &[(ProbeError, &str)] = &[
            (
                ProbeError::Silent {
                    owner: owner("10.0.0.7:50051"),
                    backend: "web/a".into(),
                    waited: Duration::from_millis(3800),
                },
                "the owner of web/a, member 1a2b (10.0.0.7:50051), did not answer in time (waited 3.8s for its probe)",
            ),
            (
                ProbeError::OwnerLeft {
                    owner: owner(""),
                    backend: "web/a".into(),
                },
                "the owner of web/a, member 1a2b, left the cluster before answering; retry",
            ),
            (
                ProbeError::Ask {
                    owner: owner("h:1"),
                    backend: "web/a".into(),
                    source: EtcdError::WatchEnded("x".into()),
                },
                "cannot ask the owner of web/a, member 1a2b (h:1), to probe it",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), *want);
        }
    }
}
