//! Field errors with paths, combinable, rendered as one message. SKELETON: being written.

/// An error about one or more fields of a resource, with paths such as `spec.traffic[1].percent`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldError {
    /// The error's message, e.g. `expected exactly one, got both`.
    pub message: String,
    /// The paths of the fields concerned.
    pub paths: Vec<String>,
    /// Further detail for the user.
    pub details: String,
}
