//! The edges: everything that speaks a wire format to the outside. The gRPC
//! API and grpc.health (`api`, services generated in `rpc`), Envoy's xDS
//! (`xds`) and its Access Log Service as a source of outcomes (`als`), the status page (`ui`) and Prometheus metrics (`metrics`), each
//! mapped from the engine's published state; `tonic::Status` lives only here.

pub mod als;
pub mod api;
pub mod listener;
pub mod metrics;
pub mod rpc;
pub mod ui;
pub mod xds;
