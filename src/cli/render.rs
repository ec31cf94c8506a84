//! Output of `mcp-healthctl`: the proto3 JSON mapping (pbjson) as JSON or
//! YAML for scripts (timestamps as grpcurl prints them), aligned tables for
//! people (`wide` adds each backend's URL, and a discovered backend's endpoints), with colour only on a terminal
//! and never when NO_COLOR is set.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use super::{CliError, Format, write_stdout};
use crate::proto::grpc_health_v1::health_check_response::ServingStatus;
use crate::proto::v1::{BackendHealth, BackendStatus, GetConfigStatusResponse, GroupHealth, GroupOverview, GroupPhase, GroupSource, ReasonCode};

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Whether to colour, whether stdout is a terminal (for `watch`), and
/// whether tables are wide (`-o wide`: with each backend's URL).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
    pub terminal: bool,
    pub wide: bool,
}

impl Style {
    /// Colour on a terminal, unless NO_COLOR is set to anything non-empty (no-color.org).
    pub fn detect() -> Style {
        let terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: terminal && !no_color,
            terminal,
            wide: false,
        }
    }

    pub fn plain() -> Style {
        Style {
            colour: false,
            terminal: false,
            wide: false,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour { format!("{code}{text}{RESET}") } else { text.to_owned() }
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(RED, text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(BOLD, text)
    }

    pub fn phase(&self, p: GroupPhase) -> String {
        let code = match p {
            GroupPhase::Ready => GREEN,
            GroupPhase::Degraded => YELLOW,
            GroupPhase::Failed => RED,
            GroupPhase::Pending | GroupPhase::Unspecified => DIM,
        };
        self.paint(code, phase_name(p))
    }

    pub fn status(&self, s: BackendStatus) -> String {
        let code = match s {
            BackendStatus::Healthy => GREEN,
            BackendStatus::Degraded | BackendStatus::Unauthenticated => YELLOW,
            BackendStatus::Unhealthy => RED,
            BackendStatus::Unknown | BackendStatus::Unspecified => DIM,
        };
        self.paint(code, status_name(s))
    }

    pub fn serving(&self, s: ServingStatus) -> String {
        let code = if s == ServingStatus::Serving { GREEN } else { RED };
        self.paint(code, s.as_str_name())
    }
}

/// "GROUP_PHASE_READY" -> "READY".
pub fn phase_name(p: GroupPhase) -> &'static str {
    p.as_str_name().trim_start_matches("GROUP_PHASE_")
}

pub fn status_name(s: BackendStatus) -> &'static str {
    s.as_str_name().trim_start_matches("BACKEND_STATUS_")
}

fn source_name(s: GroupSource) -> &'static str {
    match s {
        GroupSource::ConfigFile => "config-file",
        GroupSource::Api => "api",
        GroupSource::Unspecified => "-",
    }
}

pub fn reason_name(code: i32) -> &'static str {
    ReasonCode::try_from(code).unwrap_or_default().as_str_name().trim_start_matches("REASON_CODE_")
}

/// Where results go, in the chosen format.
pub struct Output {
    pub format: Format,
    pub style: Style,
}

impl Output {
    /// `wide` is a table format: a table with more columns.
    pub fn new(format: Format, style: Style) -> Output {
        match format {
            Format::Wide => Output {
                format: Format::Table,
                style: Style { wide: true, ..style },
            },
            format => Output { format, style },
        }
    }

    /// Prints `value` as JSON or YAML, or the table that `table` renders.
    pub fn print<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<(), CliError> {
        write_stdout(&self.document(value, table)?)
    }

    fn document<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<String, CliError> {
        Ok(match self.format {
            Format::Table | Format::Wide => table(&self.style),
            Format::Json => serde_json::to_string_pretty(&proto3_json(value)?).map_err(|e| CliError::Output(e.to_string()))? + "\n",
            Format::Yaml => serde_yaml_ng::to_string(&proto3_json(value)?).map_err(|e| CliError::Output(e.to_string()))?,
        })
    }

    /// One item of a sequence: a JSON line, or a YAML document after `---`.
    pub fn print_item<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<(), CliError> {
        let text = match self.format {
            Format::Table | Format::Wide => table(&self.style),
            Format::Json => serde_json::to_string(&proto3_json(value)?).map_err(|e| CliError::Output(e.to_string()))? + "\n",
            Format::Yaml => format!(
                "---\n{}",
                serde_yaml_ng::to_string(&proto3_json(value)?).map_err(|e| CliError::Output(e.to_string()))?
            ),
        };
        write_stdout(&text)
    }
}

/// The JSON names of every `google.protobuf.Timestamp` field of our
/// messages, read from the descriptor set the daemon serves by reflection.
fn timestamp_fields() -> &'static HashSet<String> {
    static FIELDS: OnceLock<HashSet<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        use prost::Message as _;
        fn visit(m: &prost_types::DescriptorProto, out: &mut HashSet<String>) {
            for f in &m.field {
                if f.type_name() == ".google.protobuf.Timestamp" {
                    out.insert(f.json_name.clone().unwrap_or_else(|| lower_camel(f.name())));
                }
            }
            m.nested_type.iter().for_each(|n| visit(n, out));
        }
        let mut out = HashSet::new();
        // The set is compiled in by build.rs; decoding it cannot fail but for a broken build.
        let fds = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap_or_default();
        for file in fds.file.iter().filter(|f| f.package() == "mcphealth.v1") {
            file.message_type.iter().for_each(|m| visit(m, &mut out));
        }
        out
    })
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        match (c, upper) {
            ('_', _) => upper = true,
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// A message in the proto3 JSON mapping exactly as grpcurl (protojson)
/// prints it: pbjson writes timestamps with `+00:00`, the mapping with `Z`
/// ("2026-12-05T07:31:55.123Z"; both use 0, 3, 6 or 9 fractional digits).
/// Built as a YAML value, whose mappings keep the fields' order.
pub fn proto3_json<T: Serialize>(value: &T) -> Result<serde_yaml_ng::Value, CliError> {
    fn fix(v: &mut serde_yaml_ng::Value, fields: &HashSet<String>) {
        use serde_yaml_ng::Value;
        match v {
            Value::Mapping(m) => {
                for (k, v) in m.iter_mut() {
                    match (k.as_str(), &mut *v) {
                        (Some(name), Value::String(t)) if fields.contains(name) => *t = zulu(t),
                        _ => fix(v, fields),
                    }
                }
            }
            Value::Sequence(s) => s.iter_mut().for_each(|v| fix(v, fields)),
            _ => {}
        }
    }
    let mut v = serde_yaml_ng::to_value(value).map_err(|e| CliError::Output(e.to_string()))?;
    fix(&mut v, timestamp_fields());
    Ok(v)
}

/// pbjson's `+00:00` as the mapping's `Z`.
fn zulu(t: &str) -> String {
    t.strip_suffix("+00:00").map_or_else(|| t.to_owned(), |utc| format!("{utc}Z"))
}

/// A timestamp as the proto3 JSON mapping (and grpcurl) writes it, or "-".
pub fn timestamp_text(t: Option<&pbjson_types::Timestamp>) -> String {
    t.and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(zulu))
        .unwrap_or_else(|| "-".to_owned())
}

/// Left-aligned columns separated by two spaces; the last column is not
/// padded. Cells are padded by their plain width, so colour does not skew.
pub fn table(header: &[&str], rows: &[Vec<(String, String)>], style: &Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, (plain, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(plain.chars().count());
        }
    }
    let line = |cells: Vec<(String, String)>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (plain, shown)) in cells.into_iter().enumerate() {
            out.push_str(&shown);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - plain.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (h.to_string(), style.bold(h))).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn cell(text: impl Into<String>) -> (String, String) {
    let t = text.into();
    (t.clone(), t)
}

fn painted(plain: &str, shown: String) -> (String, String) {
    (plain.to_owned(), shown)
}

pub fn groups_table(groups: &[GroupOverview], style: &Style) -> String {
    if groups.is_empty() {
        return "no groups\n".to_owned();
    }
    let rows: Vec<_> = groups
        .iter()
        .map(|g| {
            let phase = GroupPhase::try_from(g.phase).unwrap_or_default();
            let s = g.summary.unwrap_or_default();
            vec![
                cell(&g.name),
                painted(phase_name(phase), style.phase(phase)),
                cell(format!("{}/{}", s.routable, s.total)),
                cell(source_name(GroupSource::try_from(g.source).unwrap_or_default())),
                cell(&g.message),
            ]
        })
        .collect();
    table(&["NAME", "PHASE", "ROUTABLE", "SOURCE", "MESSAGE"], &rows, style)
}

/// A latency as the status page shows it ("0.2 ms"), or "-".
pub fn latency(d: Option<&pbjson_types::Duration>) -> String {
    match d {
        Some(d) => crate::ui::model::ms_text(Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32).as_secs_f64() * 1e3),
        None => "-".to_owned(),
    }
}

pub fn backends_table(backends: &[BackendHealth], style: &Style) -> String {
    let rows: Vec<_> = backends
        .iter()
        .flat_map(|b| {
            let status = BackendStatus::try_from(b.status).unwrap_or_default();
            let reason = b.reason.as_ref().map_or("-", |r| reason_name(r.code));
            let mut row = vec![
                cell(&b.name),
                painted(status_name(status), style.status(status)),
                cell(match (b.draining, b.ejection.is_some(), b.routable) {
                    (true, _, _) => "no (draining)",
                    (false, true, _) => "no (ejected)",
                    (false, false, true) => "yes",
                    (false, false, false) => "no",
                }),
                cell(latency(b.last_latency.as_ref())),
                cell(if b.protocol_version.is_empty() { "-" } else { &b.protocol_version }),
                cell(reason),
            ];
            if style.wide {
                row.push(cell(&b.url));
            }
            match &b.ejection {
                // The ejection's cause first: it is why the backend is out.
                Some(j) => row.push(cell(format!("ejected ({}x): {}; {}", j.count, j.cause, b.message))),
                None => row.push(cell(&b.message)),
            }
            // `-o wide`: a discovered backend's endpoints, one row each, under it.
            let endpoints = b.endpoints.iter().filter(|_| style.wide).map(|e| {
                let status = BackendStatus::try_from(e.status).unwrap_or_default();
                let srv = if e.priority == 0 && e.weight == 0 {
                    "-".to_owned()
                } else {
                    format!("priority {} weight {}", e.priority, e.weight)
                };
                vec![
                    cell(format!("  {}", e.address)),
                    painted(status_name(status), style.status(status)),
                    cell(match (e.refused.is_empty(), e.leaving, e.drained, e.routable) {
                        (false, _, _, _) => "no (refused)",
                        (true, true, _, _) => "no (leaving)",
                        (true, false, true, _) => "no (drained)",
                        (true, false, false, true) => "yes",
                        (true, false, false, false) => "no",
                    }),
                    cell(latency(e.last_latency.as_ref())),
                    cell(if e.protocol_version.is_empty() { "-" } else { &e.protocol_version }),
                    cell(e.reason.as_ref().map_or("-", |r| reason_name(r.code))),
                    cell(srv),
                    cell(if e.refused.is_empty() { &e.message } else { &e.refused }),
                ]
            });
            std::iter::once(row).chain(endpoints.collect::<Vec<_>>())
        })
        .collect();
    let header: &[&str] = if style.wide {
        &["BACKEND", "STATUS", "ROUTABLE", "LATENCY", "PROTOCOL", "REASON", "URL", "MESSAGE"]
    } else {
        &["BACKEND", "STATUS", "ROUTABLE", "LATENCY", "PROTOCOL", "REASON", "MESSAGE"]
    };
    table(header, &rows, style)
}

/// The config file's state: path, groups, last good load, and the last
/// reload's error (the config in force is then the last good one).
pub fn config_status(c: &GetConfigStatusResponse, style: &Style) -> String {
    if c.path.is_empty() {
        return "no config file (--config not given)\n".to_owned();
    }
    let time = timestamp_text;
    let groups = if c.groups.is_empty() { "-".to_owned() } else { c.groups.join(", ") };
    let mut out = format!(
        "{} {}
groups          {groups}
last good load  {}
",
        style.bold("config file"),
        c.path,
        time(c.last_good_load_time.as_ref())
    );
    if c.last_error.is_empty() {
        out.push_str(
            "last reload     ok
",
        );
    } else {
        out.push_str(&format!(
            "last reload     {} at {}: {}
                (the last good config stays in force)
",
            style.error("FAILED"),
            time(c.last_error_time.as_ref()),
            c.last_error
        ));
    }
    out
}

/// One group: a header line, its message, then its backends.
pub fn group_view(g: &GroupHealth, style: &Style) -> String {
    let phase = GroupPhase::try_from(g.phase).unwrap_or_default();
    let s = g.summary.unwrap_or_default();
    let source = source_name(GroupSource::try_from(g.source).unwrap_or_default());
    let mut out = format!(
        "{} {}  phase {}  routable {}/{}  revision {}  generation {}  source {}\n{}\n",
        style.bold("group"),
        g.name,
        style.phase(phase),
        s.routable,
        s.total,
        g.revision,
        g.generation,
        source,
        g.message
    );
    if !g.backends.is_empty() {
        out.push('\n');
        out.push_str(&backends_table(&g.backends, style));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_tables_list_a_discovered_backends_endpoints_under_it() {
        use mcp_health_proto::v1::EndpointHealth;
        let endpoint = |address: &str, status: BackendStatus, routable, leaving, refused: &str| EndpointHealth {
            address: address.into(),
            status: status as i32,
            routable,
            leaving,
            refused: refused.into(),
            message: "ok".into(),
            priority: 10,
            weight: 60,
            ..EndpointHealth::default()
        };
        let b = BackendHealth {
            name: "pods".into(),
            url: "http://pods.test:8080/mcp".into(),
            status: BackendStatus::Degraded as i32,
            routable: true,
            message: "1 of 2 endpoints routable".into(),
            endpoints: vec![
                endpoint("10.0.0.1:8080", BackendStatus::Healthy, true, false, ""),
                endpoint("10.0.0.2:8080", BackendStatus::Unhealthy, false, false, ""),
                endpoint("10.0.0.3:8080", BackendStatus::Healthy, false, true, ""),
                endpoint("169.254.169.254:8080", BackendStatus::Unknown, false, false, "refused: link-local"),
                EndpointHealth {
                    drained: true,
                    ..endpoint("10.0.0.4:8080", BackendStatus::Healthy, false, false, "")
                },
            ],
            ..BackendHealth::default()
        };
        let narrow = backends_table(std::slice::from_ref(&b), &Style::plain());
        assert_eq!(narrow.lines().count(), 2, "{narrow}");
        let wide = backends_table(&[b], &Style { wide: true, ..Style::plain() });
        let lines: Vec<&str> = wide.lines().map(str::trim_end).collect();
        assert_eq!(lines.len(), 7, "{wide}");
        let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>().join(" ");
        assert_eq!(words(lines[1]), "pods DEGRADED yes - - - http://pods.test:8080/mcp 1 of 2 endpoints routable");
        assert_eq!(words(lines[2]), "10.0.0.1:8080 HEALTHY yes - - - priority 10 weight 60 ok");
        assert_eq!(words(lines[3]), "10.0.0.2:8080 UNHEALTHY no - - - priority 10 weight 60 ok");
        assert_eq!(words(lines[4]), "10.0.0.3:8080 HEALTHY no (leaving) - - - priority 10 weight 60 ok");
        assert_eq!(
            words(lines[5]),
            "169.254.169.254:8080 UNKNOWN no (refused) - - - priority 10 weight 60 refused: link-local"
        );
        assert_eq!(words(lines[6]), "10.0.0.4:8080 HEALTHY no (drained) - - - priority 10 weight 60 ok");
    }

    #[test]
    fn colour_does_not_skew_columns() {
        let rows = vec![vec![
            painted(
                "READY",
                Style {
                    colour: true,
                    terminal: true,
                    wide: false,
                }
                .phase(GroupPhase::Ready),
            ),
            cell("x"),
        ]];
        let plain_rows = vec![vec![cell("READY"), cell("x")]];
        let coloured = table(
            &["PHASE", "N"],
            &rows,
            &Style {
                colour: true,
                terminal: true,
                wide: false,
            },
        );
        let plain = table(&["PHASE", "N"], &plain_rows, &Style::plain());
        let strip = |s: &str| s.replace(GREEN, "").replace(BOLD, "").replace(RESET, "");
        assert!(coloured.contains(GREEN), "{coloured:?}");
        assert_eq!(strip(&coloured), plain);
        assert_eq!(plain, "PHASE  N\nREADY  x\n");
    }

    #[test]
    fn latency_as_the_page_shows_it_and_timestamps_as_grpcurl_prints_them() {
        let d = |seconds, nanos| pbjson_types::Duration { seconds, nanos };
        // (latency, text)
        for (latency, want) in [(Some(d(0, 200_000)), "0.2 ms"), (Some(d(1, 500_000_000)), "1500.0 ms"), (None, "-")] {
            assert_eq!(super::latency(latency.as_ref()), want, "{latency:?}");
        }
        let b = BackendHealth {
            name: "a".into(),
            last_probe_time: Some(pbjson_types::Timestamp {
                seconds: 1_796_455_915,
                nanos: 123_000_000,
            }),
            ..BackendHealth::default()
        };
        let json = serde_json::to_string(&proto3_json(&b).unwrap()).unwrap();
        assert!(json.contains(r#""lastProbeTime":"2026-12-05T07:31:55.123Z""#), "{json}");
        assert!(json.starts_with(r#"{"name":"a""#), "fields keep their order: {json}");
    }

    #[test]
    fn a_rate_limited_backend_shows_its_reason_and_why() {
        let b = BackendHealth {
            name: "limited".into(),
            status: BackendStatus::Degraded as i32,
            routable: true,
            reason: Some(crate::proto::v1::Reason {
                code: ReasonCode::RateLimited as i32,
                http_status: 429,
                message: "HTTP 429: the server answered JSON-RPC error -32023 (rate limited)".into(),
            }),
            message: "HTTP 429: the server answered JSON-RPC error -32023 (rate limited)".into(),
            ..BackendHealth::default()
        };
        let text = backends_table(&[b], &Style::plain());
        let row = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..3], ["limited", "DEGRADED", "yes"], "{text}");
        assert!(cells.contains(&"RATE_LIMITED") && row.contains("-32023 (rate limited)"), "{text}");
    }
}
