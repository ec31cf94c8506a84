//! The xDS resource catalog: every group's `ClusterLoadAssignment`, encoded
//! once per change, fed from the engine's public watch (a snapshot, then
//! `GroupHealth` events) and published to every xDS stream, debounced so a
//! burst of verdicts becomes one push. It resolves no names: each endpoint's
//! address is the one its probe connected to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::mapping;
use mcp_health_engine::{Engine, Event, EventKind};
use mcp_health_proto::v1::GroupHealth;

/// One resource as streams send it.
#[derive(Debug, PartialEq)]
pub struct Entry {
    /// The group revision that last changed the encoded resource; 0 for the
    /// empty assignment of a name whose group does not exist.
    pub version: u64,
    pub resource: Any,
}

/// Every resource at one moment.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The engine revision this catalog reflects; the SotW `version_info`.
    pub version: u64,
    /// Resource name (`mcp-health/<group>`) to its entry.
    pub resources: BTreeMap<String, Arc<Entry>>,
}

impl Catalog {
    /// The resource a name stands for: a group's assignment; for a name under
    /// the prefix whose group does not exist, an assignment without endpoints
    /// (so a deleted group gets no traffic); None for names outside the prefix.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        if let Some(e) = self.resources.get(name) {
            return Some(e.clone());
        }
        mapping::group_of(name)?;
        Some(Arc::new(Entry {
            version: 0,
            resource: pack_any(mapping::empty_assignment(name)),
        }))
    }

    /// Whether a group of that resource name exists (what a wildcard covers).
    pub fn contains(&self, name: &str) -> bool {
        self.resources.contains_key(name)
    }
}

pub type CatalogRx = watch::Receiver<Arc<Catalog>>;

/// The catalog the feeder task maintains.
struct Feeder {
    resources: BTreeMap<String, Arc<Entry>>,
    version: u64,
}

impl Feeder {
    fn apply(&mut self, kind: EventKind, revision: u64, group: &GroupHealth) {
        self.version = self.version.max(revision);
        let name = mapping::resource_name(&group.name);
        if kind == EventKind::Deleted {
            self.resources.remove(&name);
            return;
        }
        let resource = pack_any(mapping::cluster_load_assignment(group));
        // Progress-only changes of a verdict leave the assignment as it was: no push.
        if self.resources.get(&name).is_some_and(|e| e.resource == resource) {
            return;
        }
        self.resources.insert(
            name,
            Arc::new(Entry {
                version: group.revision.max(1),
                resource,
            }),
        );
    }

    /// Starts over from a snapshot.
    fn load(&mut self, s: &mcp_health_engine::Subscription) {
        self.resources.clear();
        self.version = s.sequence;
        for g in &s.snapshot {
            self.apply(EventKind::Changed, g.revision, g);
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(Catalog {
            version: self.version,
            resources: self.resources.clone(),
        })
    }
}

/// Starts the feeder: subscribes to every group and builds the first catalog
/// before it returns (so no stream ever sees an empty one), then publishes one
/// catalog per burst of changes (`debounce` after the first change of a
/// burst). A feeder that lagged behind the engine resubscribes and rebuilds.
/// It ends with the engine or at `shutdown`.
pub async fn start(engine: Engine, debounce: Duration, shutdown: CancellationToken) -> Result<CatalogRx, mcp_health_engine::EngineError> {
    let first = engine.watch(None).await?;
    let mut feeder = Feeder {
        resources: BTreeMap::new(),
        version: 0,
    };
    feeder.load(&first);
    let (tx, rx) = watch::channel(feeder.catalog());
    tokio::spawn(run(engine, feeder, first.events, tx, debounce, shutdown));
    Ok(rx)
}

async fn run(
    engine: Engine,
    mut feeder: Feeder,
    mut events: broadcast::Receiver<Event>,
    tx: watch::Sender<Arc<Catalog>>,
    debounce: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let event: Event = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = events.recv() => match r {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(missed = n, "xds catalog lagged behind the engine; resynchronizing");
                    let Ok(s) = engine.watch(None).await else { return };
                    feeder.load(&s);
                    events = s.events;
                    tx.send_replace(feeder.catalog());
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        feeder.apply(event.kind, event.sequence, &event.group);
        let deadline = Instant::now() + debounce;
        let mut lagged = false;
        while !lagged {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                r = events.recv() => match r {
                    Ok(e) => feeder.apply(e.kind, e.sequence, &e.group),
                    Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        if lagged {
            let Ok(s) = engine.watch(None).await else { return };
            feeder.load(&s);
            events = s.events;
        }
        tx.send_replace(feeder.catalog());
    }
}
