//! Probe policy: defaults, the merge of backend over group over defaults, and
//! range checks of every field that was set.

use std::time::Duration;

use super::{Violations, join};
use crate::outlier::OutlierPolicy;
use crate::verdict::Thresholds;
use mcp_health_proto::v1::ProbePolicy;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;
pub const DEFAULT_DEGRADED_LATENCY: Duration = Duration::from_secs(2);
pub const DEFAULT_JITTER_PERCENT: u32 = 10;
pub const DEFAULT_INITIAL_SPREAD: Duration = Duration::from_secs(10);
pub const DEFAULT_RATE_LIMIT_HOLD: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_CATALOG_INTERVAL: Duration = Duration::from_secs(5 * 60);
const MIN_CATALOG_INTERVAL: Duration = Duration::from_secs(1);
/// The default edge interval is a fifth of the interval, at least this (and
/// never more than the interval).
pub const MIN_DEFAULT_EDGE_INTERVAL: Duration = Duration::from_millis(250);

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_THRESHOLD: u32 = 100;
const MAX_JITTER_PERCENT: u32 = 50;

/// A resolved, validated policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub interval: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
    pub degraded_latency: Duration,
    pub jitter_percent: u32,
    /// The longest a first probe waits (with `interval`: the smaller of the two).
    pub initial_spread: Duration,
    /// How long a run of bare 429s holds the verdict, and the longest wait a
    /// `Retry-After` or `retryAfterMs` can impose on the next probe.
    pub rate_limit_hold: Duration,
    /// The edge interval the spec set (group or backend), checked to be at
    /// most the interval; None: the default, see [`Policy::edge_interval`].
    pub edge_interval_set: Option<Duration>,
    /// At depth TOOLS: the longest time between two reads of the whole tool
    /// catalog; the probes in between are handshake-only.
    pub catalog_interval: Duration,
    /// Outlier ejection from real traffic: the group's (a backend cannot set it).
    pub outlier: OutlierPolicy,
}

impl Policy {
    /// The interval between probes while a change of status is pending
    /// (`core::verdict::Pace::Edge`): the one set, else a fifth of the
    /// interval, at least 250 ms, never more than the interval. Derived on
    /// use, so a backend that sets only its interval gets its own default.
    pub fn edge_interval(&self) -> Duration {
        self.edge_interval_set
            .unwrap_or_else(|| (self.interval / 5).max(MIN_DEFAULT_EDGE_INTERVAL).min(self.interval))
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            thresholds: Thresholds {
                unhealthy: DEFAULT_UNHEALTHY_THRESHOLD,
                healthy: DEFAULT_HEALTHY_THRESHOLD,
            },
            degraded_latency: DEFAULT_DEGRADED_LATENCY,
            jitter_percent: DEFAULT_JITTER_PERCENT,
            initial_spread: DEFAULT_INITIAL_SPREAD,
            rate_limit_hold: DEFAULT_RATE_LIMIT_HOLD,
            edge_interval_set: None,
            catalog_interval: DEFAULT_CATALOG_INTERVAL,
            outlier: OutlierPolicy::default(),
        }
    }
}

/// Converts a proto duration, rejecting negative or out-of-range values.
pub fn duration(d: &pbjson_types::Duration) -> Option<Duration> {
    let seconds = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}

/// Applies the fields `layer` sets over `base`, checking each one at `path`.
fn overlay(base: &mut Policy, layer: &ProbePolicy, path: &str, v: &mut Violations) {
    let mut dur = |field: &str, value: &Option<pbjson_types::Duration>, min: Duration, max: Duration, slot: &mut Duration| {
        let Some(value) = value else { return };
        match duration(value) {
            Some(d) if d >= min && d <= max => *slot = d,
            _ => v.add(join(path, field), format!("must be between {min:?} and {max:?}")),
        }
    };
    dur("interval", &layer.interval, MIN_INTERVAL, MAX_INTERVAL, &mut base.interval);
    dur("timeout", &layer.timeout, MIN_TIMEOUT, MAX_INTERVAL, &mut base.timeout);
    dur(
        "degradedLatency",
        &layer.degraded_latency,
        Duration::from_millis(1),
        MAX_INTERVAL,
        &mut base.degraded_latency,
    );
    dur("initialSpread", &layer.initial_spread, Duration::ZERO, MAX_INTERVAL, &mut base.initial_spread);
    dur("rateLimitHold", &layer.rate_limit_hold, Duration::ZERO, MAX_INTERVAL, &mut base.rate_limit_hold);
    dur(
        "catalogInterval",
        &layer.catalog_interval,
        MIN_CATALOG_INTERVAL,
        MAX_INTERVAL,
        &mut base.catalog_interval,
    );
    // Bounded below like the interval; its bound by the interval is checked
    // after the merge (`check_timing`), since either may come from another layer.
    let mut edge = Duration::ZERO;
    dur("edgeInterval", &layer.edge_interval, MIN_INTERVAL, MAX_INTERVAL, &mut edge);
    if !edge.is_zero() {
        base.edge_interval_set = Some(edge);
    }
    let mut threshold = |field: &str, value: Option<u32>, slot: &mut u32| {
        let Some(value) = value else { return };
        if (1..=MAX_THRESHOLD).contains(&value) {
            *slot = value;
        } else {
            v.add(join(path, field), format!("must be between 1 and {MAX_THRESHOLD}"));
        }
    };
    threshold("unhealthyThreshold", layer.unhealthy_threshold, &mut base.thresholds.unhealthy);
    threshold("healthyThreshold", layer.healthy_threshold, &mut base.thresholds.healthy);
    if let Some(jitter) = layer.jitter_percent {
        if jitter <= MAX_JITTER_PERCENT {
            base.jitter_percent = jitter;
        } else {
            v.add(join(path, "jitterPercent"), format!("must be between 0 and {MAX_JITTER_PERCENT}"));
        }
    }
}

fn sets_timing(p: Option<&ProbePolicy>) -> bool {
    p.is_some_and(|p| p.interval.is_some() || p.timeout.is_some() || p.edge_interval.is_some())
}

/// The group's own policy: its fields over the defaults, checked once at
/// `group_path` whether or not the group has backends.
pub(crate) fn group(group: Option<&ProbePolicy>, group_path: &str, v: &mut Violations) -> Policy {
    let mut policy = Policy::default();
    if let Some(g) = group {
        overlay(&mut policy, g, group_path, v);
        if let Some(o) = &g.outlier {
            policy.outlier = outlier(o, &join(group_path, "outlier"), v);
        }
    }
    check_timing(&policy, group_path, v);
    policy
}

const MAX_CONSECUTIVE_FAILURES: u32 = 1000;
const MIN_EJECTION_TIME: Duration = Duration::from_secs(1);

/// The group's outlier policy: its fields over the defaults, each checked.
fn outlier(o: &mcp_health_proto::v1::OutlierPolicy, path: &str, v: &mut Violations) -> OutlierPolicy {
    let mut p = OutlierPolicy::default();
    if let Some(n) = o.consecutive_failures {
        if (1..=MAX_CONSECUTIVE_FAILURES).contains(&n) {
            p.consecutive_failures = n;
        } else {
            v.add(join(path, "consecutiveFailures"), format!("must be between 1 and {MAX_CONSECUTIVE_FAILURES}"));
        }
    }
    let mut dur = |field: &str, value: &Option<pbjson_types::Duration>, slot: &mut Duration| {
        let Some(value) = value else { return false };
        match duration(value) {
            Some(d) if (MIN_EJECTION_TIME..=MAX_INTERVAL).contains(&d) => {
                *slot = d;
                true
            }
            _ => {
                v.add(join(path, field), format!("must be between {MIN_EJECTION_TIME:?} and {MAX_INTERVAL:?}"));
                false
            }
        }
    };
    dur("baseEjectionTime", &o.base_ejection_time, &mut p.base_ejection_time);
    if dur("maxEjectionTime", &o.max_ejection_time, &mut p.max_ejection_time) {
        if p.max_ejection_time < p.base_ejection_time {
            v.add(
                join(path, "maxEjectionTime"),
                format!(
                    "must not be shorter than baseEjectionTime ({:?} < {:?})",
                    p.max_ejection_time, p.base_ejection_time
                ),
            );
        }
    } else {
        // Unset: the default, or the base when that is longer.
        p.max_ejection_time = p.max_ejection_time.max(p.base_ejection_time);
    }
    if let Some(pct) = o.max_ejected_percent {
        if pct <= 100 {
            p.max_ejected_percent = pct;
        } else {
            v.add(join(path, "maxEjectedPercent"), "must be between 0 and 100");
        }
    }
    p
}

/// Resolves the effective policy of one backend: its own fields over the
/// group's (already checked by [`group`]). `backend_path` names the
/// backend's `policy` field for error messages.
pub(crate) fn resolve(group: Policy, backend: Option<&ProbePolicy>, backend_path: &str, v: &mut Violations) -> Policy {
    let mut policy = group;
    if let Some(b) = backend {
        overlay(&mut policy, b, backend_path, v);
        if b.outlier.is_some() {
            v.add(
                join(backend_path, "outlier"),
                "may be set only on the group's policy: the ejection cap is the group's",
            );
        }
    }
    // Without timing of its own, the backend inherits the group's timing,
    // whose error (if any) was reported once for the group.
    if sets_timing(backend) {
        check_timing(&policy, backend_path, v);
    }
    policy
}

/// The checks between fields that may come from different layers.
fn check_timing(policy: &Policy, path: &str, v: &mut Violations) {
    if policy.timeout >= policy.interval {
        v.add(
            join(path, "timeout"),
            format!("must be shorter than the interval ({:?} >= {:?})", policy.timeout, policy.interval),
        );
    }
    if let Some(edge) = policy.edge_interval_set
        && edge > policy.interval
    {
        v.add(
            join(path, "edgeInterval"),
            format!("must not be longer than the interval ({edge:?} > {:?})", policy.interval),
        );
    }
}
