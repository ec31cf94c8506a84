//! Engine errors to gRPC statuses, with rich details (google.rpc.BadRequest,
//! RetryInfo, PreconditionFailure) so clients can show every offending field.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use mcp_health_core::spec::FieldViolation;
use mcp_health_engine::EngineError;

/// An INVALID_ARGUMENT status naming every offending field.
pub fn invalid(violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    let summary = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    Status::with_error_details(Code::InvalidArgument, format!("invalid group spec: {summary}"), details)
}

pub fn to_status(err: EngineError) -> Status {
    match &err {
        EngineError::GroupNotFound(_) | EngineError::BackendNotFound { .. } => Status::not_found(err.to_string()),
        // The backend exists; its probe raced a change that restarted it. Retryable.
        EngineError::BackendRestarted { .. } => Status::aborted(err.to_string()),
        EngineError::Invalid(violations) => invalid(violations),
        EngineError::ReadOnly { group, path } => {
            let mut details = ErrorDetails::new();
            details.add_precondition_failure_violation("CONFIG_FILE", format!("{path}#{group}"), err.to_string());
            Status::with_error_details(Code::FailedPrecondition, err.to_string(), details)
        }
        EngineError::NameConflict { .. } => Status::already_exists(err.to_string()),
        EngineError::TooManyGroups(_) => Status::resource_exhausted(err.to_string()),
        EngineError::RateLimited { elapsed_ms, limit_ms, .. } => {
            let wait = Duration::from_millis(limit_ms.saturating_sub(*elapsed_ms));
            Status::with_error_details(Code::ResourceExhausted, err.to_string(), ErrorDetails::with_retry_info(Some(wait)))
        }
        EngineError::ShuttingDown => Status::unavailable(err.to_string()),
        // Nothing changed; the client may retry.
        EngineError::Store(mcp_health_engine::store::StoreError::Conflict { .. }) => Status::aborted(mcp_health_core::errors::chain(&err)),
        EngineError::Store(_) => Status::unavailable(mcp_health_core::errors::chain(&err)),
    }
}

/// A `ProbeBackend` error in cluster mode: the engine's (this replica's or
/// the owner's) as usual; the owner out of reach is UNAVAILABLE (retry).
pub fn probe_status(err: mcp_health_cluster::probes::ProbeError) -> Status {
    match err {
        mcp_health_cluster::probes::ProbeError::Engine(e) => to_status(e),
        other => Status::unavailable(mcp_health_core::errors::chain(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_codes() {
        let (group, backend) = (|| "g".to_owned(), || "a".to_owned());
        let cases = [
            (EngineError::GroupNotFound(group()), Code::NotFound),
            (
                EngineError::BackendNotFound {
                    group: group(),
                    backend: backend(),
                },
                Code::NotFound,
            ),
            // Exists, but a change restarted it during an on-demand probe: retry.
            (
                EngineError::BackendRestarted {
                    group: group(),
                    backend: backend(),
                },
                Code::Aborted,
            ),
            (EngineError::TooManyGroups(1), Code::ResourceExhausted),
            (
                EngineError::RateLimited {
                    backend: backend(),
                    elapsed_ms: 1,
                    limit_ms: 2,
                },
                Code::ResourceExhausted,
            ),
            (EngineError::ShuttingDown, Code::Unavailable),
        ];
        for (err, want) in cases {
            let shown = err.to_string();
            let status = to_status(err);
            assert_eq!((status.code(), status.message()), (want, shown.as_str()));
        }
    }
}
