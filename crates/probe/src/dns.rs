//! The probes' DNS: host names resolved through hickory-resolver, answers
//! cached for their record TTL (capped), one query in flight per name, and
//! the SSRF guard applied to every answer. A probe whose connection failed
//! forgets its host's answer, so the next probe asks again and follows an
//! address change at once instead of at the TTL.
//!
//! Without `--dns-server` the system's resolver configuration is read
//! (`/etc/resolv.conf`: name servers, search list, ndots; `/etc/hosts`); if it
//! cannot be read, the system resolver (getaddrinfo) is used, its answers
//! cached for [`SYSTEM_TTL`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf;
use mcp_health_core::discovery::{Lookup, Record, RefusedAddr};

/// The longest an answer is trusted, whatever its TTL says.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// How long a getaddrinfo answer (which carries no TTL) is trusted.
pub const SYSTEM_TTL: Duration = Duration::from_secs(5);
/// How long one discovery lookup may take before it is a failed lookup.
/// hickory's own retries take 30 s against a resolver that died (timeouts
/// per attempt, over UDP and TCP); the set's `maxTtl` counts from the last
/// answer, so a lookup must fail well within it for the endpoints to read
/// DNS when the policy says.
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Names cached at once; past it, expired answers are dropped, then new
/// names are resolved without caching.
const MAX_NAMES: usize = 65_536;

/// Where probes resolve host names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// A DNS server (UDP, then TCP) to ask instead of the system's configuration.
    pub server: Option<SocketAddr>,
}

/// Why a name did not resolve; the probe's reason is DNS.
#[derive(Clone, Debug, thiserror::Error)]
#[error("dns lookup of {host} failed: {detail}")]
pub struct DnsFailed {
    pub host: String,
    pub detail: String,
}

type Answer = Result<(Arc<[IpAddr]>, Instant), DnsFailed>;

enum Slot {
    Ready { addrs: Arc<[IpAddr]>, until: Instant },
    Pending(Shared<BoxFuture<'static, Answer>>),
}

#[derive(Clone)]
enum Backend {
    Hickory(Arc<TokioResolver>),
    System,
}

/// The caching resolver shared by every probe client of a daemon.
pub struct Dns {
    backend: Backend,
    cache: Mutex<HashMap<String, Slot>>,
    allow_link_local: bool,
    queries: AtomicU64,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Hickory(_) => "hickory",
            Backend::System => "system",
        };
        f.debug_struct("Dns")
            .field("backend", &backend)
            .field("allow_link_local", &self.allow_link_local)
            .finish()
    }
}

impl Dns {
    /// Whether link-local and cloud-metadata addresses are allowed (the
    /// daemon's `--allow-link-local-backends`): the rule for literal addresses
    /// of URLs a probe discovers.
    pub fn allows_link_local(&self) -> bool {
        self.allow_link_local
    }

    /// A resolver per `settings`; answers with link-local or metadata
    /// addresses are filtered (see `ssrf`) unless `allow_link_local`.
    pub fn new(settings: &DnsSettings, allow_link_local: bool) -> Arc<Dns> {
        let builder = match settings.server {
            Some(addr) => {
                let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                Ok(TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioConnectionProvider::default(),
                ))
            }
            None => TokioResolver::builder_tokio(),
        };
        let backend = match builder {
            Ok(mut b) => {
                let opts: &mut ResolverOpts = b.options_mut();
                // This module caches (so that one name can be forgotten); hickory's own cache would
                // hand the forgotten answer back.
                opts.cache_size = 0;
                Backend::Hickory(Arc::new(b.build()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the system DNS configuration; probes use the system resolver, answers cached for {SYSTEM_TTL:?}");
                Backend::System
            }
        };
        Arc::new(Dns {
            backend,
            cache: Mutex::new(HashMap::new()),
            allow_link_local,
            queries: AtomicU64::new(0),
        })
    }

    /// Lookups sent (cache misses), for benchmarks and tests.
    pub fn lookups(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Drops the cached answer for `host`: its next use asks the server again.
    pub fn forget(&self, host: &str) {
        let mut cache = self.lock();
        if matches!(cache.get(host), Some(Slot::Ready { .. })) {
            cache.remove(host);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A poisoned lock only means a thread panicked mid-update; the map is a cache.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The addresses of `host`, from the cache while its TTL lasts.
    pub async fn lookup(&self, host: &str) -> Result<Arc<[IpAddr]>, DnsFailed> {
        let pending = {
            let mut cache = self.lock();
            match cache.get(host) {
                Some(Slot::Ready { addrs, until }) if Instant::now() < *until => return Ok(addrs.clone()),
                Some(Slot::Pending(f)) => f.clone(),
                _ => {
                    let query = self.query(host.to_owned()).boxed().shared();
                    if cache.len() >= MAX_NAMES && !cache.contains_key(host) {
                        let now = Instant::now();
                        cache.retain(|_, s| !matches!(s, Slot::Ready { until, .. } if *until <= now));
                    }
                    if cache.len() < MAX_NAMES || cache.contains_key(host) {
                        cache.insert(host.to_owned(), Slot::Pending(query.clone()));
                    }
                    query
                }
            }
        };
        let answer = pending.await;
        let mut cache = self.lock();
        if matches!(cache.get(host), Some(Slot::Pending(_))) {
            match &answer {
                Ok((addrs, until)) => {
                    cache.insert(
                        host.to_owned(),
                        Slot::Ready {
                            addrs: addrs.clone(),
                            until: *until,
                        },
                    );
                }
                // Failures are not cached: the next probe asks again.
                Err(_) => {
                    cache.remove(host);
                }
            }
        }
        answer.map(|(addrs, _)| addrs)
    }

    fn query(&self, host: String) -> impl Future<Output = Answer> + Send + 'static {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let backend = self.backend.clone();
        async move {
            let now = Instant::now();
            let (addrs, until): (Vec<IpAddr>, Instant) = match backend {
                Backend::Hickory(r) => {
                    let lookup = r.lookup_ip(host.as_str()).await.map_err(|e| DnsFailed {
                        host: host.clone(),
                        detail: if e.is_no_records_found() {
                            "no address records".to_owned()
                        } else {
                            e.to_string()
                        },
                    })?;
                    (lookup.iter().collect(), lookup.valid_until().min(now + MAX_TTL))
                }
                Backend::System => {
                    let addrs = tokio::net::lookup_host((host.as_str(), 0)).await.map_err(|e| DnsFailed {
                        host: host.clone(),
                        detail: e.to_string(),
                    })?;
                    (addrs.map(|a| a.ip()).collect(), now + SYSTEM_TTL)
                }
            };
            if addrs.is_empty() {
                return Err(DnsFailed {
                    host,
                    detail: "no address records".to_owned(),
                });
            }
            Ok((addrs.into(), until))
        }
    }
}

/// What a discovered backend resolves (issue 23).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoverName<'a> {
    /// A and AAAA records of the URL's host, each address with the URL's port.
    Host { name: &'a str, port: u16 },
    /// An SRV name: each target's addresses with the record's port, priority and weight.
    Srv(&'a str),
}

impl Dns {
    /// Every address `name` resolves to now, with the answer's TTL (the
    /// smallest of the records it took), for DNS discovery. Not cached (the
    /// discovery task asks at the TTL), counted in [`Dns::lookups`], through
    /// the same resolver as probes. Addresses the SSRF rule forbids come back
    /// as refused, never as records. NXDOMAIN and answers without records are
    /// an empty answer (with no TTL of their own: the policy's minimum
    /// applies); anything else, and no answer within [`DISCOVER_TIMEOUT`],
    /// is a failed lookup.
    pub async fn discover(&self, name: DiscoverName<'_>) -> Lookup {
        let now = Instant::now();
        let found = tokio::time::timeout(DISCOVER_TIMEOUT, self.discover_unbounded(name, now))
            .await
            .unwrap_or_else(|_| {
                let shown = match name {
                    DiscoverName::Host { name, .. } | DiscoverName::Srv(name) => name,
                };
                Err(format!("dns lookup of {shown} timed out after {} s", DISCOVER_TIMEOUT.as_secs()))
            });
        match found {
            Ok((all, ttl)) => {
                let (records, refused): (Vec<Record>, Vec<Record>) = all.into_iter().partition(|r| self.allow_link_local || !ssrf::is_forbidden(r.addr.ip()));
                let refused = refused
                    .into_iter()
                    .map(|r| RefusedAddr {
                        addr: r.addr,
                        reason: format!(
                            "refused: {} is a link-local or cloud-metadata address; the daemon allows it only with --allow-link-local-backends",
                            r.addr.ip()
                        ),
                    })
                    .collect();
                Lookup::Answer { records, refused, ttl }
            }
            Err(detail) => Lookup::Failed { detail },
        }
    }

    /// The lookup of [`Dns::discover`], unbounded: every record and the answer's TTL.
    async fn discover_unbounded(&self, name: DiscoverName<'_>, now: Instant) -> Result<(Vec<Record>, Duration), String> {
        match (&self.backend, name) {
            (Backend::Hickory(r), DiscoverName::Host { name, port }) => self.ips_of(r, name, now).await.map(|(ips, ttl)| {
                let records = ips
                    .into_iter()
                    .map(|ip| Record {
                        addr: SocketAddr::new(ip, port),
                        priority: 0,
                        weight: 0,
                    })
                    .collect();
                (records, ttl)
            }),
            (Backend::Hickory(r), DiscoverName::Srv(name)) => self.srv_of(r, name, now).await,
            (Backend::System, DiscoverName::Host { name, port }) => {
                self.queries.fetch_add(1, Ordering::Relaxed);
                match tokio::net::lookup_host((name, port)).await {
                    Ok(addrs) => Ok((addrs.map(|addr| Record { addr, priority: 0, weight: 0 }).collect(), SYSTEM_TTL)),
                    Err(e) => Err(e.to_string()),
                }
            }
            (Backend::System, DiscoverName::Srv(_)) => Err("SRV lookups need a readable resolver configuration (or --dns-server)".to_owned()),
        }
    }

    /// One A/AAAA lookup: the addresses and their TTL; no records is an empty answer.
    async fn ips_of(&self, r: &TokioResolver, name: &str, now: Instant) -> Result<(Vec<IpAddr>, Duration), String> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        match r.lookup_ip(name).await {
            Ok(lookup) => Ok((lookup.iter().collect(), lookup.valid_until().saturating_duration_since(now))),
            Err(e) if e.is_no_records_found() => Ok((Vec::new(), Duration::ZERO)),
            Err(e) => Err(format!("dns lookup of {name} failed: {e}")),
        }
    }

    /// An SRV lookup (RFC 2782), then each target's addresses; a target "."
    /// offers no service. A target that fails to resolve fails the lookup
    /// (a partial set would make its endpoints leave).
    async fn srv_of(&self, r: &TokioResolver, name: &str, now: Instant) -> Result<(Vec<Record>, Duration), String> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let srv = match r.srv_lookup(name).await {
            Ok(srv) => srv,
            Err(e) if e.is_no_records_found() => return Ok((Vec::new(), Duration::ZERO)),
            Err(e) => return Err(format!("dns SRV lookup of {name} failed: {e}")),
        };
        let mut ttl = srv.as_lookup().valid_until().saturating_duration_since(now);
        let mut records = Vec::new();
        for rr in srv.iter() {
            if rr.target().is_root() {
                continue;
            }
            let target = rr.target().to_ascii();
            let (ips, target_ttl) = self.ips_of(r, &target, now).await?;
            ttl = ttl.min(target_ttl);
            records.extend(ips.into_iter().map(|ip| Record {
                addr: SocketAddr::new(ip, rr.port()),
                priority: rr.priority(),
                weight: rr.weight(),
            }));
        }
        // Lowest priority first, then heaviest: the order RFC 2782 prefers.
        records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
        Ok((records, ttl))
    }
}

tokio::task_local! {
    /// The address a discovered endpoint's probe connects to for its host name.
    static PINNED: (String, SocketAddr);
}

/// Runs `probe` with `host` resolving to `addr` only: the probe of one
/// discovered endpoint connects to that address and keeps the name for the
/// Host header and TLS SNI. Other names (a token endpoint) resolve as ever.
/// A task-local rather than a client per endpoint: the resolver is asked
/// while the request's future is polled, inside this scope, and the clients
/// stay shared by TLS setting (no client, root store or session scope per
/// endpoint). `HttpProber` checks that the answer came from `addr`.
pub async fn pinned<F: Future>(host: String, addr: SocketAddr, probe: F) -> F::Output {
    PINNED.scope((host, addr), probe).await
}

/// The pinned address of `host` in the current probe, if any.
pub fn pin_of(host: &str) -> Option<SocketAddr> {
    PINNED.try_with(|(h, a)| h.eq_ignore_ascii_case(host).then_some(*a)).ok().flatten()
}

/// `Dns` as reqwest's resolver.
#[derive(Clone, Debug)]
pub struct DnsResolver(pub Arc<Dns>);

impl Resolve for DnsResolver {
    fn resolve(&self, name: Name) -> Resolving {
        if let Some(addr) = pin_of(name.as_str()) {
            return Box::pin(std::future::ready(Ok(Box::new(std::iter::once(addr)) as Addrs)));
        }
        let dns = self.0.clone();
        Box::pin(async move {
            let host = name.as_str();
            let ips = dns.lookup(host).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let all: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
            let addrs = if dns.allow_link_local { all } else { ssrf::guard(host, all)? };
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Finds a `DnsFailed` in an error's source chain.
pub fn failed_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a DnsFailed> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<DnsFailed>() {
            return Some(r);
        }
        source = e.source();
    }
    None
}
