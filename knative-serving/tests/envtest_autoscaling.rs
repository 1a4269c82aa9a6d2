//! The PodAutoscaler reconciler against a real kube-apiserver 1.20 (see `scripts/envtest.sh`;
//! no kubelet, so pods never become ready): Knative's CRDs are installed, the driver watches one
//! namespace per test with real KPA deciders, and what it writes is read back from the server.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use knative_core::reconciler::{Caches, Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::networking::v1alpha1::ServerlessServiceOperationMode;
use knative_serving::apis::{PodAutoscaler, ServerlessService};
use knative_serving::autoscaler::AutoscalerRegistry;
use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
use knative_serving::autoscaler::metrics::Stat;
use knative_serving::reconciler::autoscaling::resources::HpaVersion;
use knative_serving::reconciler::autoscaling::{
    PodAutoscalerReconciler, discover_hpa_version, watch_children,
};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

const NAME: &str = "hello-00001";
const DEPLOYMENT: &str = "hello-00001-deployment";

/// A client, with Knative Serving's CRDs installed and established (once per test binary).
async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-envtest").force();
        let crds = knative_serving::crds();
        for crd in &crds {
            api.patch(&crd.name_any(), &params, &Patch::Apply(crd))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", crd.name_any()));
        }
        for crd in &crds {
            let name = crd.name_any();
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
            .unwrap();
        }
    })
    .await;
    client
}

/// The PodAutoscaler driver, watching only `namespace`, deciding with `deciders`.
fn run_driver(client: &Client, namespace: &str, deciders: &Deciders) -> JoinHandle<()> {
    let options = DriverOptions {
        namespace: Some(namespace.to_owned()),
        ..DriverOptions::for_kind::<PodAutoscaler>()
    };
    let driver = Driver::with_options(
        client.clone(),
        PodAutoscalerReconciler::new(deciders.clone()),
        options,
    );
    let caches = Caches::new(client.clone(), Some(namespace.to_owned()));
    let driver = driver.with_caches(caches.clone());
    let deciders = deciders.clone();
    tokio::spawn(async move {
        driver
            .run_with(move |c| watch_children(c, &caches, &deciders))
            .await
            .expect("driver");
    })
}

async fn create_deployment(client: &Client, namespace: &str, replicas: i32) {
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"serving.knative.dev/revision": NAME}},
            "template": {
                "metadata": {"labels": {"serving.knative.dev/revision": NAME}},
                "spec": {"containers": [{"name": "user-container", "image": "ghcr.io/knative/helloworld-go:latest"}]},
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
}

async fn create_pod_autoscaler(
    client: &Client,
    namespace: &str,
    annotations: serde_json::Value,
) -> PodAutoscaler {
    let pa: PodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {
            "name": NAME,
            "labels": {"serving.knative.dev/revision": NAME},
            "annotations": annotations,
        },
        "spec": {
            "containerConcurrency": 0,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
            "protocolType": "http1",
        },
    }))
    .unwrap();
    Api::<PodAutoscaler>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pa)
        .await
        .expect("create PodAutoscaler")
}

/// Polls `check` every 100 ms until it returns `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replicas(client: &Client, namespace: &str) -> Option<i32> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(DEPLOYMENT)
        .await
        .ok()
        .and_then(|d| d.spec)
        .and_then(|s| s.replicas)
}

#[tokio::test]
async fn min_scale_is_written_to_the_deployment_and_the_status() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "pa-min").await;
    let deciders = Deciders::new(AutoscalerRegistry::default());
    create_deployment(&client, &ns.name, 1).await;
    create_pod_autoscaler(
        &client,
        &ns.name,
        json!({"autoscaling.knative.dev/min-scale": "3"}),
    )
    .await;
    let driver = run_driver(&client, &ns.name, &deciders);

    eventually("replicas 3", || async {
        (replicas(&client, &ns.name).await == Some(3)).then_some(())
    })
    .await;
    let pas = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    let status = eventually("a status", || async {
        pas.get(NAME).await.ok().and_then(|pa| pa.status)
    })
    .await;
    assert_eq!(status.desired_scale, Some(3));
    assert_eq!(
        status.actual_scale,
        Some(0),
        "no kubelet: no pod ever gets ready"
    );
    let active = status
        .status
        .get_condition("Active")
        .expect("Active condition");
    assert_eq!(active.reason.as_deref(), Some("Queued"));
    let sks = Api::<ServerlessService>::namespaced(client.clone(), &ns.name)
        .get(NAME)
        .await
        .expect("the SKS");
    assert_eq!(
        sks.owner_references()[0].name,
        NAME,
        "the SKS belongs to the PodAutoscaler"
    );

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_decision_of_zero_after_the_grace_period_scales_to_zero_behind_the_activator() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "pa-zero").await;
    let deciders = Deciders::new(AutoscalerRegistry::default());
    create_deployment(&client, &ns.name, 1).await;
    create_pod_autoscaler(&client, &ns.name, json!({})).await;
    // Inactive for two minutes, as Knative marks it: past the 30 s grace period.
    let pas = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    let since = Timestamp::now() - SignedDuration::from_secs(120);
    pas.patch_status(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{
            "type": "Active",
            "status": "False",
            "reason": "NoTraffic",
            "message": "The target is not receiving traffic.",
            "lastTransitionTime": since.to_string(),
        }]}})),
    )
    .await
    .expect("patch status");
    let driver = run_driver(&client, &ns.name, &deciders);

    let key = RevisionKey::new(&ns.name, NAME);
    eventually("a decider", || async {
        deciders.revisions().await.contains(&key).then_some(())
    })
    .await;
    // No requests: the KPA recommends zero.
    let now = Timestamp::now();
    assert!(deciders.record(&key, now, &Stat::concurrency(0.0)).await);
    deciders.tick(now).await;
    assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 0);

    eventually("replicas 0", || async {
        (replicas(&client, &ns.name).await == Some(0)).then_some(())
    })
    .await;
    let sks = Api::<ServerlessService>::namespaced(client.clone(), &ns.name)
        .get(NAME)
        .await
        .expect("the SKS");
    assert_eq!(sks.spec.mode, Some(ServerlessServiceOperationMode::Proxy));
    let status = eventually("desiredScale 0", || async {
        pas.get(NAME)
            .await
            .ok()
            .and_then(|pa| pa.status)
            .filter(|s| s.desired_scale == Some(0))
    })
    .await;
    let active = status.status.get_condition("Active").unwrap();
    assert!(active.is_false());
    assert_eq!(active.reason.as_deref(), Some("NoTraffic"));

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn the_hpa_class_creates_an_autoscaling_v2beta2_hpa_on_kubernetes_1_20() {
    let client = setup().await;
    assert_eq!(
        discover_hpa_version(&client).await.unwrap(),
        HpaVersion::V2beta2,
        "1.20 offers autoscaling/v2beta2, not v2"
    );
    let ns = TestNamespace::create(&client, "pa-hpa").await;
    let deciders = Deciders::new(AutoscalerRegistry::default());
    create_deployment(&client, &ns.name, 1).await;
    create_pod_autoscaler(
        &client,
        &ns.name,
        json!({
            "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
            "autoscaling.knative.dev/metric": "cpu",
            "autoscaling.knative.dev/target": "75",
            "autoscaling.knative.dev/max-scale": "4",
            "autoscaling.knative.dev/window": "90s",
        }),
    )
    .await;
    let driver = run_driver(&client, &ns.name, &deciders);

    let hpas = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(&()),
    );
    let hpas_v2beta2 = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &HpaVersion::V2beta2.api_resource(),
    );
    let hpa = eventually("an HPA", || async { hpas_v2beta2.get(NAME).await.ok() }).await;
    assert_eq!(hpa.data["spec"]["maxReplicas"], 4);
    assert_eq!(
        hpa.data["spec"]["metrics"][0]["resource"]["target"],
        json!({"type": "Utilization", "averageUtilization": 75})
    );
    assert_eq!(
        hpa.data["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        90
    );
    assert_eq!(hpa.owner_references()[0].name, NAME);
    // The same object through autoscaling/v1: the server stores one HPA.
    assert!(hpas.get(NAME).await.is_ok());

    let pas = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    let status = eventually("Active", || async {
        pas.get(NAME)
            .await
            .ok()
            .and_then(|pa| pa.status)
            .filter(|s| {
                s.status
                    .get_condition("Active")
                    .is_some_and(|c| c.is_true())
            })
    })
    .await;
    assert!(
        status.desired_scale.is_some() && status.actual_scale.is_some(),
        "the HPA's replicas are reported: {status:?}"
    );
    let sks = Api::<ServerlessService>::namespaced(client.clone(), &ns.name)
        .get(NAME)
        .await
        .expect("the SKS");
    assert_eq!(sks.spec.mode, Some(ServerlessServiceOperationMode::Serve));
    assert_eq!(
        replicas(&client, &ns.name).await,
        Some(1),
        "the HPA class leaves scaling to the HPA"
    );
    assert!(deciders.revisions().await.is_empty());

    driver.abort();
    ns.delete().await;
}
