//! The webhook configurations that point the API server at the webhook.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::admission::Endpoint;
use super::check::Kind;

/// How the API server reaches the webhook, and for which objects: builds the
/// `admissionregistration.k8s.io/v1` ValidatingWebhookConfiguration (`/validate`) and
/// MutatingWebhookConfiguration (`/default`) to apply.
///
/// Both fail closed (`failurePolicy: Fail`), have no side effects, speak `AdmissionReview`
/// v1, and see CREATE and UPDATE of the main resource (not `/status`) of [`kinds`](Self::kinds).
///
/// ```
/// use knative_serving::webhook::Registration;
///
/// let registration = Registration::service("knative-serving", "webhook", 443, "-----BEGIN CERTIFICATE-----...");
/// let validating = registration.validating_webhook_configuration();
/// assert_eq!(validating.metadata.name.as_deref(), Some("validation.webhook.serving.knative.dev"));
/// let webhook = &validating.webhooks.as_ref().unwrap()[0];
/// assert_eq!(webhook.client_config.service.as_ref().unwrap().path.as_deref(), Some("/validate"));
/// ```
#[derive(Clone, Debug)]
pub struct Registration {
    /// The name of the ValidatingWebhookConfiguration and of its webhook (Knative's:
    /// `validation.webhook.serving.knative.dev`).
    pub validating_name: String,
    /// The name of the MutatingWebhookConfiguration and of its webhook (Knative's:
    /// `webhook.serving.knative.dev`).
    pub defaulting_name: String,
    /// Where the webhook is, without the endpoint's path (a `url` or a `service`), and the CA
    /// bundle that signed its certificate.
    pub client_config: WebhookClientConfig,
    /// The kinds sent to the webhook (default: [`Kind::SERVING`]).
    pub kinds: Vec<Kind>,
    /// Only objects in namespaces matching this selector are sent.
    pub namespace_selector: Option<LabelSelector>,
    /// Only objects matching this selector are sent.
    pub object_selector: Option<LabelSelector>,
    /// How long the API server waits for an answer (1 to 30 s; default 10).
    pub timeout_seconds: Option<i32>,
}

impl Registration {
    /// A webhook at `base_url` (`https://host:port`, no path), whose certificate `ca_pem`
    /// signed.
    pub fn url(base_url: &str, ca_pem: &str) -> Self {
        Self::with_client_config(WebhookClientConfig {
            url: Some(base_url.trim_end_matches('/').to_owned()),
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            ..WebhookClientConfig::default()
        })
    }

    /// A webhook behind the Kubernetes Service `namespace/name` on `port`, whose certificate
    /// `ca_pem` signed.
    pub fn service(namespace: &str, name: &str, port: i32, ca_pem: &str) -> Self {
        Self::with_client_config(WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port: Some(port),
                path: None,
            }),
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            ..WebhookClientConfig::default()
        })
    }

    fn with_client_config(client_config: WebhookClientConfig) -> Self {
        Registration {
            validating_name: "validation.webhook.serving.knative.dev".to_owned(),
            defaulting_name: "webhook.serving.knative.dev".to_owned(),
            client_config,
            kinds: Kind::SERVING.to_vec(),
            namespace_selector: None,
            object_selector: None,
            timeout_seconds: None,
        }
    }

    /// The ValidatingWebhookConfiguration, calling `/validate`.
    pub fn validating_webhook_configuration(&self) -> ValidatingWebhookConfiguration {
        ValidatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(self.validating_name.clone()),
                ..ObjectMeta::default()
            },
            webhooks: Some(vec![ValidatingWebhook {
                name: self.validating_name.clone(),
                client_config: self.client_config_for(Endpoint::Validate),
                rules: Some(self.rules()),
                failure_policy: Some("Fail".to_owned()),
                side_effects: "None".to_owned(),
                admission_review_versions: vec!["v1".to_owned()],
                namespace_selector: self.namespace_selector.clone(),
                object_selector: self.object_selector.clone(),
                timeout_seconds: self.timeout_seconds,
                ..ValidatingWebhook::default()
            }]),
        }
    }

    /// The MutatingWebhookConfiguration, calling `/default`.
    pub fn mutating_webhook_configuration(&self) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(self.defaulting_name.clone()),
                ..ObjectMeta::default()
            },
            webhooks: Some(vec![MutatingWebhook {
                name: self.defaulting_name.clone(),
                client_config: self.client_config_for(Endpoint::Default),
                rules: Some(self.rules()),
                failure_policy: Some("Fail".to_owned()),
                side_effects: "None".to_owned(),
                admission_review_versions: vec!["v1".to_owned()],
                namespace_selector: self.namespace_selector.clone(),
                object_selector: self.object_selector.clone(),
                timeout_seconds: self.timeout_seconds,
                ..MutatingWebhook::default()
            }]),
        }
    }

    /// Creates or updates both configurations on the cluster of `client` (server-side apply,
    /// field manager `knative-webhook`): from then on, the API server calls the webhook.
    ///
    /// # Errors
    /// When the API server refuses either configuration.
    pub async fn apply(&self, client: &kube::Client) -> Result<(), kube::Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .patch(
                &self.validating_name,
                &params,
                &Patch::Apply(self.validating_webhook_configuration()),
            )
            .await?;
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .patch(
                &self.defaulting_name,
                &params,
                &Patch::Apply(self.mutating_webhook_configuration()),
            )
            .await?;
        Ok(())
    }

    /// Deletes both configurations from the cluster of `client`; ones already gone are fine.
    ///
    /// # Errors
    /// When the API server refuses a deletion (other than with 404 Not Found). Both deletions
    /// are attempted either way.
    pub async fn delete(&self, client: &kube::Client) -> Result<(), kube::Error> {
        let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .delete(&self.validating_name, &DeleteParams::default())
            .await
            .map(|_| ());
        let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(&self.defaulting_name, &DeleteParams::default())
            .await
            .map(|_| ());
        ignore_not_found(validating).and(ignore_not_found(mutating))
    }

    fn client_config_for(&self, endpoint: Endpoint) -> WebhookClientConfig {
        let mut config = self.client_config.clone();
        if let Some(url) = &mut config.url {
            url.push_str(endpoint.path());
        }
        if let Some(service) = &mut config.service {
            service.path = Some(endpoint.path().to_owned());
        }
        config
    }

    fn rules(&self) -> Vec<RuleWithOperations> {
        self.kinds
            .iter()
            .map(|kind| RuleWithOperations {
                api_groups: Some(vec![kind.group().to_owned()]),
                api_versions: Some(vec![kind.version().to_owned()]),
                resources: Some(vec![kind.plural().to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            })
            .collect()
    }
}

/// The field manager of [`Registration::apply`].
const FIELD_MANAGER: &str = "knative-webhook";

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_url_registration_calls_each_endpoint_on_its_path() {
        let mut registration = Registration::url("https://127.0.0.1:8443/", "PEM");
        registration.kinds = vec![Kind::Service];
        let validating =
            serde_json::to_value(registration.validating_webhook_configuration()).unwrap();
        let mutating = serde_json::to_value(registration.mutating_webhook_configuration()).unwrap();
        assert_eq!(
            validating["webhooks"][0],
            json!({
                "name": "validation.webhook.serving.knative.dev",
                "clientConfig": { "url": "https://127.0.0.1:8443/validate", "caBundle": "UEVN" },
                "rules": [{
                    "apiGroups": ["serving.knative.dev"],
                    "apiVersions": ["v1"],
                    "resources": ["services"],
                    "operations": ["CREATE", "UPDATE"],
                    "scope": "Namespaced",
                }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            })
        );
        assert_eq!(mutating["metadata"]["name"], "webhook.serving.knative.dev");
        assert_eq!(
            mutating["webhooks"][0]["clientConfig"]["url"],
            "https://127.0.0.1:8443/default"
        );
    }
}
