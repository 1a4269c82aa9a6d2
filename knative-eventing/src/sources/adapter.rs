//! The environment contract of Knative's source adapters, as the source reconcilers (and
//! SinkBinding) set it on the adapter's container:
//!
//! - `K_SINK`: the URL events are sent to (required);
//! - `K_CE_OVERRIDES`: the source's `ceOverrides` as JSON, `{"extensions": {"name": "value"}}`,
//!   applied to every event the adapter sends (optional);
//! - `NAMESPACE` and `NAME`: the source's namespace and name (optional).
//!
//! Each adapter adds its own configuration: see
//! [`PingAdapter::from_env`](crate::sources::ping::PingAdapter::from_env) and
//! [`ApiServerAdapter::from_env`](crate::sources::apiserver::ApiServerAdapter::from_env).
//!
//! ```
//! use knative_eventing::sources::adapter::AdapterEnv;
//!
//! let env = AdapterEnv::from_lookup(|name| match name {
//!     "K_SINK" => Some("http://display.default.svc.cluster.local".to_owned()),
//!     "K_CE_OVERRIDES" => Some(r#"{"extensions": {"team": "blue"}}"#.to_owned()),
//!     _ => None,
//! })
//! .unwrap();
//! assert_eq!(env.sink, "http://display.default.svc.cluster.local/");
//! assert_eq!(env.overrides.extensions["team"], "blue");
//! ```

use http::Uri;
use knative_core::apis::CloudEventOverrides;

/// The environment variable holding the sink's URL.
pub const K_SINK: &str = "K_SINK";
/// The environment variable holding the JSON of the source's `ceOverrides`.
pub const K_CE_OVERRIDES: &str = "K_CE_OVERRIDES";
/// The environment variable holding an adapter's own configuration as JSON.
pub const K_SOURCE_CONFIG: &str = "K_SOURCE_CONFIG";

/// What every adapter reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterEnv {
    /// Where events go (`K_SINK`).
    pub sink: Uri,
    /// Extensions set on every event (`K_CE_OVERRIDES`; empty when unset).
    pub overrides: CloudEventOverrides,
    /// The source's namespace (`NAMESPACE`), if set.
    pub namespace: Option<String>,
    /// The source's name (`NAME`), if set.
    pub name: Option<String>,
}

/// Why an adapter's environment is not usable; each names the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterEnvError {
    /// A required variable is not set (or empty).
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    /// A variable's value is not what the adapter expects.
    #[error("invalid value in environment variable {name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

impl AdapterEnv {
    /// Reads the contract from the process environment.
    pub fn from_env() -> Result<Self, AdapterEnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the contract through `lookup` (a variable's value, or `None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AdapterEnvError> {
        let sink = required(&lookup, K_SINK)?;
        let sink = parse_uri(K_SINK, &sink)?;
        let overrides = match lookup(K_CE_OVERRIDES).filter(|v| !v.trim().is_empty()) {
            None => CloudEventOverrides::default(),
            Some(json) => parse_overrides(&json)?,
        };
        let optional = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Ok(AdapterEnv {
            sink,
            overrides,
            namespace: optional("NAMESPACE"),
            name: optional("NAME"),
        })
    }
}

/// The value of `name`, which must be set and not empty.
pub(crate) fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, AdapterEnvError> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(AdapterEnvError::Missing(name))
}

/// An absolute `http` or `https` URL.
fn parse_uri(name: &'static str, value: &str) -> Result<Uri, AdapterEnvError> {
    let invalid = |reason: &str| AdapterEnvError::Invalid {
        name,
        reason: format!("{value:?}: {reason}"),
    };
    let uri = value
        .trim()
        .parse::<Uri>()
        .map_err(|e| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(invalid("not an absolute http(s) URL")),
    }
}

fn parse_overrides(json: &str) -> Result<CloudEventOverrides, AdapterEnvError> {
    let invalid = |reason: String| AdapterEnvError::Invalid {
        name: K_CE_OVERRIDES,
        reason,
    };
    let overrides: CloudEventOverrides =
        serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    overrides
        .validate()
        .map_err(|e| invalid(e.to_string().replace('\n', "; ")))?;
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn k_sink_is_required() {
        assert_eq!(
            AdapterEnv::from_lookup(lookup(&[])).unwrap_err(),
            AdapterEnvError::Missing(K_SINK)
        );
    }

    #[test]
    fn a_relative_sink_is_rejected_with_the_variable_named() {
        let err = AdapterEnv::from_lookup(lookup(&[(K_SINK, "/just/a/path")])).unwrap_err();
        assert!(
            matches!(err, AdapterEnvError::Invalid { name: K_SINK, .. }),
            "{err}"
        );
    }

    #[test]
    fn overrides_that_are_not_json_are_rejected() {
        let err = AdapterEnv::from_lookup(lookup(&[
            (K_SINK, "http://sink/"),
            (K_CE_OVERRIDES, "{extensions"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                AdapterEnvError::Invalid {
                    name: K_CE_OVERRIDES,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn override_names_must_be_valid_extension_names() {
        let err = AdapterEnv::from_lookup(lookup(&[
            (K_SINK, "http://sink/"),
            (K_CE_OVERRIDES, r#"{"extensions": {"not-valid": "x"}}"#),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("not-valid"), "{err}");
    }

    #[test]
    fn namespace_and_name_are_read_when_set() {
        let env = AdapterEnv::from_lookup(lookup(&[
            (K_SINK, "http://sink/"),
            ("NAMESPACE", "demo"),
            ("NAME", "src"),
        ]))
        .unwrap();
        assert_eq!(
            (env.namespace.as_deref(), env.name.as_deref()),
            (Some("demo"), Some("src"))
        );
        assert!(env.overrides.extensions.is_empty());
    }
}
