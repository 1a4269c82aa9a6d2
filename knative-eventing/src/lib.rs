//! # knative-eventing
//!
//! Knative Eventing in Rust: brokers, triggers, channels, subscriptions, flows and sources over
//! CloudEvents.
//!
//! - [`apis`]: the object model and its validation; [`crds()`] their CustomResourceDefinitions.
//! - [`reconciler`]: the control plane.
//! - [`resolver`]: a Destination to a URL, through the Addressable duck type.
//! - [`filter`]: Trigger filters and the CloudEvents subscriptions-API dialects.
//! - [`delivery`]: retries, backoff, timeouts, dead-letter sinks, replies.
//! - [`broker`], [`channel`]: data planes.
//! - [`sources`]: event sources' adapters.
//!
//! ```
//! let names: Vec<String> = knative_eventing::crds()
//!     .into_iter()
//!     .filter_map(|crd| crd.metadata.name)
//!     .collect();
//! assert!(names.contains(&"triggers.eventing.knative.dev".to_owned()));
//! assert!(names.contains(&"pingsources.sources.knative.dev".to_owned()));
//! ```

pub mod apis;
pub mod broker;
pub mod channel;
pub mod delivery;
pub mod filter;
pub mod reconciler;
pub mod resolver;
pub mod sources;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CustomResourceDefinitions of every Eventing kind, labelled as Knative labels its own
/// (`app.kubernetes.io/name: knative-eventing`, `knative.dev/crd-install: "true"`) with
/// Knative's duck labels: addressable Brokers, Channels, InMemoryChannels, Sequences and
/// Parallels; subscribable channels; sources; and SinkBinding as a binding.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let addressable = ("duck.knative.dev/addressable", "true");
    let subscribable = ("messaging.knative.dev/subscribable", "true");
    let source = [
        ("duck.knative.dev/source", "true"),
        ("eventing.knative.dev/source", "true"),
    ];
    let binding = ("duck.knative.dev/binding", "true");
    vec![
        labelled(apis::Broker::crd(), &[addressable]),
        labelled(apis::Trigger::crd(), &[]),
        labelled(apis::EventType::crd(), &[]),
        labelled(apis::Channel::crd(), &[addressable, subscribable]),
        labelled(apis::InMemoryChannel::crd(), &[addressable, subscribable]),
        labelled(apis::Subscription::crd(), &[]),
        labelled(apis::Sequence::crd(), &[addressable]),
        labelled(apis::Parallel::crd(), &[addressable]),
        labelled(apis::PingSource::crd(), &source),
        labelled(apis::ApiServerSource::crd(), &source),
        labelled(apis::ContainerSource::crd(), &source),
        labelled(apis::SinkBinding::crd(), &[source[0], source[1], binding]),
    ]
}

fn labelled(
    mut crd: CustomResourceDefinition,
    duck_labels: &[(&str, &str)],
) -> CustomResourceDefinition {
    optional_spec(&mut crd);
    let labels = crd.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        "app.kubernetes.io/name".to_owned(),
        "knative-eventing".to_owned(),
    );
    labels.insert("knative.dev/crd-install".to_owned(), "true".to_owned());
    for (key, value) in duck_labels {
        labels.insert((*key).to_owned(), (*value).to_owned());
    }
    crd
}

/// Knative's manifests may leave `spec` out (a Broker often has none): the API server must
/// accept that, and default it to `{}` so that every stored object decodes into our types.
fn optional_spec(crd: &mut CustomResourceDefinition) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON;
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = &mut schema.required {
            required.retain(|r| r != "spec");
        }
        if let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            spec.default = Some(JSON(serde_json::json!({})));
        }
    }
}
