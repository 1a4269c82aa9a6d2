//! `config-defaults`: the values Knative fills into Revisions that leave them out
//! (knative.dev/serving `pkg/apis/config/defaults.go`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::parse::{Keys, is_quantity};
use super::template::{Kind, Template, TemplateError, Value};
use super::{ConfigError, ConfigMapConfig};

/// The default `container-name-template`.
pub const DEFAULT_USER_CONTAINER_NAME: &str = "user-container";
/// The default `init-container-name-template`.
pub const DEFAULT_INIT_CONTAINER_NAME: &str = "init-container";

/// The fields of the enclosing Service's or Configuration's `ObjectMeta` a container name
/// template may use.
const OBJECT_META_FIELDS: &[(&str, Kind)] = &[
    ("Name", Kind::Text),
    ("GenerateName", Kind::Text),
    ("Namespace", Kind::Text),
    ("UID", Kind::Text),
    ("ResourceVersion", Kind::Text),
    ("Labels", Kind::Map),
    ("Annotations", Kind::Map),
];

/// `config-defaults`, with Knative's keys, defaults and cross-checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultsConfig {
    /// `revision-timeout-seconds`: a Revision's request timeout when it sets none (default 300).
    pub revision_timeout_seconds: i64,
    /// `max-revision-timeout-seconds`: the largest request timeout a Revision may set (default
    /// 600); at least `revision-timeout-seconds`.
    pub max_revision_timeout_seconds: i64,
    /// `revision-response-start-timeout-seconds`: how long a request may wait for the first
    /// byte of the response (default 0: not set, the request timeout applies); at most
    /// `revision-timeout-seconds`.
    pub revision_response_start_timeout_seconds: i64,
    /// `revision-idle-timeout-seconds`: how long a request may go without a byte from the
    /// application (default 0: infinite); at most `revision-timeout-seconds`.
    pub revision_idle_timeout_seconds: i64,
    /// `revision-cpu-request` (a resource quantity, default none).
    pub revision_cpu_request: Option<String>,
    /// `revision-memory-request` (default none).
    pub revision_memory_request: Option<String>,
    /// `revision-ephemeral-storage-request` (default none).
    pub revision_ephemeral_storage_request: Option<String>,
    /// `revision-cpu-limit` (default none).
    pub revision_cpu_limit: Option<String>,
    /// `revision-memory-limit` (default none).
    pub revision_memory_limit: Option<String>,
    /// `revision-ephemeral-storage-limit` (default none).
    pub revision_ephemeral_storage_limit: Option<String>,
    /// `container-name-template`: a Go template, over the enclosing Service's or
    /// Configuration's metadata (`{{.Name}}`, …), of the name of a container that has none
    /// (default `user-container`). Render it with
    /// [`user_container_name`](Self::user_container_name).
    pub container_name_template: String,
    /// `init-container-name-template`: the same for init containers (default `init-container`).
    pub init_container_name_template: String,
    /// `container-concurrency`: a Revision's `containerConcurrency` when it sets none (default
    /// 0: unlimited); in [0, `container-concurrency-max-limit`].
    pub container_concurrency: i64,
    /// `container-concurrency-max-limit`: the largest `containerConcurrency` (default 1000),
    /// at least 1.
    pub container_concurrency_max_limit: i64,
    /// `allow-container-concurrency-zero`: whether a Revision may set `containerConcurrency: 0`
    /// (default `true`).
    pub allow_container_concurrency_zero: bool,
    /// `enable-service-links`: the PodSpec's `enableServiceLinks` when a Revision sets none
    /// (default `Some(false)`); `default` in the ConfigMap (or any value but true and false)
    /// is `None`: leave it to Kubernetes.
    pub enable_service_links: Option<bool>,
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        Self {
            revision_timeout_seconds: 300,
            max_revision_timeout_seconds: 600,
            revision_response_start_timeout_seconds: 0,
            revision_idle_timeout_seconds: 0,
            revision_cpu_request: None,
            revision_memory_request: None,
            revision_ephemeral_storage_request: None,
            revision_cpu_limit: None,
            revision_memory_limit: None,
            revision_ephemeral_storage_limit: None,
            container_name_template: DEFAULT_USER_CONTAINER_NAME.to_owned(),
            init_container_name_template: DEFAULT_INIT_CONTAINER_NAME.to_owned(),
            container_concurrency: 0,
            container_concurrency_max_limit: 1000,
            allow_container_concurrency_zero: true,
            enable_service_links: Some(false),
        }
    }
}

impl ConfigMapConfig for DefaultsConfig {
    const NAME: &'static str = "config-defaults";

    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = Keys::new(Self::NAME, data);
        let mut c = Self::default();
        for (key, target) in [
            ("container-name-template", &mut c.container_name_template),
            (
                "init-container-name-template",
                &mut c.init_container_name_template,
            ),
        ] {
            keys.string(key, target);
            Template::parse(target, OBJECT_META_FIELDS)
                .map_err(|err| keys.invalid(key, &*target, err.to_string()))?;
        }
        keys.bool(
            "allow-container-concurrency-zero",
            &mut c.allow_container_concurrency_zero,
        )?;
        if let Some(raw) = keys.raw("enable-service-links") {
            c.enable_service_links = if raw.eq_ignore_ascii_case("true") {
                Some(true)
            } else if raw.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            };
        }
        keys.int("revision-timeout-seconds", &mut c.revision_timeout_seconds)?;
        keys.int(
            "revision-response-start-timeout-seconds",
            &mut c.revision_response_start_timeout_seconds,
        )?;
        keys.int(
            "revision-idle-timeout-seconds",
            &mut c.revision_idle_timeout_seconds,
        )?;
        keys.int(
            "max-revision-timeout-seconds",
            &mut c.max_revision_timeout_seconds,
        )?;
        keys.int(
            "container-concurrency-max-limit",
            &mut c.container_concurrency_max_limit,
        )?;
        keys.int("container-concurrency", &mut c.container_concurrency)?;
        for (key, target) in [
            ("revision-cpu-request", &mut c.revision_cpu_request),
            ("revision-memory-request", &mut c.revision_memory_request),
            (
                "revision-ephemeral-storage-request",
                &mut c.revision_ephemeral_storage_request,
            ),
            ("revision-cpu-limit", &mut c.revision_cpu_limit),
            ("revision-memory-limit", &mut c.revision_memory_limit),
            (
                "revision-ephemeral-storage-limit",
                &mut c.revision_ephemeral_storage_limit,
            ),
        ] {
            if let Some(raw) = keys.raw(key) {
                if !is_quantity(raw) {
                    return Err(keys.invalid(
                        key,
                        raw,
                        "expected a resource quantity such as \"500m\" or \"128Mi\"",
                    ));
                }
                *target = Some(raw.to_owned());
            }
        }
        c.validate(&keys)?;
        Ok(c)
    }
}

impl DefaultsConfig {
    fn validate(&self, keys: &Keys<'_>) -> Result<(), ConfigError> {
        let timeout = self.revision_timeout_seconds;
        if timeout > self.max_revision_timeout_seconds {
            return Err(keys.invalid(
                "revision-timeout-seconds",
                timeout,
                format!(
                    "cannot be greater than max-revision-timeout-seconds ({})",
                    self.max_revision_timeout_seconds
                ),
            ));
        }
        if self.revision_response_start_timeout_seconds > 0
            && self.revision_response_start_timeout_seconds > timeout
        {
            return Err(keys.invalid(
                "revision-response-start-timeout-seconds",
                self.revision_response_start_timeout_seconds,
                format!("cannot be greater than revision-timeout-seconds ({timeout})"),
            ));
        }
        if self.revision_idle_timeout_seconds > 0 && self.revision_idle_timeout_seconds > timeout {
            return Err(keys.invalid(
                "revision-idle-timeout-seconds",
                self.revision_idle_timeout_seconds,
                format!("cannot be greater than revision-timeout-seconds ({timeout})"),
            ));
        }
        if self.container_concurrency_max_limit < 1
            || self.container_concurrency_max_limit > i64::from(i32::MAX)
        {
            return Err(keys.invalid(
                "container-concurrency-max-limit",
                self.container_concurrency_max_limit,
                format!("must be in [1, {}]", i32::MAX),
            ));
        }
        if self.container_concurrency < 0
            || self.container_concurrency > self.container_concurrency_max_limit
        {
            return Err(keys.invalid(
                "container-concurrency",
                self.container_concurrency,
                format!(
                    "must be in [0, container-concurrency-max-limit ({})]",
                    self.container_concurrency_max_limit
                ),
            ));
        }
        Ok(())
    }

    /// The name of a container that has none: `container-name-template` executed over the
    /// enclosing Service's or Configuration's metadata.
    ///
    /// ```
    /// use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    /// use knative_core::config::DefaultsConfig;
    ///
    /// let meta = ObjectMeta { name: Some("hello".into()), ..Default::default() };
    /// assert_eq!(DefaultsConfig::default().user_container_name(&meta).unwrap(), "user-container");
    /// ```
    ///
    /// # Errors
    /// When `container_name_template` was set to a template that does not parse (a parsed
    /// ConfigMap's never fails).
    pub fn user_container_name(&self, parent: &ObjectMeta) -> Result<String, TemplateError> {
        render_name(&self.container_name_template, parent)
    }

    /// The name of an init container that has none: `init-container-name-template` executed
    /// over the enclosing Service's or Configuration's metadata.
    ///
    /// # Errors
    /// When `init_container_name_template` was set to a template that does not parse.
    pub fn init_container_name(&self, parent: &ObjectMeta) -> Result<String, TemplateError> {
        render_name(&self.init_container_name_template, parent)
    }
}

fn render_name(source: &str, meta: &ObjectMeta) -> Result<String, TemplateError> {
    let template = Template::parse(source, OBJECT_META_FIELDS)?;
    fn text(field: &Option<String>) -> &str {
        field.as_deref().unwrap_or_default()
    }
    Ok(template.render(&|field| match field {
        "Name" => Value::Text(text(&meta.name)),
        "GenerateName" => Value::Text(text(&meta.generate_name)),
        "Namespace" => Value::Text(text(&meta.namespace)),
        "UID" => Value::Text(text(&meta.uid)),
        "ResourceVersion" => Value::Text(text(&meta.resource_version)),
        "Labels" => Value::Map(meta.labels.as_ref()),
        _ => Value::Map(meta.annotations.as_ref()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<DefaultsConfig, ConfigError> {
        crate::config::test_support::parse(pairs)
    }

    fn rejects(pairs: &[(&str, &str)], key: &str, value: &str) -> String {
        crate::config::test_support::rejects::<DefaultsConfig>(pairs, key, value)
    }

    #[test]
    fn empty_data_is_knatives_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, DefaultsConfig::default());
        assert_eq!(c.revision_timeout_seconds, 300);
        assert_eq!(c.max_revision_timeout_seconds, 600);
        assert_eq!(c.revision_response_start_timeout_seconds, 0);
        assert_eq!(c.revision_idle_timeout_seconds, 0);
        assert_eq!(c.revision_cpu_request, None);
        assert_eq!(c.revision_memory_limit, None);
        assert_eq!(c.container_name_template, "user-container");
        assert_eq!(c.init_container_name_template, "init-container");
        assert_eq!(c.container_concurrency, 0);
        assert_eq!(c.container_concurrency_max_limit, 1000);
        assert!(c.allow_container_concurrency_zero);
        assert_eq!(c.enable_service_links, Some(false));
    }

    #[test]
    fn every_key_parses() {
        let c = parse(&[
            ("revision-timeout-seconds", "400"),
            ("max-revision-timeout-seconds", "900"),
            ("revision-response-start-timeout-seconds", "100"),
            ("revision-idle-timeout-seconds", "200"),
            ("revision-cpu-request", "400m"),
            ("revision-memory-request", "100M"),
            ("revision-ephemeral-storage-request", "500M"),
            ("revision-cpu-limit", "1"),
            ("revision-memory-limit", "200Mi"),
            ("revision-ephemeral-storage-limit", "7.5e8"),
            ("container-name-template", "{{.Name}}-app"),
            ("init-container-name-template", "{{.Name}}-init"),
            ("container-concurrency", "10"),
            ("container-concurrency-max-limit", "100"),
            ("allow-container-concurrency-zero", "false"),
            ("enable-service-links", "true"),
        ])
        .unwrap();
        assert_eq!(
            c,
            DefaultsConfig {
                revision_timeout_seconds: 400,
                max_revision_timeout_seconds: 900,
                revision_response_start_timeout_seconds: 100,
                revision_idle_timeout_seconds: 200,
                revision_cpu_request: Some("400m".to_owned()),
                revision_memory_request: Some("100M".to_owned()),
                revision_ephemeral_storage_request: Some("500M".to_owned()),
                revision_cpu_limit: Some("1".to_owned()),
                revision_memory_limit: Some("200Mi".to_owned()),
                revision_ephemeral_storage_limit: Some("7.5e8".to_owned()),
                container_name_template: "{{.Name}}-app".to_owned(),
                init_container_name_template: "{{.Name}}-init".to_owned(),
                container_concurrency: 10,
                container_concurrency_max_limit: 100,
                allow_container_concurrency_zero: false,
                enable_service_links: Some(true),
            }
        );
        let meta = ObjectMeta {
            name: Some("hello".into()),
            ..Default::default()
        };
        assert_eq!(c.user_container_name(&meta).unwrap(), "hello-app");
        assert_eq!(c.init_container_name(&meta).unwrap(), "hello-init");
    }

    #[test]
    fn enable_service_links_default_leaves_it_to_kubernetes() {
        assert_eq!(
            parse(&[("enable-service-links", "default")])
                .unwrap()
                .enable_service_links,
            None
        );
        assert_eq!(
            parse(&[("enable-service-links", "FALSE")])
                .unwrap()
                .enable_service_links,
            Some(false)
        );
    }

    #[test]
    fn malformed_values_are_rejected_naming_key_and_value() {
        rejects(
            &[("revision-timeout-seconds", "5m")],
            "revision-timeout-seconds",
            "5m",
        );
        rejects(
            &[("max-revision-timeout-seconds", "x")],
            "max-revision-timeout-seconds",
            "x",
        );
        rejects(
            &[("revision-idle-timeout-seconds", "1.5")],
            "revision-idle-timeout-seconds",
            "1.5",
        );
        rejects(
            &[("container-concurrency", "lots")],
            "container-concurrency",
            "lots",
        );
        rejects(
            &[("allow-container-concurrency-zero", "yes")],
            "allow-container-concurrency-zero",
            "yes",
        );
        rejects(
            &[("revision-cpu-request", "lots")],
            "revision-cpu-request",
            "lots",
        );
        rejects(
            &[("revision-memory-limit", "1Gb")],
            "revision-memory-limit",
            "1Gb",
        );
        rejects(
            &[("revision-memory-request", "")],
            "revision-memory-request",
            "",
        );
    }

    #[test]
    fn container_name_templates_must_parse_over_object_meta() {
        rejects(
            &[("container-name-template", "{{.Name")],
            "container-name-template",
            "{{.Name",
        );
        rejects(
            &[("init-container-name-template", "{{.Nme}}")],
            "init-container-name-template",
            "{{.Nme}}",
        );
    }

    #[test]
    fn revision_timeout_cannot_exceed_max_revision_timeout() {
        let message = rejects(
            &[("revision-timeout-seconds", "700")],
            "revision-timeout-seconds",
            "700",
        );
        assert!(
            message.contains("max-revision-timeout-seconds (600)"),
            "{message}"
        );
        rejects(
            &[("max-revision-timeout-seconds", "200")],
            "revision-timeout-seconds",
            "300",
        );
    }

    #[test]
    fn response_start_timeout_cannot_exceed_revision_timeout() {
        rejects(
            &[("revision-response-start-timeout-seconds", "301")],
            "revision-response-start-timeout-seconds",
            "301",
        );
        assert!(parse(&[("revision-response-start-timeout-seconds", "300")]).is_ok());
    }

    #[test]
    fn idle_timeout_cannot_exceed_revision_timeout() {
        rejects(
            &[("revision-idle-timeout-seconds", "301")],
            "revision-idle-timeout-seconds",
            "301",
        );
    }

    #[test]
    fn container_concurrency_max_limit_is_at_least_one() {
        rejects(
            &[("container-concurrency-max-limit", "0")],
            "container-concurrency-max-limit",
            "0",
        );
    }

    #[test]
    fn container_concurrency_is_within_zero_and_max_limit() {
        rejects(
            &[("container-concurrency", "-1")],
            "container-concurrency",
            "-1",
        );
        rejects(
            &[("container-concurrency", "1001")],
            "container-concurrency",
            "1001",
        );
        rejects(
            &[
                ("container-concurrency", "10"),
                ("container-concurrency-max-limit", "5"),
            ],
            "container-concurrency",
            "10",
        );
    }
}
