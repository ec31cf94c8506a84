//! The serving status of every grpc.health.v1 service name, derived from the
//! group phases, in one map that readers can check without a round trip.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::proto::grpc_health_v1::health_check_response::ServingStatus;
use crate::proto::v1::GroupPhase;

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

/// Every known service name and its status. Writers are the engine's owner
/// task (groups) and the server (itself); a write that changes nothing wakes
/// no watcher.
#[derive(Clone, Debug)]
pub struct HealthStatuses {
    tx: watch::Sender<StatusMap>,
}

impl Default for HealthStatuses {
    fn default() -> Self {
        let mut map = StatusMap::new();
        map.insert(String::new(), ServingStatus::Serving);
        map.insert(GROUP_HEALTH_SERVICE.to_owned(), ServingStatus::Serving);
        HealthStatuses { tx: watch::Sender::new(map) }
    }
}

impl HealthStatuses {
    /// Sets a service's status; watchers wake only on a real change.
    pub fn set(&self, service: &str, status: ServingStatus) {
        self.tx.send_if_modified(|map| match map.get_mut(service) {
            Some(s) if *s == status => false,
            Some(s) => {
                *s = status;
                true
            }
            None => {
                map.insert(service.to_owned(), status);
                true
            }
        });
    }

    /// Forgets a service: Check then says NOT_FOUND and Watch SERVICE_UNKNOWN.
    pub fn remove(&self, service: &str) {
        self.tx.send_if_modified(|map| map.remove(service).is_some());
    }

    /// Marks every service NOT_SERVING, for shutdown.
    pub fn set_all_not_serving(&self) {
        self.tx.send_if_modified(|map| {
            let mut changed = false;
            for s in map.values_mut() {
                changed |= *s != ServingStatus::NotServing;
                *s = ServingStatus::NotServing;
            }
            changed
        });
    }

    pub fn get(&self, service: &str) -> Option<ServingStatus> {
        self.tx.borrow().get(service).copied()
    }

    pub fn snapshot(&self) -> StatusMap {
        self.tx.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.tx.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn subscribe(&self) -> watch::Receiver<StatusMap> {
        self.tx.subscribe()
    }
}
