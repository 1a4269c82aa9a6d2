//! The `serving.knative.dev` API group: its resources ([`v1`]) and the labels and annotations
//! Knative Serving puts on them.

pub mod v1;

mod metadata;
mod pod_spec;

/// The API group of Knative Serving's public resources.
pub const GROUP_NAME: &str = "serving.knative.dev";

/// Label on a Configuration, Route or Revision: the Service that owns it.
pub const SERVICE_LABEL_KEY: &str = "serving.knative.dev/service";
/// Label on a Revision: the Configuration that created it.
pub const CONFIGURATION_LABEL_KEY: &str = "serving.knative.dev/configuration";
/// Label on a Revision: the generation of the Configuration that created it.
pub const CONFIGURATION_GENERATION_LABEL_KEY: &str = "serving.knative.dev/configurationGeneration";
/// Label on a Revision or Configuration: the Route that sends it traffic.
pub const ROUTE_LABEL_KEY: &str = "serving.knative.dev/route";
/// Label on a Revision: its routing state (`active`, `reserve`, `pending`).
pub const ROUTING_STATE_LABEL_KEY: &str = "serving.knative.dev/routingState";
/// Label on a Service or Route: `cluster-local` keeps it off the public gateway.
pub const VISIBILITY_LABEL_KEY: &str = "networking.knative.dev/visibility";
/// The obsolete spelling of [`VISIBILITY_LABEL_KEY`], still accepted on Configurations.
pub const VISIBILITY_LABEL_KEY_OBSOLETE: &str = "serving.knative.dev/visibility";
/// The one value of [`VISIBILITY_LABEL_KEY`].
pub const VISIBILITY_CLUSTER_LOCAL: &str = "cluster-local";

/// Annotation: the user who created the resource.
pub const CREATOR_ANNOTATION: &str = "serving.knative.dev/creator";
/// Annotation: the user who last updated the resource's spec.
pub const UPDATER_ANNOTATION: &str = "serving.knative.dev/lastModifier";
/// Annotation on a Revision: when it was last pinned by a Route.
pub const REVISION_LAST_PINNED_ANNOTATION_KEY: &str = "serving.knative.dev/lastPinned";
/// Annotation on a Revision: when its routing state last changed.
pub const ROUTING_STATE_MODIFIED_ANNOTATION_KEY: &str = "serving.knative.dev/routingStateModified";
/// Annotation forcing an upgrade of a resource's stored version.
pub const FORCE_UPGRADE_ANNOTATION_KEY: &str = "serving.knative.dev/forceUpgrade";
/// Annotation on a Revision: keep it from garbage collection.
pub const REVISION_PRESERVED_ANNOTATION_KEY: &str = "serving.knative.dev/no-gc";
/// Annotation on a Revision: the Routes that send it traffic.
pub const ROUTES_ANNOTATION_KEY: &str = "serving.knative.dev/routes";
/// Annotation on a Route or Service: how long a gradual rollout of a new Revision takes.
pub const ROLLOUT_DURATION_KEY: &str = "serving.knative.dev/rollout-duration";
/// Annotation on a revision template: the share of the user container's resources the
/// queue-proxy sidecar gets, in percent.
pub const QUEUE_SIDECAR_RESOURCE_PERCENTAGE_ANNOTATION_KEY: &str =
    "queue.sidecar.serving.knative.dev/resource-percentage";

/// The environment variables Knative sets in the serving container, which users may not set.
pub const RESERVED_ENV_VARS: [&str; 4] = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
/// The container ports the queue-proxy sidecar listens on (plus the profiling port), which the
/// user's containers may not use.
pub const RESERVED_PORTS: [i32; 6] = [8012, 8013, 8022, 9090, 9091, 8008];
/// The container names Knative keeps for itself.
pub const RESERVED_CONTAINER_NAMES: [&str; 1] = ["queue-proxy"];
