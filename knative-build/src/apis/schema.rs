//! Hand-written CRD schemas for the Kubernetes types Knative Build embeds (containers, volumes,
//! affinity, container states): kept open in the CRD, checked by our validation.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object the API server keeps without checking its fields.
pub(crate) fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of such objects.
pub(crate) fn preserved_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
    })
}
