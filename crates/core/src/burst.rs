//! Bursts of failing probes (issue 21 §3, cluster mode): many of the
//! backends this replica probes start failing within one window. A burst is
//! not evidence against this replica (a shared front that really died looks
//! the same), so it proves nothing by itself: it is what makes a replica ask
//! others to probe the same backends (indirect probes, as in SWIM), and it
//! holds failing probes back (`DoubtState::suspect`) only while they answer.
//!
//! Counted per backend key: the backends with a result in the window, and
//! those of them whose latest result is a *new* failure (a failure of a
//! backend that was not already UNHEALTHY: a backend long dead is no news).
//! A burst starts when the new failures reach both `min_backends` and
//! `min_percent` of the backends seen, at most once per window, and only at
//! a result that starts a backend's run of failures: a steady fleet costs a
//! map update per result, never a scan.
//!
//! Time is an argument; nothing here reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// When failing probes make a burst (daemon flags `--doubt-burst-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurstPolicy {
    /// How far back results count; also the least time between two bursts.
    /// At least one probe interval, so every backend has reported.
    pub window: Duration,
    /// New failures a burst needs at least.
    pub min_backends: usize,
    /// Share of the backends seen in the window (percent) that must newly fail.
    pub min_percent: u8,
    /// How many failing backends the other replicas are asked to probe.
    pub sample: usize,
    /// How long failing probes are held back while the others are asked, at
    /// most (the asking task ends it as soon as they answer).
    pub suspect_for: Duration,
}

impl Default for BurstPolicy {
    fn default() -> Self {
        BurstPolicy {
            window: Duration::from_secs(10),
            min_backends: 3,
            min_percent: 50,
            sample: 3,
            // Covers an indirect probe's wait (the probe timeout, 5 s by default, and the etcd trips).
            suspect_for: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    at: Instant,
    /// Since when its results are new failures; None: its latest was not one.
    failing_since: Option<Instant>,
}

/// The results of the window, per backend key.
#[derive(Clone, Debug)]
pub struct BurstState<K> {
    seen: HashMap<K, Seen>,
    last_burst: Option<Instant>,
    last_prune: Option<Instant>,
    /// Entries whose latest result is a new failure, recent or not yet
    /// pruned: at least the recent ones, so below `min_backends` no burst
    /// can start and nothing is scanned.
    failing: usize,
}

impl<K> Default for BurstState<K> {
    fn default() -> Self {
        BurstState {
            seen: HashMap::new(),
            last_burst: None,
            last_prune: None,
            failing: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> BurstState<K> {
    /// Folds one probe result of `key` at `now` (`new_failure`: a failure of
    /// a backend that was not UNHEALTHY). Some(sample) when this result
    /// starts a burst: up to `policy.sample` failing keys, the earliest
    /// failures first (ties by key), to ask the others about.
    pub fn note(&mut self, key: K, new_failure: bool, now: Instant, policy: &BurstPolicy) -> Option<Vec<K>> {
        let failing_since = match (new_failure, self.seen.get(&key)) {
            (false, _) => None,
            (true, Some(Seen { failing_since: Some(t), at })) if now.saturating_duration_since(*at) <= policy.window => Some(*t),
            (true, _) => Some(now),
        };
        let was_failing = self
            .seen
            .insert(key, Seen { at: now, failing_since })
            .is_some_and(|s| s.failing_since.is_some());
        match (was_failing, failing_since.is_some()) {
            (false, true) => self.failing += 1,
            (true, false) => self.failing -= 1,
            _ => {}
        }
        self.prune(now, policy.window);
        // Only a failing run that starts now can start a burst, and only
        // with enough failures counted: so a result costs O(1) but for the
        // scan below, which runs at most once per backend that starts
        // failing (and never while a burst's window lasts).
        let starts = failing_since == Some(now);
        if !starts || self.failing < policy.min_backends.max(1) {
            return None;
        }
        let recent = |s: &&Seen| now.saturating_duration_since(s.at) <= policy.window;
        if self.last_burst.is_some_and(|t| now.saturating_duration_since(t) < policy.window) {
            return None;
        }
        let (mut seen, mut failing) = (0usize, Vec::new());
        for (k, s) in &self.seen {
            if !recent(&s) {
                continue;
            }
            seen += 1;
            if let Some(t) = s.failing_since {
                failing.push((t, k));
            }
        }
        let by_share = (seen * usize::from(policy.min_percent)).div_ceil(100);
        if failing.len() < policy.min_backends.max(by_share).max(1) {
            return None;
        }
        self.last_burst = Some(now);
        failing.sort();
        Some(failing.into_iter().take(policy.sample.max(1)).map(|(_, k)| k.clone()).collect())
    }

    /// Forgets a key (its backend was removed).
    pub fn forget(&mut self, key: &K) {
        if self.seen.remove(key).is_some_and(|s| s.failing_since.is_some()) {
            self.failing -= 1;
        }
    }

    /// Backends with a result in the window or not pruned yet.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops results older than the window, at most every quarter window
    /// (a scan per result would cost O(backends) per probe).
    fn prune(&mut self, now: Instant, window: Duration) {
        if self.last_prune.is_some_and(|t| now.saturating_duration_since(t) < window / 4) {
            return;
        }
        self.last_prune = Some(now);
        let failing = &mut self.failing;
        self.seen.retain(|_, s| {
            let keep = now.saturating_duration_since(s.at) <= window;
            if !keep && s.failing_since.is_some() {
                *failing -= 1;
            }
            keep
        });
    }
}
