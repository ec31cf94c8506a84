//! On-demand probes carried out by the backend's owner, the pure parts: who
//! probes (`route`), the request and answer as they travel through etcd
//! (`{prefix}/probes/…`, `{prefix}/probe-answers/…`), the owner's errors
//! carried back as the same engine errors, and how long a requester waits.

use std::time::Duration;

use super::status::MemberView;
use mcp_health_engine::{EngineError, Probed};
use mcp_health_proto::v1::{BackendHealth, GroupPhase};

/// Where an on-demand probe of one backend is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Here: this replica owns the backend, is degraded (fail-static: it
    /// probes everything itself) or has not joined.
    Local,
    /// By `owner`, asked through etcd by `me` (holding `lease`).
    Forward { me: String, lease: i64, owner: String },
}

/// The route of an on-demand probe of `group/backend` under `view`.
pub fn route(view: &MemberView, group: &str, backend: &str) -> Route {
    match (view.owner(group, backend), &view.me) {
        (Some(owner), Some(me)) if owner != me => Route::Forward {
            me: me.clone(),
            lease: view.lease,
            owner: owner.to_owned(),
        },
        _ => Route::Local,
    }
}

/// The id of request number `n` of member `me`: unique in the cluster
/// (a member id is a lease, never reused) and one key segment.
pub fn request_id(me: &str, n: u64) -> String {
    format!("{me}-{n}")
}

/// Extra time a requester grants beyond the backend's probe timeout: the
/// owner may wait for a probe slot, and the answer makes two etcd trips.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(3);

/// The wait when the requester does not know the backend (a group applied a
/// moment ago, or no such backend: the owner answers NOT_FOUND at once).
pub const DEFAULT_ANSWER_WAIT: Duration = Duration::from_secs(10);

/// How long a requester waits for the owner's answer, given the backend's
/// probe timeout if this replica knows it.
pub fn answer_wait(probe_timeout: Option<Duration>) -> Duration {
    probe_timeout.map_or(DEFAULT_ANSWER_WAIT, |t| t + ANSWER_MARGIN)
}

/// `{prefix}/probes/{group}/{backend}/{request}`: a member asks the owner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeRequest {
    /// The member id that asks (and waits for the answer).
    pub requester: String,
    /// The member id asked: the owner in the requester's view (for an
    /// indirect probe, any other member). Only it answers, so a request is
    /// answered once even while views differ.
    pub owner: String,
    /// An indirect probe (issue 21 §3): the requester saw the backend fail
    /// in a burst and asks whether this member reaches it. The answer is
    /// `Answered::Checked`; nothing is folded and no rate limit is spent.
    /// Absent in older binaries' requests; they are never sent one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indirect: bool,
}

/// `{prefix}/probe-answers/{request}`: what the owner's probe produced.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeAnswer {
    /// The member id that probed.
    pub owner: String,
    pub result: Answered,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answered {
    /// The verdict the probe produced, as a local `ProbeBackend` returns it.
    Probed {
        backend: Box<BackendHealth>,
        phase: GroupPhase,
    },
    /// An indirect probe's finding: whether the member reached the backend
    /// (any answer but a failure to reach it) and why not.
    Checked {
        reached: bool,
        reason: String,
    },
    Error(OwnerError),
}

/// An engine error of the owner's, in a form that travels.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum OwnerError {
    GroupNotFound {
        group: String,
    },
    BackendNotFound {
        group: String,
        backend: String,
    },
    BackendRestarted {
        group: String,
        backend: String,
    },
    RateLimited {
        backend: String,
        elapsed_ms: u64,
        limit_ms: u64,
    },
    /// Anything else (the owner is shutting down): its message.
    Unavailable {
        message: String,
    },
}

impl From<&EngineError> for OwnerError {
    fn from(e: &EngineError) -> OwnerError {
        match e {
            EngineError::GroupNotFound(group) => OwnerError::GroupNotFound { group: group.clone() },
            EngineError::BackendNotFound { group, backend } => OwnerError::BackendNotFound {
                group: group.clone(),
                backend: backend.clone(),
            },
            EngineError::BackendRestarted { group, backend } => OwnerError::BackendRestarted {
                group: group.clone(),
                backend: backend.clone(),
            },
            EngineError::RateLimited { backend, elapsed_ms, limit_ms } => OwnerError::RateLimited {
                backend: backend.clone(),
                elapsed_ms: *elapsed_ms,
                limit_ms: *limit_ms,
            },
            other => OwnerError::Unavailable {
                message: mcp_health_core::errors::chain(other),
            },
        }
    }
}

impl OwnerError {
    /// The engine error the owner had, so the API maps it to the same status
    /// a local probe would; Err(message) for an error with no such match.
    pub fn into_engine(self) -> Result<EngineError, String> {
        match self {
            OwnerError::GroupNotFound { group } => Ok(EngineError::GroupNotFound(group)),
            OwnerError::BackendNotFound { group, backend } => Ok(EngineError::BackendNotFound { group, backend }),
            OwnerError::BackendRestarted { group, backend } => Ok(EngineError::BackendRestarted { group, backend }),
            OwnerError::RateLimited { backend, elapsed_ms, limit_ms } => Ok(EngineError::RateLimited { backend, elapsed_ms, limit_ms }),
            OwnerError::Unavailable { message } => Err(message),
        }
    }
}

/// An on-demand probe's answer as the API gives it, made here or by the owner.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReply {
    pub backend: BackendHealth,
    pub phase: GroupPhase,
}

impl From<&Probed> for ProbeReply {
    fn from(p: &Probed) -> ProbeReply {
        ProbeReply {
            backend: mcp_health_engine::api_view::backend_health(&p.backend),
            phase: p.phase,
        }
    }
}

impl ProbeAnswer {
    /// An indirect probe's answer.
    pub fn checked(owner: &str, checked: &Result<mcp_health_engine::Checked, EngineError>) -> ProbeAnswer {
        let result = match checked {
            Ok(c) => Answered::Checked {
                reached: c.reached(),
                reason: c.reason.message.clone(),
            },
            Err(e) => Answered::Error(e.into()),
        };
        ProbeAnswer {
            owner: owner.to_owned(),
            result,
        }
    }

    pub fn new(owner: &str, probed: &Result<Probed, EngineError>) -> ProbeAnswer {
        let result = match probed {
            Ok(p) => {
                let reply = ProbeReply::from(p);
                Answered::Probed {
                    backend: Box::new(reply.backend),
                    phase: reply.phase,
                }
            }
            Err(e) => Answered::Error(e.into()),
        };
        ProbeAnswer {
            owner: owner.to_owned(),
            result,
        }
    }
}

/// JSON in etcd, readable with etcdctl, like the shared verdicts.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_health_proto::v1::BackendStatus;

    fn view(me: Option<&str>, members: &[&str], degraded: bool) -> MemberView {
        MemberView {
            me: me.map(str::to_owned),
            lease: 7,
            members: members.iter().map(|m| m.to_string()).collect(),
            degraded: degraded.then(|| "quorum lost".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn route_table() {
        // "web/a" among m1, m2, m3 is m2's (ownership.rs's pinned table).
        let fwd = |me: &str, owner: &str| Route::Forward {
            me: me.into(),
            lease: 7,
            owner: owner.into(),
        };
        let cases: &[(MemberView, Route)] = &[
            (view(None, &["m1", "m2", "m3"], false), Route::Local),
            (view(Some("m2"), &["m1", "m2", "m3"], false), Route::Local),
            (view(Some("m1"), &["m1", "m2", "m3"], false), fwd("m1", "m2")),
            (view(Some("m3"), &["m1", "m2", "m3"], false), fwd("m3", "m2")),
            // Our own key not watched back yet still counts.
            (view(Some("m1"), &["m2", "m3"], false), fwd("m1", "m2")),
            // Degraded: fail-static, everything here.
            (view(Some("m1"), &["m1", "m2", "m3"], true), Route::Local),
            // Alone.
            (view(Some("m1"), &[], false), Route::Local),
        ];
        for (v, want) in cases {
            assert_eq!(route(v, "web", "a"), *want, "{v:?}");
            // The route agrees with what the schedulers ask.
            assert_eq!(*want == Route::Local, v.owns("web", "a"), "{v:?}");
        }
    }

    #[test]
    fn waits() {
        let cases: &[(Option<Duration>, Duration)] = &[
            (None, DEFAULT_ANSWER_WAIT),
            (Some(Duration::from_millis(800)), Duration::from_millis(3800)),
            (Some(Duration::from_secs(30)), Duration::from_secs(33)),
        ];
        for (timeout, want) in cases {
            assert_eq!(answer_wait(*timeout), *want, "{timeout:?}");
        }
        assert_eq!(request_id("1a2b", 3), "1a2b-3");
    }

    #[test]
    fn owner_errors_travel_as_the_same_engine_errors() {
        let cases = [
            EngineError::GroupNotFound("web".into()),
            EngineError::BackendNotFound {
                group: "web".into(),
                backend: "x".into(),
            },
            EngineError::BackendRestarted {
                group: "web".into(),
                backend: "x".into(),
            },
            EngineError::RateLimited {
                backend: "a".into(),
                elapsed_ms: 120,
                limit_ms: 1000,
            },
        ];
        for e in cases {
            let want = e.to_string();
            let answer = ProbeAnswer::new("m2", &Err(e));
            let back: ProbeAnswer = decode(&encode(&answer)).expect("decodes");
            let Answered::Error(err) = back.result else { panic!("{back:?}") };
            // The same error, so the same status (code and text) as a local probe.
            assert_eq!(err.into_engine().expect("a known error").to_string(), want);
        }
        let gone = ProbeAnswer::new("m2", &Err(EngineError::ShuttingDown));
        let back: ProbeAnswer = decode(&encode(&gone)).unwrap();
        let Answered::Error(err) = back.result else { panic!() };
        assert_eq!(err.into_engine().unwrap_err(), "the engine is shutting down");
    }

    #[test]
    fn a_verdict_travels_whole() {
        use mcp_health_core::outcome::{Reason, ServerFacts};
        use mcp_health_core::snapshot::{BackendSnapshot, BackendSpecShown, CatalogFacts, Observed};
        use mcp_health_core::verdict::Verdict;
        let probed = Probed {
            backend: BackendSnapshot::single(
                BackendSpecShown {
                    name: "a".into(),
                    url: "http://127.0.0.1:1/mcp".into(),
                    transport: mcp_health_proto::v1::Transport::StreamableHttp,
                    auth: mcp_health_proto::v1::AuthMode::None,
                    drain: false,
                    catalog: CatalogFacts::default(),
                },
                Observed {
                    address: Some("127.0.0.1:1".parse().unwrap()),
                    verdict: Verdict {
                        status: BackendStatus::Unhealthy,
                        consecutive_failures: 3,
                        ..Verdict::unknown()
                    },
                    reason: Reason::new(mcp_health_proto::v1::ReasonCode::ConnectionRefused, "connection refused"),
                    facts: ServerFacts::default(),
                    last_latency: None,
                    last_probe: None,
                    last_transition: None,
                },
                None,
            ),
            phase: GroupPhase::Degraded,
        };
        let answer = ProbeAnswer::new("m2", &Ok(probed.clone()));
        let back: ProbeAnswer = decode(&encode(&answer)).expect("decodes");
        assert_eq!(back, answer);
        assert_eq!(back.owner, "m2");
        let Answered::Probed { backend, phase } = back.result else { panic!() };
        assert_eq!(
            (backend.status, backend.consecutive_failures, backend.address.as_str()),
            (BackendStatus::Unhealthy as i32, 3, "127.0.0.1:1")
        );
        assert_eq!(
            (*backend, phase),
            (mcp_health_engine::api_view::backend_health(&probed.backend), GroupPhase::Degraded)
        );
        let req = ProbeRequest {
            requester: "m1".into(),
            owner: "m2".into(),
            indirect: false,
        };
        assert_eq!(decode::<ProbeRequest>(&encode(&req)), Some(req.clone()));
        // A plain request reads as before (older binaries write and read it so).
        assert_eq!(String::from_utf8(encode(&req)).unwrap(), r#"{"requester":"m1","owner":"m2"}"#);
        let indirect = ProbeRequest { indirect: true, ..req };
        assert_eq!(decode::<ProbeRequest>(&encode(&indirect)), Some(indirect));
        let checked = ProbeAnswer {
            owner: "m3".into(),
            result: Answered::Checked {
                reached: false,
                reason: "connection refused".into(),
            },
        };
        assert_eq!(decode::<ProbeAnswer>(&encode(&checked)), Some(checked));
        assert_eq!(decode::<ProbeAnswer>(b"{not json"), None);
    }
}
