//! The gRPC edge: `mcphealth.v1.GroupHealthService`, `grpc.health.v1.Health`,
//! and the mapping of engine errors to `tonic::Status`, which happens only here.

pub mod auth;
pub mod codec;
pub mod group_service;
pub mod health_service;
pub mod limits;
pub mod status;
pub mod tls;
