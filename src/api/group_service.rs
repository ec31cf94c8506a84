//! `mcphealth.v1.GroupHealthService`: reads and watches from the engine, and
//! (behind the admin guard) applies, deletes and probes on demand.

use std::pin::Pin;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::AdminGuard;
use super::limits::WatchStreams;
use super::status::{invalid, to_status};
use crate::engine::{Engine, EngineError, EventKind, Origin, Subscription};
use crate::proto::v1::group_health_service_server::GroupHealthService;
use crate::proto::v1::*;
use crate::spec::validate_group;

/// Messages buffered per watch stream between its forwarder and the client.
const STREAM_BUFFER: usize = 16;

pub struct GroupService {
    engine: Engine,
    shutdown: CancellationToken,
    config_status: crate::config::ConfigStatusHandle,
    admin: AdminGuard,
    watch_streams: WatchStreams,
}

impl GroupService {
    /// A service with mutations open and no cap on watch streams.
    pub fn new(engine: Engine, shutdown: CancellationToken, config_status: crate::config::ConfigStatusHandle) -> Self {
        GroupService {
            engine,
            shutdown,
            config_status,
            admin: AdminGuard::default(),
            watch_streams: WatchStreams::default(),
        }
    }

    /// Who may call ApplyGroup, DeleteGroup and ProbeBackend.
    pub fn with_admin_guard(mut self, admin: AdminGuard) -> Self {
        self.admin = admin;
        self
    }

    /// The cap on concurrent watch streams, shared with grpc.health Watch.
    pub fn with_watch_streams(mut self, watch_streams: WatchStreams) -> Self {
        self.watch_streams = watch_streams;
        self
    }
}

fn group_arg(group: &str) -> Result<String, Status> {
    if group.is_empty() {
        return Err(invalid(&[crate::spec::FieldViolation {
            field: "group".into(),
            description: "is required".into(),
        }]));
    }
    Ok(group.to_owned())
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchGroupHealthResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GroupHealthService for GroupService {
    async fn list_groups(&self, _: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let groups = self.engine.list().await.map_err(to_status)?;
        Ok(Response::new(ListGroupsResponse { groups }))
    }

    async fn get_group_health(&self, req: Request<GetGroupHealthRequest>) -> Result<Response<GetGroupHealthResponse>, Status> {
        let group = group_arg(&req.into_inner().group)?;
        let health = self.engine.get(group).await.map_err(to_status)?;
        Ok(Response::new(GetGroupHealthResponse {
            health: Some((*health).clone()),
        }))
    }

    type WatchGroupHealthStream = WatchStream;

    async fn watch_group_health(&self, req: Request<WatchGroupHealthRequest>) -> Result<Response<WatchStream>, Status> {
        let permit = self.watch_streams.admit(crate::engine::WatchApi::GroupHealth)?;
        let group = Some(req.into_inner().group).filter(|g| !g.is_empty());
        let sub = self.engine.watch(group.clone()).await.map_err(to_status)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let forwarder = forward(self.engine.clone(), group, sub, tx, self.shutdown.clone());
        // The permit lives as long as the forwarder, which ends with the stream.
        tokio::spawn(async move {
            forwarder.await;
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn apply_group(&self, req: Request<ApplyGroupRequest>) -> Result<Response<ApplyGroupResponse>, Status> {
        self.admin.check(&req, "ApplyGroup")?;
        let req = req.into_inner();
        let spec = req.spec.ok_or_else(|| {
            invalid(&[crate::spec::FieldViolation {
                field: "spec".into(),
                description: "is required".into(),
            }])
        })?;
        let valid = validate_group(&spec, "spec", self.engine.limits()).map_err(|v| invalid(&v))?;
        if req.validate_only {
            return Ok(Response::new(ApplyGroupResponse {
                spec: Some(spec),
                generation: 0,
                changed: false,
            }));
        }
        let applied = self.engine.apply(valid, Origin::Api).await.map_err(to_status)?;
        Ok(Response::new(ApplyGroupResponse {
            spec: Some(applied.spec),
            generation: applied.generation,
            changed: applied.changed,
        }))
    }

    async fn delete_group(&self, req: Request<DeleteGroupRequest>) -> Result<Response<DeleteGroupResponse>, Status> {
        self.admin.check(&req, "DeleteGroup")?;
        let group = group_arg(&req.into_inner().group)?;
        self.engine.delete(group).await.map_err(to_status)?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn probe_backend(&self, req: Request<ProbeBackendRequest>) -> Result<Response<ProbeBackendResponse>, Status> {
        self.admin.check(&req, "ProbeBackend")?;
        let req = req.into_inner();
        let group = group_arg(&req.group)?;
        if req.backend.is_empty() {
            return Err(invalid(&[crate::spec::FieldViolation {
                field: "backend".into(),
                description: "is required".into(),
            }]));
        }
        let probed = self.engine.probe_now(group, req.backend).await.map_err(to_status)?;
        Ok(Response::new(ProbeBackendResponse {
            backend: Some(probed.backend),
            phase: probed.phase as i32,
        }))
    }

    async fn get_config_status(&self, _: Request<GetConfigStatusRequest>) -> Result<Response<GetConfigStatusResponse>, Status> {
        Ok(Response::new(self.config_status.snapshot()))
    }
}

fn message(kind: WatchEventKind, revision: u64, groups: Vec<GroupHealth>) -> WatchGroupHealthResponse {
    WatchGroupHealthResponse {
        kind: kind as i32,
        revision,
        groups,
    }
}

/// Feeds one watch stream: the snapshot, then each change of the watched
/// group(s). Only this task waits on the client; if it falls behind the
/// broadcast buffer, it resynchronizes with a fresh snapshot.
async fn forward(
    engine: Engine,
    group: Option<String>,
    mut sub: Subscription,
    tx: mpsc::Sender<Result<WatchGroupHealthResponse, Status>>,
    shutdown: CancellationToken,
) {
    let snapshot = |sub: &Subscription| message(WatchEventKind::Snapshot, sub.revision, sub.snapshot.iter().map(|g| (**g).clone()).collect());
    if tx.send(Ok(snapshot(&sub))).await.is_err() {
        return;
    }
    let mut last_revision = sub.revision;
    loop {
        let event = tokio::select! {
            biased;
            event = sub.events.recv() => event,
            () = tx.closed() => return,
            () = shutdown.cancelled() => return,
        };
        match event {
            Ok(e) => {
                if e.revision <= last_revision || group.as_ref().is_some_and(|g| *g != e.group.name) {
                    continue;
                }
                last_revision = e.revision;
                let (kind, end) = match e.kind {
                    EventKind::Changed => (WatchEventKind::Changed, false),
                    EventKind::Deleted => (WatchEventKind::Deleted, group.is_some()),
                };
                if tx.send(Ok(message(kind, e.revision, vec![(*e.group).clone()]))).await.is_err() || end {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                sub = match engine.watch(group.clone()).await {
                    Ok(s) => s,
                    Err(EngineError::GroupNotFound(g)) => {
                        let _ = tx.send(Err(Status::not_found(format!("group {g:?} was deleted")))).await;
                        return;
                    }
                    Err(_) => return,
                };
                last_revision = sub.revision;
                if tx.send(Ok(snapshot(&sub))).await.is_err() {
                    return;
                }
            }
            // The engine stopped: end the stream cleanly.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
