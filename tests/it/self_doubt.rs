//! Self-doubt (issue 21 §3, test 4's first bullet): a daemon in a network
//! namespace reaches its fleet over one veth link, and the link is cut. The
//! daemon with a canary behind the same link doubts itself and turns no
//! backend UNHEALTHY; the one without a canary, probing the same fleet
//! through the same cut, turns every backend UNHEALTHY. Needs root
//! (network namespaces).

use std::net::SocketAddr;

use crate::cluster_more::{scrape, write};
use crate::common::{apply_request, eventually, group_health, group_yaml, watch_statuses};
use crate::lifecycle_bin::Daemon;
use crate::netns_support::NetNs;
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::*;
use tonic::transport::Channel;

type Client = GroupHealthServiceClient<Channel>;

const ADMIN_TOKEN: &str = "self-doubt-test-admin-token";
/// The test reaches the daemons over this link; it is never cut.
const SERVICE_LINK: usize = 0;
/// The fleet (and the canary) are behind this link.
const FLEET_LINK: usize = 1;
const BACKENDS: [&str; 3] = ["a", "b", "c"];
const UNHEALTHY_THRESHOLD: u64 = 3;

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    req
}

async fn self_doubt(client: &Client) -> Option<Option<SelfDoubt>> {
    let status = client.clone().get_config_status(GetConfigStatusRequest {}).await.ok()?.into_inner();
    Some(status.self_doubt)
}

/// Every backend's held probes (GetBackendHistory), in `BACKENDS` order.
async fn held(client: &Client) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for b in BACKENDS {
        let h = client
            .clone()
            .get_backend_history(GetBackendHistoryRequest {
                group: "fleet".into(),
                backend: b.into(),
            })
            .await
            .ok()?
            .into_inner();
        out.push(h.held_probes);
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_cut_off_from_its_fleet_doubts_itself_with_a_canary_and_blames_the_fleet_without() {
    crate::common::install_crypto();
    let ns = NetNs::create(2);
    let fleet_side = ns.host_side(FLEET_LINK);
    let mut fixtures = Vec::new();
    let mut yaml = format!(
        "name: fleet\npolicy:\n  interval: 1s\n  edgeInterval: 1s\n  timeout: 0.8s\n  degradedLatency: 0.8s\n  unhealthyThreshold: {UNHEALTHY_THRESHOLD}\n  healthyThreshold: 1\nbackends:\n"
    );
    for name in BACKENDS {
        let f = FixtureServer::start_on(SocketAddr::new(fleet_side, 0), FixtureOptions::default())
            .await
            .expect("fixture on the fleet link");
        yaml.push_str(&format!("- name: {name}\n  url: {}\n", f.url()));
        fixtures.push(f);
    }
    // The canary: a server on the far side of the same link (a TCP connect is the check).
    let canary = FixtureServer::start_on(SocketAddr::new(fleet_side, 0), FixtureOptions::default())
        .await
        .expect("canary on the fleet link");
    let canary_arg = canary.addr().to_string();

    let token_dir = tempfile::tempdir().expect("temp dir");
    let token_arg = write(token_dir.path(), "admin-token", ADMIN_TOKEN).display().to_string();
    let inner = ns.inner_side(SERVICE_LINK);
    let doubting_metrics = SocketAddr::new(inner, 9464);
    let doubting_metrics_arg = doubting_metrics.to_string();
    let common = [
        "--admin-token-file",
        token_arg.as_str(),
        "--doubt-interval-ms",
        "200",
        "--doubt-timeout-ms",
        "300",
    ];
    let mut with_canary: Vec<&str> = common.to_vec();
    with_canary.extend(["--doubt-canary", &canary_arg, "--metrics-listen", &doubting_metrics_arg]);
    let mut doubting = Daemon::spawn_in_netns(&ns.name, &SocketAddr::new(inner, 50051).to_string(), &with_canary);
    let blaming = Daemon::spawn_in_netns(&ns.name, &SocketAddr::new(inner, 50052).to_string(), &common);
    let (doubting_client, blaming_client) = (doubting.client().await, blaming.client().await);

    for c in [&doubting_client, &blaming_client] {
        c.clone().apply_group(authorized(apply_request(group_yaml(&yaml)))).await.expect("apply");
        eventually(
            "every backend HEALTHY",
            || group_health(c, "fleet"),
            |g| g.backends.len() == BACKENDS.len() && g.backends.iter().all(|b| b.status == BackendStatus::Healthy as i32),
        )
        .await;
    }
    assert_eq!(self_doubt(&doubting_client).await, Some(None), "no doubt while the canary answers");
    let (stop_watch, watch) = watch_statuses(&doubting_client, "fleet");
    let before = held(&doubting_client).await.expect("history");

    ns.set_link(FLEET_LINK, false);

    // Without a canary the daemon has no local evidence: the fleet is dead to it.
    eventually(
        "the daemon without a canary sees every backend UNHEALTHY",
        || group_health(&blaming_client, "fleet"),
        |g| g.backends.iter().all(|b| b.status == BackendStatus::Unhealthy as i32),
    )
    .await;
    assert_eq!(self_doubt(&blaming_client).await, Some(None), "no evidence, no doubt");

    // With one, it doubts itself, and says so.
    let doubt = eventually("the daemon with a canary reports doubt", || self_doubt(&doubting_client), Option::is_some)
        .await
        .expect("doubt");
    assert_eq!(doubt.causes, ["canaries"], "{doubt:?}");
    assert!(doubt.holding && doubt.since.is_some() && doubt.holds_until.is_some(), "{doubt:?}");
    // Counted in probes, not time: every backend had more failing probes
    // held than its threshold needs to turn UNHEALTHY.
    let enough = |h: &Vec<u64>| h.iter().zip(&before).all(|(now, was)| now - was > UNHEALTHY_THRESHOLD);
    let after = eventually("more held probes per backend than the threshold", || held(&doubting_client), enough).await;
    println!("held probes per backend: {before:?} -> {after:?}");
    let g = group_health(&doubting_client, "fleet").await.expect("group");
    assert!(g.backends.iter().all(|b| b.status == BackendStatus::Healthy as i32), "{g:#?}");
    let metrics = scrape(doubting_metrics).await;
    assert!(metrics.lines().any(|l| l == "mcp_health_self_doubt{cause=\"canaries\"} 1"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("mcp_health_held_probes_total{group=\"fleet\"}")),
        "{metrics}"
    );
    let warned = |log: &[String]| log.iter().filter(|l| l.contains("the prober doubts itself") && l.contains("\"WARN\"")).count();
    assert_eq!(warned(doubting.drain_log()), 1, "one warning at entering, not one per probe");

    // The link comes back: the doubt ends, with one warning, and no backend was ever UNHEALTHY.
    ns.set_link(FLEET_LINK, true);
    eventually("the doubt ends", || self_doubt(&doubting_client), Option::is_none).await;
    let _ = stop_watch.send(());
    let seen = watch.await.expect("watch task");
    assert!(
        seen.iter().all(|(_, s)| *s != BackendStatus::Unhealthy as i32),
        "a backend turned UNHEALTHY: {seen:?}"
    );
    let log = doubting.drain_log();
    assert_eq!(log.iter().filter(|l| l.contains("the prober trusts itself again")).count(), 1, "{log:?}");
    drop(fixtures);
}
