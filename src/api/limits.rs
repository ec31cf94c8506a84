//! Request limits of the gRPC surface that tonic does not provide: the cap on
//! concurrent watch streams (WatchGroupHealth and grpc.health Watch together).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Shared by every watch RPC; a stream holds its permit until it ends.
#[derive(Clone, Debug)]
pub struct WatchStreams {
    permits: Arc<Semaphore>,
    max: usize,
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
        }
    }

    /// A permit for one more stream, or RESOURCE_EXHAUSTED past the cap.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "too many concurrent watch streams: the limit is {} (--max-watch-streams); close a stream or retry later",
                self.max
            ))
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

    #[test]
    fn cap_and_release() {
        let w = WatchStreams::new(2);
        let a = w.admit().unwrap();
        let _b = w.admit().unwrap();
        let err = w.admit().unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limit is 2"), "{}", err.message());
        drop(a);
        assert!(w.admit().is_ok());
    }
}
