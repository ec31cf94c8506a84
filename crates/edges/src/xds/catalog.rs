//! The xDS resource catalog: every group's `ClusterLoadAssignment`, encoded
//! once per change, fed from the engine's feed (a snapshot, then each
//! group's domain snapshot as it changes) and published to every xDS stream, debounced so a
//! burst of verdicts becomes one push. It resolves no names: each endpoint's
//! address is the one its probe connected to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::util::pack_any;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::mapping;
use super::wire::SharedAny;
use mcp_health_core::snapshot::GroupSnapshot;
use mcp_health_engine::{Engine, EventKind, Feed, FeedItem};

/// One resource as streams send it.
#[derive(Debug, PartialEq)]
pub struct Entry {
    /// The group revision that last changed the encoded resource; 0 for the
    /// empty assignment of a name whose group does not exist.
    pub version: u64,
    /// Encoded once here; every stream's response holds a handle to these
    /// bytes and sends them as they are (`wire`), never a copy.
    pub resource: SharedAny,
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
            resource: SharedAny::new(&pack_any(mapping::empty_assignment(name))),
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
    fn apply(&mut self, kind: EventKind, revision: u64, group: &GroupSnapshot) {
        self.version = self.version.max(revision);
        let name = mapping::resource_name(&group.name);
        if kind == EventKind::Deleted {
            self.resources.remove(&name);
            return;
        }
        let resource = SharedAny::new(&pack_any(mapping::cluster_load_assignment(group)));
        // Progress-only changes of a verdict leave the assignment as it was: no push.
        if self.resources.get(&name).is_some_and(|e| e.resource == resource) {
            return;
        }
        self.resources.insert(
            name,
            Arc::new(Entry {
                version: group.sequence.max(1),
                resource,
            }),
        );
    }

    /// Starts over from a snapshot.
    fn load(&mut self, sequence: u64, groups: &[Arc<GroupSnapshot>]) {
        self.resources.clear();
        self.version = sequence;
        for g in groups {
            self.apply(EventKind::Changed, g.sequence, g);
        }
    }

    /// Takes one item of the engine's feed.
    fn take(&mut self, item: FeedItem) {
        match item {
            FeedItem::Snapshot { sequence, groups, resync } => {
                if resync {
                    debug!("xds catalog fell behind the engine; rebuilt from a fresh snapshot");
                }
                self.load(sequence, &groups);
            }
            FeedItem::Change(e) => self.apply(e.kind, e.sequence, &e.group),
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
    let mut feed = engine.feed(None).await?;
    let mut feeder = Feeder {
        resources: BTreeMap::new(),
        version: 0,
    };
    // The first item of a feed is its snapshot, at once.
    if let Some(Ok(first)) = feed.next().await {
        feeder.take(first);
    }
    let (tx, rx) = watch::channel(feeder.catalog());
    tokio::spawn(run(feed, feeder, tx, debounce, shutdown));
    Ok(rx)
}

async fn run(mut feed: Feed, mut feeder: Feeder, tx: watch::Sender<Arc<Catalog>>, debounce: Duration, shutdown: CancellationToken) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = feed.next() => match item {
                Some(Ok(item)) => item,
                // A feed of every group cannot miss a group; None: the engine stopped.
                Some(Err(_)) | None => return,
            },
        };
        feeder.take(item);
        // Gather the rest of the burst, then publish once. (`Feed::next` is
        // cancel-safe, so the deadline may interrupt it.)
        let deadline = Instant::now() + debounce;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                item = feed.next() => match item {
                    Some(Ok(item)) => feeder.take(item),
                    Some(Err(_)) | None => break,
                },
            }
        }
        tx.send_replace(feeder.catalog());
    }
}
