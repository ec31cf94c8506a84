//! What can go wrong in `mcp-healthctl`, its exit code, and how it is shown:
//! INVALID_ARGUMENT statuses field by field from their google.rpc.BadRequest.

use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::render::Style;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("{}", describe(.0))]
    Rpc(Status),
    /// An RPC of `check`, which has its own exit code.
    #[error("health check failed: {}", describe(.0))]
    CheckRpc(Status),
    #[error("service is {0}")]
    NotServing(String),
    #[error("cannot write output: {0}")]
    Output(String),
    /// Already reported item by item (e.g. some groups of an apply failed).
    #[error("{0}")]
    Reported(String),
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::Rpc(s)
    }
}

fn describe(s: &Status) -> String {
    format!("{}: {}", code_name(s.code()), s.message())
}

/// The canonical upper-case name of a status code, as grpcurl prints it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A status's rich details, one line each: field violations, retry delay,
/// failed preconditions.
pub fn detail_lines(s: &Status) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(bad) = s.get_details_bad_request() {
        for v in bad.field_violations {
            lines.push(format!("{}: {}", v.field, v.description));
        }
    }
    if let Some(delay) = s.get_details_retry_info().and_then(|r| r.retry_delay) {
        lines.push(format!("retry after {} ms", delay.as_millis()));
    }
    if let Some(pre) = s.get_details_precondition_failure() {
        for v in pre.violations {
            lines.push(format!("precondition {}: {}", v.r#type, v.subject));
        }
    }
    lines
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Connect { .. } => 2,
            CliError::CheckRpc(_) => 3,
            CliError::NotServing(_) => 4,
            CliError::Usage(_) | CliError::Rpc(_) | CliError::Output(_) | CliError::Reported(_) => 1,
        }
    }

    /// Prints the error to stderr; an INVALID_ARGUMENT lists every field.
    pub fn report(&self, style: &Style) {
        if let CliError::Reported(_) = self {
            return;
        }
        let status = match self {
            CliError::Rpc(s) | CliError::CheckRpc(s) => Some(s),
            _ => None,
        };
        match status.and_then(|s| s.get_details_bad_request().map(|b| (s, b.field_violations.len()))) {
            // The message repeats every violation on one line; list them instead.
            Some((s, n)) => eprintln!(
                "{} {}: {n} invalid field{}:",
                style.error("error:"),
                code_name(s.code()),
                if n == 1 { "" } else { "s" }
            ),
            None => eprintln!("{} {self}", style.error("error:")),
        }
        for line in status.map(detail_lines).unwrap_or_default() {
            eprintln!("  {line}");
        }
    }
}
