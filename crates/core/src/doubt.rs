//! Self-doubt (issue 21 §3): whether the prober should distrust its own
//! failing probes, judged from local evidence only, and whether a failing
//! probe is held back (fail-static) while it does.
//!
//! The evidence is about this node, never about the backends:
//! - its runtime's scheduling lag (how late the doubt task's own timer fired:
//!   a starved runtime turns healthy answers into timeouts);
//! - whether its resolver answers a lookup at all (an NXDOMAIN is an answer);
//! - optional canaries: addresses that must always accept a TCP connection;
//!   doubt when none of them does (one canary down among several that answer
//!   is that canary's own problem).
//!
//! - in a cluster, other replicas reaching backends this one cannot (the
//!   indirect probes a burst starts, `burst`): the burst is this replica's own.
//!
//! A burst of backend failures alone is not evidence: a shared ingress that
//! really died looks the same, and hiding that would be worse than showing it.
//! While the other replicas are asked about a burst, failing probes are held
//! back (`suspect`), for at most the policy's `suspect_for`: a real outage is
//! seen that much later, a false one never.
//!
//! Doubt starts at the first check with a cause and ends after
//! `clear_checks` consecutive checks without one. While in doubt, a probe
//! that reached no usable answer (`OutcomeClass::Failure`) does not move its
//! verdict, for at most `max_hold` from the start of the doubt: past it
//! verdicts move again (a canary that is down itself must not freeze every
//! verdict forever) and the doubt stays shown. Passing probes, and answers
//! that prove the path works (a refusal, a 401), always fold.
//!
//! Time is an argument (a monotonic `Instant` to judge, the wall clock to
//! show); nothing here reads a clock.

use std::time::{Duration, Instant, SystemTime};

use crate::outcome::OutcomeClass;

/// One reason to doubt. The set is closed: metrics label by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The runtime woke the doubt task later than `max_lag`.
    SchedulingLag,
    /// The resolver gave no answer (timeout, no server reachable, SERVFAIL).
    Resolver,
    /// No configured canary accepted a connection.
    Canaries,
    /// Other replicas reached backends this one saw failing (cluster mode).
    PeersReach,
}

impl Cause {
    pub const ALL: [Cause; 4] = [Cause::SchedulingLag, Cause::Resolver, Cause::Canaries, Cause::PeersReach];

    /// The name shown in the API, the metrics' `cause` label and the log.
    pub fn label(self) -> &'static str {
        match self {
            Cause::SchedulingLag => "scheduling_lag",
            Cause::Resolver => "resolver",
            Cause::Canaries => "canaries",
            Cause::PeersReach => "peers_reach",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Cause::SchedulingLag => 1,
            Cause::Resolver => 2,
            Cause::Canaries => 4,
            Cause::PeersReach => 8,
        }
    }
}

/// A set of causes (empty: no reason to doubt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Causes(u8);

impl Causes {
    /// No cause.
    pub const NONE: Causes = Causes(0);

    pub fn with(mut self, cause: Cause) -> Causes {
        self.0 |= cause.bit();
        self
    }

    pub fn contains(self, cause: Cause) -> bool {
        self.0 & cause.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Cause> {
        Cause::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// The labels, comma-separated, in `Cause::ALL` order.
    pub fn labels(self) -> String {
        self.iter().map(Cause::label).collect::<Vec<_>>().join(",")
    }
}

/// Thresholds of self-doubt (daemon flags `--doubt-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoubtPolicy {
    /// A check whose own timer fired later than this is a cause.
    pub max_lag: Duration,
    /// Consecutive checks without a cause that end a doubt.
    pub clear_checks: u32,
    /// How long a doubt holds failing probes back at most, from its start;
    /// zero: doubt is shown but never holds anything.
    pub max_hold: Duration,
}

impl Default for DoubtPolicy {
    fn default() -> Self {
        DoubtPolicy {
            max_lag: Duration::from_secs(1),
            clear_checks: 3,
            max_hold: Duration::from_secs(120),
        }
    }
}

/// What one check of this node found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// How late the check's own timer fired.
    pub lag: Duration,
    /// Whether the resolver answered; None when no resolver check is configured.
    pub resolver_answered: Option<bool>,
    /// Canaries configured, and how many accepted a connection.
    pub canaries: usize,
    pub canaries_answered: usize,
    /// Whether other replicas reached backends this one saw failing (their
    /// indirect probes); None outside a cluster or before any were asked.
    pub peers_reach: Option<bool>,
}

impl Evidence {
    /// The causes this check gives.
    pub fn causes(&self, policy: &DoubtPolicy) -> Causes {
        let mut causes = Causes::default();
        if self.lag > policy.max_lag {
            causes = causes.with(Cause::SchedulingLag);
        }
        if self.resolver_answered == Some(false) {
            causes = causes.with(Cause::Resolver);
        }
        if self.canaries > 0 && self.canaries_answered == 0 {
            causes = causes.with(Cause::Canaries);
        }
        if self.peers_reach == Some(true) {
            causes = causes.with(Cause::PeersReach);
        }
        causes
    }
}

/// A doubt in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doubt {
    /// The causes of the last check that had any.
    pub causes: Causes,
    pub since: Instant,
    pub since_wall: SystemTime,
    /// Failing probes held back so far.
    pub held: u64,
}

/// What a check changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoubtChange {
    /// Nothing shown changed.
    None,
    /// A doubt started.
    Entered,
    /// The doubt goes on with other causes.
    Causes,
    /// The doubt ended: how long it lasted and how many probes it held.
    Left { lasted: Duration, held: u64 },
}

/// Whether a doubt holds failing probes back now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// No doubt.
    Trusted,
    /// In doubt, within `max_hold`: failing probes are held back.
    Holding,
    /// In doubt past `max_hold` (or `max_hold` is zero): verdicts move again.
    Expired,
}

/// This node's self-doubt across checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoubtState {
    doubt: Option<Doubt>,
    /// Consecutive checks without a cause while in doubt.
    clean: u32,
    /// Until when failing probes are held while other replicas are asked
    /// about a burst (`suspect`); not a doubt, and not shown as one.
    suspect_until: Option<Instant>,
    /// Failing probes held back while suspecting, since the last `suspect`.
    suspect_held: u64,
}

impl DoubtState {
    pub fn doubt(&self) -> Option<&Doubt> {
        self.doubt.as_ref()
    }

    /// Folds one check in.
    pub fn check(&mut self, evidence: &Evidence, policy: &DoubtPolicy, now: Instant, wall: SystemTime) -> DoubtChange {
        let causes = evidence.causes(policy);
        match (&mut self.doubt, causes.is_empty()) {
            (None, true) => DoubtChange::None,
            (None, false) => {
                self.clean = 0;
                self.doubt = Some(Doubt {
                    causes,
                    since: now,
                    since_wall: wall,
                    held: 0,
                });
                DoubtChange::Entered
            }
            (Some(d), false) => {
                self.clean = 0;
                if d.causes == causes {
                    DoubtChange::None
                } else {
                    d.causes = causes;
                    DoubtChange::Causes
                }
            }
            (Some(d), true) => {
                self.clean += 1;
                if self.clean < policy.clear_checks.max(1) {
                    return DoubtChange::None;
                }
                let left = DoubtChange::Left {
                    lasted: now.saturating_duration_since(d.since),
                    held: d.held,
                };
                self.doubt = None;
                self.clean = 0;
                left
            }
        }
    }

    /// Whether failing probes are held back at `now`.
    pub fn hold(&self, policy: &DoubtPolicy, now: Instant) -> Hold {
        match &self.doubt {
            None => Hold::Trusted,
            Some(d) if now.saturating_duration_since(d.since) < policy.max_hold => Hold::Holding,
            Some(_) => Hold::Expired,
        }
    }

    /// Whether a probe of outcome `class` is held back at `now` (counted if so):
    /// only a probe that reached no usable answer, while `hold` is `Holding`
    /// or a burst is being asked about (`suspect`). Passing probes and
    /// answers that prove the path works always fold.
    pub fn holds_back(&mut self, class: OutcomeClass, policy: &DoubtPolicy, now: Instant) -> bool {
        if class != OutcomeClass::Failure {
            return false;
        }
        if self.hold(policy, now) == Hold::Holding {
            if let Some(d) = self.doubt.as_mut() {
                d.held += 1;
            }
            return true;
        }
        if self.suspect_until.is_some_and(|until| now < until) {
            self.suspect_held += 1;
            return true;
        }
        false
    }

    /// Holds failing probes back until `until` while other replicas are
    /// asked whether they reach the backends of a burst. A doubt already
    /// holding needs no suspicion.
    pub fn suspect(&mut self, until: Instant) {
        self.suspect_until = Some(until);
        self.suspect_held = 0;
    }

    /// The others answered (or could not be asked): failing probes fold
    /// again unless a doubt holds them. How many the suspicion held.
    pub fn end_suspicion(&mut self) -> u64 {
        self.suspect_until = None;
        std::mem::take(&mut self.suspect_held)
    }

    /// Whether a burst is being asked about at `now`.
    pub fn suspecting(&self, now: Instant) -> bool {
        self.suspect_until.is_some_and(|until| now < until)
    }
}
