//! mcp-health: probes MCP servers, keeps one verdict per backend and one
//! routable phase per group, and serves them over gRPC.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod core;
pub mod daemon;
pub mod engine;
pub mod errors;
pub mod health;
pub mod history;
pub mod listener;
pub mod metrics;
pub mod probe;
pub mod proto;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod xds;
