//! Networking: the internal `networking.internal.knative.dev` resources ([`v1alpha1`]) through
//! which a Route programs ingress and a Revision switches between its pods and the activator.

pub mod v1alpha1;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The internal networking group, of [`v1alpha1::Ingress`] and
/// [`v1alpha1::ServerlessService`].
pub const INTERNAL_GROUP_NAME: &str = "networking.internal.knative.dev";

/// The annotation on an Ingress naming the ingress implementation that programs it.
pub const INGRESS_CLASS_ANNOTATION_KEY: &str = "networking.knative.dev/ingress.class";

/// The application-layer protocol a Revision speaks, from its port name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProtocolType {
    /// HTTP/1.1 (the default).
    #[default]
    #[serde(rename = "http1")]
    Http1,
    /// HTTP/2 without TLS.
    #[serde(rename = "h2c")]
    H2c,
}
