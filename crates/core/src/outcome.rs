//! What one probe concluded, before any verdict: the outcome class, its reason
//! code and the facts the backend reported about itself.

use std::net::SocketAddr;
use std::time::Duration;

use mcp_health_proto::v1::{AuthMode, ReasonCode, ResourceMetadataState};

/// The class of a probe result, as the verdict state machine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeClass {
    /// The handshake succeeded within `degraded_latency`.
    Success,
    /// The handshake succeeded, slower than `degraded_latency`.
    Slow,
    /// The handshake succeeded, but `tools/list` answered with a JSON-RPC
    /// error: the server serves MCP, its tools fail.
    ToolsFailing,
    /// The MCP server answered JSON-RPC error -32023 (RateLimited, SEP-3304),
    /// on HTTP 429 or 200: it is alive and asks the prober to slow down.
    /// DEGRADED and routable; it counts like a slow success (it ends a run of
    /// failures and counts toward `healthyThreshold`), never toward
    /// `unhealthyThreshold`.
    RateLimited,
    /// HTTP 429 without the -32023 error (a CDN or proxy in front): the
    /// server's liveness is unproven, so the verdict is held, unchanged. The
    /// scheduler turns it into a `Failure` once a run of them has lasted the
    /// policy's `rate_limit_hold` ([`ProbeOutcome::judge_hold`]).
    Throttled,
    /// 401/403. What that means depends on the backend's auth mode.
    AuthRequired,
    /// The server answered, and the backend's policy refuses it: its catalog
    /// is not accepted (CATALOG_CHANGED) or lacks a required tool
    /// (REQUIRED_TOOL_MISSING). A policy verdict, not a flaky network: it
    /// takes the backend out of routing at once, and the first probe that is
    /// not refused brings it back at once (`verdict::observe`).
    Refused,
    /// Anything else.
    Failure,
}

impl OutcomeClass {
    /// Its name in metrics labels and trace spans: healthy, slow,
    /// tools_failing, rate_limited, throttled, auth, refused or failure.
    pub fn label(self) -> &'static str {
        match self {
            OutcomeClass::Success => "healthy",
            OutcomeClass::Slow => "slow",
            OutcomeClass::ToolsFailing => "tools_failing",
            OutcomeClass::RateLimited => "rate_limited",
            OutcomeClass::Throttled => "throttled",
            OutcomeClass::AuthRequired => "auth",
            OutcomeClass::Refused => "refused",
            OutcomeClass::Failure => "failure",
        }
    }
}

/// Why a probe ended the way it did. `message` is written by us, never copied
/// from a response body, so it can carry no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub http_status: Option<u16>,
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason {
            code,
            http_status: None,
            message: message.into(),
        }
    }

    pub fn http(code: ReasonCode, status: u16, message: impl Into<String>) -> Self {
        Reason {
            code,
            http_status: Some(status),
            message: message.into(),
        }
    }
}

/// Facts a successful (or partly successful) probe learned about the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFacts {
    pub protocol_version: String,
    pub server_name: String,
    pub server_version: String,
    pub tool_count: Option<u32>,
    /// The tool catalog this probe read (depth TOOLS, when due); None when
    /// the probe did not read it (handshake-only between catalog reads).
    pub catalog: Option<crate::catalog::CatalogRead>,
    /// RFC 9728 metadata check, for 401 answers to an anonymous probe;
    /// UNSPECIFIED when not attempted.
    pub resource_metadata: ResourceMetadataState,
}

/// The result of one probe as the prober reports it, before latency is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub class: OutcomeClass,
    pub reason: Reason,
    pub facts: ServerFacts,
    /// The address of the connection the probe's last answer came over (None
    /// when no connection got as far as an HTTP answer): the only address xDS
    /// may hand Envoy, as it passed our resolver and SSRF guard.
    pub peer: Option<SocketAddr>,
    /// How long the backend asked the prober to wait before the next probe:
    /// `Retry-After` of a 429 or 503 (RFC 9110 §10.2.3), or `retryAfterMs` of a
    /// -32023 error. The scheduler honours it within [interval, rate_limit_hold].
    pub retry_after: Option<Duration>,
}

impl ProbeOutcome {
    pub fn success(facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::Success,
            reason: Reason::new(ReasonCode::Ok, "handshake succeeded"),
            facts,
            peer: None,
            retry_after: None,
        }
    }

    pub fn failure(reason: Reason) -> Self {
        ProbeOutcome {
            class: OutcomeClass::Failure,
            reason,
            facts: ServerFacts::default(),
            peer: None,
            retry_after: None,
        }
    }

    /// The handshake succeeded but a deeper check (tools/list) answered with an
    /// error: the server serves MCP, so it stays routable, as DEGRADED.
    pub fn tools_failing(reason: Reason, facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::ToolsFailing,
            reason,
            facts,
            peer: None,
            retry_after: None,
        }
    }

    /// A JSON-RPC -32023 answer: the server is alive and rate-limits the probe.
    pub fn rate_limited(reason: Reason, facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::RateLimited,
            reason,
            facts,
            peer: None,
            retry_after: None,
        }
    }

    /// A bare 429: something in front rate-limits the probe; the server's
    /// liveness is unproven.
    pub fn throttled(reason: Reason) -> Self {
        ProbeOutcome {
            class: OutcomeClass::Throttled,
            reason,
            facts: ServerFacts::default(),
            peer: None,
            retry_after: None,
        }
    }

    pub fn auth_required(reason: Reason, facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::AuthRequired,
            reason,
            facts,
            peer: None,
            retry_after: None,
        }
    }

    /// Turns a success slower than `degraded_latency` into a slow success.
    pub fn judge_latency(mut self, latency: Duration, degraded_latency: Duration) -> Self {
        if self.class == OutcomeClass::Success && latency > degraded_latency {
            self.class = OutcomeClass::Slow;
            self.reason = Reason::new(
                ReasonCode::Slow,
                format!(
                    "handshake took {} ms, over the {} ms degraded latency",
                    latency.as_millis(),
                    degraded_latency.as_millis()
                ),
            );
        }
        self
    }

    /// Turns an answer that proves the server alive (a success, slow, tools
    /// failing or -32023) into a refusal with reason REQUIRED_TOOL_MISSING
    /// naming `missing`: the required tools the backend's last whole catalog
    /// read lacks (`catalog::missing_tools`). A policy verdict: no
    /// hysteresis (`verdict::observe`). Other outcomes (a refused catalog
    /// too) already say more and are kept.
    pub fn judge_required(mut self, missing: &[&str]) -> Self {
        let alive = matches!(
            self.class,
            OutcomeClass::Success | OutcomeClass::Slow | OutcomeClass::ToolsFailing | OutcomeClass::RateLimited
        );
        if alive && !missing.is_empty() {
            self.class = OutcomeClass::Refused;
            self.reason = Reason::new(
                ReasonCode::RequiredToolMissing,
                format!("required tools missing from the catalog: {}", missing.join(", ")),
            );
        }
        self
    }

    /// Turns an answer that proves the server alive into a refusal with
    /// reason CATALOG_CHANGED when the backend's catalog policy is BLOCK and
    /// its last catalog read (`fingerprint`) is not accepted
    /// (`catalog::blocked`). `since_accepted` is the diff from the last
    /// accepted catalog read, when there was one: its tool names go in the
    /// message, never a description.
    pub fn judge_blocked(mut self, fingerprint: &str, since_accepted: Option<&crate::catalog::CatalogDiff>) -> Self {
        let alive = matches!(
            self.class,
            OutcomeClass::Success | OutcomeClass::Slow | OutcomeClass::ToolsFailing | OutcomeClass::RateLimited
        );
        if alive {
            let mut message = format!("catalog {fingerprint} is not accepted");
            if let Some(d) = since_accepted.filter(|d| !d.is_empty()) {
                message.push_str(&format!("; since the last accepted catalog: {}", crate::catalog::describe(d)));
            }
            self.class = OutcomeClass::Refused;
            self.reason = Reason::new(ReasonCode::CatalogChanged, message);
        }
        self
    }

    /// Turns an answer that proves the server alive into a failure with
    /// `reason` (CHECK_FAILED, from `check::CheckFailure::reason`) when a
    /// synthetic check last failed: hysteresis as for any failure, with the
    /// backend's thresholds. Other outcomes (a refusal too) already say more
    /// and are kept.
    pub fn judge_check(mut self, reason: Reason) -> Self {
        let alive = matches!(
            self.class,
            OutcomeClass::Success | OutcomeClass::Slow | OutcomeClass::ToolsFailing | OutcomeClass::RateLimited
        );
        if alive {
            self.class = OutcomeClass::Failure;
            self.reason = reason;
        }
        self
    }

    /// Turns a bare 429 into a failure once the run of bare 429s it belongs to
    /// has lasted `throttled_for` >= `hold` (the policy's `rate_limit_hold`).
    /// The reason (RATE_LIMITED, HTTP 429) is kept, so an UNHEALTHY verdict
    /// says why.
    pub fn judge_hold(mut self, throttled_for: Duration, hold: Duration) -> Self {
        if self.class == OutcomeClass::Throttled && throttled_for >= hold {
            self.class = OutcomeClass::Failure;
            self.reason.message = format!(
                "HTTP 429 without a JSON-RPC RateLimited error for {} s, past the {} s rate-limit hold",
                throttled_for.as_secs(),
                hold.as_secs()
            );
        }
        self
    }
}

/// How long after an answer the next probe may come at the earliest, when the
/// backend asked for `retry_after`: at most `cap` (the policy's
/// `rate_limit_hold`). The scheduler takes the later of this and its regular
/// plan, so a hint never brings a probe sooner than the interval.
pub fn retry_wait(retry_after: Option<Duration>, cap: Duration) -> Duration {
    retry_after.map_or(Duration::ZERO, |wait| wait.min(cap))
}

/// Whether a backend's reason is a policy refusal (`OutcomeClass::Refused`):
/// the verdict it left stands only until a probe that is not refused.
pub fn is_refusal(code: ReasonCode) -> bool {
    matches!(code, ReasonCode::CatalogChanged | ReasonCode::RequiredToolMissing)
}

/// Whether a 401/403 answer to this backend's probe proves it alive.
/// Only per-user backends are probed anonymously on purpose.
pub fn auth_required_is_liveness(auth: AuthMode) -> bool {
    auth == AuthMode::PerUser
}
