//! The domain snapshot every edge maps from: a group's backends, each a list
//! of endpoints with its own verdict, reason, facts and connected address, and
//! `routable` computed here once. Immutable plain values; the engine publishes
//! them behind an `Arc`, and the API, grpc.health, xDS, the status page,
//! metrics and cluster sharing each map them to their own wire in their own
//! module.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::outcome::{Reason, ServerFacts};
pub use crate::outlier::Ejection;
use crate::phase::{BackendView, GroupVerdict};
use crate::verdict::Verdict;
use mcp_health_proto::v1::{AuthMode, BackendStatus, GroupPhase, GroupSource, Transport};

/// One group as of one engine change.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSnapshot {
    pub name: String,
    /// The engine sequence number of the group's last published change (the
    /// API's `revision`).
    pub sequence: u64,
    /// The generation of its spec.
    pub generation: u64,
    pub source: GroupSource,
    /// The phase, summary and message (`phase::group_verdict`).
    pub verdict: GroupVerdict,
    /// In name order.
    pub backends: Vec<BackendSnapshot>,
}

impl GroupSnapshot {
    pub fn phase(&self) -> GroupPhase {
        self.verdict.phase
    }

    pub fn backend(&self, name: &str) -> Option<&BackendSnapshot> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// One backend: what its spec says, the operator's drain flag, and its endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendSnapshot {
    pub name: String,
    pub url: String,
    pub transport: Transport,
    pub auth: AuthMode,
    /// The operator's drain flag: beside the observed verdicts, never inside them.
    pub drain: bool,
    /// Set while real traffic ejected the backend (`core::outlier`): beside
    /// the verdicts like `drain`, never inside them.
    pub ejection: Option<Ejection>,
    /// Exactly one until DNS discovery gives a backend several addresses.
    pub endpoints: Vec<EndpointSnapshot>,
    /// What the backend's tool catalog shows (fingerprint, when it changed, a note).
    pub catalog: CatalogFacts,
}

impl BackendSnapshot {
    /// Its first endpoint: the backend's verdict while it has one endpoint.
    ///
    /// A backend always has at least one endpoint (`BackendSnapshot::single`).
    pub fn endpoint(&self) -> &EndpointSnapshot {
        &self.endpoints[0]
    }

    pub fn status(&self) -> BackendStatus {
        self.endpoint().status()
    }

    /// Whether traffic may go to the backend: some endpoint is routable.
    pub fn routable(&self) -> bool {
        self.endpoints.iter().any(|e| e.routable)
    }

    /// The backend as the phase counts it.
    pub fn view(&self) -> BackendView {
        BackendView {
            status: self.status(),
            auth: self.auth,
            draining: self.drain,
            ejected: self.ejection.is_some(),
        }
    }

    /// A backend with one endpoint, its `routable` computed from the verdict,
    /// the auth mode, the drain flag and the ejection (`BackendView::routable`).
    pub fn single(spec: BackendSpecShown, observed: Observed, ejection: Option<Ejection>) -> BackendSnapshot {
        let routable = BackendView {
            status: observed.verdict.status,
            auth: spec.auth,
            draining: spec.drain,
            ejected: ejection.is_some(),
        }
        .routable();
        BackendSnapshot {
            name: spec.name,
            url: spec.url,
            transport: spec.transport,
            auth: spec.auth,
            drain: spec.drain,
            ejection,
            endpoints: vec![EndpointSnapshot { observed, routable }],
            catalog: spec.catalog,
        }
    }
}

/// What a snapshot shows of a backend's spec.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendSpecShown {
    pub name: String,
    pub url: String,
    pub transport: Transport,
    pub auth: AuthMode,
    pub drain: bool,
    pub catalog: CatalogFacts,
}

/// What probes observed of one endpoint (and, with the catalog, what replicas share).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub address: Option<SocketAddr>,
    pub verdict: Verdict,
    pub reason: Reason,
    pub facts: ServerFacts,
    pub last_latency: Option<Duration>,
    pub last_probe: Option<SystemTime>,
    pub last_transition: Option<SystemTime>,
}

/// One address of a backend and its own verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSnapshot {
    /// What its probes observed: the address they connected to (None until a
    /// probe reached it; xDS withholds such an endpoint), the verdict, reason,
    /// facts and times.
    pub observed: Observed,
    /// Computed once, from the verdict, the backend's auth mode and drain flag.
    pub routable: bool,
}

impl EndpointSnapshot {
    pub fn status(&self) -> BackendStatus {
        self.observed.verdict.status
    }

    /// The reason's message, after the progress toward the next threshold
    /// when there is some ("1 of 3 failed probes: connection refused").
    pub fn message(&self) -> String {
        let o = &self.observed;
        if o.verdict.progress.is_empty() {
            o.reason.message.clone()
        } else {
            format!("{}: {}", o.verdict.progress, o.reason.message)
        }
    }
}

/// What a status shows of a backend's tool catalog (and what replicas share of it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogFacts {
    /// Empty until a catalog was read.
    pub fingerprint: String,
    /// When the fingerprint last changed, or was first known.
    pub changed_at: Option<SystemTime>,
    /// Why the latest read gave up; empty after a whole read.
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_health_proto::v1::ReasonCode;

    fn backend(status: BackendStatus, auth: AuthMode, drain: bool, ejected: bool) -> BackendSnapshot {
        BackendSnapshot::single(
            BackendSpecShown {
                name: "a".into(),
                url: "http://127.0.0.1:1/mcp".into(),
                transport: Transport::StreamableHttp,
                auth,
                drain,
                catalog: CatalogFacts::default(),
            },
            Observed {
                address: None,
                verdict: Verdict { status, ..Verdict::unknown() },
                reason: Reason::new(ReasonCode::Ok, "ok"),
                facts: ServerFacts::default(),
                last_latency: None,
                last_probe: None,
                last_transition: None,
            },
            ejected.then(|| Ejection {
                cause: "5 consecutive failures in real traffic, the last: HTTP 503".into(),
                since: std::time::SystemTime::UNIX_EPOCH,
                until: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(30),
                count: 1,
            }),
        )
    }

    /// The drain flag and the ejection sit beside the verdict: a drained or
    /// ejected backend keeps its observed status and is not routable;
    /// `routable` is `BackendView`'s, once.
    #[test]
    fn routable_is_the_verdict_with_the_drain_and_the_ejection_beside_it() {
        use AuthMode::{None as NoAuth, PerUser};
        use BackendStatus::*;
        // (status, auth, drained, ejected, routable)
        let rows = [
            (Healthy, NoAuth, false, false, true),
            (Healthy, NoAuth, true, false, false),
            (Healthy, NoAuth, false, true, false),
            (Degraded, NoAuth, false, false, true),
            (Degraded, NoAuth, false, true, false),
            (Unauthenticated, PerUser, false, false, true),
            (Unauthenticated, PerUser, false, true, false),
            (Unauthenticated, NoAuth, false, false, false),
            (Unhealthy, NoAuth, false, false, false),
            (Unhealthy, NoAuth, false, true, false),
            (Unknown, NoAuth, false, false, false),
        ];
        for (status, auth, drain, ejected, routable) in rows {
            let b = backend(status, auth, drain, ejected);
            let row = format!("{status:?} {auth:?} drain={drain} ejected={ejected}");
            assert_eq!(
                (b.status(), b.drain, b.ejection.is_some()),
                (status, drain, ejected),
                "{row}: the verdict is kept as observed"
            );
            assert_eq!(b.routable(), routable, "{row}");
            assert_eq!(b.endpoint().routable, b.view().routable(), "{row}: one rule");
            assert_eq!(b.endpoints.len(), 1);
        }
    }

    #[test]
    fn an_endpoints_message_leads_with_its_progress() {
        let mut b = backend(BackendStatus::Healthy, AuthMode::None, false, false);
        assert_eq!(b.endpoint().message(), "ok");
        b.endpoints[0].observed.verdict.progress = "1 of 3 failed probes".into();
        assert_eq!(b.endpoint().message(), "1 of 3 failed probes: ok");
    }
}
