//! The Service, Configuration and Route reconcilers against a real kube-apiserver (see
//! `scripts/envtest.sh`): Knative's helloworld Service, applied unchanged, becomes a
//! Configuration, the Revision `hello-00001`, a Route, an Ingress and a Kubernetes Service, and
//! is Ready at its URL once the Revision and the Ingress say they are ready (no Revision
//! reconciler and no ingress implementation run here: the test plays both).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::apis::{ConditionStatus, KnativeObject};
use knative_core::reconciler::{Caches, Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::{Configuration, Ingress, Revision, Route, Service};
use knative_serving::reconciler::configuration::ConfigurationReconciler;
use knative_serving::reconciler::route::RouteReconciler;
use knative_serving::reconciler::service::ServiceReconciler;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

const HELLOWORLD: &str = include_str!("../../examples/manifests/helloworld-go.yaml");
const LOAD_BALANCER: &str = "kourier-internal.kourier-system.svc.cluster.local";

/// Installs Serving's CRDs once per test binary, by server-side apply, and waits until the
/// API server serves them.
async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-serving-envtest").force();
        for crd in knative_serving::crds() {
            api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", crd.name_any()));
        }
        for crd in knative_serving::crds() {
            let name = crd.name_any();
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
                .unwrap();
        }
    })
    .await;
    client
}

/// The three drivers, each watching only `namespace` (and the children it watches there), and
/// reading one another's kinds from their shared watch caches, as `knative controller` runs
/// them.
fn start_controllers(client: &Client, namespace: &str) -> Vec<JoinHandle<()>> {
    let ns = Some(namespace.to_owned());
    let caches = Caches::new(client.clone(), ns.clone());
    let services = Driver::with_options(
        client.clone(),
        ServiceReconciler::new(),
        DriverOptions {
            namespace: ns.clone(),
            ..DriverOptions::for_kind::<Service>()
        },
    )
    .with_caches(caches.clone());
    let configurations = Driver::with_options(
        client.clone(),
        ConfigurationReconciler::new(),
        DriverOptions {
            namespace: ns.clone(),
            ..DriverOptions::for_kind::<Configuration>()
        },
    )
    .with_caches(caches.clone());
    let route_reconciler = RouteReconciler::new();
    let route_watches = route_reconciler.watches(&caches);
    let routes = Driver::with_options(
        client.clone(),
        route_reconciler,
        DriverOptions {
            namespace: ns.clone(),
            ..DriverOptions::for_kind::<Route>()
        },
    )
    .with_caches(caches.clone());
    let service_watches = ServiceReconciler::watches(&caches);
    let configuration_watches = ConfigurationReconciler::watches(&caches);
    vec![
        tokio::spawn(async move {
            let _ = services.run_with(service_watches).await;
        }),
        tokio::spawn(async move {
            let _ = configurations.run_with(configuration_watches).await;
        }),
        tokio::spawn(async move {
            let _ = routes.run_with(route_watches).await;
        }),
    ]
}

/// Applies Knative's YAML unchanged (as `kubectl apply --server-side` would).
async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) {
    let obj: DynamicObject = serde_yaml::from_str(yaml).expect("YAML");
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("kubectl"),
        &Patch::Apply(&obj),
    )
    .await
    .expect("the API server takes Knative's helloworld Service");
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ready<K: KnativeObject>(obj: &K) -> Option<ConditionStatus> {
    condition(obj, "Ready").map(|(s, _)| s)
}

fn condition<K: KnativeObject>(obj: &K, t: &str) -> Option<(ConditionStatus, Option<String>)> {
    use knative_core::apis::KnativeStatus;
    obj.status()?
        .duck()
        .get_condition(t)
        .map(|c| (c.status, c.reason.clone()))
}

/// The controller reference of `child`, as (kind, name, uid).
fn controller(child: &impl Resource) -> Option<(String, String, String)> {
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()))
}

/// `owner` as a controller reference would name it: (kind, name, uid).
fn owned_by<K: Resource<DynamicType = ()>>(owner: &K) -> Option<(String, String, String)> {
    Some((
        K::kind(&()).into_owned(),
        owner.meta().name.clone()?,
        owner.meta().uid.clone()?,
    ))
}

#[tokio::test]
async fn knatives_helloworld_service_becomes_ready_through_its_children() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "serving-hello").await;
    let controllers = start_controllers(&client, &ns.name);

    apply_yaml(&client, &ns.name, HELLOWORLD).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let service = services.get("hello").await.unwrap();

    // The Service's Configuration, with the Service's template.
    let configs: Api<Configuration> = Api::namespaced(client.clone(), &ns.name);
    let config = eventually("the Configuration", async || {
        configs.get_opt("hello").await.ok()?
    })
    .await;
    assert_eq!(controller(&config), owned_by(&service));
    assert_eq!(config.labels()["serving.knative.dev/service"], "hello");
    assert_eq!(
        config.spec.template.spec.pod_spec.containers[0]
            .image
            .as_deref(),
        Some("ghcr.io/knative/helloworld-go:latest")
    );

    // Its first Revision, made by the Configuration reconciler.
    let revisions: Api<Revision> = Api::namespaced(client.clone(), &ns.name);
    let revision = eventually("the Revision hello-00001", async || {
        revisions.get_opt("hello-00001").await.ok()?
    })
    .await;
    assert_eq!(controller(&revision), owned_by(&config));
    let labels = revision.labels();
    assert_eq!(labels["serving.knative.dev/configuration"], "hello");
    assert_eq!(labels["serving.knative.dev/configurationGeneration"], "1");
    assert_eq!(labels["serving.knative.dev/service"], "hello");
    assert_eq!(
        labels["serving.knative.dev/configurationUID"],
        config.uid().unwrap()
    );
    assert_eq!(
        revision.spec.pod_spec.containers[0].ports.as_ref().unwrap()[0].container_port,
        8080
    );

    // The Route, waiting for a ready Revision.
    let routes: Api<Route> = Api::namespaced(client.clone(), &ns.name);
    let route = eventually("the Route waiting for its Revision", async || {
        let r = routes.get_opt("hello").await.ok()??;
        (condition(&r, "AllTrafficAssigned")
            == Some((ConditionStatus::Unknown, Some("RevisionMissing".into()))))
        .then_some(r)
    })
    .await;
    assert_eq!(controller(&route), owned_by(&service));
    assert_eq!(
        serde_json::to_value(&route.spec.traffic).unwrap(),
        json!([{"configurationName": "hello", "latestRevision": true, "percent": 100}])
    );

    // Play the Revision reconciler: the Revision becomes ready.
    revisions
        .patch_status(
            "hello-00001",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": 1,
                "conditions": [
                    {"type": "ContainerHealthy", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "ResourcesAvailable", "status": "True"},
                ],
            }})),
        )
        .await
        .unwrap();

    // Traffic is programmed: the Ingress and the placeholder Kubernetes Service.
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns.name);
    let ingress = eventually("the Ingress", async || {
        ingresses.get_opt("hello").await.ok()?
    })
    .await;
    let route = routes.get("hello").await.unwrap();
    assert_eq!(controller(&ingress), owned_by(&route));
    assert_eq!(ingress.labels()["serving.knative.dev/route"], "hello");
    assert_eq!(
        ingress.labels()["serving.knative.dev/routeNamespace"],
        ns.name
    );
    let local_host = format!("hello.{}.svc.cluster.local", ns.name);
    assert_eq!(
        serde_json::to_value(&ingress.spec.rules).unwrap(),
        json!([{
            "hosts": [format!("hello.{}", ns.name), format!("hello.{}.svc", ns.name), local_host],
            "visibility": "ClusterLocal",
            "http": {"paths": [{"splits": [{
                "serviceNamespace": ns.name, "serviceName": "hello-00001", "servicePort": 80,
                "percent": 100,
                "appendHeaders": {"Knative-Serving-Namespace": ns.name,
                                  "Knative-Serving-Revision": "hello-00001"},
            }]}]},
        }])
    );
    let k8s_services: Api<K8sService> = Api::namespaced(client.clone(), &ns.name);
    let placeholder = k8s_services.get("hello").await.unwrap();
    assert_eq!(controller(&placeholder), owned_by(&route));
    let spec = placeholder.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
    assert_eq!(spec.external_name.as_deref(), Some(local_host.as_str()));

    // Play the ingress implementation: the Ingress becomes ready behind a load balancer.
    ingresses
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": ingress.metadata.generation,
                "conditions": [
                    {"type": "LoadBalancerReady", "status": "True"},
                    {"type": "NetworkConfigured", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                "privateLoadBalancer": {"ingress": [{"domainInternal": LOAD_BALANCER}]},
            }})),
        )
        .await
        .unwrap();

    let service = eventually("the Service Ready", async || {
        let s = services.get("hello").await.ok()?;
        (ready(&s) == Some(ConditionStatus::True)).then_some(s)
    })
    .await;
    let status: Value = serde_json::to_value(service.status.as_ref().unwrap()).unwrap();
    let url = format!("http://hello.{}.svc.cluster.local", ns.name);
    assert_eq!(status["url"], url);
    assert_eq!(status["address"]["url"], url);
    assert_eq!(status["latestCreatedRevisionName"], "hello-00001");
    assert_eq!(status["latestReadyRevisionName"], "hello-00001");
    assert_eq!(
        status["traffic"],
        json!([{"revisionName": "hello-00001", "latestRevision": true, "percent": 100}])
    );
    assert_eq!(status["observedGeneration"], 1);
    for t in ["ConfigurationsReady", "RoutesReady"] {
        assert_eq!(
            condition(&service, t).map(|c| c.0),
            Some(ConditionStatus::True),
            "{t}"
        );
    }

    // The Kubernetes Service now leads to the load balancer.
    eventually(
        "the Kubernetes Service pointing at the load balancer",
        async || {
            let svc = k8s_services.get("hello").await.ok()?;
            (svc.spec?.external_name.as_deref() == Some(LOAD_BALANCER)).then_some(())
        },
    )
    .await;

    // Nothing was rewritten along the way: every child is still at its first generation.
    let config = configs.get("hello").await.unwrap();
    let route = routes.get("hello").await.unwrap();
    let ingress = ingresses.get("hello").await.unwrap();
    assert_eq!(config.metadata.generation, Some(1));
    assert_eq!(route.metadata.generation, Some(1));
    assert_eq!(ingress.metadata.generation, Some(1));
    assert_eq!(ready(&config), Some(ConditionStatus::True));
    assert_eq!(ready(&route), Some(ConditionStatus::True));

    // No write was refused and no reconcile failed on the way.
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), &ns.name);
    let warnings: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| format!("{:?}: {:?}", e.reason, e.note))
        .collect();
    assert_eq!(warnings, Vec::<String>::new());

    for c in controllers {
        c.abort();
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_new_template_makes_a_second_revision_and_moves_the_traffic() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "serving-update").await;
    let controllers = start_controllers(&client, &ns.name);
    apply_yaml(&client, &ns.name, HELLOWORLD).await;

    let revisions: Api<Revision> = Api::namespaced(client.clone(), &ns.name);
    let ready_revision = async |name: &str| {
        eventually(name, async || revisions.get_opt(name).await.ok()?).await;
        revisions
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                ),
            )
            .await
            .unwrap();
    };
    ready_revision("hello-00001").await;

    let routes: Api<Route> = Api::namespaced(client.clone(), &ns.name);
    eventually("traffic on hello-00001", async || {
        let r = routes.get_opt("hello").await.ok()??;
        let traffic = &r.status.as_ref()?.route.traffic;
        (traffic.first()?.revision_name.as_deref() == Some("hello-00001")).then_some(())
    })
    .await;

    // A new template: Knative's YAML with another TARGET.
    let v2 = HELLOWORLD.replace("value: \"World\"", "value: \"Knative\"");
    assert_ne!(v2, HELLOWORLD);
    apply_yaml(&client, &ns.name, &v2).await;
    ready_revision("hello-00002").await;

    eventually("traffic on hello-00002", async || {
        let r = routes.get_opt("hello").await.ok()??;
        let traffic = &r.status.as_ref()?.route.traffic;
        (traffic.first()?.revision_name.as_deref() == Some("hello-00002")).then_some(())
    })
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns.name);
    let ingress = eventually("the Ingress on hello-00002", async || {
        let i = ingresses.get_opt("hello").await.ok()??;
        let split = serde_json::to_value(&i.spec.rules[0]).ok()?["http"]["paths"][0]["splits"][0]
            ["serviceName"]
            .clone();
        (split == "hello-00002").then_some(i)
    })
    .await;
    assert_eq!(
        ingress.metadata.generation,
        Some(2),
        "one update of the Ingress"
    );

    let configs: Api<Configuration> = Api::namespaced(client.clone(), &ns.name);
    let config = configs.get("hello").await.unwrap();
    assert_eq!(config.metadata.generation, Some(2));
    let fields = &config.status.unwrap().configuration;
    assert_eq!(
        fields.latest_created_revision_name.as_deref(),
        Some("hello-00002")
    );

    for c in controllers {
        c.abort();
    }
    ns.delete().await;
}
