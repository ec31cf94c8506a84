//! The cluster flags (`--etcd-*`), shared by `mcp-healthd` and
//! `mcp-healthctl cluster`. Without `--etcd-endpoints` the daemon runs as a
//! single node with its redb store, exactly as before.

use std::path::PathBuf;
use std::time::Duration;

/// How to reach etcd and where this cluster's keys live.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct EtcdFlags {
    /// Run as a cluster on these etcd endpoints (comma-separated URLs, e.g.
    /// http://etcd-0:2379,http://etcd-1:2379). Without it: a single node.
    #[arg(long, env = "MCP_HEALTH_ETCD_ENDPOINTS", value_name = "URL,...", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of this cluster, so several clusters can share one etcd.
    #[arg(long, env = "MCP_HEALTH_ETCD_PREFIX", default_value = "/mcp-health")]
    pub etcd_prefix: String,
    /// PEM CA bundle to verify etcd's server certificates (https endpoints).
    #[arg(long, env = "MCP_HEALTH_ETCD_CA_CERT", value_name = "FILE")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// PEM client certificate for etcd (mTLS), with --etcd-key.
    #[arg(long, env = "MCP_HEALTH_ETCD_CERT", value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// PEM private key of --etcd-cert.
    #[arg(long, env = "MCP_HEALTH_ETCD_KEY", value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user name (with --etcd-password-file).
    #[arg(long, env = "MCP_HEALTH_ETCD_USER", value_name = "NAME", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password (trailing newline ignored).
    #[arg(long, env = "MCP_HEALTH_ETCD_PASSWORD_FILE", value_name = "FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
    /// TTL of this replica's lease: a dead replica's backends move to the
    /// others within it (plus one probe interval).
    #[arg(long, env = "MCP_HEALTH_ETCD_LEASE_TTL", value_name = "SECONDS", default_value_t = 5)]
    pub etcd_lease_ttl: u32,
}

/// The validated cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub user: Option<(String, PathBuf)>,
    pub lease_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("--etcd-endpoints: {0:?} is not an http:// or https:// URL")]
    Endpoint(String),
    #[error("--etcd-lease-ttl must be at least 2 seconds, not {0}")]
    LeaseTtl(u32),
    #[error("--etcd-prefix must start with '/', not {0:?}")]
    Prefix(String),
}

impl EtcdFlags {
    /// None without `--etcd-endpoints` (single-node mode).
    pub fn options(&self) -> Result<Option<ClusterOptions>, FlagsError> {
        let endpoints: Vec<String> = self.etcd_endpoints.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        if endpoints.is_empty() {
            return Ok(None);
        }
        for e in &endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) || url::Url::parse(e).is_err() {
                return Err(FlagsError::Endpoint(e.clone()));
            }
        }
        if self.etcd_lease_ttl < 2 {
            return Err(FlagsError::LeaseTtl(self.etcd_lease_ttl));
        }
        if !self.etcd_prefix.starts_with('/') {
            return Err(FlagsError::Prefix(self.etcd_prefix.clone()));
        }
        Ok(Some(ClusterOptions {
            endpoints,
            prefix: self.etcd_prefix.clone(),
            ca_cert: self.etcd_ca_cert.clone(),
            client_cert: self.etcd_cert.clone().zip(self.etcd_key.clone()),
            user: self.etcd_user.clone().zip(self.etcd_password_file.clone()),
            lease_ttl: Duration::from_secs(u64::from(self.etcd_lease_ttl)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(endpoints: &[&str], ttl: u32, prefix: &str) -> EtcdFlags {
        EtcdFlags {
            etcd_endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            etcd_prefix: prefix.into(),
            etcd_lease_ttl: ttl,
            ..Default::default()
        }
    }

    #[test]
    fn flags_table() {
        // (endpoints, ttl, prefix, Ok(endpoint count) or Err(the flag named)).
        type Case<'a> = (&'a [&'a str], u32, &'a str, Result<Option<usize>, &'a str>);
        let cases: &[Case] = &[
            (&[], 5, "/p", Ok(None)),
            (&[" "], 5, "/p", Ok(None)),
            (&["http://127.0.0.1:2379", "https://e:2379"], 5, "/p", Ok(Some(2))),
            (&["127.0.0.1:2379"], 5, "/p", Err("--etcd-endpoints")),
            (&["http://127.0.0.1:2379"], 1, "/p", Err("--etcd-lease-ttl")),
            (&["http://127.0.0.1:2379"], 5, "p", Err("--etcd-prefix")),
        ];
        for (endpoints, ttl, prefix, want) in cases {
            let got = flags(endpoints, *ttl, prefix).options();
            match (got, want) {
                (Ok(o), Ok(n)) => assert_eq!(o.map(|o| o.endpoints.len()), *n, "{endpoints:?}"),
                (Err(e), Err(field)) => assert!(e.to_string().contains(field), "{e}"),
                (got, want) => panic!("{endpoints:?} {ttl} {prefix}: got {got:?}, want {want:?}"),
            }
        }
    }
}
