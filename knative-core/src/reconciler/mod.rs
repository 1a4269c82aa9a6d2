//! The [`Reconciler`] trait and the generic [`Driver`] that runs it on `kube::runtime`.
//!
//! A user writes what Knative users write in Go — `ReconcileKind` and, optionally,
//! `FinalizeKind` — and the driver does what knative.dev/pkg's generated reconcilers do for every
//! resource:
//!
//! 1. takes the object from the controller's store (which holds objects as [`Compact`]: metadata
//!    decoded, the rest as JSON) and decodes it;
//! 2. adds the finalizer when the reconciler finalizes (before the first `reconcile_kind`);
//! 3. initialises the status' conditions and, on a new generation, sets the happy condition
//!    Unknown (`NewObservedGenFailure`) for the reconciler to overwrite;
//! 4. calls [`Reconciler::reconcile_kind`] (or [`Reconciler::finalize_kind`] once deletion has
//!    begun, then removes the finalizer);
//! 5. stamps `observedGeneration`, keeps `lastTransitionTime` of conditions that did not change,
//!    and writes `/status` only when the status differs, retrying on 409 conflicts against the
//!    latest object;
//! 6. publishes Events (events.k8s.io/v1) for errors, and maps [`ReconcileError`]s to
//!    no-retry, backoff or requeue-after.
//!
//! The controller a driver runs is a `kube::runtime::Controller<Compact<K>>`: configure it in
//! [`Driver::run_with`] as any kube controller (`owns`, `watches`, `owns_shared_stream` with
//! [`Caches::changes`]); objects reach the reconciler decoded.
//!
//! ```no_run
//! use async_trait::async_trait;
//! use knative_core::apis::{ConditionSet, KnativeObject};
//! use knative_core::reconciler::{Context, Driver, ReconcileError, Reconciler};
//! # use knative_core::apis::Status;
//! # use kube::CustomResource;
//! # use schemars::JsonSchema;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default)]
//! # #[kube(group = "example.dev", version = "v1", kind = "Widget", namespaced, status = "Status")]
//! # pub struct WidgetSpec { size: i32 }
//! # impl KnativeObject for Widget {
//! #     fn condition_set() -> &'static ConditionSet {
//! #         static SET: std::sync::LazyLock<ConditionSet> = std::sync::LazyLock::new(|| ConditionSet::living(&[]));
//! #         &SET
//! #     }
//! # }
//!
//! struct WidgetReconciler;
//!
//! #[async_trait]
//! impl Reconciler<Widget> for WidgetReconciler {
//!     async fn reconcile_kind(&self, widget: &mut Widget, ctx: &Context) -> Result<(), ReconcileError> {
//!         // Create or update the widget's children with ctx.client() here, then report:
//!         widget.manage_conditions(ctx.now()).mark_true("Ready");
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), kube::Error> {
//! let client = kube::Client::try_default().await?;
//! Driver::new(client, WidgetReconciler).run().await;
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod compact;
mod driver;
mod error;
pub mod events;

pub use cache::{Caches, Lister};
pub use compact::Compact;
pub use driver::{Context, DEFAULT_CONCURRENCY, Driver, DriverOptions};
pub use error::{DriverError, ReconcileError, failure_backoff};
pub use events::EventPublisher;

use async_trait::async_trait;

use crate::apis::KnativeObject;

/// What a user implements to reconcile one kind of resource (knative.dev/pkg's `Interface` and
/// `Finalizer`).
///
/// `reconcile_kind` receives a copy of the object whose status the driver will write back; the
/// spec and metadata changes it makes are ignored (write children, not the parent).
#[async_trait]
pub trait Reconciler<K: KnativeObject>: Send + Sync + 'static {
    /// Brings the world in line with `obj`'s spec and records what it saw in `obj`'s status.
    async fn reconcile_kind(&self, obj: &mut K, ctx: &Context) -> Result<(), ReconcileError>;

    /// Cleans up what `obj` owns outside Kubernetes' garbage collection, once deletion began.
    /// Only called when [`Reconciler::uses_finalizer`] is `true`; the finalizer is removed when
    /// this returns `Ok`.
    async fn finalize_kind(&self, obj: &mut K, ctx: &Context) -> Result<(), ReconcileError> {
        let _ = (obj, ctx);
        Ok(())
    }

    /// Whether the driver should manage a finalizer and call [`Reconciler::finalize_kind`].
    fn uses_finalizer(&self) -> bool {
        false
    }

    /// Whether `obj` is this reconciler's to reconcile: knative.dev/pkg's class filter (a
    /// PodAutoscaler of a class another autoscaler serves, an Ingress of another class). For an
    /// object it does not accept, the driver does nothing at all: no finalizer, no conditions,
    /// no status write, no Event. `config` is the pass's configuration (where a default class
    /// comes from). Default: every object.
    fn accepts(&self, obj: &K, config: &crate::config::Config) -> bool {
        let _ = (obj, config);
        true
    }
}
