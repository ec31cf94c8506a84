//! Shared server state: options, the behaviour table, atomic stats and last-POST headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{HeaderMap, HeaderValue};

use crate::jsonrpc::Prebuilt;
use crate::sessions::Sessions;
use crate::{Behavior, FixtureOptions, Flavor, ReplyFormat, RequestRecord, Stats};

/// Path prefix of the RFC 9728 protected-resource metadata document.
pub(crate) const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// Prefix that [`Behavior::Redirect`] sends clients to.
pub(crate) const REDIRECT_PREFIX: &str = "/redirected";

/// Default behaviour plus exact-path overrides; replaced wholesale on every change (rare),
/// read lock-free on every request.
#[derive(Clone)]
pub(crate) struct BehaviorTable {
    pub default: Behavior,
    pub paths: HashMap<String, Behavior>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub reused_connections: AtomicU64,
    pub initialize: AtomicU64,
    pub discover: AtomicU64,
    pub tools_list: AtomicU64,
    pub get_requests: AtomicU64,
    pub delete_requests: AtomicU64,
    pub posts: AtomicU64,
    pub notifications: AtomicU64,
    pub metadata_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub auth_server_metadata_requests: AtomicU64,
    pub open_connections: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            connections: self.connections.load(Relaxed),
            reused_connections: self.reused_connections.load(Relaxed),
            initialize: self.initialize.load(Relaxed),
            discover: self.discover.load(Relaxed),
            tools_list: self.tools_list.load(Relaxed),
            get_requests: self.get_requests.load(Relaxed),
            delete_requests: self.delete_requests.load(Relaxed),
            posts: self.posts.load(Relaxed),
            notifications: self.notifications.load(Relaxed),
            metadata_requests: self.metadata_requests.load(Relaxed),
            token_requests: self.token_requests.load(Relaxed),
            auth_server_metadata_requests: self.auth_server_metadata_requests.load(Relaxed),
            open_connections: self.open_connections.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
        }
    }
}

pub(crate) struct Shared {
    pub addr: SocketAddr,
    /// `http://IP:PORT`, no trailing slash.
    pub base: String,
    /// `/mcp`, or `/sse` for the legacy flavour.
    pub main_path: &'static str,
    pub opts: FixtureOptions,
    /// `Bearer <token>` when a token is required.
    pub expected_auth: Option<Vec<u8>>,
    /// `Bearer resource_metadata="<base>/.well-known/oauth-protected-resource"`.
    pub www_authenticate: HeaderValue,
    pub behaviors: ArcSwap<BehaviorTable>,
    reply: AtomicU8,
    pub stats: Counters,
    pub last_headers: ArcSwapOption<HeaderMap>,
    pub prebuilt: Prebuilt,
    pub session_counter: AtomicU64,
    pub legacy: Sessions,
    /// The form fields (minus `client_secret`) of the latest token request.
    pub last_token_form: std::sync::Mutex<Option<Vec<(String, String)>>>,
    /// Where the token endpoint is: [`crate::TOKEN_PATH`] until moved.
    pub token_path: std::sync::Mutex<String>,
    /// Every request since the last drain, oldest first, at most [`REQUEST_LOG_CAP`].
    pub requests: std::sync::Mutex<std::collections::VecDeque<RequestRecord>>,
}

/// Requests kept in the log between drains; the oldest go first beyond it.
pub(crate) const REQUEST_LOG_CAP: usize = 100_000;

impl Shared {
    /// The token endpoint's path now.
    pub fn token_path(&self) -> String {
        self.token_path.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends one request to the log (dropping the oldest beyond the cap).
    pub fn log_request(&self, record: RequestRecord) {
        // A poisoned lock means a panicking test thread; the log is then moot.
        if let Ok(mut log) = self.requests.lock() {
            if log.len() >= REQUEST_LOG_CAP {
                log.pop_front();
            }
            log.push_back(record);
        }
    }
}

impl Shared {
    pub fn new(addr: SocketAddr, opts: FixtureOptions) -> Shared {
        let base = format!("http://{addr}");
        let main_path = if opts.flavor == Flavor::LegacySse { "/sse" } else { "/mcp" };
        let expected_auth = opts.required_bearer.as_ref().map(|t| format!("Bearer {t}").into_bytes());
        let www = format!("Bearer resource_metadata=\"{base}{METADATA_PATH}\"");
        // `base` is an IP:port rendered by Display: plain visible ASCII, always a valid header value.
        let www_authenticate = HeaderValue::from_str(&www).expect("ASCII header value");
        let reply = opts.reply;
        let prebuilt = Prebuilt::new(&opts);
        let shared = Shared {
            addr,
            base,
            main_path,
            expected_auth,
            www_authenticate,
            behaviors: ArcSwap::from_pointee(BehaviorTable {
                default: Behavior::Healthy,
                paths: HashMap::new(),
            }),
            reply: AtomicU8::new(0),
            stats: Counters::default(),
            last_headers: ArcSwapOption::empty(),
            prebuilt,
            session_counter: AtomicU64::new(1),
            legacy: Sessions::default(),
            last_token_form: std::sync::Mutex::new(None),
            token_path: std::sync::Mutex::new(crate::TOKEN_PATH.to_owned()),
            requests: std::sync::Mutex::new(std::collections::VecDeque::new()),
            opts,
        };
        shared.set_reply(reply);
        shared
    }

    pub fn reply(&self) -> ReplyFormat {
        if self.reply.load(Relaxed) == 1 { ReplyFormat::Sse } else { ReplyFormat::Json }
    }

    pub fn set_reply(&self, f: ReplyFormat) {
        self.reply.store(matches!(f, ReplyFormat::Sse) as u8, Relaxed);
    }

    /// The behaviour for `path`: an exact override, else healthy under the redirect target
    /// prefix, else the server-wide default.
    pub fn behavior_for(&self, path: &str) -> Behavior {
        let table = self.behaviors.load();
        if let Some(b) = table.paths.get(path) {
            return b.clone();
        }
        if path.starts_with(REDIRECT_PREFIX) {
            return Behavior::Healthy;
        }
        table.default.clone()
    }

    pub fn set_default(&self, b: Behavior) {
        self.behaviors.rcu(|t| {
            let mut t = BehaviorTable::clone(t);
            t.default = b.clone();
            Arc::new(t)
        });
    }

    pub fn set_path(&self, path: &str, b: Behavior) {
        self.behaviors.rcu(|t| {
            let mut t = BehaviorTable::clone(t);
            t.paths.insert(path.to_owned(), b.clone());
            Arc::new(t)
        });
    }

    /// A fresh session id (`Mcp-Session-Id` or legacy `session_id`): 32 hex digits.
    pub fn next_session_id(&self) -> String {
        let n = self.session_counter.fetch_add(1, Relaxed);
        format!("{:016x}{:016x}", self.addr.port() as u64, n)
    }
}
