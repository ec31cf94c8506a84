//! mcp-health: probes MCP servers, keeps one verdict per backend and one
//! routable phase per group, and serves them over gRPC.

pub mod proto;
