//! The offline check of a Kubernetes object of an Eventing kind: decode, default, validate, as
//! Knative's webhooks do. `knative validate -f` uses it.
//!
//! ```
//! use knative_eventing::apis::{Defaults, check::check};
//!
//! let object = serde_json::json!({
//!     "apiVersion": "sources.knative.dev/v1",
//!     "kind": "PingSource",
//!     "metadata": {"name": "ping", "namespace": "default"},
//!     "spec": {"schedule": "61 * * * *", "sink": {"uri": "http://example.com"}}
//! });
//! let outcome = check(&object, &Defaults::default()).expect("an Eventing kind");
//! assert_eq!(
//!     outcome.unwrap_err().to_string(),
//!     "invalid value: end of range (61) above maximum (59): 61: spec.schedule"
//! );
//! assert!(check(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}), &Defaults::default()).is_none());
//! ```

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::apis::{
    ApiServerSource, Broker, Channel, ContainerSource, Defaults, EventType, FieldError,
    InMemoryChannel, Parallel, PingSource, Sequence, SetDefaults, SinkBinding, Subscription,
    Trigger, Validate,
};

/// Checks `object` when it is of an Eventing kind (`None` otherwise): the defaulted object,
/// or every problem found with its field path (decoding errors included).
pub fn check(object: &Value, defaults: &Defaults) -> Option<Result<Value, FieldError>> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    macro_rules! dispatch {
        ($($t:ty),*) => {
            $(
                if api_version == <$t>::api_version(&()) && kind == <$t>::kind(&()) {
                    return Some(checked::<$t>(object, defaults));
                }
            )*
        };
    }
    dispatch!(
        Broker,
        Trigger,
        EventType,
        Channel,
        InMemoryChannel,
        Subscription,
        Sequence,
        Parallel,
        PingSource,
        ApiServerSource,
        ContainerSource,
        SinkBinding
    );
    None
}

/// Whether `api_version` and `kind` name an Eventing kind [`check`] knows.
pub fn is_eventing_kind(api_version: &str, kind: &str) -> bool {
    check(
        &serde_json::json!({"apiVersion": api_version, "kind": kind}),
        &Defaults::default(),
    )
    .is_some()
}

fn checked<T>(object: &Value, defaults: &Defaults) -> Result<Value, FieldError>
where
    T: DeserializeOwned + Serialize + Validate + SetDefaults,
{
    // Knative's types have an optional spec; a Broker manifest often has none.
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.entry("spec").or_insert_with(|| serde_json::json!({}));
    }
    let mut typed: T = serde_path_to_error::deserialize(&object).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(
            format!("cannot decode: {}", e.into_inner()),
            [if path == "." { String::new() } else { path }],
        )
    })?;
    typed.set_defaults(defaults);
    typed.validate()?;
    serde_json::to_value(&typed).map_err(|e| FieldError::new(e.to_string(), [""]))
}

/// [`check`] on every document of a YAML stream, by position (empty documents count): `None`
/// where a document is not of an Eventing kind (or not YAML: the caller reports that).
pub fn check_yaml(yaml: &str, defaults: &Defaults) -> Vec<Option<Result<Value, FieldError>>> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| {
            Value::deserialize(document)
                .ok()
                .and_then(|object| check(&object, defaults))
        })
        .collect()
}
