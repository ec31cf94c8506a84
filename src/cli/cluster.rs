//! `mcp-healthctl cluster`: the members of a cluster-mode daemon's cluster
//! (GetConfigStatus), their leases, and the backends each owns, computed
//! with the daemons' own rendezvous function over every group's backends.

use std::collections::BTreeMap;

use tonic::transport::Channel;

use super::error::CliError;
use super::render::{Output, Style, table};
use super::unary;
use crate::cluster::ownership::{backend_key, owner};
use crate::proto::v1::group_health_service_client::GroupHealthServiceClient;
use crate::proto::v1::{ClusterInfo, GetConfigStatusRequest, GetGroupHealthRequest, ListGroupsRequest};

pub async fn show(c: &mut GroupHealthServiceClient<Channel>, out: &Output) -> Result<(), CliError> {
    let status = c.get_config_status(unary(GetConfigStatusRequest {})).await?.into_inner();
    let Some(info) = status.cluster else {
        return Err(CliError::Usage("this daemon is a single node (no --etcd-endpoints)".into()));
    };
    let mut owned: BTreeMap<String, Vec<String>> = info.members.iter().map(|m| (m.id.clone(), Vec::new())).collect();
    let ids: Vec<&str> = info.members.iter().map(|m| m.id.as_str()).collect();
    for g in c.list_groups(unary(ListGroupsRequest {})).await?.into_inner().groups {
        let health = c.get_group_health(unary(GetGroupHealthRequest { group: g.name.clone() })).await?.into_inner();
        for b in health.health.map(|h| h.backends).unwrap_or_default() {
            let key = backend_key(&g.name, &b.name);
            if let Some(o) = owner(&key, ids.iter().copied()) {
                owned.entry(o.to_owned()).or_default().push(key);
            }
        }
    }
    let doc = serde_json::json!({
        "member": info.member,
        "degraded": info.degraded,
        "degradedReason": info.degraded_reason,
        "leaseTtlSeconds": info.lease_ttl_seconds,
        "members": info.members.iter().map(|m| serde_json::json!({
            "id": m.id,
            "name": m.name,
            "lease": format!("0x{}", m.id),
            "backends": owned.get(&m.id).cloned().unwrap_or_default(),
        })).collect::<Vec<_>>(),
    });
    out.print(&doc, |s| render(&info, &owned, s))
}

fn render(info: &ClusterInfo, owned: &BTreeMap<String, Vec<String>>, style: &Style) -> String {
    let rows: Vec<Vec<(String, String)>> = info
        .members
        .iter()
        .map(|m| {
            let backends = owned.get(&m.id).map_or(&[][..], Vec::as_slice);
            let me = if m.id == info.member { " (this replica)" } else { "" };
            [
                format!("{}{me}", m.id),
                m.name.clone(),
                format!("0x{} ttl {}s", m.id, info.lease_ttl_seconds),
                backends.len().to_string(),
                backends.join(" "),
            ]
            .into_iter()
            .map(|t| (t.clone(), t))
            .collect()
        })
        .collect();
    let mut text = table(&["MEMBER", "NAME", "LEASE", "OWNS", "BACKENDS"], &rows, style);
    if info.degraded {
        text.push_str(&format!(
            "{}\n",
            style.error(&format!(
                "degraded: {} (serving the last view, probing every backend here, refusing changes)",
                info.degraded_reason
            ))
        ));
    }
    text
}
