//! Route: a named endpoint that splits traffic over Revisions.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::duck::Addressable;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::names::{dns1035_label, go_string_slice, qualified_name};
use crate::apis::serving::{self, metadata};
use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: every traffic target resolved to a ready Revision.
pub const ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED: &str = "AllTrafficAssigned";
/// Condition: the Route's Ingress is programmed and ready.
pub const ROUTE_CONDITION_INGRESS_READY: &str = "IngressReady";
/// Condition: the Route's TLS certificate is provisioned (or TLS is off).
pub const ROUTE_CONDITION_CERTIFICATE_PROVISIONED: &str = "CertificateProvisioned";

/// The desired state of a Route: how to split traffic (`serving.knative.dev/v1` Route).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Route",
    namespaced,
    status = "RouteStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "rt",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Route is responsible for configuring ingress over a collection of Revisions. Some of the Revisions a Route distributes traffic over may be specified by referencing the Configuration responsible for creating them; in these cases the Route is additionally responsible for monitoring the Configuration for \"latest ready revision\" changes, and smoothly rolling out latest revisions.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// How to distribute traffic over Revisions and Configurations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// One entry of a Route's routing table.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Exposes this target on its own URL, `<tag>-<route>.<namespace>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,

    /// A specific Revision to send this share of traffic to. Exclusive with
    /// `configurationName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,

    /// A Configuration whose latest ready Revision gets this share of traffic, following it as
    /// new Revisions become ready. Only in a spec; exclusive with `revisionName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,

    /// Whether this target follows the latest ready Revision (`true`, which needs no
    /// `revisionName`) or is pinned to `revisionName` (`false`). Defaulted from
    /// `revisionName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,

    /// The share of traffic this target gets, in percent; the shares sum to 100. Defaulted
    /// to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,

    /// The URL of a tagged target. Only in a status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The fields of a Route's status that a Service's status inlines too.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatusFields {
    /// The URL that distributes traffic over the targets,
    /// `http[s]://<route>.<namespace>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The cluster-local address of the Route, which makes it Addressable (an event sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,

    /// The traffic split in force, every target resolved to a `revisionName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// The observed state of a Route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct RouteStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// URL, address and traffic.
    #[serde(flatten)]
    pub route: RouteStatusFields,
}

impl KnativeStatus for RouteStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Route {
    /// `Ready` from `AllTrafficAssigned`, `IngressReady` and `CertificateProvisioned`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED,
                ROUTE_CONDITION_INGRESS_READY,
                ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
            ])
        });
        &SET
    }
}

impl Validate for Route {
    /// Knative's `Route.Validate` on create: metadata (name, labels, rollout duration; no
    /// autoscaling annotations) and the traffic.
    fn validate_with(&self, defaults: &Defaults) -> Result<(), FieldError> {
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        metadata::validate_object_metadata(&self.metadata, false, defaults)
            .also(validate_labels(&self.metadata).via_field("labels"))
            .also(
                metadata::validate_rollout_duration_annotation(&annotations)
                    .via_field("annotations"),
            )
            .via_field("metadata")
            .also(
                self.spec
                    .validate_in(TrafficParent::Route)
                    .via_field("spec"),
            )
            .into_result()
    }
}

impl SetDefaults for Route {
    fn set_defaults(&mut self, _: &Defaults) {
        self.spec.set_defaults_in(TrafficParent::Route);
    }
}

/// What a traffic list belongs to, which decides what its targets may name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrafficParent {
    /// A Route: targets name a Revision or a Configuration.
    Route,
    /// A Service: targets name a Revision, or nothing for the Service's own Configuration
    /// (Knative's "default configuration name").
    Service,
}

impl RouteSpec {
    /// Knative's `RouteSpec.Validate` (paths relative to the spec).
    pub(crate) fn validate_in(&self, parent: TrafficParent) -> FieldError {
        validate_traffic_list(&self.traffic, parent).via_field("traffic")
    }

    /// Knative's `RouteSpec.SetDefaults`: a Service's empty traffic becomes 100% to its latest
    /// Revision; every target gets `latestRevision` and `percent`.
    pub(crate) fn set_defaults_in(&mut self, parent: TrafficParent) {
        if self.traffic.is_empty() && parent == TrafficParent::Service {
            self.traffic = vec![TrafficTarget {
                percent: Some(100),
                latest_revision: Some(true),
                ..TrafficTarget::default()
            }];
        }
        for target in &mut self.traffic {
            target.set_defaults();
        }
    }
}

impl TrafficTarget {
    /// Knative's `TrafficTarget.SetDefaults`: `latestRevision` is true unless a Revision is
    /// named, `percent` is 0 unless given.
    pub fn set_defaults(&mut self) {
        if self.latest_revision.is_none() {
            self.latest_revision = Some(set(&self.revision_name).is_none());
        }
        if self.percent.is_none() {
            self.percent = Some(0);
        }
    }

    /// Knative's `TrafficTarget.Validate` in a spec (paths relative to the target).
    fn validate_in(&self, parent: TrafficParent) -> FieldError {
        let revision = set(&self.revision_name);
        let configuration = set(&self.configuration_name);
        let mut errs = FieldError::default();

        if let Some(latest) = self.latest_revision
            && revision.is_some() == latest
        {
            // Pinning to a Revision and following the latest are opposite senses.
            errs = errs.also(FieldError::err_generic(
                format!(
                    "may not set revisionName {:?} when latestRevision is {latest}",
                    revision.unwrap_or_default()
                ),
                ["latestRevision"],
            ));
        }

        errs = errs.also(match (revision, configuration) {
            (_, Some(_)) if parent == TrafficParent::Service => {
                FieldError::err_disallowed_fields(["configurationName"])
            }
            (Some(_), Some(_)) => {
                FieldError::err_multiple_one_of(["revisionName", "configurationName"])
            }
            (Some(name), None) => validate_qualified_name(name, "revisionName"),
            (None, Some(name)) => validate_qualified_name(name, "configurationName"),
            (None, None) if parent == TrafficParent::Service => FieldError::default(),
            (None, None) => FieldError::err_missing_one_of(["revisionName", "configurationName"]),
        });

        if let Some(percent) = self.percent
            && !(0..=100).contains(&percent)
        {
            errs = errs.also(FieldError::err_out_of_bounds_value(
                percent, 0, 100, "percent",
            ));
        }

        if set(&self.url).is_some() {
            // The URL is reported in the status; a spec may not choose it.
            errs = errs.also(FieldError::err_disallowed_fields(["url"]));
        }
        errs
    }
}

/// `validateTrafficList` (paths relative to the list): valid targets, unique DNS-1035 tags,
/// and percentages summing to 100.
///
/// A Service's empty list is valid: defaulting sends all traffic to the latest Revision.
fn validate_traffic_list(traffic: &[TrafficTarget], parent: TrafficParent) -> FieldError {
    if traffic.is_empty() && parent == TrafficParent::Service {
        return FieldError::default();
    }
    let mut errs = FieldError::default();
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sum: i64 = 0;
    for (i, target) in traffic.iter().enumerate() {
        errs = errs.also(target.validate_in(parent).via_index(i));
        sum += target.percent.unwrap_or(0);

        let Some(tag) = set(&target.tag) else {
            continue;
        };
        let msgs = dns1035_label(tag);
        if !msgs.is_empty() {
            errs = errs.also(
                FieldError::err_invalid_value(
                    format!("not a DNS 1035 label: {}", go_string_slice(&msgs)),
                    "tag",
                )
                .via_index(i),
            );
        }
        match tags.get(tag) {
            Some(first) => {
                errs = errs.also(FieldError::new(
                    format!("Multiple definitions for {tag:?}"),
                    [format!("[{i}].tag"), format!("[{first}].tag")],
                ));
            }
            None => {
                tags.insert(tag, i);
            }
        }
    }
    if sum != 100 {
        errs = errs.also(FieldError::new(
            format!("Traffic targets sum to {sum}, want 100"),
            [""],
        ));
    }
    errs
}

/// `validation.IsQualifiedName` as `apis.ErrInvalidKeyName`.
fn validate_qualified_name(name: &str, field: &str) -> FieldError {
    let msgs = qualified_name(name);
    if msgs.is_empty() {
        FieldError::default()
    } else {
        FieldError::err_invalid_key_name(name, field).with_details(msgs.join(", "))
    }
}

/// Knative's `Route.validateLabels`: the visibility label's value, and the service label names
/// an owner.
fn validate_labels(meta: &ObjectMeta) -> FieldError {
    let mut errs = FieldError::default();
    for (key, value) in meta.labels.iter().flatten() {
        match key.as_str() {
            serving::VISIBILITY_LABEL_KEY => {
                errs = errs.also(metadata::validate_cluster_visibility_label(value, key))
            }
            serving::SERVICE_LABEL_KEY => {
                errs = errs.also(metadata::verify_label_owner_ref(
                    meta, value, key, "Service",
                ))
            }
            _ => {}
        }
    }
    errs
}

/// An optional string that is set and not empty (Go's `omitempty` strings).
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
