//! The generic driver against a real kube-apiserver (see `scripts/envtest.sh`): the CRD the
//! Rust type generates is installed, and the driver's writes are checked on the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::apis::{ConditionSet, ConditionStatus, KnativeObject, Status};
use knative_core::config::ConfigStore;
use knative_core::leader::LeaseConfig;
use knative_core::metrics::Metrics;
use knative_core::reconciler::{Context, Driver, DriverOptions, ReconcileError, Reconciler};
use knative_core::testing::envtest::{TestNamespace, client};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "envtest.knative.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "Status"
)]
struct GadgetSpec {
    size: i32,
}

impl KnativeObject for Gadget {
    fn condition_set() -> &'static ConditionSet {
        static SET: std::sync::LazyLock<ConditionSet> =
            std::sync::LazyLock::new(|| ConditionSet::living(&["Sized"]));
        &SET
    }
}

/// Marks `Sized` True when the spec's size is positive, False otherwise; counts reconciles and
/// finalizations; stamps who reconciled and the configured concurrency target into the status'
/// annotations.
#[derive(Default)]
struct GadgetReconciler {
    identity: String,
    reconciled: Arc<AtomicUsize>,
    finalized: Arc<AtomicUsize>,
}

#[async_trait]
impl Reconciler<Gadget> for GadgetReconciler {
    async fn reconcile_kind(&self, g: &mut Gadget, ctx: &Context) -> Result<(), ReconcileError> {
        self.reconciled.fetch_add(1, Ordering::SeqCst);
        let target = ctx.config().autoscaler.container_concurrency_target_default;
        let annotations = &mut g.status.get_or_insert_with(Default::default).annotations;
        // An empty identity writes "" on purpose: the test API server must keep empty strings
        // in custom resources (a Go >= 1.16 bug in 1.20's schema validator turned them into
        // null; scripts/envtest-up.sh patches it).
        annotations.insert("reconciled-by".into(), self.identity.clone());
        annotations.insert("concurrency-target".into(), target.to_string());
        let size = g.spec.size;
        let mut conditions = g.manage_conditions(ctx.now());
        if size > 0 {
            conditions.mark_true("Sized");
            Ok(())
        } else {
            Err(ReconcileError::permanent(
                "InvalidSize",
                format!("size must be positive, got {size}"),
            ))
        }
    }
    async fn finalize_kind(&self, _: &mut Gadget, _: &Context) -> Result<(), ReconcileError> {
        self.finalized.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn uses_finalizer(&self) -> bool {
        true
    }
}

async fn setup() -> Client {
    static CRD: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRD.get_or_init(|| async {
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        let crd = Gadget::crd();
        let params = PatchParams::apply("knative-envtest").force();
        crds.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
            .await
            .expect("install CRD");
        let name = crd.name_any();
        let established = await_condition(crds, &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("CRD established in time")
            .unwrap();
    })
    .await;
    client
}

/// A driver watching only the test's namespace, so that tests running at once never touch each
/// other's objects.
fn scoped(
    client: &Client,
    namespace: &str,
    r: GadgetReconciler,
) -> Driver<Gadget, GadgetReconciler> {
    let mut options = DriverOptions::for_kind::<Gadget>();
    options.namespace = Some(namespace.to_owned());
    Driver::with_options(client.clone(), r, options)
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ready(g: &Gadget) -> Option<ConditionStatus> {
    g.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
}

#[tokio::test]
async fn the_driver_writes_status_with_observed_generation_for_each_generation() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-status").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let driver = tokio::spawn(scoped(&client, &ns.name, GadgetReconciler::default()).run());

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("Ready True at generation 1", async || {
        let g = gadgets.get("g").await.ok()?;
        (ready(&g) == Some(ConditionStatus::True)
            && g.status.as_ref()?.observed_generation == Some(1))
        .then_some(())
    })
    .await;

    gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 0}})),
        )
        .await
        .unwrap();
    let g = eventually("Ready False at generation 2", async || {
        let g = gadgets.get("g").await.ok()?;
        (ready(&g) == Some(ConditionStatus::False)
            && g.status.as_ref()?.observed_generation == Some(2))
        .then_some(g)
    })
    .await;
    let ready_condition = g
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready_condition.reason.as_deref(), Some("InvalidSize"));
    assert_eq!(
        ready_condition.message.as_deref(),
        Some("size must be positive, got 0")
    );

    let events = Api::<K8sEvent>::namespaced(client.clone(), &ns.name);
    let event = eventually("a Warning Event InvalidSize", async || {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidSize"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.regarding.and_then(|r| r.name).as_deref(), Some("g"));

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_status_write_against_a_stale_object_retries_the_409_and_keeps_the_other_write() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-conflict").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let stale = gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    // Another writer changes the object after our copy was read: our resourceVersion is stale.
    let label = serde_json::json!({"metadata": {"labels": {"other-writer": "was-here"}}});
    gadgets
        .patch("g", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();

    let driver = Driver::new(client.clone(), GadgetReconciler::default());
    // The finalizer patch carries the stale resourceVersion too, so it must be refused...
    let err = driver
        .reconcile(Arc::new(stale.clone()))
        .await
        .expect_err("stale finalizer patch is a conflict");
    assert!(err.to_string().contains("finalizer"), "{err}");
    // ...and the controller's next pass, on the latest object, succeeds.
    let latest = gadgets.get("g").await.unwrap();
    driver
        .reconcile(Arc::new(latest))
        .await
        .expect("reconcile on the latest object");

    let g = gadgets.get("g").await.unwrap();
    assert_eq!(ready(&g), Some(ConditionStatus::True));
    assert_eq!(
        g.labels().get("other-writer").map(String::as_str),
        Some("was-here")
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_conflicting_status_write_is_retried_on_the_latest_object() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-status-409").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let mut g = Gadget::new("g", GadgetSpec { size: 1 });
    g.metadata.finalizers = Some(vec!["gadgets.envtest.knative.dev".into()]);
    let stale = gadgets.create(&PostParams::default(), &g).await.unwrap();
    let label = serde_json::json!({"metadata": {"labels": {"other-writer": "was-here"}}});
    gadgets
        .patch("g", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();

    // The finalizer is already there, so the first write is the status, from a stale copy: the
    // server answers 409 and the driver must re-read and write again.
    Driver::new(client.clone(), GadgetReconciler::default())
        .reconcile(Arc::new(stale))
        .await
        .expect("status written after retrying the conflict");
    let g = gadgets.get("g").await.unwrap();
    assert_eq!(ready(&g), Some(ConditionStatus::True));
    assert_eq!(g.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(
        g.labels().get("other-writer").map(String::as_str),
        Some("was-here")
    );
    ns.delete().await;
}

#[tokio::test]
async fn the_finalizer_is_added_then_finalize_kind_runs_on_delete_and_the_object_goes() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-finalizer").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let reconciler = GadgetReconciler::default();
    let finalized = reconciler.finalized.clone();
    let driver = tokio::spawn(scoped(&client, &ns.name, reconciler).run());

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("the finalizer on the object", async || {
        let g = gadgets.get("g").await.ok()?;
        g.finalizers()
            .contains(&"gadgets.envtest.knative.dev".to_owned())
            .then_some(())
    })
    .await;

    gadgets.delete("g", &DeleteParams::default()).await.unwrap();
    eventually("the object gone", async || {
        gadgets.get_opt("g").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(finalized.load(Ordering::SeqCst), 1);
    driver.abort();
    ns.delete().await;
}

fn annotation(g: &Gadget, key: &str) -> Option<String> {
    g.status.as_ref()?.annotations.get(key).cloned()
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_follower_takes_over_as_soon_as_it_stops() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-leader").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let lease = |identity: &str| LeaseConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        ..LeaseConfig::new(ns.name.clone(), "gadget-controller", identity)
    };
    let replica = |identity: &str| {
        let r = GadgetReconciler {
            identity: identity.into(),
            ..Default::default()
        };
        let count = r.reconciled.clone();
        (
            scoped(&client, &ns.name, r).with_leader_election(lease(identity)),
            count,
        )
    };

    let (a, a_count) = replica("a");
    let a = tokio::spawn(a.run());
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g1", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("g1 reconciled by a", async || {
        (annotation(&gadgets.get("g1").await.ok()?, "reconciled-by")? == "a").then_some(())
    })
    .await;

    let (b, b_count) = replica("b");
    let b = tokio::spawn(b.run());
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g2", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("g2 reconciled by a", async || {
        (annotation(&gadgets.get("g2").await.ok()?, "reconciled-by")? == "a").then_some(())
    })
    .await;
    assert_eq!(
        b_count.load(Ordering::SeqCst),
        0,
        "the follower must not reconcile"
    );
    assert!(a_count.load(Ordering::SeqCst) >= 2);

    // Stopping the leader's driver releases its Lease, so the follower need not wait for it to
    // expire (the expiry path, for a leader that crashes, is tested in envtest_leader.rs).
    a.abort();
    let stopped = std::time::Instant::now();
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g3", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("g3 reconciled by b", async || {
        (annotation(&gadgets.get("g3").await.ok()?, "reconciled-by")? == "b").then_some(())
    })
    .await;
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "takeover before the 3 s lease could expire, took {took:?}"
    );
    b.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_config_map_change_reconciles_everything_again_with_the_new_snapshot() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-config").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let store = ConfigStore::start(client.clone(), ns.name.clone());
    tokio::time::timeout(Duration::from_secs(10), store.ready())
        .await
        .expect("config store ready");
    let driver = tokio::spawn(
        scoped(&client, &ns.name, GadgetReconciler::default())
            .with_config(store)
            .run(),
    );

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("the default target (100)", async || {
        (annotation(&gadgets.get("g").await.ok()?, "concurrency-target")? == "100").then_some(())
    })
    .await;

    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler"},
        "data": {"container-concurrency-target-default": "42"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    eventually(
        "the new target (42) without touching the gadget",
        async || {
            (annotation(&gadgets.get("g").await.ok()?, "concurrency-target")? == "42").then_some(())
        },
    )
    .await;

    // An invalid value keeps the last good configuration.
    let bad = serde_json::json!({"data": {"container-concurrency-target-default": "many"}});
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .patch(
            "config-autoscaler",
            &PatchParams::default(),
            &Patch::Merge(bad),
        )
        .await
        .unwrap();
    gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    let g = eventually("generation 2 observed", async || {
        let g = gadgets.get("g").await.ok()?;
        (g.status.as_ref()?.observed_generation == Some(2)).then_some(g)
    })
    .await;
    assert_eq!(annotation(&g, "concurrency-target").as_deref(), Some("42"));
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn reconciles_are_counted_in_the_metrics() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "driver-metrics").await;
    let gadgets = Api::<Gadget>::namespaced(client.clone(), &ns.name);
    let metrics = Metrics::new();
    let driver = tokio::spawn(
        scoped(&client, &ns.name, GadgetReconciler::default())
            .with_metrics(metrics.clone())
            .run(),
    );
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually("a successful reconcile counted", async || {
        metrics
            .encode()
            .lines()
            .any(|l| {
                l.starts_with("reconcile_count_total{")
                    && l.contains("reconciler=\"gadget-controller\"")
                    && l.contains("success=\"true\"")
            })
            .then_some(())
    })
    .await;
    assert!(
        metrics
            .encode()
            .contains("reconcile_latency_seconds_bucket"),
        "{}",
        metrics.encode()
    );
    driver.abort();
    ns.delete().await;
}
