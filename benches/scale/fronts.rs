//! The fixture child's TLS fronts (scenarios 8 and 9): the commands that
//! start one before the fixture server and read its handshake counts. Kept
//! apart from `cost`, which drives them from the parent, so the fixture role
//! and the scenarios do not import each other.

use std::collections::HashMap;
use std::net::SocketAddr;

use mcp_fixture::tls::{TlsFront, server_config};

/// Fixture-side commands for TLS fronts (see `roles::fixture`; `cost` sends them); None when
/// `cmd` is not one of them.
pub fn front_command(rt: &tokio::runtime::Runtime, fronts: &mut HashMap<u16, TlsFront>, upstream: SocketAddr, cmd: &str) -> Option<String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["tls", cert, key, max] => {
            let read = |p: &str| std::fs::read_to_string(p).expect("the parent wrote the PEM files");
            let config = server_config(&read(cert), &read(key)).expect("a usable certificate");
            let max = max.parse::<usize>().ok().filter(|m| *m > 0);
            let front = rt
                .block_on(TlsFront::start("127.0.0.1:0".parse().expect("literal"), config, upstream, max))
                .expect("the front listens");
            let port = front.addr().port();
            fronts.insert(port, front);
            Some(port.to_string())
        }
        ["tlsstats", port] => {
            let s = port.parse::<u16>().ok().and_then(|p| fronts.get(&p)).map(|f| f.stats()).unwrap_or_default();
            Some(format!("{} {} {} {}", s.connections, s.full, s.resumed, s.refused))
        }
        _ => None,
    }
}
