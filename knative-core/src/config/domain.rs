//! `config-domain`: which domain a Route's host name lives under (knative.dev/serving
//! `pkg/reconciler/route/config/domain.go`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, ConfigMapConfig, EXAMPLE_KEY};

/// The domain of cluster-local Routes, and Knative's default domain: Routes are only reachable
/// inside the cluster until a real domain is configured. (Knative derives it from the cluster's
/// DNS domain; this SDK assumes the usual `cluster.local`.)
pub const CLUSTER_LOCAL_DOMAIN: &str = "svc.cluster.local";
/// The label that makes a Route cluster-local.
pub const VISIBILITY_LABEL_KEY: &str = "networking.knative.dev/visibility";
/// The value of [`VISIBILITY_LABEL_KEY`] that makes a Route cluster-local.
pub const VISIBILITY_CLUSTER_LOCAL: &str = "cluster-local";

/// `config-domain`: each key is a domain and each value a label selector of the Routes that live
/// under it, written as YAML:
///
/// ```yaml
/// example.com: ""          # no selector: the default domain
/// example.org: |
///   selector:
///     app: nonprofit
/// ```
///
/// A Route takes the domain of the most specific selector (most labels) that matches its labels,
/// ties going to the alphabetically first domain. When no domain has an empty selector,
/// [`CLUSTER_LOCAL_DOMAIN`] is the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Domain → the labels a Route must carry (all of them) to live under it.
    pub domains: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            domains: BTreeMap::from([(CLUSTER_LOCAL_DOMAIN.to_owned(), BTreeMap::new())]),
        }
    }
}

/// One value of `config-domain`. Fields other than `selector` (e.g. `type`) are ignored.
#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    selector: Option<BTreeMap<String, serde_yaml::Value>>,
}

impl ConfigMapConfig for DomainConfig {
    const NAME: &'static str = "config-domain";

    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut domains = BTreeMap::new();
        for (domain, value) in data {
            if domain == EXAMPLE_KEY {
                continue;
            }
            let invalid = |reason: String| ConfigError::InvalidValue {
                config_map: Self::NAME,
                key: domain.clone(),
                value: value.clone(),
                reason,
            };
            let entry: Option<Entry> = serde_yaml::from_str(value)
                .map_err(|err| invalid(format!("expected a YAML selector: {err}")))?;
            let mut selector = BTreeMap::new();
            for (label, label_value) in entry.and_then(|e| e.selector).unwrap_or_default() {
                // Like Kubernetes' YAML decoding into strings, scalars are taken as their text.
                let text = match label_value {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(invalid(format!(
                            "the value of selector label {label:?} must be a string"
                        )));
                    }
                };
                selector.insert(label, text);
            }
            domains.insert(domain.clone(), selector);
        }
        if !domains.values().any(BTreeMap::is_empty) {
            domains.insert(CLUSTER_LOCAL_DOMAIN.to_owned(), BTreeMap::new());
        }
        Ok(Self { domains })
    }
}

impl DomainConfig {
    /// The domain of a Route with `labels`: [`CLUSTER_LOCAL_DOMAIN`] for a cluster-local Route,
    /// else the domain of the most specific matching selector.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use knative_core::config::{ConfigMapConfig, DomainConfig};
    ///
    /// let data = BTreeMap::from([
    ///     ("example.com".to_owned(), "".to_owned()),
    ///     ("example.org".to_owned(), "selector:\n  app: nonprofit\n".to_owned()),
    /// ]);
    /// let domain = DomainConfig::from_data(&data).unwrap();
    /// let labels = BTreeMap::from([("app".to_owned(), "nonprofit".to_owned())]);
    /// assert_eq!(domain.lookup(&labels), "example.org");
    /// assert_eq!(domain.lookup(&BTreeMap::new()), "example.com");
    /// ```
    pub fn lookup(&self, labels: &BTreeMap<String, String>) -> &str {
        if labels
            .get(VISIBILITY_LABEL_KEY)
            .is_some_and(|v| v == VISIBILITY_CLUSTER_LOCAL)
        {
            return CLUSTER_LOCAL_DOMAIN;
        }
        // Iterating in key order and replacing only on strictly greater specificity keeps the
        // alphabetically first domain among equals, as Knative does.
        let mut best: Option<(&str, usize)> = None;
        for (domain, selector) in &self.domains {
            let matches = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
            if matches && best.is_none_or(|(_, specificity)| selector.len() > specificity) {
                best = Some((domain, selector.len()));
            }
        }
        best.map_or(CLUSTER_LOCAL_DOMAIN, |(domain, _)| domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<DomainConfig, ConfigError> {
        DomainConfig::from_data(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_data_defaults_to_the_cluster_local_domain() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, DomainConfig::default());
        assert_eq!(c.lookup(&labels(&[("app", "x")])), "svc.cluster.local");
    }

    #[test]
    fn example_key_is_ignored() {
        assert_eq!(
            parse(&[("_example", "example.com: |\n")]).unwrap(),
            DomainConfig::default()
        );
    }

    #[test]
    fn selectors_parse_and_an_empty_value_is_the_default() {
        let c = parse(&[
            ("example.com", ""),
            ("example.org", "selector:\n  app: nonprofit\n"),
            ("numbers.dev", "selector:\n  tier: 1\n  on: true\n"),
        ])
        .unwrap();
        assert_eq!(
            c.domains,
            BTreeMap::from([
                ("example.com".to_owned(), BTreeMap::new()),
                ("example.org".to_owned(), labels(&[("app", "nonprofit")])),
                (
                    "numbers.dev".to_owned(),
                    labels(&[("tier", "1"), ("on", "true")])
                ),
            ])
        );
    }

    #[test]
    fn without_a_default_domain_the_cluster_local_domain_is_added() {
        let c = parse(&[("example.org", "selector:\n  app: nonprofit\n")]).unwrap();
        assert!(c.domains.contains_key("svc.cluster.local"));
        assert_eq!(c.lookup(&labels(&[("app", "other")])), "svc.cluster.local");
    }

    #[test]
    fn lookup_takes_the_most_specific_matching_selector() {
        let c = parse(&[
            ("default.com", ""),
            ("app.com", "selector:\n  app: foo\n"),
            ("app-prod.com", "selector:\n  app: foo\n  env: prod\n"),
        ])
        .unwrap();
        assert_eq!(
            c.lookup(&labels(&[("app", "foo"), ("env", "prod")])),
            "app-prod.com"
        );
        assert_eq!(
            c.lookup(&labels(&[("app", "foo"), ("env", "dev")])),
            "app.com"
        );
        assert_eq!(c.lookup(&labels(&[("app", "bar")])), "default.com");
    }

    #[test]
    fn lookup_breaks_ties_alphabetically() {
        let c = parse(&[
            ("b.com", "selector:\n  app: foo\n"),
            ("a.com", "selector:\n  app: foo\n"),
            ("z.com", ""),
        ])
        .unwrap();
        assert_eq!(c.lookup(&labels(&[("app", "foo")])), "a.com");
    }

    #[test]
    fn cluster_local_visibility_label_wins() {
        let c = parse(&[("example.com", "")]).unwrap();
        let route = labels(&[("networking.knative.dev/visibility", "cluster-local")]);
        assert_eq!(c.lookup(&route), "svc.cluster.local");
    }

    #[test]
    fn malformed_selector_is_rejected_naming_domain_and_value() {
        let err = parse(&[("example.org", "selector: [app")]).unwrap_err();
        assert_eq!(err.key(), "example.org");
        assert!(
            err.to_string()
                .starts_with(r#"config-domain: example.org: invalid value "selector: [app": "#),
            "{err}"
        );
        let err = parse(&[("example.org", "selector:\n  app: [a, b]\n")]).unwrap_err();
        assert_eq!(err.key(), "example.org");
    }
}
