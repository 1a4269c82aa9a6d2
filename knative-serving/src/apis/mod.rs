//! Knative Serving's object model, wire-compatible with Knative's YAML.
//!
//! - [`serving::v1`]: `serving.knative.dev/v1` [`Service`], [`Configuration`], [`Revision`],
//!   [`Route`] — the resources users write.
//! - [`autoscaling::v1alpha1`]: `autoscaling.internal.knative.dev/v1alpha1` [`PodAutoscaler`];
//!   [`autoscaling`] also holds the `autoscaling.knative.dev/*` annotation keys and their
//!   validation.
//! - [`networking::v1alpha1`]: `networking.internal.knative.dev/v1alpha1` [`Ingress`] and
//!   [`ServerlessService`].
//!
//! Every user-facing kind validates with [`Validate`] and defaults with [`SetDefaults`], as
//! Knative's webhook does, using the values of [`Defaults`] (Knative's `config-defaults`).
//! Errors are [`FieldError`]s with paths such as `spec.traffic[0].percent`, rendered with
//! Knative's messages.
//!
//! ```
//! use knative_serving::apis::{Defaults, Service, SetDefaults, Validate};
//!
//! let mut ksvc: Service = serde_yaml::from_str(r#"
//! apiVersion: serving.knative.dev/v1
//! kind: Service
//! metadata:
//!   name: hello
//! spec:
//!   template:
//!     spec:
//!       containers:
//!         - image: ghcr.io/knative/helloworld-go:latest
//!   traffic:
//!     - latestRevision: true
//!       percent: 90
//! "#).unwrap();
//! assert_eq!(
//!     ksvc.validate().unwrap_err().to_string(),
//!     "Traffic targets sum to 90, want 100: spec.traffic"
//! );
//! ksvc.spec.route.traffic[0].percent = Some(100);
//! ksvc.set_defaults(&Defaults::default());
//! assert!(ksvc.validate().is_ok());
//! assert_eq!(ksvc.spec.configuration.template.spec.timeout_seconds, Some(300));
//! ```

pub mod autoscaling;
pub mod networking;
pub mod serving;

mod names;
mod schema;

pub use knative_core::apis::FieldError;

pub use autoscaling::v1alpha1::{PodAutoscaler, PodAutoscalerSpec, PodAutoscalerStatus};
pub use networking::v1alpha1::{
    Ingress, IngressSpec, IngressStatus, ServerlessService, ServerlessServiceSpec,
    ServerlessServiceStatus,
};
pub use serving::v1::{
    Configuration, ConfigurationSpec, ConfigurationStatus, Revision, RevisionSpec, RevisionStatus,
    RevisionTemplateSpec, Route, RouteSpec, RouteStatus, Service, ServiceSpec, ServiceStatus,
    TrafficTarget,
};

/// A resource that checks itself as Knative's admission webhook does.
pub trait Validate {
    /// Validates with the limits of [`Defaults::default()`] (Knative's stock `config-defaults`).
    fn validate(&self) -> Result<(), FieldError> {
        self.validate_with(&Defaults::default())
    }

    /// Validates against the limits in `defaults` (maximum timeout, container concurrency, ...).
    ///
    /// Every problem found is reported, each with the path of the field concerned.
    fn validate_with(&self, defaults: &Defaults) -> Result<(), FieldError>;
}

/// A resource that fills in unset fields as Knative's defaulting webhook does.
pub trait SetDefaults {
    /// Sets every unset field that Knative defaults, from `defaults`. Idempotent.
    fn set_defaults(&mut self, defaults: &Defaults);
}

/// The values of Knative's `config-defaults` (and the `config-features` switches) that
/// defaulting and validation need; [`Defaults::default()`] holds Knative's stock values.
///
/// A plain struct, so that this module does not depend on how configuration is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// `revision-timeout-seconds`: the request timeout given to a Revision that sets none (300).
    pub revision_timeout_seconds: i64,
    /// `max-revision-timeout-seconds`: the largest timeout a Revision may ask for (600).
    pub max_revision_timeout_seconds: i64,
    /// `container-concurrency`: the hard concurrency limit given to a Revision that sets none
    /// (0: unlimited).
    pub container_concurrency: i64,
    /// `container-concurrency-max-limit`: the largest `containerConcurrency` allowed (1000).
    pub container_concurrency_max_limit: i64,
    /// `allow-container-concurrency-zero`: whether `containerConcurrency: 0` (unlimited) is
    /// allowed (true).
    pub allow_container_concurrency_zero: bool,
    /// `container-name-template`: the name given to an unnamed serving container
    /// (`user-container`; `user-container-0`, ... when there are several).
    pub user_container_name: String,
    /// `init-container-name-template`: the name given to an unnamed init container
    /// (`init-container`).
    pub init_container_name: String,
    /// `enable-service-links`: the `enableServiceLinks` given to a pod spec that sets none
    /// (`Some(false)`, so that pods do not receive one environment variable per Service).
    pub enable_service_links: Option<bool>,
    /// `kubernetes.podspec-init-containers` is enabled (Knative's default: off).
    pub init_containers: bool,
    /// `multi-container` is enabled (Knative's default: on).
    pub multi_container: bool,
    /// `allow-zero-initial-scale` (`config-autoscaler`): whether
    /// `autoscaling.knative.dev/initial-scale: "0"` is allowed (false).
    pub allow_zero_initial_scale: bool,
    /// `max-scale-limit` (`config-autoscaler`): the largest `max-scale` a Revision may ask for
    /// (0: no limit).
    pub max_scale_limit: i32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            revision_timeout_seconds: 300,
            max_revision_timeout_seconds: 600,
            container_concurrency: 0,
            container_concurrency_max_limit: 1000,
            allow_container_concurrency_zero: true,
            user_container_name: "user-container".to_owned(),
            init_container_name: "init-container".to_owned(),
            enable_service_links: Some(false),
            init_containers: false,
            multi_container: true,
            allow_zero_initial_scale: false,
            max_scale_limit: 0,
        }
    }
}
