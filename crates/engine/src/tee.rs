//! Fans each observer call out to several observers, so history (always on)
//! and metrics (with `--metrics-listen`) both follow the owner task.

use std::sync::Arc;

use super::{ProbeObserver, ProbeResult, WatchApi};
use mcp_health_core::phase::GroupVerdict;
use mcp_health_proto::v1::BackendStatus;

/// Calls every observer in order.
#[derive(Debug)]
pub struct Tee(pub Vec<Arc<dyn ProbeObserver>>);

/// `first` alone, or `first` then `rest` when there is one.
pub fn compose(first: Arc<dyn ProbeObserver>, rest: Option<Arc<dyn ProbeObserver>>) -> Arc<dyn ProbeObserver> {
    match rest {
        Some(rest) => Arc::new(Tee(vec![first, rest])),
        None => first,
    }
}

impl ProbeObserver for Tee {
    fn probe_finished(&self, r: &ProbeResult) {
        self.0.iter().for_each(|o| o.probe_finished(r));
    }
    fn probe_applied(&self, r: &ProbeResult) {
        self.0.iter().for_each(|o| o.probe_applied(r));
    }
    fn backend_status(&self, group: &str, backend: &str, from: Option<BackendStatus>, to: BackendStatus) {
        self.0.iter().for_each(|o| o.backend_status(group, backend, from, to));
    }
    fn group_verdict(&self, group: &str, verdict: &GroupVerdict) {
        self.0.iter().for_each(|o| o.group_verdict(group, verdict));
    }
    fn backend_removed(&self, group: &str, backend: &str) {
        self.0.iter().for_each(|o| o.backend_removed(group, backend));
    }
    fn group_deleted(&self, group: &str, backends: &[String]) {
        self.0.iter().for_each(|o| o.group_deleted(group, backends));
    }
    fn ejection(&self, group: &str, backend: &str, ejection: Option<&mcp_health_core::outlier::Ejection>, at: std::time::SystemTime) {
        self.0.iter().for_each(|o| o.ejection(group, backend, ejection, at));
    }
    fn catalog_changed(&self, group: &str, backend: &str, change: &mcp_health_core::catalog::CatalogChange) {
        self.0.iter().for_each(|o| o.catalog_changed(group, backend, change));
    }
    fn endpoints(&self, group: &str, backend: &str, endpoints: &[crate::EndpointView]) {
        self.0.iter().for_each(|o| o.endpoints(group, backend, endpoints));
    }
    fn probe_held(&self, group: &str, backend: &str) {
        self.0.iter().for_each(|o| o.probe_held(group, backend));
    }
    fn doubt(&self, doubt: Option<&crate::DoubtView>) {
        self.0.iter().for_each(|o| o.doubt(doubt));
    }
    fn probes_in_flight(&self, delta: i64) {
        self.0.iter().for_each(|o| o.probes_in_flight(delta));
    }
    fn watch_streams(&self, api: WatchApi, delta: i64) {
        self.0.iter().for_each(|o| o.watch_streams(api, delta));
    }
}
