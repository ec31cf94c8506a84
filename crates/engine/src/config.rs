//! The `--config` file: the proto3-JSON mapping of `HealthConfig`, as YAML or
//! JSON. Loading validates every group before anything is applied; reloading
//! (SIGHUP or a content change) keeps the last good config on any error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{Engine, Origin};
use mcp_health_core::spec::{FieldViolation, Limits, ValidGroup, validate_group};
use mcp_health_proto::v1::{GetConfigStatusResponse, HealthConfig};

/// How often the file's content is compared for changes. Polling content (not
/// inotify) also sees Kubernetes ConfigMap symlink swaps.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid config {path}: {}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid { path: String, violations: Vec<FieldViolation> },
    #[error("cannot apply {path}: {reason}")]
    Apply { path: String, reason: String },
}

/// Parses a config document (YAML, of which JSON is a subset). Policy
/// durations may be written the Go way (`500ms`, `1m30s`, `2h`) or in the
/// proto3 JSON form (`0.5s`); errors name the field.
pub fn parse(text: &str, path: &Path) -> Result<HealthConfig, ConfigError> {
    let error = |reason: String| ConfigError::Parse {
        path: path.display().to_string(),
        reason,
    };
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| error(e.to_string()))?;
    mcp_health_core::spec::duration::normalize(&mut value, "").map_err(|e| error(e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| error(format!("{}: {}", e.path(), e.inner())))
}

/// Validates every group of a config; group names must be unique.
pub fn validate(config: &HealthConfig, path: &Path, limits: &Limits) -> Result<Vec<ValidGroup>, ConfigError> {
    let mut violations = Vec::new();
    let mut groups = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, g) in config.groups.iter().enumerate() {
        if !names.insert(g.name.as_str()) {
            violations.push(FieldViolation {
                field: format!("groups[{i}].name"),
                description: format!("duplicate group name {:?}", g.name),
            });
        }
        match validate_group(g, &format!("groups[{i}]"), limits) {
            Ok(v) => groups.push(v),
            Err(v) => violations.extend(v),
        }
    }
    if config.groups.len() > limits.max_groups {
        violations.push(FieldViolation {
            field: "groups".into(),
            description: format!("has {} groups; the limit is {}", config.groups.len(), limits.max_groups),
        });
    }
    if violations.is_empty() {
        Ok(groups)
    } else {
        Err(ConfigError::Invalid {
            path: path.display().to_string(),
            violations,
        })
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path, limits: &Limits) -> Result<(String, Vec<ValidGroup>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let groups = validate(&parse(&text, path)?, path, limits)?;
    Ok((text, groups))
}

/// The state of the config file as `GetConfigStatus` reports it.
#[derive(Clone, Default)]
pub struct ConfigStatusHandle(Arc<Mutex<GetConfigStatusResponse>>);

impl ConfigStatusHandle {
    pub fn snapshot(&self) -> GetConfigStatusResponse {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GetConfigStatusResponse> {
        // Poisoning needs a panic while holding the lock; the value is still a plain struct.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn good(&self, path: &Path, groups: Vec<String>) {
        let mut s = self.lock();
        s.path = path.display().to_string();
        s.last_good_load_time = Some(crate::timestamp(SystemTime::now()));
        s.last_error.clear();
        s.last_error_time = None;
        s.groups = groups;
    }

    fn bad(&self, path: &Path, err: &ConfigError) {
        let mut s = self.lock();
        s.path = path.display().to_string();
        s.last_error = err.to_string();
        s.last_error_time = Some(crate::timestamp(SystemTime::now()));
    }
}

/// Applies a config file's groups to the engine, all or nothing.
pub async fn apply(engine: &Engine, path: &Path, groups: Vec<ValidGroup>, status: &ConfigStatusHandle) -> Result<(), ConfigError> {
    let names: Vec<String> = groups.iter().map(|g| g.spec.name.clone()).collect();
    let backends: usize = groups.iter().map(|g| g.backends.len()).sum();
    match engine.replace_all(groups, Origin::ConfigFile(path.to_owned())).await {
        Ok(applied) => {
            status.good(path, names.clone());
            let changed = applied.iter().filter(|a| a.changed).count();
            info!(path = %path.display(), groups = names.len(), backends, changed, "config loaded");
            Ok(())
        }
        Err(e) => {
            let err = ConfigError::Apply {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            status.bad(path, &err);
            Err(err)
        }
    }
}

/// Reloads the file on SIGHUP and whenever its content changes. An invalid
/// file is logged and reported through `GetConfigStatus`; the last good
/// config stays in force. After a failed reload, a group deleted anywhere
/// (DeleteGroup of the API group whose name the file also claims) retries it
/// at once, so the file's group takes the freed name without a SIGHUP.
pub async fn watch(engine: Engine, path: PathBuf, mut last_text: String, status: ConfigStatusHandle, shutdown: CancellationToken) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut deletions = engine.deletions();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let failed = !status.snapshot().last_error.is_empty();
        if !failed {
            // Deletes while the config is good need no retry later.
            deletions.borrow_and_update();
        }
        let forced = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = hangup => true,
            _ = poll.tick() => false,
            // A sender dropped with the engine never fires again; shutdown follows.
            Ok(()) = deletions.changed(), if failed => true,
        };
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                let err = ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                };
                if forced || status.snapshot().last_error != err.to_string() {
                    error!(error = %err, "config reload failed; keeping the last good config");
                }
                status.bad(&path, &err);
                continue;
            }
        };
        if text == last_text && !forced {
            continue;
        }
        let parsed = parse(&text, &path).and_then(|config| validate(&config, &path, engine.limits()));
        let result = match parsed {
            Ok(groups) => apply(&engine, &path, groups, &status).await,
            Err(e) => Err(e),
        };
        last_text = text;
        if let Err(err) = result {
            error!(error = %err, "config reload failed; keeping the last good config");
            status.bad(&path, &err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_form_and_errors_that_name_the_forms() {
        let path = Path::new("health.yaml");
        let text = "groups:\n  - name: a\n    policy:\n      interval: 1m30s\n      timeout: 500ms\n    backends: [{name: b, url: 'http://127.0.0.1:1/mcp', policy: {degradedLatency: 0.25s}}]\n";
        let config = parse(text, path).unwrap();
        let policy = config.groups[0].policy.as_ref().unwrap();
        assert_eq!(policy.interval.as_ref().map(|d| (d.seconds, d.nanos)), Some((90, 0)));
        assert_eq!(policy.timeout.as_ref().map(|d| (d.seconds, d.nanos)), Some((0, 500_000_000)));
        let backend = config.groups[0].backends[0].policy.as_ref().unwrap();
        assert_eq!(backend.degraded_latency.as_ref().map(|d| (d.seconds, d.nanos)), Some((0, 250_000_000)));
        assert!(validate(&config, path, &Limits::default()).is_ok());

        let err = parse("groups:\n  - name: a\n    policy: {timeout: 500 ms}\n", path).unwrap_err().to_string();
        assert!(
            err.contains("health.yaml") && err.contains("groups[0].policy.timeout") && err.contains("500ms, 1m30s, 2h or 0.5s"),
            "{err}"
        );
        // Other errors name the field too.
        let err = parse("groups:\n  - name: a\n    backends: 3\n", path).unwrap_err().to_string();
        assert!(err.contains("groups[0].backends"), "{err}");
    }

    // Lives here rather than beside `spec::duration`: it reads whole config
    // documents, and the core crate cannot see this one.
    /// Every `google.protobuf.Duration` field of the messages a config
    /// document holds (from `HealthConfig` down), as (message, proto name,
    /// JSON name), read from the descriptors the daemon serves.
    fn config_duration_fields() -> Vec<(String, String, String)> {
        use prost::Message as _;
        let set = pbjson_types::FileDescriptorSet::decode(mcp_health_proto::FILE_DESCRIPTOR_SET).unwrap();
        let messages: std::collections::HashMap<String, &pbjson_types::DescriptorProto> = set
            .file
            .iter()
            .flat_map(|f| f.message_type.iter().map(move |m| (format!(".{}.{}", f.package(), m.name()), m)))
            .collect();
        let (mut seen, mut todo, mut found) = (std::collections::HashSet::new(), vec![".mcphealth.v1.HealthConfig".to_owned()], Vec::new());
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(message) = messages.get(&name) else { continue };
            for field in &message.field {
                match field.type_name() {
                    ".google.protobuf.Duration" => found.push((name.clone(), field.name().to_owned(), field.json_name().to_owned())),
                    t if t.starts_with(".mcphealth.") => todo.push(t.to_owned()),
                    _ => {}
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn every_duration_field_takes_every_form() {
        let all = config_duration_fields();
        // ProbePolicy, its OutlierPolicy, ToolCheck and DnsDiscovery hold them
        // all, so the `policy` (and its `outlier`), `checks` and `discovery`
        // walks of `normalize` reach them.
        let places = [
            ".mcphealth.v1.ProbePolicy",
            ".mcphealth.v1.OutlierPolicy",
            ".mcphealth.v1.ToolCheck",
            ".mcphealth.v1.DnsDiscovery",
        ];
        assert!(
            all.iter().all(|(message, ..)| places.contains(&message.as_str())),
            "a duration field outside {places:?} needs its own place in normalize: {all:?}"
        );
        let (outlier, all): (Vec<_>, Vec<_>) = all.into_iter().partition(|(message, ..)| message == ".mcphealth.v1.OutlierPolicy");
        let (dns, all): (Vec<_>, Vec<_>) = all.into_iter().partition(|(message, ..)| message == ".mcphealth.v1.DnsDiscovery");
        let (checks, fields): (Vec<_>, Vec<_>) = all.into_iter().partition(|(message, ..)| message == ".mcphealth.v1.ToolCheck");
        let dns_fields: Vec<&str> = dns.iter().map(|(_, proto, _)| proto.as_str()).collect();
        assert_eq!(dns_fields, ["max_ttl", "min_ttl", "removal_grace"]);
        let check: Vec<&str> = checks.iter().map(|(_, proto, _)| proto.as_str()).collect();
        assert_eq!(check, ["interval", "timeout"]);
        let policy: Vec<&str> = fields.iter().map(|(_, proto, _)| proto.as_str()).collect();
        assert_eq!(
            policy,
            [
                "catalog_interval",
                "degraded_latency",
                "edge_interval",
                "initial_spread",
                "interval",
                "rate_limit_hold",
                "timeout"
            ]
        );
        // (written, proto3 JSON form it must become)
        let forms = [
            ("1m", "60s"),
            ("1m30s", "90s"),
            ("500ms", "0.5s"),
            ("0.5s", "0.5s"),
            ("90s", "90s"),
            ("1.5h", "5400s"),
            ("'0'", "0s"),
            ("0s", "0s"),
        ];
        for (_, proto, json) in &fields {
            for name in [proto, json] {
                for (written, want) in forms {
                    // At the group and at a backend. (`mcp-healthctl apply` runs the same `normalize`.)
                    let doc = format!(
                        "groups:\n- name: g\n  policy: {{{name}: {written}}}\n  backends:\n  - {{name: b, url: 'http://h/mcp', policy: {{{name}: {written}}}}}\n"
                    );
                    let config = parse(&doc, std::path::Path::new("test.yaml")).unwrap_or_else(|e| panic!("{name}: {written}: {e}"));
                    let group = serde_json::to_value(&config.groups[0]).unwrap();
                    let read = |v: &serde_json::Value| serde_json::from_value::<pbjson_types::Duration>(v.clone()).ok();
                    let want = read(&serde_json::Value::from(want));
                    let (at_group, at_backend) = (&group["policy"][json.as_str()], &group["backends"][0]["policy"][json.as_str()]);
                    assert!(want.is_some(), "{want:?}");
                    assert_eq!((read(at_group), read(at_backend)), (want, want), "{name}: {written}");
                }
            }
        }
        let names: Vec<&str> = outlier.iter().map(|(_, proto, _)| proto.as_str()).collect();
        assert_eq!(names, ["base_ejection_time", "max_ejection_time"]);
        for (_, proto, json) in &outlier {
            for name in [proto, json] {
                for (written, want) in forms {
                    let doc = format!("groups:\n- name: g\n  policy: {{outlier: {{{name}: {written}}}}}\n  backends: []\n");
                    let config = parse(&doc, std::path::Path::new("test.yaml")).unwrap_or_else(|e| panic!("outlier: {name}: {written}: {e}"));
                    let group = serde_json::to_value(&config.groups[0]).unwrap();
                    let read = |v: &serde_json::Value| serde_json::from_value::<pbjson_types::Duration>(v.clone()).ok();
                    let want = read(&serde_json::Value::from(want));
                    assert!(want.is_some(), "{want:?}");
                    assert_eq!(read(&group["policy"]["outlier"][json.as_str()]), want, "outlier: {name}: {written}");
                }
            }
        }
        for (_, proto, json) in &checks {
            for name in [proto, json] {
                for (written, want) in forms {
                    let doc = format!("groups:\n- name: g\n  backends:\n  - {{name: b, url: 'http://h/mcp', checks: [{{tool: t, {name}: {written}}}]}}\n");
                    let config = parse(&doc, std::path::Path::new("test.yaml")).unwrap_or_else(|e| panic!("{name}: {written}: {e}"));
                    let group = serde_json::to_value(&config.groups[0]).unwrap();
                    let read = |v: &serde_json::Value| serde_json::from_value::<pbjson_types::Duration>(v.clone()).ok();
                    let want = read(&serde_json::Value::from(want));
                    assert!(want.is_some(), "{want:?}");
                    assert_eq!(read(&group["backends"][0]["checks"][0][json.as_str()]), want, "checks: {name}: {written}");
                }
            }
        }
        for (_, proto, json) in &dns {
            for name in [proto, json] {
                for (written, want) in forms {
                    let doc = format!("groups:\n- name: g\n  backends:\n  - {{name: b, url: 'http://h/mcp', discovery: {{dns: {{{name}: {written}}}}}}}\n");
                    let config = parse(&doc, std::path::Path::new("test.yaml")).unwrap_or_else(|e| panic!("{name}: {written}: {e}"));
                    let group = serde_json::to_value(&config.groups[0]).unwrap();
                    let read = |v: &serde_json::Value| serde_json::from_value::<pbjson_types::Duration>(v.clone()).ok();
                    let want = read(&serde_json::Value::from(want));
                    assert!(want.is_some(), "{want:?}");
                    assert_eq!(
                        read(&group["backends"][0]["discovery"]["dns"][json.as_str()]),
                        want,
                        "discovery: {name}: {written}"
                    );
                }
            }
        }
        let err = parse(
            "groups:\n- name: g\n  backends: [{name: b, url: 'http://h/mcp', discovery: {dns: {maxTtl: 5 m}}}]\n",
            std::path::Path::new("test.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("groups[0].backends[0].discovery.dns.maxTtl"), "{err}");
        let err = parse(
            "groups:\n- name: g\n  backends: [{name: b, url: 'http://h/mcp', checks: [{tool: t, timeout: 5 s}]}]\n",
            std::path::Path::new("test.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("groups[0].backends[0].checks[0].timeout"), "{err}");
    }
}
