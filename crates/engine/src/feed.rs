//! The one watch feed every watcher reads (WatchGroupHealth, the status
//! page's events, the xDS catalog): a snapshot, then each change of the
//! watched group(s) in order. A watcher that fell behind the broadcast buffer
//! gets a fresh snapshot in place of the changes it missed. There is no task
//! or channel per watcher: a feed is polled as fast as its reader reads, so a
//! slow watcher holds only its cursor, and nothing waits for it.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Engine, EngineError, Event, Subscription};
use mcp_health_core::snapshot::GroupSnapshot;

/// What a feed yields.
#[derive(Clone, Debug)]
pub enum FeedItem {
    /// Every watched group as of `sequence`: first, and again after falling behind.
    Snapshot {
        sequence: u64,
        groups: Vec<Arc<GroupSnapshot>>,
        /// Sent because the watcher fell behind, not as the first message.
        resync: bool,
    },
    /// One change after the last item, in sequence order.
    Change(Event),
}

/// A watcher's cursor: snapshot, then changes (see the module doc).
pub struct Feed {
    engine: Engine,
    group: Option<String>,
    snapshot: Option<FeedItem>,
    events: broadcast::Receiver<Event>,
    /// The sequence number of the last item yielded.
    last: u64,
    /// The next call must resubscribe first (set before the resubscription
    /// is awaited, so a `next` dropped mid-way by a `select!` still resyncs).
    behind: bool,
}

impl Engine {
    /// A feed of `group`, or of every group; NOT_FOUND-like error for a
    /// group that does not exist.
    pub async fn feed(&self, group: Option<String>) -> Result<Feed, EngineError> {
        let sub = self.watch(group.clone()).await?;
        Ok(Feed::from_subscription(self.clone(), group, sub, false))
    }
}

impl Feed {
    fn from_subscription(engine: Engine, group: Option<String>, sub: Subscription, resync: bool) -> Feed {
        Feed {
            engine,
            group,
            last: sub.sequence,
            snapshot: Some(FeedItem::Snapshot {
                sequence: sub.sequence,
                groups: sub.snapshot,
                resync,
            }),
            events: sub.events,
            behind: false,
        }
    }

    /// The group this feed watches; None for every group.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The next item; None once the engine stopped. An error only when a
    /// resync after falling behind failed (a watched group was deleted
    /// meanwhile: `GroupNotFound`). Cancel-safe: a call dropped before it
    /// returns loses nothing.
    pub async fn next(&mut self) -> Option<Result<FeedItem, EngineError>> {
        loop {
            if self.behind {
                let sub = match self.engine.watch(self.group.clone()).await {
                    Ok(sub) => sub,
                    Err(EngineError::ShuttingDown) => return None,
                    Err(e) => return Some(Err(e)),
                };
                *self = Feed::from_subscription(self.engine.clone(), self.group.take(), sub, true);
            }
            if let Some(snapshot) = self.snapshot.take() {
                return Some(Ok(snapshot));
            }
            match self.events.recv().await {
                Ok(e) => {
                    if e.sequence <= self.last || self.group.as_ref().is_some_and(|g| *g != e.group.name) {
                        continue;
                    }
                    self.last = e.sequence;
                    return Some(Ok(FeedItem::Change(e)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.behind = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
