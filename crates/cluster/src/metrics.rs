//! The cluster's Prometheus series, read from `ClusterStatus` at each scrape
//! (a prometheus-client `Collector`): etcd errors, lease renewals, shared
//! verdicts written and fenced off, on-demand probes forwarded and answered,
//! real-traffic reports forwarded, dropped and folded,
//! members, the backends this replica owns, and whether it is degraded
//! (fail-static).

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use std::sync::Arc;

use super::status::ClusterStatus;
use mcp_health_engine::history::History;

#[derive(Debug)]
pub struct ClusterMetrics {
    status: ClusterStatus,
    /// The engine's backends (its history has a record of each live one).
    backends: Arc<History>,
}

impl ClusterMetrics {
    pub fn new(status: ClusterStatus, backends: Arc<History>) -> ClusterMetrics {
        ClusterMetrics { status, backends }
    }
}

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
        let c = &self.status.counters;
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
            "Verdict changes (of backends and of discovered endpoints) and endpoint sets this replica wrote to etcd",
            c.verdicts_published.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_verdicts_fenced",
            "Verdict and endpoint-set writes refused by the fence: this replica's lease was gone, or the group incarnation the write was for",
            c.verdicts_fenced.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_probes_forwarded",
            "On-demand probes (ProbeBackend) this replica asked a backend's owner to make",
            c.probes_forwarded.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_probes_answered",
            "On-demand probes this replica made for another replica and answered",
            c.probes_answered.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_reports_forwarded",
            "Real-traffic reports (ReportOutcomes, access logs) this replica forwarded to their backend's owner through etcd",
            c.reports_forwarded.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_reports_dropped",
            "Real-traffic reports for another replica's backend dropped: the queue to the owners was full, or etcd refused the batch",
            c.reports_dropped.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_reports_folded",
            "Real-traffic reports other replicas forwarded that this replica folded as the backend's owner",
            c.reports_folded.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "cluster_indirect_probes_asked",
            "Indirect probes this replica asked other replicas to make about a burst of its failing probes (one per replica and backend asked)",
            c.indirect_probes_asked.load(Ordering::Relaxed),
        )?;
        // A copy, so the history's lock is never held while waiting on the view's.
        let view = self.status.view();
        let owned = self.backends.count_backends(|g, b| view.owns(g, b));
        gauge(
            e,
            "cluster_owned_backends",
            "Backends this replica probes now: its share by ownership, or all of them while degraded",
            owned as i64,
        )?;
        // Only the sets of backends the engine has: a backend removed from its
        // group leaves its set in etcd until the group is deleted.
        let mut present = std::collections::HashSet::new();
        self.backends.count_backends(|g, b| {
            present.insert((g.to_owned(), b.to_owned()));
            false
        });
        let endpoints = self.status.endpoint_sets.owned(&view, |g, b| present.contains(&(g.to_owned(), b.to_owned())));
        gauge(
            e,
            "cluster_owned_endpoints",
            "Endpoints of DNS-discovered backends this replica probes now: its share by ownership (group, backend, address), or all of them while degraded",
            endpoints as i64,
        )?;
        let (members, degraded) = (view.members.len() as i64, i64::from(view.degraded.is_some()));
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
    use prometheus_client::registry::Registry;

    /// The exposition text of `collector` under the daemon's metric prefix,
    /// as `mcp_health_edges::metrics::Metrics::with_collector` registers it.
    struct Exposition(Registry);

    impl Exposition {
        fn of(collector: ClusterMetrics) -> Exposition {
            let mut registry = Registry::with_prefix("mcp_health");
            registry.register_collector(Box::new(collector));
            Exposition(registry)
        }

        fn encode(&self) -> Result<String, std::fmt::Error> {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &self.0)?;
            Ok(text)
        }
    }

    #[test]
    fn series_follow_the_status() {
        let status = ClusterStatus::default();
        let metrics = Exposition::of(ClusterMetrics::new(status.clone(), Arc::default()));
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

    /// Three members' statuses, each joined as itself and seeing all three.
    fn member_statuses() -> Vec<ClusterStatus> {
        let members = ["m1", "m2", "m3"];
        members
            .iter()
            .map(|me| {
                let s = ClusterStatus::default();
                s.update(|v| {
                    v.me = Some((*me).to_owned());
                    v.members = members.iter().map(|m| m.to_string()).collect();
                });
                s
            })
            .collect()
    }

    /// The value of `series` (its name and a space) in the replica's scrape.
    fn owned(s: &ClusterStatus, history: &Arc<History>, series: &str) -> u64 {
        let text = Exposition::of(ClusterMetrics::new(s.clone(), history.clone())).encode().unwrap();
        text.lines().find_map(|l| l.strip_prefix(series)).unwrap().parse().unwrap()
    }

    #[test]
    fn owned_backends_follow_the_member_view_and_the_engines_backends() {
        use mcp_health_proto::v1::BackendStatus;
        let history = Arc::new(History::new());
        // 30 backends in three groups, as the engine reports them added.
        for i in 0..30 {
            history.observe_status(&format!("g{}", i % 3), &format!("b{i}"), None, BackendStatus::Unknown, 0);
        }
        let statuses = member_statuses();
        let owned = |s: &ClusterStatus| owned(s, &history, "mcp_health_cluster_owned_backends ");
        let counts: Vec<u64> = statuses.iter().map(owned).collect();
        // (replica, owned): every backend exactly once across the three.
        assert_eq!(counts.iter().sum::<u64>(), 30, "{counts:?}");
        assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
        // Degraded: fail-static, this replica probes everything.
        statuses[0].update(|v| v.degraded = Some("quorum lost".into()));
        assert_eq!(owned(&statuses[0]), 30);
        statuses[0].update(|v| v.degraded = None);
        // Not joined yet: everything too; no backends: nothing.
        assert_eq!(owned(&ClusterStatus::default()), 30);
        let empty = Exposition::of(ClusterMetrics::new(statuses[1].clone(), Arc::default()));
        assert!(empty.encode().unwrap().lines().any(|l| l == "mcp_health_cluster_owned_backends 0"));
        // A removed backend is no longer counted.
        mcp_health_engine::ProbeObserver::group_deleted(&*history, "g0", &[]);
        assert_eq!(statuses.iter().map(owned).sum::<u64>(), 20);
    }

    #[test]
    fn owned_endpoints_follow_the_member_view_and_the_shared_sets() {
        let statuses = member_statuses();
        // One backend of 9 addresses, as every replica reads it from etcd.
        for s in &statuses {
            s.endpoint_sets
                .set("web", "pods", (2..=10).map(|l| std::net::SocketAddr::from(([127, 0, 0, l], 8080))).collect());
        }
        let history = Arc::new(History::new());
        history.observe_status("web", "pods", None, mcp_health_proto::v1::BackendStatus::Unknown, 0);
        // A set in etcd for a backend the engine does not have (removed from its group): not counted.
        for s in &statuses {
            s.endpoint_sets.set("web", "gone", vec![std::net::SocketAddr::from(([127, 0, 0, 99], 8080))]);
        }
        let owned = |s: &ClusterStatus| owned(s, &history, "mcp_health_cluster_owned_endpoints ");
        let counts: Vec<u64> = statuses.iter().map(owned).collect();
        // Every endpoint exactly once across the three, spread.
        assert_eq!(counts.iter().sum::<u64>(), 9, "{counts:?}");
        assert!(counts.iter().all(|n| *n < 9), "{counts:?}");
        // A member leaves: the two left own all 9.
        for s in &statuses[..2] {
            s.update(|v| v.members = ["m1".to_owned(), "m2".to_owned()].into());
        }
        assert_eq!(owned(&statuses[0]) + owned(&statuses[1]), 9);
        // Degraded: every endpoint; the set gone: none.
        statuses[0].update(|v| v.degraded = Some("quorum lost".into()));
        assert_eq!(owned(&statuses[0]), 9);
        statuses[0].endpoint_sets.remove("web", "pods");
        assert_eq!(owned(&statuses[0]), 0);
    }
}
