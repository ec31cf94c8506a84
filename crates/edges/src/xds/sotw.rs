//! State-of-the-world xDS for one resource type on one stream: subscriptions
//! (named, wildcard "*" and the legacy empty-list wildcard), nonces, ACK and
//! NACK, and which resources a response carries. Pure: the stream task feeds it
//! requests and catalogs and sends what it returns.
//!
//! ClusterLoadAssignment is not a full-state type: a response carries only the
//! subscribed resources the client does not have yet at their current version,
//! and the client keeps the others (xDS protocol, "Grouping Resources into
//! Responses").

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::catalog::Catalog;
use super::wire::DiscoveryResponse;

/// What a request was, for the stream's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The first request of the type, or a change of subscription without a nonce.
    Request,
    /// Accepts the response with that nonce; `version` is now the client's.
    Ack { version: String },
    /// Rejects the response with that nonce; the client stays at `version`.
    Nack { version: String, message: String },
    /// Carries a nonce older than the last response: superseded, ignored.
    Stale,
}

/// One resource type on one SotW stream.
#[derive(Debug)]
pub struct Sotw {
    type_url: String,
    /// The client ever named a resource: an empty list then unsubscribes from
    /// everything instead of meaning the wildcard.
    explicit: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// Resource name to the entry version last sent on this stream.
    sent: HashMap<String, u64>,
    /// The nonce of the last response; None before the first.
    nonce: Option<String>,
    /// The version the client last accepted.
    pub acked_version: String,
}

impl Sotw {
    pub fn new(type_url: &str) -> Self {
        Sotw {
            type_url: type_url.to_owned(),
            explicit: false,
            wildcard: false,
            names: BTreeSet::new(),
            sent: HashMap::new(),
            nonce: None,
            acked_version: String::new(),
        }
    }

    /// Handles one request; returns what it was and the response to send, if any.
    pub fn on_request(&mut self, req: &DiscoveryRequest, catalog: &Catalog, nonces: &mut u64) -> (Kind, Option<DiscoveryResponse>) {
        if let Some(last) = &self.nonce
            && req.response_nonce != *last
        {
            return (Kind::Stale, None);
        }
        let kind = match (&req.error_detail, req.response_nonce.is_empty()) {
            (Some(e), _) => Kind::Nack {
                version: req.version_info.clone(),
                message: e.message.clone(),
            },
            (None, false) => {
                self.acked_version = req.version_info.clone();
                Kind::Ack {
                    version: req.version_info.clone(),
                }
            }
            (None, true) => Kind::Request,
        };
        self.subscribe(&req.resource_names);
        let first = self.nonce.is_none();
        (kind, self.respond(catalog, nonces, first))
    }

    /// A new catalog: the response with every subscribed resource that changed, if any.
    pub fn on_catalog(&mut self, catalog: &Catalog, nonces: &mut u64) -> Option<DiscoveryResponse> {
        self.respond(catalog, nonces, false)
    }

    fn subscribe(&mut self, names: &[String]) {
        if names.is_empty() && !self.explicit {
            self.wildcard = true;
        } else {
            self.explicit = true;
            self.wildcard = names.iter().any(|n| n == "*");
            self.names = names.iter().filter(|n| *n != "*").cloned().collect();
        }
        // Forget what was sent for names no longer subscribed: a resubscription
        // sends them again, as the protocol requires.
        let (wildcard, names) = (self.wildcard, &self.names);
        self.sent.retain(|n, _| names.contains(n) || wildcard);
    }

    fn respond(&mut self, catalog: &Catalog, nonces: &mut u64, always: bool) -> Option<DiscoveryResponse> {
        let mut resources = Vec::new();
        let wildcard_names = self.wildcard.then(|| catalog.resources.keys()).into_iter().flatten();
        let wanted: BTreeSet<&String> = self.names.iter().chain(wildcard_names).collect();
        for name in &wanted {
            let Some(entry) = catalog.get(name) else { continue };
            if self.sent.get(*name) != Some(&entry.version) {
                self.sent.insert((*name).clone(), entry.version);
                resources.push(entry.resource.clone());
            }
        }
        // A group that left a wildcard subscription: nothing to send (EDS has
        // no deletion in SotW), but a later one of that name is sent afresh.
        self.sent.retain(|n, _| wanted.contains(n));
        if resources.is_empty() && !always {
            return None;
        }
        *nonces += 1;
        let nonce = nonces.to_string();
        self.nonce = Some(nonce.clone());
        Some(DiscoveryResponse {
            version_info: catalog.version.to_string(),
            resources,
            type_url: self.type_url.clone(),
            nonce,
        })
    }
}
