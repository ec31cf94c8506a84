//! The cluster's Prometheus series, read from `ClusterStatus` at each scrape
//! (a prometheus-client `Collector`): etcd errors, lease renewals, shared
//! verdicts written and fenced off, members, and whether this replica is
//! degraded (fail-static).

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::status::ClusterStatus;

#[derive(Debug)]
pub struct ClusterMetrics(pub ClusterStatus);

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0.counters;
        let e = &mut encoder;
        counter(
            e,
            "cluster_etcd_errors",
            "Failed etcd calls and interrupted etcd watches",
            c.etcd_errors.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_lease_renewals",
            "Successful renewals of this replica's lease",
            c.lease_renewals.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_verdicts_published",
            "Verdict changes this replica wrote to etcd",
            c.verdicts_published.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_verdicts_fenced",
            "Verdict writes refused because this replica's lease was gone",
            c.verdicts_fenced.load(Ordering::Relaxed),
        )?;
        let (members, degraded) = self.0.with_view(|v| (v.members.len() as i64, i64::from(v.degraded.is_some())));
        gauge(e, "cluster_members", "Live members as this replica last saw them", members)?;
        gauge(
            e,
            "cluster_degraded",
            "1 while etcd is unreachable or without quorum (fail-static: last view, every backend probed here, mutations refused)",
            degraded,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn series_follow_the_status() {
        let status = ClusterStatus::default();
        let metrics = Metrics::new().with_collector(ClusterMetrics(status.clone()));
        status.counters.lease_renewals.fetch_add(3, Ordering::Relaxed);
        status.update(|v| {
            v.members = ["a".to_owned(), "b".to_owned()].into();
            v.degraded = Some("etcd unreachable".into());
        });
        let text = metrics.encode().unwrap();
        for line in [
            "mcp_health_cluster_lease_renewals_total 3",
            "mcp_health_cluster_etcd_errors_total 0",
            "mcp_health_cluster_members 2",
            "mcp_health_cluster_degraded 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        status.update(|v| v.degraded = None);
        assert!(metrics.encode().unwrap().lines().any(|l| l == "mcp_health_cluster_degraded 0"));
    }
}
