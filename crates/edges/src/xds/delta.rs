//! Incremental (delta) xDS for one resource type on one stream: subscribe and
//! unsubscribe (named, "*" and the legacy wildcard), the versions the client
//! has (`initial_resource_versions` on reconnect), ACK and NACK, and removals.
//! Pure, like `sotw`.
//!
//! Subscription changes are honoured whatever the nonce (the protocol says a
//! stale nonce must not be used to reject them). A name outside our prefix
//! does not exist and is answered in `removed_resources`; a name under it
//! whose group does not exist is an assignment without endpoints, as in SotW.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::catalog::Catalog;
use super::sotw::Kind;
use super::wire::{DeltaDiscoveryResponse, Resource};

/// One resource type on one delta stream.
#[derive(Debug)]
pub struct Delta {
    type_url: String,
    started: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// Resource name to the version the client has (as far as we know).
    known: HashMap<String, String>,
    /// Named subscriptions already answered as not existing.
    told_absent: BTreeSet<String>,
}

impl Delta {
    pub fn new(type_url: &str) -> Self {
        Delta {
            type_url: type_url.to_owned(),
            started: false,
            wildcard: false,
            names: BTreeSet::new(),
            known: HashMap::new(),
            told_absent: BTreeSet::new(),
        }
    }

    /// Handles one request; returns what it was and the response to send, if any.
    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest, catalog: &Catalog, nonces: &mut u64) -> (Kind, Option<DeltaDiscoveryResponse>) {
        let first = !self.started;
        self.started = true;
        let kind = match (&req.error_detail, req.response_nonce.is_empty()) {
            (Some(e), _) => Kind::Nack {
                version: String::new(),
                message: e.message.clone(),
            },
            (None, false) => Kind::Ack { version: String::new() },
            (None, true) => Kind::Request,
        };
        if first {
            self.known = req.initial_resource_versions.clone().into_iter().collect();
            if req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty() {
                self.wildcard = true;
            }
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                self.wildcard = true;
            } else {
                self.names.insert(name.clone());
                // Must be sent even if the client seems to have it.
                if !first {
                    self.known.remove(name);
                }
                self.told_absent.remove(name);
            }
        }
        let mut removed = Vec::new();
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                self.wildcard = false;
                continue;
            }
            self.names.remove(name);
            self.told_absent.remove(name);
            if self.known.remove(name).is_some() && self.wildcard && !catalog.contains(name) {
                // Subscribed by name and by wildcard, and the wildcard does not
                // cover it: the client must be told to drop it.
                removed.push(name.clone());
            }
        }
        if !self.wildcard {
            let names = &self.names;
            self.known.retain(|n, _| names.contains(n));
        }
        let response = self.respond(catalog, nonces, removed, first);
        (kind, response)
    }

    /// A new catalog: the changed and removed resources, if any.
    pub fn on_catalog(&mut self, catalog: &Catalog, nonces: &mut u64) -> Option<DeltaDiscoveryResponse> {
        self.respond(catalog, nonces, Vec::new(), false)
    }

    fn respond(&mut self, catalog: &Catalog, nonces: &mut u64, mut removed: Vec<String>, always: bool) -> Option<DeltaDiscoveryResponse> {
        let wildcard_names = self.wildcard.then(|| catalog.resources.keys()).into_iter().flatten();
        let wanted: BTreeSet<String> = self.names.iter().chain(wildcard_names).cloned().collect();
        let mut resources = Vec::new();
        for name in &wanted {
            match catalog.get(name) {
                Some(entry) => {
                    let version = entry.version.to_string();
                    if self.known.get(name) != Some(&version) {
                        self.known.insert(name.clone(), version.clone());
                        resources.push(Resource {
                            name: name.clone(),
                            version,
                            resource: entry.resource.clone(),
                        });
                    }
                }
                None => {
                    if self.told_absent.insert(name.clone()) {
                        self.known.remove(name);
                        removed.push(name.clone());
                    }
                }
            }
        }
        // Resources the client has that nothing subscribes to any more (a
        // group gone from a wildcard subscription, or a stale initial version).
        let gone: Vec<String> = self.known.keys().filter(|n| !wanted.contains(*n)).cloned().collect();
        for name in gone {
            self.known.remove(&name);
            removed.push(name);
        }
        if resources.is_empty() && removed.is_empty() && !always {
            return None;
        }
        removed.sort();
        removed.dedup();
        *nonces += 1;
        Some(DeltaDiscoveryResponse {
            system_version_info: catalog.version.to_string(),
            resources,
            type_url: self.type_url.clone(),
            removed_resources: removed,
            nonce: nonces.to_string(),
        })
    }
}
