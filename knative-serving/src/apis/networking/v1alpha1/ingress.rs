//! Ingress: the routing a Route asks of the ingress implementation.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use knative_core::apis::{ConditionSet, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition: the ingress implementation programmed the routes.
pub const INGRESS_CONDITION_NETWORK_CONFIGURED: &str = "NetworkConfigured";
/// Condition: the load balancer serves the routes.
pub const INGRESS_CONDITION_LOAD_BALANCER_READY: &str = "LoadBalancerReady";

/// The desired state of an Ingress: host rules, each routing paths to weighted splits of
/// Kubernetes Services (`networking.internal.knative.dev/v1alpha1` Ingress).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.internal.knative.dev",
    version = "v1alpha1",
    kind = "Ingress",
    plural = "ingresses",
    namespaced,
    status = "IngressStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "kingress",
    shortname = "king",
    category = "knative-internal",
    category = "networking",
    doc = "Ingress is a collection of rules that allow inbound connections to reach the endpoints defined by a backend. An Ingress can be configured to give services externally-reachable URLs, load balance traffic, offer name based virtual hosting, etc.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// TLS termination: the certificates for sets of hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<IngressTLS>,

    /// The host rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<IngressRule>,

    /// What plain HTTP does when TLS is configured: serve, or redirect to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_option: Option<HttpOption>,
}

/// TLS termination for a set of hosts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressTLS {
    /// The hosts the certificate covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The Secret holding the certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The namespace of that Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_namespace: Option<String>,
}

/// What plain HTTP does on an Ingress with TLS.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpOption {
    /// Serve plain HTTP as well.
    Enabled,
    /// Redirect plain HTTP to HTTPS.
    Redirected,
}

/// The routing of a set of hosts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// The hosts this rule applies to (the first matching rule wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// Where the hosts are exposed: `ExternalIP` (the default) or `ClusterLocal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<IngressVisibility>,

    /// The HTTP routing of the hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HTTPIngressRuleValue>,
}

/// Where an Ingress rule's hosts are exposed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IngressVisibility {
    /// On the public gateway.
    #[default]
    ExternalIP,
    /// Inside the cluster only.
    ClusterLocal,
}

/// The HTTP paths of an Ingress rule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct HTTPIngressRuleValue {
    /// The paths, the first match taking precedence.
    pub paths: Vec<HTTPIngressPath>,
}

/// Requests matching a path prefix and headers, and the backends they are split over.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HTTPIngressPath {
    /// The path prefix to match (all paths when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// Rewrites the request's `Host` header (experimental in Knative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_host: Option<String>,

    /// Headers a request must carry to match, by name (exact matches).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderMatch>,

    /// The backends, weighted by percent.
    pub splits: Vec<IngressBackendSplit>,

    /// Headers added to matching requests before they are forwarded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub append_headers: BTreeMap<String, String>,
}

/// A header value a request must carry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The exact value.
    pub exact: String,
}

/// A backend and its share of a path's traffic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendSplit {
    /// The Kubernetes Service receiving this share.
    #[serde(flatten)]
    pub backend: IngressBackend,

    /// The share of traffic, in percent (a lone split takes 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,

    /// Headers added to requests sent to this backend.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub append_headers: BTreeMap<String, String>,
}

/// A Kubernetes Service port, possibly in another namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    /// The Service's namespace.
    pub service_namespace: String,
    /// The Service's name.
    pub service_name: String,
    /// The Service's port, by number or name.
    pub service_port: IntOrString,
}

impl Default for IngressBackend {
    fn default() -> Self {
        IngressBackend {
            service_namespace: String::new(),
            service_name: String::new(),
            service_port: IntOrString::Int(0),
        }
    }
}

/// The observed state of an Ingress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The load balancer (deprecated in Knative in favour of the public and private ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,

    /// The load balancer of the external rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_load_balancer: Option<LoadBalancerStatus>,

    /// The load balancer of the cluster-local rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_load_balancer: Option<LoadBalancerStatus>,
}

/// The ingress points of a load balancer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancerStatus {
    /// Where traffic for the Ingress should be sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngressStatus>,
}

/// One ingress point of a load balancer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngressStatus {
    /// Its IP address (IP-based load balancers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Its DNS name (DNS-based load balancers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Its cluster-local DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_internal: Option<String>,
    /// Whether it is only reachable through a service mesh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mesh_only: bool,
}

impl KnativeStatus for IngressStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Ingress {
    /// `Ready` from `NetworkConfigured` and `LoadBalancerReady`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                INGRESS_CONDITION_NETWORK_CONFIGURED,
                INGRESS_CONDITION_LOAD_BALANCER_READY,
            ])
        });
        &SET
    }
}
