//! The gRPC services of `proto/` (tonic servers and clients), generated over
//! the messages of `mcp-health-proto`. Nothing hand-written lives here.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mcphealth.v1");
}

/// The standard gRPC health service, vendored with `List` (gRFC A90).
#[allow(clippy::all, missing_docs)]
pub mod grpc_health_v1 {
    tonic::include_proto!("grpc.health.v1");
}
