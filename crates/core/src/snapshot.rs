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
use crate::phase::{BackendView, GroupVerdict, aggregate_status};
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
    /// Exactly one for a backend at a literal address or one name; a
    /// discovered backend (issue 23) has one per address, leaving and refused
    /// ones included, and may have none.
    pub endpoints: Vec<EndpointSnapshot>,
    /// The backend's status from its endpoints' (`phase::aggregate_status`),
    /// computed once in the constructors.
    pub status: BackendStatus,
    /// Its endpoints come from DNS discovery (`BackendSnapshot::discovered`).
    pub discovered: bool,
    /// What the backend's tool catalog shows (fingerprint, when it changed, a note).
    pub catalog: CatalogFacts,
}

impl BackendSnapshot {
    /// Its first endpoint: the backend's verdict while it has one endpoint.
    ///
    /// Panics for a discovered backend without endpoints (an empty answer):
    /// the edges read `endpoints.first()`; this is for one-endpoint backends.
    pub fn endpoint(&self) -> &EndpointSnapshot {
        &self.endpoints[0]
    }

    /// The backend's status: its endpoint's, or the aggregate of a
    /// discovered backend's endpoints.
    pub fn status(&self) -> BackendStatus {
        self.status
    }

    /// Whether traffic may go to the backend (`BackendView::routable` of its
    /// status): some endpoint is routable, and a required share of them.
    pub fn routable(&self) -> bool {
        self.view().routable()
    }

    /// How many of a discovered backend's endpoints still in DNS are
    /// routable, of how many ("2 of 3 endpoints routable"; drained, leaving
    /// and refused ones named apart).
    pub fn endpoints_message(&self) -> String {
        let counted = self.endpoints.iter().filter(|e| e.place.counted()).count();
        let routable = self.endpoints.iter().filter(|e| e.routable).count();
        let drained = self.endpoints.iter().filter(|e| e.place.drained && !e.place.leaving).count();
        let leaving = self.endpoints.iter().filter(|e| e.place.leaving).count();
        let refused = self.endpoints.iter().filter(|e| e.place.refused.is_some()).count();
        let mut text = if counted == 0 && drained > 0 {
            "every endpoint in DNS is drained".to_owned()
        } else if counted == 0 {
            "no endpoints in DNS".to_owned()
        } else {
            format!("{routable} of {counted} endpoint{} routable", if counted == 1 { "" } else { "s" })
        };
        if drained > 0 && counted > 0 {
            text.push_str(&format!("; {drained} drained"));
        }
        if leaving > 0 {
            text.push_str(&format!("; {leaving} leaving DNS (draining)"));
        }
        if refused > 0 {
            text.push_str(&format!("; {refused} refused"));
        }
        text
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
            status: observed.verdict.status,
            discovered: false,
            endpoints: vec![EndpointSnapshot {
                observed,
                routable,
                place: Place::default(),
            }],
            catalog: spec.catalog,
        }
    }

    /// A discovered backend: each endpoint routable by `BackendView::routable`
    /// unless it is leaving DNS, refused or drained; the backend's status
    /// aggregated over the endpoints still in DNS and not drained
    /// (`phase::aggregate_status`); with none, `empty` (UNKNOWN before the
    /// first answer, else UNHEALTHY: an empty answer, or every endpoint drained).
    pub fn discovered(spec: BackendSpecShown, endpoints: Vec<(Observed, Place)>, min_healthy_percent: Option<u32>, empty: BackendStatus) -> BackendSnapshot {
        let endpoints: Vec<EndpointSnapshot> = endpoints
            .into_iter()
            .map(|(observed, place)| {
                let routable = place.counted()
                    && BackendView {
                        status: observed.verdict.status,
                        auth: spec.auth,
                        draining: spec.drain,
                        ejected: false,
                    }
                    .routable();
                EndpointSnapshot { observed, routable, place }
            })
            .collect();
        let counted = endpoints.iter().filter(|e| e.place.counted());
        let status = aggregate_status(counted.map(EndpointSnapshot::status), spec.auth, min_healthy_percent).unwrap_or(empty);
        BackendSnapshot {
            name: spec.name,
            url: spec.url,
            transport: spec.transport,
            auth: spec.auth,
            drain: spec.drain,
            // The engine refuses real-traffic reports for a discovered
            // backend (its probes are per endpoint, so none could confirm or
            // end an ejection of the whole backend).
            ejection: None,
            endpoints,
            status,
            discovered: true,
            catalog: spec.catalog,
        }
    }
}

/// Where a discovered endpoint stands in DNS; all default for a backend's one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// Left DNS: still probed, not routable (DRAINING), dropped at its first
    /// failed probe or after the removal grace (`discovery::EndpointSet`).
    pub leaving: bool,
    /// Refused by the SSRF rule: shown with why, never probed, never routable.
    pub refused: Option<String>,
    /// SRV priority and weight (0 for A/AAAA answers).
    pub priority: u16,
    pub weight: u16,
    /// The operator drains this endpoint (`BackendSpec.drained_endpoints`):
    /// still probed and shown, never routable (DRAINING in EDS), not counted.
    pub drained: bool,
}

impl Place {
    /// Whether the endpoint counts in its backend's status and may be
    /// routable: in DNS, not refused, not drained by the operator.
    pub fn counted(&self) -> bool {
        !self.leaving && self.refused.is_none() && !self.drained
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
    /// Computed once, from the verdict, the backend's auth mode and drain flag
    /// (and never for a leaving or refused endpoint).
    pub routable: bool,
    /// Where it stands in DNS (discovered backends).
    pub place: Place,
}

/// Where an endpoint stands for routing, as metrics count endpoints: one
/// value per endpoint, so the counts add up to the endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointState {
    Routable,
    /// In DNS, probed, and not routable by its verdict (or drained by the
    /// operator, the backend or this endpoint, or ejected).
    NotRoutable,
    /// Left DNS: still probed, never routable (DRAINING in EDS).
    Leaving,
    /// Refused by the SSRF rule: never probed, never routable.
    Refused,
}

impl EndpointState {
    pub const ALL: [EndpointState; 4] = [
        EndpointState::Routable,
        EndpointState::NotRoutable,
        EndpointState::Leaving,
        EndpointState::Refused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EndpointState::Routable => "routable",
            EndpointState::NotRoutable => "not_routable",
            EndpointState::Leaving => "leaving",
            EndpointState::Refused => "refused",
        }
    }
}

impl EndpointSnapshot {
    pub fn status(&self) -> BackendStatus {
        self.observed.verdict.status
    }

    /// Where it stands for routing (refused before leaving before routable).
    pub fn state(&self) -> EndpointState {
        if self.place.refused.is_some() {
            EndpointState::Refused
        } else if self.place.leaving {
            EndpointState::Leaving
        } else if self.routable {
            EndpointState::Routable
        } else {
            EndpointState::NotRoutable
        }
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

    fn observed(status: BackendStatus) -> Observed {
        backend(status, AuthMode::None, false, false).endpoints.remove(0).observed
    }

    /// Builds a discovered backend from (status, leaving, refused) rows and
    /// checks its status, routability and each endpoint's.
    #[track_caller]
    fn check_discovered(rows: &[(BackendStatus, bool, bool)], drain: bool, min_pct: Option<u32>, want: (BackendStatus, bool), want_endpoints: &[bool]) {
        let spec = BackendSpecShown {
            drain,
            ..BackendSpecShown {
                name: "a".into(),
                url: "http://pods.test:8080/mcp".into(),
                transport: Transport::StreamableHttp,
                auth: AuthMode::None,
                drain: false,
                catalog: CatalogFacts::default(),
            }
        };
        let endpoints = rows
            .iter()
            .map(|(status, leaving, refused)| {
                let place = Place {
                    leaving: *leaving,
                    refused: refused.then(|| "link-local".to_owned()),
                    ..Place::default()
                };
                (observed(*status), place)
            })
            .collect();
        let b = BackendSnapshot::discovered(spec, endpoints, min_pct, BackendStatus::Unhealthy);
        assert!(b.discovered);
        assert_eq!((b.status(), b.routable()), want, "{rows:?} drain={drain} min={min_pct:?}");
        let routable: Vec<bool> = b.endpoints.iter().map(|e| e.routable).collect();
        assert_eq!(routable, want_endpoints, "{rows:?} drain={drain}: endpoints");
    }

    #[test]
    fn a_discovered_backend_aggregates_the_endpoints_still_in_dns() {
        use BackendStatus::*;
        let (f, t) = (false, true);
        check_discovered(&[(Healthy, f, f), (Healthy, f, f), (Healthy, f, f)], f, None, (Healthy, t), &[t, t, t]);
        check_discovered(&[(Healthy, f, f), (Unhealthy, f, f)], f, None, (Degraded, t), &[t, f]);
        let nine_dead: Vec<_> = std::iter::once((Healthy, f, f)).chain(std::iter::repeat_n((Unhealthy, f, f), 9)).collect();
        check_discovered(&nine_dead, f, None, (Degraded, t), &[[t].as_slice(), &[f; 9]].concat());
        check_discovered(&nine_dead, f, Some(50), (Unhealthy, f), &[[t].as_slice(), &[f; 9]].concat());
        // A leaving endpoint is probed and shown, never routable, never counted.
        check_discovered(&[(Healthy, f, f), (Unhealthy, t, f)], f, None, (Healthy, t), &[t, f]);
        check_discovered(&[(Unhealthy, f, f), (Healthy, t, f)], f, None, (Unhealthy, f), &[f, f]);
        // A refused one likewise.
        check_discovered(&[(Healthy, f, f), (Unknown, f, t)], f, None, (Healthy, t), &[t, f]);
        // Drained: the statuses stand, nothing is routable.
        check_discovered(&[(Healthy, f, f), (Healthy, f, f)], t, None, (Healthy, f), &[f, f]);
        // None left in DNS: the caller's status.
        check_discovered(&[], f, None, (Unhealthy, f), &[]);
        check_discovered(&[(Healthy, t, f)], f, None, (Unhealthy, f), &[f]);
    }

    #[test]
    fn a_discovered_backend_says_how_many_endpoints_are_routable() {
        let place = |leaving: bool, refused: bool| Place {
            leaving,
            refused: refused.then(|| "link-local".to_owned()),
            ..Place::default()
        };
        let spec = || BackendSpecShown {
            name: "a".into(),
            url: "http://pods.test:8080/mcp".into(),
            transport: Transport::StreamableHttp,
            auth: AuthMode::None,
            drain: false,
            catalog: CatalogFacts::default(),
        };
        let rows: [(Vec<(BackendStatus, Place)>, &str); 4] = [
            (vec![], "no endpoints in DNS"),
            (vec![(BackendStatus::Healthy, place(false, false))], "1 of 1 endpoint routable"),
            (
                vec![
                    (BackendStatus::Healthy, place(false, false)),
                    (BackendStatus::Unhealthy, place(false, false)),
                    (BackendStatus::Healthy, place(true, false)),
                    (BackendStatus::Unknown, place(false, true)),
                ],
                "1 of 2 endpoints routable; 1 leaving DNS (draining); 1 refused",
            ),
            (
                vec![(BackendStatus::Healthy, place(true, false))],
                "no endpoints in DNS; 1 leaving DNS (draining)",
            ),
        ];
        for (endpoints, want) in rows {
            let endpoints = endpoints.into_iter().map(|(s, p)| (observed(s), p)).collect();
            let b = BackendSnapshot::discovered(spec(), endpoints, None, BackendStatus::Unhealthy);
            assert_eq!(b.endpoints_message(), want);
        }
    }

    /// An endpoint the operator drains keeps its verdict, is never routable
    /// and is not counted: the backend reads what the others read; with every
    /// endpoint in DNS drained it is not routable (UNHEALTHY, said plainly).
    #[test]
    fn a_drained_endpoint_keeps_its_verdict_and_is_neither_routable_nor_counted() {
        use BackendStatus::*;
        let spec = || BackendSpecShown {
            name: "a".into(),
            url: "http://pods.test:8080/mcp".into(),
            transport: Transport::StreamableHttp,
            auth: AuthMode::None,
            drain: false,
            catalog: CatalogFacts::default(),
        };
        // (endpoints as (status, drained, leaving), the backend's (status, routable), endpoints routable, message)
        type Row = (Vec<(BackendStatus, bool, bool)>, (BackendStatus, bool), Vec<bool>, &'static str);
        let rows: Vec<Row> = vec![
            (
                vec![(Healthy, true, false), (Healthy, false, false)],
                (Healthy, true),
                vec![false, true],
                "1 of 1 endpoint routable; 1 drained",
            ),
            (
                vec![(Healthy, true, false), (Unhealthy, false, false)],
                (Unhealthy, false),
                vec![false, false],
                "0 of 1 endpoint routable; 1 drained",
            ),
            (
                vec![(Unhealthy, true, false), (Healthy, false, false)],
                (Healthy, true),
                vec![false, true],
                "1 of 1 endpoint routable; 1 drained",
            ),
            (
                vec![(Healthy, true, false), (Healthy, true, false)],
                (Unhealthy, false),
                vec![false, false],
                "every endpoint in DNS is drained",
            ),
            (
                vec![(Healthy, true, true), (Healthy, false, false)],
                (Healthy, true),
                vec![false, true],
                "1 of 1 endpoint routable; 1 leaving DNS (draining)",
            ),
        ];
        for (endpoints, want, want_routable, want_message) in rows {
            let shown = format!("{endpoints:?}");
            let endpoints = endpoints
                .into_iter()
                .map(|(s, drained, leaving)| {
                    let place = Place {
                        drained,
                        leaving,
                        ..Place::default()
                    };
                    (observed(s), place)
                })
                .collect();
            let b = BackendSnapshot::discovered(spec(), endpoints, None, BackendStatus::Unhealthy);
            assert_eq!((b.status(), b.routable()), want, "{shown}");
            assert_eq!(b.endpoints.iter().map(|e| e.routable).collect::<Vec<_>>(), want_routable, "{shown}");
            assert_eq!(b.endpoints_message(), want_message, "{shown}");
            assert_eq!(b.endpoints[0].status(), b.endpoints[0].observed.verdict.status, "the verdict is kept");
            assert_eq!(
                b.endpoints[0].state(),
                if b.endpoints[0].place.leaving {
                    EndpointState::Leaving
                } else {
                    EndpointState::NotRoutable
                }
            );
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
