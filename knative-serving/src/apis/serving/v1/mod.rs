//! `serving.knative.dev/v1`: [`Service`], [`Configuration`], [`Revision`] and [`Route`].
//!
//! A Service owns one Configuration and one Route of its name. Every change of the
//! Configuration's `template` stamps out an immutable Revision (`<name>-00001`, ...); the Route
//! splits traffic over Revisions, following the Configuration's latest ready one where a target
//! says `latestRevision: true`.

mod configuration;
mod revision;
mod route;
mod service;

pub use configuration::{
    Configuration, ConfigurationSpec, ConfigurationStatus, ConfigurationStatusFields,
};
pub use revision::{
    ContainerStatus, REVISION_CONDITION_ACTIVE, REVISION_CONDITION_CONTAINER_HEALTHY,
    REVISION_CONDITION_RESOURCES_AVAILABLE, Revision, RevisionSpec, RevisionStatus,
    RevisionTemplateSpec,
};
pub use route::{
    ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED, ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
    ROUTE_CONDITION_INGRESS_READY, Route, RouteSpec, RouteStatus, RouteStatusFields, TrafficTarget,
};
pub use service::{
    SERVICE_CONDITION_CONFIGURATIONS_READY, SERVICE_CONDITION_ROUTES_READY, Service, ServiceSpec,
    ServiceStatus,
};
