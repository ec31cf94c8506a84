//! The client load: one task per group applies, deletes and drains, one
//! operation at a time (so the group's operations have a real-time order),
//! each on a random replica, and records every reply. Paused while the
//! schedule measures convergence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mcp_health::proto::v1::{ApplyGroupRequest, DeleteGroupRequest, GroupSpec, SetBackendDrainRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use crate::history::{Op, OpKind, Outcome, Shared, Stop, lock};
use crate::sut::{Client, INTERVAL_MS, authed};

/// Pauses the load: `paused` asks, `in_flight` says when it took hold.
#[derive(Clone, Default)]
pub struct Gate {
    paused: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
}

impl Gate {
    /// Pauses and waits until no operation is in flight.
    pub async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// The spec of one apply: the group's backends, a fast policy, and the
/// nonce in `initialSpread` (µs), which tells the checker which apply wrote
/// which etcd revision.
pub fn spec(group: &str, backends: &[(String, String)], nonce: u32) -> GroupSpec {
    let backends: Vec<serde_json::Value> = backends.iter().map(|(n, url)| serde_json::json!({"name": n, "url": url})).collect();
    let json = serde_json::json!({
        "name": group,
        "policy": {
            "interval": format!("{}s", INTERVAL_MS as f64 / 1000.0),
            "timeout": "0.8s",
            "unhealthyThreshold": 2,
            "healthyThreshold": 1,
            "initialSpread": format!("{:.6}s", nonce as f64 / 1e6),
        },
        "backends": backends,
    });
    // The JSON above is a valid GroupSpec by construction.
    serde_json::from_value(json).expect("a GroupSpec")
}

/// The nonce of a stored spec (see [`spec`]).
pub fn nonce_of(spec: &GroupSpec) -> Option<u32> {
    let d = spec.policy.as_ref()?.initial_spread.as_ref()?;
    Some((d.seconds as u64 * 1_000_000 + d.nanos as u64 / 1000) as u32)
}

fn classify(status: &tonic::Status) -> Outcome {
    let what = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled | Code::Internal | Code::Aborted => Outcome::Indeterminate(what),
        _ => Outcome::Failed(what),
    }
}

/// The load of one group, until `stop`. `fleet` is (name, url) of every backend.
pub async fn run_group(group: String, seed: u64, clients: Vec<Client>, fleet: Vec<(String, String)>, history: Shared, gate: Gate, stop: Stop) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nonce = 0u32;
    // The backends of the last apply sent (drains pick among them).
    let mut current: Vec<String> = Vec::new();
    while !stop.stopped() {
        if gate.paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        gate.in_flight.fetch_add(1, Ordering::SeqCst);
        if gate.paused.load(Ordering::SeqCst) {
            gate.in_flight.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let replica = rng.random_range(0..clients.len());
        let client = clients[replica].clone();
        let roll: f64 = rng.random();
        let kind = if current.is_empty() || roll < 0.55 {
            nonce += 1;
            let n = rng.random_range(2..=fleet.len().min(5));
            let mut picked: Vec<(String, String)> = Vec::new();
            while picked.len() < n {
                let b = &fleet[rng.random_range(0..fleet.len())];
                if !picked.contains(b) {
                    picked.push(b.clone());
                }
            }
            picked.sort();
            current = picked.iter().map(|(n, _)| n.clone()).collect();
            OpKind::Apply {
                nonce,
                backends: current.clone(),
            }
        } else if roll < 0.7 {
            OpKind::Delete
        } else {
            OpKind::Drain {
                backend: current[rng.random_range(0..current.len())].clone(),
                drain: rng.random_bool(0.5),
            }
        };
        let outcome = call(&client, &group, &kind, &fleet).await;
        if matches!(kind, OpKind::Delete) && matches!(outcome, Outcome::Acked { .. }) {
            current.clear();
        }
        lock(&history).ops.push(Op {
            group: group.clone(),
            replica,
            kind,
            outcome,
        });
        gate.in_flight.fetch_sub(1, Ordering::SeqCst);
        let pause = rng.random_range(100..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

async fn call(client: &Client, group: &str, kind: &OpKind, fleet: &[(String, String)]) -> Outcome {
    let mut c = client.clone();
    let reply = match kind {
        OpKind::Apply { nonce, backends } => {
            let chosen: Vec<(String, String)> = fleet.iter().filter(|(n, _)| backends.contains(n)).cloned().collect();
            let req = ApplyGroupRequest {
                spec: Some(spec(group, &chosen, *nonce)),
                validate_only: false,
            };
            tokio::time::timeout(Duration::from_secs(4), c.apply_group(authed(req)))
                .await
                .map(|r| r.map(|r| (r.get_ref().generation, r.get_ref().changed)))
        }
        OpKind::Delete => {
            let req = DeleteGroupRequest { group: group.to_owned() };
            tokio::time::timeout(Duration::from_secs(4), c.delete_group(authed(req)))
                .await
                .map(|r| r.map(|_| (0, true)))
        }
        OpKind::Drain { backend, drain } => {
            let req = SetBackendDrainRequest {
                group: group.to_owned(),
                backend: backend.clone(),
                drain: *drain,
                ..Default::default()
            };
            tokio::time::timeout(Duration::from_secs(4), c.set_backend_drain(authed(req)))
                .await
                .map(|r| r.map(|r| (r.get_ref().generation, r.get_ref().changed)))
        }
    };
    match reply {
        Ok(Ok((generation, changed))) => Outcome::Acked { generation, changed },
        Ok(Err(status)) => classify(&status),
        Err(_) => Outcome::Indeterminate("no reply within 4 s".into()),
    }
}
