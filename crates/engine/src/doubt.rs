//! The doubt task (issue 21 §3): measures this node's own evidence (its
//! timer's lag, whether the resolver answers, whether a canary accepts a
//! connection) and sends it to the owner (`Command::Doubt`); the state
//! decides (`core::doubt`). Also `DoubtView`, the doubt as readers see it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Command;
use mcp_health_core::discovery::Lookup;
use mcp_health_core::doubt::{Causes, Doubt, DoubtPolicy, Evidence};
use mcp_health_probe::Dns;
use mcp_health_probe::dns::DiscoverName;

/// What the doubt task checks, and how often (daemon flags `--doubt-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubtChecks {
    /// Time between the end of one check and the start of the next.
    pub interval: Duration,
    /// `host:port` addresses that must always accept a TCP connection
    /// (names resolve through the system resolver: prefer IP literals, so a
    /// resolver failure is not also counted as a canary failure).
    pub canaries: Vec<String>,
    /// A name the probes' resolver must answer (NXDOMAIN is an answer).
    pub resolve: Option<String>,
    /// How long a canary connect or the lookup may take.
    pub timeout: Duration,
}

impl Default for DoubtChecks {
    fn default() -> Self {
        DoubtChecks {
            interval: Duration::from_secs(1),
            canaries: Vec::new(),
            resolve: None,
            timeout: Duration::from_secs(1),
        }
    }
}

/// The doubt as readers see it (GetConfigStatus, the page): None while the
/// prober trusts itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubtView {
    pub causes: Causes,
    pub since: SystemTime,
    /// Until when failing probes are held back; None: never (`maxHold` zero).
    /// Past it verdicts move again while the doubt is still shown.
    pub holds_until: Option<SystemTime>,
}

impl DoubtView {
    pub fn of(d: &Doubt, policy: &DoubtPolicy) -> DoubtView {
        DoubtView {
            causes: d.causes,
            since: d.since_wall,
            holds_until: (!policy.max_hold.is_zero()).then(|| d.since_wall + policy.max_hold),
        }
    }

    /// Whether failing probes are held back at `now`.
    pub fn holding(&self, now: SystemTime) -> bool {
        self.holds_until.is_some_and(|until| now < until)
    }
}

/// Measures local evidence every `interval` and sends it to the owner.
pub struct DoubtTask {
    pub checks: DoubtChecks,
    pub dns: Arc<Dns>,
    /// Weak: the doubt task never keeps the engine alive.
    pub owner: mpsc::WeakSender<Command>,
}

impl DoubtTask {
    pub async fn run(self) {
        loop {
            // Planned from the end of the last check, so a slow check (a
            // canary timing out) is never mistaken for scheduling lag.
            let planned = Instant::now() + self.checks.interval;
            tokio::time::sleep_until(planned).await;
            let lag = Instant::now().saturating_duration_since(planned);
            let evidence = self.evidence(lag).await;
            let Some(owner) = self.owner.upgrade() else { return };
            if owner.send(Command::Doubt(evidence)).await.is_err() {
                return;
            }
        }
    }

    async fn evidence(&self, lag: Duration) -> Evidence {
        let timeout = self.checks.timeout;
        let mut connects = JoinSet::new();
        for canary in &self.checks.canaries {
            let canary = canary.clone();
            connects.spawn(async move { matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(canary)).await, Ok(Ok(_))) });
        }
        let resolver_answered = match &self.checks.resolve {
            Some(name) => Some(matches!(
                tokio::time::timeout(timeout, self.dns.discover(DiscoverName::Host { name, port: 0 })).await,
                Ok(Lookup::Answer { .. })
            )),
            None => None,
        };
        let mut canaries_answered = 0;
        while let Some(answered) = connects.join_next().await {
            canaries_answered += usize::from(answered.unwrap_or(false));
        }
        Evidence {
            lag,
            resolver_answered,
            canaries: self.checks.canaries.len(),
            canaries_answered,
            // The other replicas' answers join in the state (`peers_answered`).
            peers_reach: None,
        }
    }
}
