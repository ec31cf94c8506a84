//! The open legacy (HTTP+SSE) streams by session id: a POST finds the stream its reply rides on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

type Map = Arc<Mutex<HashMap<String, Session>>>;

/// Open legacy streams by session id. Not on any hot path, so a plain mutex is fine.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Map,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) tx: mpsc::Sender<Bytes>,
    /// Path of the GET that opened the stream: POSTs follow its behaviour.
    pub(crate) path: String,
    /// False for `EndpointOnly`/`EndlessStream`: replies are swallowed.
    pub(crate) deliver: bool,
}

/// Lives inside the stream body; unregisters the session when the client goes away.
pub(crate) struct Unregister {
    map: Map,
    id: String,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&self.id);
    }
}

impl Sessions {
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    pub(crate) fn insert(&self, id: String, s: Session) -> Unregister {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), s);
        Unregister { map: self.map.clone(), id }
    }
}
