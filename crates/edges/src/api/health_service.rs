//! `grpc.health.v1.Health`, complete per the spec: Check, Watch and List
//! (gRFC A90), served from the shared status map. Unlike tonic-health 0.14, a
//! Watch of an unknown service gets SERVICE_UNKNOWN on a stream that stays open
//! and updates when the service appears, and watchers wake only on real
//! changes of the service they watch.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::limits::{WatchPermit, WatchStreams};
use crate::rpc::grpc_health_v1::health_server::Health;
use mcp_health_engine::health::{HealthStatuses, Subscription};
use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health_proto::grpc_health_v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

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
        let permit = self.watch_streams.admit(mcp_health_engine::WatchApi::GrpcHealth)?;
        let watch = ServiceWatch {
            sub: self.statuses.subscribe(&req.into_inner().service),
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
    sub: Subscription,
    shutdown: CancellationToken,
    /// What this stream last sent; None before the first message.
    last: Option<ServingStatus>,
    _permit: WatchPermit,
}

impl ServiceWatch {
    fn current(&mut self) -> ServingStatus {
        self.sub.current().unwrap_or(ServingStatus::ServiceUnknown)
    }

    /// The next status to send, or None to end the stream.
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, Status>, ServiceWatch)> {
        loop {
            if self.last.is_some() {
                tokio::select! {
                    // A change that happened before shutdown is delivered first.
                    biased;
                    changed = self.sub.changed() => changed.ok()?,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use tokio_stream::StreamExt;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn watch(service: &HealthService, name: &str) -> WatchStream {
        let req = Request::new(HealthCheckRequest { service: name.to_owned() });
        service.watch(req).await.unwrap().into_inner()
    }

    fn status(item: Option<Result<HealthCheckResponse, Status>>) -> ServingStatus {
        ServingStatus::try_from(item.expect("an item").expect("a status").status).unwrap()
    }

    #[tokio::test]
    async fn a_change_wakes_only_the_watchers_of_its_service() {
        let statuses = HealthStatuses::default();
        statuses.set("a", ServingStatus::Serving);
        statuses.set("b", ServingStatus::Serving);
        let service = HealthService::new(statuses.clone(), CancellationToken::new());
        let mut stream = watch(&service, "a").await;
        assert_eq!(status(stream.next().await), ServingStatus::Serving);

        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(stream.as_mut().poll_next(&mut cx).is_pending());
        // Group b changes many times: a's watcher is never woken.
        for i in 0..100 {
            let s = if i % 2 == 0 { ServingStatus::NotServing } else { ServingStatus::Serving };
            statuses.set("b", s);
        }
        statuses.set("c", ServingStatus::Serving);
        statuses.remove("c");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "a watcher of a was woken by changes of b and c");
        assert!(stream.as_mut().poll_next(&mut cx).is_pending());

        statuses.set("a", ServingStatus::NotServing);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a change of a wakes its watcher once");
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(item) => assert_eq!(status(item), ServingStatus::NotServing),
            Poll::Pending => panic!("woken, but nothing to read"),
        }
    }

    #[tokio::test]
    async fn a_watch_of_an_unknown_service_sees_it_appear_and_go() {
        let statuses = HealthStatuses::default();
        let service = HealthService::new(statuses.clone(), CancellationToken::new());
        let mut stream = watch(&service, "later").await;
        assert_eq!(status(stream.next().await), ServingStatus::ServiceUnknown);
        statuses.set("later", ServingStatus::Serving);
        assert_eq!(status(stream.next().await), ServingStatus::Serving);
        statuses.remove("later");
        assert_eq!(status(stream.next().await), ServingStatus::ServiceUnknown);
    }
}
