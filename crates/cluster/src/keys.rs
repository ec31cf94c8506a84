//! The etcd key layout of one cluster, under its `--etcd-prefix`:
//!
//! ```text
//! {prefix}/groups/{group}              GroupSpec (protobuf); generation = the key's etcd version
//! {prefix}/members/{member}            Member (JSON), attached to the member's lease
//! {prefix}/verdicts/{group}/{backend}  VerdictRecord (JSON, versioned: record.rs), no lease
//! {prefix}/verdicts/{group}/{backend}/{address}
//!                                      a discovered endpoint's VerdictRecord, no lease
//! {prefix}/endpoints/{group}/{backend} EndpointsRecord (JSON, versioned: record.rs): a discovered
//!                                      backend's endpoint set, written by its owner, no lease
//! {prefix}/probes/{group}/{backend}/{request}
//!                                      ProbeRequest (JSON: requester, owner), under the requester's lease
//! {prefix}/probe-answers/{request}     ProbeAnswer (JSON: the owner's verdict or error), under the owner's lease
//! {prefix}/reports/{owner}/{batch}     ReportBatch (JSON: real-traffic reports for the owner's backends), under the sender's lease
//! ```
//!
//! Group and backend names are DNS labels (no `/`), addresses are
//! `ip:port` or `[ip6]:port` (no `/`), and request and batch ids are
//! `{member}-{n}`, so every key splits back into its parts unambiguously. An
//! endpoint's verdict key has one part more than a backend's, so a binary
//! from before discovery in a cluster (`verdict_of` only) passes it over.

use std::net::SocketAddr;

/// The keys of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` without a trailing slash; empty is allowed (keys start with `/`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    pub fn groups(&self) -> String {
        format!("{}/groups/", self.prefix)
    }

    pub fn group(&self, name: &str) -> String {
        format!("{}{name}", self.groups())
    }

    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    pub fn member(&self, id: &str) -> String {
        format!("{}{id}", self.members())
    }

    pub fn verdicts(&self) -> String {
        format!("{}/verdicts/", self.prefix)
    }

    /// Every verdict of one group (a prefix).
    pub fn group_verdicts(&self, group: &str) -> String {
        format!("{}{group}/", self.verdicts())
    }

    pub fn verdict(&self, group: &str, backend: &str) -> String {
        format!("{}{backend}", self.group_verdicts(group))
    }

    /// Every verdict of one backend's discovered endpoints (a prefix).
    pub fn endpoint_verdicts(&self, group: &str, backend: &str) -> String {
        format!("{}{backend}/", self.group_verdicts(group))
    }

    pub fn endpoint_verdict(&self, group: &str, backend: &str, address: SocketAddr) -> String {
        format!("{}{address}", self.endpoint_verdicts(group, backend))
    }

    /// Every discovered backend's endpoint set (a prefix).
    pub fn endpoints(&self) -> String {
        format!("{}/endpoints/", self.prefix)
    }

    /// The endpoint sets of one group (a prefix).
    pub fn group_endpoints(&self, group: &str) -> String {
        format!("{}{group}/", self.endpoints())
    }

    pub fn endpoint_set(&self, group: &str, backend: &str) -> String {
        format!("{}{backend}", self.group_endpoints(group))
    }

    /// Every on-demand probe request (a prefix).
    pub fn probes(&self) -> String {
        format!("{}/probes/", self.prefix)
    }

    pub fn probe_request(&self, group: &str, backend: &str, request: &str) -> String {
        format!("{}{group}/{backend}/{request}", self.probes())
    }

    pub fn probe_answers(&self) -> String {
        format!("{}/probe-answers/", self.prefix)
    }

    pub fn probe_answer(&self, request: &str) -> String {
        format!("{}{request}", self.probe_answers())
    }

    /// Every forwarded batch of reports (a prefix).
    pub fn reports(&self) -> String {
        format!("{}/reports/", self.prefix)
    }

    pub fn report_batch(&self, owner: &str, batch: &str) -> String {
        format!("{}{owner}/{batch}", self.reports())
    }

    /// (owner, batch id) of a key under `reports()`.
    pub fn report_batch_of<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = key.strip_prefix(self.reports().as_str())?;
        let (owner, batch) = rest.split_once('/')?;
        (!owner.is_empty() && !batch.is_empty() && !batch.contains('/')).then_some((owner, batch))
    }

    /// The group name of a key under `groups()`.
    pub fn group_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.groups().as_str()).filter(|n| !n.is_empty() && !n.contains('/'))
    }

    /// The member id of a key under `members()`.
    pub fn member_id<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.members().as_str()).filter(|n| !n.is_empty() && !n.contains('/'))
    }

    /// (group, backend) of a key under `verdicts()`.
    pub fn verdict_of<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = key.strip_prefix(self.verdicts().as_str())?;
        let (group, backend) = rest.split_once('/')?;
        (!group.is_empty() && !backend.is_empty() && !backend.contains('/')).then_some((group, backend))
    }

    /// (group, backend, address) of an endpoint's verdict key under `verdicts()`.
    pub fn endpoint_verdict_of<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str, SocketAddr)> {
        let rest = key.strip_prefix(self.verdicts().as_str())?;
        let mut parts = rest.split('/');
        let (group, backend, address) = (parts.next()?, parts.next()?, parts.next()?);
        let whole = parts.next().is_none() && !group.is_empty() && !backend.is_empty();
        whole.then_some(())?;
        Some((group, backend, address.parse().ok()?))
    }

    /// (group, backend) of a key under `endpoints()`.
    pub fn endpoint_set_of<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = key.strip_prefix(self.endpoints().as_str())?;
        let (group, backend) = rest.split_once('/')?;
        (!group.is_empty() && !backend.is_empty() && !backend.contains('/')).then_some((group, backend))
    }

    /// (group, backend, request id) of a key under `probes()`.
    pub fn probe_request_of<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let rest = key.strip_prefix(self.probes().as_str())?;
        let mut parts = rest.split('/');
        let (group, backend, request) = (parts.next()?, parts.next()?, parts.next()?);
        let whole = parts.next().is_none() && [group, backend, request].iter().all(|p| !p.is_empty());
        whole.then_some((group, backend, request))
    }
}

/// The end of the range holding every key that starts with `prefix` (etcd's
/// `range_end` for a prefix): the prefix with its last byte incremented.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): "\0" means "to the end of the keyspace".
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let k = Keys::new("/mcp-health/prod/");
        // (key, group name, member id, verdict's (group, backend)).
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            ("/mcp-health/prod/groups/web", Some("web"), None, None),
            ("/mcp-health/prod/members/1a2b", None, Some("1a2b"), None),
            ("/mcp-health/prod/verdicts/web/b1", None, None, Some(("web", "b1"))),
            ("/mcp-health/prod/groups/", None, None, None),
            ("/mcp-health/prod/verdicts/web/", None, None, None),
            ("/mcp-health/prod/verdicts/web", None, None, None),
            ("/mcp-health/other/groups/web", None, None, None),
            ("/mcp-health/prod/groups/web/x", None, None, None),
        ];
        for (key, group, member, verdict) in cases {
            assert_eq!(k.group_name(key), *group, "{key}");
            assert_eq!(k.member_id(key), *member, "{key}");
            assert_eq!(k.verdict_of(key), *verdict, "{key}");
        }
        assert_eq!(k.group("web"), "/mcp-health/prod/groups/web");
        assert_eq!(k.verdict("web", "b1"), "/mcp-health/prod/verdicts/web/b1");
        assert_eq!(k.member("7"), "/mcp-health/prod/members/7");
        assert_eq!(Keys::new("").groups(), "/groups/");
    }

    #[test]
    fn probe_keys_round_trip() {
        let k = Keys::new("/p");
        // (key, its (group, backend, request id)).
        type Case<'a> = (&'a str, Option<(&'a str, &'a str, &'a str)>);
        let cases: &[Case] = &[
            ("/p/probes/web/b1/7f-3", Some(("web", "b1", "7f-3"))),
            ("/p/probes/web/b1/", None),
            ("/p/probes/web/b1", None),
            ("/p/probes/web//7f-3", None),
            ("/p/probes/web/b1/7f-3/x", None),
            ("/p/probe-answers/7f-3", None),
            ("/p/verdicts/web/b1", None),
        ];
        for (key, want) in cases {
            assert_eq!(k.probe_request_of(key), *want, "{key}");
        }
        assert_eq!(k.probe_request("web", "b1", "7f-3"), "/p/probes/web/b1/7f-3");
        assert_eq!(k.probe_answer("7f-3"), "/p/probe-answers/7f-3");
        // The answers are not under the requests' prefix (each follower sees only its own).
        assert!(!k.probe_answer("7f-3").starts_with(&k.probes()));
        // Nor is any request a verdict or a group.
        assert_eq!(k.verdict_of("/p/probes/web/b1/7f-3"), None);
    }

    #[test]
    fn report_keys_round_trip() {
        let k = Keys::new("/p");
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("/p/reports/aa/bb-3", Some(("aa", "bb-3"))),
            ("/p/reports/aa/", None),
            ("/p/reports/aa", None),
            ("/p/reports//bb-3", None),
            ("/p/reports/aa/bb-3/x", None),
            ("/p/probes/web/b1/7f-3", None),
        ];
        for (key, want) in cases {
            assert_eq!(k.report_batch_of(key), *want, "{key}");
        }
        assert_eq!(k.report_batch("aa", "bb-3"), "/p/reports/aa/bb-3");
        // No other follower's prefix holds a batch.
        for other in [k.probes(), k.probe_answers(), k.verdicts(), k.groups(), k.members()] {
            assert!(!k.report_batch("aa", "bb-3").starts_with(&other), "{other}");
        }
    }

    #[test]
    fn endpoint_keys_round_trip() {
        let k = Keys::new("/p");
        let v4: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:443".parse().unwrap();
        // (key, its endpoint verdict's (group, backend, address), its endpoint set's (group, backend)).
        type Case<'a> = (&'a str, Option<(&'a str, &'a str, SocketAddr)>, Option<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            ("/p/verdicts/web/pods/127.0.0.2:8080", Some(("web", "pods", v4)), None),
            ("/p/verdicts/web/pods/[fd00::1]:443", Some(("web", "pods", v6)), None),
            ("/p/verdicts/web/pods/not-an-address", None, None),
            ("/p/verdicts/web/pods/", None, None),
            ("/p/verdicts/web//127.0.0.2:8080", None, None),
            ("/p/verdicts/web/pods/127.0.0.2:8080/x", None, None),
            ("/p/verdicts/web/pods", None, None),
            ("/p/endpoints/web/pods", None, Some(("web", "pods"))),
            ("/p/endpoints/web/", None, None),
            ("/p/endpoints/web/pods/x", None, None),
            ("/p/groups/web", None, None),
        ];
        for (key, verdict, set) in cases {
            assert_eq!(k.endpoint_verdict_of(key), *verdict, "{key}");
            assert_eq!(k.endpoint_set_of(key), *set, "{key}");
        }
        assert_eq!(k.endpoint_verdict("web", "pods", v4), "/p/verdicts/web/pods/127.0.0.2:8080");
        assert_eq!(k.endpoint_verdict("web", "pods", v6), "/p/verdicts/web/pods/[fd00::1]:443");
        assert_eq!(k.endpoint_set("web", "pods"), "/p/endpoints/web/pods");
        // An endpoint's verdict is no backend's verdict (a binary from before
        // discovery in a cluster passes it over), and it goes with its group's
        // verdicts when the group is deleted.
        assert_eq!(k.verdict_of(&k.endpoint_verdict("web", "pods", v4)), None);
        assert!(k.endpoint_verdict("web", "pods", v4).starts_with(&k.group_verdicts("web")));
        // Nor is a backend's verdict an endpoint's, and sets are not under the verdicts.
        assert_eq!(k.endpoint_verdict_of(&k.verdict("web", "pods")), None);
        assert!(!k.endpoint_set("web", "pods").starts_with(&k.verdicts()));
    }

    #[test]
    fn prefix_ends() {
        let cases: &[(&[u8], &[u8])] = &[(b"a/", b"a0"), (b"ab", b"ac"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end.to_vec(), "{prefix:?}");
        }
    }
}
