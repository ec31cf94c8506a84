//! mcp-health: probes MCP servers, keeps one verdict per backend and one
//! routable phase per group, and serves them over gRPC.
//!
//! This top crate is the daemon's assembly (`daemon`), the CLI (`cli`) and
//! telemetry; the layers below are crates of their own (see ARCHITECTURE.md,
//! "Crates"). It re-exports them under the module names they had as modules,
//! so tests, benches and fuzz targets name one crate.

pub mod cli;
pub mod daemon;
pub mod telemetry;

pub use mcp_health_cluster as cluster;
pub use mcp_health_core as core;
pub use mcp_health_core::{errors, spec};
pub use mcp_health_edges::{als, api, listener, metrics, ui, xds};
pub use mcp_health_engine as engine;
pub use mcp_health_engine::{config, health, history, store};
pub use mcp_health_probe as probe;

/// The wire types: messages from `mcp-health-proto` and, beside them, the
/// services generated in `mcp-health-edges`, under one path for clients.
pub mod proto {
    pub use mcp_health_proto::{FILE_DESCRIPTOR_SET, XDS_FILE_DESCRIPTOR_SET};

    /// mcphealth.v1: messages and services.
    pub mod v1 {
        pub use mcp_health_edges::rpc::v1::*;
        pub use mcp_health_proto::v1::*;
    }
    /// grpc.health.v1: messages and services.
    pub mod grpc_health_v1 {
        pub use mcp_health_edges::rpc::grpc_health_v1::*;
        pub use mcp_health_proto::grpc_health_v1::*;
    }
    /// The etcd v3 API (client side).
    pub use mcp_health_cluster::etcd_api as etcd;
}
