//! Knative's validation and defaulting of every Eventing kind, with field paths: each test one
//! rule, stated as the message a user sees.

use knative_eventing::apis::check::check;
use knative_eventing::apis::{
    Broker, Defaults, SetDefaults, SubscriptionsAPIFilter, Trigger, Validate,
};
use serde_json::{Value, json};

fn object(api_version: &str, kind: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": "x", "namespace": "ns"}, "spec": spec})
}

/// The error `knative validate` reports for `object` (after defaulting), or "ok".
fn outcome(object: Value) -> String {
    match check(&object, &Defaults::default()).expect("an Eventing kind") {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

fn sink() -> Value {
    json!({"uri": "http://example.com"})
}

#[test]
fn a_trigger_filter_dialect_must_be_alone() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1",
            "Trigger",
            json!({"broker": "default", "subscriber": sink(),
                   "filters": [{"exact": {"type": "a"}, "prefix": {"source": "b"}}]}),
        )),
        "multiple dialects found, filters can have only one dialect set: spec.filters[0]"
    );
}

#[test]
fn nested_filters_report_their_full_path() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1",
            "Trigger",
            json!({"broker": "default", "subscriber": sink(),
                   "filters": [{"all": [{"exact": {"type": "a"}}, {"not": {"suffix": {"Bad-Name": "x"}}}]}]}),
        )),
        "invalid key name \"Bad-Name\": spec.filters[0].all[1].not.suffix[Bad-Name]\n\
         Attribute name must start with a letter and can only contain lowercase alphanumeric"
    );
}

#[test]
fn an_exact_filter_holds_one_attribute() {
    let filter: SubscriptionsAPIFilter =
        serde_json::from_value(json!({"exact": {"type": "a", "source": "b"}})).unwrap();
    assert_eq!(
        filter.validate().unwrap_err().to_string(),
        "Multiple items found, can have only one key-value: exact"
    );
}

#[test]
fn a_trigger_needs_a_subscriber() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1",
            "Trigger",
            json!({"broker": "default"}),
        )),
        "expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri"
    );
}

#[test]
fn a_trigger_subscriber_in_another_namespace_is_rejected() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1",
            "Trigger",
            json!({"broker": "default", "subscriber": {"ref": {
                "apiVersion": "v1", "kind": "Service", "name": "s", "namespace": "other"}}}),
        )),
        "mismatched namespaces: spec.subscriber.ref.namespace\n\
         parent namespace: \"ns\" does not match ref: \"other\""
    );
}

#[test]
fn a_dependency_annotation_must_name_an_object() {
    let mut trigger = object(
        "eventing.knative.dev/v1",
        "Trigger",
        json!({"broker": "default", "subscriber": sink()}),
    );
    trigger["metadata"]["annotations"] =
        json!({"knative.dev/dependency": r#"{"kind": "PingSource"}"#});
    // pkg's path flattening splits the dotted key, as Knative's webhook renders it.
    assert_eq!(
        outcome(trigger),
        "missing field(s): metadata.annotations.[knative.dev/dependency].apiVersion, metadata.annotations.[knative.dev/dependency].name"
    );
}

#[test]
fn defaulting_a_trigger_labels_it_with_its_broker_and_adds_an_empty_filter() {
    let mut trigger: Trigger = serde_json::from_value(object(
        "eventing.knative.dev/v1",
        "Trigger",
        json!({"broker": "default", "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "s"}}}),
    ))
    .unwrap();
    trigger.set_defaults(&Defaults::default());
    assert_eq!(
        trigger.metadata.labels.unwrap()["eventing.knative.dev/broker"],
        "default"
    );
    assert!(trigger.spec.filter.is_some());
    assert_eq!(
        trigger.spec.subscriber.ref_.unwrap().namespace,
        "ns",
        "the subscriber's namespace is the Trigger's"
    );
}

#[test]
fn an_undefaulted_broker_misses_its_class_annotation() {
    let broker: Broker =
        serde_json::from_value(object("eventing.knative.dev/v1", "Broker", json!({}))).unwrap();
    assert_eq!(
        broker.validate().unwrap_err().to_string(),
        "missing field(s): eventing.knative.dev/broker.class"
    );
}

#[test]
fn a_broker_delivery_is_validated_under_spec_delivery() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1",
            "Broker",
            json!({"delivery": {"retry": -2, "backoffPolicy": "random", "backoffDelay": "2s"}}),
        )),
        "invalid value: -2: spec.delivery.retry\n\
         invalid value: 2s: spec.delivery.backoffDelay\n\
         invalid value: random: spec.delivery.backoffPolicy"
    );
}

#[test]
fn a_channel_may_not_list_subscribers() {
    assert_eq!(
        outcome(object(
            "messaging.knative.dev/v1",
            "Channel",
            json!({"subscribers": [{"subscriberUri": "http://a"}]}),
        )),
        "must not set the field(s): spec.subscribers"
    );
}

#[test]
fn defaulting_a_channel_picks_the_in_memory_channel() {
    let defaulted = check(
        &object("messaging.knative.dev/v1", "Channel", json!({})),
        &Defaults::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        defaulted["spec"]["channelTemplate"],
        json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"})
    );
}

#[test]
fn an_in_memory_channel_subscriber_needs_a_subscriber_or_reply_uri() {
    assert_eq!(
        outcome(object(
            "messaging.knative.dev/v1",
            "InMemoryChannel",
            json!({"subscribers": [{"uid": "u"}]}),
        )),
        "missing field(s): spec.subscribers[0].replyUri, spec.subscribers[0].subscriberUri\n\
         expected at least one of, got none"
    );
}

#[test]
fn a_subscription_needs_a_channel() {
    assert_eq!(
        outcome(object(
            "messaging.knative.dev/v1",
            "Subscription",
            json!({"subscriber": sink()}),
        )),
        "missing field(s): spec.channel\nthe Subscription must reference a channel"
    );
}

#[test]
fn a_subscription_needs_a_subscriber_or_a_reply_and_no_channel_namespace() {
    assert_eq!(
        outcome(object(
            "messaging.knative.dev/v1",
            "Subscription",
            json!({"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": "c", "namespace": "ns"}}),
        )),
        "missing field(s): spec.reply, spec.subscriber\n\
         the Subscription must reference at least one of (reply or a subscriber)\n\
         must not set the field(s): spec.channel.namespace"
    );
}

#[test]
fn a_sequence_needs_steps_and_each_step_is_a_destination() {
    assert_eq!(
        outcome(object(
            "flows.knative.dev/v1",
            "Sequence",
            json!({"steps": []})
        )),
        "missing field(s): spec.steps"
    );
    assert_eq!(
        outcome(object(
            "flows.knative.dev/v1",
            "Sequence",
            json!({"steps": [sink(), {"uri": "/relative"}]}),
        )),
        "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.steps[1].uri"
    );
}

#[test]
fn a_parallel_branch_needs_a_subscriber() {
    assert_eq!(
        outcome(object(
            "flows.knative.dev/v1",
            "Parallel",
            json!({"branches": [{"subscriber": sink()}, {"filter": sink()}]}),
        )),
        "expected at least one, got none: spec.branches[1].subscriber.ref, spec.branches[1].subscriber.uri"
    );
}

#[test]
fn a_ping_source_with_an_unknown_time_zone_says_so() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "PingSource",
            json!({"schedule": "0 9 * * *", "timezone": "Mars/Olympus", "sink": sink()}),
        )),
        "invalid value: provided bad location Mars/Olympus: unknown time zone Mars/Olympus: spec.timezone"
    );
}

#[test]
fn a_ping_source_with_json_content_needs_json_data() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "PingSource",
            json!({"contentType": "application/json", "data": "{not json", "sink": sink()}),
        )),
        "invalid value: key must be a string at line 1 column 2: spec.data"
    );
}

#[test]
fn a_ping_source_defaults_to_every_minute() {
    let defaulted = check(
        &object(
            "sources.knative.dev/v1",
            "PingSource",
            json!({"sink": sink()}),
        ),
        &Defaults::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(defaulted["spec"]["schedule"], "* * * * *");
}

#[test]
fn an_api_server_source_needs_resources_with_valid_api_versions() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "ApiServerSource",
            json!({"mode": "Everything", "sink": sink(),
                   "resources": [{"apiVersion": "a/b/c", "kind": ""}]}),
        )),
        "invalid value: Everything: spec.mode\n\
         invalid value: unexpected GroupVersion string: a/b/c: spec.resources[0].apiVersion\n\
         missing field(s): spec.resources[0].kind"
    );
}

#[test]
fn an_api_server_source_defaults_to_reference_mode_and_the_default_account() {
    let defaulted = check(
        &object(
            "sources.knative.dev/v1",
            "ApiServerSource",
            json!({"sink": sink(), "resources": [{"apiVersion": "v1", "kind": "Event"}]}),
        ),
        &Defaults::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            &defaulted["spec"]["mode"],
            &defaulted["spec"]["serviceAccountName"]
        ),
        (&json!("Reference"), &json!("default"))
    );
}

#[test]
fn a_container_source_container_needs_an_image() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "ContainerSource",
            json!({"sink": sink(), "template": {"spec": {"containers": [{"name": "c"}]}}}),
        )),
        "missing field(s): spec.template.spec.containers[0].image"
    );
}

#[test]
fn a_sink_binding_subject_names_one_object_or_a_selector_not_both() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "SinkBinding",
            json!({"sink": sink(), "subject": {"apiVersion": "apps/v1", "kind": "Deployment",
                   "name": "d", "selector": {"matchLabels": {"app": "d"}}}}),
        )),
        "expected exactly one, got both: spec.subject.name, spec.subject.selector"
    );
}

#[test]
fn ce_overrides_extension_names_are_alphanumeric() {
    assert_eq!(
        outcome(object(
            "sources.knative.dev/v1",
            "SinkBinding",
            json!({"sink": sink(), "subject": {"apiVersion": "apps/v1", "kind": "Job", "name": "j"},
                   "ceOverrides": {"extensions": {"bad_key": "x"}}}),
        )),
        "invalid key name \"bad_key\": spec.ceOverrides.extensions\n\
         keys MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"
    );
}

#[test]
fn an_event_type_defines_the_required_cloudevents_attributes() {
    assert_eq!(
        outcome(object(
            "eventing.knative.dev/v1beta3",
            "EventType",
            json!({"attributes": [{"name": "type", "value": "t", "required": true}]}),
        )),
        "missing field(s): spec.attributes.id, spec.attributes.source, spec.attributes.specversion"
    );
}
