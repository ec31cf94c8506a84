//! `mcphealth.v1.GroupHealthService`: reads and watches from the engine, and
//! (behind the admin guard) applies, deletes and probes on demand.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::AdminGuard;
use super::limits::{WatchPermit, WatchStreams};
use super::status::{invalid, probe_status, to_status};
use crate::rpc::v1::group_health_service_server::GroupHealthService;
use mcp_health_cluster::probes::ProbeReply;
use mcp_health_core::spec::validate_group;
use mcp_health_engine::{Engine, EngineError, EventKind, Feed, FeedItem, Origin, ReportOrigin, api_view};
use mcp_health_proto::v1::*;

pub struct GroupService {
    engine: Engine,
    shutdown: CancellationToken,
    config_status: mcp_health_engine::config::ConfigStatusHandle,
    admin: AdminGuard,
    watch_streams: WatchStreams,
    /// Cluster mode: the view `GetConfigStatus` reports, and the lease TTL.
    cluster: Option<(mcp_health_cluster::status::ClusterStatus, std::time::Duration)>,
    /// Cluster mode: `ProbeBackend` is made by the backend's owner.
    probes: Option<mcp_health_cluster::probes::ProbeRouter>,
}

impl GroupService {
    /// A service with mutations open and no cap on watch streams.
    pub fn new(engine: Engine, shutdown: CancellationToken, config_status: mcp_health_engine::config::ConfigStatusHandle) -> Self {
        GroupService {
            engine,
            shutdown,
            config_status,
            admin: AdminGuard::default(),
            watch_streams: WatchStreams::default(),
            cluster: None,
            probes: None,
        }
    }

    /// Cluster mode: `GetConfigStatus` reports the cluster view.
    pub fn with_cluster(mut self, cluster: Option<(mcp_health_cluster::status::ClusterStatus, std::time::Duration)>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Cluster mode: `ProbeBackend` on a backend another member owns is
    /// carried out by that owner.
    pub fn with_probe_router(mut self, probes: Option<mcp_health_cluster::probes::ProbeRouter>) -> Self {
        self.probes = probes;
        self
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

impl GroupService {
    /// Cluster mode: a degraded replica refuses every mutation, also one its
    /// view calls unchanged (that view may be stale), as its store refuses
    /// every write.
    fn refuse_if_degraded(&self) -> Result<(), Status> {
        match self.cluster.as_ref().and_then(|(c, _)| c.degraded()) {
            Some(why) => Err(to_status(EngineError::Store(mcp_health_engine::store::StoreError::Degraded(why)))),
            None => Ok(()),
        }
    }
}

fn group_arg(group: &str) -> Result<String, Status> {
    if group.is_empty() {
        return Err(invalid(&[mcp_health_core::spec::FieldViolation {
            field: "group".into(),
            description: "is required".into(),
        }]));
    }
    Ok(group.to_owned())
}

fn backend_arg(backend: &str) -> Result<(), Status> {
    if backend.is_empty() {
        return Err(invalid(&[mcp_health_core::spec::FieldViolation {
            field: "backend".into(),
            description: "is required".into(),
        }]));
    }
    Ok(())
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchGroupHealthResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GroupHealthService for GroupService {
    async fn list_groups(&self, _: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let groups = self.engine.list().await.map_err(to_status)?;
        Ok(Response::new(ListGroupsResponse {
            groups: groups.iter().map(|g| api_view::overview(g)).collect(),
        }))
    }

    async fn get_group_health(&self, req: Request<GetGroupHealthRequest>) -> Result<Response<GetGroupHealthResponse>, Status> {
        let group = group_arg(&req.into_inner().group)?;
        let health = self.engine.get(group).await.map_err(to_status)?;
        Ok(Response::new(GetGroupHealthResponse {
            health: Some(api_view::group_health(&health)),
        }))
    }

    type WatchGroupHealthStream = WatchStream;

    async fn watch_group_health(&self, req: Request<WatchGroupHealthRequest>) -> Result<Response<WatchStream>, Status> {
        let permit = self.watch_streams.admit(mcp_health_engine::WatchApi::GroupHealth)?;
        let group = Some(req.into_inner().group).filter(|g| !g.is_empty());
        let feed = self.engine.feed(group).await.map_err(to_status)?;
        let stream = WatchState {
            feed,
            shutdown: self.shutdown.clone(),
            done: false,
            _permit: permit,
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(stream, WatchState::next))))
    }

    async fn apply_group(&self, req: Request<ApplyGroupRequest>) -> Result<Response<ApplyGroupResponse>, Status> {
        self.admin.check(&req, "ApplyGroup").await?;
        let req = req.into_inner();
        let spec = req.spec.ok_or_else(|| {
            invalid(&[mcp_health_core::spec::FieldViolation {
                field: "spec".into(),
                description: "is required".into(),
            }])
        })?;
        let valid = validate_group(&spec, "spec", self.engine.limits()).map_err(|v| invalid(&v))?;
        if req.validate_only {
            // Every check the apply makes (a config-file group is read-only,
            // the group limit, TLS files), but nothing changes.
            self.engine.check_apply(valid, Origin::Api).await.map_err(to_status)?;
            return Ok(Response::new(ApplyGroupResponse {
                spec: Some(spec),
                generation: 0,
                changed: false,
            }));
        }
        self.refuse_if_degraded()?;
        let applied = self.engine.apply(valid, Origin::Api).await.map_err(to_status)?;
        Ok(Response::new(ApplyGroupResponse {
            spec: Some(applied.spec),
            generation: applied.generation,
            changed: applied.changed,
        }))
    }

    async fn delete_group(&self, req: Request<DeleteGroupRequest>) -> Result<Response<DeleteGroupResponse>, Status> {
        self.admin.check(&req, "DeleteGroup").await?;
        let group = group_arg(&req.into_inner().group)?;
        self.refuse_if_degraded()?;
        self.engine.delete(group).await.map_err(to_status)?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn probe_backend(&self, req: Request<ProbeBackendRequest>) -> Result<Response<ProbeBackendResponse>, Status> {
        self.admin.check(&req, "ProbeBackend").await?;
        let req = req.into_inner();
        let group = group_arg(&req.group)?;
        backend_arg(&req.backend)?;
        let probed = match &self.probes {
            Some(router) => router.probe_backend(&self.engine, group, req.backend).await.map_err(probe_status)?,
            None => ProbeReply::from(&self.engine.probe_backend(group, req.backend).await.map_err(to_status)?),
        };
        Ok(Response::new(ProbeBackendResponse {
            backend: Some(probed.backend),
            phase: probed.phase as i32,
        }))
    }

    async fn set_backend_drain(&self, req: Request<SetBackendDrainRequest>) -> Result<Response<SetBackendDrainResponse>, Status> {
        self.admin.check(&req, "SetBackendDrain").await?;
        let req = req.into_inner();
        let group = group_arg(&req.group)?;
        if req.backend.is_empty() {
            return Err(invalid(&[mcp_health_core::spec::FieldViolation {
                field: "backend".into(),
                description: "is required".into(),
            }]));
        }
        let endpoint = match req.endpoint.as_str() {
            "" => None,
            text => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(&[mcp_health_core::spec::FieldViolation {
                    field: "endpoint".into(),
                    description: format!("{text:?} is not an endpoint address: IP:port as the endpoint shows it"),
                }])
            })?),
        };
        self.refuse_if_degraded()?;
        let applied = self.engine.set_drain(group, req.backend, endpoint, req.drain).await.map_err(to_status)?;
        Ok(Response::new(SetBackendDrainResponse {
            spec: Some(applied.spec),
            generation: applied.generation,
            changed: applied.changed,
        }))
    }

    async fn report_outcomes(&self, req: Request<tonic::Streaming<OutcomeReport>>) -> Result<Response<ReportOutcomesResponse>, Status> {
        self.admin.check(&req, "ReportOutcomes").await?;
        let mut reports = req.into_inner();
        let mut answer = ReportOutcomesResponse::default();
        loop {
            let report = tokio::select! {
                r = reports.message() => r?,
                () = self.shutdown.cancelled() => return Err(Status::unavailable("the daemon is shutting down")),
            };
            let Some(report) = report else { break };
            let Some(outcome) = traffic_outcome(&report) else {
                answer.invalid += 1;
                continue;
            };
            // One engine step per report: an ejection takes effect at the
            // report that reached the threshold, however long the stream stays open.
            match self
                .engine
                .report_outcomes(report.group.clone(), report.backend.clone(), vec![outcome], ReportOrigin::Traffic)
                .await
            {
                Ok(summary) => {
                    answer.accepted += u64::from(summary.accepted);
                    answer.not_owned += u64::from(summary.not_owned);
                    answer.forwarded += u64::from(summary.forwarded);
                    answer.dropped += u64::from(summary.dropped);
                    if summary.ejected {
                        answer.ejected.push(format!("{}/{}", report.group, report.backend));
                    }
                }
                Err(EngineError::GroupNotFound(_) | EngineError::BackendNotFound { .. }) => answer.unknown_backend += 1,
                Err(e) => return Err(to_status(e)),
            }
        }
        Ok(Response::new(answer))
    }

    async fn accept_catalog(&self, req: Request<AcceptCatalogRequest>) -> Result<Response<AcceptCatalogResponse>, Status> {
        self.admin.check(&req, "AcceptCatalog").await?;
        let req = req.into_inner();
        let group = group_arg(&req.group)?;
        backend_arg(&req.backend)?;
        self.refuse_if_degraded()?;
        let fingerprint = if req.fingerprint.is_empty() {
            // The catalog the backend shows now, as the operator saw it.
            let health = self.engine.get(group.clone()).await.map_err(to_status)?;
            let shown = health.backend(&req.backend).map(|b| b.catalog.fingerprint.clone());
            match shown {
                Some(f) if !f.is_empty() => f,
                Some(_) => {
                    return Err(invalid(&[mcp_health_core::spec::FieldViolation {
                        field: "fingerprint".into(),
                        description: "the backend has no catalog read yet; name the fingerprint to accept".into(),
                    }]));
                }
                None => {
                    return Err(to_status(EngineError::BackendNotFound { group, backend: req.backend }));
                }
            }
        } else {
            req.fingerprint
        };
        let applied = self.engine.accept_catalog(group, req.backend, fingerprint.clone()).await.map_err(to_status)?;
        Ok(Response::new(AcceptCatalogResponse {
            spec: Some(applied.spec),
            generation: applied.generation,
            changed: applied.changed,
            fingerprint,
        }))
    }

    async fn get_config_status(&self, _: Request<GetConfigStatusRequest>) -> Result<Response<GetConfigStatusResponse>, Status> {
        let mut status = self.config_status.snapshot();
        status.cluster = self.cluster.as_ref().map(|(c, ttl)| c.info(*ttl));
        status.self_doubt = self.engine.doubt().borrow().as_ref().map(|d| SelfDoubt {
            causes: d.causes.iter().map(|c| c.label().to_owned()).collect(),
            since: Some(mcp_health_engine::timestamp(d.since)),
            holds_until: d.holds_until.map(mcp_health_engine::timestamp),
            holding: d.holding(std::time::SystemTime::now()),
        });
        Ok(Response::new(status))
    }

    async fn get_backend_history(&self, req: Request<GetBackendHistoryRequest>) -> Result<Response<GetBackendHistoryResponse>, Status> {
        let req = req.into_inner();
        let group = group_arg(&req.group)?;
        backend_arg(&req.backend)?;
        let now = mcp_health_engine::history::unix_ms(std::time::SystemTime::now());
        match self.engine.history().backend(&group, &req.backend, now) {
            Ok(h) => Ok(Response::new(h.to_proto())),
            Err(_) => {
                // History holds only groups that have backends: the engine says which name is unknown.
                self.engine.get(group.clone()).await.map_err(to_status)?;
                Err(to_status(EngineError::BackendNotFound { group, backend: req.backend }))
            }
        }
    }
}

fn message(kind: WatchEventKind, sequence: u64, groups: Vec<GroupHealth>) -> WatchGroupHealthResponse {
    WatchGroupHealthResponse {
        kind: kind as i32,
        // The proto's `revision` is the engine's change sequence number.
        revision: sequence,
        groups,
    }
}

/// One watch stream: the engine's `Feed` (snapshot, then changes; a fresh
/// snapshot after falling behind) as API messages. The stream is polled only
/// as fast as the client reads (HTTP/2 flow control); dropping it (client
/// gone) drops the feed and the permit with it.
struct WatchState {
    feed: Feed,
    shutdown: CancellationToken,
    /// The last message went out; end the stream.
    done: bool,
    _permit: WatchPermit,
}

type Item = Result<WatchGroupHealthResponse, Status>;

impl WatchState {
    /// The next message, or None to end the stream.
    async fn next(mut self) -> Option<(Item, WatchState)> {
        if self.done {
            return None;
        }
        let item = tokio::select! {
            biased;
            item = self.feed.next() => item?,
            () = self.shutdown.cancelled() => return None,
        };
        let message = match item {
            Ok(FeedItem::Snapshot { sequence, groups, .. }) => {
                message(WatchEventKind::Snapshot, sequence, groups.iter().map(|g| api_view::group_health(g)).collect())
            }
            Ok(FeedItem::Change(e)) => {
                let kind = match e.kind {
                    EventKind::Changed => WatchEventKind::Changed,
                    EventKind::Deleted => {
                        // A deleted group ends a watch of that one group.
                        self.done = self.feed.group().is_some();
                        WatchEventKind::Deleted
                    }
                };
                message(kind, e.sequence, vec![api_view::group_health(&e.group)])
            }
            Err(EngineError::GroupNotFound(g)) => {
                self.done = true;
                return Some((Err(Status::not_found(format!("group {g:?} was deleted"))), self));
            }
            Err(_) => return None,
        };
        Some((Ok(message), self))
    }
}

/// A report's outcome in the core's terms; None for an invalid report (no
/// outcome, or an HTTP status outside 100-599).
fn traffic_outcome(r: &OutcomeReport) -> Option<mcp_health_core::outlier::TrafficOutcome> {
    use mcp_health_core::outlier::TrafficOutcome as T;
    Some(match OutcomeKind::try_from(r.outcome).ok()? {
        OutcomeKind::Unspecified => return None,
        OutcomeKind::Ok => T::Ok,
        OutcomeKind::ConnectFailure => T::ConnectFailure,
        OutcomeKind::Reset => T::Reset,
        OutcomeKind::Timeout => T::Timeout,
        OutcomeKind::HttpStatus => match u16::try_from(r.http_status).ok().filter(|s| (100..600).contains(s))? {
            s if (200..300).contains(&s) => T::Ok,
            s => T::HttpStatus(s),
        },
        OutcomeKind::JsonRpcError => T::JsonRpcError {
            code: i64::from(r.json_rpc_code),
            tools_call: r.method.is_empty() || r.method == "tools/call",
        },
        OutcomeKind::ToolError => T::ToolError,
    })
}

#[cfg(test)]
mod outcome_tests {
    use super::*;
    use mcp_health_core::outlier::TrafficOutcome as T;

    #[test]
    fn reports_map_to_outcomes_and_invalid_ones_to_none() {
        let r = |kind: OutcomeKind, http_status: u32, json_rpc_code: i32, method: &str| OutcomeReport {
            outcome: kind as i32,
            http_status,
            json_rpc_code,
            method: method.into(),
            ..OutcomeReport::default()
        };
        // (report, outcome)
        let rows = [
            (r(OutcomeKind::Unspecified, 0, 0, ""), None),
            (r(OutcomeKind::Ok, 0, 0, ""), Some(T::Ok)),
            (r(OutcomeKind::ConnectFailure, 0, 0, ""), Some(T::ConnectFailure)),
            (r(OutcomeKind::Reset, 0, 0, ""), Some(T::Reset)),
            (r(OutcomeKind::Timeout, 0, 0, ""), Some(T::Timeout)),
            (r(OutcomeKind::HttpStatus, 503, 0, ""), Some(T::HttpStatus(503))),
            (r(OutcomeKind::HttpStatus, 404, 0, ""), Some(T::HttpStatus(404))),
            (r(OutcomeKind::HttpStatus, 204, 0, ""), Some(T::Ok)),
            (r(OutcomeKind::HttpStatus, 0, 0, ""), None),
            (r(OutcomeKind::HttpStatus, 600, 0, ""), None),
            (
                r(OutcomeKind::JsonRpcError, 0, -32603, ""),
                Some(T::JsonRpcError {
                    code: -32603,
                    tools_call: true,
                }),
            ),
            (
                r(OutcomeKind::JsonRpcError, 0, -32603, "tools/call"),
                Some(T::JsonRpcError {
                    code: -32603,
                    tools_call: true,
                }),
            ),
            (
                r(OutcomeKind::JsonRpcError, 0, -32603, "resources/read"),
                Some(T::JsonRpcError {
                    code: -32603,
                    tools_call: false,
                }),
            ),
            (r(OutcomeKind::ToolError, 0, 0, ""), Some(T::ToolError)),
            (
                OutcomeReport {
                    outcome: 99,
                    ..OutcomeReport::default()
                },
                None,
            ),
        ];
        for (report, want) in rows {
            assert_eq!(traffic_outcome(&report), want, "{report:?}");
        }
    }
}
