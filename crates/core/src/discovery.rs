//! DNS discovery as values (issue 23): a discovered backend's endpoint set,
//! reconciled with each DNS answer or failed lookup. New addresses start
//! PENDING (the engine spawns their probe tasks); an address that leaves DNS
//! is not trusted to be gone (DNS is lossy: truncated answers, partial sets),
//! so it turns leaving (DRAINING, still probed) and is dropped at its first
//! failed probe or after the removal grace; a failed lookup keeps the last
//! good set until the TTL maximum, after which the endpoints read UNHEALTHY
//! with reason DNS. Time is an argument of any ordered type (the engine's
//! clock, `Duration`s in tests); nothing here reads a clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Add;
use std::time::Duration;

/// Re-resolved no sooner than this after an answer, by default.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(5);
/// Re-resolved no later than this after an answer, and a failed lookup keeps
/// the last good set this long, by default.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);
/// The smallest `minTtl` a spec may set.
pub const MIN_TTL_FLOOR: Duration = Duration::from_secs(1);
/// The largest `maxTtl` (and `removalGrace`) a spec may set.
pub const MAX_TTL_CEILING: Duration = Duration::from_secs(24 * 3600);

/// A backend's discovery policy, validated (`spec::validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsPolicy {
    /// The SRV name to resolve; None: the URL's host (A/AAAA, the URL's port).
    pub srv: Option<String>,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// None: two TTLs (the last answer's, clamped).
    pub removal_grace: Option<Duration>,
    /// None: the backend is routable while one endpoint is.
    pub min_healthy_percent: Option<u32>,
}

impl Default for DnsPolicy {
    fn default() -> Self {
        DnsPolicy {
            srv: None,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            removal_grace: None,
            min_healthy_percent: None,
        }
    }
}

impl DnsPolicy {
    /// The answer's TTL between the policy's minimum and maximum.
    pub fn clamp_ttl(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl)
    }

    /// How long an address that left DNS is kept (while its probes succeed).
    pub fn removal_grace(&self, clamped_ttl: Duration) -> Duration {
        self.removal_grace.unwrap_or(clamped_ttl * 2)
    }
}

/// One address of an answer: an A/AAAA address with the URL's port (priority
/// and weight 0), or an SRV target's address and port with its priority and weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub addr: SocketAddr,
    pub priority: u16,
    pub weight: u16,
}

/// An address the SSRF rule refused: shown, never probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedAddr {
    pub addr: SocketAddr,
    pub reason: String,
}

/// What one lookup gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An answer; empty for NXDOMAIN or no records.
    Answer {
        records: Vec<Record>,
        refused: Vec<RefusedAddr>,
        /// The answer's TTL, unclamped.
        ttl: Duration,
    },
    /// The lookup failed (timeout, SERVFAIL, no server): the last good set stands a while.
    Failed { detail: String },
}

/// Whether an endpoint's address is in the latest answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence<T> {
    Active,
    /// Left DNS at `since`: still probed, not routable (DRAINING), dropped at
    /// its first failed probe or after the removal grace.
    Leaving {
        since: T,
    },
}

/// One endpoint of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<T> {
    pub priority: u16,
    pub weight: u16,
    pub presence: Presence<T>,
}

impl<T> Member<T> {
    pub fn leaving(&self) -> bool {
        matches!(self.presence, Presence::Leaving { .. })
    }
}

/// Where the name's resolution stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsState<T> {
    /// Not resolved yet: the backend reads UNKNOWN.
    Unresolved,
    /// The last lookup answered, at `at`.
    Fresh { at: T },
    /// Lookups fail since the answer at `last_good`; the set is kept until
    /// `last_good + max_ttl`.
    Stale { last_good: T, detail: String },
    /// Lookups failed past the TTL maximum (or before any answer): every
    /// endpoint reads UNHEALTHY with reason DNS.
    Expired { detail: String },
}

/// A discovered backend's endpoints, by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSet<T> {
    pub members: BTreeMap<SocketAddr, Member<T>>,
    /// The latest answer's refused addresses.
    pub refused: Vec<RefusedAddr>,
    pub dns: DnsState<T>,
    /// The last answer's TTL, clamped (the policy's minimum before any answer).
    pub ttl: Duration,
}

/// What a reconciliation changed, for the engine's effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// New addresses: spawn a probe task each, PENDING, under the start-up spread.
    pub added: Vec<SocketAddr>,
    /// Addresses dropped (leaving past the removal grace): abort their tasks.
    pub dropped: Vec<SocketAddr>,
    /// When to look the name up again, from now.
    pub next_lookup: Duration,
}

impl<T: Copy + Ord + Add<Duration, Output = T>> EndpointSet<T> {
    pub fn new(policy: &DnsPolicy) -> EndpointSet<T> {
        EndpointSet {
            members: BTreeMap::new(),
            refused: Vec::new(),
            dns: DnsState::Unresolved,
            ttl: policy.min_ttl,
        }
    }

    /// Folds one lookup into the set at `now`.
    pub fn reconcile(&mut self, lookup: Lookup, now: T, policy: &DnsPolicy) -> Change {
        let mut added = Vec::new();
        let next_lookup = match lookup {
            Lookup::Answer { records, refused, ttl } => {
                self.ttl = policy.clamp_ttl(ttl);
                let mut seen = BTreeMap::new();
                for r in records {
                    // An SRV answer may name one address twice; its first (best) record wins.
                    seen.entry(r.addr).or_insert(r);
                }
                for (addr, member) in self.members.iter_mut() {
                    if !seen.contains_key(addr) && !member.leaving() {
                        member.presence = Presence::Leaving { since: now };
                    }
                }
                for (addr, r) in seen {
                    let member = Member {
                        priority: r.priority,
                        weight: r.weight,
                        presence: Presence::Active,
                    };
                    if self.members.insert(addr, member).is_none() {
                        added.push(addr);
                    }
                }
                self.refused = refused;
                self.dns = DnsState::Fresh { at: now };
                self.ttl
            }
            Lookup::Failed { detail } => {
                self.dns = match &self.dns {
                    DnsState::Fresh { at } | DnsState::Stale { last_good: at, .. } if now < *at + policy.max_ttl => DnsState::Stale { last_good: *at, detail },
                    _ => DnsState::Expired { detail },
                };
                // Asked again soon: the resolver may be back.
                policy.min_ttl
            }
        };
        let dropped = self.expire(now, policy);
        Change { added, dropped, next_lookup }
    }

    /// Drops the leaving endpoints whose removal grace has passed at `now`.
    pub fn expire(&mut self, now: T, policy: &DnsPolicy) -> Vec<SocketAddr> {
        let grace = policy.removal_grace(self.ttl);
        let gone: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.presence, Presence::Leaving { since } if now >= since + grace))
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.members.remove(a);
        }
        gone
    }

    /// A probe of `addr` failed: a leaving endpoint is dropped (true), never
    /// counted again; an active one stays (its verdict says the rest).
    pub fn probe_failed(&mut self, addr: SocketAddr) -> bool {
        if self.members.get(&addr).is_some_and(Member::leaving) {
            self.members.remove(&addr);
            true
        } else {
            false
        }
    }

    /// Why every endpoint reads UNHEALTHY with reason DNS: the lookups have
    /// failed past the TTL maximum.
    pub fn dns_failure(&self) -> Option<&str> {
        match &self.dns {
            DnsState::Expired { detail } => Some(detail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn a(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 8080))
    }

    fn answer(addrs: &[u8], ttl_secs: u64) -> Lookup {
        Lookup::Answer {
            records: addrs
                .iter()
                .map(|l| Record {
                    addr: a(*l),
                    priority: 0,
                    weight: 0,
                })
                .collect(),
            refused: vec![],
            ttl: S * ttl_secs as u32,
        }
    }

    fn failed() -> Lookup {
        Lookup::Failed { detail: "timed out".into() }
    }

    /// What a step does besides the lookup.
    enum Step {
        Lookup(Lookup),
        ProbeFailed(u8),
    }

    /// What the set reads after a step: active addresses, leaving ones, and
    /// whether the endpoints read UNHEALTHY (reason DNS).
    #[derive(Debug, PartialEq)]
    struct Shown {
        active: Vec<u8>,
        leaving: Vec<u8>,
        dns_failed: bool,
    }

    /// At second, step, then what the set reads after it: active, leaving,
    /// added, dropped (last octets of 127.0.0.x:8080), and whether the
    /// endpoints read UNHEALTHY with reason DNS.
    type Row<'a> = (u64, Step, &'a [u8], &'a [u8], &'a [u8], &'a [u8], bool);

    /// Runs `steps` on a new set.
    #[track_caller]
    fn check(policy: &DnsPolicy, steps: Vec<Row<'_>>) {
        let mut set: EndpointSet<Duration> = EndpointSet::new(policy);
        for (i, (at, step, active, leaving, want_added, want_dropped, dns_failed)) in steps.into_iter().enumerate() {
            let now = S * at as u32;
            let (added, dropped) = match step {
                Step::Lookup(l) => {
                    let c = set.reconcile(l, now, policy);
                    (c.added, c.dropped)
                }
                Step::ProbeFailed(l) => (vec![], if set.probe_failed(a(l)) { vec![a(l)] } else { vec![] }),
            };
            let last = |v: Vec<SocketAddr>| -> Vec<u8> {
                v.iter()
                    .map(|s| match s.ip() {
                        std::net::IpAddr::V4(v4) => v4.octets()[3],
                        std::net::IpAddr::V6(_) => 0,
                    })
                    .collect()
            };
            let shown = Shown {
                active: last(set.members.iter().filter(|(_, m)| !m.leaving()).map(|(a, _)| *a).collect()),
                leaving: last(set.members.iter().filter(|(_, m)| m.leaving()).map(|(a, _)| *a).collect()),
                dns_failed: set.dns_failure().is_some(),
            };
            let want = Shown {
                active: active.to_vec(),
                leaving: leaving.to_vec(),
                dns_failed,
            };
            assert_eq!(shown, want, "step {i} at {at}s");
            assert_eq!(
                (last(added), last(dropped)),
                (want_added.to_vec(), want_dropped.to_vec()),
                "step {i} at {at}s: added, dropped"
            );
        }
    }

    use Step::{Lookup as L, ProbeFailed as F};

    #[test]
    fn new_addresses_are_added_and_gone_ones_leave_then_drop() {
        let p = DnsPolicy::default();
        // at, step, active, leaving, added, dropped, dns failed
        check(
            &p,
            vec![
                (0, L(answer(&[2, 3, 4], 10)), &[2, 3, 4], &[], &[2, 3, 4], &[], false),
                (10, L(answer(&[2, 3, 4, 5, 6], 10)), &[2, 3, 4, 5, 6], &[], &[5, 6], &[], false),
                // 3 → 5 → 2: three leave, still probed.
                (20, L(answer(&[2, 5], 10)), &[2, 5], &[3, 4, 6], &[], &[], false),
                // A dead leaving one goes at its first failed probe; an active one stays.
                (21, F(3), &[2, 5], &[4, 6], &[], &[3], false),
                (22, F(2), &[2, 5], &[4, 6], &[], &[], false),
                (30, L(answer(&[2, 5], 10)), &[2, 5], &[4, 6], &[], &[], false),
                // Two TTLs after they left, the live ones go.
                (40, L(answer(&[2, 5], 10)), &[2, 5], &[], &[], &[4, 6], false),
                // A dropped address that comes back is new again.
                (50, L(answer(&[2, 3, 5], 10)), &[2, 3, 5], &[], &[3], &[], false),
            ],
        );
    }

    #[test]
    fn an_address_back_before_its_grace_is_active_again() {
        let p = DnsPolicy::default();
        check(
            &p,
            vec![
                (0, L(answer(&[2, 3], 10)), &[2, 3], &[], &[2, 3], &[], false),
                (10, L(answer(&[2], 10)), &[2], &[3], &[], &[], false),
                (20, L(answer(&[2, 3], 10)), &[2, 3], &[], &[], &[], false),
                // A failed probe of an active endpoint drops nothing.
                (21, F(3), &[2, 3], &[], &[], &[], false),
            ],
        );
    }

    #[test]
    fn an_empty_answer_is_an_empty_set_whose_old_members_leave() {
        let p = DnsPolicy {
            removal_grace: Some(S * 15),
            ..DnsPolicy::default()
        };
        check(
            &p,
            vec![
                (0, L(answer(&[], 10)), &[], &[], &[], &[], false),
                (10, L(answer(&[2], 10)), &[2], &[], &[2], &[], false),
                (20, L(answer(&[], 10)), &[], &[2], &[], &[], false),
                (30, L(answer(&[], 10)), &[], &[2], &[], &[], false),
                // The grace the policy set, not two TTLs.
                (35, L(answer(&[], 10)), &[], &[], &[], &[2], false),
            ],
        );
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_set_until_the_ttl_maximum() {
        let p = DnsPolicy {
            max_ttl: S * 60,
            ..DnsPolicy::default()
        };
        check(
            &p,
            vec![
                // No answer yet: nothing to keep, the backend reads DNS at once.
                (0, L(failed()), &[], &[], &[], &[], true),
                (5, L(answer(&[2, 3], 10)), &[2, 3], &[], &[2, 3], &[], false),
                (15, L(failed()), &[2, 3], &[], &[], &[], false),
                (64, L(failed()), &[2, 3], &[], &[], &[], false),
                // 60 s after the last answer: the endpoints read UNHEALTHY (DNS), kept.
                (65, L(failed()), &[2, 3], &[], &[], &[], true),
                (70, L(failed()), &[2, 3], &[], &[], &[], true),
                // The resolver is back: the same endpoints, nothing added.
                (75, L(answer(&[2, 3], 10)), &[2, 3], &[], &[], &[], false),
            ],
        );
    }

    #[test]
    fn a_failed_lookup_neither_adds_nor_removes_but_a_grace_still_ends() {
        let p = DnsPolicy::default();
        check(
            &p,
            vec![
                (0, L(answer(&[2, 3], 10)), &[2, 3], &[], &[2, 3], &[], false),
                (10, L(answer(&[2], 10)), &[2], &[3], &[], &[], false),
                (20, L(failed()), &[2], &[3], &[], &[], false),
                (30, L(failed()), &[2], &[], &[], &[3], false),
            ],
        );
    }

    #[test]
    fn the_ttl_is_clamped_and_sets_the_next_lookup() {
        let p = DnsPolicy {
            min_ttl: S * 5,
            max_ttl: S * 60,
            ..DnsPolicy::default()
        };
        // (answer TTL, next lookup, default grace)
        for (ttl, next, grace) in [(0, 5, 10), (1, 5, 10), (30, 30, 60), (60, 60, 120), (3600, 60, 120)] {
            let mut set: EndpointSet<Duration> = EndpointSet::new(&p);
            let c = set.reconcile(answer(&[2], ttl), Duration::ZERO, &p);
            assert_eq!(c.next_lookup, S * next, "ttl {ttl}");
            assert_eq!(p.removal_grace(set.ttl), S * grace, "ttl {ttl}");
        }
        let mut set: EndpointSet<Duration> = EndpointSet::new(&p);
        assert_eq!(
            set.reconcile(failed(), Duration::ZERO, &p).next_lookup,
            S * 5,
            "a failure is asked again at the minimum"
        );
    }

    #[test]
    fn srv_priority_and_weight_follow_the_latest_answer_and_refused_are_kept_apart() {
        let p = DnsPolicy::default();
        let mut set: EndpointSet<Duration> = EndpointSet::new(&p);
        let rec = |l, priority, weight| Record { addr: a(l), priority, weight };
        let refused = RefusedAddr {
            addr: SocketAddr::from(([169, 254, 169, 254], 8080)),
            reason: "link-local".into(),
        };
        let lookup = |records| Lookup::Answer {
            records,
            refused: vec![refused.clone()],
            ttl: S * 10,
        };
        set.reconcile(lookup(vec![rec(2, 10, 60), rec(3, 20, 40), rec(2, 30, 1)]), Duration::ZERO, &p);
        assert_eq!(
            (set.members[&a(2)].priority, set.members[&a(2)].weight),
            (10, 60),
            "the first record of an address wins"
        );
        assert_eq!(set.members.len(), 2);
        assert_eq!(set.refused, vec![refused.clone()]);
        set.reconcile(lookup(vec![rec(2, 0, 5)]), S * 10, &p);
        assert_eq!((set.members[&a(2)].priority, set.members[&a(2)].weight), (0, 5));
    }
}
