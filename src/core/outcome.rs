//! What one probe concluded, before any verdict: the outcome class, its reason
//! code and the facts the backend reported about itself.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::v1::{AuthMode, ReasonCode, ResourceMetadataState};

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
    /// 401/403. What that means depends on the backend's auth mode.
    AuthRequired,
    /// Anything else.
    Failure,
}

impl OutcomeClass {
    /// Its name in metrics labels and trace spans: healthy, slow, tools_failing, auth or failure.
    pub fn label(self) -> &'static str {
        match self {
            OutcomeClass::Success => "healthy",
            OutcomeClass::Slow => "slow",
            OutcomeClass::ToolsFailing => "tools_failing",
            OutcomeClass::AuthRequired => "auth",
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
}

impl ProbeOutcome {
    pub fn success(facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::Success,
            reason: Reason::new(ReasonCode::Ok, "handshake succeeded"),
            facts,
            peer: None,
        }
    }

    pub fn failure(reason: Reason) -> Self {
        ProbeOutcome {
            class: OutcomeClass::Failure,
            reason,
            facts: ServerFacts::default(),
            peer: None,
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
        }
    }

    pub fn auth_required(reason: Reason, facts: ServerFacts) -> Self {
        ProbeOutcome {
            class: OutcomeClass::AuthRequired,
            reason,
            facts,
            peer: None,
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
}

/// Whether a 401/403 answer to this backend's probe proves it alive.
/// Only per-user backends are probed anonymously on purpose.
pub fn auth_required_is_liveness(auth: AuthMode) -> bool {
    auth == AuthMode::PerUser
}
