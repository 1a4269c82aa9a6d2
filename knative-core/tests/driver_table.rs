//! Table-style tests of the generic reconciler driver against the recording API double:
//! one object in, the exact writes and Events out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use knative_core::apis::{ConditionSet, ConditionStatus, KnativeObject, Status};
use knative_core::reconciler::{Context, Driver, ReconcileError, Reconciler};
use knative_core::testing::{RecordingApi, Verb};
use kube::CustomResource;
use kube::runtime::controller::Action;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "example.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "Status"
)]
struct WidgetSpec {
    size: i32,
}

impl KnativeObject for Widget {
    fn condition_set() -> &'static ConditionSet {
        static SET: std::sync::LazyLock<ConditionSet> =
            std::sync::LazyLock::new(|| ConditionSet::living(&["Sized"]));
        &SET
    }
}

type Behaviour = fn(&mut Widget, &Context) -> Result<(), ReconcileError>;

struct TestReconciler {
    reconcile: Behaviour,
    finalize: Option<Behaviour>,
    /// An Event reason the reconciler publishes on every reconcile, if any.
    announce: Option<&'static str>,
    reconciled: AtomicUsize,
    finalized: AtomicUsize,
    /// Objects with this size are another reconciler's (its class filter).
    foreign_size: Option<i32>,
}

impl TestReconciler {
    fn new(reconcile: Behaviour) -> Self {
        Self {
            reconcile,
            finalize: None,
            announce: None,
            reconciled: AtomicUsize::new(0),
            finalized: AtomicUsize::new(0),
            foreign_size: None,
        }
    }
    fn finalizing(reconcile: Behaviour, finalize: Behaviour) -> Self {
        Self {
            finalize: Some(finalize),
            ..Self::new(reconcile)
        }
    }
}

#[async_trait]
impl Reconciler<Widget> for TestReconciler {
    async fn reconcile_kind(&self, obj: &mut Widget, ctx: &Context) -> Result<(), ReconcileError> {
        self.reconciled.fetch_add(1, Ordering::SeqCst);
        if let Some(reason) = self.announce {
            ctx.publish(
                kube::runtime::events::EventType::Normal,
                reason,
                "made a thing",
            )
            .await;
        }
        (self.reconcile)(obj, ctx)
    }
    async fn finalize_kind(&self, obj: &mut Widget, ctx: &Context) -> Result<(), ReconcileError> {
        self.finalized.fetch_add(1, Ordering::SeqCst);
        (self
            .finalize
            .expect("finalize called on a non-finalizing reconciler"))(obj, ctx)
    }
    fn uses_finalizer(&self) -> bool {
        self.finalize.is_some()
    }
    fn accepts(&self, obj: &Widget, _: &knative_core::config::Config) -> bool {
        self.foreign_size != Some(obj.spec.size)
    }
}

fn mark_sized(w: &mut Widget, ctx: &Context) -> Result<(), ReconcileError> {
    w.manage_conditions(ctx.now()).mark_true("Sized");
    Ok(())
}

fn do_nothing(_: &mut Widget, _: &Context) -> Result<(), ReconcileError> {
    Ok(())
}

fn widget(name: &str) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size: 1 });
    w.metadata.namespace = Some("ns".into());
    w
}

fn setup(w: &Widget, r: TestReconciler) -> (RecordingApi, Driver<Widget, TestReconciler>) {
    let api = RecordingApi::new();
    api.seed(w);
    let driver = Driver::new(api.client(), r);
    (api, driver)
}

fn stored(api: &RecordingApi, name: &str) -> Arc<Widget> {
    Arc::new(api.get::<Widget>("ns", name).expect("stored widget"))
}

fn condition<'a>(w: &'a Widget, t: &str) -> &'a knative_core::apis::Condition {
    w.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .expect("condition present")
}

#[tokio::test]
async fn a_new_object_gets_its_status_written_with_observed_generation() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    let action = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    let updates = api.status_updates();
    assert_eq!(
        updates.len(),
        1,
        "exactly one status write: {:?}",
        api.writes()
    );
    let written: Widget = updates[0].object();
    let status = written.status.as_ref().expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&written, "Ready").status, ConditionStatus::True);
    assert_eq!(condition(&written, "Sized").status, ConditionStatus::True);
}

#[tokio::test]
async fn an_object_the_reconciler_does_not_accept_is_left_entirely_alone() {
    let reconciler = TestReconciler {
        foreign_size: Some(1),
        ..TestReconciler::finalizing(mark_sized, do_nothing)
    };
    let (api, driver) = setup(&widget("w"), reconciler);
    let action = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    assert_eq!(driver.reconciler().reconciled.load(Ordering::SeqCst), 0);
    assert_eq!(api.writes(), vec![], "no finalizer, no status");
    assert_eq!(api.events(), vec![]);
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_writes_nothing() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("first reconcile");
    api.clear_actions();
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("second reconcile");
    assert_eq!(api.writes(), vec![], "second pass must not write");
    assert_eq!(api.events(), vec![]);
}

#[tokio::test]
async fn conditions_are_initialised_to_unknown_before_reconcile_kind() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(do_nothing));
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    let written: Widget = api.status_updates()[0].object();
    assert_eq!(
        condition(&written, "Sized").status,
        ConditionStatus::Unknown
    );
    assert_eq!(
        condition(&written, "Ready").status,
        ConditionStatus::Unknown
    );
}

#[tokio::test]
async fn a_new_generation_resets_ready_to_unknown_until_the_reconciler_decides() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("first reconcile");
    // A spec change: generation 2, while the status still says Ready for generation 1.
    let mut w = (*stored(&api, "w")).clone();
    w.metadata.generation = Some(2);
    w.spec.size = 2;
    let driver = Driver::new(api.client(), TestReconciler::new(do_nothing));
    api.seed(&w);
    api.clear_actions();
    driver
        .reconcile(Arc::new(api.get::<Widget>("ns", "w").unwrap()))
        .await
        .expect("reconcile");
    let written: Widget = api.status_updates()[0].object();
    let ready = condition(&written, "Ready");
    assert_eq!(ready.status, ConditionStatus::Unknown);
    assert_eq!(ready.reason.as_deref(), Some("NewObservedGenFailure"));
    assert_eq!(written.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn a_status_conflict_is_retried_against_the_latest_object() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    api.fail_next(Verb::Update, "widgets/status", 409);
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile succeeds after the conflict");
    let verbs: Vec<(Verb, u16)> = api
        .actions()
        .iter()
        .filter(|a| a.resource == "widgets")
        .map(|a| (a.verb, a.code))
        .collect();
    assert_eq!(
        verbs,
        vec![(Verb::Update, 409), (Verb::Get, 200), (Verb::Update, 200)]
    );
    let w = stored(&api, "w");
    assert_eq!(condition(&w, "Ready").status, ConditionStatus::True);
}

/// Counts its passes in a status annotation, so that every pass writes the status.
fn count_passes(w: &mut Widget, ctx: &Context) -> Result<(), ReconcileError> {
    mark_sized(w, ctx)?;
    let annotations = &mut w.status.get_or_insert_default().annotations;
    let passes = annotations
        .get("passes")
        .map_or(0, |n| n.parse::<usize>().expect("a count"));
    annotations.insert("passes".into(), (passes + 1).to_string());
    Ok(())
}

fn status_writes(api: &RecordingApi) -> Vec<(Verb, u16)> {
    api.actions()
        .iter()
        .filter(|a| a.resource == "widgets")
        .map(|a| (a.verb, a.code))
        .collect()
}

#[tokio::test]
async fn a_pass_on_a_cached_copy_older_than_the_drivers_own_write_starts_from_that_write() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(count_passes));
    // The cache's copy, as it stays until the watch event of the first write arrives.
    let cached = stored(&api, "w");
    driver.reconcile(cached.clone()).await.expect("first pass");
    driver.reconcile(cached).await.expect("second pass");
    // Without the driver's memory of its write, the second pass would conflict (409), read the
    // object again and write a second time.
    assert_eq!(
        status_writes(&api),
        vec![(Verb::Update, 200), (Verb::Update, 200)]
    );
    let w = stored(&api, "w");
    assert_eq!(w.status.as_ref().unwrap().annotations["passes"], "2");
}

#[tokio::test]
async fn a_pass_on_a_cached_copy_from_before_the_finalizer_was_added_does_not_add_it_again() {
    let (api, driver) = setup(
        &widget("w"),
        TestReconciler::finalizing(mark_sized, do_nothing),
    );
    let cached = stored(&api, "w");
    driver.reconcile(cached.clone()).await.expect("first pass");
    api.clear_actions();
    // The first pass's finalizer patch and status write are not in the cache yet.
    driver.reconcile(cached).await.expect("second pass");
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

#[tokio::test]
async fn a_cached_copy_changed_by_someone_else_since_the_drivers_write_is_used_as_it_is() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(count_passes));
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("first pass");
    // A spec change after the driver's write: the cache's copy is the newest.
    let mut changed = (*stored(&api, "w")).clone();
    changed.spec.size = 2;
    let changed = kube::Api::<Widget>::namespaced(api.client(), "ns")
        .replace("w", &Default::default(), &changed)
        .await
        .expect("spec change");
    api.clear_actions();
    driver
        .reconcile(Arc::new(changed))
        .await
        .expect("second pass");
    assert_eq!(status_writes(&api), vec![(Verb::Update, 200)]);
    let w = stored(&api, "w");
    assert_eq!(w.spec.size, 2);
    assert_eq!(w.status.as_ref().unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn a_status_write_that_keeps_failing_is_an_error_with_an_update_failed_event() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    api.fail_next(Verb::Update, "widgets/status", 500);
    let err = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect_err("status write failed");
    assert!(err.to_string().contains("failed to update status"), "{err}");
    let reasons: Vec<String> = api.events().into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, vec!["UpdateFailed"]);
}

#[tokio::test]
async fn a_permanent_error_marks_ready_false_with_its_reason_and_is_not_retried() {
    fn fail(_: &mut Widget, _: &Context) -> Result<(), ReconcileError> {
        Err(ReconcileError::permanent(
            "NameConflict",
            "widget \"w\" is owned by someone else",
        ))
    }
    let (api, driver) = setup(&widget("w"), TestReconciler::new(fail));
    let action = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("permanent errors are not retried");
    assert_eq!(action, Action::await_change());
    let w = stored(&api, "w");
    let ready = condition(&w, "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("NameConflict"));
    let events = api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].type_.as_str(), events[0].reason.as_str()),
        ("Warning", "NameConflict")
    );
    assert_eq!(events[0].regarding, "w");
}

#[tokio::test]
async fn a_transient_error_publishes_internal_error_and_still_writes_the_status() {
    fn fail(_: &mut Widget, _: &Context) -> Result<(), ReconcileError> {
        Err(ReconcileError::transient("the registry timed out"))
    }
    let (api, driver) = setup(&widget("w"), TestReconciler::new(fail));
    let err = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect_err("transient errors are retried");
    assert!(err.to_string().contains("the registry timed out"));
    let events = api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].reason.as_str(), events[0].note.as_str()),
        ("InternalError", "the registry timed out")
    );
    assert_eq!(
        stored(&api, "w")
            .status
            .as_ref()
            .unwrap()
            .observed_generation,
        Some(1)
    );
}

#[tokio::test]
async fn requeue_after_requeues_without_an_event() {
    fn later(_: &mut Widget, _: &Context) -> Result<(), ReconcileError> {
        Err(ReconcileError::RequeueAfter(Duration::from_secs(7)))
    }
    let (api, driver) = setup(&widget("w"), TestReconciler::new(later));
    let action = driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("requeue is not a failure");
    assert_eq!(action, Action::requeue(Duration::from_secs(7)));
    assert_eq!(api.events(), vec![]);
}

#[tokio::test]
async fn transient_failures_back_off_exponentially_and_success_resets_the_backoff() {
    let (api, driver) = setup(&widget("w"), TestReconciler::new(mark_sized));
    let w = stored(&api, "w");
    let err = knative_core::reconciler::DriverError::Reconcile("boom".into());
    assert_eq!(
        driver.error_policy(&w, &err),
        Action::requeue(Duration::from_millis(5))
    );
    assert_eq!(
        driver.error_policy(&w, &err),
        Action::requeue(Duration::from_millis(10))
    );
    assert_eq!(
        driver.error_policy(&w, &err),
        Action::requeue(Duration::from_millis(20))
    );
    driver.reconcile(w.clone()).await.expect("reconcile");
    assert_eq!(
        driver.error_policy(&w, &err),
        Action::requeue(Duration::from_millis(5))
    );
}

#[tokio::test]
async fn a_finalizing_reconciler_gets_its_finalizer_added_before_reconcile_kind() {
    let (api, driver) = setup(
        &widget("w"),
        TestReconciler::finalizing(mark_sized, do_nothing),
    );
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    let patches = api.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].body.as_ref().unwrap()["metadata"]["finalizers"],
        serde_json::json!(["widgets.example.dev"])
    );
    let w = stored(&api, "w");
    assert_eq!(
        w.metadata.finalizers,
        Some(vec!["widgets.example.dev".to_owned()])
    );
    assert_eq!(
        condition(&w, "Ready").status,
        ConditionStatus::True,
        "status written after the finalizer patch"
    );
}

#[tokio::test]
async fn deletion_calls_finalize_kind_and_then_removes_the_finalizer() {
    let mut w = widget("w");
    w.metadata.finalizers = Some(vec![
        "widgets.example.dev".into(),
        "someone.else/keep".into(),
    ]);
    let (api, driver) = setup(&w, TestReconciler::finalizing(mark_sized, do_nothing));
    let client_api = kube::Api::<Widget>::namespaced(api.client(), "ns");
    client_api
        .delete("w", &Default::default())
        .await
        .expect("delete");
    driver.reconcile(stored(&api, "w")).await.expect("finalize");
    assert_eq!(driver.reconciler().finalized.load(Ordering::SeqCst), 1);
    assert_eq!(driver.reconciler().reconciled.load(Ordering::SeqCst), 0);
    assert_eq!(
        stored(&api, "w").metadata.finalizers,
        Some(vec!["someone.else/keep".to_owned()])
    );
}

#[tokio::test]
async fn the_object_is_gone_once_its_last_finalizer_is_removed() {
    let mut w = widget("w");
    w.metadata.finalizers = Some(vec!["widgets.example.dev".into()]);
    let (api, driver) = setup(&w, TestReconciler::finalizing(mark_sized, do_nothing));
    kube::Api::<Widget>::namespaced(api.client(), "ns")
        .delete("w", &Default::default())
        .await
        .expect("delete");
    driver.reconcile(stored(&api, "w")).await.expect("finalize");
    assert!(api.get::<Widget>("ns", "w").is_none());
}

#[tokio::test]
async fn a_failing_finalize_keeps_the_finalizer() {
    fn fail(_: &mut Widget, _: &Context) -> Result<(), ReconcileError> {
        Err(ReconcileError::transient("cannot reach the DNS provider"))
    }
    let mut w = widget("w");
    w.metadata.finalizers = Some(vec!["widgets.example.dev".into()]);
    let (api, driver) = setup(&w, TestReconciler::finalizing(mark_sized, fail));
    kube::Api::<Widget>::namespaced(api.client(), "ns")
        .delete("w", &Default::default())
        .await
        .expect("delete");
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect_err("finalize failed");
    assert_eq!(
        stored(&api, "w").metadata.finalizers,
        Some(vec!["widgets.example.dev".to_owned()])
    );
    assert_eq!(
        api.events()
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        vec!["InternalError"]
    );
}

#[tokio::test]
async fn a_deleted_object_without_our_finalizer_is_left_alone() {
    let mut w = widget("w");
    w.metadata.finalizers = Some(vec!["someone.else/keep".into()]);
    let (api, driver) = setup(&w, TestReconciler::new(mark_sized));
    kube::Api::<Widget>::namespaced(api.client(), "ns")
        .delete("w", &Default::default())
        .await
        .expect("delete");
    api.clear_actions();
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    assert_eq!(driver.reconciler().reconciled.load(Ordering::SeqCst), 0);
    assert_eq!(api.writes(), vec![]);
}

#[tokio::test]
async fn events_published_by_the_reconciler_are_recorded_against_the_object() {
    let reconciler = TestReconciler {
        announce: Some("Created"),
        ..TestReconciler::new(mark_sized)
    };
    let (api, driver) = setup(&widget("w"), reconciler);
    driver
        .reconcile(stored(&api, "w"))
        .await
        .expect("reconcile");
    let events = api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].type_.as_str(), events[0].reason.as_str()),
        ("Normal", "Created")
    );
    assert_eq!(
        (events[0].regarding.as_str(), events[0].note.as_str()),
        ("w", "made a thing")
    );
}
