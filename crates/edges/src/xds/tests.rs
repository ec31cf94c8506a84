//! The protocol state machines (`sotw`, `delta`) driven by hand-made catalogs:
//! subscriptions, wildcard, ACK, NACK, stale nonces, resubscription, removal.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use envoy_types::util::pack_any;
use prost::Message;

use super::EDS_TYPE;
use super::catalog::{Catalog, Entry};
use super::delta::Delta;
use super::sotw::{Kind, Sotw};
use super::wire::{DeltaDiscoveryResponse, DiscoveryResponse, SharedAny};

/// A catalog of groups at versions: `[("a", 3)]` is `mcp-health/a` at revision 3.
fn catalog(version: u64, groups: &[(&str, u64)]) -> Catalog {
    let resources: BTreeMap<String, Arc<Entry>> = groups
        .iter()
        .map(|(g, v)| {
            let name = format!("mcp-health/{g}");
            let cla = ClusterLoadAssignment {
                cluster_name: name.clone(),
                // A distinct body per version.
                endpoints: (0..*v).map(|_| Default::default()).collect(),
                ..Default::default()
            };
            (
                name,
                Arc::new(Entry {
                    version: *v,
                    resource: SharedAny::new(&pack_any(cla)),
                }),
            )
        })
        .collect();
    Catalog { version, resources }
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| ClusterLoadAssignment::decode(a.value()).unwrap().cluster_name)
        .collect()
}

fn sotw_req(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        type_url: EDS_TYPE.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn nack(mut r: DiscoveryRequest) -> DiscoveryRequest {
    r.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad endpoint".into(),
        ..Default::default()
    });
    r
}

#[test]
fn sotw_named_subscription_ack_change_nack_and_resubscribe() {
    let mut s = Sotw::new(EDS_TYPE);
    let mut nonces = 0;
    let c1 = catalog(5, &[("a", 2), ("b", 5)]);

    // The first request: the named resource at the current version.
    let (kind, r) = s.on_request(&sotw_req(&["mcp-health/a"], "", ""), &c1, &mut nonces);
    let r = r.unwrap();
    assert_eq!(
        (kind, names(&r), r.version_info.as_str(), r.nonce.as_str()),
        (Kind::Request, vec!["mcp-health/a".to_string()], "5", "1")
    );
    assert_eq!(r.type_url, EDS_TYPE);

    // ACK: nothing new to send.
    let (kind, r) = s.on_request(&sotw_req(&["mcp-health/a"], "5", "1"), &c1, &mut nonces);
    assert_eq!((kind, r), (Kind::Ack { version: "5".into() }, None));
    assert_eq!(s.acked_version, "5");

    // A change of an unsubscribed group pushes nothing; of a subscribed one, a push.
    assert_eq!(s.on_catalog(&catalog(6, &[("a", 2), ("b", 6)]), &mut nonces), None);
    let c7 = catalog(7, &[("a", 7), ("b", 6)]);
    let r = s.on_catalog(&c7, &mut nonces).unwrap();
    assert_eq!(
        (names(&r), r.version_info.as_str(), r.nonce.as_str()),
        (vec!["mcp-health/a".to_string()], "7", "2")
    );

    // A request still carrying nonce 1 is stale: ignored, even its names.
    let (kind, r) = s.on_request(&sotw_req(&["mcp-health/a", "mcp-health/b"], "5", "1"), &c7, &mut nonces);
    assert_eq!((kind, r), (Kind::Stale, None));

    // NACK of nonce 2: the client stays at 5, nothing is resent until a change.
    let (kind, r) = s.on_request(&nack(sotw_req(&["mcp-health/a"], "5", "2")), &c7, &mut nonces);
    assert_eq!(
        (kind, r),
        (
            Kind::Nack {
                version: "5".into(),
                message: "bad endpoint".into()
            },
            None
        )
    );
    assert_eq!(s.acked_version, "5");
    let r = s.on_catalog(&catalog(8, &[("a", 8), ("b", 6)]), &mut nonces).unwrap();
    assert_eq!(names(&r), ["mcp-health/a"]);

    // Adding b sends b only; unsubscribing a then subscribing again resends a.
    let c8 = catalog(8, &[("a", 8), ("b", 6)]);
    let (_, r) = s.on_request(&sotw_req(&["mcp-health/a", "mcp-health/b"], "8", &r.nonce), &c8, &mut nonces);
    let r = r.unwrap();
    assert_eq!(names(&r), ["mcp-health/b"]);
    let (_, none) = s.on_request(&sotw_req(&["mcp-health/b"], "8", &r.nonce), &c8, &mut nonces);
    assert_eq!(none, None);
    let (_, r2) = s.on_request(&sotw_req(&["mcp-health/a", "mcp-health/b"], "8", &r.nonce), &c8, &mut nonces);
    assert_eq!(names(&r2.unwrap()), ["mcp-health/a"]);
}

#[test]
fn sotw_a_missing_group_is_an_empty_assignment_and_foreign_names_are_ignored() {
    let mut s = Sotw::new(EDS_TYPE);
    let mut n = 0;
    let (_, r) = s.on_request(&sotw_req(&["mcp-health/gone", "other"], "", ""), &catalog(3, &[("a", 3)]), &mut n);
    let r = r.unwrap();
    assert_eq!(names(&r), ["mcp-health/gone"]);
    let cla = ClusterLoadAssignment::decode(r.resources[0].value()).unwrap();
    assert!(cla.endpoints.is_empty());
    // The group appears: pushed; deleted again: the empty assignment is pushed.
    let r = s.on_catalog(&catalog(4, &[("a", 3), ("gone", 4)]), &mut n).unwrap();
    assert_eq!(ClusterLoadAssignment::decode(r.resources[0].value()).unwrap().endpoints.len(), 4);
    let r = s.on_catalog(&catalog(5, &[("a", 3)]), &mut n).unwrap();
    assert!(ClusterLoadAssignment::decode(r.resources[0].value()).unwrap().endpoints.is_empty());
}

#[test]
fn sotw_wildcard_legacy_and_explicit() {
    let c = catalog(3, &[("a", 1), ("b", 3)]);
    // Legacy: an empty first request is the wildcard; with no groups the first response is still sent.
    let mut s = Sotw::new(EDS_TYPE);
    let mut n = 0;
    let (_, r) = s.on_request(&sotw_req(&[], "", ""), &Catalog::default(), &mut n);
    assert!(r.unwrap().resources.is_empty());
    let r = s.on_catalog(&c, &mut n).unwrap();
    assert_eq!(names(&r), ["mcp-health/a", "mcp-health/b"]);
    // Explicit "*" plus a name, then the name alone ends the wildcard,
    // then an empty list unsubscribes from everything (not a wildcard any more).
    let mut s = Sotw::new(EDS_TYPE);
    let (_, r) = s.on_request(&sotw_req(&["*", "mcp-health/x"], "", ""), &c, &mut n);
    let r = r.unwrap();
    assert_eq!(names(&r), ["mcp-health/a", "mcp-health/b", "mcp-health/x"]);
    let (_, r) = s.on_request(&sotw_req(&["mcp-health/x"], "3", &r.nonce), &c, &mut n);
    assert_eq!(r, None);
    assert_eq!(s.on_catalog(&catalog(4, &[("a", 4), ("b", 3)]), &mut n), None, "a is no longer subscribed");
    let (_, r) = s.on_request(&sotw_req(&[], "3", &n.to_string()), &c, &mut n);
    assert_eq!(r, None);
    assert_eq!(s.on_catalog(&catalog(9, &[("x", 9)]), &mut n), None, "unsubscribed from everything");
}

fn delta_req(sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: EDS_TYPE.into(),
        resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<(String, String)> {
    r.resources.iter().map(|x| (x.name.clone(), x.version.clone())).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn delta_subscribe_ack_change_nack_unsubscribe_and_absent_names() {
    let mut d = Delta::new(EDS_TYPE);
    let mut n = 0;
    let c = catalog(5, &[("a", 2), ("b", 5)]);
    let (kind, r) = d.on_request(&delta_req(&["mcp-health/a", "nope"], &[], ""), &c, &mut n);
    let r = r.unwrap();
    assert_eq!(kind, Kind::Request);
    assert_eq!(delta_names(&r), pairs(&[("mcp-health/a", "2")]));
    assert_eq!(r.removed_resources, ["nope"], "a name outside the prefix does not exist");
    assert_eq!((r.system_version_info.as_str(), r.nonce.as_str()), ("5", "1"));

    let (kind, r) = d.on_request(&delta_req(&[], &[], "1"), &c, &mut n);
    assert_eq!((kind, r), (Kind::Ack { version: String::new() }, None));

    // Only the changed resource is sent; b is not subscribed.
    let r = d.on_catalog(&catalog(7, &[("a", 7), ("b", 6)]), &mut n).unwrap();
    assert_eq!(delta_names(&r), pairs(&[("mcp-health/a", "7")]));
    assert!(r.removed_resources.is_empty());

    let mut bad = delta_req(&[], &[], &r.nonce);
    bad.error_detail = Some(RpcStatus {
        message: "rejected".into(),
        ..Default::default()
    });
    let (kind, r) = d.on_request(&bad, &catalog(7, &[("a", 7)]), &mut n);
    assert!(matches!(kind, Kind::Nack { message, .. } if message == "rejected"));
    assert_eq!(r, None);

    // Subscribing again to a known resource resends it, even with a stale nonce.
    let (_, r) = d.on_request(&delta_req(&["mcp-health/a"], &[], "1"), &catalog(7, &[("a", 7)]), &mut n);
    assert_eq!(delta_names(&r.unwrap()), pairs(&[("mcp-health/a", "7")]));
    // Unsubscribing needs no answer, and the group's changes are no longer sent.
    let (_, r) = d.on_request(&delta_req(&[], &["mcp-health/a"], ""), &catalog(7, &[("a", 7)]), &mut n);
    assert_eq!(r, None);
    assert_eq!(d.on_catalog(&catalog(8, &[("a", 8)]), &mut n), None);
}

#[test]
fn delta_wildcard_removes_deleted_groups_and_reconnects_with_known_versions() {
    let mut d = Delta::new(EDS_TYPE);
    let mut n = 0;
    let mut first = delta_req(&[], &[], "");
    first.initial_resource_versions = [("mcp-health/a".to_string(), "2".to_string()), ("mcp-health/old".to_string(), "1".to_string())].into();
    let (_, r) = d.on_request(&first, &catalog(5, &[("a", 2), ("b", 5)]), &mut n);
    let r = r.unwrap();
    assert_eq!(delta_names(&r), pairs(&[("mcp-health/b", "5")]), "a is up to date on the client");
    assert_eq!(r.removed_resources, ["mcp-health/old"]);
    let r = d.on_catalog(&catalog(6, &[("a", 2)]), &mut n).unwrap();
    assert!(r.resources.is_empty());
    assert_eq!(r.removed_resources, ["mcp-health/b"]);
    // Wildcard plus a name the wildcard covers: unsubscribing the name resends it.
    let c = catalog(6, &[("a", 2)]);
    let (_, r) = d.on_request(&delta_req(&["mcp-health/a"], &[], ""), &c, &mut n);
    assert_eq!(delta_names(&r.unwrap()), pairs(&[("mcp-health/a", "2")]));
    let (_, r) = d.on_request(&delta_req(&[], &["mcp-health/a"], ""), &c, &mut n);
    assert_eq!(delta_names(&r.unwrap()), pairs(&[("mcp-health/a", "2")]));
    // Leaving the wildcard: later groups are not sent.
    let (_, _) = d.on_request(&delta_req(&[], &["*"], ""), &c, &mut n);
    assert_eq!(d.on_catalog(&catalog(9, &[("a", 2), ("z", 9)]), &mut n), None);
}

/// Issue 20 §4: the frames of every stream's response are the catalog's own
/// buffers (one encoded copy per assignment), SotW and delta alike.
#[test]
fn every_streams_response_sends_the_catalogs_encoded_buffers() {
    use super::wire::GrpcFrames;
    let c = catalog(3, &[("a", 2), ("b", 3)]);
    let mut n = 0;
    let mut sent: Vec<Vec<bytes::Bytes>> = Vec::new();
    for _ in 0..2 {
        let (_, r) = Sotw::new(EDS_TYPE).on_request(&sotw_req(&[], "", ""), &c, &mut n);
        sent.push(r.unwrap().grpc_frames());
        let (_, r) = Delta::new(EDS_TYPE).on_request(&delta_req(&[], &[], ""), &c, &mut n);
        sent.push(r.unwrap().grpc_frames());
    }
    for (name, entry) in &c.resources {
        let buffer = entry.resource.field().as_ptr();
        for (stream, frames) in sent.iter().enumerate() {
            assert!(frames.iter().any(|f| f.as_ptr() == buffer), "response {stream} copied {name}");
        }
    }
}
