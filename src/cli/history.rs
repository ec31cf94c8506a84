//! `mcp-healthctl history GROUP BACKEND`: one backend's recent transitions
//! and its latency over the last hour (GetBackendHistory), as a table.

use std::time::Duration;

use super::render::{Style, reason_name, status_name, table};
use crate::proto::v1::{BackendHealth, BackendStatus, CatalogChange, GetBackendHistoryResponse, LatencyBucket};

/// RFC 3339, as the proto3 JSON mapping writes timestamps ("…Z").
fn time(t: Option<&pbjson_types::Timestamp>) -> String {
    super::render::timestamp_text(t)
}

fn millis(d: Option<&pbjson_types::Duration>) -> Option<f64> {
    d.map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32).as_secs_f64() * 1e3)
}

fn ms_text(d: Option<&pbjson_types::Duration>) -> String {
    millis(d).map_or_else(|| "-".to_owned(), crate::ui::model::ms_text)
}

fn status(code: i32) -> &'static str {
    status_name(BackendStatus::try_from(code).unwrap_or_default())
}

/// One character per minute with probes, scaled to the hour's largest mean.
pub fn sparkline(buckets: &[LatencyBucket]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let means: Vec<f64> = buckets.iter().map(|b| millis(b.mean.as_ref()).unwrap_or(0.0)).collect();
    let top = means.iter().copied().fold(0.0_f64, f64::max);
    means
        .iter()
        .map(|m| if top > 0.0 { BARS[((m / top) * 7.0).round() as usize] } else { BARS[0] })
        .collect()
}

pub fn view(h: &GetBackendHistoryResponse, style: &Style) -> String {
    let current = BackendStatus::try_from(h.status).unwrap_or_default();
    let mut out = format!(
        "{} {}/{}  status {}\nhistory since {} (kept in memory: a daemon restart starts a fresh history)\n",
        style.bold("backend"),
        h.group,
        h.backend,
        style.status(current),
        time(h.since.as_ref())
    );
    let probes: u32 = h.latency.iter().map(|b| b.probes).sum();
    if probes > 0 {
        let mean = h
            .latency
            .iter()
            .map(|b| millis(b.mean.as_ref()).unwrap_or(0.0) * f64::from(b.probes))
            .sum::<f64>()
            / f64::from(probes);
        let max = h.latency.iter().filter_map(|b| millis(b.max.as_ref())).fold(0.0_f64, f64::max);
        out.push_str(&format!(
            "latency, last hour: {probes} probes in {} minutes, mean {}, max {}  {}\n",
            h.latency.len(),
            crate::ui::model::ms_text(mean),
            crate::ui::model::ms_text(max),
            sparkline(&h.latency)
        ));
    } else {
        out.push_str("latency, last hour: no probes\n");
    }
    // Ejections from real traffic sit beside the transitions: the verdict does not move.
    for e in &h.ejections {
        if e.ejected {
            out.push_str(&format!(
                "{}  ejected until {} (ejection {}): {}\n",
                time(e.time.as_ref()),
                time(e.until.as_ref()),
                e.count,
                e.cause
            ));
        } else {
            out.push_str(&format!("{}  returned from its ejection\n", time(e.time.as_ref())));
        }
    }
    out.push('\n');
    if h.transitions.is_empty() {
        out.push_str("no transitions yet\n");
        return out;
    }
    // A discovered backend's history holds its endpoints' entries too: then
    // a column names the endpoint ("-" for the backend's own transitions).
    let by_endpoint = h.transitions.iter().any(|t| !t.endpoint.is_empty());
    let rows: Vec<_> = h
        .transitions
        .iter()
        .map(|t| {
            let to = BackendStatus::try_from(t.to_status).unwrap_or_default();
            let reason = t.reason.clone().unwrap_or_default();
            let mut row = vec![(time(t.time.as_ref()), time(t.time.as_ref()))];
            if by_endpoint {
                let endpoint = if t.endpoint.is_empty() { "-".to_owned() } else { t.endpoint.clone() };
                row.push((endpoint.clone(), endpoint));
            }
            row.extend([
                (status(t.from_status).to_owned(), status(t.from_status).to_owned()),
                (status_name(to).to_owned(), style.status(to)),
                (reason_name(reason.code).to_owned(), reason_name(reason.code).to_owned()),
                (ms_text(t.latency.as_ref()), ms_text(t.latency.as_ref())),
                (reason.message.clone(), reason.message),
            ]);
            row
        })
        .collect();
    let headers: &[&str] = if by_endpoint {
        &["TIME", "ENDPOINT", "FROM", "TO", "REASON", "LATENCY", "MESSAGE"]
    } else {
        &["TIME", "FROM", "TO", "REASON", "LATENCY", "MESSAGE"]
    };
    out.push_str(&table(headers, &rows, style));
    if h.dropped_transitions > 0 {
        out.push_str(&format!("({} older transitions no longer kept)\n", h.dropped_transitions));
    }
    out
}

/// `mcp-healthctl catalog diff`: the backend's fingerprint, then each change
/// history kept, oldest first, by tool name.
pub fn catalog_view(group: &str, b: &BackendHealth, changes: &[CatalogChange]) -> String {
    let mut out = match (b.catalog_fingerprint.as_str(), &b.catalog_changed_time) {
        ("", _) => format!("backend {group}/{}  no catalog read yet\n", b.name),
        (f, changed) => format!("backend {group}/{}  catalog {f} since {}\n", b.name, time(changed.as_ref())),
    };
    if !b.catalog_note.is_empty() {
        out.push_str(&format!("latest read: {}\n", b.catalog_note));
    }
    if changes.is_empty() {
        out.push_str("no catalog changes since the daemon started\n");
        return out;
    }
    for c in changes {
        out.push_str(&format!("{}  {} -> {}\n", time(c.time.as_ref()), c.from_fingerprint, c.to_fingerprint));
        for (what, names) in [("added", &c.added), ("removed", &c.removed), ("changed", &c.changed)] {
            if !names.is_empty() {
                out.push_str(&format!("  {what}: {}\n", names.join(", ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{BackendTransition, Reason};

    fn entry(endpoint: &str, message: &str) -> BackendTransition {
        BackendTransition {
            from_status: BackendStatus::Healthy as i32,
            to_status: BackendStatus::Unhealthy as i32,
            reason: Some(Reason {
                message: message.to_owned(),
                ..Reason::default()
            }),
            endpoint: endpoint.to_owned(),
            ..BackendTransition::default()
        }
    }

    #[test]
    fn an_endpoint_column_only_when_an_entry_names_one() {
        let mut h = GetBackendHistoryResponse {
            group: "g".into(),
            backend: "b".into(),
            transitions: vec![entry("", "backend went down")],
            ..GetBackendHistoryResponse::default()
        };
        let text = view(&h, &Style::plain());
        assert!(!text.contains("ENDPOINT"), "{text}");
        h.transitions.push(entry("10.0.0.5:8080", "connection refused"));
        let text = view(&h, &Style::plain());
        assert!(text.contains("ENDPOINT"), "{text}");
        let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned();
        assert!(line("connection refused").contains("10.0.0.5:8080"), "{text}");
        let own = line("backend went down");
        assert!(own.split_whitespace().nth(1) == Some("-"), "the backend's own entry shows no endpoint: {own}");
    }
}
