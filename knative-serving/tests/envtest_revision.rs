//! The Revision reconciler against a real kube-apiserver and kube-controller-manager (see
//! `scripts/envtest.sh`; the deployment, replicaset and garbage-collector controllers run, no
//! scheduler or kubelet, so pods stay Pending): Knative's CRDs are installed from
//! `knative_serving::crds()`, the driver watches one namespace per test, and what it writes is
//! checked on the server.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::apis::{Condition, ConditionStatus};
use knative_core::reconciler::{Caches, Driver, DriverOptions};
use knative_core::testing::RecordingApi;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::{PodAutoscaler, Revision};
use knative_serving::reconciler::revision::{RevisionReconciler, watch_children};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

const IMAGE: &str = "ghcr.io/knative/helloworld-go:latest";

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

/// The Revision driver, watching only `namespace` (and the children there).
fn run_driver(client: &Client, namespace: &str) -> JoinHandle<()> {
    let options = DriverOptions {
        namespace: Some(namespace.to_owned()),
        ..DriverOptions::for_kind::<Revision>()
    };
    let caches = Caches::new(client.clone(), Some(namespace.to_owned()));
    let driver = Driver::with_options(client.clone(), RevisionReconciler::default(), options)
        .with_caches(caches.clone());
    tokio::spawn(async move {
        driver
            .run_with(move |c| watch_children(c, &caches))
            .await
            .expect("driver");
    })
}

/// A Revision as a Configuration would stamp it out, with `annotations`.
fn revision(name: &str, annotations: serde_json::Value) -> Revision {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "labels": {
                "serving.knative.dev/configuration": "hello",
                "serving.knative.dev/service": "hello",
            },
            "annotations": annotations,
        },
        "spec": {
            "containers": [{"image": IMAGE, "env": [{"name": "TARGET", "value": "World"}]}],
        },
    }))
    .expect("a Revision")
}

async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn condition(rev: &Revision, t: &str) -> Option<Condition> {
    rev.status
        .as_ref()?
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}

fn controller_uid(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == "Revision")
        .map(|r| r.uid.clone())
}

/// The Revision's pods, once the controller-manager made some.
async fn pods_of(client: &Client, namespace: &str, rev: &Revision) -> Vec<Pod> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let selector = format!("serving.knative.dev/revisionUID={}", rev.uid().unwrap());
    eventually(
        "the ReplicaSet's pods",
        Duration::from_secs(60),
        async || {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            (!list.items.is_empty()).then_some(list.items)
        },
    )
    .await
}

#[tokio::test]
async fn a_revision_gets_an_owned_deployment_with_the_queue_proxy_and_an_owned_pod_autoscaler() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "revision-children").await;
    let driver = run_driver(&client, &ns.name);
    let revisions = Api::<Revision>::namespaced(client.clone(), &ns.name);
    let rev = revisions
        .create(&PostParams::default(), &revision("hello-00001", json!({})))
        .await
        .expect("create the Revision");
    let uid = rev.uid().expect("a uid");

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    let deployment = eventually("the Deployment", Duration::from_secs(30), async || {
        deployments.get_opt("hello-00001-deployment").await.ok()?
    })
    .await;
    assert_eq!(controller_uid(&deployment.metadata), Some(uid.clone()));
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let containers: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(containers, ["user-container", "queue-proxy"]);
    let queue = &pod.containers[1];
    assert_eq!(
        queue.image.as_deref(),
        Some("ghcr.io/knative-rs/queue-proxy:latest")
    );
    let ports: Vec<(Option<&str>, i32)> = queue
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("http-queueadm"), 8022),
            (Some("http-autometric"), 9090),
            (Some("http-usermetric"), 9091),
            (Some("queue-port"), 8012),
            (Some("https-port"), 8112),
        ]
    );
    let env = |name: &str| {
        queue
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(env("SERVING_REVISION").as_deref(), Some("hello-00001"));
    assert_eq!(env("USER_PORT").as_deref(), Some("8080"));

    let pas = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    let pa = eventually("the PodAutoscaler", Duration::from_secs(30), async || {
        pas.get_opt("hello-00001").await.ok()?
    })
    .await;
    assert_eq!(controller_uid(&pa.metadata), Some(uid.clone()));
    assert_eq!(
        pa.spec.scale_target_ref.name.as_deref(),
        Some("hello-00001-deployment")
    );

    // The controller-manager runs the Deployment: a ReplicaSet, and pods that stay Pending.
    let pods = pods_of(&client, &ns.name, &rev).await;
    assert_eq!(pods.len(), 1, "the initial scale");

    let rev = eventually(
        "the Revision deploying",
        Duration::from_secs(30),
        async || {
            let rev = revisions.get("hello-00001").await.ok()?;
            let ready = condition(&rev, "Ready")?;
            (rev.status.as_ref()?.status.observed_generation == Some(1)
                && ready.status == ConditionStatus::Unknown
                && ready.reason.as_deref() == Some("Deploying"))
            .then_some(rev)
        },
    )
    .await;
    assert_eq!(
        condition(&rev, "ResourcesAvailable").map(|c| c.status),
        Some(ConditionStatus::Unknown)
    );

    // What the server stored, with its defaults filled in around our values, is what the
    // reconciler wants: another pass writes no child. A write that changes nothing is invisible
    // on the server, so that pass runs against a recording double holding the server's objects.
    let deployment = deployments.get("hello-00001-deployment").await.unwrap();
    assert_eq!(deployment.metadata.generation, Some(1), "never updated");
    let recording = RecordingApi::new();
    recording.seed(&rev);
    recording.seed(&deployment);
    recording.seed(&pas.get("hello-00001").await.unwrap());
    let pass = Driver::new(recording.client(), RevisionReconciler::default());
    pass.reconcile(Arc::new(rev))
        .await
        .expect("a pass over the server's objects");
    let child_writes: Vec<_> = recording
        .writes()
        .into_iter()
        .filter(|a| a.resource != "revisions")
        .collect();
    assert_eq!(child_writes, vec![], "the server's defaults are not drift");

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_fails_the_revision_once_the_deadline_passes() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "revision-image-pull").await;
    let driver = run_driver(&client, &ns.name);
    let revisions = Api::<Revision>::namespaced(client.clone(), &ns.name);
    // A short deadline, so that the controller-manager gives up on the Deployment quickly.
    let rev = revisions
        .create(
            &PostParams::default(),
            &revision(
                "pull-00001",
                json!({"serving.knative.dev/progress-deadline": "5s"}),
            ),
        )
        .await
        .expect("create the Revision");

    // What a kubelet would report for an image that does not exist.
    let pod = pods_of(&client, &ns.name, &rev).await.remove(0);
    let message = format!("Back-off pulling image \"{IMAGE}\"");
    let status = json!({"status": {"containerStatuses": [{
        "name": "user-container",
        "image": IMAGE,
        "imageID": "",
        "ready": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}},
    }]}});
    Api::<Pod>::namespaced(client.clone(), &ns.name)
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("patch the pod's status");

    let rev = eventually(
        "ResourcesAvailable False ImagePullBackOff",
        Duration::from_secs(60),
        async || {
            let rev = revisions.get("pull-00001").await.ok()?;
            let available = condition(&rev, "ResourcesAvailable")?;
            (available.status == ConditionStatus::False
                && available.reason.as_deref() == Some("ImagePullBackOff"))
            .then_some(rev)
        },
    )
    .await;
    assert_eq!(
        condition(&rev, "ResourcesAvailable")
            .unwrap()
            .message
            .as_deref(),
        Some(message.as_str())
    );
    let ready = condition(&rev, "Ready").unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_deref()),
        (ConditionStatus::False, Some("ImagePullBackOff"))
    );

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn deleting_a_revision_garbage_collects_its_deployment_and_pod_autoscaler() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "revision-gc").await;
    let driver = run_driver(&client, &ns.name);
    let revisions = Api::<Revision>::namespaced(client.clone(), &ns.name);
    revisions
        .create(&PostParams::default(), &revision("gone-00001", json!({})))
        .await
        .expect("create the Revision");
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    let pas = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    eventually(
        "the Deployment and PodAutoscaler",
        Duration::from_secs(30),
        async || {
            let deployment = deployments.get_opt("gone-00001-deployment").await.ok()?;
            let pa = pas.get_opt("gone-00001").await.ok()?;
            (deployment.is_some() && pa.is_some()).then_some(())
        },
    )
    .await;
    // The driver is not needed for garbage collection, and must not recreate anything.
    driver.abort();

    revisions
        .delete("gone-00001", &DeleteParams::default())
        .await
        .expect("delete the Revision");
    eventually(
        "the Deployment and PodAutoscaler collected",
        Duration::from_secs(120),
        async || {
            let deployment = deployments.get_opt("gone-00001-deployment").await.ok()?;
            let pa = pas.get_opt("gone-00001").await.ok()?;
            (deployment.is_none() && pa.is_none()).then_some(())
        },
    )
    .await;

    ns.delete().await;
}
