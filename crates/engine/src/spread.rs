//! The start-up spread: when backends' first probes may start. Starts are
//! paced across all backends (a burst at once, then a steady rate, GCRA),
//! so 10,000 backends applied together do not stampede a shared ingress,
//! while a small group is probed at once. No first probe waits longer than
//! its window, `min(interval, initialSpread)`: past it, starts are spread
//! at random over the window instead (Envoy's `initial_jitter`). PENDING
//! covers the wait.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The pacing state (generic cell rate algorithm): the theoretical time of
/// the next start, `tat`.
#[derive(Debug)]
struct Gcra {
    tat: Option<Instant>,
    /// Time between two paced starts.
    step: Duration,
    /// How far ahead of `tat` a start may go: the burst.
    tolerance: Duration,
}

impl Gcra {
    /// When a start asked for at `now` with `window` happens; `random` in
    /// [0, 1) places an overflowing start within the window.
    fn slot(&mut self, now: Instant, window: Duration, random: f64) -> Instant {
        if window.is_zero() {
            return now;
        }
        let tat = self.tat.map_or(now, |t| t.max(now));
        let slot = tat.checked_sub(self.tolerance).map_or(now, |s| s.max(now));
        if slot - now >= window {
            // Paced too far out: take a random place in the window instead, and
            // leave the pacing state as it is for those that still fit.
            return now + window.mul_f64(random.clamp(0.0, 1.0));
        }
        self.tat = Some(tat + self.step);
        slot
    }
}

/// Shared by every backend task of an engine.
#[derive(Debug)]
pub struct StartPacer {
    gcra: Mutex<Gcra>,
}

impl StartPacer {
    /// `per_second` starts a second after a burst of a tenth of that (at least one).
    pub fn new(per_second: u32) -> StartPacer {
        let per_second = per_second.max(1);
        let step = Duration::from_secs(1) / per_second;
        let burst = (per_second / 10).max(1);
        StartPacer {
            gcra: Mutex::new(Gcra {
                tat: None,
                step,
                tolerance: step * (burst - 1),
            }),
        }
    }

    /// When a backend's first probe starts, asked now.
    pub fn first_start(&self, window: Duration) -> Instant {
        let random = rand::random::<f64>();
        // A poisoned lock only means a task panicked mid-update; the state is two numbers.
        self.gcra.lock().unwrap_or_else(|p| p.into_inner()).slot(Instant::now(), window, random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `asks` (each: milliseconds after start, window in ms, random) and
    /// returns each start in milliseconds after start.
    fn starts(per_second: u32, asks: &[(u64, u64, f64)]) -> Vec<u64> {
        let pacer = StartPacer::new(per_second);
        let t0 = Instant::now();
        let mut g = pacer.gcra.lock().unwrap();
        asks.iter()
            .map(|&(at, window, random)| {
                let slot = g.slot(t0 + Duration::from_millis(at), Duration::from_millis(window), random);
                (slot - t0).as_millis() as u64
            })
            .collect()
    }

    #[test]
    fn pacing_table() {
        let ask = |n: usize, at: u64, window: u64| vec![(at, window, 0.5); n];
        type Case = (&'static str, u32, Vec<(u64, u64, f64)>, Vec<u64>);
        let cases: Vec<Case> = vec![
            ("a burst of a tenth of the rate starts at once", 50, ask(6, 0, 10_000), vec![0, 0, 0, 0, 0, 20]),
            ("then one per step", 10, ask(4, 0, 10_000), vec![0, 100, 200, 300]),
            ("zero window: at once, unpaced", 10, ask(3, 0, 0), vec![0, 0, 0]),
            ("past the window: random within it", 10, ask(4, 0, 250), vec![0, 100, 200, 125]),
            (
                "a quiet spell refills the burst",
                20,
                [ask(3, 0, 10_000), ask(3, 5_000, 10_000)].concat(),
                vec![0, 0, 50, 5_000, 5_000, 5_050],
            ),
        ];
        for (name, rate, asks, want) in cases {
            assert_eq!(starts(rate, &asks), want, "{name}");
        }
    }
}
