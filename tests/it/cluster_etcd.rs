//! The etcd side of cluster mode against real etcd (tests/it/etcd_support): the
//! groups store (optimistic concurrency, generation = etcd version), the
//! membership (lease + member key, followed by others) and the fence on
//! shared verdicts.

use crate::etcd_support;

use std::sync::Arc;
use std::time::Duration;

use etcd_support::EtcdCluster;
use mcp_health::cluster::keys::Keys;
use mcp_health::cluster::membership::{self, Member, member_id};
use mcp_health::cluster::record::{RECORD_VERSION, VerdictRecord};
use mcp_health::cluster::status::ClusterStatus;
use mcp_health::cluster::store::EtcdStore;
use mcp_health::cluster::verdicts::{Published, VerdictWriter};
use mcp_health::proto::v1::{BackendSpec, BackendStatus, GroupSpec, ReasonCode};
use mcp_health::store::{Persist, StoredGroup};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);

fn spec(name: &str, url: &str) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        backends: vec![BackendSpec {
            name: "a".into(),
            url: url.into(),
            ..Default::default()
        }],
        policy: None,
    }
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A status joined as a member of its own: a lease (long enough never to
/// expire during a test) with the member key under it, as `membership::join` does.
async fn joined(client: &mcp_health::cluster::etcd::Etcd, keys: &Keys) -> ClusterStatus {
    let status = ClusterStatus::default();
    membership::join(client, keys, Duration::from_secs(60), &Member::new("t"), &status)
        .await
        .expect("join");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_optimistic_and_its_generation_is_etcds_version() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/store-test");
    let a = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);
    let b = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);

    let (s1, s2, s3) = (
        spec("web", "http://127.0.0.1:1/1"),
        spec("web", "http://127.0.0.1:1/2"),
        spec("web", "http://127.0.0.1:1/3"),
    );
    a.put(&s1, 1).await.expect("first put");
    b.put(&s2, 2).await.expect("b saw generation 1 and writes 2");
    // A still believes generation 1: its write of generation 2 must be refused.
    let err = a.put(&s3, 2).await.expect_err("stale generation refused");
    assert!(err.to_string().contains("changed on another replica"), "{err}");
    let (groups, revision) = a.load().await.unwrap();
    assert_eq!(
        groups,
        vec![StoredGroup {
            spec: s2.clone(),
            generation: 2
        }]
    );
    assert!(revision > 0);
    // A creation must find the key absent.
    let err = a.put(&s1, 1).await.expect_err("create over an existing group refused");
    assert!(err.to_string().contains("changed on another replica"), "{err}");

    // A delete removes the group and its shared verdicts.
    client.put(&keys.verdict("web", "a"), b"{}".to_vec(), 0).await.unwrap();
    a.remove("web").await.expect("remove");
    assert!(a.load().await.unwrap().0.is_empty());
    assert!(client.range_prefix(&keys.group_verdicts("web")).await.unwrap().0.is_empty());
    // Re-created, the generation starts again at 1 (the key's version).
    a.put(&s3, 1).await.expect("re-create");
    assert_eq!(a.load().await.unwrap().0[0].generation, 1);
}

/// Versions start again at 1 when a group is deleted and applied again: a
/// replica whose view is from before the delete must not take the new
/// incarnation's "version 2" for the one it saw (ABA). Found by the
/// fault-schedule harness (`--seed 2 --faults 12`: a replica paused past its
/// lease finished an apply on its stale view and overwrote two newer ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_from_before_a_delete_is_refused_on_the_new_incarnation() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/aba-test");
    let a = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);
    let b = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);
    let specs: Vec<GroupSpec> = (1..=5).map(|i| spec("web", &format!("http://127.0.0.1:1/{i}"))).collect();
    let put = |store: &Arc<EtcdStore>, s: &GroupSpec, generation: u64| {
        let (store, s) = (store.clone(), s.clone());
        async move { store.put(&s, generation).await }
    };
    put(&a, &specs[0], 1).await.expect("a creates");
    put(&a, &specs[1], 2).await.expect("a updates: a holds generation 2");
    b.remove("web").await.expect("b deletes");
    put(&b, &specs[2], 1).await.expect("b creates again");
    put(&b, &specs[3], 2).await.expect("b updates: the new incarnation is at version 2 too");
    let err = put(&a, &specs[4], 3).await.expect_err("a's view is of the deleted incarnation");
    assert!(err.to_string().contains("changed on another replica"), "{err}");
    let (groups, _) = a.load().await.unwrap();
    assert_eq!(groups[0].spec, specs[3], "b's update stands");
}

/// A delete from a replica that has not seen the latest apply is refused like
/// an update (found by the fault-schedule harness, `--seed 2 --faults 12`: a
/// replica paused mid-request deleted a group after two newer applies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_from_a_stale_view_is_refused() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/stale-delete-test");
    let a = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);
    let b = EtcdStore::new(client.clone(), keys.clone(), joined(&client, &keys).await);
    let (s1, s2) = (spec("web", "http://127.0.0.1:1/1"), spec("web", "http://127.0.0.1:1/2"));
    a.put(&s1, 1).await.expect("a creates");
    b.load().await.expect("b reads generation 1");
    b.put(&s2, 2).await.expect("b updates");
    let err = a.remove("web").await.expect_err("a has not seen generation 2");
    assert!(err.to_string().contains("changed on another replica"), "{err}");
    assert_eq!(a.load().await.unwrap().0.len(), 1, "the group stands");
    b.remove("web").await.expect("b, up to date, deletes");
    assert!(a.load().await.unwrap().0.is_empty());
}

/// Every group write is fenced by its writer's member key and lease, like a
/// verdict: a replica whose lease is gone (paused or cut off past its TTL
/// mid-request) writes nothing. Found by the fault-schedule harness (seed 42,
/// group g0 op #214): an apply its client saw fail was written later as
/// version 1, after a newer acknowledged apply and delete; "key absent" is
/// true again after a delete, so only the fence can refuse such a create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_write_from_a_replica_past_its_lease_is_fenced() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/group-fence-test");
    let (sa, sb) = (joined(&client, &keys).await, joined(&client, &keys).await);
    let a = EtcdStore::new(client.clone(), keys.clone(), sa.clone());
    let b = EtcdStore::new(client.clone(), keys.clone(), sb.clone());
    let specs: Vec<GroupSpec> = (1..=4).map(|i| spec("web", &format!("http://127.0.0.1:1/{i}"))).collect();
    let put = |store: &Arc<EtcdStore>, s: &GroupSpec, generation: u64| {
        let (store, s) = (store.clone(), s.clone());
        async move { store.put(&s, generation).await }
    };
    let remove = |store: &Arc<EtcdStore>, name: &'static str| {
        let store = store.clone();
        async move { store.remove(name).await }
    };
    put(&a, &specs[0], 1).await.expect("a, a member, creates");
    b.load().await.expect("b reads generation 1");
    // A's lease ends (it stopped renewing past the TTL): its member key goes.
    client.lease_revoke(sa.view().lease).await.expect("revoke a's lease");
    remove(&b, "web").await.expect("b deletes");
    let refused = |what: &str, result: Result<(), mcp_health::store::StoreError>| {
        let err = result.expect_err(what);
        assert!(err.to_string().contains("not a cluster member now"), "{what}: {err}");
    };
    refused("a create after b's delete", put(&a, &specs[1], 1).await);
    put(&b, &specs[2], 1).await.expect("b creates again");
    a.load().await.expect("a reads the new incarnation");
    refused("an update on the incarnation a holds", put(&a, &specs[3], 2).await);
    refused("a delete of the incarnation a holds", remove(&a, "web").await);
    let (groups, _) = b.load().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((&groups[0].spec, groups[0].generation), (&specs[2], 1), "only b's writes are in etcd");
    // Not joined at all: nothing is written either.
    let never = EtcdStore::new(client.clone(), keys.clone(), ClusterStatus::default());
    let err = put(&never, &spec("other", "http://127.0.0.1:1/x"), 1).await.expect_err("not joined");
    assert!(err.to_string().contains("not joined"), "{err}");
    assert_eq!(b.load().await.unwrap().0.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_each_other_and_a_leaving_member_disappears() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/members-test");
    let ttl = Duration::from_secs(3);
    let (sa, sb) = (ClusterStatus::default(), ClusterStatus::default());
    let (ca, cb) = (CancellationToken::new(), CancellationToken::new());
    let a = tokio::spawn(membership::run(
        client.clone(),
        keys.clone(),
        ttl,
        Member::new("a"),
        sa.clone(),
        None,
        ca.clone(),
    ));
    tokio::spawn(membership::run(
        client.clone(),
        keys.clone(),
        ttl,
        Member::new("b"),
        sb.clone(),
        None,
        cb.clone(),
    ));
    tokio::spawn(membership::follow_members(client.clone(), keys.clone(), sa.clone(), None, ca.clone()));
    tokio::spawn(membership::follow_members(client.clone(), keys.clone(), sb.clone(), None, cb.clone()));
    until("both members seen by both", || sa.view().members.len() == 2 && sb.view().members.len() == 2).await;
    let (va, vb) = (sa.view(), sb.view());
    assert_eq!(va.members, vb.members);
    let me_a = va.me.clone().unwrap();
    assert_eq!(me_a, member_id(va.lease));
    assert!(va.degraded.is_none() && vb.degraded.is_none());
    // Each backend owned by exactly one of them.
    for i in 0..50 {
        let owners = [&va, &vb].iter().filter(|v| v.owns("g", &format!("b{i}"))).count();
        assert_eq!(owners, 1);
    }
    // Renewals keep the lease past its TTL.
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    assert_eq!(sb.view().members.len(), 2, "renewed leases outlive their TTL");
    assert!(sa.counters.lease_renewals.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // A leaves (revoking its lease): B sees it go at once and owns everything.
    ca.cancel();
    a.await.unwrap();
    until("b sees a leave", || !sb.view().members.contains(&me_a)).await;
    assert!((0..50).all(|i| sb.view().owns("g", &format!("b{i}"))));
    cb.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_from_an_expired_lease_is_fenced_off() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/fence-test");
    let status = ClusterStatus::default();
    let writer = VerdictWriter::new(client.clone(), keys.clone(), status.clone());
    let verdict = |who: &str, s: BackendStatus| VerdictRecord {
        writer: who.into(),
        group_created: None,
        verdict: shared_verdict(s),
    };
    // Two members, each with its lease and member key.
    let old = client.lease_grant(Duration::from_secs(2)).await.unwrap();
    client.put(&keys.member(&member_id(old)), b"{}".to_vec(), old).await.unwrap();
    let new = client.lease_grant(Duration::from_secs(30)).await.unwrap();
    client.put(&keys.member(&member_id(new)), b"{}".to_vec(), new).await.unwrap();

    let w = writer
        .publish_as(&member_id(old), old, "web", "a", &verdict("old", BackendStatus::Healthy), RECORD_VERSION)
        .await
        .unwrap();
    assert_eq!(w, Published::Committed, "a live lease writes");
    // The old member stops renewing (SIGSTOP): its lease expires, its key goes.
    let member_key = keys.member(&member_id(old));
    let c = client.clone();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !c.range_prefix(&member_key).await.unwrap().0.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new owner publishes the fresh verdict; the old one's late write is refused.
    let w = writer
        .publish_as(&member_id(new), new, "web", "a", &verdict("new", BackendStatus::Unhealthy), RECORD_VERSION)
        .await
        .unwrap();
    assert_eq!(w, Published::Committed);
    let late = writer
        .publish_as(&member_id(old), old, "web", "a", &verdict("old", BackendStatus::Healthy), RECORD_VERSION)
        .await
        .unwrap();
    assert_eq!(late, Published::Fenced);
    let (kvs, _) = client.range_prefix(&keys.verdict("web", "a")).await.unwrap();
    let stored = VerdictRecord::decode(&kvs[0].value).unwrap();
    assert_eq!(stored.writer, "new");
    assert_eq!(stored.status(), BackendStatus::Unhealthy);
    assert_eq!(status.counters.verdicts_fenced.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Not joined: nothing is written.
    assert_eq!(
        writer.publish("web", "a", &verdict("x", BackendStatus::Healthy).verdict, None).await.unwrap(),
        Published::Skipped
    );
}

/// A shared verdict of `status`, as an owner would publish it.
fn shared_verdict(status: BackendStatus) -> mcp_health::engine::seam::SharedVerdict {
    mcp_health::engine::seam::SharedVerdict {
        observed: mcp_health::engine::seam::Observed {
            verdict: mcp_health::core::verdict::Verdict {
                status,
                consecutive_failures: u32::from(status == BackendStatus::Unhealthy) * 3,
                ..mcp_health::core::verdict::Verdict::unknown()
            },
            reason: mcp_health::core::outcome::Reason::new(ReasonCode::Ok, "ok"),
            facts: Default::default(),
            last_latency: Some(Duration::from_millis(3)),
            last_probe: Some(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000)),
            last_transition: None,
            address: Some("127.0.0.1:9".parse().unwrap()),
        },
        catalog: Default::default(),
        ejection: None,
    }
}

/// A rolling upgrade, both ways: while a member from before versioned
/// records is live (its member key has no `records`), a new replica writes
/// verdict records in version 1, the format the old binary reads
/// (`{writer, progress, health: BackendHealth}`); once the old member is
/// gone, it writes version 2. The new binary reads both
/// (`record::tests` checks the old binary's exact bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_cluster_writes_the_verdict_record_every_member_reads() {
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/upgrade-test");
    // The old replica: a member key as binaries before versioning wrote it.
    let old = client.lease_grant(Duration::from_secs(30)).await.unwrap();
    client.put(&keys.member(&member_id(old)), br#"{"name":"old"}"#.to_vec(), old).await.unwrap();
    // The new replica joins and follows the members.
    let status = ClusterStatus::default();
    let cancel = CancellationToken::new();
    tokio::spawn(membership::run(
        client.clone(),
        keys.clone(),
        Duration::from_secs(30),
        Member::new("new"),
        status.clone(),
        None,
        cancel.clone(),
    ));
    tokio::spawn(membership::follow_members(client.clone(), keys.clone(), status.clone(), None, cancel.clone()));
    until("both members seen", || status.view().members.len() == 2 && status.view().me.is_some()).await;
    assert_eq!(status.view().record_version(), 1, "{:?}", status.view().records);

    let writer = VerdictWriter::new(client.clone(), keys.clone(), status.clone());
    let stored = || async {
        let (kvs, _) = client.range_prefix(&keys.verdict("web", "a")).await.unwrap();
        serde_json::from_slice::<serde_json::Value>(&kvs[0].value).unwrap()
    };
    assert_eq!(
        writer.publish("web", "a", &shared_verdict(BackendStatus::Unhealthy), None).await.unwrap(),
        Published::Committed
    );
    let v1 = stored().await;
    // What the old binary decodes: its struct, with the API message inside.
    assert!(v1.get("v").is_none(), "{v1}");
    assert_eq!(v1["health"]["status"], "BACKEND_STATUS_UNHEALTHY", "{v1}");
    assert_eq!(v1["health"]["consecutiveFailures"], 3, "{v1}");
    assert_eq!(v1["health"]["address"], "127.0.0.1:9", "{v1}");
    assert_eq!(v1["writer"], status.view().me.unwrap().as_str(), "{v1}");

    // The old replica leaves (its lease revoked): the cluster moves to version 2.
    client.lease_revoke(old).await.unwrap();
    until("the old member gone", || status.view().members.len() == 1).await;
    assert_eq!(status.view().record_version(), RECORD_VERSION);
    assert_eq!(
        writer.publish("web", "a", &shared_verdict(BackendStatus::Healthy), None).await.unwrap(),
        Published::Committed
    );
    let v2 = stored().await;
    assert_eq!(
        (&v2["v"], &v2["status"]),
        (&serde_json::json!(2), &serde_json::json!("BACKEND_STATUS_HEALTHY")),
        "{v2}"
    );
    assert!(v2.get("health").is_none(), "{v2}");
    let (kvs, _) = client.range_prefix(&keys.verdict("web", "a")).await.unwrap();
    assert_eq!(VerdictRecord::decode(&kvs[0].value).unwrap().verdict, shared_verdict(BackendStatus::Healthy));
    cancel.cancel();
}

/// A start that fails after joining (here the config file is invalid, found
/// once the engine runs) leaves the cluster at once: its lease is revoked, so
/// no member key lingers for the lease's TTL and the others never count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_failing_after_the_join_revokes_its_lease() {
    crate::common::install_crypto();
    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/late-failure-test");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("groups.yaml");
    std::fs::write(&config, "groups: [this is not a group\n").unwrap();
    let grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();

    let err = mcp_health::daemon::Daemon::start(mcp_health::daemon::DaemonOptions {
        listen: grpc,
        config: Some(config.clone()),
        // Far longer than the test: only a revoke removes the member key.
        cluster: Some(etcd.options("/late-failure-test", 600)),
        ..Default::default()
    })
    .await
    .err()
    .expect("an invalid config file refuses the start");
    assert!(mcp_health::daemon::chain(&err).contains(&config.display().to_string()), "{err}");

    let (members, _) = client.range_prefix(&keys.members()).await.unwrap();
    assert!(members.is_empty(), "a member key outlived the failed start: {members:?}");
    std::net::TcpListener::bind(grpc).expect("the --listen port was released");
}

/// A verdict is tied to its group's incarnation: one of a deleted
/// incarnation that reaches etcd late (its write held up, e.g. by an etcd
/// leader election, and written again by the publisher) must not land on the
/// group applied again meanwhile, where every replica would take it for the
/// new incarnation's backend. The write is fenced on the group key's create
/// revision; the new incarnation's own verdict lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_of_a_deleted_incarnation_never_lands_on_the_new_one() {
    use mcp_health::cluster::shared;
    use mcp_health::engine::seam::ClusterSeam;
    use std::sync::atomic::Ordering::Relaxed;

    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/incarnation-test");
    let status = joined(&client, &keys).await;
    let store = EtcdStore::new(client.clone(), keys.clone(), status.clone());
    let put = |s: GroupSpec| {
        let store = store.clone();
        async move { store.put(&s, 1).await }
    };
    put(spec("web", "http://127.0.0.1:1/1")).await.expect("create");
    let (seam, publisher) = shared::seam(status.clone(), store.clone(), Default::default(), Default::default());
    // The owner's verdict of the first incarnation is on its way to etcd...
    seam.verdict_changed("web", "a", &shared_verdict(BackendStatus::Unhealthy));
    // ... when the group is deleted and applied again.
    {
        let store = store.clone();
        store.remove("web").await.expect("delete");
    }
    put(spec("web", "http://127.0.0.1:1/2")).await.expect("create again");
    let cancel = CancellationToken::new();
    tokio::spawn(publisher.run(VerdictWriter::new(client.clone(), keys.clone(), status.clone()), cancel.clone()));
    let tried = |n: u64| {
        let c = status.counters.clone();
        move || c.verdicts_published.load(Relaxed) + c.verdicts_fenced.load(Relaxed) >= n
    };
    until("the late verdict written or refused", tried(1)).await;
    let stored = || async {
        let (kvs, _) = client.range_prefix(&keys.group_verdicts("web")).await.unwrap();
        kvs.iter().map(|kv| VerdictRecord::decode(&kv.value).unwrap().status()).collect::<Vec<_>>()
    };
    assert_eq!(stored().await, vec![], "the deleted incarnation's verdict landed on the new one");
    assert_eq!(status.counters.verdicts_fenced.load(Relaxed), 1);
    // The new incarnation's own verdict lands.
    seam.verdict_changed("web", "a", &shared_verdict(BackendStatus::Healthy));
    until("the new verdict written", tried(2)).await;
    assert_eq!(stored().await, vec![BackendStatus::Healthy]);
    cancel.cancel();
}

/// A verdict change made while this replica is degraded (it probes every
/// backend itself, and writes nothing) is written once it is a member again,
/// if it still owns the backend: an owner shares only changes, and when no
/// verdict of the backend is in etcd (a group created meanwhile) nothing
/// would make it share again. Found by the fault-schedule harness (seed 42,
/// fault 24, a partition from etcd: the owner showed a backend of a group
/// applied during the partition HEALTHY, the two others UNKNOWN for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_changed_while_degraded_is_written_after_the_spell() {
    use mcp_health::cluster::shared;
    use mcp_health::engine::seam::ClusterSeam;

    let etcd = EtcdCluster::start(1).await;
    let client = etcd.client().await;
    let keys = Keys::new("/degraded-share-test");
    let status = joined(&client, &keys).await;
    let store = EtcdStore::new(client.clone(), keys.clone(), status.clone());
    {
        let store = store.clone();
        store.put(&spec("web", "http://127.0.0.1:1/1"), 1).await.expect("create");
    }
    let (seam, publisher) = shared::seam(status.clone(), store.clone(), Default::default(), Default::default());
    let cancel = CancellationToken::new();
    tokio::spawn(publisher.run(VerdictWriter::new(client.clone(), keys.clone(), status.clone()), cancel.clone()));
    status.update(|v| v.degraded = Some("etcd unreachable (test)".into()));
    seam.verdict_changed("web", "a", &shared_verdict(BackendStatus::Healthy));
    until("the publisher took the change", || seam.pending() == 0).await;
    status.update(|v| v.degraded = None);
    let written = || async {
        let (kvs, _) = client.range_prefix(&keys.group_verdicts("web")).await.unwrap();
        kvs.iter().map(|kv| VerdictRecord::decode(&kv.value).unwrap().status()).collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while written().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the change made while degraded was never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(written().await, vec![BackendStatus::Healthy]);
    cancel.cancel();
}
