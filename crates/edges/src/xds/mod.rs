//! The xDS management server (`--xds`): Envoy's aggregated (ADS) and endpoint
//! (EDS) discovery services, state-of-the-world and delta, on the daemon's gRPC
//! listener. Every group is a `ClusterLoadAssignment` named
//! `mcp-health/<group>`; every judged backend an `LbEndpoint` at the address
//! its probe connected to, whose `health_status` is its verdict mapped by
//! `mapping::endpoint_health`. Read only: built against the engine's public
//! watch, it changes nothing and resolves nothing.

pub mod catalog;
pub mod delta;
pub mod mapping;
pub mod service;
pub mod sotw;
pub mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use catalog::{Catalog, CatalogRx};
pub use service::{AdsServer, DEFAULT_MAX_XDS_STREAMS, EdsServer, XdsService};

/// The type URL of EDS resources, the only type served.
pub const EDS_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// How long the catalog collects changes after the first of a burst before it
/// pushes them as one update (`--xds-debounce`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
