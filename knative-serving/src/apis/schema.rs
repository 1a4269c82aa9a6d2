//! Hand-written CRD schemas for the fields whose schema Knative keeps open.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the API server keeps without checking them: the Kubernetes types
/// embedded in Knative's (pod specs, object references), checked by our validation instead.
/// It keeps the CRD structural and small.
pub(crate) fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The metadata of a revision template, as in Knative's CRDs: the fields users set, the rest
/// preserved.
pub(crate) fn template_metadata(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "properties": {
            "name": { "type": "string" },
            "namespace": { "type": "string" },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "annotations": { "type": "object", "additionalProperties": { "type": "string" } },
            "finalizers": { "type": "array", "items": { "type": "string" } },
        },
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
