//! What the status page shows, as plain data: built from the engine's
//! domain snapshot (`core::snapshot`) and the history, rendered as HTML by `page` and sent as JSON
//! to the page's script. Only safe fields go in: no auth configuration, no
//! credential source, and of each backend URL only its origin.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use mcp_health_core::snapshot::{BackendSnapshot, GroupSnapshot};
use mcp_health_engine::history::{History, LatencyPoint, TimelineEntry};
use mcp_health_proto::v1::{BackendStatus, GroupPhase, GroupSource, ReasonCode};

/// Timeline entries on the page.
pub const TIMELINE_SHOWN: usize = 50;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BackendView {
    pub name: String,
    /// BackendStatus without its prefix: HEALTHY, DEGRADED, ...
    pub status: &'static str,
    pub status_badge: Badge,
    pub routable: bool,
    /// Set while real traffic ejected the backend: the cause (ours), shown
    /// beside the status, which stays the probes' verdict.
    pub ejected: Option<String>,
    pub reason: &'static str,
    pub message: String,
    pub protocol: String,
    /// serverInfo name and version: text the backend chose, shown escaped.
    pub server: String,
    /// scheme://host[:port] of the URL: never its path, query or fragment,
    /// which may carry a key.
    pub origin: String,
    pub latency_ms: Option<f64>,
    pub last_transition_ms: Option<u64>,
    /// Mean latency (ms) of each minute of the last hour that had probes.
    pub spark: Vec<f64>,
    /// A discovered backend's endpoints, one row each under it (empty for a
    /// backend with one URL).
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint of a discovered backend, as a row under its backend.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EndpointView {
    /// ip:port, or the address the probes reached.
    pub address: String,
    pub status: &'static str,
    pub status_badge: Badge,
    pub routable: bool,
    /// Why it is out of routing whatever its verdict: `leaving` (left DNS),
    /// `refused` (SSRF rule) or `drained` (by the operator); empty otherwise.
    pub place: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub latency_ms: Option<f64>,
}

fn endpoint(e: &mcp_health_core::snapshot::EndpointSnapshot) -> EndpointView {
    let (status, status_badge) = shown(Shown::Status(e.status()));
    EndpointView {
        address: e.observed.address.map(|a| a.to_string()).unwrap_or_default(),
        status,
        status_badge,
        routable: e.routable,
        place: if e.place.refused.is_some() {
            "refused"
        } else if e.place.leaving {
            "leaving"
        } else if e.place.drained {
            "drained"
        } else {
            ""
        },
        reason: reason_name(e.observed.reason.code),
        message: e.message(),
        latency_ms: e.observed.last_latency.map(ms),
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub phase: &'static str,
    pub phase_badge: Badge,
    pub routable: u32,
    pub total: u32,
    pub message: String,
    pub source: &'static str,
    pub backends: Vec<BackendView>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TimelineView {
    pub seq: u64,
    pub at_ms: u64,
    pub group: String,
    pub backend: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub latency_ms: Option<f64>,
    pub from_badge: Badge,
    pub to_badge: Badge,
    /// The discovered endpoint the entry is about; empty for the backend's own.
    pub endpoint: String,
}

/// One message to the page: the whole state (`snapshot`), or changed and
/// deleted groups with the transitions since the last message.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Update {
    pub kind: &'static str,
    pub revision: u64,
    pub now_ms: u64,
    /// When the history began (the daemon's start).
    pub since_ms: u64,
    pub groups: Vec<GroupView>,
    /// Names of deleted groups.
    pub deleted: Vec<String>,
    pub timeline: Vec<TimelineView>,
    /// Set while the prober doubts itself (the page's banner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doubt: Option<DoubtBanner>,
}

/// The prober's self-doubt, as the page's banner shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DoubtBanner {
    /// The causes' labels, comma-separated.
    pub causes: String,
    pub since_ms: u64,
    /// Whether failing probes are held back now.
    pub holding: bool,
    /// Until when they are held (None: the hold is off).
    pub holds_until_ms: Option<u64>,
}

/// The engine's self-doubt now, for the banner.
pub fn doubt(engine: &mcp_health_engine::Engine, now: std::time::SystemTime) -> Option<DoubtBanner> {
    engine.doubt().borrow().as_ref().map(|d| DoubtBanner {
        causes: d.causes.labels(),
        since_ms: mcp_health_engine::history::unix_ms(d.since),
        holding: d.holding(now),
        holds_until_ms: d.holds_until.map(mcp_health_engine::history::unix_ms),
    })
}

/// How the page marks a status or phase beside its word, so it is never
/// colour alone: an icon, and the tone the style sheet colours it by.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Badge {
    pub icon: &'static str,
    /// `ok`, `warn`, `bad`, `auth` or `unknown`: the CSS class `tone-…`.
    pub tone: &'static str,
}

/// A backend status or a group phase, as the page shows one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Status(BackendStatus),
    Phase(GroupPhase),
}

/// The page's one table of names, icons and tones, for the server-rendered
/// HTML and (through the views' `*_badge` fields) the page's script alike. No
/// `_` arm: a new `BackendStatus` or `GroupPhase` does not compile until it
/// is given its word, icon and tone here.
pub fn shown(s: Shown) -> (&'static str, Badge) {
    use BackendStatus as S;
    use GroupPhase as P;
    let (name, icon, tone) = match s {
        Shown::Status(S::Healthy) => ("HEALTHY", "✔", "ok"),
        Shown::Status(S::Degraded) => ("DEGRADED", "▲", "warn"),
        Shown::Status(S::Unhealthy) => ("UNHEALTHY", "✖", "bad"),
        Shown::Status(S::Unauthenticated) => ("UNAUTHENTICATED", "⚠", "auth"),
        Shown::Status(S::Unknown) => ("UNKNOWN", "…", "unknown"),
        Shown::Status(S::Unspecified) => ("UNSPECIFIED", "…", "unknown"),
        Shown::Phase(P::Ready) => ("READY", "✔", "ok"),
        Shown::Phase(P::Degraded) => ("DEGRADED", "▲", "warn"),
        Shown::Phase(P::Failed) => ("FAILED", "✖", "bad"),
        Shown::Phase(P::Pending) => ("PENDING", "…", "unknown"),
        Shown::Phase(P::Unspecified) => ("UNSPECIFIED", "…", "unknown"),
    };
    (name, Badge { icon, tone })
}

fn reason_name(code: ReasonCode) -> &'static str {
    code.as_str_name().trim_start_matches("REASON_CODE_")
}

/// A latency in milliseconds as people read it, here and in `mcp-healthctl`
/// ("0.2 ms"; the page's script writes the same).
pub fn ms_text(ms: f64) -> String {
    format!("{ms:.1} ms")
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// `scheme://host[:port]`, or empty for an unparsable URL (validation
/// rejects those, and userinfo, before they reach the engine).
pub fn origin(url: &str) -> String {
    match url::Url::parse(url).map(|u| u.origin()) {
        Ok(o) if o.is_tuple() => o.ascii_serialization(),
        _ => String::new(),
    }
}

/// One backend on the page: its status (a discovered backend's aggregate) and
/// its first endpoint's facts; a discovered backend's message says how many
/// endpoints are routable (it may have none).
pub fn backend(b: &BackendSnapshot, spark: Option<&Vec<LatencyPoint>>) -> BackendView {
    let first = b.endpoints.first();
    let observed = first.map(|e| &e.observed);
    let facts = observed.map(|o| &o.facts);
    let server = [facts.map_or("", |f| f.server_name.as_str()), facts.map_or("", |f| f.server_version.as_str())]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let (status, status_badge) = shown(Shown::Status(b.status()));
    BackendView {
        name: b.name.clone(),
        status,
        status_badge,
        routable: b.routable(),
        ejected: b.ejection.as_ref().map(|j| j.cause.clone()),
        reason: reason_name(observed.map_or(ReasonCode::Unspecified, |o| o.reason.code)),
        message: if b.discovered {
            b.endpoints_message()
        } else {
            first.map(|e| e.message()).unwrap_or_default()
        },
        protocol: facts.map(|f| f.protocol_version.clone()).unwrap_or_default(),
        server,
        origin: origin(&b.url),
        latency_ms: observed.and_then(|o| o.last_latency).map(ms),
        last_transition_ms: observed.and_then(|o| o.last_transition).map(mcp_health_engine::history::unix_ms),
        spark: spark.map(|s| s.iter().map(|p| ms(p.mean)).collect()).unwrap_or_default(),
        endpoints: if b.discovered {
            b.endpoints.iter().map(endpoint).collect()
        } else {
            Vec::new()
        },
    }
}

pub fn group(g: &GroupSnapshot, history: &History, now_ms: u64) -> GroupView {
    let sparks: HashMap<String, Vec<LatencyPoint>> = history.latency(&g.name, now_ms);
    let s = &g.verdict.summary;
    let (phase, phase_badge) = shown(Shown::Phase(g.phase()));
    GroupView {
        name: g.name.clone(),
        phase,
        phase_badge,
        routable: s.routable,
        total: s.total,
        message: g.verdict.message.clone(),
        source: match g.source {
            GroupSource::ConfigFile => "config file",
            GroupSource::Api => "API",
            GroupSource::Unspecified => "",
        },
        backends: g.backends.iter().map(|b| backend(b, sparks.get(&b.name))).collect(),
    }
}

pub fn timeline(e: &TimelineEntry) -> TimelineView {
    let t = &e.transition;
    let (from, from_badge) = shown(Shown::Status(t.from));
    let (to, to_badge) = shown(Shown::Status(t.to));
    TimelineView {
        seq: e.seq,
        at_ms: t.at_ms,
        group: e.group.to_string(),
        backend: e.backend.to_string(),
        from,
        to,
        reason: reason_name(t.reason.code),
        message: t.reason.message.to_string(),
        latency_ms: t.latency.map(ms),
        from_badge,
        to_badge,
        endpoint: t.endpoint.map(|a| a.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_drops_everything_but_scheme_host_port() {
        for (url, want) in [
            ("https://mcp.example.com/mcp?key=s3cret#frag", "https://mcp.example.com"),
            ("http://127.0.0.1:18081/t0ken/mcp", "http://127.0.0.1:18081"),
            ("https://user:pw@host.example:8443/x", "https://host.example:8443"),
            ("https://nullable.example/x", "https://nullable.example"),
            ("not a url", ""),
        ] {
            assert_eq!(origin(url), want, "{url}");
        }
    }

    /// Every status and phase the wire can carry has the proto's own name
    /// (without its prefix) and an icon; adding a variant fails to compile in
    /// `shown` until it has both.
    #[test]
    fn every_status_and_phase_has_its_proto_name_and_an_icon() {
        let statuses = (0..)
            .map_while(|i| BackendStatus::try_from(i).ok())
            .map(|s| (Shown::Status(s), s.as_str_name().trim_start_matches("BACKEND_STATUS_")));
        let phases = (0..)
            .map_while(|i| GroupPhase::try_from(i).ok())
            .map(|p| (Shown::Phase(p), p.as_str_name().trim_start_matches("GROUP_PHASE_")));
        let all: Vec<_> = statuses.chain(phases).collect();
        assert_eq!(all.len(), 11, "{all:?}");
        for (s, proto_name) in all {
            let (name, badge) = shown(s);
            assert_eq!(name, proto_name, "{s:?}");
            assert!(
                !badge.icon.is_empty() && ["ok", "warn", "bad", "auth", "unknown"].contains(&badge.tone),
                "{s:?}: {badge:?}"
            );
        }
    }

    #[test]
    fn a_rate_limited_backend_reads_rate_limited() {
        use mcp_health_core::outcome::{Reason, ServerFacts};
        use mcp_health_core::snapshot::{BackendSpecShown, CatalogFacts, Observed};
        use mcp_health_core::verdict::Verdict;
        use mcp_health_proto::v1::{AuthMode, Transport};
        let b = BackendSnapshot::single(
            BackendSpecShown {
                name: "limited".into(),
                url: "http://127.0.0.1:1/mcp".into(),
                transport: Transport::StreamableHttp,
                auth: AuthMode::None,
                drain: false,
                catalog: CatalogFacts::default(),
            },
            Observed {
                address: None,
                verdict: Verdict {
                    status: BackendStatus::Degraded,
                    ..Verdict::unknown()
                },
                reason: Reason::http(ReasonCode::RateLimited, 429, "rate limited"),
                facts: ServerFacts::default(),
                last_latency: None,
                last_probe: None,
                last_transition: None,
            },
            None,
        );
        let view = backend(&b, None);
        assert_eq!((view.status, view.routable, view.reason), ("DEGRADED", true, "RATE_LIMITED"));
    }

    /// A discovered backend reads its aggregate and its endpoint count, and
    /// one with no endpoint at all (an empty answer) still renders.
    #[test]
    fn a_discovered_backend_reads_its_endpoints_even_none() {
        use mcp_health_core::snapshot::{BackendSpecShown, CatalogFacts};
        use mcp_health_proto::v1::{AuthMode, Transport};
        let spec = BackendSpecShown {
            name: "pods".into(),
            url: "http://pods.test:8080/mcp".into(),
            transport: Transport::StreamableHttp,
            auth: AuthMode::None,
            drain: false,
            catalog: CatalogFacts::default(),
        };
        let b = BackendSnapshot::discovered(spec.clone(), vec![], None, BackendStatus::Unhealthy);
        let view = backend(&b, None);
        assert_eq!(
            (view.status, view.routable, view.message.as_str(), view.protocol.as_str()),
            ("UNHEALTHY", false, "no endpoints in DNS", "")
        );
        assert!(view.endpoints.is_empty());

        // With endpoints: one row each, in order, with status, place and reason.
        use mcp_health_core::outcome::{Reason, ServerFacts};
        use mcp_health_core::snapshot::{Observed, Place};
        use mcp_health_core::verdict::Verdict;
        let endpoint = |last: u8, status: BackendStatus, code: ReasonCode, place: Place| {
            (
                Observed {
                    address: Some(std::net::SocketAddr::from(([10, 0, 0, last], 80))),
                    verdict: Verdict { status, ..Verdict::unknown() },
                    reason: Reason::new(code, "why"),
                    facts: ServerFacts::default(),
                    last_latency: Some(Duration::from_millis(3)),
                    last_probe: None,
                    last_transition: None,
                },
                place,
            )
        };
        let b = BackendSnapshot::discovered(
            spec,
            vec![
                endpoint(1, BackendStatus::Healthy, ReasonCode::Ok, Place::default()),
                endpoint(2, BackendStatus::Unhealthy, ReasonCode::ConnectionRefused, Place::default()),
                endpoint(
                    3,
                    BackendStatus::Healthy,
                    ReasonCode::Ok,
                    Place {
                        leaving: true,
                        ..Place::default()
                    },
                ),
                endpoint(
                    4,
                    BackendStatus::Healthy,
                    ReasonCode::Ok,
                    Place {
                        drained: true,
                        ..Place::default()
                    },
                ),
                endpoint(
                    5,
                    BackendStatus::Unknown,
                    ReasonCode::NotProbed,
                    Place {
                        refused: Some("link-local".into()),
                        ..Place::default()
                    },
                ),
            ],
            None,
            BackendStatus::Unhealthy,
        );
        let rows: Vec<_> = backend(&b, None)
            .endpoints
            .iter()
            .map(|e| (e.address.clone(), e.status, e.status_badge.icon, e.routable, e.place, e.reason, e.latency_ms))
            .collect();
        let row = |last: u8, status, icon, routable, place, reason| (format!("10.0.0.{last}:80"), status, icon, routable, place, reason, Some(3.0));
        assert_eq!(
            rows,
            [
                row(1, "HEALTHY", "✔", true, "", "OK"),
                row(2, "UNHEALTHY", "✖", false, "", "CONNECTION_REFUSED"),
                row(3, "HEALTHY", "✔", false, "leaving", "OK"),
                row(4, "HEALTHY", "✔", false, "drained", "OK"),
                row(5, "UNKNOWN", "…", false, "refused", "NOT_PROBED"),
            ]
        );
    }
}
