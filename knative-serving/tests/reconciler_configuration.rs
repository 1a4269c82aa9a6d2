//! Table tests of the Configuration reconciler on the recording API double: objects in, the
//! exact creates, status and Events out.

use std::sync::Arc;

use knative_core::apis::{Condition, ConditionStatus};
use knative_core::reconciler::Driver;
use knative_core::testing::{RecordedEvent, RecordingApi, Verb};
use knative_serving::apis::{Configuration, Revision};
use knative_serving::reconciler::configuration::{ConfigurationReconciler, make_revision};
use serde_json::{Value, json};

const NS: &str = "ns";

fn configuration(name: &str, generation: i64) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "generation": generation},
        "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]}}},
    })
}

fn config_from(value: Value) -> Configuration {
    serde_json::from_value(value).unwrap()
}

/// A Revision created by Configuration `config` at `generation`, with `Ready` = `ready` (no
/// condition when `None`).
fn revision(config: &str, generation: i64, ready: Option<&str>) -> Revision {
    let mut rev = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {
            "name": format!("{config}-{generation:05}"), "namespace": NS,
            "labels": {
                "serving.knative.dev/configuration": config,
                "serving.knative.dev/configurationGeneration": generation.to_string(),
            },
            "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
                                 "name": config, "uid": format!("uid-{config}"), "controller": true}],
        },
        "spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]},
    });
    if let Some(status) = ready {
        let mut condition = json!({"type": "Ready", "status": status});
        if status == "False" {
            condition["reason"] = json!("ExitCode1");
            condition["message"] = json!("Container failed with: boom");
        }
        rev["status"] = json!({"conditions": [condition]});
    }
    serde_json::from_value(rev).unwrap()
}

fn setup(config: Value) -> (RecordingApi, Driver<Configuration, ConfigurationReconciler>) {
    let api = RecordingApi::new();
    api.seed(&config_from(config));
    let driver = Driver::new(api.client(), ConfigurationReconciler::new());
    (api, driver)
}

async fn reconcile(
    api: &RecordingApi,
    driver: &Driver<Configuration, ConfigurationReconciler>,
    name: &str,
) -> Result<(), knative_core::reconciler::DriverError> {
    let obj = api.get::<Configuration>(NS, name).expect("configuration");
    driver.reconcile(Arc::new(obj)).await.map(|_| ())
}

fn stored(api: &RecordingApi, name: &str) -> Configuration {
    api.get::<Configuration>(NS, name).expect("configuration")
}

fn condition(config: &Configuration, t: &str) -> Condition {
    config
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(t))
        .cloned()
        .unwrap_or_else(|| panic!("no condition {t}"))
}

fn latest(config: &Configuration) -> (Option<String>, Option<String>) {
    let fields = &config.status.as_ref().expect("status").configuration;
    (
        fields.latest_created_revision_name.clone(),
        fields.latest_ready_revision_name.clone(),
    )
}

fn event(type_: &str, reason: &str, note: &str, regarding: &str) -> RecordedEvent {
    RecordedEvent {
        type_: type_.into(),
        reason: reason.into(),
        note: note.into(),
        regarding: regarding.into(),
    }
}

#[tokio::test]
async fn a_new_configuration_creates_its_first_revision() {
    let (api, driver) = setup(configuration("hello", 1));
    reconcile(&api, &driver, "hello").await.unwrap();

    let creates = api.creates();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0].resource, "revisions");
    let rev: Revision = creates[0].object();
    assert_eq!(rev.metadata.name.as_deref(), Some("hello-00001"));
    assert_eq!(
        serde_json::to_value(&rev.metadata.labels).unwrap(),
        json!({
            "serving.knative.dev/configuration": "hello",
            "serving.knative.dev/configurationGeneration": "1",
            "serving.knative.dev/configurationUID": "uid-hello",
            "serving.knative.dev/routingState": "pending",
        })
    );
    assert_eq!(
        serde_json::to_value(&rev.metadata.owner_references).unwrap(),
        json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Configuration", "name": "hello",
                "uid": "uid-hello", "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        rev.spec.pod_spec.containers[0].image.as_deref(),
        Some("ghcr.io/knative/helloworld-go")
    );
    assert_eq!(
        api.events(),
        [event(
            "Normal",
            "Created",
            r#"Created Revision "hello-00001""#,
            "hello"
        )]
    );
}

#[tokio::test]
async fn a_new_revision_leaves_the_configuration_not_ready_yet() {
    let (api, driver) = setup(configuration("hello", 1));
    reconcile(&api, &driver, "hello").await.unwrap();

    let config = stored(&api, "hello");
    assert_eq!(latest(&config), (Some("hello-00001".into()), None));
    let ready = condition(&config, "Ready");
    assert_eq!(ready.status, ConditionStatus::Unknown);
    assert_eq!(ready.reason, None);
    assert_eq!(config.status.unwrap().status.observed_generation, Some(1));
}

#[tokio::test]
async fn the_revision_is_named_by_generation_with_five_digits() {
    let (api, driver) = setup(configuration("hello", 12));
    reconcile(&api, &driver, "hello").await.unwrap();
    let rev: Revision = api.creates()[0].object();
    assert_eq!(rev.metadata.name.as_deref(), Some("hello-00012"));
    assert_eq!(
        rev.metadata.labels.unwrap()["serving.knative.dev/configurationGeneration"],
        "12"
    );
}

#[tokio::test]
async fn a_template_name_becomes_the_revision_name() {
    let mut config = configuration("hello", 1);
    config["spec"]["template"]["metadata"] = json!({"name": "hello-blue"});
    let (api, driver) = setup(config);
    reconcile(&api, &driver, "hello").await.unwrap();
    let rev: Revision = api.creates()[0].object();
    assert_eq!(rev.metadata.name.as_deref(), Some("hello-blue"));
    assert_eq!(
        latest(&stored(&api, "hello")).0.as_deref(),
        Some("hello-blue")
    );
}

#[tokio::test]
async fn a_configuration_of_a_service_labels_its_revisions_with_the_service() {
    let mut config = configuration("hello", 1);
    config["metadata"]["labels"] = json!({"serving.knative.dev/service": "hello"});
    let (api, driver) = setup(config);
    reconcile(&api, &driver, "hello").await.unwrap();
    let rev: Revision = api.creates()[0].object();
    assert_eq!(
        rev.metadata.labels.unwrap()["serving.knative.dev/service"],
        "hello"
    );
}

#[tokio::test]
async fn the_templates_labels_and_annotations_and_the_updater_as_creator_reach_the_revision() {
    let mut config = configuration("hello", 1);
    config["metadata"]["annotations"] = json!({"serving.knative.dev/lastModifier": "alice"});
    config["spec"]["template"]["metadata"] = json!({
        "labels": {"app": "hello"},
        "annotations": {"autoscaling.knative.dev/min-scale": "1"},
    });
    let now = "2026-11-28T12:00:00Z".parse().unwrap();
    let rev = make_revision(&config_from(config), now);
    let labels = rev.metadata.labels.unwrap();
    assert_eq!(labels["app"], "hello");
    assert_eq!(labels["serving.knative.dev/configuration"], "hello");
    assert_eq!(labels["serving.knative.dev/routingState"], "pending");
    assert_eq!(
        serde_json::to_value(rev.metadata.annotations).unwrap(),
        json!({
            "autoscaling.knative.dev/min-scale": "1",
            "serving.knative.dev/creator": "alice",
            "serving.knative.dev/routingStateModified": "2026-11-28T12:00:00Z",
        })
    );
}

#[tokio::test]
async fn stale_reserve_revisions_are_garbage_collected_on_a_pass() {
    let mut config = configuration("hello", 3);
    config["status"] = json!({ "latestCreatedRevisionName": "hello-00003", "latestReadyRevisionName": "hello-00003" });
    let api = RecordingApi::new();
    api.seed(&config_from(config));
    let created = |n: u32| format!("2020-01-0{n}T00:00:00Z");
    for (n, state) in [(1, "reserve"), (2, "reserve"), (3, "active")] {
        api.seed(&serde_json::from_value::<Revision>(json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
            "metadata": {
                "name": format!("hello-0000{n}"), "namespace": NS, "uid": format!("uid-{n}"),
                "creationTimestamp": created(n),
                "labels": {
                    "serving.knative.dev/configuration": "hello",
                    "serving.knative.dev/configurationGeneration": n.to_string(),
                    "serving.knative.dev/routingState": state,
                },
                "annotations": { "serving.knative.dev/routingStateModified": created(n) },
                "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
                    "name": "hello", "uid": "uid-hello", "controller": true}],
            },
            "spec": { "containers": [{ "image": "example.com/hello" }] },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        })).unwrap());
    }
    // Keep one non-active Revision; the other is years old and long inactive.
    let mut config = knative_core::config::Config::default();
    config.gc.min_non_active_revisions = 1;
    let driver = Driver::new(api.client(), ConfigurationReconciler::new())
        .with_config(knative_core::config::ConfigStore::from_static(config));
    reconcile(&api, &driver, "hello").await.unwrap();

    let deletes: Vec<Option<String>> = api.deletes().into_iter().map(|d| d.name).collect();
    assert_eq!(deletes, [Some("hello-00001".to_owned())]);
}

#[tokio::test]
async fn a_very_long_configuration_name_makes_a_hashed_revision_name() {
    let name = "a".repeat(60);
    let rev = make_revision(
        &config_from(configuration(&name, 1)),
        k8s_openapi::jiff::Timestamp::now(),
    );
    let rev_name = rev.metadata.name.unwrap();
    assert_eq!(rev_name.len(), 63);
    assert!(rev_name.starts_with(&"a".repeat(25)));
    assert!(rev_name.ends_with("-00001"));
}

#[tokio::test]
async fn the_revision_of_the_current_generation_is_not_created_twice() {
    let (api, driver) = setup(configuration("hello", 1));
    api.seed(&revision("hello", 1, None));
    reconcile(&api, &driver, "hello").await.unwrap();
    assert_eq!(api.creates(), vec![]);
    assert_eq!(
        latest(&stored(&api, "hello")).0.as_deref(),
        Some("hello-00001")
    );
}

#[tokio::test]
async fn a_ready_latest_revision_makes_the_configuration_ready() {
    let (api, driver) = setup(configuration("hello", 1));
    api.seed(&revision("hello", 1, Some("True")));
    reconcile(&api, &driver, "hello").await.unwrap();

    let config = stored(&api, "hello");
    assert_eq!(
        latest(&config),
        (Some("hello-00001".into()), Some("hello-00001".into()))
    );
    assert_eq!(condition(&config, "Ready").status, ConditionStatus::True);
    assert_eq!(
        api.events(),
        [
            event(
                "Normal",
                "ConfigurationReady",
                "Configuration becomes ready",
                "hello"
            ),
            event(
                "Normal",
                "LatestReadyUpdate",
                r#"LatestReadyRevisionName updated to "hello-00001""#,
                "hello"
            ),
        ]
    );
}

#[tokio::test]
async fn a_failed_latest_revision_makes_the_configuration_fail() {
    let (api, driver) = setup(configuration("hello", 1));
    api.seed(&revision("hello", 1, Some("False")));
    reconcile(&api, &driver, "hello").await.unwrap();

    let ready = condition(&stored(&api, "hello"), "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("RevisionFailed"));
    assert_eq!(
        ready.message.as_deref(),
        Some(r#"Revision "hello-00001" failed with message: Container failed with: boom."#)
    );
    assert_eq!(
        api.events(),
        [event(
            "Warning",
            "LatestCreatedFailed",
            r#"Latest created revision "hello-00001" has failed"#,
            "hello"
        )]
    );
}

#[tokio::test]
async fn the_latest_ready_revision_keeps_serving_while_the_next_one_starts() {
    let mut config = configuration("hello", 2);
    config["status"] = json!({
        "observedGeneration": 1,
        "latestCreatedRevisionName": "hello-00001",
        "latestReadyRevisionName": "hello-00001",
        "conditions": [{"type": "Ready", "status": "True"}],
    });
    let (api, driver) = setup(config);
    api.seed(&revision("hello", 1, Some("True")));
    reconcile(&api, &driver, "hello").await.unwrap();

    let created: Revision = api.creates()[0].object();
    assert_eq!(created.metadata.name.as_deref(), Some("hello-00002"));
    let config = stored(&api, "hello");
    assert_eq!(
        latest(&config),
        (Some("hello-00002".into()), Some("hello-00001".into()))
    );
    assert_eq!(condition(&config, "Ready").status, ConditionStatus::Unknown);
}

#[tokio::test]
async fn a_newer_ready_revision_becomes_the_latest_ready_one() {
    let mut config = configuration("hello", 2);
    config["status"] = json!({
        "observedGeneration": 2,
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00001",
        "conditions": [{"type": "Ready", "status": "Unknown"}],
    });
    let (api, driver) = setup(config);
    api.seed(&revision("hello", 1, Some("True")));
    api.seed(&revision("hello", 2, Some("True")));
    reconcile(&api, &driver, "hello").await.unwrap();

    let config = stored(&api, "hello");
    assert_eq!(
        latest(&config),
        (Some("hello-00002".into()), Some("hello-00002".into()))
    );
    assert_eq!(condition(&config, "Ready").status, ConditionStatus::True);
    assert_eq!(
        api.events(),
        [event(
            "Normal",
            "LatestReadyUpdate",
            r#"LatestReadyRevisionName updated to "hello-00002""#,
            "hello"
        )]
    );
}

#[tokio::test]
async fn a_latest_ready_revision_that_fails_says_so() {
    let mut config = configuration("hello", 1);
    config["status"] = json!({
        "observedGeneration": 1,
        "latestCreatedRevisionName": "hello-00001",
        "latestReadyRevisionName": "hello-00001",
        "conditions": [{"type": "Ready", "status": "True"}],
    });
    let (api, driver) = setup(config);
    api.seed(&revision("hello", 1, Some("False")));
    reconcile(&api, &driver, "hello").await.unwrap();

    assert_eq!(
        condition(&stored(&api, "hello"), "Ready").status,
        ConditionStatus::False
    );
    assert_eq!(
        api.events(),
        [event(
            "Warning",
            "LatestReadyFailed",
            r#"Latest ready revision "hello-00001" has failed"#,
            "hello"
        )]
    );
}

#[tokio::test]
async fn a_chosen_name_taken_by_another_configuration_is_refused() {
    let mut config = configuration("hello", 1);
    config["spec"]["template"]["metadata"] = json!({"name": "taken"});
    let (api, driver) = setup(config);
    let mut foreign = revision("other", 1, Some("True"));
    foreign.metadata.name = Some("taken".into());
    api.seed(&foreign);

    reconcile(&api, &driver, "hello").await.unwrap();

    assert_eq!(api.creates(), vec![]);
    let message = r#"Revision creation failed with message: revisions.serving.knative.dev "taken" already exists."#;
    let ready = condition(&stored(&api, "hello"), "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("RevisionFailed"));
    assert_eq!(ready.message.as_deref(), Some(message));
    assert_eq!(
        api.events(),
        [event("Warning", "RevisionFailed", message, "hello")]
    );
}

#[tokio::test]
async fn a_chosen_name_of_our_own_older_revision_with_another_spec_is_refused() {
    let mut config = configuration("hello", 2);
    config["spec"]["template"]["metadata"] = json!({"name": "hello-blue"});
    let (api, driver) = setup(config);
    let mut older = revision("hello", 1, Some("True"));
    older.metadata.name = Some("hello-blue".into());
    older.spec.pod_spec.containers[0].image = Some("another-image".into());
    api.seed(&older);

    reconcile(&api, &driver, "hello").await.unwrap();

    assert_eq!(api.creates(), vec![]);
    assert_eq!(
        condition(&stored(&api, "hello"), "Ready").reason.as_deref(),
        Some("RevisionFailed")
    );
}

#[tokio::test]
async fn the_generated_name_taken_by_a_foreign_revision_is_refused() {
    let (api, driver) = setup(configuration("hello", 1));
    let foreign: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "hello-00001", "namespace": NS},
        "spec": {"containers": [{"image": "someone-elses"}]},
    }))
    .unwrap();
    api.seed(&foreign);

    reconcile(&api, &driver, "hello").await.unwrap();

    let ready = condition(&stored(&api, "hello"), "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(
        ready.message.as_deref(),
        Some(
            r#"Revision creation failed with message: revisions.serving.knative.dev "hello-00001" already exists."#
        )
    );
    let failed_create = api
        .actions()
        .into_iter()
        .find(|a| a.verb == Verb::Create && a.resource == "revisions")
        .unwrap();
    assert_eq!(failed_create.code, 409);
}

#[tokio::test]
async fn a_failure_to_create_the_revision_is_reported_and_retried() {
    let (api, driver) = setup(configuration("hello", 1));
    api.fail_next(Verb::Create, "revisions", 500);

    let err = reconcile(&api, &driver, "hello").await.unwrap_err();
    assert!(
        err.to_string().contains("failed to create Revision"),
        "{err}"
    );

    let ready = condition(&stored(&api, "hello"), "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("RevisionFailed"));
    let reasons: Vec<String> = api.events().into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["CreationFailed", "InternalError"]);
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_writes_nothing() {
    let (api, driver) = setup(configuration("hello", 1));
    api.seed(&revision("hello", 1, Some("True")));
    reconcile(&api, &driver, "hello").await.unwrap();
    api.clear_actions();

    reconcile(&api, &driver, "hello").await.unwrap();
    assert_eq!(api.writes(), vec![]);
    assert_eq!(api.events(), vec![]);
}

#[test]
fn the_revision_a_configuration_stamps_passes_revision_validation() {
    use knative_serving::apis::Validate;
    let config: knative_serving::apis::Configuration = serde_json::from_value(serde_json::json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "hello", "namespace": "ns", "uid": "uid-1", "generation": 1},
        "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest"}]}}}
    }))
    .unwrap();
    let revision = knative_serving::reconciler::configuration::make_revision(
        &config,
        k8s_openapi::jiff::Timestamp::now(),
    );
    assert!(
        revision
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("serving.knative.dev/configurationUID"),
        "the label this test is about"
    );
    revision
        .validate()
        .expect("a webhook must accept the Revisions our reconciler creates");
}
