//! Self-doubt across replicas (issue 21 §3), the cluster's side: a burst of
//! this replica's failures is put to other replicas (indirect probes, as in
//! SWIM), and a replica that doubts itself hands its backends to the others.
//!
//! - `Bursts`: the engine's `ClusterSeam::burst` hands a burst's sample
//!   here (never waiting: the latest burst replaces one not yet taken).
//! - `ask_about_bursts`: asks up to `PEERS` other members that trust
//!   themselves to probe the sample (`ProbeRouter::check_via`, nothing folds
//!   there) and tells the engine (`Engine::peers_answered`): they reach a
//!   majority of the sample (this replica's own problem: it doubts itself,
//!   cause `peers_reach`), they fail too (a real outage: verdicts move), or
//!   nobody answered. While the doubt lasts it checks the sample itself every
//!   `recheck`, and asks again; it ends when this replica reaches the sample
//!   again or the others no longer do.
//! - `hand_off`: while the engine's doubt holds, this replica's member key
//!   says `doubting`, and every replica's ownership (`MemberView::owns`)
//!   skips it unless every member doubts: its backends move to the others
//!   by the ownership rules, and come back when it trusts itself again.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::etcd::Etcd;
use super::keys::Keys;
use super::membership::{Member, member_id};
use super::probes::{Owner, ProbeRouter};
use super::status::ClusterStatus;
use mcp_health_core::doubt::Cause;
use mcp_health_engine::Engine;

/// Members asked about one burst, at most (SWIM's k).
pub const PEERS: usize = 2;

/// (group, backend) pairs of one burst.
pub type Sample = Vec<(String, String)>;

/// The burst waiting to be asked about: the latest replaces one not taken.
#[derive(Debug, Default)]
pub struct Bursts {
    pending: Mutex<Option<Sample>>,
    ready: Notify,
}

impl Bursts {
    /// Hands a burst over; never waits.
    pub fn push(&self, sample: Sample) {
        *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sample);
        self.ready.notify_one();
    }

    async fn next(&self) -> Sample {
        loop {
            if let Some(s) = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                return s;
            }
            self.ready.notified().await;
        }
    }
}

/// Whether the answers say the others reach the sample: Some(true) when
/// more than half of its backends were reached by at least one member,
/// Some(false) when members answered and did not, None when none answered.
/// `answers[i][j]`: member i's answer about backend j (None: no answer).
pub fn verdict_of_answers(answers: &[Vec<Option<bool>>], backends: usize) -> Option<bool> {
    if !answers.iter().flatten().any(Option::is_some) {
        return None;
    }
    let reached = (0..backends)
        .filter(|&j| answers.iter().any(|a| a.get(j).copied().flatten() == Some(true)))
        .count();
    Some(reached * 2 > backends)
}

/// Asks about bursts until `cancel`.
pub async fn ask_about_bursts(
    router: ProbeRouter,
    engine: Engine,
    status: ClusterStatus,
    bursts: std::sync::Arc<Bursts>,
    recheck: Duration,
    cancel: CancellationToken,
) {
    loop {
        let sample = tokio::select! {
            () = cancel.cancelled() => return,
            s = bursts.next() => s,
        };
        let reach = ask(&router, &engine, &status, &sample).await;
        info!(backends = sample.len(), reach = ?reach, "asked other replicas about a burst of failing probes");
        if engine.peers_answered(reach).await.is_err() {
            return;
        }
        if reach != Some(true) {
            continue;
        }
        // In doubt: look again until this replica reaches the sample itself
        // or the others no longer do, and the doubt they caused is over.
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(recheck) => {}
            }
            let mine = join_all(sample.iter().map(|(g, b)| engine.check_backend(g.clone(), b.clone()))).await;
            let reached_here = mine.iter().filter(|c| c.as_ref().is_ok_and(|c| c.reached())).count();
            let reach = if reached_here * 2 > sample.len() {
                Some(false)
            } else {
                ask(&router, &engine, &status, &sample).await
            };
            debug!(reached_here, reach = ?reach, "burst checked again");
            if engine.peers_answered(reach).await.is_err() {
                return;
            }
            // Over when no doubt is left, or only one the doubt task's checks keep and end.
            let over = engine.doubt().borrow().as_ref().is_none_or(|d| !d.causes.contains(Cause::PeersReach));
            if reach != Some(true) && over {
                break;
            }
        }
    }
}

/// One round of indirect probes of `sample` by up to `PEERS` askable members.
async fn ask(router: &ProbeRouter, engine: &Engine, status: &ClusterStatus, sample: &Sample) -> Option<bool> {
    let peers: Vec<Owner> = status.with_view(|v| {
        v.askable()
            .into_iter()
            .take(PEERS)
            .map(|id| Owner {
                name: v.names.get(&id).cloned().unwrap_or_default(),
                id,
            })
            .collect()
    });
    if peers.is_empty() {
        return None;
    }
    status
        .counters
        .indirect_probes_asked
        .fetch_add((peers.len() * sample.len()) as u64, std::sync::atomic::Ordering::Relaxed);
    let answers = join_all(peers.iter().map(|peer| {
        join_all(sample.iter().map(|(g, b)| {
            let peer = peer.clone();
            async move {
                match router.check_via(engine, peer.clone(), g.clone(), b.clone()).await {
                    Ok(reached) => Some(reached),
                    Err(e) => {
                        debug!(peer = %peer, group = g, backend = b, error = %mcp_health_core::errors::chain(&e), "no answer to an indirect probe");
                        None
                    }
                }
            }
        }))
    }))
    .await;
    verdict_of_answers(&answers, sample.len())
}

/// Keeps this replica's member key's `doubting` equal to whether the
/// engine's doubt holds now, under the current lease, until `cancel`.
pub async fn hand_off(etcd: Etcd, keys: Keys, status: ClusterStatus, engine: Engine, name: String, cancel: CancellationToken) {
    let mut doubt = engine.doubt();
    let mut view = status.subscribe();
    // (lease, doubting) last written; a new lease starts from a key `join` wrote, not doubting.
    let mut written: Option<(i64, bool)> = None;
    loop {
        let (holding, until) = {
            let d = doubt.borrow_and_update();
            let now = SystemTime::now();
            (d.as_ref().is_some_and(|d| d.holding(now)), d.as_ref().and_then(|d| d.holds_until))
        };
        let (me, lease) = status.with_view(|v| (v.me.clone(), v.lease));
        let current = written.is_some_and(|(l, d)| l == lease && d);
        if me.is_some() && current != holding {
            let member = Member {
                doubting: holding,
                ..Member::new(name.clone())
            };
            let value = serde_json::to_vec(&member).unwrap_or_default();
            match etcd.put(&keys.member(&member_id(lease)), value, lease).await {
                Ok(_) => {
                    written = Some((lease, holding));
                    if holding {
                        warn!("this replica doubts itself: its backends go to the replicas that do not, until it trusts itself again");
                    } else {
                        info!("this replica trusts itself again: it takes its share of the backends back");
                    }
                }
                Err(e) => {
                    status.etcd_error();
                    debug!(error = %e, "cannot write this replica's doubt to its member key; trying again");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    continue;
                }
            }
        }
        // The hold ends by itself at `holds_until`: wake then to take the backends back.
        let hold_ends = async {
            match until.and_then(|u| u.duration_since(SystemTime::now()).ok()).filter(|_| holding) {
                Some(left) => tokio::time::sleep(left + Duration::from_millis(10)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            r = doubt.changed() => if r.is_err() { return },
            r = view.changed() => if r.is_err() { return },
            () = hold_ends => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_others_reach_a_burst_when_they_reach_most_of_its_sample() {
        let (t, f, n) = (Some(true), Some(false), None);
        // (case, each member's answers, backends in the sample, verdict)
        type Case = (&'static str, Vec<Vec<Option<bool>>>, usize, Option<bool>);
        let cases: &[Case] = &[
            ("nobody to ask", vec![], 3, None),
            ("nobody answered", vec![vec![n, n, n], vec![n, n, n]], 3, None),
            ("they fail too: a real outage", vec![vec![f, f, f], vec![f, f, f]], 3, Some(false)),
            ("one of three reached: not most", vec![vec![t, f, f], vec![f, f, f]], 3, Some(false)),
            ("two of three, by either member", vec![vec![t, f, n], vec![n, t, f]], 3, Some(true)),
            ("one member answering is enough", vec![vec![t, t, t], vec![n, n, n]], 3, Some(true)),
            ("one of two is not more than half", vec![vec![t, f]], 2, Some(false)),
            ("a sample of one", vec![vec![t]], 1, Some(true)),
        ];
        for (name, answers, backends, want) in cases {
            assert_eq!(verdict_of_answers(answers, *backends), *want, "{name}");
        }
    }

    #[tokio::test]
    async fn the_latest_burst_replaces_one_not_taken() {
        let bursts = Bursts::default();
        bursts.push(vec![("g".into(), "a".into())]);
        bursts.push(vec![("g".into(), "b".into())]);
        assert_eq!(bursts.next().await, vec![("g".to_owned(), "b".to_owned())]);
        assert!(bursts.pending.lock().unwrap().is_none());
    }
}
