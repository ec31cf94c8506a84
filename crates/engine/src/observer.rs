//! Counting work in progress for the engine's observer (probes in flight,
//! open watch streams, by RPC) with a guard, so an aborted task still decrements.

use std::sync::Arc;

use super::ProbeObserver;

/// The RPC a watch stream belongs to (they share one cap and one gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchApi {
    /// `mcphealth.v1.GroupHealthService/WatchGroupHealth`.
    GroupHealth,
    /// `grpc.health.v1.Health/Watch`.
    GrpcHealth,
}

impl WatchApi {
    pub const ALL: [WatchApi; 2] = [WatchApi::GroupHealth, WatchApi::GrpcHealth];

    /// Its metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            WatchApi::GroupHealth => "group_health",
            WatchApi::GrpcHealth => "grpc_health",
        }
    }
}

/// Reports +1 on creation and -1 on drop to the observer, if there is one.
#[derive(Debug)]
pub struct InFlight {
    observer: Option<Arc<dyn ProbeObserver>>,
    report: fn(&dyn ProbeObserver, i64),
}

impl InFlight {
    /// A probe running (scheduled or on demand).
    pub fn probe(observer: Option<&Arc<dyn ProbeObserver>>) -> InFlight {
        Self::start(observer, |o, d| o.probes_in_flight(d))
    }

    /// An open watch stream of `api`.
    pub fn watch_stream(observer: Option<&Arc<dyn ProbeObserver>>, api: WatchApi) -> InFlight {
        let report: fn(&dyn ProbeObserver, i64) = match api {
            WatchApi::GroupHealth => |o, d| o.watch_streams(WatchApi::GroupHealth, d),
            WatchApi::GrpcHealth => |o, d| o.watch_streams(WatchApi::GrpcHealth, d),
        };
        Self::start(observer, report)
    }

    fn start(observer: Option<&Arc<dyn ProbeObserver>>, report: fn(&dyn ProbeObserver, i64)) -> InFlight {
        if let Some(o) = observer {
            report(&**o, 1);
        }
        InFlight {
            observer: observer.cloned(),
            report,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(o) = &self.observer {
            (self.report)(&**o, -1);
        }
    }
}
