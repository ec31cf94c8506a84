//! Network namespaces with veth links to the host, for tests that cut a
//! process off from part of the network (`ip netns`, iproute2; needs root).
//! Shared by `tests/it/cluster_more.rs` and the fault-schedule harness
//! (`crates/fault-schedule`, which includes this file by path).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (install iproute2 with scripts/setup-system.sh): {e}"))
}

pub fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?} failed (this needs root for network namespaces): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Subnets this process handed out and has not released: tests in one
/// process create namespaces in parallel, and a subnet chosen by one is not
/// on any interface until its addresses are added.
static TAKEN: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// A free 10.213.N.0/24 (no interface has an address in it, and this process
/// has not handed it out), searched from a start that differs per process,
/// so parallel runs rarely collide. Taken until `release_subnet`.
fn free_subnet(skip: &[u8]) -> u8 {
    let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = std::process::id() % 250;
    let n = (0..250)
        .map(|k| ((start + k) % 250 + 1) as u8)
        .find(|n| !skip.contains(n) && !taken.contains(n) && ip(&["-o", "addr", "show", "to", &format!("10.213.{n}.0/24")]).stdout.is_empty())
        .expect("a free 10.213.N.0/24");
    taken.push(n);
    n
}

fn release_subnet(n: u8) {
    TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|t| *t != n);
}

/// A network namespace of its own with `links` veth pairs to the host; link
/// `k` is the /30 10.213.N.(4k)/30: host side .4k+1, namespace side .4k+2.
/// Each link can be cut (set down) alone, as a pulled cable would.
///
/// Deleted on drop, panics included.
pub struct NetNs {
    pub name: String,
    links: Vec<String>,
    subnet: u8,
}

impl NetNs {
    pub fn create(links: usize) -> NetNs {
        Self::create_avoiding(links, &[])
    }

    /// [`NetNs::create`] in a subnet other than those in `skip` (namespaces
    /// created together, before any address is assigned).
    pub fn create_avoiding(links: usize, skip: &[u8]) -> NetNs {
        assert!((1..=63).contains(&links));
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        // Built before any command, so a failure half-way is cleaned up too.
        let ns = NetNs {
            name: format!("mh-ctest-{id}"),
            links: (0..links).map(|k| format!("mh{id}l{k}")).collect(),
            subnet: free_subnet(skip),
        };
        ip_ok(&["netns", "add", &ns.name]);
        for (k, host) in ns.links.iter().enumerate() {
            let inside = format!("{host}i");
            ip_ok(&["link", "add", host, "type", "veth", "peer", "name", &inside]);
            ip_ok(&["link", "set", &inside, "netns", &ns.name]);
            ip_ok(&["addr", "add", &format!("{}/30", ns.host_side(k)), "dev", host]);
            ip_ok(&["link", "set", host, "up"]);
            ip_ok(&["-n", &ns.name, "addr", "add", &format!("{}/30", ns.inner_side(k)), "dev", &inside]);
            ip_ok(&["-n", &ns.name, "link", "set", &inside, "up"]);
        }
        ip_ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    fn addr(&self, last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnet, last))
    }

    /// The host's side of link `k`.
    pub fn host_side(&self, k: usize) -> IpAddr {
        self.addr(4 * k as u8 + 1)
    }

    /// The namespace's side of link `k` (its source address on that link).
    pub fn inner_side(&self, k: usize) -> IpAddr {
        self.addr(4 * k as u8 + 2)
    }

    /// Routes `dest` (a host address off the link's /30) through link `k`.
    pub fn route_via(&self, dest: IpAddr, k: usize) {
        ip_ok(&["-n", &self.name, "route", "add", &format!("{dest}/32"), "via", &self.host_side(k).to_string()]);
    }

    /// Makes `dest` (a host address) unreachable from inside (or reachable
    /// again): a route of its own that answers "no route to host" at once,
    /// while the link and every other address on it stay up.
    pub fn set_unreachable(&self, dest: IpAddr, unreachable: bool) {
        let route = format!("{dest}/32");
        ip_ok(&["-n", &self.name, "route", if unreachable { "add" } else { "del" }, "unreachable", &route]);
    }

    /// Cuts (or restores) link `k`.
    pub fn set_link(&self, k: usize, up: bool) {
        ip_ok(&["link", "set", &self.links[k], if up { "up" } else { "down" }]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth ends and so both pairs;
        // the link deletes are for a namespace that was never populated.
        let _ = ip(&["netns", "del", &self.name]);
        for l in &self.links {
            let _ = ip(&["link", "del", l]);
        }
        release_subnet(self.subnet);
    }
}
