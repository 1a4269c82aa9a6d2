//! SIGTERM stops a leader and a follower driver cleanly, and the Lease is released.
//!
//! A test binary of its own: the signal reaches every driver in the process.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use knative_core::apis::{ConditionSet, KnativeObject, Status};
use knative_core::leader::LeaseConfig;
use knative_core::reconciler::{Context, Driver, DriverOptions, ReconcileError, Reconciler};
use knative_core::testing::envtest::{TestNamespace, client};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "envtest.knative.dev",
    version = "v1",
    kind = "Sprocket",
    namespaced,
    status = "Status"
)]
struct SprocketSpec {
    teeth: i32,
}

impl KnativeObject for Sprocket {
    fn condition_set() -> &'static ConditionSet {
        static SET: std::sync::LazyLock<ConditionSet> =
            std::sync::LazyLock::new(|| ConditionSet::living(&[]));
        &SET
    }
}

struct Noop;

#[async_trait]
impl Reconciler<Sprocket> for Noop {
    async fn reconcile_kind(&self, _: &mut Sprocket, _: &Context) -> Result<(), ReconcileError> {
        Ok(())
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("sprocket-controller")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn sigterm_stops_leader_and_follower_and_releases_the_lease() {
    let client = client().await;
    let crds = Api::all(client.clone());
    let crd = Sprocket::crd();
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("knative-envtest").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install CRD");
    let name = crd.name_any();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established")
    .unwrap();

    let ns = TestNamespace::create(&client, "driver-shutdown").await;
    let replica = |identity: &str| {
        let mut options = DriverOptions::for_kind::<Sprocket>();
        options.namespace = Some(ns.name.clone());
        let lease = LeaseConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_millis(500),
            ..LeaseConfig::new(ns.name.clone(), "sprocket-controller", identity)
        };
        tokio::spawn(
            Driver::with_options(client.clone(), Noop, options)
                .with_leader_election(lease)
                .run(),
        )
    };
    let leases = Api::<Lease>::namespaced(client.clone(), &ns.name);
    let a = replica("a");
    for _ in 0..100 {
        if holder(&leases).await.as_deref() == Some("a") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));
    let b = replica("b");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());

    let both = async { (a.await, b.await) };
    let (a, b) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("both drivers stop within 10 s");
    a.expect("leader task").expect("leader stopped cleanly");
    b.expect("follower task").expect("follower stopped cleanly");
    // Released, not left to expire: the holder is cleared (or was handed to b and released).
    assert_eq!(
        holder(&leases).await,
        None,
        "the Lease must be released on shutdown"
    );
    ns.delete().await;
}
