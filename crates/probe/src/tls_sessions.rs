//! TLS session resumption across probes: one bounded, lazily grown store of
//! session tickets for all probe clients, each TLS setting in its own scope.
//!
//! Resumption skips the server's certificate and its verification, not the
//! ephemeral key exchange (rustls resumes TLS 1.3 in `psk_dhe_ke` mode only),
//! and every probe still opens a fresh TCP connection (see `client.rs`). A ticket a restarted server no
//! longer accepts costs one full handshake, nothing more.
//!
//! rustls' own `ClientSessionMemoryCache` holds 256 tickets (32 servers) by
//! default and preallocates its whole capacity, per `ClientConfig`: too small
//! for 10,000 backends, too big to size up for every distinct TLS setting.
//! This store grows with the servers actually probed, up to `capacity`
//! servers in all, evicting the oldest-added server first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// Servers remembered at once, across every TLS setting (about 1 to 4 KiB
/// each, mostly the server's certificate chain).
pub const DEFAULT_CAPACITY: usize = 65_536;
/// TLS 1.3 tickets kept per server. A probe takes one per handshake and the
/// server sends fresh ones (rustls servers send 2), so a few are plenty.
const TICKETS_PER_SERVER: usize = 4;

type Key = (u32, ServerName<'static>);

#[derive(Default)]
struct ServerData {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

#[derive(Default)]
struct Inner {
    servers: HashMap<Key, ServerData>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
}

/// The shared store. Hand each TLS setting its own [`SessionStore::scope`].
#[derive(Debug)]
pub struct SessionStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("servers", &self.servers.len()).finish()
    }
}

impl SessionStore {
    pub fn new(capacity: usize) -> Arc<SessionStore> {
        Arc::new(SessionStore {
            inner: Mutex::new(Inner::default()),
            capacity,
        })
    }

    /// The store of one TLS setting: its tickets are never offered to a
    /// server under another setting (another trust store or client
    /// certificate). rustls checks the same at resumption time.
    pub fn scope(self: &Arc<Self>, id: u32) -> Arc<dyn ClientSessionStore> {
        Arc::new(Scoped { store: self.clone(), id })
    }

    /// Servers with anything stored.
    pub fn len(&self) -> usize {
        self.lock().servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a thread panicked mid-update; tickets are a cache.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, key: Key, f: impl FnOnce(&mut ServerData)) {
        let mut inner = self.lock();
        if let Some(data) = inner.servers.get_mut(&key) {
            return f(data);
        }
        if self.capacity == 0 {
            return;
        }
        while inner.servers.len() >= self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.servers.remove(&oldest);
        }
        let mut data = ServerData::default();
        f(&mut data);
        inner.order.push_back(key.clone());
        inner.servers.insert(key, data);
    }

    fn read<T>(&self, key: &Key, f: impl FnOnce(&mut ServerData) -> Option<T>) -> Option<T> {
        self.lock().servers.get_mut(key).and_then(f)
    }
}

#[derive(Debug)]
struct Scoped {
    store: Arc<SessionStore>,
    id: u32,
}

impl Scoped {
    fn key(&self, name: &ServerName<'_>) -> Key {
        (self.id, name.to_owned())
    }
}

impl ClientSessionStore for Scoped {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.store.update((self.id, server_name), |d| d.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store.read(&self.key(server_name), |d| d.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.store.update((self.id, server_name), |d| d.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.store.read(&self.key(server_name), |d| d.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store.read(&self.key(server_name), |d| d.tls12.take());
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.store.update((self.id, server_name), |d| {
            if d.tls13.len() == TICKETS_PER_SERVER {
                d.tls13.pop_front();
            }
            d.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // Newest first: the most recently issued ticket is the least likely to
        // have expired or been invalidated by a key rotation.
        self.store.read(&self.key(server_name), |d| d.tls13.pop_back())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> ServerName<'static> {
        ServerName::try_from(n.to_owned()).unwrap()
    }

    #[test]
    fn scopes_are_separate_and_capacity_evicts_oldest() {
        let store = SessionStore::new(2);
        let a = store.scope(1);
        let b = store.scope(2);
        a.set_kx_hint(name("x.test"), NamedGroup::X25519);
        assert_eq!(a.kx_hint(&name("x.test")), Some(NamedGroup::X25519));
        assert_eq!(b.kx_hint(&name("x.test")), None, "another TLS setting sees nothing");
        b.set_kx_hint(name("x.test"), NamedGroup::secp256r1);
        assert_eq!(store.len(), 2);
        a.set_kx_hint(name("y.test"), NamedGroup::X25519);
        assert_eq!(store.len(), 2, "bounded");
        assert_eq!(a.kx_hint(&name("x.test")), None, "the oldest server went first");
        assert_eq!(b.kx_hint(&name("x.test")), Some(NamedGroup::secp256r1));
        let none = SessionStore::new(0).scope(1);
        none.set_kx_hint(name("x.test"), NamedGroup::X25519);
        assert_eq!(none.kx_hint(&name("x.test")), None);
    }
}
