//! `networking.internal.knative.dev/v1alpha1`: [`Ingress`] (host, path and header routing with
//! weighted splits, programmed by an ingress implementation) and [`ServerlessService`] (which
//! points a Revision's Kubernetes Service at its pods or at the activator).

mod ingress;
mod serverless_service;

pub use ingress::{
    HTTPIngressPath, HTTPIngressRuleValue, HeaderMatch, HttpOption,
    INGRESS_CONDITION_LOAD_BALANCER_READY, INGRESS_CONDITION_NETWORK_CONFIGURED, Ingress,
    IngressBackend, IngressBackendSplit, IngressRule, IngressSpec, IngressStatus, IngressTLS,
    IngressVisibility, LoadBalancerIngressStatus, LoadBalancerStatus,
};
pub use serverless_service::{
    SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED,
    SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED, ServerlessService,
    ServerlessServiceOperationMode, ServerlessServiceSpec, ServerlessServiceStatus,
};
