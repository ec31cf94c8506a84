//! The etcd key layout of one cluster, under its `--etcd-prefix`:
//!
//! ```text
//! {prefix}/groups/{group}              GroupSpec (protobuf); generation = the key's etcd version
//! {prefix}/members/{member}            Member (JSON), attached to the member's lease
//! {prefix}/verdicts/{group}/{backend}  VerdictRecord (JSON, versioned: record.rs), no lease
//! {prefix}/probes/{group}/{backend}/{request}
//!                                      ProbeRequest (JSON: requester, owner), under the requester's lease
//! {prefix}/probe-answers/{request}     ProbeAnswer (JSON: the owner's verdict or error), under the owner's lease
//! ```
//!
//! Group and backend names are DNS labels (no `/`), and request ids are
//! `{member}-{n}`, so every key splits back into its parts unambiguously.

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
    fn prefix_ends() {
        let cases: &[(&[u8], &[u8])] = &[(b"a/", b"a0"), (b"ab", b"ac"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end.to_vec(), "{prefix:?}");
        }
    }
}
