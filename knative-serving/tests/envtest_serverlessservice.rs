//! The ServerlessService reconciler against a real kube-apiserver (see `scripts/envtest.sh`):
//! the test plays the endpoints controller (envtest's kube-controller-manager runs none) by
//! writing the private Endpoints, and the activator's Endpoints live in the test's namespace.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use knative_core::reconciler::{Caches, Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client, eventually, install_crds};
use knative_serving::apis::ServerlessService;
use knative_serving::apis::networking::v1alpha1::ServerlessServiceOperationMode;
use knative_serving::reconciler::serverlessservice::ServerlessServiceReconciler;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

const NAME: &str = "hello-00001";
const DEPLOYMENT: &str = "hello-00001-deployment";
const ACTIVATOR: &str = "activator-service";

async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        install_crds(&client, "knative-envtest", &knative_serving::crds()).await;
    })
    .await;
    client
}

fn run_driver(client: &Client, namespace: &str) -> JoinHandle<()> {
    let options = DriverOptions {
        namespace: Some(namespace.to_owned()),
        ..DriverOptions::for_kind::<ServerlessService>()
    };
    let reconciler = ServerlessServiceReconciler::new().with_activator(namespace, ACTIVATOR);
    let caches = Caches::new(client.clone(), Some(namespace.to_owned()));
    let watches = reconciler.watches(&caches);
    let driver = Driver::with_options(client.clone(), reconciler, options).with_caches(caches);
    tokio::spawn(async move { driver.run_with(watches).await.expect("driver") })
}

async fn create<K>(client: &Client, namespace: &str, value: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let object: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()))
}

async fn create_deployment(client: &Client, namespace: &str) {
    create::<Deployment>(
        client,
        namespace,
        json!({
            "metadata": {"name": DEPLOYMENT},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"serving.knative.dev/revision": NAME}},
                "template": {
                    "metadata": {"labels": {"serving.knative.dev/revision": NAME}},
                    "spec": {"containers": [{"name": "user-container", "image": "ghcr.io/knative/helloworld-go:latest"}]},
                },
            },
        }),
    )
    .await;
}

async fn create_sks(client: &Client, namespace: &str, mode: &str) {
    create::<ServerlessService>(
        client,
        namespace,
        json!({
            "apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "ServerlessService",
            "metadata": {"name": NAME, "labels": {"serving.knative.dev/revision": NAME}},
            "spec": {
                "mode": mode,
                "objectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
                "protocolType": "http1",
            },
        }),
    )
    .await;
}

/// Endpoints as Kubernetes' endpoints controller writes them: ready `ips` on `ports`.
async fn write_endpoints(
    client: &Client,
    namespace: &str,
    name: &str,
    ips: &[&str],
    ports: serde_json::Value,
) {
    let addresses: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    // Kubernetes' endpoints controller labels Endpoints as their Service.
    let labels = match name.strip_suffix("-private") {
        Some(revision) => json!({
            "networking.knative.dev/serviceType": "Private",
            "serving.knative.dev/revision": revision,
        }),
        None => json!({}),
    };
    let endpoints: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": name},
        "subsets": [{"addresses": addresses, "ports": ports}],
    }))
    .unwrap();
    let api = Api::<Endpoints>::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply("test-endpoints-controller").force(),
        &Patch::Apply(&json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "labels": labels},
            "subsets": endpoints.subsets,
        })),
    )
    .await
    .unwrap_or_else(|e| panic!("write endpoints {name}: {e}"));
}

fn queue_proxy_ports() -> serde_json::Value {
    json!([
        {"name": "http", "port": 8012, "protocol": "TCP"},
        {"name": "http-autometric", "port": 9090, "protocol": "TCP"},
        {"name": "http-queueadm", "port": 8022, "protocol": "TCP"},
    ])
}

/// The public Endpoints' ready `ip:port`s, sorted.
async fn public_addresses(client: &Client, namespace: &str) -> Option<Vec<String>> {
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), namespace)
        .get_opt(NAME)
        .await
        .unwrap()?;
    let mut found = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        for address in subset.addresses.iter().flatten() {
            for port in subset.ports.iter().flatten() {
                found.push(format!("{}:{}", address.ip, port.port));
            }
        }
    }
    found.sort();
    Some(found)
}

async fn sks(client: &Client, namespace: &str) -> ServerlessService {
    Api::<ServerlessService>::namespaced(client.clone(), namespace)
        .get(NAME)
        .await
        .unwrap()
}

fn condition(sks: &ServerlessService, t: &str) -> Option<(String, Option<String>)> {
    let c = sks.status.as_ref()?.status.get_condition(t)?;
    Some((format!("{:?}", c.status), c.reason.clone()))
}

#[tokio::test]
async fn the_private_service_selects_the_deployments_pods_on_the_queue_proxy_port() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "sks-private").await;
    create_deployment(&client, &ns.name).await;
    create_sks(&client, &ns.name, "Serve").await;
    let driver = run_driver(&client, &ns.name);

    let services = Api::<Service>::namespaced(client.clone(), &ns.name);
    let private = eventually("the private Service", || async {
        services.get_opt("hello-00001-private").await.unwrap()
    })
    .await;
    let spec = private.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap()["serving.knative.dev/revision"],
        NAME,
        "selects the Deployment's pods"
    );
    let http = &spec.ports.unwrap()[0];
    assert_eq!((http.name.as_deref(), http.port), (Some("http"), 80));
    let public = eventually("the public Service", || async {
        services.get_opt(NAME).await.unwrap()
    })
    .await;
    assert!(
        public.spec.unwrap().selector.is_none(),
        "no selector: we write its Endpoints"
    );
    assert_eq!(private.metadata.owner_references.unwrap()[0].name, NAME);

    let status = eventually("the status names", || async {
        sks(&client, &ns.name)
            .await
            .status
            .filter(|s| s.service_name.is_some())
    })
    .await;
    assert_eq!(status.service_name.as_deref(), Some(NAME));
    assert_eq!(
        status.private_service_name.as_deref(),
        Some("hello-00001-private")
    );
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn serve_mode_mirrors_the_ready_pods_and_becomes_ready() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "sks-serve").await;
    create_deployment(&client, &ns.name).await;
    write_endpoints(
        &client,
        &ns.name,
        ACTIVATOR,
        &["10.9.0.1"],
        json!([{"name": "http", "port": 8012}]),
    )
    .await;
    create_sks(&client, &ns.name, "Serve").await;
    let driver = run_driver(&client, &ns.name);

    // No pod yet: the activator holds the requests, even in Serve mode.
    eventually("the activator in the public Endpoints", || async {
        (public_addresses(&client, &ns.name).await? == ["10.9.0.1:8012"]).then_some(())
    })
    .await;

    write_endpoints(
        &client,
        &ns.name,
        "hello-00001-private",
        &["10.0.0.1", "10.0.0.2"],
        queue_proxy_ports(),
    )
    .await;
    eventually(
        "the pods in the public Endpoints, serving port only",
        || async {
            (public_addresses(&client, &ns.name).await? == ["10.0.0.1:8012", "10.0.0.2:8012"])
                .then_some(())
        },
    )
    .await;
    let sks = eventually("Ready", || async {
        let sks = sks(&client, &ns.name).await;
        (condition(&sks, "Ready")?.0 == "True").then_some(sks)
    })
    .await;
    assert_eq!(
        condition(&sks, "ActivatorEndpointsPopulated").unwrap().0,
        "False",
        "the pods serve"
    );
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn proxy_mode_puts_the_activator_on_the_path_and_follows_its_endpoints() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "sks-proxy").await;
    create_deployment(&client, &ns.name).await;
    write_endpoints(
        &client,
        &ns.name,
        "hello-00001-private",
        &["10.0.0.1"],
        queue_proxy_ports(),
    )
    .await;
    create_sks(&client, &ns.name, "Proxy").await;
    let driver = run_driver(&client, &ns.name);

    let sks_now = eventually("no healthy backend without activators", || async {
        let sks = sks(&client, &ns.name).await;
        (condition(&sks, "Ready")?.1.as_deref() == Some("NoHealthyBackends")).then_some(sks)
    })
    .await;
    assert_eq!(condition(&sks_now, "Ready").unwrap().0, "Unknown");

    write_endpoints(
        &client,
        &ns.name,
        ACTIVATOR,
        &["10.9.0.1", "10.9.0.2"],
        json!([{"name": "http", "port": 8012}]),
    )
    .await;
    eventually("the activators in the public Endpoints", || async {
        (public_addresses(&client, &ns.name).await? == ["10.9.0.1:8012", "10.9.0.2:8012"])
            .then_some(())
    })
    .await;
    eventually("Ready with the activator on the path", || async {
        let sks = sks(&client, &ns.name).await;
        (condition(&sks, "Ready")?.0 == "True"
            && condition(&sks, "ActivatorEndpointsPopulated")?.0 == "True")
            .then_some(())
    })
    .await;

    // The autoscaler takes the activator out of the path: the pods take over.
    let api = Api::<ServerlessService>::namespaced(client.clone(), &ns.name);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mode": ServerlessServiceOperationMode::Serve}})),
    )
    .await
    .unwrap();
    eventually("the pod in the public Endpoints", || async {
        (public_addresses(&client, &ns.name).await? == ["10.0.0.1:8012"]).then_some(())
    })
    .await;
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_public_service_someone_else_owns_is_refused() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "sks-owned").await;
    create_deployment(&client, &ns.name).await;
    create::<Service>(
        &client,
        &ns.name,
        json!({"metadata": {"name": NAME}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create_sks(&client, &ns.name, "Serve").await;
    let driver = run_driver(&client, &ns.name);
    let sks = eventually("NotOwned", || async {
        let sks = sks(&client, &ns.name).await;
        (condition(&sks, "Ready")?.1.as_deref() == Some("NotOwned")).then_some(sks)
    })
    .await;
    assert_eq!(condition(&sks, "Ready").unwrap().0, "False");
    driver.abort();
    ns.delete().await;
}
