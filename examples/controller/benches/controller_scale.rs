//! The Serving controller at scale, on a real API server (the test environment's, see
//! `scripts/envtest.sh`):
//!
//! 1. **bare client**: creates, for N services, the objects the controller would create
//!    (Configuration, Route, Revision, Deployment, PodAutoscaler, Ingress) directly, with
//!    `CONCURRENCY` requests in flight, and times it;
//! 2. **controller**: starts the Serving controller (`knative-controller`, the lean binary; with
//!    `BENCH_CONTROLLER_BIN=/absolute/path/to/knative` it runs `knative controller` instead,
//!    with the Build and Eventing reconcilers besides) for a fresh namespace, creates N Knative
//!    Services (`CONCURRENCY` in flight) and times until every one has all six children;
//!    the bench plays the autoscaler (marks PodAutoscalers ready with one pod), because this
//!    server runs no pods: without it no Revision becomes ready and no Route programs an
//!    Ingress. The Services' revisions carry an autoscaler class of the bench's own, so the
//!    controller's PodAutoscaler reconciler leaves them to the bench (as Knative's does with a
//!    class it does not serve) instead of fighting over their status;
//! 3. **idle**: watches the namespace for `IDLE_SECONDS` and counts every object change (an
//!    API write that changed nothing changes no object and is not seen: the apiserver's own
//!    `apiserver_request_total` for the Serving resources is reported too, as an upper
//!    bound, since it counts every client of the shared server);
//! 4. the controller's resident memory (VmRSS) at the end.
//!
//! `KUBECONFIG=/tmp/envtest-0/kubeconfig N=1000 cargo bench --profile controller -p knative-controller --bench controller_scale`
//! (defaults: N=1000, CONCURRENCY=16, IDLE_SECONDS=60, CONTROLLER_CONCURRENCY: the controller's
//! default `--concurrency`). `--profile controller` builds the controller as it is meant to be
//! shipped, optimised for size (the workspace's `controller` profile); without it, `cargo bench`
//! measures the `release` build. Figures go to docs/performance.md.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_serving::apis::{Configuration, Ingress, PodAutoscaler, Revision, Route, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let n: usize = env_or("N", 1000);
    let concurrency: usize = env_or("CONCURRENCY", 16);
    let idle = Duration::from_secs(env_or("IDLE_SECONDS", 60));
    // Objects each reconciler of the controller works on at once (its --concurrency).
    let controller_concurrency: u16 = env_or(
        "CONTROLLER_CONCURRENCY",
        knative_core::reconciler::DEFAULT_CONCURRENCY,
    );
    let client = Client::try_default().await?;
    install_crds(&client).await?;
    let run = std::process::id();

    // 1. The bare client.
    let bare_ns = format!("bench-bare-{run}");
    create_namespace(&client, &bare_ns).await?;
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| bare_children(&client, &bare_ns, i))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let bare = start.elapsed();
    let bare_rate = (6 * n) as f64 / bare.as_secs_f64();
    println!(
        "bare client: {} objects in {:.2} s = {bare_rate:.0} objects/s",
        6 * n,
        bare.as_secs_f64()
    );

    // 2. The controller.
    let ns = format!("bench-controller-{run}");
    create_namespace(&client, &ns).await?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // BENCH_CONTROLLER_WRAPPER runs the controller under a profiler (e.g. `heaptrack -o FILE`);
    // the RSS printed is then the wrapper's.
    let wrapper = std::env::var("BENCH_CONTROLLER_WRAPPER").unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    let (binary, subcommand) = match std::env::var("BENCH_CONTROLLER_BIN") {
        Ok(knative) => (knative, Some("controller")),
        Err(_) => (env!("CARGO_BIN_EXE_knative-controller").to_owned(), None),
    };
    let mut controller = match wrapper.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(wrapper).arg(&binary);
            command
        }
        None => Command::new(&binary),
    };
    // A group of its own, so that SIGTERM reaches the controller under a wrapper too.
    let mut controller = controller
        .process_group(0)
        .args(subcommand)
        .args(["--namespace", &ns])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--autoscaler-addr", "127.0.0.1:0"])
        .args(["--concurrency", &controller_concurrency.to_string()])
        .env(
            "RUST_LOG",
            std::env::var("CONTROLLER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = controller.id();
    let autoscaler = tokio::spawn(play_autoscaler(client.clone(), ns.clone()));
    let counts = ChildCounts::start(&client, &ns);
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api: Api<Service> = Api::namespaced(client.clone(), &ns);
            async move {
                api.create(&PostParams::default(), &ksvc(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let created = start.elapsed();
    loop {
        let missing = counts.missing(n);
        if missing.values().all(|m| *m == 0) {
            break;
        }
        if let Some(status) = controller.try_wait()? {
            anyhow::bail!("the controller exited ({status}) with children missing: {missing:?}");
        }
        if start.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("children still missing after 30 minutes: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = start.elapsed();
    let rate = (6 * n) as f64 / total.as_secs_f64();
    println!(
        "controller: {n} Services created in {:.2} s; all {} children after {:.2} s = {rate:.0} objects/s ({:.0}% of the bare client)",
        created.as_secs_f64(),
        6 * n,
        total.as_secs_f64(),
        100.0 * rate / bare_rate
    );
    autoscaler.abort();
    drop(counts);

    // 3. Idle.
    tokio::time::sleep(Duration::from_secs(5)).await; // let the last status writes land
    let before = serving_writes(&client).await?;
    let changes = Arc::new(AtomicU64::new(0));
    let watchers = [
        count_changes::<Service>(&client, &ns, &changes),
        count_changes::<Configuration>(&client, &ns, &changes),
        count_changes::<Route>(&client, &ns, &changes),
        count_changes::<Revision>(&client, &ns, &changes),
        count_changes::<Deployment>(&client, &ns, &changes),
        count_changes::<PodAutoscaler>(&client, &ns, &changes),
        count_changes::<Ingress>(&client, &ns, &changes),
        count_changes::<k8s_openapi::api::core::v1::Service>(&client, &ns, &changes),
    ];
    tokio::time::sleep(idle).await;
    for w in watchers {
        w.abort();
    }
    let after = serving_writes(&client).await?;
    println!(
        "idle {} s: {} object changes in the namespace; apiserver write requests to Serving resources (all clients): {}",
        idle.as_secs(),
        changes.load(Ordering::Relaxed),
        after.saturating_sub(before)
    );

    // 4. Memory.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .to_owned();
    println!("controller {rss} with {n} Services");

    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .status();
    let _ = controller.wait();
    for namespace in [bare_ns, ns] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&namespace, &DeleteParams::background())
            .await;
    }
    Ok(())
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in knative_serving::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("controller-scale-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// The autoscaler class of the bench's revisions: no reconciler of `knative controller` serves
/// it (so the controller's PodAutoscaler reconciler leaves them alone), the bench does.
const BENCH_CLASS: &str = "bench.autoscaling.example.com";

fn ksvc(i: usize) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": format!("svc-{i}") },
        "spec": { "template": {
            "metadata": { "annotations": { "autoscaling.knative.dev/class": BENCH_CLASS } },
            "spec": { "containers": [{
            "image": "ghcr.io/knative/helloworld-go:latest",
            "env": [{ "name": "TARGET", "value": "World" }],
        }] } } },
    }))
    .expect("a valid Service")
}

/// What the controller creates for Service `svc-{i}`, written by the bench itself: objects of
/// the same kinds and about the same size (the Deployment with two containers).
async fn bare_children(client: &Client, ns: &str, i: usize) -> anyhow::Result<()> {
    let name = format!("svc-{i}");
    let rev = format!("{name}-00001");
    let container =
        json!({ "name": "user-container", "image": "ghcr.io/knative/helloworld-go:latest" });
    create::<Configuration>(
        client,
        ns,
        json!({
            "metadata": { "name": name },
            "spec": { "template": { "spec": { "containers": [container] } } },
        }),
    )
    .await?;
    create::<Route>(client, ns, json!({
        "metadata": { "name": name },
        "spec": { "traffic": [{ "configurationName": name, "latestRevision": true, "percent": 100 }] },
    }))
    .await?;
    create::<Revision>(
        client,
        ns,
        json!({
            "metadata": { "name": rev },
            "spec": { "containers": [container] },
        }),
    )
    .await?;
    create::<Deployment>(
        client,
        ns,
        json!({
            "metadata": { "name": format!("{rev}-deployment") },
            "spec": {
                "selector": { "matchLabels": { "serving.knative.dev/revision": rev } },
                "template": {
                    "metadata": { "labels": { "serving.knative.dev/revision": rev } },
                    "spec": { "containers": [
                        container,
                        { "name": "queue-proxy", "image": "ghcr.io/knative-rs/queue-proxy:latest" },
                    ] },
                },
            },
        }),
    )
    .await?;
    create::<PodAutoscaler>(client, ns, json!({
        "metadata": { "name": rev },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": format!("{rev}-deployment") },
            "protocolType": "http1",
        },
    }))
    .await?;
    create::<Ingress>(
        client,
        ns,
        json!({
            "metadata": { "name": name },
            "spec": { "rules": [{
                "hosts": [format!("{name}.{ns}.example.com")],
                "visibility": "ExternalIP",
                "http": { "paths": [{ "splits": [{
                    "serviceName": rev, "serviceNamespace": ns, "servicePort": 80, "percent": 100,
                }] }] },
            }] },
        }),
    )
    .await?;
    Ok(())
}

async fn create<K>(client: &Client, ns: &str, mut object: Value) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    object["apiVersion"] = K::api_version(&()).into();
    object["kind"] = K::kind(&()).into();
    let typed: K = serde_json::from_value(object)?;
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &typed)
        .await?;
    Ok(())
}

/// Reads how many objects one reflector store holds.
type StoreLen = Box<dyn Fn() -> usize + Send + Sync>;

/// Live counts of the objects of each kind of child in a namespace, kept by metadata-only
/// watches: polling full lists of thousands of objects several times a second loads the API
/// server the bench measures (an earlier version did, and the server answered with 504s).
struct ChildCounts {
    stores: Vec<(&'static str, StoreLen)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ChildCounts {
    fn start(client: &Client, ns: &str) -> Self {
        let mut counts = ChildCounts {
            stores: Vec::new(),
            tasks: Vec::new(),
        };
        counts.watch::<Configuration>("configurations", client, ns);
        counts.watch::<Route>("routes", client, ns);
        counts.watch::<Revision>("revisions", client, ns);
        counts.watch::<Deployment>("deployments", client, ns);
        counts.watch::<PodAutoscaler>("podautoscalers", client, ns);
        counts.watch::<Ingress>("ingresses", client, ns);
        counts
    }

    fn watch<K>(&mut self, kind: &'static str, client: &Client, ns: &str)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        // `Api<PartialObjectMeta<K>>` lists and watches metadata only.
        let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), ns);
        let (reader, writer) = reflector::store::<PartialObjectMeta<K>>();
        let stream = reflector(writer, watcher(api, watcher::Config::default()));
        self.tasks.push(tokio::spawn(async move {
            stream
                .for_each(|event| async move {
                    if let Err(e) = event {
                        eprintln!("child count watch of {kind}: {e}");
                    }
                })
                .await;
        }));
        self.stores
            .push((kind, Box::new(move || reader.state().len())));
    }

    /// How many Services of `n` lack each kind of child.
    fn missing(&self, n: usize) -> BTreeMap<&'static str, usize> {
        self.stores
            .iter()
            .map(|(kind, len)| (*kind, n.saturating_sub(len())))
            .collect()
    }
}

impl Drop for ChildCounts {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The autoscaler's part (there are no pods to scale on this server): every PodAutoscaler in
/// `ns` is marked ready with one pod, as Knative's scaler reports a Revision that started, so
/// that Revisions become ready and Routes program their Ingresses.
async fn play_autoscaler(client: Client, ns: String) {
    let pas: Api<PodAutoscaler> = Api::namespaced(client, &ns);
    let mut events = watcher(pas.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(Ok(pa)) = events.next().await {
        let status = pa.status.as_ref().map(|s| &s.status);
        let ready = status
            .and_then(|s| s.get_condition("Ready"))
            .is_some_and(|c| c.status == knative_core::apis::ConditionStatus::True);
        // Ready for this generation: the Revision reconciler updates the PodAutoscaler's spec
        // and trusts its status only once it observed the new generation.
        if ready && status.and_then(|s| s.observed_generation) == pa.metadata.generation {
            continue;
        }
        let name = pa.name_any();
        let status = json!({ "status": {
            "observedGeneration": pa.metadata.generation,
            "serviceName": name,
            "desiredScale": 1, "actualScale": 1,
            "conditions": [
                { "type": "Active", "status": "True" },
                { "type": "Ready", "status": "True" },
                { "type": "SKSReady", "status": "True" },
                { "type": "ScaleTargetInitialized", "status": "True" },
            ],
        }});
        let _ = pas
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
}

fn count_changes<K>(
    client: &Client,
    ns: &str,
    changes: &Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let changes = changes.clone();
    tokio::spawn(async move {
        // Start from "now": only changes after the watch begins are counted.
        // A watch that cannot start or fails says so: a silent one would count 0 changes.
        let rv = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .expect("list before the idle watch")
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut stream = api
            .watch(&kube::api::WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    eprintln!("idle watch of {} failed: {e}", K::plural(&()));
                    break;
                }
            };
            if let kube::api::WatchEvent::Error(e) = &event {
                eprintln!("idle watch of {} failed: {e:?}", K::plural(&()));
            }
            if matches!(
                event,
                kube::api::WatchEvent::Added(_)
                    | kube::api::WatchEvent::Modified(_)
                    | kube::api::WatchEvent::Deleted(_)
            ) {
                changes.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// The apiserver's count of write requests (POST, PUT, PATCH, DELETE) to Serving's resources
/// and the children the controller writes, from its `/metrics`.
async fn serving_writes(client: &Client) -> anyhow::Result<u64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let resources = [
        "services",
        "configurations",
        "routes",
        "revisions",
        "deployments",
        "podautoscalers",
        "ingresses",
        "serverlessservices",
    ];
    let mut total = 0u64;
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let write = ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|v| line.contains(&format!("verb=\"{v}\"")));
        let ours = resources
            .iter()
            .any(|r| line.contains(&format!("resource=\"{r}\"")));
        if write && ours {
            let value = line.rsplit(' ').next().unwrap_or("0");
            total += value.parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    Ok(total)
}
