//! The SSRF guard of probes: backend hosts that resolve to link-local or
//! cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, and the
//! unspecified 0.0.0.0 and ::) are refused at connect time, by a DNS resolver
//! installed in every probe client. Literal addresses never reach a resolver;
//! spec validation rejects those (see `spec::validate`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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

/// Resolves with the system resolver, then drops forbidden addresses; a host
/// with nothing left is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| !is_forbidden(a.ip())).collect();
            if allowed.is_empty() && !all.is_empty() {
                let addrs = all.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
                return Err(Box::new(Refused { host, addrs }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
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

    #[tokio::test]
    async fn resolver_refuses_hosts_with_only_forbidden_addresses() {
        // Literal names resolve without DNS, so this test never leaves the host.
        let err = GuardedResolver.resolve("169.254.169.254".parse().unwrap()).await.err().expect("refused");
        let refused = refused_in(&*err).expect("a Refused error");
        assert_eq!(refused.addrs, "169.254.169.254");
        // Not an address to Rust's parser, so it goes to the system resolver,
        // which reads it (inet_aton) as 169.254.169.254: a name that resolves
        // to the metadata address, without any DNS traffic.
        let err = GuardedResolver.resolve("169.254.43518".parse().unwrap()).await.err().expect("refused");
        let refused = refused_in(&*err).expect("a Refused error");
        assert_eq!((refused.host.as_str(), refused.addrs.as_str()), ("169.254.43518", "169.254.169.254"));
        assert!(refused.to_string().contains("--allow-link-local-backends"));
        let ok: Vec<_> = GuardedResolver
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("127.0.0.1 refused: {e}"))
            .collect();
        assert_eq!(ok, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    }
}
