//! Output of `mcp-healthctl`: the proto3 JSON mapping (pbjson) as JSON or
//! YAML for scripts, aligned tables for people, with colour only on a
//! terminal and never when NO_COLOR is set.

use std::io::IsTerminal;
use std::time::Duration;

use serde::Serialize;

use super::{CliError, Format, write_stdout};
use crate::proto::grpc_health_v1::health_check_response::ServingStatus;
use crate::proto::v1::{BackendHealth, BackendStatus, GroupHealth, GroupOverview, GroupPhase, GroupSource, ReasonCode};

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Whether to colour, and whether stdout is a terminal (for `watch`).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
    pub terminal: bool,
}

impl Style {
    /// Colour on a terminal, unless NO_COLOR is set to anything non-empty (no-color.org).
    pub fn detect() -> Style {
        let terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: terminal && !no_color,
            terminal,
        }
    }

    pub fn plain() -> Style {
        Style {
            colour: false,
            terminal: false,
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
    pub fn new(format: Format, style: Style) -> Output {
        Output { format, style }
    }

    /// Prints `value` as JSON or YAML, or the table that `table` renders.
    pub fn print<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<(), CliError> {
        write_stdout(&self.document(value, table)?)
    }

    fn document<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<String, CliError> {
        Ok(match self.format {
            Format::Table => table(&self.style),
            Format::Json => serde_json::to_string_pretty(value).map_err(|e| CliError::Output(e.to_string()))? + "\n",
            Format::Yaml => serde_yaml_ng::to_string(value).map_err(|e| CliError::Output(e.to_string()))?,
        })
    }

    /// One item of a sequence: a JSON line, or a YAML document after `---`.
    pub fn print_item<T: Serialize>(&self, value: &T, table: impl FnOnce(&Style) -> String) -> Result<(), CliError> {
        let text = match self.format {
            Format::Table => table(&self.style),
            Format::Json => serde_json::to_string(value).map_err(|e| CliError::Output(e.to_string()))? + "\n",
            Format::Yaml => format!("---\n{}", serde_yaml_ng::to_string(value).map_err(|e| CliError::Output(e.to_string()))?),
        };
        write_stdout(&text)
    }
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

fn latency(d: Option<&pbjson_types::Duration>) -> String {
    match d {
        Some(d) => {
            let d = Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32);
            format!("{}ms", d.as_millis())
        }
        None => "-".to_owned(),
    }
}

pub fn backends_table(backends: &[BackendHealth], style: &Style) -> String {
    let rows: Vec<_> = backends
        .iter()
        .map(|b| {
            let status = BackendStatus::try_from(b.status).unwrap_or_default();
            let reason = b.reason.as_ref().map_or("-", |r| reason_name(r.code));
            vec![
                cell(&b.name),
                painted(status_name(status), style.status(status)),
                cell(match (b.draining, b.routable) {
                    (true, _) => "no (draining)",
                    (false, true) => "yes",
                    (false, false) => "no",
                }),
                cell(latency(b.last_latency.as_ref())),
                cell(if b.protocol_version.is_empty() { "-" } else { &b.protocol_version }),
                cell(reason),
                cell(&b.message),
            ]
        })
        .collect();
    table(&["BACKEND", "STATUS", "ROUTABLE", "LATENCY", "PROTOCOL", "REASON", "MESSAGE"], &rows, style)
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
    fn colour_does_not_skew_columns() {
        let rows = vec![vec![
            painted("READY", Style { colour: true, terminal: true }.phase(GroupPhase::Ready)),
            cell("x"),
        ]];
        let plain_rows = vec![vec![cell("READY"), cell("x")]];
        let coloured = table(&["PHASE", "N"], &rows, &Style { colour: true, terminal: true });
        let plain = table(&["PHASE", "N"], &plain_rows, &Style::plain());
        let strip = |s: &str| s.replace(GREEN, "").replace(BOLD, "").replace(RESET, "");
        assert!(coloured.contains(GREEN), "{coloured:?}");
        assert_eq!(strip(&coloured), plain);
        assert_eq!(plain, "PHASE  N\nREADY  x\n");
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
