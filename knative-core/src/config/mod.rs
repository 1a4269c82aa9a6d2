//! Typed configuration from Knative's ConfigMaps, watched live, one immutable snapshot per
//! reconcile.
//!
//! Knative keeps its cluster-wide settings in ConfigMaps of its system namespace
//! (`knative-serving`): `config-autoscaler`, `config-network`, `config-gc`, `config-defaults`,
//! `config-domain`. This module reads them with Knative's keys, defaults and validation:
//!
//! - [`ConfigMapConfig`]: one typed ConfigMap, parsed purely from its `data` (no I/O). Missing
//!   keys take Knative's defaults, the `_example` key is ignored, and a value Knative would
//!   reject is a [`ConfigError`] naming the ConfigMap, the key and the value.
//! - [`AutoscalerConfig`], [`NetworkConfig`], [`GcConfig`], [`DefaultsConfig`], [`DomainConfig`]:
//!   the typed ConfigMaps, gathered in one [`Config`].
//! - [`ConfigStore`]: watches the ConfigMaps and hands out an immutable [`Config`] snapshot per
//!   reconcile. A missing or deleted ConfigMap means defaults; an invalid one keeps the last good
//!   configuration and says why (a warning in the log and a `Warning` Event with reason
//!   `InvalidConfig` on the ConfigMap).
//!
//! ```
//! use std::collections::BTreeMap;
//! use knative_core::config::{AutoscalerConfig, ConfigMapConfig};
//!
//! let data = BTreeMap::from([("stable-window".to_owned(), "2m".to_owned())]);
//! let autoscaler = AutoscalerConfig::from_data(&data).unwrap();
//! assert_eq!(autoscaler.stable_window, std::time::Duration::from_secs(120));
//! assert_eq!(autoscaler.container_concurrency_target_default, 100.0);
//!
//! let data = BTreeMap::from([("stable-window".to_owned(), "2s".to_owned())]);
//! let err = AutoscalerConfig::from_data(&data).unwrap_err();
//! assert_eq!(err.to_string(), r#"config-autoscaler: stable-window: invalid value "2s": must be in [6s, 1h]"#);
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::ConfigMap;

mod autoscaler;
mod defaults;
mod domain;
mod gc;
mod network;
mod parse;
mod store;
mod template;

pub use autoscaler::{AutoscalerConfig, KPA_CLASS};
pub use defaults::{DEFAULT_INIT_CONTAINER_NAME, DEFAULT_USER_CONTAINER_NAME, DefaultsConfig};
pub use domain::{
    CLUSTER_LOCAL_DOMAIN, DomainConfig, VISIBILITY_CLUSTER_LOCAL, VISIBILITY_LABEL_KEY,
};
pub use gc::GcConfig;
pub use network::{
    CERT_MANAGER_CERTIFICATE_CLASS, DEFAULT_DOMAIN_TEMPLATE, DEFAULT_TAG_TEMPLATE,
    DomainTemplateValues, HttpProtocol, ISTIO_INGRESS_CLASS, MeshCompatibilityMode, NetworkConfig,
};
pub use parse::{DurationError, parse_go_duration};
pub use store::{ConfigStore, INVALID_CONFIG_REASON};
pub use template::TemplateError;

/// The key Knative ConfigMaps use for documentation; it is never configuration.
pub const EXAMPLE_KEY: &str = "_example";

/// The namespace Knative Serving keeps its ConfigMaps in.
pub const SERVING_NAMESPACE: &str = "knative-serving";

/// One typed ConfigMap: its name, Knative's defaults ([`Default`]) and how its `data` parses.
///
/// Parsing is pure: keys that are absent take the defaults, `_example` is ignored, and a value
/// Knative would reject is an error naming the ConfigMap, the key and the value.
pub trait ConfigMapConfig: Clone + Default + PartialEq + Debug + Send + Sync + 'static {
    /// The ConfigMap's name, e.g. `config-autoscaler`.
    const NAME: &'static str;

    /// Parses the ConfigMap's `data`.
    ///
    /// # Errors
    /// When a value is malformed or out of Knative's range, or values contradict each other.
    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError>;

    /// Parses a ConfigMap; one without `data` yields the defaults.
    ///
    /// # Errors
    /// As [`from_data`](Self::from_data).
    fn from_config_map(config_map: &ConfigMap) -> Result<Self, ConfigError> {
        match &config_map.data {
            Some(data) => Self::from_data(data),
            None => Self::from_data(&BTreeMap::new()),
        }
    }
}

/// A ConfigMap value Knative would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key's value is malformed, out of range, or contradicts another key.
    #[error("{config_map}: {key}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The ConfigMap's name.
        config_map: &'static str,
        /// The key whose value is rejected.
        key: String,
        /// The value as written in the ConfigMap (or the default, when the key is absent and
        /// another key contradicts it).
        value: String,
        /// Why the value is rejected.
        reason: String,
    },
}

impl ConfigError {
    /// The name of the ConfigMap at fault.
    pub fn config_map(&self) -> &str {
        match self {
            Self::InvalidValue { config_map, .. } => config_map,
        }
    }

    /// The key at fault.
    pub fn key(&self) -> &str {
        match self {
            Self::InvalidValue { key, .. } => key,
        }
    }
}

/// One immutable snapshot of every ConfigMap the SDK reads: take one per reconcile, so a
/// reconcile sees one consistent configuration from start to end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// `config-autoscaler`.
    pub autoscaler: AutoscalerConfig,
    /// `config-network`.
    pub network: NetworkConfig,
    /// `config-gc`.
    pub gc: GcConfig,
    /// `config-defaults`.
    pub defaults: DefaultsConfig,
    /// `config-domain`.
    pub domain: DomainConfig,
}

impl Config {
    /// The names of the ConfigMaps a [`Config`] is read from.
    pub const CONFIG_MAP_NAMES: [&'static str; 5] = [
        AutoscalerConfig::NAME,
        NetworkConfig::NAME,
        GcConfig::NAME,
        DefaultsConfig::NAME,
        DomainConfig::NAME,
    ];

    /// Replaces the part of the snapshot read from ConfigMap `name` by `data` parsed, or by the
    /// defaults when `data` is `None` (the ConfigMap does not exist). On error the snapshot is
    /// unchanged. Returns `None` when `name` is not one of [`CONFIG_MAP_NAMES`](Self::CONFIG_MAP_NAMES).
    pub fn apply(
        &mut self,
        name: &str,
        data: Option<&BTreeMap<String, String>>,
    ) -> Option<Result<(), ConfigError>> {
        fn replace<C: ConfigMapConfig>(
            slot: &mut C,
            data: Option<&BTreeMap<String, String>>,
        ) -> Result<(), ConfigError> {
            *slot = match data {
                Some(data) => C::from_data(data)?,
                None => C::default(),
            };
            Ok(())
        }
        Some(match name {
            AutoscalerConfig::NAME => replace(&mut self.autoscaler, data),
            NetworkConfig::NAME => replace(&mut self.network, data),
            GcConfig::NAME => replace(&mut self.gc, data),
            DefaultsConfig::NAME => replace(&mut self.defaults, data),
            DomainConfig::NAME => replace(&mut self.domain, data),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn error_message_names_config_map_key_and_value() {
        let err =
            AutoscalerConfig::from_data(&data(&[("container-concurrency-target-default", "abc")]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"config-autoscaler: container-concurrency-target-default: invalid value "abc": expected a number"#
        );
        assert_eq!(err.config_map(), "config-autoscaler");
        assert_eq!(err.key(), "container-concurrency-target-default");
    }

    #[test]
    fn apply_replaces_only_the_named_config_map() {
        let mut config = Config::default();
        config
            .apply(
                "config-gc",
                Some(&data(&[("min-non-active-revisions", "3")])),
            )
            .unwrap()
            .unwrap();
        assert_eq!(config.gc.min_non_active_revisions, 3);
        assert_eq!(config.autoscaler, AutoscalerConfig::default());
    }

    #[test]
    fn apply_none_reverts_to_defaults() {
        let mut config = Config::default();
        config
            .apply(
                "config-gc",
                Some(&data(&[("min-non-active-revisions", "3")])),
            )
            .unwrap()
            .unwrap();
        config.apply("config-gc", None).unwrap().unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn apply_invalid_keeps_the_previous_value() {
        let mut config = Config::default();
        config
            .apply(
                "config-gc",
                Some(&data(&[("min-non-active-revisions", "3")])),
            )
            .unwrap()
            .unwrap();
        let before = config.clone();
        assert!(
            config
                .apply(
                    "config-gc",
                    Some(&data(&[("min-non-active-revisions", "x")]))
                )
                .unwrap()
                .is_err()
        );
        assert_eq!(config, before);
    }

    #[test]
    fn apply_ignores_unknown_config_maps() {
        let mut config = Config::default();
        assert!(config.apply("config-features", Some(&data(&[]))).is_none());
    }

    #[test]
    fn config_map_without_data_is_defaults() {
        let cm = ConfigMap::default();
        assert_eq!(GcConfig::from_config_map(&cm).unwrap(), GcConfig::default());
    }
}

/// What the typed configs' unit tests share: parse `key=value` pairs, and check that a value is
/// rejected with a message naming the ConfigMap, the key and the value.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{ConfigError, ConfigMapConfig};

    pub(crate) fn parse<C: ConfigMapConfig>(pairs: &[(&str, &str)]) -> Result<C, ConfigError> {
        C::from_data(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    pub(crate) fn rejects<C: ConfigMapConfig>(
        pairs: &[(&str, &str)],
        key: &str,
        value: &str,
    ) -> String {
        let err = parse::<C>(pairs).expect_err("should be rejected");
        let message = err.to_string();
        assert_eq!(err.key(), key, "{message}");
        let prefix = format!("{}: {key}: invalid value {value:?}: ", C::NAME);
        assert!(message.starts_with(&prefix), "{message}");
        message
    }
}
