//! `mcp-healthctl watch`: on a terminal, the current table redrawn in place
//! after every change; piped, one line per change (transitions, backends and
//! groups coming and going); with -o json/yaml, every stream message as is.

use std::collections::BTreeMap;

use tonic::Streaming;

use super::render::{Output, Style, group_view, groups_table, phase_name, status_name};
use super::{CliError, Format, write_stdout};
use crate::proto::v1::{BackendHealth, BackendStatus, GroupHealth, GroupOverview, GroupPhase, WatchEventKind, WatchGroupHealthResponse};

/// Clears the terminal and moves the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Reads the stream to its end: a single-group watch ends when its group is
/// deleted, every watch when the daemon shuts down.
pub async fn follow(mut stream: Streaming<WatchGroupHealthResponse>, group: Option<String>, out: &Output) -> Result<(), CliError> {
    let mut seen = Seen::default();
    while let Some(msg) = stream.message().await? {
        match out.format {
            Format::Json | Format::Yaml => out.print_item(&msg, |_| String::new())?,
            Format::Table | Format::Wide if out.style.terminal => {
                seen.apply(&msg);
                write_stdout(&format!("{CLEAR}{}", seen.screen(group.as_deref(), msg.revision, &out.style)))?;
            }
            Format::Table | Format::Wide => write_stdout(&seen.changes(&msg))?,
        }
    }
    Ok(())
}

/// The groups as last seen, to redraw them or to tell what changed.
#[derive(Default)]
pub struct Seen {
    groups: BTreeMap<String, GroupHealth>,
}

fn phase(g: &GroupHealth) -> GroupPhase {
    GroupPhase::try_from(g.phase).unwrap_or_default()
}

fn status(b: &BackendHealth) -> BackendStatus {
    BackendStatus::try_from(b.status).unwrap_or_default()
}

impl Seen {
    fn apply(&mut self, msg: &WatchGroupHealthResponse) {
        let kind = WatchEventKind::try_from(msg.kind).unwrap_or_default();
        if kind == WatchEventKind::Snapshot {
            self.groups.clear();
        }
        for g in &msg.groups {
            if kind == WatchEventKind::Deleted {
                self.groups.remove(&g.name);
            } else {
                self.groups.insert(g.name.clone(), g.clone());
            }
        }
    }

    fn screen(&self, group: Option<&str>, revision: u64, style: &Style) -> String {
        let title = format!("watching {} (revision {revision}; Ctrl-C to stop)\n\n", group.unwrap_or("every group"));
        let body = match group {
            Some(name) => match self.groups.get(name) {
                Some(g) => group_view(g, style),
                None => format!("group {name} was deleted\n"),
            },
            None => {
                let overviews: Vec<GroupOverview> = self
                    .groups
                    .values()
                    .map(|g| GroupOverview {
                        name: g.name.clone(),
                        phase: g.phase,
                        summary: g.summary,
                        message: g.message.clone(),
                        source: g.source,
                    })
                    .collect();
                groups_table(&overviews, style)
            }
        };
        style.bold(&title) + &body
    }

    /// The lines a message adds to a piped watch, and the state after it.
    pub fn changes(&mut self, msg: &WatchGroupHealthResponse) -> String {
        let kind = WatchEventKind::try_from(msg.kind).unwrap_or_default();
        let rev = msg.revision;
        let mut out = String::new();
        let mut line = |text: String| out.push_str(&format!("rev={rev} {text}\n"));
        if kind == WatchEventKind::Deleted {
            for g in &msg.groups {
                self.groups.remove(&g.name);
                line(format!("group={} deleted", g.name));
            }
            return out;
        }
        if kind == WatchEventKind::Snapshot {
            // A resynchronization: groups missing from it are gone.
            let present: Vec<&str> = msg.groups.iter().map(|g| g.name.as_str()).collect();
            let gone: Vec<String> = self.groups.keys().filter(|n| !present.contains(&n.as_str())).cloned().collect();
            for name in gone {
                self.groups.remove(&name);
                line(format!("group={name} deleted"));
            }
        }
        for g in &msg.groups {
            let old = self.groups.insert(g.name.clone(), g.clone());
            let Some(old) = old else {
                line(format!("group={} phase={} ({})", g.name, phase_name(phase(g)), g.message));
                for b in &g.backends {
                    let drain = if b.draining { " draining" } else { "" };
                    line(format!(
                        "group={} backend={} status={}{drain} ({})",
                        g.name,
                        b.name,
                        status_name(status(b)),
                        b.message
                    ));
                }
                continue;
            };
            if old.phase != g.phase {
                line(format!(
                    "group={} phase {} -> {} ({})",
                    g.name,
                    phase_name(phase(&old)),
                    phase_name(phase(g)),
                    g.message
                ));
            }
            for b in &g.backends {
                match old.backends.iter().find(|o| o.name == b.name) {
                    None => line(format!(
                        "group={} backend={} added status={} ({})",
                        g.name,
                        b.name,
                        status_name(status(b)),
                        b.message
                    )),
                    Some(o) if o.status != b.status => line(format!(
                        "group={} backend={} {} -> {} ({})",
                        g.name,
                        b.name,
                        status_name(status(o)),
                        status_name(status(b)),
                        b.message
                    )),
                    // Same status, new progress (e.g. "2 of 3 failed probes").
                    Some(o) if o.message != b.message && o.consecutive_failures != b.consecutive_failures => {
                        line(format!("group={} backend={} status={} ({})", g.name, b.name, status_name(status(b)), b.message))
                    }
                    Some(_) => {}
                }
                if old.backends.iter().any(|o| o.name == b.name && o.draining != b.draining) {
                    let what = if b.draining { "draining (operator)" } else { "no longer draining" };
                    line(format!("group={} backend={} {what}", g.name, b.name));
                }
            }
            for o in old.backends.iter().filter(|o| !g.backends.iter().any(|b| b.name == o.name)) {
                line(format!("group={} backend={} removed", g.name, o.name));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::Summary;

    fn group(phase: GroupPhase, backends: &[(&str, BackendStatus)]) -> GroupHealth {
        GroupHealth {
            name: "g".into(),
            phase: phase as i32,
            summary: Some(Summary::default()),
            message: "m".into(),
            backends: backends
                .iter()
                .map(|(n, s)| BackendHealth {
                    name: (*n).into(),
                    status: *s as i32,
                    message: "why".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn msg(kind: WatchEventKind, revision: u64, groups: Vec<GroupHealth>) -> WatchGroupHealthResponse {
        WatchGroupHealthResponse {
            kind: kind as i32,
            revision,
            groups,
        }
    }

    #[test]
    fn one_line_per_change() {
        let mut seen = Seen::default();
        let first = seen.changes(&msg(
            WatchEventKind::Snapshot,
            1,
            vec![group(GroupPhase::Ready, &[("a", BackendStatus::Healthy)])],
        ));
        assert_eq!(first, "rev=1 group=g phase=READY (m)\nrev=1 group=g backend=a status=HEALTHY (why)\n");
        let change = seen.changes(&msg(
            WatchEventKind::Changed,
            2,
            vec![group(GroupPhase::Failed, &[("a", BackendStatus::Unhealthy), ("b", BackendStatus::Unknown)])],
        ));
        assert_eq!(
            change,
            "rev=2 group=g phase READY -> FAILED (m)\nrev=2 group=g backend=a HEALTHY -> UNHEALTHY (why)\nrev=2 group=g backend=b added status=UNKNOWN (why)\n"
        );
        let removed = seen.changes(&msg(
            WatchEventKind::Changed,
            3,
            vec![group(GroupPhase::Failed, &[("a", BackendStatus::Unhealthy)])],
        ));
        assert_eq!(removed, "rev=3 group=g backend=b removed\n");
        assert_eq!(
            seen.changes(&msg(WatchEventKind::Deleted, 4, vec![group(GroupPhase::Failed, &[])])),
            "rev=4 group=g deleted\n"
        );
    }

    #[test]
    fn screen_redraws_the_current_state() {
        let mut seen = Seen::default();
        seen.apply(&msg(
            WatchEventKind::Snapshot,
            1,
            vec![group(GroupPhase::Ready, &[("a", BackendStatus::Healthy)])],
        ));
        let all = seen.screen(None, 1, &Style::plain());
        assert!(all.starts_with("watching every group (revision 1"), "{all}");
        assert!(all.contains("g     READY"), "{all}");
        seen.apply(&msg(WatchEventKind::Deleted, 2, vec![group(GroupPhase::Ready, &[])]));
        assert!(seen.screen(Some("g"), 2, &Style::plain()).contains("group g was deleted"));
    }
}
