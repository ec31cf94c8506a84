//! The SSRF guard of probes: backend hosts that resolve to link-local or
//! cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, and the
//! unspecified 0.0.0.0 and ::) are refused at connect time, by the DNS resolver
//! installed in every probe client (`dns`), which filters each answer here. Literal addresses never reach a resolver;
//! spec validation rejects those (see `spec::validate`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The AWS IMDS IPv6 endpoint.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Whether probes must not connect to `ip` unless link-local backends are allowed.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            // fe80::/10; std's is_unicast_link_local is unstable.
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == AWS_METADATA_V6 || v6.is_unspecified()
        }
    }
}

/// Why a connection was refused; shown as the probe's reason.
#[derive(Debug, thiserror::Error)]
#[error("refused: {host} resolves only to link-local or cloud-metadata addresses ({addrs}); the daemon allows them only with --allow-link-local-backends")]
pub struct Refused {
    pub host: String,
    pub addrs: String,
}

/// Drops forbidden addresses from what `host` resolved to; a host with
/// nothing left is refused.
pub fn guard(host: &str, all: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| !is_forbidden(a.ip())).collect();
    if allowed.is_empty() && !all.is_empty() {
        let addrs = all.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
        return Err(Refused { host: host.to_owned(), addrs });
    }
    Ok(allowed)
}

/// Finds a `Refused` in an error's source chain.
pub fn refused_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "fd00:ec2::253", "fec0::1", "8.8.8.8"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn guard_refuses_hosts_with_only_forbidden_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let refused = guard("metadata.test", vec![a("169.254.169.254:0")]).expect_err("refused");
        assert_eq!((refused.host.as_str(), refused.addrs.as_str()), ("metadata.test", "169.254.169.254"));
        assert!(refused.to_string().contains("--allow-link-local-backends"));
        let refused = guard("m6.test", vec![a("[fe80::1]:0"), a("[fd00:ec2::254]:0")]).expect_err("refused");
        assert_eq!(refused.addrs, "fe80::1, fd00:ec2::254");
        assert_eq!(
            guard("mixed.test", vec![a("169.254.169.254:0"), a("127.0.0.1:0")]).unwrap(),
            vec![a("127.0.0.1:0")]
        );
        assert_eq!(guard("v6.test", vec![a("[::1]:0")]).unwrap(), vec![a("[::1]:0")]);
    }
}
