//! Request limits of the gRPC surface that tonic does not provide: the cap on
//! concurrent watch streams (WatchGroupHealth and grpc.health Watch together).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use mcp_health_engine::{InFlight, ProbeObserver, WatchApi};

/// Shared by every watch RPC; a stream holds its permit until it ends. The
/// observer (metrics) counts the open streams here, in the one place every
/// stream passes, so no watch RPC can be left out of the gauge.
#[derive(Clone, Debug)]
pub struct WatchStreams {
    permits: Arc<Semaphore>,
    max: usize,
    observer: Option<Arc<dyn ProbeObserver>>,
}

/// One admitted stream: its slot under the cap and its count in the gauge,
/// both released on drop.
#[derive(Debug)]
pub struct WatchPermit {
    _slot: OwnedSemaphorePermit,
    _open: InFlight,
}

impl Default for WatchStreams {
    fn default() -> Self {
        WatchStreams::new(Semaphore::MAX_PERMITS)
    }
}

impl WatchStreams {
    pub fn new(max: usize) -> WatchStreams {
        let max = max.min(Semaphore::MAX_PERMITS);
        WatchStreams {
            permits: Arc::new(Semaphore::new(max)),
            max,
            observer: None,
        }
    }

    /// Reports open streams to `observer` (the daemon's metrics).
    pub fn with_observer(mut self, observer: Option<Arc<dyn ProbeObserver>>) -> Self {
        self.observer = observer;
        self
    }

    /// A permit for one more stream of `api`, or RESOURCE_EXHAUSTED past the cap.
    pub fn admit(&self, api: WatchApi) -> Result<WatchPermit, Status> {
        let slot = self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "too many concurrent watch streams: the limit is {} (--max-watch-streams); close a stream or retry later",
                self.max
            ))
        })?;
        Ok(WatchPermit {
            _slot: slot,
            _open: InFlight::watch_stream(self.observer.as_ref(), api),
        })
    }
}

/// tonic answers a request over `max_decoding_message_size` with OUT_OF_RANGE;
/// gRPC's convention (and what clients retry on) is RESOURCE_EXHAUSTED. This
/// response mapper rewrites exactly that answer, naming the flag.
#[derive(Clone, Copy, Debug)]
pub struct OversizeAsResourceExhausted {
    pub max_message_bytes: usize,
}

/// tonic's message for an oversized request (tonic::codec::decode).
const TONIC_TOO_LARGE: &str = "decoded message length too large";

impl OversizeAsResourceExhausted {
    pub fn map<B: Default>(self, response: http::Response<B>) -> http::Response<B> {
        let headers = response.headers();
        let oversized = headers.get("grpc-status").is_some_and(|s| s.as_bytes() == b"11")
            && headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .is_some_and(|m| m.contains("length%20too%20large") || m.contains(TONIC_TOO_LARGE));
        if !oversized {
            return response;
        }
        Status::resource_exhausted(format!(
            "request message too large: the limit is {} bytes (--max-message-bytes)",
            self.max_message_bytes
        ))
        .into_http()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    /// Records the open-stream count per RPC as the observer sees it.
    #[derive(Debug, Default)]
    struct Counts(Mutex<Vec<(WatchApi, i64)>>);

    impl ProbeObserver for Counts {
        fn watch_streams(&self, api: WatchApi, delta: i64) {
            self.0.lock().unwrap().push((api, delta));
        }
    }

    impl Counts {
        fn open(&self, api: WatchApi) -> i64 {
            self.0.lock().unwrap().iter().filter(|(a, _)| *a == api).map(|(_, d)| d).sum()
        }
    }

    #[test]
    fn one_cap_across_both_watch_rpcs_and_release_on_drop() {
        let w = WatchStreams::new(2);
        let a = w.admit(WatchApi::GroupHealth).unwrap();
        let _b = w.admit(WatchApi::GrpcHealth).unwrap();
        let err = w.admit(WatchApi::GroupHealth).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limit is 2"), "{}", err.message());
        drop(a);
        assert!(w.admit(WatchApi::GrpcHealth).is_ok());
    }

    #[test]
    fn open_streams_are_counted_per_rpc_and_refusals_are_not() {
        let counts = Arc::new(Counts::default());
        let w = WatchStreams::new(2).with_observer(Some(counts.clone()));
        let group = w.admit(WatchApi::GroupHealth).unwrap();
        let health = w.admit(WatchApi::GrpcHealth).unwrap();
        assert!(w.admit(WatchApi::GrpcHealth).is_err());
        assert_eq!((counts.open(WatchApi::GroupHealth), counts.open(WatchApi::GrpcHealth)), (1, 1));
        drop(health);
        assert_eq!((counts.open(WatchApi::GroupHealth), counts.open(WatchApi::GrpcHealth)), (1, 0));
        drop(group);
        assert_eq!((counts.open(WatchApi::GroupHealth), counts.open(WatchApi::GrpcHealth)), (0, 0));
    }
}
