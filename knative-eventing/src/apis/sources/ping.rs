//! PingSource: sends a fixed event on a cron schedule.

use std::sync::LazyLock;

use base64::Engine;
use knative_core::apis::{
    ConditionSet, FieldError, KnativeObject, SourceSpec, SourceStatus, ValidationOptions,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cron::validate_schedule;
use super::{SOURCE_CONDITION_DEPLOYED, SOURCE_CONDITION_SINK_PROVIDED};
use crate::apis::{Defaults, SetDefaults, Validate};

/// The CloudEvents type of the events a PingSource sends.
pub const PING_SOURCE_EVENT_TYPE: &str = "dev.knative.sources.ping";
/// The largest `data`/`dataBase64` Knative accepts by default (`config-ping-defaults`).
pub const PING_DATA_MAX_SIZE: usize = 4096;

/// The desired state of a PingSource (`sources.knative.dev/v1` PingSource).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "PingSource",
    namespaced,
    status = "SourceStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "sources",
    doc = "PingSource describes an event source with a fixed payload produced on a specified cron schedule.",
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PingSourceSpec {
    /// Where events go, and overrides of their attributes.
    #[serde(flatten)]
    pub source: SourceSpec,
    /// A standard cron schedule; defaulted to every minute.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    /// The IANA time zone the schedule is read in; UTC when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    /// The media type of `data`/`dataBase64`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// The event data, as text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// The event data, base64-encoded. Exclusive with `data`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_base64: String,
}

impl KnativeObject for PingSource {
    /// `Ready` from `SinkProvided` and `Deployed`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[SOURCE_CONDITION_SINK_PROVIDED, SOURCE_CONDITION_DEPLOYED])
        });
        &SET
    }
}

impl Validate for PingSource {
    /// Knative's `PingSourceSpec.Validate`: a standard cron schedule in a known time zone, a
    /// valid sink, `data` or `dataBase64` (not both) within 4096 bytes, valid base64 and, for
    /// `application/json`, valid JSON; valid `ceOverrides`.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let mut errs = FieldError::default();
        if !spec.timezone.is_empty() && spec.timezone.parse::<chrono_tz::Tz>().is_err() {
            errs = errs.also(FieldError::err_invalid_value(
                format!(
                    "provided bad location {}: unknown time zone {}",
                    spec.timezone, spec.timezone
                ),
                "timezone",
            ));
        }
        if let Err(e) = validate_schedule(&spec.schedule) {
            errs = errs.also(FieldError::err_invalid_value(e, "schedule"));
        }
        errs = errs.also(validate_sink(&spec.source, &self.metadata.namespace));
        let json = spec.content_type == "application/json";
        match (spec.data.is_empty(), spec.data_base64.is_empty()) {
            (false, false) => {
                errs = errs.also(FieldError::err_multiple_one_of(["data", "dataBase64"]));
            }
            (true, false) => {
                errs = errs.also(check_size(spec.data_base64.len(), "dataBase64"));
                match base64::engine::general_purpose::STANDARD.decode(&spec.data_base64) {
                    Err(e) => {
                        errs = errs.also(FieldError::err_invalid_value(e, "dataBase64"));
                    }
                    Ok(decoded) if json => {
                        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&decoded) {
                            errs = errs.also(FieldError::err_invalid_value(e, "dataBase64"));
                        }
                    }
                    Ok(_) => {}
                }
            }
            (false, true) => {
                errs = errs.also(check_size(spec.data.len(), "data"));
                if json && let Err(e) = serde_json::from_str::<serde_json::Value>(&spec.data) {
                    errs = errs.also(FieldError::err_invalid_value(e, "data"));
                }
            }
            (true, true) => {}
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for PingSource {
    /// Knative's `PingSource.SetDefaults`: schedule every minute, the sink's namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        if self.spec.schedule.is_empty() {
            self.spec.schedule = "* * * * *".to_owned();
        }
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec.source.sink.set_defaults(&namespace);
    }
}

fn check_size(size: usize, field: &str) -> FieldError {
    if size > PING_DATA_MAX_SIZE {
        FieldError::err_invalid_value(
            format!(
                "the {field} length of {size} bytes exceeds limit set at {PING_DATA_MAX_SIZE}."
            ),
            field,
        )
    } else {
        FieldError::default()
    }
}

/// A source's `sink` (required, a valid Destination) and `ceOverrides` (paths relative to the
/// spec).
pub(crate) fn validate_sink(source: &SourceSpec, namespace: &Option<String>) -> FieldError {
    let options = ValidationOptions {
        parent_namespace: namespace.clone().unwrap_or_default(),
        ..ValidationOptions::default()
    };
    FieldError::default()
        .also(
            source
                .sink
                .validate_with(&options)
                .err()
                .map(|e| e.via_field("sink")),
        )
        .also(source.validate().err())
}
