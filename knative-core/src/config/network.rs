//! `config-network`: ingress, certificates and host names (knative.dev/networking `pkg/config`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::parse::Keys;
use super::template::{Kind, Template, TemplateError, Value};
use super::{ConfigError, ConfigMapConfig};

/// The default `domain-template`.
pub const DEFAULT_DOMAIN_TEMPLATE: &str = "{{.Name}}.{{.Namespace}}.{{.Domain}}";
/// The default `tag-template`.
pub const DEFAULT_TAG_TEMPLATE: &str = "{{.Tag}}-{{.Name}}";
/// The default `ingress-class`: Knative's Istio ingress.
pub const ISTIO_INGRESS_CLASS: &str = "istio.ingress.networking.knative.dev";
/// The default `certificate-class`: Knative's cert-manager integration.
pub const CERT_MANAGER_CERTIFICATE_CLASS: &str = "cert-manager.certificate.networking.knative.dev";

const DOMAIN_TEMPLATE_FIELDS: &[(&str, Kind)] = &[
    ("Name", Kind::Text),
    ("Namespace", Kind::Text),
    ("Domain", Kind::Text),
    ("Annotations", Kind::Map),
    ("Labels", Kind::Map),
];
const TAG_TEMPLATE_FIELDS: &[(&str, Kind)] = &[("Name", Kind::Text), ("Tag", Kind::Text)];

/// `config-network`, with Knative's keys, defaults and validation. Knative's legacy camel-case
/// keys (`ingress.class`, `domainTemplate`, `autoTLS`, …) are read too; the current key wins.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// `ingress-class`: the Ingress implementation Routes use (default
    /// `istio.ingress.networking.knative.dev`).
    pub ingress_class: String,
    /// `certificate-class`: the Certificate implementation (default
    /// `cert-manager.certificate.networking.knative.dev`).
    pub certificate_class: String,
    /// `domain-template`: a Go template of a Route's host name over `.Name`, `.Namespace`,
    /// `.Domain`, `.Annotations` and `.Labels` (default `{{.Name}}.{{.Namespace}}.{{.Domain}}`).
    /// Render it with [`domain`](Self::domain).
    pub domain_template: String,
    /// `tag-template`: a Go template of a traffic tag's name over `.Tag` and `.Name` (default
    /// `{{.Tag}}-{{.Name}}`). Render it with [`tag_name`](Self::tag_name).
    pub tag_template: String,
    /// `external-domain-tls` (formerly `auto-tls`): whether external domains get certificates
    /// (`Enabled`; default disabled).
    pub external_domain_tls: bool,
    /// `cluster-local-domain-tls`: whether cluster-local domains get certificates (`enabled` or
    /// `disabled`, the default).
    pub cluster_local_domain_tls: bool,
    /// `system-internal-tls` (formerly the boolean `internal-encryption`): whether traffic
    /// between Knative's components is encrypted (`enabled` or `disabled`, the default).
    pub system_internal_tls: bool,
    /// `http-protocol`: what plain HTTP does when TLS is on (default `Enabled`).
    pub http_protocol: HttpProtocol,
    /// `default-external-scheme`: the scheme of external URLs when TLS is off (default `http`).
    pub default_external_scheme: String,
    /// `rollout-duration`: how long a new Revision takes to receive all traffic, in whole
    /// seconds (default 0s: at once).
    pub rollout_duration: Duration,
    /// `namespace-wildcard-cert-selector`: the raw YAML of a label selector of the namespaces
    /// that get a wildcard certificate (default none). Validated as a `LabelSelector`.
    pub namespace_wildcard_cert_selector: Option<String>,
    /// `autocreate-cluster-domain-claims`: whether DomainMappings create their
    /// ClusterDomainClaims (default `false`).
    pub autocreate_cluster_domain_claims: bool,
    /// `enable-mesh-pod-addressability`: whether pods stay addressable by IP under a mesh
    /// (default `false`).
    pub enable_mesh_pod_addressability: bool,
    /// `mesh-compatibility-mode`: how pods are reached (default `Auto`).
    pub mesh_compatibility_mode: MeshCompatibilityMode,
}

/// What the ingress does with plain HTTP (`http-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpProtocol {
    /// HTTP is served (`enabled`).
    #[default]
    Enabled,
    /// HTTP is refused (`disabled`).
    Disabled,
    /// HTTP is redirected to HTTPS (`redirected`).
    Redirected,
}

/// How consumers reach pods under a service mesh (`mesh-compatibility-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MeshCompatibilityMode {
    /// Always through the ClusterIP (`enabled`).
    Enabled,
    /// Always by pod IP (`disabled`).
    Disabled,
    /// Pod IP, falling back to the ClusterIP when a mesh is detected (`auto`).
    #[default]
    Auto,
}

/// The values `domain-template` is executed with.
#[derive(Clone, Copy, Debug)]
pub struct DomainTemplateValues<'a> {
    /// The Route's name.
    pub name: &'a str,
    /// The Route's namespace.
    pub namespace: &'a str,
    /// The domain chosen by `config-domain`.
    pub domain: &'a str,
    /// The Route's annotations.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The Route's labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            ingress_class: ISTIO_INGRESS_CLASS.to_owned(),
            certificate_class: CERT_MANAGER_CERTIFICATE_CLASS.to_owned(),
            domain_template: DEFAULT_DOMAIN_TEMPLATE.to_owned(),
            tag_template: DEFAULT_TAG_TEMPLATE.to_owned(),
            external_domain_tls: false,
            cluster_local_domain_tls: false,
            system_internal_tls: false,
            http_protocol: HttpProtocol::Enabled,
            default_external_scheme: "http".to_owned(),
            rollout_duration: Duration::ZERO,
            namespace_wildcard_cert_selector: None,
            autocreate_cluster_domain_claims: false,
            enable_mesh_pod_addressability: false,
            mesh_compatibility_mode: MeshCompatibilityMode::Auto,
        }
    }
}

impl ConfigMapConfig for NetworkConfig {
    const NAME: &'static str = "config-network";

    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = Keys::new(Self::NAME, data);
        let mut c = Self::default();
        let mut rollout_secs: i64 = 0;
        let mut internal_encryption = false;

        // Legacy keys first, so that the current ones win.
        keys.string("ingress.class", &mut c.ingress_class);
        keys.string("ingress-class", &mut c.ingress_class);
        keys.string("certificate.class", &mut c.certificate_class);
        keys.string("certificate-class", &mut c.certificate_class);
        keys.string("domainTemplate", &mut c.domain_template);
        keys.string("domain-template", &mut c.domain_template);
        keys.string("tagTemplate", &mut c.tag_template);
        keys.string("tag-template", &mut c.tag_template);
        keys.int("rolloutDuration", &mut rollout_secs)?;
        keys.int("rollout-duration", &mut rollout_secs)?;
        keys.bool(
            "autocreateClusterDomainClaims",
            &mut c.autocreate_cluster_domain_claims,
        )?;
        keys.bool(
            "autocreate-cluster-domain-claims",
            &mut c.autocreate_cluster_domain_claims,
        )?;
        keys.string("defaultExternalScheme", &mut c.default_external_scheme);
        keys.string("default-external-scheme", &mut c.default_external_scheme);
        keys.bool(
            "enable-mesh-pod-addressability",
            &mut c.enable_mesh_pod_addressability,
        )?;
        keys.bool("internal-encryption", &mut internal_encryption)?;
        // Like Knative, an unknown mode keeps the default.
        if let Some(raw) = keys.raw("mesh-compatibility-mode") {
            for mode in [
                MeshCompatibilityMode::Enabled,
                MeshCompatibilityMode::Disabled,
                MeshCompatibilityMode::Auto,
            ] {
                if raw.eq_ignore_ascii_case(mode.as_str()) {
                    c.mesh_compatibility_mode = mode;
                }
            }
        }
        if let Some(raw) = keys
            .raw("namespace-wildcard-cert-selector")
            .filter(|raw| !raw.is_empty())
        {
            serde_yaml::from_str::<Option<LabelSelector>>(raw).map_err(|err| {
                keys.invalid(
                    "namespace-wildcard-cert-selector",
                    raw,
                    format!("expected a label selector: {err}"),
                )
            })?;
            c.namespace_wildcard_cert_selector = Some(raw.to_owned());
        }

        if rollout_secs < 0 {
            return Err(keys.invalid(
                "rollout-duration",
                rollout_secs,
                "must be a positive integer",
            ));
        }
        c.rollout_duration = Duration::from_secs(rollout_secs.unsigned_abs());

        check_domain_template(&c.domain_template).map_err(|err| {
            let key = if keys.raw("domain-template").is_some() {
                "domain-template"
            } else {
                "domainTemplate"
            };
            keys.invalid(key, &c.domain_template, err.to_string())
        })?;
        Template::parse(&c.tag_template, TAG_TEMPLATE_FIELDS).map_err(|err| {
            let key = if keys.raw("tag-template").is_some() {
                "tag-template"
            } else {
                "tagTemplate"
            };
            keys.invalid(key, &c.tag_template, err.to_string())
        })?;

        // Any value but "Enabled" (in any case) disables, as in Knative.
        for key in ["autoTLS", "auto-tls", "external-domain-tls"] {
            if let Some(raw) = keys.raw(key) {
                c.external_domain_tls = raw.eq_ignore_ascii_case("enabled");
            }
        }

        let (http_key, http_raw) = match (keys.raw("http-protocol"), keys.raw("httpProtocol")) {
            (Some(raw), _) => ("http-protocol", raw),
            (None, Some(raw)) => ("httpProtocol", raw),
            (None, None) => ("http-protocol", ""),
        };
        c.http_protocol = match http_raw.to_ascii_lowercase().as_str() {
            "" | "enabled" => HttpProtocol::Enabled,
            "disabled" => HttpProtocol::Disabled,
            "redirected" => HttpProtocol::Redirected,
            _ => {
                return Err(keys.invalid(
                    http_key,
                    http_raw,
                    "expected one of enabled, disabled, redirected",
                ));
            }
        };

        // As in Knative, the legacy internal-encryption enables even when system-internal-tls
        // says disabled.
        c.system_internal_tls = encryption(&keys, "system-internal-tls")? || internal_encryption;
        c.cluster_local_domain_tls = encryption(&keys, "cluster-local-domain-tls")?;
        Ok(c)
    }
}

impl NetworkConfig {
    /// The host name of a Route: `domain-template` executed with `values`.
    ///
    /// ```
    /// use knative_core::config::{DomainTemplateValues, NetworkConfig};
    ///
    /// let values = DomainTemplateValues {
    ///     name: "hello",
    ///     namespace: "default",
    ///     domain: "example.com",
    ///     annotations: None,
    ///     labels: None,
    /// };
    /// assert_eq!(NetworkConfig::default().domain(&values).unwrap(), "hello.default.example.com");
    /// ```
    ///
    /// # Errors
    /// When `domain_template` was set to a template that does not parse (a parsed ConfigMap's
    /// never fails).
    pub fn domain(&self, values: &DomainTemplateValues<'_>) -> Result<String, TemplateError> {
        let template = Template::parse(&self.domain_template, DOMAIN_TEMPLATE_FIELDS)?;
        Ok(template.render(&|field| match field {
            "Name" => Value::Text(values.name),
            "Namespace" => Value::Text(values.namespace),
            "Domain" => Value::Text(values.domain),
            "Annotations" => Value::Map(values.annotations),
            _ => Value::Map(values.labels),
        }))
    }

    /// The name of traffic tag `tag` of Route `name`: `tag-template` executed.
    ///
    /// # Errors
    /// When `tag_template` was set to a template that does not parse (a parsed ConfigMap's
    /// never fails).
    pub fn tag_name(&self, name: &str, tag: &str) -> Result<String, TemplateError> {
        let template = Template::parse(&self.tag_template, TAG_TEMPLATE_FIELDS)?;
        Ok(template.render(&|field| {
            if field == "Tag" {
                Value::Text(tag)
            } else {
                Value::Text(name)
            }
        }))
    }

    /// The scheme of external URLs: `https` with external-domain TLS, else
    /// `default-external-scheme`.
    pub fn external_scheme(&self) -> &str {
        if self.external_domain_tls {
            "https"
        } else {
            &self.default_external_scheme
        }
    }
}

impl MeshCompatibilityMode {
    /// The mode as written in the ConfigMap.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Auto => "auto",
        }
    }
}

/// `enabled` or `disabled` (any case); absent or empty is disabled.
fn encryption(keys: &Keys<'_>, key: &str) -> Result<bool, ConfigError> {
    match keys.raw(key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "disabled") => Ok(false),
        Some("enabled") => Ok(true),
        Some(_) => Err(keys.invalid(key, "", "expected enabled or disabled")),
    }
}

/// Knative executes the domain template with sample values and requires the result to be a
/// bare host name: `https://<result>` must parse as a URL with a host and no path or query.
fn check_domain_template(source: &str) -> Result<(), TemplateError> {
    let template = Template::parse(source, DOMAIN_TEMPLATE_FIELDS)?;
    let host = template.render(&|field| match field {
        "Name" => Value::Text("foo"),
        "Namespace" => Value::Text("bar"),
        "Domain" => Value::Text("baz.com"),
        _ => Value::Map(None),
    });
    let hostname = host.rsplit_once('@').map_or(host.as_str(), |(_, h)| h);
    let hostname = hostname.split_once(':').map_or(hostname, |(h, _)| h);
    if hostname.is_empty() {
        return Err(TemplateError(format!(
            "the template yields {host:?}, which has an empty host name"
        )));
    }
    if host.contains(['/', '?', '#']) {
        return Err(TemplateError(format!(
            "the template yields {host:?}, which has a URL path"
        )));
    }
    if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(TemplateError(format!(
            "the template yields {host:?}, which is not a host name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<NetworkConfig, ConfigError> {
        crate::config::test_support::parse(pairs)
    }

    fn rejects(pairs: &[(&str, &str)], key: &str, value: &str) -> String {
        crate::config::test_support::rejects::<NetworkConfig>(pairs, key, value)
    }

    #[test]
    fn empty_data_is_knatives_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, NetworkConfig::default());
        assert_eq!(c.ingress_class, "istio.ingress.networking.knative.dev");
        assert_eq!(
            c.certificate_class,
            "cert-manager.certificate.networking.knative.dev"
        );
        assert_eq!(c.domain_template, "{{.Name}}.{{.Namespace}}.{{.Domain}}");
        assert_eq!(c.tag_template, "{{.Tag}}-{{.Name}}");
        assert!(!c.external_domain_tls && !c.cluster_local_domain_tls && !c.system_internal_tls);
        assert_eq!(c.http_protocol, HttpProtocol::Enabled);
        assert_eq!(c.default_external_scheme, "http");
        assert_eq!(c.rollout_duration, Duration::ZERO);
        assert_eq!(c.namespace_wildcard_cert_selector, None);
        assert!(!c.autocreate_cluster_domain_claims && !c.enable_mesh_pod_addressability);
        assert_eq!(c.mesh_compatibility_mode, MeshCompatibilityMode::Auto);
    }

    #[test]
    fn every_key_parses() {
        let selector = "matchExpressions:\n- key: kubernetes.io/metadata.name\n  operator: NotIn\n  values: [kube-system]\n";
        let c = parse(&[
            ("ingress-class", "kourier.ingress.networking.knative.dev"),
            ("certificate-class", "my.certificate"),
            ("domain-template", "{{.Name}}-{{.Namespace}}.{{.Domain}}"),
            ("tag-template", "{{.Name}}-{{.Tag}}"),
            ("external-domain-tls", "Enabled"),
            ("cluster-local-domain-tls", "enabled"),
            ("system-internal-tls", "Enabled"),
            ("http-protocol", "Redirected"),
            ("default-external-scheme", "https"),
            ("rollout-duration", "380"),
            ("namespace-wildcard-cert-selector", selector),
            ("autocreate-cluster-domain-claims", "true"),
            ("enable-mesh-pod-addressability", "true"),
            ("mesh-compatibility-mode", "Disabled"),
        ])
        .unwrap();
        assert_eq!(
            c,
            NetworkConfig {
                ingress_class: "kourier.ingress.networking.knative.dev".to_owned(),
                certificate_class: "my.certificate".to_owned(),
                domain_template: "{{.Name}}-{{.Namespace}}.{{.Domain}}".to_owned(),
                tag_template: "{{.Name}}-{{.Tag}}".to_owned(),
                external_domain_tls: true,
                cluster_local_domain_tls: true,
                system_internal_tls: true,
                http_protocol: HttpProtocol::Redirected,
                default_external_scheme: "https".to_owned(),
                rollout_duration: Duration::from_secs(380),
                namespace_wildcard_cert_selector: Some(selector.to_owned()),
                autocreate_cluster_domain_claims: true,
                enable_mesh_pod_addressability: true,
                mesh_compatibility_mode: MeshCompatibilityMode::Disabled,
            }
        );
    }

    #[test]
    fn legacy_keys_are_read_and_current_keys_win() {
        let c = parse(&[
            ("ingress.class", "legacy.ingress"),
            ("domainTemplate", "{{.Name}}.{{.Domain}}"),
            ("autoTLS", "Enabled"),
            ("httpProtocol", "disabled"),
            ("rolloutDuration", "10"),
            ("internal-encryption", "true"),
        ])
        .unwrap();
        assert_eq!(c.ingress_class, "legacy.ingress");
        assert_eq!(c.domain_template, "{{.Name}}.{{.Domain}}");
        assert!(c.external_domain_tls);
        assert_eq!(c.http_protocol, HttpProtocol::Disabled);
        assert_eq!(c.rollout_duration, Duration::from_secs(10));
        assert!(c.system_internal_tls);

        let c = parse(&[
            ("ingress.class", "legacy.ingress"),
            ("ingress-class", "current.ingress"),
            ("auto-tls", "Enabled"),
            ("external-domain-tls", "Disabled"),
        ])
        .unwrap();
        assert_eq!(c.ingress_class, "current.ingress");
        assert!(!c.external_domain_tls);
    }

    #[test]
    fn domain_renders_the_template() {
        let c = parse(&[("domain-template", r#"{{if index .Annotations "sub"}}{{index .Annotations "sub"}}{{else}}{{.Name}}{{end}}.{{.Domain}}"#)]).unwrap();
        let annotations = BTreeMap::from([("sub".to_owned(), "api".to_owned())]);
        let values = DomainTemplateValues {
            name: "hello",
            namespace: "ns",
            domain: "example.com",
            annotations: Some(&annotations),
            labels: None,
        };
        assert_eq!(c.domain(&values).unwrap(), "api.example.com");
        assert_eq!(c.tag_name("hello", "v2").unwrap(), "v2-hello");
    }

    #[test]
    fn external_scheme_is_https_with_external_domain_tls() {
        assert_eq!(NetworkConfig::default().external_scheme(), "http");
        assert_eq!(
            parse(&[("external-domain-tls", "enabled")])
                .unwrap()
                .external_scheme(),
            "https"
        );
    }

    #[test]
    fn unknown_mesh_compatibility_mode_keeps_the_default() {
        assert_eq!(
            parse(&[("mesh-compatibility-mode", "sometimes")])
                .unwrap()
                .mesh_compatibility_mode,
            MeshCompatibilityMode::Auto
        );
    }

    #[test]
    fn malformed_values_are_rejected_naming_key_and_value() {
        rejects(&[("rollout-duration", "5m")], "rollout-duration", "5m");
        rejects(
            &[("autocreate-cluster-domain-claims", "sure")],
            "autocreate-cluster-domain-claims",
            "sure",
        );
        rejects(
            &[("enable-mesh-pod-addressability", "maybe")],
            "enable-mesh-pod-addressability",
            "maybe",
        );
        rejects(
            &[("namespace-wildcard-cert-selector", "matchLabels: [a")],
            "namespace-wildcard-cert-selector",
            "matchLabels: [a",
        );
    }

    #[test]
    fn rollout_duration_cannot_be_negative() {
        rejects(&[("rollout-duration", "-1")], "rollout-duration", "-1");
    }

    #[test]
    fn http_protocol_must_be_enabled_disabled_or_redirected() {
        rejects(
            &[("http-protocol", "sometimes")],
            "http-protocol",
            "sometimes",
        );
    }

    #[test]
    fn tls_settings_must_be_enabled_or_disabled() {
        rejects(
            &[("system-internal-tls", "on")],
            "system-internal-tls",
            "on",
        );
        rejects(
            &[("cluster-local-domain-tls", "on")],
            "cluster-local-domain-tls",
            "on",
        );
    }

    #[test]
    fn domain_template_must_parse() {
        rejects(
            &[("domain-template", "{{.Name")],
            "domain-template",
            "{{.Name",
        );
        rejects(
            &[("domain-template", "{{.Nam}}.{{.Domain}}")],
            "domain-template",
            "{{.Nam}}.{{.Domain}}",
        );
    }

    #[test]
    fn domain_template_must_yield_a_host_name_without_path() {
        let message = rejects(
            &[("domain-template", "{{.Domain}}/{{.Name}}")],
            "domain-template",
            "{{.Domain}}/{{.Name}}",
        );
        assert!(message.contains("path"), "{message}");
        rejects(&[("domain-template", "")], "domain-template", "");
    }

    #[test]
    fn tag_template_may_only_use_name_and_tag() {
        rejects(
            &[("tag-template", "{{.Tag}}-{{.Namespace}}")],
            "tag-template",
            "{{.Tag}}-{{.Namespace}}",
        );
        rejects(&[("tagTemplate", "{{.Tag")], "tagTemplate", "{{.Tag");
    }
}
