//! `grpc.health.v1.Health`, complete per the spec: Check, Watch and List
//! (gRFC A90), served from the shared status map. Unlike tonic-health 0.14, a
//! Watch of an unknown service gets SERVICE_UNKNOWN on a stream that stays open
//! and updates when the service appears, and watchers wake only on real changes.

use std::pin::Pin;

use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::limits::{WatchPermit, WatchStreams};
use crate::health::HealthStatuses;
use crate::proto::grpc_health_v1::health_check_response::ServingStatus;
use crate::proto::grpc_health_v1::health_server::Health;
use crate::proto::grpc_health_v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// gRFC A90: List answers RESOURCE_EXHAUSTED past this many services.
pub const MAX_LIST_SERVICES: usize = 100;

pub struct HealthService {
    statuses: HealthStatuses,
    shutdown: CancellationToken,
    watch_streams: WatchStreams,
}

impl HealthService {
    pub fn new(statuses: HealthStatuses, shutdown: CancellationToken) -> Self {
        HealthService {
            statuses,
            shutdown,
            watch_streams: WatchStreams::default(),
        }
    }

    /// The cap on concurrent watch streams, shared with WatchGroupHealth.
    pub fn with_watch_streams(mut self, watch_streams: WatchStreams) -> Self {
        self.watch_streams = watch_streams;
        self
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status as i32 }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        match self.statuses.get(&service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        let snapshot = self.statuses.snapshot();
        if snapshot.len() > MAX_LIST_SERVICES {
            return Err(Status::resource_exhausted(format!(
                "{} services exceed the List limit of {MAX_LIST_SERVICES}; use Check or Watch per service",
                snapshot.len()
            )));
        }
        let statuses = snapshot.into_iter().map(|(name, s)| (name, response(s))).collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<HealthCheckRequest>) -> Result<Response<WatchStream>, Status> {
        let permit = self.watch_streams.admit(crate::engine::WatchApi::GrpcHealth)?;
        let watch = ServiceWatch {
            service: req.into_inner().service,
            rx: self.statuses.subscribe(),
            shutdown: self.shutdown.clone(),
            last: None,
            _permit: permit,
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(watch, ServiceWatch::next))))
    }
}

/// One health Watch stream: the service's current status, then each real
/// change. Polled only as fast as the client reads; a client that reads late
/// gets the latest status, never a backlog. No task and no channel per stream.
struct ServiceWatch {
    service: String,
    rx: watch::Receiver<crate::health::StatusMap>,
    shutdown: CancellationToken,
    /// What this stream last sent; None before the first message.
    last: Option<ServingStatus>,
    _permit: WatchPermit,
}

impl ServiceWatch {
    fn current(&mut self) -> ServingStatus {
        let map: &crate::health::StatusMap = &self.rx.borrow_and_update();
        map.get(&self.service).copied().unwrap_or(ServingStatus::ServiceUnknown)
    }

    /// The next status to send, or None to end the stream.
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, Status>, ServiceWatch)> {
        loop {
            if self.last.is_some() {
                tokio::select! {
                    // A change that happened before shutdown is delivered first.
                    biased;
                    changed = self.rx.changed() => changed.ok()?,
                    () = self.shutdown.cancelled() => return None,
                }
            }
            let now = self.current();
            if self.last != Some(now) {
                self.last = Some(now);
                return Some((Ok(response(now)), self));
            }
        }
    }
}
