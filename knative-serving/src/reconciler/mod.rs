//! Reconcilers of the Serving resources, each a [`knative_core::reconciler::Reconciler`] run by
//! knative-core's generic driver.

pub mod autoscaling;
pub(crate) mod children;
pub mod configuration;
pub mod gc;
pub mod labeler;
pub mod revision;
pub mod route;
pub mod serverlessservice;
pub mod service;
