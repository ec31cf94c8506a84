//! `mcp-healthctl apply -f FILE|-`: reads groups in the config file's format
//! (a document with `groups:`, or a single GroupSpec; YAML or JSON; several
//! `---` documents allowed) and applies each, reporting invalid fields one by one.

use std::io::Read;
use std::path::Path;

use tonic::transport::Channel;

use super::error::{code_name, detail_lines};
use super::render::Output;
use super::{CliError, Connection, unary};
use crate::proto::v1::group_health_service_client::GroupHealthServiceClient;
use crate::proto::v1::{ApplyGroupRequest, GroupSpec, HealthConfig};

/// Parses every document of `text` into group specs.
pub fn parse_specs(text: &str, origin: &str) -> Result<Vec<GroupSpec>, CliError> {
    let mut specs = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| CliError::Usage(format!("cannot parse {origin} (document {}): {e}", i + 1)))?;
        if value.is_null() {
            continue;
        }
        // Go-style durations (500ms, 1m30s) become the proto3 JSON form (0.5s, 90s).
        crate::spec::duration::normalize(&mut value, "").map_err(|e| CliError::Usage(format!("cannot read {origin} (document {}): {e}", i + 1)))?;
        // serde_path_to_error names the field that failed ("backends[0].url"), which a
        // plain Value conversion would not.
        let bad = |e: serde_path_to_error::Error<serde_yaml_ng::Error>| {
            CliError::Usage(format!("cannot read {origin} (document {}): {}: {}", i + 1, e.path(), e.inner()))
        };
        if value.get("groups").is_some() {
            let config: HealthConfig = serde_path_to_error::deserialize(value).map_err(bad)?;
            specs.extend(config.groups);
        } else {
            specs.push(serde_path_to_error::deserialize(value).map_err(bad)?);
        }
    }
    if specs.is_empty() {
        return Err(CliError::Usage(format!("{origin} holds no group")));
    }
    Ok(specs)
}

pub fn read_specs(file: &Path) -> Result<Vec<GroupSpec>, CliError> {
    let (text, origin) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
        (text, file.display().to_string())
    };
    parse_specs(&text, &origin)
}

/// Applies each group in turn; one that fails does not stop the others, and
/// the command fails if any did.
pub async fn apply_all(
    client: &mut GroupHealthServiceClient<Channel>,
    conn: &Connection,
    specs: Vec<GroupSpec>,
    dry_run: bool,
    out: &Output,
) -> Result<(), CliError> {
    let mut failed = 0;
    let total = specs.len();
    for spec in specs {
        let name = spec.name.clone();
        let req = conn.authorize(unary(ApplyGroupRequest {
            spec: Some(spec),
            validate_only: dry_run,
        }))?;
        match client.apply_group(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                let what = if dry_run {
                    "is valid (dry run; nothing changed)".to_owned()
                } else if resp.changed {
                    format!("applied (generation {})", resp.generation)
                } else {
                    format!("unchanged (generation {})", resp.generation)
                };
                out.print_item(&resp, |_| format!("group {name} {what}\n"))?;
            }
            Err(status) => {
                failed += 1;
                let style = &out.style;
                eprintln!("{} group {name:?}: {}: {}", style.error("error:"), code_name(status.code()), headline(&status));
                for line in detail_lines(&status) {
                    eprintln!("  {line}");
                }
            }
        }
    }
    if failed > 0 {
        Err(CliError::Reported(format!("{failed} of {total} groups failed")))
    } else {
        Ok(())
    }
}

/// The status message, shortened when its field violations follow one per line.
fn headline(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match s.get_details_bad_request() {
        Some(b) => format!(
            "{} invalid field{}",
            b.field_violations.len(),
            if b.field_violations.len() == 1 { "" } else { "s" }
        ),
        None => s.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_documents_and_single_specs() {
        let text = "groups:\n  - name: a\n    backends: [{name: x, url: 'http://127.0.0.1:1/mcp'}]\n  - name: b\n---\nname: c\npolicy: {interval: 2s}\n";
        let specs = parse_specs(text, "t").unwrap();
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(specs[0].backends[0].url, "http://127.0.0.1:1/mcp");
        assert_eq!(specs[2].policy.as_ref().unwrap().interval.as_ref().unwrap().seconds, 2);
        let json = r#"{"name": "j", "backends": [{"name": "x", "url": "http://h/mcp", "transport": "TRANSPORT_SSE"}]}"#;
        assert_eq!(parse_specs(json, "t").unwrap()[0].backends[0].transport, 2);
    }

    #[test]
    fn go_style_durations_are_accepted() {
        let text = "name: d\npolicy: {interval: 1m30s, timeout: 500ms, degradedLatency: 2h}\n---\ngroups:\n  - name: e\n    policy: {interval: 0.5s}\n";
        let specs = parse_specs(text, "t").unwrap();
        let p = specs[0].policy.as_ref().unwrap();
        let secs = |d: &Option<pbjson_types::Duration>| d.as_ref().map(|d| (d.seconds, d.nanos));
        assert_eq!(
            (secs(&p.interval), secs(&p.timeout), secs(&p.degraded_latency)),
            (Some((90, 0)), Some((0, 500_000_000)), Some((7200, 0)))
        );
        assert_eq!(secs(&specs[1].policy.as_ref().unwrap().interval), Some((0, 500_000_000)));
        let err = parse_specs("name: d\npolicy: {timeout: 5 sec}\n", "f.yaml").unwrap_err().to_string();
        assert!(
            err.contains("f.yaml") && err.contains("policy.timeout") && err.contains("500ms, 1m30s, 2h or 0.5s"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_documents_name_the_problem() {
        let err = parse_specs("name: a\nbackends: 3\n", "f.yaml").unwrap_err().to_string();
        assert!(err.contains("f.yaml") && err.contains("backends"), "{err}");
        assert!(parse_specs("", "empty.yaml").unwrap_err().to_string().contains("no group"));
    }
}
