//! Prometheus metrics (prometheus-client): an engine observer that keeps one
//! series set per group and backend, fed by the owner task's own events, so
//! every group value is the phase the owner computed, never a recomputation.
//!
//! Cardinality: probe-duration histograms are per group and outcome; each
//! backend has only gauges (its last probe's duration, time and interval, and
//! its status state set), so 10,000 backends cost 8 series each, not a
//! histogram each. Flapping is one counter per group, not per backend.

mod server;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub use server::{MetricsError, MetricsListener, MetricsServer, ServeError};

use mcp_health_core::outcome::OutcomeClass;
use mcp_health_core::phase::GroupVerdict;
use mcp_health_core::snapshot::EndpointState;
use mcp_health_engine::{EndpointView, ProbeObserver, ProbeResult, WatchApi};
use mcp_health_proto::v1::{BackendStatus, GroupPhase, ReasonCode};

/// Every value of the backend status state set, as label values.
const STATUSES: [BackendStatus; 5] = [
    BackendStatus::Unknown,
    BackendStatus::Healthy,
    BackendStatus::Degraded,
    BackendStatus::Unhealthy,
    BackendStatus::Unauthenticated,
];
/// The outcomes a rate-limited probe can have, as label values: a -32023
/// answer (rate_limited), a bare 429 holding the verdict (throttled), and a
/// bare 429 past the hold (failure).
const RATE_LIMIT_OUTCOMES: [OutcomeClass; 3] = [OutcomeClass::RateLimited, OutcomeClass::Throttled, OutcomeClass::Failure];
/// Every value of the group phase state set, as label values.
const PHASES: [GroupPhase; 4] = [GroupPhase::Pending, GroupPhase::Ready, GroupPhase::Degraded, GroupPhase::Failed];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    group: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    group: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    group: String,
    backend: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointCountLabels {
    group: String,
    backend: String,
    state: &'static str,
}

/// Per-address series: only with `--metrics-endpoint-series`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    group: String,
    backend: String,
    address: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: &'static str,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    group: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

/// A cause of self-doubt: a closed set (`core::doubt::Cause::ALL`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoubtLabels {
    cause: &'static str,
}

fn probe_histogram() -> Histogram {
    // 5 ms to ~10 s: from a loopback handshake to a probe at its timeout.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// The label value of a status: its proto name without the prefix, lowercase.
pub fn status_label(s: BackendStatus) -> &'static str {
    match s {
        BackendStatus::Unspecified | BackendStatus::Unknown => "unknown",
        BackendStatus::Healthy => "healthy",
        BackendStatus::Degraded => "degraded",
        BackendStatus::Unhealthy => "unhealthy",
        BackendStatus::Unauthenticated => "unauthenticated",
    }
}

pub fn phase_label(p: GroupPhase) -> &'static str {
    match p {
        GroupPhase::Unspecified | GroupPhase::Pending => "pending",
        GroupPhase::Ready => "ready",
        GroupPhase::Degraded => "degraded",
        GroupPhase::Failed => "failed",
    }
}

/// The daemon's metrics. Give it to the engine as its observer, then serve
/// it with [`MetricsServer`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    probe_duration: Family<ProbeLabels, Histogram>,
    /// The outcome labels each group's histogram has, so a deleted group's
    /// series are removed without a fixed list of outcome classes.
    outcomes_seen: Mutex<HashMap<String, Vec<&'static str>>>,
    last_probe_duration: Family<BackendLabels, Gauge<f64, AtomicU64>>,
    /// Set by the replica that probed (the owner in a cluster): "no probe for
    /// 3 intervals" is judged on the max across replicas.
    last_probe_time: Family<BackendLabels, Gauge<f64, AtomicU64>>,
    probe_interval: Family<BackendLabels, Gauge<f64, AtomicU64>>,
    group_transitions: Family<GroupLabels, Counter>,
    backend_status: Family<StatusLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    rate_limited: Family<ProbeLabels, Counter>,
    /// Changes of a backend's tool catalog (depth TOOLS), counted by name only.
    catalog_changes: Family<BackendLabels, Counter>,
    /// 1 while a backend is ejected from real traffic, 0 after its return.
    backend_ejected: Family<BackendLabels, Gauge>,
    /// A discovered backend's endpoints by routing state: 4 series per
    /// backend, whatever its number of addresses.
    backend_endpoints: Family<EndpointCountLabels, Gauge>,
    /// With `--metrics-endpoint-series`: each endpoint's status as a state
    /// set, 5 series per address (`with_endpoint_series`).
    endpoint_status: Option<Family<EndpointLabels, Gauge>>,
    /// The addresses each discovered backend has series for, so the series of
    /// an address that left go with it.
    endpoint_addresses: Mutex<HashMap<(String, String), Vec<String>>>,
    group_phase: Family<PhaseLabels, Gauge>,
    group_routable: Family<GroupLabels, Gauge>,
    group_draining: Family<GroupLabels, Gauge>,
    group_backends: Family<GroupLabels, Gauge>,
    probes_in_flight: Gauge,
    watch_streams: Family<WatchLabels, Gauge>,
    /// 1 per cause while the prober doubts itself for it.
    self_doubt: Family<DoubtLabels, Gauge>,
    /// Failing probes held back by self-doubt, per group.
    held_probes: Family<GroupLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("mcp_health"),
            probe_duration: Family::new_with_constructor(probe_histogram),
            outcomes_seen: Mutex::default(),
            last_probe_duration: Family::default(),
            last_probe_time: Family::default(),
            probe_interval: Family::default(),
            group_transitions: Family::default(),
            backend_status: Family::default(),
            transitions: Family::default(),
            rate_limited: Family::default(),
            catalog_changes: Family::default(),
            backend_endpoints: Family::default(),
            endpoint_status: None,
            endpoint_addresses: Mutex::default(),
            backend_ejected: Family::default(),
            group_phase: Family::default(),
            group_routable: Family::default(),
            group_draining: Family::default(),
            group_backends: Family::default(),
            probes_in_flight: Gauge::default(),
            watch_streams: Family::default(),
            self_doubt: Family::default(),
            held_probes: Family::default(),
        };
        let r = &mut m.registry;
        r.register_with_unit(
            "probe_duration",
            "Duration of probes of live backends, by group and outcome (healthy, slow, tools_failing, rate_limited, throttled, auth, refused, failure)",
            Unit::Seconds,
            m.probe_duration.clone(),
        );
        r.register_with_unit(
            "backend_last_probe_duration",
            "Duration of the last probe of each live backend",
            Unit::Seconds,
            m.last_probe_duration.clone(),
        );
        r.register_with_unit(
            "backend_last_probe_timestamp",
            "Unix time of the last probe of each live backend that this replica made (in a cluster, only its owner's are fresh: take the max across replicas)",
            Unit::Seconds,
            m.last_probe_time.clone(),
        );
        r.register_with_unit(
            "backend_probe_interval",
            "The probe interval of each live backend's policy",
            Unit::Seconds,
            m.probe_interval.clone(),
        );
        r.register(
            "group_backend_transitions",
            "Backend status transitions per group (flapping: its rate)",
            m.group_transitions.clone(),
        );
        r.register(
            "backend_status",
            "Backend status as a state set: 1 for the current status, 0 for the others",
            m.backend_status.clone(),
        );
        r.register(
            "backend_transitions",
            "Backend status transitions, by from and to status",
            m.transitions.clone(),
        );
        r.register(
            "rate_limited_probes",
            "Probes answered with a rate limit (reason RATE_LIMITED), by group and outcome: rate_limited (JSON-RPC -32023, the server is alive), throttled (bare HTTP 429, verdict held) or failure (bare HTTP 429 past rateLimitHold)",
            m.rate_limited.clone(),
        );
        r.register(
            "catalog_changes",
            "Changes of a backend's tool catalog fingerprint (depth TOOLS), by group and backend; the first read is not a change",
            m.catalog_changes.clone(),
        );
        r.register(
            "backend_ejected",
            "1 while a backend is ejected from real traffic (ReportOutcomes, policy.outlier), 0 once it returned; by group and backend",
            m.backend_ejected.clone(),
        );
        r.register(
            "group_phase",
            "Group phase as a state set: 1 for the current phase, 0 for the others",
            m.group_phase.clone(),
        );
        r.register("group_routable_backends", "Routable backends per group", m.group_routable.clone());
        r.register(
            "group_draining_backends",
            "Backends the operator drains per group (not routable; still probed)",
            m.group_draining.clone(),
        );
        r.register("group_backends", "Backends per group", m.group_backends.clone());
        r.register(
            "backend_endpoints",
            "A DNS-discovered backend's endpoints by state: routable, not_routable, leaving (left DNS, still probed) or refused (SSRF rule)",
            m.backend_endpoints.clone(),
        );
        r.register("probes_in_flight", "Probes running now", m.probes_in_flight.clone());
        r.register(
            "watch_streams",
            "Open watch streams, by RPC: group_health (WatchGroupHealth) or grpc_health (grpc.health.v1 Watch)",
            m.watch_streams.clone(),
        );
        r.register(
            "self_doubt",
            "1 while the prober doubts its own failing probes for this cause (scheduling_lag, resolver, canaries): they move no verdict for at most --doubt-max-hold-seconds",
            m.self_doubt.clone(),
        );
        r.register(
            "held_probes",
            "Failing probes held back (not counted toward a verdict) while the prober doubted itself, per group",
            m.held_probes.clone(),
        );
        // Both series exist from the start, at 0, so dashboards need no absent().
        for api in WatchApi::ALL {
            let _series = m.watch_streams.get_or_create(&WatchLabels { api: api.label() });
        }
        for cause in mcp_health_core::doubt::Cause::ALL {
            let _series = m.self_doubt.get_or_create(&DoubtLabels { cause: cause.label() });
        }
        m
    }

    /// Adds `mcp_health_endpoint_status{group,backend,address,status}`: each
    /// discovered endpoint's status as a state set. Cardinality: 5 series per
    /// address of every discovered backend (10,000 pods: 50,000 series), which
    /// is why it is opt-in (`--metrics-endpoint-series`); the default
    /// `backend_endpoints` counts are 4 series per backend.
    pub fn with_endpoint_series(mut self) -> Metrics {
        let family = Family::<EndpointLabels, Gauge>::default();
        self.registry.register(
            "endpoint_status",
            "A DNS-discovered endpoint's status as a state set: 1 for the current status (opt-in: --metrics-endpoint-series)",
            family.clone(),
        );
        self.endpoint_status = Some(family);
        self
    }

    fn forget_endpoints(&self, group: &str, backend: &str, keep: &[String]) {
        let key = (group.to_owned(), backend.to_owned());
        let mut addresses = self.endpoint_addresses.lock().unwrap_or_else(|p| p.into_inner());
        let known = addresses.remove(&key).unwrap_or_default();
        if let Some(family) = &self.endpoint_status {
            for address in known.iter().filter(|a| !keep.contains(a)) {
                for s in STATUSES {
                    family.remove(&EndpointLabels {
                        group: group.to_owned(),
                        backend: backend.to_owned(),
                        address: address.clone(),
                        status: status_label(s),
                    });
                }
            }
        }
        if !keep.is_empty() {
            addresses.insert(key, keep.to_vec());
        }
    }

    /// Adds series read at scrape time (the cluster's).
    pub fn with_collector(mut self, collector: impl prometheus_client::collector::Collector) -> Metrics {
        self.registry.register_collector(Box::new(collector));
        self
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn forget_backend(&self, group: &str, backend: &str) {
        for s in STATUSES {
            self.backend_status.remove(&StatusLabels {
                group: group.to_owned(),
                backend: backend.to_owned(),
                status: status_label(s),
            });
        }
        let labels = BackendLabels {
            group: group.to_owned(),
            backend: backend.to_owned(),
        };
        self.last_probe_duration.remove(&labels);
        self.last_probe_time.remove(&labels);
        self.probe_interval.remove(&labels);
        self.catalog_changes.remove(&labels);
        self.backend_ejected.remove(&labels);
        for state in EndpointState::ALL {
            self.backend_endpoints.remove(&EndpointCountLabels {
                group: group.to_owned(),
                backend: backend.to_owned(),
                state: state.label(),
            });
        }
        self.forget_endpoints(group, backend, &[]);
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<&'static str>>> {
        // Poisoning needs a panic while holding the lock; the map is still whole.
        self.outcomes_seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ProbeObserver for Metrics {
    /// The histogram takes only results for live backends.
    fn probe_applied(&self, r: &ProbeResult) {
        let outcome = r.outcome.class.label();
        {
            let mut seen = self.seen();
            let outcomes = seen.entry(r.group.clone()).or_default();
            if !outcomes.contains(&outcome) {
                outcomes.push(outcome);
            }
        }
        let labels = ProbeLabels {
            group: r.group.clone(),
            outcome,
        };
        let seconds = r.latency.as_secs_f64();
        self.probe_duration.get_or_create(&labels).observe(seconds);
        if r.outcome.reason.code == ReasonCode::RateLimited {
            self.rate_limited.get_or_create(&labels).inc();
        }
        let backend = BackendLabels {
            group: r.group.clone(),
            backend: r.backend.clone(),
        };
        self.last_probe_duration.get_or_create(&backend).set(seconds);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last_probe_time.get_or_create(&backend).set(now.as_secs_f64());
        self.probe_interval.get_or_create(&backend).set(r.interval.as_secs_f64());
    }

    fn backend_status(&self, group: &str, backend: &str, from: Option<BackendStatus>, to: BackendStatus) {
        for s in STATUSES {
            let labels = StatusLabels {
                group: group.to_owned(),
                backend: backend.to_owned(),
                status: status_label(s),
            };
            self.backend_status.get_or_create(&labels).set(i64::from(status_label(s) == status_label(to)));
        }
        if let Some(from) = from {
            self.group_transitions.get_or_create(&GroupLabels { group: group.to_owned() }).inc();
            self.transitions
                .get_or_create(&TransitionLabels {
                    from: status_label(from),
                    to: status_label(to),
                })
                .inc();
        }
    }

    fn group_verdict(&self, group: &str, verdict: &GroupVerdict) {
        for p in PHASES {
            let labels = PhaseLabels {
                group: group.to_owned(),
                phase: phase_label(p),
            };
            self.group_phase
                .get_or_create(&labels)
                .set(i64::from(phase_label(p) == phase_label(verdict.phase)));
        }
        let g = GroupLabels { group: group.to_owned() };
        self.group_routable.get_or_create(&g).set(i64::from(verdict.summary.routable));
        self.group_draining.get_or_create(&g).set(i64::from(verdict.summary.draining));
        self.group_backends.get_or_create(&g).set(i64::from(verdict.summary.total));
    }

    fn backend_removed(&self, group: &str, backend: &str) {
        self.forget_backend(group, backend);
    }

    fn catalog_changed(&self, group: &str, backend: &str, _change: &mcp_health_core::catalog::CatalogChange) {
        let labels = BackendLabels {
            group: group.to_owned(),
            backend: backend.to_owned(),
        };
        self.catalog_changes.get_or_create(&labels).inc();
    }

    fn endpoints(&self, group: &str, backend: &str, endpoints: &[EndpointView]) {
        for state in EndpointState::ALL {
            let n = endpoints.iter().filter(|e| e.state == state).count();
            self.backend_endpoints
                .get_or_create(&EndpointCountLabels {
                    group: group.to_owned(),
                    backend: backend.to_owned(),
                    state: state.label(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let Some(family) = &self.endpoint_status else { return };
        let now: Vec<String> = endpoints.iter().map(|e| e.address.to_string()).collect();
        self.forget_endpoints(group, backend, &now);
        for e in endpoints {
            for s in STATUSES {
                family
                    .get_or_create(&EndpointLabels {
                        group: group.to_owned(),
                        backend: backend.to_owned(),
                        address: e.address.to_string(),
                        status: status_label(s),
                    })
                    .set(i64::from(s == e.status));
            }
        }
    }

    fn probe_held(&self, group: &str, _backend: &str) {
        self.held_probes.get_or_create(&GroupLabels { group: group.to_owned() }).inc();
    }

    fn doubt(&self, doubt: Option<&mcp_health_engine::DoubtView>) {
        let causes = doubt.map(|d| d.causes).unwrap_or_default();
        for cause in mcp_health_core::doubt::Cause::ALL {
            self.self_doubt
                .get_or_create(&DoubtLabels { cause: cause.label() })
                .set(i64::from(causes.contains(cause)));
        }
    }

    fn ejection(&self, group: &str, backend: &str, ejection: Option<&mcp_health_core::outlier::Ejection>, _at: std::time::SystemTime) {
        let labels = BackendLabels {
            group: group.to_owned(),
            backend: backend.to_owned(),
        };
        self.backend_ejected.get_or_create(&labels).set(i64::from(ejection.is_some()));
    }

    fn group_deleted(&self, group: &str, backends: &[String]) {
        for b in backends {
            self.forget_backend(group, b);
        }
        for outcome in self.seen().remove(group).unwrap_or_default() {
            self.probe_duration.remove(&ProbeLabels {
                group: group.to_owned(),
                outcome,
            });
        }
        for class in RATE_LIMIT_OUTCOMES {
            self.rate_limited.remove(&ProbeLabels {
                group: group.to_owned(),
                outcome: class.label(),
            });
        }
        for p in PHASES {
            self.group_phase.remove(&PhaseLabels {
                group: group.to_owned(),
                phase: phase_label(p),
            });
        }
        let g = GroupLabels { group: group.to_owned() };
        self.group_routable.remove(&g);
        self.group_draining.remove(&g);
        self.group_backends.remove(&g);
        self.group_transitions.remove(&g);
        self.held_probes.remove(&g);
    }

    fn probes_in_flight(&self, delta: i64) {
        self.probes_in_flight.inc_by(delta);
    }

    fn watch_streams(&self, api: WatchApi, delta: i64) {
        self.watch_streams.get_or_create(&WatchLabels { api: api.label() }).inc_by(delta);
    }
}

/// A shared handle, as the engine and the server both hold it.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use mcp_health_core::outcome::{ProbeOutcome, Reason, ServerFacts};

    fn result(group: &str, outcome: ProbeOutcome) -> ProbeResult {
        ProbeResult {
            group: group.into(),
            backend: "b".into(),
            epoch: 1,
            endpoint: None,
            outcome,
            latency: Duration::from_millis(3),
            scheduling_lag: Duration::ZERO,
            interval: Duration::from_secs(10),
            reply: None,
            pace: None,
        }
    }

    #[test]
    fn catalog_changes_are_counted_per_backend_and_go_with_it() {
        let m = Metrics::new();
        let change = mcp_health_core::catalog::CatalogChange {
            from: "sha256:a".into(),
            to: "sha256:b".into(),
            diff: None,
        };
        m.catalog_changed("g", "b", &change);
        m.catalog_changed("g", "b", &change);
        let text = m.encode().unwrap();
        assert!(text.contains("mcp_health_catalog_changes_total{group=\"g\",backend=\"b\"} 2\n"), "{text}");
        m.backend_removed("g", "b");
        assert!(!m.encode().unwrap().contains("mcp_health_catalog_changes_total{"));
    }

    #[test]
    fn a_discovered_backend_has_endpoint_counts_and_per_address_series_only_when_asked() {
        let view = |a: &str, status, state| EndpointView {
            address: a.parse().unwrap(),
            status,
            state,
            reason: mcp_health_core::outcome::Reason::new(mcp_health_proto::v1::ReasonCode::NotProbed, ""),
            drained: false,
        };
        let three = [
            view("127.0.0.2:80", BackendStatus::Healthy, EndpointState::Routable),
            view("127.0.0.3:80", BackendStatus::Unhealthy, EndpointState::NotRoutable),
            view("169.254.169.254:80", BackendStatus::Unknown, EndpointState::Refused),
        ];
        let count = |text: &str, state: &str| {
            let series = format!("mcp_health_backend_endpoints{{group=\"g\",backend=\"b\",state=\"{state}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(series.as_str())).map(str::to_owned)
        };
        // By default: counts by state (4 series), no address anywhere.
        let m = Metrics::new();
        m.endpoints("g", "b", &three);
        let text = m.encode().unwrap();
        let counts: Vec<Option<String>> = ["routable", "not_routable", "leaving", "refused"].iter().map(|s| count(&text, s)).collect();
        assert_eq!(counts, [Some("1"), Some("1"), Some("0"), Some("1")].map(|c| c.map(str::to_owned)));
        assert!(!text.contains("127.0.0.2") && !text.contains("mcp_health_endpoint_status"), "{text}");

        // Opted in: each address's status as a state set; an address that
        // left loses its series, and so do all when the backend goes.
        let m = Metrics::new().with_endpoint_series();
        m.endpoints("g", "b", &three);
        let text = m.encode().unwrap();
        assert!(
            text.contains("mcp_health_endpoint_status{group=\"g\",backend=\"b\",address=\"127.0.0.3:80\",status=\"unhealthy\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mcp_health_endpoint_status{group=\"g\",backend=\"b\",address=\"127.0.0.3:80\",status=\"healthy\"} 0\n"),
            "{text}"
        );
        assert_eq!(text.matches("mcp_health_endpoint_status{").count(), 15, "5 per address: {text}");
        m.endpoints("g", "b", &three[..1]);
        let text = m.encode().unwrap();
        assert!(!text.contains("127.0.0.3:80") && text.contains("127.0.0.2:80"), "{text}");
        assert_eq!(count(&text, "not_routable").as_deref(), Some("0"));
        m.backend_removed("g", "b");
        let text = m.encode().unwrap();
        assert!(
            !text.contains("mcp_health_endpoint_status{") && !text.contains("mcp_health_backend_endpoints{"),
            "{text}"
        );
    }

    #[test]
    fn self_doubt_is_a_gauge_per_cause_and_held_probes_a_counter_per_group() {
        use mcp_health_core::doubt::{Cause, Causes};
        let m = Metrics::new();
        let text = m.encode().unwrap();
        for cause in ["scheduling_lag", "resolver", "canaries"] {
            assert!(text.contains(&format!("mcp_health_self_doubt{{cause=\"{cause}\"}} 0\n")), "{text}");
        }
        let view = mcp_health_engine::DoubtView {
            causes: Causes::NONE.with(Cause::Canaries),
            since: std::time::SystemTime::UNIX_EPOCH,
            holds_until: None,
        };
        m.doubt(Some(&view));
        m.probe_held("g", "b");
        m.probe_held("g", "c");
        let text = m.encode().unwrap();
        assert!(text.contains("mcp_health_self_doubt{cause=\"canaries\"} 1\n"), "{text}");
        assert!(text.contains("mcp_health_self_doubt{cause=\"resolver\"} 0\n"), "{text}");
        assert!(text.contains("mcp_health_held_probes_total{group=\"g\"} 2\n"), "{text}");
        m.doubt(None);
        m.group_deleted("g", &["b".into(), "c".into()]);
        let text = m.encode().unwrap();
        assert!(text.contains("mcp_health_self_doubt{cause=\"canaries\"} 0\n"), "{text}");
        assert!(!text.contains("mcp_health_held_probes_total{"), "{text}");
    }

    #[test]
    fn an_ejection_is_a_gauge_per_backend_that_goes_with_it() {
        let m = Metrics::new();
        let ejection = mcp_health_core::outlier::Ejection {
            cause: "5 consecutive failures in real traffic, the last: HTTP 503".into(),
            since: std::time::SystemTime::UNIX_EPOCH,
            until: std::time::SystemTime::UNIX_EPOCH,
            count: 1,
        };
        let now = std::time::SystemTime::UNIX_EPOCH;
        m.ejection("g", "b", Some(&ejection), now);
        assert!(m.encode().unwrap().contains("mcp_health_backend_ejected{group=\"g\",backend=\"b\"} 1\n"));
        m.ejection("g", "b", None, now);
        assert!(m.encode().unwrap().contains("mcp_health_backend_ejected{group=\"g\",backend=\"b\"} 0\n"));
        m.group_deleted("g", &["b".into()]);
        assert!(!m.encode().unwrap().contains("mcp_health_backend_ejected{"));
    }

    #[test]
    fn rate_limited_probes_are_counted_by_outcome_and_go_with_their_group() {
        let m = Metrics::new();
        let limited = || Reason::http(ReasonCode::RateLimited, 429, "429");
        let mut past_hold = ProbeOutcome::throttled(limited());
        past_hold.class = OutcomeClass::Failure;
        for outcome in [
            ProbeOutcome::rate_limited(limited(), ServerFacts::default()),
            ProbeOutcome::rate_limited(limited(), ServerFacts::default()),
            ProbeOutcome::throttled(limited()),
            past_hold,
            // Not rate limited: not counted.
            ProbeOutcome::failure(Reason::http(ReasonCode::HttpStatus, 503, "503")),
            ProbeOutcome::success(ServerFacts::default()),
        ] {
            m.probe_applied(&result("g", outcome));
        }
        let text = m.encode().unwrap();
        let series = |outcome: &str| format!("mcp_health_rate_limited_probes_total{{group=\"g\",outcome=\"{outcome}\"}}");
        assert!(text.contains(&format!("{} 2\n", series("rate_limited"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", series("throttled"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", series("failure"))), "{text}");
        assert_eq!(text.matches("mcp_health_rate_limited_probes_total{").count(), 3, "{text}");
        assert!(
            text.contains("outcome=\"rate_limited\"") && text.contains("mcp_health_probe_duration_seconds_count{group=\"g\",outcome=\"throttled\"} 1"),
            "{text}"
        );
        m.group_deleted("g", &["b".into()]);
        let text = m.encode().unwrap();
        assert!(!text.contains("group=\"g\""), "{text}");
    }
}
