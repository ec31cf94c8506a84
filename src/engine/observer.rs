//! Counting work in progress for the engine's observer (probes in flight,
//! open watch streams) with a guard, so an aborted task still decrements.

use std::sync::Arc;

use super::ProbeObserver;

/// Reports +1 on creation and -1 on drop to the observer, if there is one.
pub struct InFlight {
    observer: Option<Arc<dyn ProbeObserver>>,
    report: fn(&dyn ProbeObserver, i64),
}

impl InFlight {
    /// A probe running (scheduled or on demand).
    pub fn probe(observer: Option<&Arc<dyn ProbeObserver>>) -> InFlight {
        Self::start(observer, |o, d| o.probes_in_flight(d))
    }

    /// An open watch stream.
    pub fn watch_stream(observer: Option<&Arc<dyn ProbeObserver>>) -> InFlight {
        Self::start(observer, |o, d| o.watch_streams(d))
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
