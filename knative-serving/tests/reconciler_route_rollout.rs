//! Table tests of the Route reconciler's gradual rollout on the recording API double: a Route
//! following Configuration `c` at 100% on `c-00001`, whose latest ready Revision becomes
//! `c-00002` while a rollout duration is set. The reconciler's rollout clock is set by the test
//! so that each pass happens at a chosen time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use knative_core::apis::ConditionStatus;
use knative_core::config::{Config, ConfigMapConfig, ConfigStore, NetworkConfig};
use knative_core::reconciler::Driver;
use knative_core::testing::RecordingApi;
use knative_serving::apis::{Configuration, Ingress, Revision, Route};
use knative_serving::reconciler::route::{ROLLOUT_IN_PROGRESS_MESSAGE, RouteReconciler};
use knative_serving::traffic::rollout::{ROLLOUT_ANNOTATION_KEY, Rollout};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "ns";
/// When the test starts, in Unix seconds.
const T0: i64 = 1_700_000_000;

/// A Route, a Driver whose reconciler reads the rollout time from `clock`, and that clock.
struct Fixture {
    api: RecordingApi,
    driver: Driver<Route, RouteReconciler>,
    clock: Arc<Mutex<Timestamp>>,
}

fn route(annotations: Value) -> Route {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": {"name": "r", "namespace": NS, "uid": "uid-r", "generation": 1,
                     "annotations": annotations},
        "spec": {"traffic": [{"configurationName": "c", "latestRevision": true, "percent": 100}]},
    }))
    .unwrap()
}

fn configuration(latest_ready: &str) -> Configuration {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "c", "namespace": NS, "uid": "uid-c"},
        "spec": {},
        "status": {"latestReadyRevisionName": latest_ready, "latestCreatedRevisionName": latest_ready,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

fn revision(name: &str) -> Revision {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"serving.knative.dev/configuration": "c"}},
        "spec": {"containers": [{"image": "img"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

fn network(rollout_duration: &str) -> Config {
    let data = BTreeMap::from([("rollout-duration".to_owned(), rollout_duration.to_owned())]);
    Config {
        network: NetworkConfig::from_data(&data).unwrap(),
        ..Config::default()
    }
}

/// The Route on `c-00001`, its Ingress created and ready, at [`T0`].
async fn steady_on_the_first_revision(config: Config, annotations: Value) -> Fixture {
    let api = RecordingApi::new();
    api.seed(&route(annotations));
    api.seed(&configuration("c-00001"));
    api.seed(&revision("c-00001"));
    api.seed(&revision("c-00002"));
    let clock = Arc::new(Mutex::new(at(T0)));
    let reconciler = {
        let clock = clock.clone();
        RouteReconciler::new().with_clock(move || *clock.lock().unwrap())
    };
    let driver =
        Driver::new(api.client(), reconciler).with_config(ConfigStore::from_static(config));
    let f = Fixture { api, driver, clock };
    reconcile_at(&f, T0).await;
    ingress_ready(&f.api);
    assert_eq!(reconcile_at(&f, T0).await, Action::await_change());
    assert_eq!(splits(&f.api), [("c-00001".to_owned(), 100)]);
    f
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

async fn reconcile_at(f: &Fixture, secs: i64) -> Action {
    *f.clock.lock().unwrap() = at(secs);
    let obj = f.api.get::<Route>(NS, "r").expect("route");
    f.driver.reconcile(Arc::new(obj)).await.expect("reconcile")
}

/// `c-00002` becomes the Configuration's latest ready Revision.
fn second_revision_ready(api: &RecordingApi) {
    api.seed(&configuration("c-00002"));
}

fn ingress(api: &RecordingApi) -> Ingress {
    api.get::<Ingress>(NS, "r").expect("ingress")
}

/// The ingress controller has programmed the Ingress' current generation.
fn ingress_ready(api: &RecordingApi) {
    let mut ing = ingress(api);
    ing.status = Some(
        serde_json::from_value(json!({
            "observedGeneration": ing.metadata.generation,
            "conditions": [{"type": "Ready", "status": "True"}],
        }))
        .unwrap(),
    );
    api.seed(&ing);
}

/// The splits of the Ingress' first rule, as (revision, percent).
fn splits(api: &RecordingApi) -> Vec<(String, i64)> {
    let ing = ingress(api);
    let rules = &ing.spec.rules;
    let all: Vec<Vec<(String, i64)>> = rules
        .iter()
        .map(|rule| {
            rule.http.as_ref().unwrap().paths[0]
                .splits
                .iter()
                .map(|s| {
                    (
                        s.backend.service_name.clone(),
                        i64::from(s.percent.unwrap_or(0)),
                    )
                })
                .collect()
        })
        .collect();
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "the rules disagree: {all:?}"
    );
    all.into_iter().next().unwrap_or_default()
}

fn rollout_state(api: &RecordingApi) -> Rollout {
    let ing = ingress(api);
    let annotation = ing
        .metadata
        .annotations
        .unwrap_or_default()
        .get(ROLLOUT_ANNOTATION_KEY)
        .cloned()
        .expect("rollout annotation");
    Rollout::parse(&annotation).expect("a valid rollout")
}

fn stored(api: &RecordingApi) -> Route {
    api.get::<Route>(NS, "r").expect("route")
}

fn ingress_ready_condition(route: &Route) -> (ConditionStatus, Option<String>, Option<String>) {
    let c = route
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition("IngressReady"))
        .cloned()
        .expect("IngressReady");
    (c.status, c.reason, c.message)
}

fn status_traffic(route: &Route) -> Vec<(String, i64)> {
    route
        .status
        .as_ref()
        .unwrap()
        .route
        .traffic
        .iter()
        .map(|t| {
            (
                t.revision_name.clone().unwrap_or_default(),
                t.percent.unwrap_or(0),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

fn routing_state(api: &RecordingApi, revision: &str) -> Option<String> {
    api.get::<Revision>(NS, revision)
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default()
        .get("serving.knative.dev/routingState")
        .cloned()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_revision_first_gets_one_percent_and_the_state_is_kept_on_the_ingress() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    second_revision_ready(&f.api);

    let action = reconcile_at(&f, T0 + 10).await;

    assert_eq!(splits(&f.api), pairs(&[("c-00001", 99), ("c-00002", 1)]));
    let state = rollout_state(&f.api);
    assert_eq!(
        serde_json::to_value(&state).unwrap(),
        json!({"configurations": [{
            "configurationName": "c", "percent": 100,
            "revisions": [{"revisionName": "c-00001", "percent": 99},
                          {"revisionName": "c-00002", "percent": 1}],
            "stepParams": {"starttime": (T0 + 10) * 1_000_000_000_i64},
        }]})
    );
    // The step duration is only known once the Ingress has programmed the first 1%; its
    // update reconciles the Route again.
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn while_the_rollout_runs_the_route_says_so_and_shows_both_revisions() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;

    let route = stored(&f.api);
    assert_eq!(
        ingress_ready_condition(&route),
        (
            ConditionStatus::Unknown,
            Some("RolloutInProgress".to_owned()),
            Some(ROLLOUT_IN_PROGRESS_MESSAGE.to_owned())
        )
    );
    assert_eq!(
        status_traffic(&route),
        pairs(&[("c-00001", 99), ("c-00002", 1)])
    );
    assert!(
        route.status.as_ref().unwrap().route.traffic[0].latest_revision == Some(true),
        "both entries follow the Configuration"
    );
    // The old Revision still serves traffic, so it stays routed.
    assert_eq!(routing_state(&f.api, "c-00001").as_deref(), Some("active"));
    assert_eq!(routing_state(&f.api, "c-00002").as_deref(), Some("active"));
}

#[tokio::test]
async fn once_the_ingress_programmed_the_first_percent_the_next_step_is_scheduled() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);

    // The first 1% took a second: the other 59s go in steps of 2% every second.
    let action = reconcile_at(&f, T0 + 11).await;

    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    assert_eq!(splits(&f.api), pairs(&[("c-00001", 99), ("c-00002", 1)]));
    let params = &rollout_state(&f.api).configurations[0].step_params;
    assert_eq!(
        (
            params.step_size,
            params.step_duration,
            params.next_step_time
        ),
        (2, 1_000_000_000, (T0 + 12) * 1_000_000_000)
    );
}

#[tokio::test]
async fn each_due_step_moves_more_traffic_and_asks_for_the_next() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);
    reconcile_at(&f, T0 + 11).await;

    assert_eq!(
        reconcile_at(&f, T0 + 12).await,
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(splits(&f.api), pairs(&[("c-00001", 97), ("c-00002", 3)]));

    // A pass before the step is due changes nothing and waits for the rest of the step.
    f.api.clear_actions();
    *f.clock.lock().unwrap() = Timestamp::from_millisecond((T0 + 12) * 1000 + 400).unwrap();
    let obj = stored(&f.api);
    let action = f.driver.reconcile(Arc::new(obj)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_millis(600)));
    assert!(f.api.updates().is_empty(), "{:?}", f.api.updates());

    // A late pass takes one step, and schedules the next one step from now.
    assert_eq!(
        reconcile_at(&f, T0 + 30).await,
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(splits(&f.api), pairs(&[("c-00001", 95), ("c-00002", 5)]));
    assert_eq!(
        status_traffic(&stored(&f.api)),
        pairs(&[("c-00001", 95), ("c-00002", 5)])
    );
}

#[tokio::test]
async fn at_the_end_the_new_revision_has_all_traffic_and_the_route_is_ready_again() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);
    let mut action = reconcile_at(&f, T0 + 11).await;

    // Follow the requeues, the Ingress programming each step before the next is due.
    let mut now = T0 + 11;
    let mut passes = 0;
    let mut last_share = 1;
    while let Some(delay) = requeue_delay(&action) {
        now += i64::try_from(delay.as_secs()).unwrap();
        action = reconcile_at(&f, now).await;
        ingress_ready(&f.api);
        let share = splits(&f.api).last().unwrap().1;
        assert!(share > last_share, "no progress at {now}: {share}%");
        last_share = share;
        passes += 1;
        assert!(passes <= 60, "still rolling after {passes} steps");
    }

    assert_eq!(splits(&f.api), pairs(&[("c-00002", 100)]));
    assert!(now <= T0 + 10 + 60, "took until T0+{}s", now - T0);
    assert_eq!(
        serde_json::to_value(rollout_state(&f.api)).unwrap(),
        json!({"configurations": [{
            "configurationName": "c", "percent": 100,
            "revisions": [{"revisionName": "c-00002", "percent": 100}],
            "stepParams": {},
        }]})
    );
    assert_eq!(action, Action::await_change());
    // With the last step programmed, the Route is ready on the new Revision alone.
    reconcile_at(&f, now + 1).await;
    let route = stored(&f.api);
    assert_eq!(ingress_ready_condition(&route).0, ConditionStatus::True);
    assert_eq!(status_traffic(&route), pairs(&[("c-00002", 100)]));
    assert_eq!(routing_state(&f.api, "c-00001").as_deref(), Some("reserve"));
}

#[tokio::test]
async fn a_finished_rollout_writes_nothing_more() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    f.api.clear_actions();

    assert_eq!(reconcile_at(&f, T0 + 3600).await, Action::await_change());

    assert!(f.api.writes().is_empty(), "{:?}", f.api.writes());
    assert_eq!(
        rollout_state(&f.api),
        Rollout::parse(
            r#"{"configurations":[{"configurationName":"c","percent":100,
                "revisions":[{"revisionName":"c-00001","percent":100}]}]}"#
        )
        .unwrap()
    );
}

#[tokio::test]
async fn the_routes_rollout_duration_annotation_turns_rollout_on() {
    let f = steady_on_the_first_revision(
        Config::default(),
        json!({"serving.knative.dev/rollout-duration": "2m"}),
    )
    .await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);

    // The first 1% took 2s: the other 118s go in 59 steps of 2% every 2s.
    assert_eq!(
        reconcile_at(&f, T0 + 12).await,
        Action::requeue(Duration::from_secs(2))
    );
    assert_eq!(splits(&f.api), pairs(&[("c-00001", 99), ("c-00002", 1)]));
}

#[tokio::test]
async fn the_routes_annotation_overrides_config_network() {
    let f = steady_on_the_first_revision(
        network("600"),
        json!({"serving.knative.dev/rollout-duration": "60s"}),
    )
    .await;
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);

    assert_eq!(
        reconcile_at(&f, T0 + 11).await,
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn without_a_rollout_duration_a_new_revision_takes_all_traffic_at_once() {
    let f = steady_on_the_first_revision(Config::default(), json!({})).await;
    second_revision_ready(&f.api);

    assert_eq!(reconcile_at(&f, T0 + 10).await, Action::await_change());

    assert_eq!(splits(&f.api), pairs(&[("c-00002", 100)]));
    assert!(
        !ingress(&f.api)
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(ROLLOUT_ANNOTATION_KEY)
    );
}

#[tokio::test]
async fn an_unreadable_rollout_state_is_replaced_by_the_goal() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    let mut ing = ingress(&f.api);
    ing.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ROLLOUT_ANNOTATION_KEY.to_owned(), "{not json".to_owned());
    f.api.seed(&ing);
    second_revision_ready(&f.api);

    assert_eq!(reconcile_at(&f, T0 + 10).await, Action::await_change());

    assert_eq!(splits(&f.api), pairs(&[("c-00002", 100)]));
    assert_eq!(
        rollout_state(&f.api).configurations[0].revisions[0].revision_name,
        "c-00002"
    );
}

#[tokio::test]
async fn a_third_revision_mid_rollout_keeps_the_older_ones_and_starts_again() {
    let f = steady_on_the_first_revision(network("60"), json!({})).await;
    f.api.seed(&revision("c-00003"));
    second_revision_ready(&f.api);
    reconcile_at(&f, T0 + 10).await;
    ingress_ready(&f.api);
    reconcile_at(&f, T0 + 11).await;
    reconcile_at(&f, T0 + 12).await;
    assert_eq!(splits(&f.api), pairs(&[("c-00001", 97), ("c-00002", 3)]));

    f.api.seed(&configuration("c-00003"));
    assert_eq!(reconcile_at(&f, T0 + 13).await, Action::await_change());

    assert_eq!(
        splits(&f.api),
        pairs(&[("c-00001", 97), ("c-00002", 2), ("c-00003", 1)])
    );
    let state = rollout_state(&f.api);
    assert_eq!(
        state.configurations[0].step_params.start_time,
        (T0 + 13) * 1_000_000_000
    );
    assert_eq!(state.configurations[0].step_params.step_size, 0);
}

fn requeue_delay(action: &Action) -> Option<Duration> {
    // `Action` exposes no accessor: compare against the requeues a rollout asks for.
    (1..=120)
        .map(Duration::from_secs)
        .find(|d| *action == Action::requeue(*d))
}
