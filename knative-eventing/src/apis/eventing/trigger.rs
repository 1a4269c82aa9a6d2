//! Trigger: a subscription to the events of a Broker that pass a filter.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use knative_core::apis::{
    AuthStatus, ConditionSet, Destination, FieldError, KnativeObject, KnativeStatus, Status,
    ValidationOptions,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::delivery::{DeliverySpec, DeliveryStatus};
use crate::apis::{Defaults, SetDefaults, Validate, schema};

/// Label a Trigger carries with the name of its Broker.
pub const BROKER_LABEL: &str = "eventing.knative.dev/broker";
/// Annotation naming an object (a source) the Trigger waits for before it is Ready.
pub const DEPENDENCY_ANNOTATION: &str = "knative.dev/dependency";

/// Condition: the Trigger's Broker exists and is Ready.
pub const TRIGGER_CONDITION_BROKER: &str = "BrokerReady";
/// Condition: the Trigger is wired into the Broker's filter.
pub const TRIGGER_CONDITION_SUBSCRIBED: &str = "SubscriptionReady";
/// Condition: the object named by the dependency annotation is Ready.
pub const TRIGGER_CONDITION_DEPENDENCY: &str = "DependencyReady";
/// Condition: the subscriber resolved to a URI.
pub const TRIGGER_CONDITION_SUBSCRIBER_RESOLVED: &str = "SubscriberResolved";
/// Condition: the dead-letter sink, if any, resolved to a URI.
pub const TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";

/// The desired state of a Trigger (`eventing.knative.dev/v1` Trigger).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Trigger",
    namespaced,
    status = "TriggerStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "eventing",
    doc = "Trigger represents a request to have events delivered to a subscriber from a Broker's event pool.",
    printcolumn = r#"{"name": "Broker", "type": "string", "jsonPath": ".spec.broker"}"#,
    printcolumn = r#"{"name": "Subscriber_URI", "type": "string", "jsonPath": ".status.subscriberUri"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// The Broker this Trigger receives events from.
    #[serde(default)]
    pub broker: String,
    /// The namespace of the Broker (cross-namespace brokers); defaults to the Trigger's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_namespace: Option<String>,
    /// The attribute filter: events pass when every listed attribute matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// Filters in the CloudEvents subscriptions-API dialects, all of which must pass. When
    /// set, `filter` is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subscriptions_api_filters")]
    pub filters: Vec<SubscriptionsAPIFilter>,
    /// Where passing events are sent.
    #[serde(default)]
    pub subscriber: Destination,
    /// How events are delivered to the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// A Trigger's attribute filter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerFilter {
    /// Attribute name → value the event must carry; the empty value means "present, with any
    /// value".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One filter expression of the CloudEvents subscriptions API; exactly one dialect is set.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionsAPIFilter {
    /// Passes when every nested filter passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<SubscriptionsAPIFilter>,
    /// Passes when at least one nested filter passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<SubscriptionsAPIFilter>,
    /// Passes when the nested filter does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<SubscriptionsAPIFilter>>,
    /// One attribute whose value must equal the given one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exact: BTreeMap<String, String>,
    /// One attribute whose value must start with the given one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prefix: BTreeMap<String, String>,
    /// One attribute whose value must end with the given one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub suffix: BTreeMap<String, String>,
    /// A CloudEvents SQL expression that must evaluate to true.
    #[serde(rename = "cesql", default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
}

/// The observed state of a Trigger.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// The resolved URI of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// The CA certificates of the subscriber.
    #[serde(
        rename = "subscriberCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// The OIDC audience of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
    /// The service account generated for OIDC authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

impl KnativeStatus for TriggerStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Trigger {
    /// `Ready` from `BrokerReady`, `SubscriptionReady`, `DependencyReady`,
    /// `SubscriberResolved` and `DeadLetterSinkResolved`, as Knative's.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                TRIGGER_CONDITION_BROKER,
                TRIGGER_CONDITION_SUBSCRIBED,
                TRIGGER_CONDITION_DEPENDENCY,
                TRIGGER_CONDITION_SUBSCRIBER_RESOLVED,
                TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
            ])
        });
        &SET
    }
}

impl Validate for Trigger {
    /// Knative's `Trigger.Validate`: the spec, and the dependency annotation when present.
    fn validate(&self) -> Result<(), FieldError> {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        let mut errs = self.spec.validate_in(&namespace).via_field("spec");
        if let Some(dependency) = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEPENDENCY_ANNOTATION))
        {
            errs = errs.also(
                validate_dependency_annotation(dependency, &namespace)
                    .via_key(DEPENDENCY_ANNOTATION)
                    .via_field("annotations")
                    .via_field("metadata"),
            );
        }
        errs.into_result()
    }
}

impl SetDefaults for Trigger {
    /// Knative's `Trigger.SetDefaults`: an empty filter, the subscriber's and dead-letter
    /// sink's namespaces, and the `eventing.knative.dev/broker` label.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec.filter.get_or_insert_with(TriggerFilter::default);
        self.spec.subscriber.set_defaults(&namespace);
        if let Some(delivery) = &mut self.spec.delivery {
            delivery.set_defaults(&namespace);
        }
        if !self.spec.broker.is_empty() {
            self.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(BROKER_LABEL.to_owned(), self.spec.broker.clone());
        }
    }
}

impl TriggerSpec {
    /// Knative's `TriggerSpec.Validate` (paths relative to the spec).
    fn validate_in(&self, namespace: &str) -> FieldError {
        let mut errs = FieldError::default();
        if self.broker.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["broker"]));
        }
        if let Some(filter) = &self.filter {
            errs = errs.also(filter.validate().err().map(|e| e.via_field("filter")));
        }
        errs = errs.also(validate_filter_list(&self.filters).via_field("filters"));
        let options = ValidationOptions {
            parent_namespace: namespace.to_owned(),
            ..ValidationOptions::default()
        };
        errs = errs.also(
            self.subscriber
                .validate_with(&options)
                .err()
                .map(|e| e.via_field("subscriber")),
        );
        if let Some(delivery) = &self.delivery {
            errs = errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
        }
        errs
    }
}

impl TriggerFilter {
    /// Attribute names are lower-case alphanumeric, starting with a letter (paths relative to
    /// the filter).
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_attribute_names(&self.attributes)
            .via_field("attributes")
            .into_result()
    }
}

impl SubscriptionsAPIFilter {
    /// Knative's `ValidateSubscriptionAPIFilter` (paths relative to the filter): one dialect;
    /// `exact`, `prefix` and `suffix` hold one valid attribute name each; nested filters valid.
    ///
    /// A `cesql` expression is accepted without being parsed: there is no CESQL parser in
    /// this crate.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_fields().into_result()
    }

    /// The names of the dialects set in this filter.
    pub fn dialects(&self) -> Vec<&'static str> {
        [
            ("all", !self.all.is_empty()),
            ("any", !self.any.is_empty()),
            ("not", self.not.is_some()),
            ("exact", !self.exact.is_empty()),
            ("prefix", !self.prefix.is_empty()),
            ("suffix", !self.suffix.is_empty()),
            ("cesql", !self.sql.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    fn validate_fields(&self) -> FieldError {
        let mut errs = FieldError::default();
        if self.dialects().len() > 1 {
            errs = errs.also(FieldError::err_generic(
                "multiple dialects found, filters can have only one dialect set",
                [knative_core::apis::CURRENT_FIELD],
            ));
        }
        errs = errs
            .also(validate_single_attribute(&self.exact).via_field("exact"))
            .also(validate_single_attribute(&self.prefix).via_field("prefix"))
            .also(validate_single_attribute(&self.suffix).via_field("suffix"))
            .also(validate_filter_list(&self.all).via_field("all"))
            .also(validate_filter_list(&self.any).via_field("any"));
        if let Some(not) = &self.not {
            errs = errs.also(not.validate_fields().via_field("not"));
        }
        errs
    }
}

fn validate_filter_list(filters: &[SubscriptionsAPIFilter]) -> FieldError {
    filters
        .iter()
        .enumerate()
        .fold(FieldError::default(), |errs, (i, f)| {
            errs.also(f.validate_fields().via_index(i))
        })
}

/// `ValidateSingleAttributeMap`: at most one key, and a valid attribute name.
fn validate_single_attribute(expr: &BTreeMap<String, String>) -> FieldError {
    if expr.len() > 1 {
        return FieldError::err_generic(
            "Multiple items found, can have only one key-value",
            [knative_core::apis::CURRENT_FIELD],
        );
    }
    validate_attribute_names(expr)
}

/// `ValidateAttributesNames`: `^[a-z][a-z0-9]*$`.
fn validate_attribute_names(attributes: &BTreeMap<String, String>) -> FieldError {
    attributes
        .keys()
        .filter(|name| !is_valid_attribute_name(name))
        .fold(FieldError::default(), |errs, name| {
            errs.also(
                FieldError::err_invalid_key_name(name, knative_core::apis::CURRENT_FIELD)
                    .with_details(
                        "Attribute name must start with a letter and can only contain lowercase alphanumeric",
                    )
                    .via_key(name),
            )
        })
}

/// Whether `name` is a valid CloudEvents attribute name as Knative accepts it in filters.
pub fn is_valid_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `validateDependencyAnnotation`: a JSON object reference with `kind`, `name` and
/// `apiVersion`, in the Trigger's namespace.
fn validate_dependency_annotation(value: &str, namespace: &str) -> FieldError {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct ObjectReference {
        kind: String,
        name: String,
        namespace: String,
        api_version: String,
    }
    let reference: ObjectReference = match serde_json::from_str(value) {
        Ok(r) => r,
        Err(e) => {
            return FieldError::new(
                format!("The provided annotation was not a corev1.ObjectReference: {value}"),
                [knative_core::apis::CURRENT_FIELD],
            )
            .with_details(e.to_string());
        }
    };
    let mut errs = FieldError::default();
    if !reference.namespace.is_empty() && reference.namespace != namespace {
        errs = errs.also(FieldError::new(
            format!("Namespace must be empty or equal to the trigger namespace {namespace}"),
            ["namespace"],
        ));
    }
    for (field, value) in [
        ("kind", &reference.kind),
        ("name", &reference.name),
        ("apiVersion", &reference.api_version),
    ] {
        if value.is_empty() {
            errs = errs.also(FieldError::err_missing_field([field]));
        }
    }
    errs
}
