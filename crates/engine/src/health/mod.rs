//! The serving status of every grpc.health.v1 service name, derived from the
//! group phases: one small channel per service, so readers check a status
//! without a round trip and a change wakes only that service's watchers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use mcp_health_proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health_proto::v1::GroupPhase;

/// The service name of our own gRPC service.
pub const GROUP_HEALTH_SERVICE: &str = "mcphealth.v1.GroupHealthService";

/// Maps a group phase to a serving status: only READY and DEGRADED can take traffic.
pub fn serving_status(phase: GroupPhase) -> ServingStatus {
    match phase {
        GroupPhase::Ready | GroupPhase::Degraded => ServingStatus::Serving,
        GroupPhase::Pending | GroupPhase::Failed | GroupPhase::Unspecified => ServingStatus::NotServing,
    }
}

pub type StatusMap = HashMap<String, ServingStatus>;

/// One service's channel: `None` while the service is unknown (it has
/// watchers waiting for it to appear, or it was removed under them).
type Slot = watch::Sender<Option<ServingStatus>>;

/// Every known service name and its status. Writers are the engine's owner
/// task (groups) and the server (itself). A write wakes only the watchers of
/// the service it changed, and only on a real change.
#[derive(Clone, Debug)]
pub struct HealthStatuses {
    slots: Arc<RwLock<HashMap<String, Slot>>>,
}

impl Default for HealthStatuses {
    fn default() -> Self {
        let slots = [String::new(), GROUP_HEALTH_SERVICE.to_owned()]
            .into_iter()
            .map(|name| (name, watch::Sender::new(Some(ServingStatus::Serving))))
            .collect();
        HealthStatuses {
            slots: Arc::new(RwLock::new(slots)),
        }
    }
}

impl HealthStatuses {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Slot>> {
        // A poisoned lock only means a panic elsewhere mid-update; the map of channels is still whole.
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Slot>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a service's status; its watchers wake only on a real change.
    pub fn set(&self, service: &str, status: ServingStatus) {
        let update = |slot: &Slot| {
            slot.send_if_modified(|s| {
                let changed = *s != Some(status);
                *s = Some(status);
                changed
            })
        };
        if let Some(slot) = self.read().get(service) {
            update(slot);
            return;
        }
        update(self.write().entry(service.to_owned()).or_insert_with(|| watch::Sender::new(None)));
    }

    /// Forgets a service: Check then says NOT_FOUND and Watch SERVICE_UNKNOWN.
    pub fn remove(&self, service: &str) {
        let mut slots = self.write();
        let Some(slot) = slots.get(service) else { return };
        slot.send_if_modified(|s| s.take().is_some());
        if slot.receiver_count() == 0 {
            slots.remove(service);
        }
    }

    /// Marks every service NOT_SERVING, for shutdown.
    pub fn set_all_not_serving(&self) {
        for slot in self.read().values() {
            slot.send_if_modified(|s| match s {
                Some(s) if *s != ServingStatus::NotServing => {
                    *s = ServingStatus::NotServing;
                    true
                }
                _ => false,
            });
        }
    }

    pub fn get(&self, service: &str) -> Option<ServingStatus> {
        self.read().get(service).and_then(|slot| *slot.borrow())
    }

    /// Every known service and its status.
    pub fn snapshot(&self) -> StatusMap {
        self.read().iter().filter_map(|(name, slot)| slot.borrow().map(|s| (name.clone(), s))).collect()
    }

    /// How many services are known.
    pub fn len(&self) -> usize {
        self.read().values().filter(|slot| slot.borrow().is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Follows one service, known or not yet: woken by changes of that
    /// service only. `None` means unknown.
    pub fn subscribe(&self, service: &str) -> Subscription {
        let existing = self.read().get(service).map(Slot::subscribe);
        let rx = existing.unwrap_or_else(|| self.write().entry(service.to_owned()).or_insert_with(|| watch::Sender::new(None)).subscribe());
        Subscription {
            rx: Some(rx),
            service: service.to_owned(),
            statuses: self.clone(),
        }
    }

    /// Drops the channel of an unknown service once nobody watches it, so
    /// watches of made-up names leave nothing behind.
    fn release(&self, service: &str) {
        let mut slots = self.write();
        if slots.get(service).is_some_and(|slot| slot.borrow().is_none() && slot.receiver_count() == 0) {
            slots.remove(service);
        }
    }
}

/// A watcher's view of one service; see [`HealthStatuses::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    /// Always Some until drop, which releases it before `release` counts receivers.
    rx: Option<watch::Receiver<Option<ServingStatus>>>,
    service: String,
    statuses: HealthStatuses,
}

impl Subscription {
    fn rx(&mut self) -> &mut watch::Receiver<Option<ServingStatus>> {
        // Only Drop takes the receiver out.
        self.rx.as_mut().expect("a live subscription has its receiver")
    }

    /// The service's status now (None: unknown), marking it seen.
    pub fn current(&mut self) -> Option<ServingStatus> {
        *self.rx().borrow_and_update()
    }

    /// Waits for a change of this service not yet seen; Err once the
    /// statuses are gone (never while the daemon runs).
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx().changed().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.statuses.release(&self.service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_services_appear_and_leave_nothing_behind() {
        let statuses = HealthStatuses::default();
        assert_eq!(statuses.len(), 2);
        let mut sub = statuses.subscribe("g");
        assert_eq!(sub.current(), None);
        assert_eq!(statuses.get("g"), None, "a watched unknown service is not known");
        assert_eq!(statuses.len(), 2);
        statuses.set("g", ServingStatus::Serving);
        assert_eq!(sub.current(), Some(ServingStatus::Serving));
        assert_eq!(statuses.snapshot().get("g"), Some(&ServingStatus::Serving));
        statuses.remove("g");
        assert_eq!(sub.current(), None);
        assert_eq!(statuses.get("g"), None);
        drop(sub);
        assert_eq!(statuses.read().len(), 2, "the channel of an unwatched unknown service is dropped");
        drop(statuses.subscribe("made-up"));
        assert_eq!(statuses.read().len(), 2);
        statuses.set_all_not_serving();
        assert_eq!(statuses.get(""), Some(ServingStatus::NotServing));
    }
}
