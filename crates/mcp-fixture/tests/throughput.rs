//! Ignored by default: a rough requests-per-second check of the healthy initialize hot path.
//! Run with `cargo test -p mcp-fixture --release --test throughput -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mcp_fixture::{Behavior, FixtureServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn initialize_throughput() {
    let s = FixtureServer::start().await.unwrap();
    // Benchmark layout: 1000 paths, every tenth hangs (and is never requested here).
    s.set_path_behaviors(
        (0..1000)
            .filter(|i| i % 10 == 0)
            .map(|i| (format!("/s{i}"), Behavior::Hang)),
    );
    let body = initialize(1, "2025-06-18").to_string();
    let t = Instant::now();
    let per_task = 2000;
    let tasks: Vec<_> = (0..8)
        .map(|k| {
            let c = client();
            let body = body.clone();
            let urls: Vec<String> = (0..1000)
                .filter(|i| i % 10 != 0)
                .map(|i| s.url_for(&format!("/s{i}")))
                .collect();
            tokio::spawn(async move {
                for n in 0..per_task {
                    let r = c
                        .post(&urls[(n * 8 + k) % urls.len()])
                        .header("accept", ACCEPT_BOTH)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let el = t.elapsed();
    let n = 8 * per_task;
    println!(
        "{n} initialize in {el:?}: {:.0} req/s; stats {:?}",
        n as f64 / el.as_secs_f64(),
        s.stats()
    );
    assert!(el < Duration::from_secs(60));
}
