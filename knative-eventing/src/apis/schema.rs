//! Hand-written CRD schemas where the derived one would not be structural.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A Trigger's `filters`: the subscriptions-API dialects, with the nested filters of `all`,
/// `any` and `not` kept open as Knative's CRD keeps them (a recursive schema cannot be
/// structural).
pub(crate) fn subscriptions_api_filters(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "all": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "any": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "not": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                "exact": { "type": "object", "additionalProperties": { "type": "string" } },
                "prefix": { "type": "object", "additionalProperties": { "type": "string" } },
                "suffix": { "type": "object", "additionalProperties": { "type": "string" } },
                "cesql": { "type": "string" },
            },
        },
    })
}

/// An object whose fields the API server keeps without checking them: the Kubernetes types
/// embedded in Knative's (pod templates, label selectors), checked by our validation instead.
pub(crate) fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
