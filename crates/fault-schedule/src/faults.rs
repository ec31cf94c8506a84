//! The schedule of faults: drawn from the seed alone (the same seed gives
//! the same faults, targets and hold times), injected one at a time while
//! the load runs, healed, and followed by a convergence measurement with the
//! load paused.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcp_health::cluster::etcd::Etcd;
use mcp_health::cluster::keys::Keys;
use mcp_health::proto::v1::{BackendStatus, GetGroupHealthRequest, ListGroupsRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Fault, FaultKind, Shared, lock};
use crate::load::Gate;
use crate::sut::{Client, ETCD_LINK, FLEET_LINK, PREFIX, System, TTL_S};

/// How long convergence may take before it counts as "never".
pub const CONVERGENCE_CAP: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Planned {
    pub kind: FaultKind,
    pub hold: Duration,
}

/// `n` faults from `seed`. Etcd's leader is resolved when the fault runs
/// (`leader: true`), the rest is fixed here.
pub fn plan(seed: u64, n: usize, backends: usize) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let base: Vec<Planned> = (0..n)
        .map(|_| {
            let r = rng.random_range(0..3);
            let ttl_ms = TTL_S * 1000;
            let (kind, hold_ms) = match rng.random_range(0..7) {
                0 => (FaultKind::KillReplica(r), rng.random_range(200..3000)),
                // Past the lease: TTL plus up to 3 s.
                1 => (FaultKind::PauseReplica(r), rng.random_range(ttl_ms + 500..ttl_ms + 3000)),
                2 => (FaultKind::PartitionEtcd(r), rng.random_range(1000..6000)),
                3 => (FaultKind::PartitionFleet(r), rng.random_range(1000..5000)),
                4 => (FaultKind::PartitionBoth(r), rng.random_range(1000..6000)),
                5 => (
                    FaultKind::KillEtcd {
                        node: r,
                        leader: rng.random_bool(0.5),
                    },
                    rng.random_range(500..4000),
                ),
                _ => {
                    let k = rng.random_range(1..=backends.min(3));
                    let mut picked: Vec<usize> = Vec::new();
                    while picked.len() < k {
                        let b = rng.random_range(0..backends);
                        if !picked.contains(&b) {
                            picked.push(b);
                        }
                    }
                    picked.sort();
                    (FaultKind::KillBackends(picked), rng.random_range(1000..5000))
                }
            };
            Planned {
                kind,
                hold: Duration::from_millis(hold_ms),
            }
        })
        .collect();
    // Wall-clock jumps come from a stream of their own, inserted before one
    // fault in eight: the other faults of a seed stay those it gave before
    // jumps existed (the seeds that found bugs replay the same sequence).
    let mut jumps = StdRng::seed_from_u64(seed ^ 0xc10c_c10c);
    let mut planned = Vec::with_capacity(n);
    for p in base {
        if jumps.random_range(0..8) == 0 {
            let replica = jumps.random_range(0..3);
            // An hour either way, or a day ahead.
            let seconds = [3600, -3600, 86_400][jumps.random_range(0..3)];
            planned.push(Planned {
                kind: FaultKind::ClockJump { replica, seconds },
                hold: Duration::from_millis(jumps.random_range(2000..6000)),
            });
        }
        planned.push(p);
    }
    planned.truncate(n);
    planned
}

/// Injects `p`, holds, heals; returns the fault as it ran (the etcd node it
/// hit, when the leader was asked for).
pub async fn run(system: &mut System, p: &Planned) -> Fault {
    let mut kind = p.kind.clone();
    let start = Instant::now();
    match &mut kind {
        FaultKind::KillReplica(i) => {
            system.kill_replica(*i);
            tokio::time::sleep(p.hold).await;
            system.spawn_replica(*i);
        }
        FaultKind::PauseReplica(i) => {
            system.pause_replica(*i, true);
            tokio::time::sleep(p.hold).await;
            system.pause_replica(*i, false);
        }
        FaultKind::PartitionEtcd(i) | FaultKind::PartitionFleet(i) | FaultKind::PartitionBoth(i) => {
            let links: &[usize] = match p.kind {
                FaultKind::PartitionEtcd(_) => &[ETCD_LINK],
                FaultKind::PartitionFleet(_) => &[FLEET_LINK],
                _ => &[ETCD_LINK, FLEET_LINK],
            };
            for l in links {
                system.replicas[*i].ns.set_link(*l, false);
            }
            tokio::time::sleep(p.hold).await;
            for l in links {
                system.replicas[*i].ns.set_link(*l, true);
            }
        }
        FaultKind::KillEtcd { node, leader } => {
            if *leader {
                match system.etcd_leader() {
                    Some(l) => *node = l,
                    None => *leader = false,
                }
            }
            system.etcd.kill(*node);
            tokio::time::sleep(p.hold).await;
            system.etcd.restart(*node);
        }
        FaultKind::ClockJump { replica, seconds } => {
            system.set_clock(*replica, *seconds);
            // Looked for through the hold: the replica may own no backend of
            // the groups the load has at one moment, and does the next.
            let until = Instant::now() + p.hold;
            let mut seen = false;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(500).min(until.saturating_duration_since(Instant::now()))).await;
                seen = seen || clock_seen(&system.replicas[*replica].client, *seconds).await;
            }
            system.set_clock(*replica, 0);
            if !seen {
                // The fault did not take: say so, rather than count it as survived.
                println!("  clock jump on replica {replica} not seen in its probe times");
            }
            return Fault {
                kind,
                start,
                healed: Instant::now(),
                converged: None,
                took: seen,
            };
        }
        FaultKind::KillBackends(bs) => {
            for b in bs.iter() {
                system.fleet[*b].stop().await;
            }
            tokio::time::sleep(p.hold).await;
            for b in bs.iter() {
                // The port is ours; resume retries while the kernel releases it.
                let _ = system.fleet[*b].resume().await;
            }
        }
    }
    Fault {
        kind,
        start,
        healed: Instant::now(),
        converged: None,
        took: true,
    }
}

/// Whether replica `client`'s wall clock is off by about `seconds`: some
/// last-probe time it shows (its own probes are stamped by its clock; the
/// others' by theirs) is more than half the jump away from this process'
/// clock, that way.
async fn clock_seen(client: &Client, seconds: i64) -> bool {
    let mut req = tonic::Request::new(ListGroupsRequest {});
    req.set_timeout(Duration::from_secs(2));
    let Ok(groups) = client.clone().list_groups(req).await else { return false };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for g in groups.into_inner().groups {
        let mut req = tonic::Request::new(GetGroupHealthRequest { group: g.name });
        req.set_timeout(Duration::from_secs(2));
        let Ok(h) = client.clone().get_group_health(req).await else { continue };
        let backends = h.into_inner().health.map(|h| h.backends).unwrap_or_default();
        if backends
            .iter()
            .filter_map(|b| b.last_probe_time.as_ref())
            .any(|t| (t.seconds - now) * seconds.signum() > seconds.abs() / 2)
        {
            return true;
        }
    }
    false
}

/// What every replica must answer alike once healed: each group's
/// generation, phase, and each backend's status.
type Answer = BTreeMap<String, (u64, i32, Vec<(String, i32)>)>;

async fn answer(client: &Client) -> Option<Answer> {
    let mut req = tonic::Request::new(ListGroupsRequest {});
    req.set_timeout(Duration::from_secs(2));
    let groups = client.clone().list_groups(req).await.ok()?.into_inner().groups;
    let mut out = Answer::new();
    for g in groups {
        let mut req = tonic::Request::new(GetGroupHealthRequest { group: g.name.clone() });
        req.set_timeout(Duration::from_secs(2));
        let h = client.clone().get_group_health(req).await.ok()?.into_inner().health?;
        let mut backends: Vec<(String, i32)> = h.backends.iter().map(|b| (b.name.clone(), b.status)).collect();
        backends.sort();
        out.insert(g.name, (h.generation, h.phase, backends));
    }
    Some(out)
}

/// The groups in etcd and their generations (key versions): the truth the
/// replicas must converge to.
async fn etcd_generations(etcd: &Etcd) -> Option<BTreeMap<String, u64>> {
    let keys = Keys::new(PREFIX);
    let (kvs, _) = etcd.range_prefix(&keys.groups()).await.ok()?;
    Some(
        kvs.iter()
            .filter_map(|kv| Some((keys.group_name(&String::from_utf8_lossy(&kv.key))?.to_owned(), kv.version as u64)))
            .collect(),
    )
}

/// With the load paused: waits until every replica gives the same answer,
/// with etcd's groups at etcd's generations and every backend HEALTHY (every
/// fault is healed, so every backend is reachable). The time since the heal,
/// or None past [`CONVERGENCE_CAP`].
pub async fn converge(system: &System, etcd: &Etcd, healed: Instant, gate: &Gate) -> Option<Duration> {
    gate.pause().await;
    let clients: Vec<Client> = system.replicas.iter().map(|r| r.client.clone()).collect();
    let mut why = String::from("etcd unreadable");
    let result = loop {
        if healed.elapsed() > CONVERGENCE_CAP {
            println!("  not converged: {why}");
            break None;
        }
        if let Some(truth) = etcd_generations(etcd).await {
            let mut answers = Vec::new();
            for c in &clients {
                answers.push(answer(c).await);
            }
            let agreed = answers.iter().all(|a| a.is_some() && *a == answers[0]);
            if agreed && let Some(Some(a)) = answers.first() {
                let same_groups = a.iter().map(|(g, (gen_, _, _))| (g.clone(), *gen_)).collect::<BTreeMap<_, _>>() == truth;
                let healthy = a.values().all(|(_, _, bs)| bs.iter().all(|(_, s)| *s == BackendStatus::Healthy as i32));
                if same_groups && healthy {
                    break Some(healed.elapsed());
                }
                why = format!("agreed on {a:?}; etcd has {truth:?}");
            } else {
                why = format!("answers differ: {answers:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    gate.resume();
    result
}

/// Drains the fleet's request logs into the history.
pub fn collect_requests(system: &System, history: &Shared) {
    let mut h = lock(history);
    for (b, f) in system.fleet.iter().enumerate() {
        for r in f.drain_requests() {
            h.requests.push(crate::history::Request {
                at: r.at,
                backend: b,
                source: r.peer.map(|p| p.ip()),
            });
        }
    }
}
