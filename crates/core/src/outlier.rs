//! Outlier ejection from real traffic (Envoy's consecutive-failure outlier
//! detection, our names): what a gateway reports of one request to a backend
//! (`TrafficOutcome`), folded into the backend's `OutlierState`, which ejects
//! it after `consecutiveFailures` failures in a row for `baseEjectionTime × n`
//! (n: its ejections, decaying while it stays in; capped by
//! `maxEjectionTime`), within the group's cap (`may_eject`). The ejection is
//! kept beside the probe verdict, as the operator's drain is; it ends when its
//! time is over and the next probe passes (`OutlierState::probe_passed`).
//! Time is an argument (a monotonic `Instant` to judge, the wall clock to
//! show), never read.

use std::time::{Duration, Instant, SystemTime};

/// Envoy's `consecutive_5xx` default.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Envoy's `base_ejection_time` default.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// Envoy's `max_ejection_time` default.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// Envoy's `max_ejection_percent` default.
pub const DEFAULT_MAX_EJECTED_PERCENT: u32 = 10;

/// A group's outlier policy, validated (`spec::policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Failures in a row in real traffic that eject a backend.
    pub consecutive_failures: u32,
    /// An ejection lasts this times the backend's ejection count.
    pub base_ejection_time: Duration,
    /// The longest one ejection lasts (at least the base time).
    pub max_ejection_time: Duration,
    /// The most of a group's backends ejected at once, in percent; one backend
    /// may always be ejected unless it is 0, which turns ejection off.
    pub max_ejected_percent: u32,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        OutlierPolicy {
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            base_ejection_time: DEFAULT_BASE_EJECTION_TIME,
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejected_percent: DEFAULT_MAX_EJECTED_PERCENT,
        }
    }
}

/// What a gateway saw of one request to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficOutcome {
    /// A good answer.
    Ok,
    /// The connection could not be made (refused, unreachable, TLS failed).
    ConnectFailure,
    /// The connection was reset or closed before the answer.
    Reset,
    /// No answer in the gateway's time.
    Timeout,
    /// An HTTP status other than 2xx (a 2xx is `Ok`).
    HttpStatus(u16),
    /// A JSON-RPC error answer; `tools_call` when the request was `tools/call`.
    JsonRpcError { code: i64, tools_call: bool },
    /// A tool's own error (`isError: true`): the server answered.
    ToolError,
}

impl TrafficOutcome {
    /// Whether it counts toward an ejection: connect failures, resets,
    /// timeouts, 5xx, and JSON-RPC errors to `tools/call` except the ones that
    /// blame the request (parse error, invalid request, method not found,
    /// invalid params: the JSON-RPC 4xx). A 4xx, a tool's own error and any
    /// other answer are the server answering, and end a run of failures (as
    /// any non-5xx ends Envoy's `consecutive_5xx`).
    pub fn is_failure(&self) -> bool {
        match *self {
            TrafficOutcome::ConnectFailure | TrafficOutcome::Reset | TrafficOutcome::Timeout => true,
            TrafficOutcome::HttpStatus(s) => (500..600).contains(&s),
            TrafficOutcome::JsonRpcError { code, tools_call } => tools_call && !matches!(code, -32700 | -32600 | -32601 | -32602),
            TrafficOutcome::Ok | TrafficOutcome::ToolError => false,
        }
    }

    /// As a cause names it: "HTTP 503", "connection reset".
    pub fn describe(&self) -> String {
        match *self {
            TrafficOutcome::Ok => "ok".to_owned(),
            TrafficOutcome::ConnectFailure => "connect failure".to_owned(),
            TrafficOutcome::Reset => "connection reset".to_owned(),
            TrafficOutcome::Timeout => "timeout".to_owned(),
            TrafficOutcome::HttpStatus(s) => format!("HTTP {s}"),
            TrafficOutcome::JsonRpcError { code, tools_call: true } => format!("JSON-RPC error {code} to tools/call"),
            TrafficOutcome::JsonRpcError { code, tools_call: false } => format!("JSON-RPC error {code}"),
            TrafficOutcome::ToolError => "tool error".to_owned(),
        }
    }
}

/// An ejection as readers see it (`snapshot::BackendSnapshot::ejection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// Why, in words we wrote: "5 consecutive failures in real traffic, the last: HTTP 503".
    pub cause: String,
    pub since: SystemTime,
    /// When its time is over; it ends at the first passing probe from then on.
    pub until: SystemTime,
    /// The backend's ejection count this one was timed by (1 for a first).
    pub count: u32,
}

/// Where a group's ejections stand, for its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupEjections {
    /// Backends ejected now.
    pub ejected: usize,
    /// Backends in the group.
    pub total: usize,
}

/// Whether one more backend of the group may be ejected. Envoy's rule with
/// `always_eject_one_host`: never past `maxEjectedPercent` of the group,
/// except that one backend may always be ejected when none is (so the 10%
/// default still ejects in a group of fewer than 10); 0% turns ejection off.
pub fn may_eject(group: GroupEjections, max_percent: u32) -> bool {
    if max_percent == 0 {
        return false;
    }
    group.ejected == 0 || (group.ejected as u64 + 1) * 100 <= group.total as u64 * u64::from(max_percent)
}

/// How long the `count`-th ejection lasts: base × count, capped by the maximum
/// (never below the base).
pub fn ejection_time(policy: &OutlierPolicy, count: u32) -> Duration {
    policy
        .base_ejection_time
        .saturating_mul(count.max(1))
        .min(policy.max_ejection_time.max(policy.base_ejection_time))
}

/// What one report did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Counted (or ignored while ejected): nothing to show.
    Counted,
    /// The backend is ejected from now on (its confirmation probes start).
    Ejected(Ejection),
    /// The threshold was reached but the group's cap holds: not ejected; the
    /// next failure tries again.
    Capped,
}

/// One backend's outlier state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutlierState {
    /// Failures in a row in reports since the last good one (or ejection).
    pub consecutive_failures: u32,
    /// Times ejected, decaying by one per base ejection time spent in after a return.
    pub multiplier: u32,
    /// When the last ejection ended.
    pub returned_at: Option<Instant>,
    /// The ejection in force and the instant its time is over.
    pub ejection: Option<(Ejection, Instant)>,
}

impl OutlierState {
    pub fn ejection(&self) -> Option<&Ejection> {
        self.ejection.as_ref().map(|(e, _)| e)
    }

    pub fn is_ejected(&self) -> bool {
        self.ejection.is_some()
    }

    /// Folds one report. While ejected, reports are ignored (the gateway sends
    /// it no traffic; a request in flight at the ejection says nothing new).
    pub fn report(&mut self, outcome: TrafficOutcome, policy: &OutlierPolicy, group: GroupEjections, now: Instant, wall: SystemTime) -> Reported {
        if self.ejection.is_some() {
            return Reported::Counted;
        }
        if !outcome.is_failure() {
            self.consecutive_failures = 0;
            return Reported::Counted;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures < policy.consecutive_failures {
            return Reported::Counted;
        }
        if !may_eject(group, policy.max_ejected_percent) {
            return Reported::Capped;
        }
        let decayed = match self.returned_at {
            Some(at) if !policy.base_ejection_time.is_zero() => {
                let periods = now.saturating_duration_since(at).as_nanos() / policy.base_ejection_time.as_nanos();
                self.multiplier.saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
            }
            _ => self.multiplier,
        };
        self.multiplier = decayed.saturating_add(1);
        let time = ejection_time(policy, self.multiplier);
        let ejection = Ejection {
            cause: format!(
                "{} consecutive failures in real traffic, the last: {}",
                self.consecutive_failures,
                outcome.describe()
            ),
            since: wall,
            until: wall + time,
            count: self.multiplier,
        };
        self.consecutive_failures = 0;
        self.ejection = Some((ejection.clone(), now + time));
        Reported::Ejected(ejection)
    }

    /// A probe passed at `now`: the ejection ends if its time is over.
    /// Returns the ejection that ended.
    pub fn probe_passed(&mut self, now: Instant) -> Option<Ejection> {
        let (_, ends) = self.ejection.as_ref()?;
        if now < *ends {
            return None;
        }
        self.returned_at = Some(now);
        self.ejection.take().map(|(e, _)| e)
    }

    /// The instant the ejection's time is over, if ejected.
    pub fn ends(&self) -> Option<Instant> {
        self.ejection.as_ref().map(|(_, at)| *at)
    }
}
