//! Validation of metadata: Knative's `serving/metadata_validation.go` and pkg's
//! `apis.ValidateObjectMetadata`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::FieldError;

use crate::apis::names::{go_string_slice, name_is_dns1035_label};
use crate::apis::{Defaults, autoscaling, serving};

/// Every key of the `serving.knative.dev` group starts with this.
pub(crate) const GROUP_NAME_PREFIX: &str = "serving.knative.dev/";

/// The `serving.knative.dev/*` annotations users may set.
const ALLOWED_ANNOTATIONS: [&str; 8] = [
    serving::UPDATER_ANNOTATION,
    serving::CREATOR_ANNOTATION,
    serving::REVISION_LAST_PINNED_ANNOTATION_KEY,
    serving::ROUTING_STATE_MODIFIED_ANNOTATION_KEY,
    serving::FORCE_UPGRADE_ANNOTATION_KEY,
    serving::REVISION_PRESERVED_ANNOTATION_KEY,
    serving::ROUTES_ANNOTATION_KEY,
    serving::ROLLOUT_DURATION_KEY,
];

/// `serving.ValidateObjectMetadata` (paths relative to `metadata`): a valid name or
/// generateName, and annotations — autoscaling ones checked where they belong
/// (`allow_autoscaling`: Revisions) and refused elsewhere (Services, Configurations, Routes).
pub(crate) fn validate_object_metadata(
    meta: &ObjectMeta,
    allow_autoscaling: bool,
    defaults: &Defaults,
) -> FieldError {
    let annotations = meta.annotations.clone().unwrap_or_default();
    let autoscaling_errs = if allow_autoscaling {
        autoscaling::validate_annotations(&annotations, defaults)
    } else {
        validate_has_no_autoscaling_annotation(&annotations)
    };
    validate_name(meta).also(
        autoscaling_errs
            .also(validate_knative_annotations(&annotations))
            .via_field("annotations"),
    )
}

/// pkg's `apis.ValidateObjectMetadata`: `name` or `generateName`, each a DNS-1035 label.
fn validate_name(meta: &ObjectMeta) -> FieldError {
    let name = meta.name.as_deref().unwrap_or_default();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        let msgs = name_is_dns1035_label(generate_name, true);
        if !msgs.is_empty() {
            return FieldError::new(
                format!("not a DNS 1035 label prefix: {}", go_string_slice(&msgs)),
                ["generateName"],
            );
        }
    }
    if !name.is_empty() {
        let msgs = name_is_dns1035_label(name, false);
        if !msgs.is_empty() {
            return FieldError::new(
                format!("not a DNS 1035 label: {}", go_string_slice(&msgs)),
                ["name"],
            );
        }
    }
    if name.is_empty() && generate_name.is_empty() {
        return FieldError::new("name or generateName is required", ["name"]);
    }
    FieldError::default()
}

/// `validateKnativeAnnotations`: only the known `serving.knative.dev/*` annotations.
fn validate_knative_annotations(
    annotations: &std::collections::BTreeMap<String, String>,
) -> FieldError {
    annotations
        .keys()
        .filter(|key| {
            key.starts_with(GROUP_NAME_PREFIX) && !ALLOWED_ANNOTATIONS.contains(&key.as_str())
        })
        .fold(FieldError::default(), |errs, key| {
            errs.also(FieldError::err_invalid_key_name(key, ""))
        })
}

/// `serving.ValidateHasNoAutoscalingAnnotation`: autoscaling annotations belong on the
/// revision template.
pub(crate) fn validate_has_no_autoscaling_annotation(
    annotations: &std::collections::BTreeMap<String, String>,
) -> FieldError {
    annotations.keys().filter(|key| key.starts_with(autoscaling::GROUP_NAME)).fold(FieldError::default(), |errs, key| {
        errs.also(
            FieldError::err_invalid_key_name(key, "")
                .with_details(r#"autoscaling annotations must be put under "spec.template.metadata.annotations" to work"#),
        )
    })
}

/// `serving.ValidateQueueSidecarAnnotation`: the queue-proxy resource share is a percentage
/// in `0.1..=100`.
pub(crate) fn validate_queue_sidecar_annotation(
    annotations: &std::collections::BTreeMap<String, String>,
) -> FieldError {
    let key = serving::QUEUE_SIDECAR_RESOURCE_PERCENTAGE_ANNOTATION_KEY;
    let Some(value) = annotations.get(key) else {
        return FieldError::default();
    };
    match value.parse::<f64>() {
        Err(_) => FieldError::err_invalid_value(value, "").via_key(key),
        Ok(v) if !(0.1..=100.0).contains(&v) => {
            FieldError::err_out_of_bounds_value(v, 0.1, 100, "").via_key(key)
        }
        Ok(_) => FieldError::default(),
    }
}

/// `serving.ValidateRevisionName` (paths relative to the template): a brought-your-own name
/// is a DNS-1035 label prefixed with the parent's name and a dash.
pub(crate) fn validate_revision_name(template: &ObjectMeta, parent: &ObjectMeta) -> FieldError {
    if let Some(generate_name) = template.generate_name.as_deref().filter(|n| !n.is_empty()) {
        let msgs = name_is_dns1035_label(generate_name, true);
        if !msgs.is_empty() {
            return FieldError::err_invalid_value(
                format!("not a DNS 1035 label prefix: {}", go_string_slice(&msgs)),
                "metadata.generateName",
            );
        }
    }
    let Some(name) = template.name.as_deref().filter(|n| !n.is_empty()) else {
        return FieldError::default();
    };
    let msgs = name_is_dns1035_label(name, false);
    if !msgs.is_empty() {
        return FieldError::err_invalid_value(
            format!("not a DNS 1035 label: {}", go_string_slice(&msgs)),
            "metadata.name",
        );
    }
    let parent_name = parent.name.as_deref().unwrap_or_default();
    if parent_name.is_empty()
        && parent
            .generate_name
            .as_deref()
            .is_some_and(|n| !n.is_empty())
    {
        // A generated parent name cannot be known in advance, so neither can the prefix.
        return FieldError::err_disallowed_fields(["metadata.name"]);
    }
    let prefix = format!("{parent_name}-");
    if !name.starts_with(&prefix) {
        return FieldError::err_invalid_value(
            format!("{name:?} must have prefix {prefix:?}"),
            "metadata.name",
        );
    }
    FieldError::default()
}

/// `verifyLabelOwnerRef`: a `serving.knative.dev/<kind>` label must name an owner of that kind.
pub(crate) fn verify_label_owner_ref(
    meta: &ObjectMeta,
    value: &str,
    label: &str,
    kind: &str,
) -> FieldError {
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == kind && r.name == value);
    if owned {
        FieldError::default()
    } else {
        FieldError::err_missing_field([label])
    }
}

/// `ValidateClusterVisibilityLabel`: the visibility label's one allowed value.
pub(crate) fn validate_cluster_visibility_label(value: &str, key: &str) -> FieldError {
    if value == serving::VISIBILITY_CLUSTER_LOCAL {
        FieldError::default()
    } else {
        FieldError::err_invalid_value(value, key)
    }
}

/// `serving.ValidateRolloutDurationAnnotation`: a non-negative Go duration in whole seconds.
pub(crate) fn validate_rollout_duration_annotation(
    annotations: &std::collections::BTreeMap<String, String>,
) -> FieldError {
    let key = serving::ROLLOUT_DURATION_KEY;
    let Some(value) = annotations.get(key).filter(|v| !v.is_empty()) else {
        return FieldError::default();
    };
    match crate::apis::names::parse_go_duration(value) {
        None => FieldError::err_invalid_value(value, key),
        Some(d) if d % 1_000_000_000 != 0 => FieldError::new(
            format!("rollout-duration={value} is not at second precision"),
            [key],
        ),
        Some(d) if d < 0 => {
            FieldError::new(format!("rollout-duration={value} must be positive"), [key])
        }
        Some(_) => FieldError::default(),
    }
}
