//! Table tests of the PodAutoscaler reconciler against the recording API double: a
//! PodAutoscaler, its Deployment, its revision's pods and the autoscaler's decisions (real KPA
//! deciders fed with stats) in; the Deployment's replicas, the ServerlessService and the status
//! out.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use knative_core::apis::{Condition, ConditionStatus};
use knative_core::config::{Config, ConfigStore};
use knative_core::reconciler::Driver;
use knative_core::testing::RecordingApi;
use knative_serving::apis::networking::v1alpha1::ServerlessServiceOperationMode;
use knative_serving::apis::{PodAutoscaler, ServerlessService};
use knative_serving::autoscaler::AutoscalerRegistry;
use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
use knative_serving::autoscaler::metrics::Stat;
use knative_serving::reconciler::autoscaling::PodAutoscalerReconciler;
use knative_serving::reconciler::autoscaling::resources::HpaVersion;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "default";
const NAME: &str = "hello-00001";
const DEPLOYMENT: &str = "hello-00001-deployment";

fn ago(seconds: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_secs(seconds)
}

/// A PodAutoscaler as the Revision reconciler makes it, with `annotations` and, when given,
/// an `Active` condition of `status` that last changed `since` seconds ago.
fn pod_autoscaler(annotations: Value, active: Option<(&str, i64)>) -> PodAutoscaler {
    let mut annotations = annotations;
    annotations["autoscaling.knative.dev/class"]
        .as_str()
        .is_none()
        .then(|| {
            annotations["autoscaling.knative.dev/class"] = json!("kpa.autoscaling.knative.dev");
        });
    let mut pa = json!({
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "uid-pa",
            "labels": {
                "serving.knative.dev/revision": NAME,
                "serving.knative.dev/service": "hello",
            },
            "annotations": annotations,
        },
        "spec": {
            "containerConcurrency": 0,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
            "protocolType": "http1",
        },
    });
    if let Some((status, since)) = active {
        pa["status"] = json!({
            "observedGeneration": 1,
            "conditions": [{
                "type": "Active",
                "status": status,
                "lastTransitionTime": ago(since).to_string(),
            }],
        });
        if status == "False" {
            // As Knative marks it, so that the reconciler keeps the transition time.
            pa["status"]["conditions"][0]["reason"] = json!("NoTraffic");
            pa["status"]["conditions"][0]["message"] =
                json!("The target is not receiving traffic.");
        }
    }
    serde_json::from_value(pa).expect("a PodAutoscaler")
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"serving.knative.dev/revision": NAME}},
            "template": {"spec": {"containers": [{"name": "user-container", "image": "img"}]}},
        },
    }))
    .expect("a Deployment")
}

fn ready_pod(n: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{DEPLOYMENT}-{n}"),
            "namespace": NS,
            "labels": {"serving.knative.dev/revision": NAME},
        },
        "spec": {"containers": [{"name": "user-container", "image": "img"}]},
        "status": {
            "podIP": format!("10.0.0.{n}"),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .expect("a Pod")
}

fn sks(mode: &str, owner_uid: &str) -> ServerlessService {
    serde_json::from_value(json!({
        "apiVersion": "networking.internal.knative.dev/v1alpha1",
        "kind": "ServerlessService",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "ownerReferences": [{
                "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
                "kind": "PodAutoscaler",
                "name": NAME,
                "uid": owner_uid,
                "controller": true,
            }],
        },
        "spec": {
            "mode": mode,
            "objectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
            "protocolType": "http1",
        },
    }))
    .expect("a ServerlessService")
}

struct Row {
    api: RecordingApi,
    deciders: Deciders,
    driver: Driver<PodAutoscaler, PodAutoscalerReconciler>,
}

impl Row {
    fn new(pa: &PodAutoscaler, config: Config) -> Self {
        let api = RecordingApi::new();
        api.seed(pa);
        api.seed(&deployment(1));
        let deciders = Deciders::new(AutoscalerRegistry::default());
        let reconciler =
            PodAutoscalerReconciler::new(deciders.clone()).with_hpa_version(HpaVersion::V2beta2);
        let driver =
            Driver::new(api.client(), reconciler).with_config(ConfigStore::from_static(config));
        Self {
            api,
            deciders,
            driver,
        }
    }

    fn with_pods(self, n: usize) -> Self {
        for i in 1..=n {
            self.api.seed(&ready_pod(i));
        }
        self
    }

    async fn reconcile(&self) -> Action {
        let pa: PodAutoscaler = self.api.get(NS, NAME).expect("stored PodAutoscaler");
        self.driver
            .reconcile(Arc::new(pa))
            .await
            .expect("reconcile")
    }

    /// The revision's decider sees `concurrency` requests in flight now, and decides.
    async fn decide_with(&self, concurrency: f64) {
        let key = RevisionKey::new(NS, NAME);
        let now = Timestamp::now();
        assert!(
            self.deciders
                .record(&key, now, &Stat::concurrency(concurrency))
                .await
        );
        self.deciders.tick(now).await;
    }

    fn replicas(&self) -> i32 {
        self.api
            .get::<Deployment>(NS, DEPLOYMENT)
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            .expect("replicas")
    }

    fn sks(&self) -> ServerlessService {
        self.api.get(NS, NAME).expect("stored ServerlessService")
    }

    fn pa(&self) -> PodAutoscaler {
        self.api.get(NS, NAME).expect("stored PodAutoscaler")
    }

    fn condition(&self, t: &str) -> Condition {
        self.pa()
            .status
            .and_then(|s| s.status.conditions.into_iter().find(|c| c.type_ == t))
            .unwrap_or_else(|| panic!("no condition {t}"))
    }

    fn scale_patches(&self) -> Vec<Value> {
        self.api
            .patches()
            .into_iter()
            .filter(|a| a.resource == "deployments")
            .filter_map(|a| a.body)
            .collect()
    }
}

/// The delay of a requeue, in seconds (kube's `Action` shows it only through `Debug`).
fn requeue_after(action: &Action) -> Option<f64> {
    let debug = format!("{action:?}");
    let inner = debug.split("Some(").nth(1)?.split(')').next()?;
    inner.strip_suffix('s')?.parse().ok()
}

#[tokio::test]
async fn a_new_pod_autoscaler_scales_its_deployment_to_min_scale() {
    let row = Row::new(
        &pod_autoscaler(json!({"autoscaling.knative.dev/min-scale": "3"}), None),
        Config::default(),
    );
    row.reconcile().await;
    assert_eq!(row.scale_patches(), [json!({"spec": {"replicas": 3}})]);
    assert_eq!(row.replicas(), 3);
    let status = row.pa().status.expect("status");
    assert_eq!(
        (status.desired_scale, status.actual_scale),
        (Some(3), Some(0))
    );
    let active = row.condition("Active");
    assert_eq!(active.status, ConditionStatus::Unknown);
    assert_eq!(active.reason.as_deref(), Some("Queued"));
}

#[tokio::test]
async fn the_sks_is_created_with_knatives_labels_and_owner() {
    let row = Row::new(&pod_autoscaler(json!({}), None), Config::default());
    row.reconcile().await;
    let sks = row.sks();
    assert_eq!(
        sks.metadata.labels.as_ref().unwrap()["serving.knative.dev/revision"],
        NAME
    );
    let owner = &sks.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("PodAutoscaler", NAME, "uid-pa", Some(true))
    );
    assert_eq!(
        sks.spec.object_ref.name.as_deref(),
        Some(DEPLOYMENT),
        "the SKS fronts the scale target"
    );
    // No capacity yet: the activator is in the path, enough activators for the burst capacity.
    assert_eq!(sks.spec.mode, Some(ServerlessServiceOperationMode::Proxy));
    assert_eq!(sks.spec.num_activators, Some(3));
}

#[tokio::test]
async fn load_scales_the_deployment_up_to_the_decision() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("True", 300))),
        Config::default(),
    )
    .with_pods(1);
    row.reconcile().await;
    // 350 requests in flight, 70 per pod.
    row.decide_with(350.0).await;
    row.reconcile().await;
    assert_eq!(row.replicas(), 5);
    let status = row.pa().status.unwrap();
    assert_eq!(
        (status.desired_scale, status.actual_scale),
        (Some(5), Some(1))
    );
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Proxy),
        "100 − 211 − 350 < 0: the activator buffers the burst"
    );
}

#[tokio::test]
async fn max_scale_caps_the_deployment() {
    let row = Row::new(
        &pod_autoscaler(
            json!({"autoscaling.knative.dev/max-scale": "2"}),
            Some(("True", 300)),
        ),
        Config::default(),
    )
    .with_pods(1);
    row.reconcile().await;
    row.decide_with(350.0).await;
    row.reconcile().await;
    assert_eq!(row.replicas(), 2);
}

#[tokio::test]
async fn spare_capacity_takes_the_activator_out_of_the_path() {
    let row = Row::new(
        &pod_autoscaler(
            json!({"autoscaling.knative.dev/target-burst-capacity": "0"}),
            Some(("True", 300)),
        ),
        Config::default(),
    )
    .with_pods(1);
    row.reconcile().await;
    row.decide_with(10.0).await;
    row.reconcile().await;
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Serve)
    );
    assert_eq!(row.condition("Active").status, ConditionStatus::True);
    assert!(row.scale_patches().is_empty(), "one pod is what it has");
}

#[tokio::test]
async fn activators_follow_the_revisions_capacity() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("True", 300))),
        Config::default(),
    )
    .with_pods(10);
    row.reconcile().await;
    // 10 pods × 100 + 211 burst capacity, 100 per activator.
    assert_eq!(row.sks().spec.num_activators, Some(13));
}

#[tokio::test]
async fn an_idle_active_revision_keeps_one_pod_until_a_stable_window_passed() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("True", 10))),
        Config::default(),
    )
    .with_pods(1);
    row.api.seed(&deployment(4));
    row.reconcile().await;
    row.decide_with(0.0).await;
    let action = row.reconcile().await;
    assert_eq!(row.replicas(), 1);
    let requeue = requeue_after(&action).expect("a requeue");
    assert!(
        (49.0..=50.0).contains(&requeue),
        "looks again when the stable window ends: {action:?}"
    );
}

#[tokio::test]
async fn an_idle_revision_turns_inactive_after_a_stable_window() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("True", 120))),
        Config::default(),
    )
    .with_pods(1);
    row.reconcile().await;
    row.decide_with(0.0).await;
    row.reconcile().await;
    assert!(row.scale_patches().is_empty(), "not scaled yet");
    let active = row.condition("Active");
    assert_eq!(active.status, ConditionStatus::False);
    assert_eq!(active.reason.as_deref(), Some("NoTraffic"));
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Proxy)
    );
    assert_eq!(row.pa().status.unwrap().desired_scale, Some(0));
}

#[tokio::test]
async fn an_inactive_revision_behind_the_activator_scales_to_zero_after_the_grace_period() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("False", 120))),
        Config::default(),
    );
    row.api.seed(&sks("Proxy", "uid-pa"));
    row.reconcile().await;
    row.decide_with(0.0).await;
    row.reconcile().await;
    assert_eq!(row.replicas(), 0);
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Proxy)
    );
}

#[tokio::test]
async fn the_grace_period_holds_the_last_pod() {
    let row = Row::new(
        &pod_autoscaler(json!({}), Some(("False", 5))),
        Config::default(),
    );
    row.api.seed(&sks("Proxy", "uid-pa"));
    row.reconcile().await;
    row.decide_with(0.0).await;
    let action = row.reconcile().await;
    assert_eq!(row.replicas(), 1);
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(30)),
        "the grace period, with no proxying reported yet"
    );
}

#[tokio::test]
async fn without_scale_to_zero_an_idle_revision_keeps_one_pod() {
    let mut config = Config::default();
    config.autoscaler.enable_scale_to_zero = false;
    let row = Row::new(&pod_autoscaler(json!({}), Some(("False", 600))), config);
    row.api.seed(&sks("Proxy", "uid-pa"));
    row.api.seed(&deployment(3));
    row.reconcile().await;
    row.decide_with(0.0).await;
    row.reconcile().await;
    assert_eq!(row.replicas(), 1);
}

#[tokio::test]
async fn an_sks_owned_by_another_is_refused() {
    let row = Row::new(&pod_autoscaler(json!({}), None), Config::default());
    row.api.seed(&sks("Serve", "uid-someone-else"));
    row.reconcile().await;
    let ready = row.condition("Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("NotOwned"));
    assert!(row.api.creates().is_empty());
    assert!(row.api.updates().is_empty());
}

#[tokio::test]
async fn a_changed_mode_updates_the_sks() {
    let row = Row::new(
        &pod_autoscaler(
            json!({"autoscaling.knative.dev/target-burst-capacity": "0"}),
            Some(("True", 300)),
        ),
        Config::default(),
    )
    .with_pods(1);
    row.api.seed(&sks("Proxy", "uid-pa"));
    row.reconcile().await;
    let updates = row.api.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].resource, "serverlessservices");
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Serve)
    );
}

#[tokio::test]
async fn a_pod_autoscaler_of_another_class_is_left_alone() {
    let row = Row::new(
        &pod_autoscaler(
            json!({"autoscaling.knative.dev/class": "elsewhere.example.com"}),
            None,
        ),
        Config::default(),
    );
    row.reconcile().await;
    // Not even its status: the controller serving that class writes it (Knative's class filter).
    assert_eq!(row.api.writes(), []);
    assert!(row.deciders.revisions().await.is_empty());
}

#[tokio::test]
async fn the_hpa_class_creates_a_horizontal_pod_autoscaler() {
    let row = Row::new(
        &pod_autoscaler(
            json!({
                "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
                "autoscaling.knative.dev/metric": "cpu",
                "autoscaling.knative.dev/target": "80",
                "autoscaling.knative.dev/min-scale": "1",
                "autoscaling.knative.dev/max-scale": "10",
            }),
            None,
        ),
        Config::default(),
    );
    row.reconcile().await;
    let hpa = row
        .api
        .creates()
        .into_iter()
        .find(|a| a.resource == "horizontalpodautoscalers")
        .expect("an HPA created");
    let hpa: DynamicObject = hpa.object();
    assert_eq!(
        hpa.types.as_ref().map(|t| t.api_version.as_str()),
        Some("autoscaling/v2beta2")
    );
    assert_eq!(hpa.data["spec"]["minReplicas"], 1);
    assert_eq!(hpa.data["spec"]["maxReplicas"], 10);
    assert_eq!(
        hpa.data["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(
        row.sks().spec.mode,
        Some(ServerlessServiceOperationMode::Serve)
    );
    assert_eq!(row.sks().spec.num_activators, None, "all activators");
    assert_eq!(row.condition("Active").status, ConditionStatus::True);
    assert!(row.scale_patches().is_empty(), "the HPA scales, not us");
    assert!(row.deciders.revisions().await.is_empty());
}
