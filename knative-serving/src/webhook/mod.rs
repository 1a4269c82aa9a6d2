//! Validation and defaulting of Knative objects, served three ways from one implementation.
//!
//! - As a library call: [`check`] takes any object as JSON and says whether it is a kind this
//!   crate knows ([`Kind`]) and, if so, gives its defaulted form and its validation result
//!   ([`Outcome`]); [`check_yaml`] does the same for every document of a YAML stream.
//!   Fields of the wrong type and unknown enum values come back as a [`FieldError`] naming the
//!   field, like any other validation error.
//! - As a command: `knative validate -f FILE` is [`check_yaml`] plus printing.
//! - As Kubernetes admission webhooks: [`Webhook`] answers `AdmissionReview`s on `/validate`
//!   (a ValidatingAdmissionWebhook) and `/default` (a MutatingAdmissionWebhook, with an
//!   RFC 6902 patch from the object to its defaulted form); [`WebhookServer`] serves it over
//!   HTTPS, with a certificate from PEM files ([`tls_config`]) or generated ([`self_signed`]);
//!   [`Registration`] builds the webhook configurations that point the API server at it.
//!
//! Validation runs on the defaulted object, as on a cluster, where the API server calls the
//! defaulting webhook before the validating one.
//!
//! ```
//! use knative_serving::apis::Defaults;
//! use knative_serving::webhook::{self, Outcome};
//!
//! let ksvc = serde_json::json!({
//!     "apiVersion": "serving.knative.dev/v1",
//!     "kind": "Service",
//!     "metadata": { "name": "hello" },
//!     "spec": { "template": { "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go" }] } } },
//! });
//! let Outcome::Checked { defaulted, validation, .. } = webhook::check(&ksvc, &Defaults::default()) else {
//!     panic!("a Service is a Knative kind");
//! };
//! assert!(validation.is_ok());
//! assert_eq!(defaulted["spec"]["template"]["spec"]["containers"][0]["name"], "user-container");
//! assert_eq!(defaulted["spec"]["traffic"][0]["percent"], 100);
//!
//! // The same object with a field of the wrong type.
//! let mut broken = ksvc.clone();
//! broken["spec"]["template"]["spec"]["timeoutSeconds"] = "soon".into();
//! let Outcome::Malformed { error, .. } = webhook::check(&broken, &Defaults::default()) else {
//!     panic!("timeoutSeconds is an integer");
//! };
//! assert_eq!(
//!     error.to_string(),
//!     r#"invalid type: string "soon", expected an integer: spec.template.spec.timeoutSeconds"#
//! );
//!
//! // Not a Knative kind: nothing to say about it.
//! let cm = serde_json::json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "foo" } });
//! assert!(matches!(webhook::check(&cm, &Defaults::default()), Outcome::Unknown { .. }));
//! ```

mod admission;
mod check;
mod decode;
mod patch;
mod registration;
mod server;
mod tls;

pub use crate::apis::FieldError;
pub use admission::{Endpoint, MAX_BODY_BYTES, ReviewError, Webhook};
pub use check::{Context, Document, Kind, Outcome, YamlError, check, check_in, check_yaml};
pub use patch::json_patch;
pub use registration::Registration;
pub use server::WebhookServer;
pub use tls::{SelfSigned, TlsError, load_tls_config, self_signed, tls_config};
