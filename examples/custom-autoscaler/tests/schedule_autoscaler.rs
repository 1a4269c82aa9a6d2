//! The schedule autoscaler plugged into knative-serving: selected by
//! `autoscaling.knative.dev/class` through the registry, deciding inside the shared deciders as
//! designed, and carried by the PodAutoscaler reconciler to a Deployment's replicas.

use std::collections::BTreeMap;
use std::sync::Arc;

use custom_autoscaler::{SCHEDULE_CLASS, WINDOWS_ANNOTATION_KEY, registry};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use knative_core::config::AutoscalerConfig;
use knative_core::reconciler::Driver;
use knative_core::testing::RecordingApi;
use knative_serving::apis::PodAutoscaler;
use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
use knative_serving::autoscaler::metrics::Stat;
use knative_serving::autoscaler::{AutoscalerError, AutoscalerParams};
use knative_serving::reconciler::autoscaling::PodAutoscalerReconciler;
use serde_json::json;

/// Monday 2024-01-01 at `hh:mm` UTC.
fn monday(time: &str) -> Timestamp {
    format!("2024-01-01T{time}:00Z").parse().unwrap()
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn scheduled(windows: &str, target: &str) -> BTreeMap<String, String> {
    annotations(&[
        ("autoscaling.knative.dev/class", SCHEDULE_CLASS),
        (WINDOWS_ANNOTATION_KEY, windows),
        ("autoscaling.knative.dev/target", target),
    ])
}

/// The desired scale of a revision with `annotations` seeing `concurrency` in flight at `now`,
/// decided by the deciders every platform runs.
async fn decide(
    annotations: &BTreeMap<String, String>,
    now: Timestamp,
    concurrency: f64,
) -> Result<i32, AutoscalerError> {
    let deciders = Deciders::new(registry());
    let key = RevisionKey::new("default", "hello-00001");
    let config = AutoscalerConfig::default();
    deciders
        .reconcile(&key, &AutoscalerParams::new(annotations, &config, now))
        .await?;
    deciders
        .record(&key, now, &Stat::concurrency(concurrency))
        .await;
    deciders.tick(now).await;
    Ok(deciders.status(&key).await.unwrap().desired_scale)
}

#[tokio::test]
async fn the_class_annotation_selects_the_schedule_autoscaler_over_the_kpa() {
    let windows = "Mon-Fri 08:00-18:00=5";
    let mut kpa = scheduled(windows, "50");
    kpa.insert(
        "autoscaling.knative.dev/class".to_owned(),
        "kpa.autoscaling.knative.dev".to_owned(),
    );
    // Idle in office hours: the schedule keeps five pods, the KPA none.
    assert_eq!(
        decide(&scheduled(windows, "50"), monday("09:00"), 0.0).await,
        Ok(5)
    );
    assert_eq!(decide(&kpa, monday("09:00"), 0.0).await, Ok(0));
}

#[tokio::test]
async fn outside_its_windows_it_follows_load_at_the_target() {
    let annotations = scheduled("Mon-Fri 08:00-18:00=5", "50");
    assert_eq!(decide(&annotations, monday("20:00"), 120.0).await, Ok(3));
    assert_eq!(
        decide(&annotations, monday("18:00"), 120.0).await,
        Ok(3),
        "windows end exclusive"
    );
}

#[tokio::test]
async fn idle_outside_its_windows_it_scales_to_zero() {
    let annotations = scheduled("Mon-Fri 08:00-18:00=5", "50");
    assert_eq!(decide(&annotations, monday("07:59"), 0.0).await, Ok(0));
    let saturday: Timestamp = "2024-01-06T12:00:00Z".parse().unwrap();
    assert_eq!(decide(&annotations, saturday, 0.0).await, Ok(0));
}

#[tokio::test]
async fn load_beyond_the_schedule_adds_pods() {
    let annotations = scheduled("Mon-Fri 08:00-18:00=5", "100");
    assert_eq!(decide(&annotations, monday("12:00"), 650.0).await, Ok(7));
}

#[tokio::test]
async fn overlapping_windows_take_the_largest() {
    let annotations = scheduled("* 00:00-24:00=1, Mon 11:00-13:00=8", "100");
    assert_eq!(decide(&annotations, monday("12:30"), 0.0).await, Ok(8));
    assert_eq!(decide(&annotations, monday("03:00"), 0.0).await, Ok(1));
}

#[tokio::test]
async fn a_bad_schedule_is_refused_with_the_window_at_fault() {
    let err = decide(
        &scheduled("Mon-Fri 08:00-18:00=5, Sun 9-17=2", "50"),
        monday("09:00"),
        0.0,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "autoscaler class \"schedule.autoscaling.example.com\": schedule.autoscaling.example.com/windows: window 1 (\"Sun 9-17=2\"): \"9\" is not HH:MM"
    );
    let err = decide(&scheduled("", "zero"), monday("09:00"), 0.0)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("\"zero\" is not a positive number"),
        "{err}"
    );
}

#[tokio::test]
async fn a_changed_schedule_applies_at_once() {
    let deciders = Deciders::new(registry());
    let key = RevisionKey::new("default", "hello-00001");
    let config = AutoscalerConfig::default();
    let now = monday("09:00");
    let before = scheduled("Mon 08:00-18:00=5", "50");
    let after = scheduled("Mon 08:00-18:00=2", "50");
    deciders
        .reconcile(&key, &AutoscalerParams::new(&before, &config, now))
        .await
        .unwrap();
    deciders.tick(now).await;
    assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 5);
    deciders
        .reconcile(&key, &AutoscalerParams::new(&after, &config, now))
        .await
        .unwrap();
    deciders.tick(now).await;
    assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 2);
}

#[tokio::test]
async fn the_pod_autoscaler_reconciler_scales_a_deployment_by_schedule() {
    let api = RecordingApi::new();
    let pa: PodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {
            "name": "hello-00001",
            "namespace": "default",
            "labels": {"serving.knative.dev/revision": "hello-00001"},
            // Always open, whatever the wall clock says when the test runs.
            "annotations": scheduled("* 00:00-24:00=4", "100"),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello-00001-deployment"},
            "protocolType": "http1",
        },
    }))
    .unwrap();
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello-00001-deployment", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"serving.knative.dev/revision": "hello-00001"}},
            "template": {"spec": {"containers": [{"name": "user-container", "image": "img"}]}},
        },
    }))
    .unwrap();
    api.seed(&pa);
    api.seed(&deployment);
    let deciders = Deciders::new(registry());
    let driver = Driver::new(api.client(), PodAutoscalerReconciler::new(deciders.clone()));
    let reconcile = || async {
        let pa: PodAutoscaler = api.get("default", "hello-00001").unwrap();
        driver.reconcile(Arc::new(pa)).await.unwrap();
    };

    reconcile().await;
    let key = RevisionKey::new("default", "hello-00001");
    assert_eq!(deciders.tick(Timestamp::now()).await, [key]);
    reconcile().await;

    let replicas = api
        .get::<Deployment>("default", "hello-00001-deployment")
        .and_then(|d| d.spec)
        .and_then(|s| s.replicas);
    assert_eq!(replicas, Some(4));
    let status = api
        .get::<PodAutoscaler>("default", "hello-00001")
        .and_then(|pa| pa.status)
        .unwrap();
    assert_eq!(status.desired_scale, Some(4));
}
