//! The durable store of groups applied over the API (`--data-dir`): the
//! `Persist` trait the engine writes through, and its redb implementation.
//! Config-file groups are never stored; the file is their source of truth.

mod redb_store;

use mcp_health_core::spec::{Limits, ValidGroup, validate_group};
use mcp_health_proto::v1::GroupSpec;

pub use redb_store::RedbStore;

/// File name of the database inside `--data-dir`.
pub const DATABASE_FILE: &str = "groups.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}")]
    Open {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("another mcp-healthd holds the data dir {dir} (its {DATABASE_FILE} is locked); stop that daemon or give this one another --data-dir")]
    Locked { dir: String },
    #[error("store write failed")]
    Write(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("store read failed")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("group {group:?} was changed on another replica meanwhile (this replica expected generation {expected}); read it again and retry")]
    Conflict { group: String, expected: u64 },
    #[error("the cluster is degraded ({0}); changes are refused until etcd is reachable again")]
    Degraded(String),
    /// A cluster replica that is not a member now (not joined yet, or its
    /// lease expired while it was paused or cut off): nothing was written.
    #[error("this replica is not a cluster member now ({0}); the change was not written, retry on another replica")]
    Fenced(String),
    #[error("stored group {name:?} cannot be decoded: {reason}")]
    Decode { name: String, reason: String },
}

/// A group as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredGroup {
    pub spec: GroupSpec,
    pub generation: u64,
}

/// A store write in flight: boxed, so `Persist` stays object-safe (the engine
/// holds an `Arc<dyn Persist>`), and `Send`, so the owner task can hold it.
pub type StoreFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Durable writes of API groups. The engine's owner calls these after every
/// check of an apply or delete has passed and before it changes any state, and
/// only acknowledges the change once they return: so the engine never accepts a
/// change the store did not commit, and the store never holds one the engine
/// rejected. Both are async and must never block the calling task: a commit
/// that waits for the disk runs on the blocking pool inside the store
/// (`RedbStore`), and the owner keeps serving reads and probe results while it
/// awaits one.
pub trait Persist: Send + Sync + 'static {
    /// Stores (or replaces) a group with its generation, durably.
    fn put<'a>(&'a self, spec: &'a GroupSpec, generation: u64) -> StoreFuture<'a>;
    /// Removes a group, durably. Removing a missing group is not an error.
    fn remove<'a>(&'a self, name: &'a str) -> StoreFuture<'a>;
}

/// A stored group that no longer passes validation under today's flags.
#[derive(Debug, thiserror::Error)]
#[error("stored group {group:?} is not valid under the current flags: {reason}")]
pub struct InvalidStoredGroup {
    pub group: String,
    pub reason: String,
}

/// Validates groups read back from a store (redb or etcd) under today's
/// flags, keeping their generations: the one check both stores share.
pub fn validate_stored(stored: Vec<StoredGroup>, limits: &Limits) -> Result<Vec<(ValidGroup, u64)>, InvalidStoredGroup> {
    stored
        .into_iter()
        .map(|g| {
            let name = g.spec.name.clone();
            let valid = validate_group(&g.spec, &name, limits).map_err(|v| InvalidStoredGroup {
                group: name,
                reason: v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            })?;
            Ok((valid, g.generation))
        })
        .collect()
}
