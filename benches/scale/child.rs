//! Child processes of the harness: the bench binary re-executes itself with a
//! role (fixture server, engine run, load baseline, gRPC server), so every
//! side's CPU time and RSS are its own. A child speaks in lines on stdout
//! (`ADDR …`, `RESULT {json}`, `OK …`) and takes commands on stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Environment variable naming the role a child runs.
pub const ROLE_ENV: &str = "MCP_BENCH_ROLE";
/// Environment variable holding a child's arguments as JSON.
pub const ARGS_ENV: &str = "MCP_BENCH_ARGS";

pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    role: String,
}

impl Worker {
    /// Starts this binary again in `role` with `args`.
    pub fn spawn(role: &str, args: &serde_json::Value) -> Worker {
        let exe = std::env::current_exe().expect("the bench binary knows its own path");
        let mut child = Command::new(exe)
            .env(ROLE_ENV, role)
            .env(ARGS_ENV, args.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {role} child: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Worker {
            child,
            stdin,
            stdout,
            role: role.to_owned(),
        }
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    pub fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                panic!("the {} child ended before printing {prefix:?}", self.role);
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Sends one command line and waits for its `OK` answer.
    pub fn command(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open until drop");
        writeln!(stdin, "{cmd}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot talk to the {} child: {e}", self.role));
        self.expect("OK")
    }

    /// Waits for the child's `RESULT` line and parses it.
    pub fn result(&mut self) -> serde_json::Value {
        let text = self.expect("RESULT");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad RESULT from the {} child: {e}: {text}", self.role))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin tells a server child to exit; kill covers one that hangs.
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments a child was started with.
pub fn args() -> serde_json::Value {
    let text = std::env::var(ARGS_ENV).unwrap_or_else(|_| "{}".to_owned());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {ARGS_ENV}: {e}"))
}

/// Prints one protocol line and flushes, so the parent sees it at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs `handle` on each stdin line until EOF or `quit`, answering `OK <reply>`.
pub fn serve_commands(mut handle: impl FnMut(&str) -> String) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "quit" {
            break;
        }
        let reply = handle(line);
        say(&format!("OK {reply}"));
    }
}
