//! # knative-local
//!
//! Knative on one machine, no cluster needed.
//!
//! - [`runtime`]: a process runtime that acts as the kubelet for Pods whose containers name
//!   local executables (`image: local:///absolute/path`): each Pod gets its own loopback
//!   address (127.0.0.x), each container runs as a process (in its own process group) with its
//!   `env`, `args` and a `PORT`, readiness comes from the Pods' probes, and the Pod's status
//!   is written back so that Endpoints, Deployments and Knative's reconcilers see it as on a
//!   cluster. It works against any API server: the test environment's kube-apiserver (whose
//!   kube-controller-manager creates the Pods), or the embedded one.
//! - [`endpoints`]: an Endpoints controller for clusters that have none (the embedded API
//!   server; a real one refuses the loopback addresses of these Pods in Endpoints).
//! - [`deployments`]: a Deployment controller for the embedded API server (it has no
//!   kube-controller-manager): Pods per template, scaling, replacement and status.
//! - [`queue_proxy`]: Knative's queue-proxy as an in-process [`runtime::Sidecar`].

pub mod deployments;
pub mod endpoints;
pub mod queue_proxy;
pub mod runtime;
