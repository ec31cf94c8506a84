//! Group specs: turning a `GroupSpec` from the API or the config file into a
//! validated, resolved form, or into the list of every offending field.

pub mod duration;
pub mod policy;
pub mod validate;

pub use policy::Policy;
pub use validate::{Limits, ValidBackend, ValidGroup, secret_may_travel_to, validate_group};

/// One offending field of a spec, named by its proto3-JSON path
/// (e.g. `spec.backends[1].url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Collects violations under a path prefix.
#[derive(Debug, Default)]
pub(crate) struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }
}

/// Joins a path prefix and a field name: `join("spec", "name")` is `spec.name`.
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() { field.to_owned() } else { format!("{prefix}.{field}") }
}
