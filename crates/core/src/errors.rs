//! Showing an error with its causes (`#[source]` chains) on one line, for
//! logs and statuses.

use std::error::Error;

/// `error: cause: cause of the cause ...`
pub fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
