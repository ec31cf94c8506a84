//! The daemon's log lines as the real binary writes them: JSON lines with
//! one key per field (the event in `message`, its text in `detail`), and
//! text lines without colour codes when stderr is not a terminal.

use crate::lifecycle_bin;

use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// The top-level keys of one JSON object, in order and with repeats (a
/// `serde_json::Value` would keep only the last of two equal keys).
fn top_level_keys(line: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.deserialize_map(Keys).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"))
}

/// A config file with one group whose only backend refuses connections: its
/// first probe makes a backend transition and a group phase line.
fn dead_backend_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("groups.yaml");
    std::fs::write(
        &path,
        "groups:\n  - name: tools\n    policy: {interval: 3600s, unhealthyThreshold: 1, initialSpread: 0s}\n    backends:\n      - name: gone\n        url: http://127.0.0.1:1/mcp\n",
    )
    .unwrap();
    path
}

#[test]
fn json_transition_lines_have_one_message_key_the_event_and_a_detail() {
    let dir = tempfile::tempdir().unwrap();
    let config = dead_backend_config(dir.path());
    let mut d = lifecycle_bin::Daemon::spawn(&["--config", config.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        for line in d.drain_log() {
            // Found by the raw text: a parsed Value keeps only the last of two `message` keys.
            for event in ["backend transition", "group phase"] {
                if line.contains(&format!("\"message\":\"{event}\"")) && !seen.iter().any(|(e, _)| e == event) {
                    seen.push((event.to_owned(), line.clone()));
                }
            }
        }
        assert!(Instant::now() < deadline, "no transition lines in the log:\n{}", d.log.join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
    for (event, line) in seen {
        let keys = top_level_keys(&line);
        assert_eq!(keys.iter().filter(|k| *k == "message").count(), 1, "{event}: {line}");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["message"], event.as_str(), "{line}");
        assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{event} has no detail: {line}");
    }
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dead_backend_config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-healthd"))
        .args(["--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()])
        .env("MCP_HEALTH_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcp-healthd");
    let stderr = child.stderr.take().unwrap();
    // Read until the group's phase line (after start-up and the first probe).
    let mut log = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        let done = line.contains("group phase");
        log.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.iter().any(|l| l.contains("group phase")), "no phase line:\n{}", log.join("\n"));
    assert!(!log.iter().any(|l| l.contains('\x1b')), "colour codes in a piped log:\n{:?}", log);
}
