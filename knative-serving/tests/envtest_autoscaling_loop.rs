//! The Revision → PodAutoscaler → Deployment loop on a real kube-apiserver: the Revision and
//! PodAutoscaler reconcilers run side by side as `knative controller` runs them, and the
//! autoscaler's decisions reach the Deployment the Revision reconciler made.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use knative_core::reconciler::{Caches, Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::{PodAutoscaler, Revision};
use knative_serving::autoscaler::AutoscalerRegistry;
use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
use knative_serving::autoscaler::metrics::Stat;
use knative_serving::reconciler::autoscaling::{self, PodAutoscalerReconciler};
use knative_serving::reconciler::revision::{self, RevisionReconciler};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;

const NAME: &str = "hello-00001";

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

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_revisions_min_scale_and_then_its_load_reach_its_deployment() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "pa-loop").await;
    let deciders = Deciders::new(AutoscalerRegistry::default());

    let options = |name: DriverOptions| DriverOptions {
        namespace: Some(ns.name.clone()),
        ..name
    };
    let caches = Caches::new(client.clone(), Some(ns.name.clone()));
    let revisions = Driver::with_options(
        client.clone(),
        RevisionReconciler::default(),
        options(DriverOptions::for_kind::<Revision>()),
    )
    .with_caches(caches.clone());
    let pas = Driver::with_options(
        client.clone(),
        PodAutoscalerReconciler::new(deciders.clone()),
        options(DriverOptions::for_kind::<PodAutoscaler>()),
    )
    .with_caches(caches.clone());
    let c1 = caches.clone();
    let revision_driver = tokio::spawn(async move {
        revisions
            .run_with(move |c| revision::watch_children(c, &c1))
            .await
            .unwrap();
    });
    let (c2, d2) = (caches.clone(), deciders.clone());
    let pa_driver = tokio::spawn(async move {
        pas.run_with(move |c| autoscaling::watch_children(c, &c2, &d2))
            .await
            .unwrap();
    });

    let revision: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": NAME,
            "labels": {"serving.knative.dev/configuration": "hello", "serving.knative.dev/service": "hello"},
            "annotations": {"autoscaling.knative.dev/min-scale": "2"},
        },
        "spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest"}]},
    }))
    .unwrap();
    Api::<Revision>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &revision)
        .await
        .expect("create Revision");

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    let replicas = async || {
        deployments
            .get_opt("hello-00001-deployment")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.spec?.replicas)
    };
    eventually("min-scale 2 on the Deployment", async || {
        (replicas().await == Some(2)).then_some(())
    })
    .await;

    // 350 requests in flight reach the autoscaler: five pods at 70 each.
    let key = RevisionKey::new(&ns.name, NAME);
    let now = Timestamp::now();
    assert!(deciders.record(&key, now, &Stat::concurrency(350.0)).await);
    assert_eq!(deciders.tick(now).await, [key]);
    eventually("the decision on the Deployment", async || {
        (replicas().await == Some(5)).then_some(())
    })
    .await;
    let pa = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    eventually("desiredScale 5", async || {
        let status = pa.get(NAME).await.ok()?.status?;
        (status.desired_scale == Some(5)).then_some(())
    })
    .await;

    revision_driver.abort();
    pa_driver.abort();
    ns.delete().await;
}
