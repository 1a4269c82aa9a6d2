//! The library call: any object in; its kind, defaulted form and validation result out.

use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{decode, patch};
use crate::apis::serving::{CREATOR_ANNOTATION, UPDATER_ANNOTATION};
use crate::apis::{
    Configuration, Defaults, FieldError, Ingress, PodAutoscaler, Revision, Route,
    ServerlessService, Service, SetDefaults, Validate,
};

/// What [`check`] found out about an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Not a kind this crate validates (`v1 ConfigMap`, `apps/v1 Deployment`, ...): there is
    /// nothing to say about it.
    Unknown {
        /// The object's `apiVersion` (empty when it has none).
        api_version: String,
        /// The object's `kind` (empty when it has none).
        kind: String,
    },
    /// A known kind that does not decode: a field of the wrong type, an unknown enum value, a
    /// missing required field. Every problem found has the path of its field.
    Malformed {
        /// The object's kind.
        kind: Kind,
        /// What is wrong, rendered like any validation error.
        error: FieldError,
    },
    /// A known kind, decoded, defaulted and validated.
    Checked {
        /// The object's kind.
        kind: Kind,
        /// The object with Knative's defaults filled in. Fields the SDK's types do not model
        /// are kept as they were.
        defaulted: Value,
        /// The validation of the defaulted object.
        validation: Result<(), FieldError>,
    },
}

impl Outcome {
    /// The kind, when it is one this crate knows.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Outcome::Unknown { .. } => None,
            Outcome::Malformed { kind, .. } | Outcome::Checked { kind, .. } => Some(*kind),
        }
    }

    /// What is wrong with the object: its decoding or validation error; `None` when it is
    /// valid or not a known kind.
    pub fn error(&self) -> Option<&FieldError> {
        match self {
            Outcome::Malformed { error, .. }
            | Outcome::Checked {
                validation: Err(error),
                ..
            } => Some(error),
            _ => None,
        }
    }

    /// Whether the object is a known kind that decodes and validates.
    pub fn is_valid(&self) -> bool {
        matches!(
            self,
            Outcome::Checked {
                validation: Ok(()),
                ..
            }
        )
    }
}

/// The kinds this crate validates and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `serving.knative.dev/v1` Service.
    Service,
    /// `serving.knative.dev/v1` Configuration.
    Configuration,
    /// `serving.knative.dev/v1` Revision.
    Revision,
    /// `serving.knative.dev/v1` Route.
    Route,
    /// `autoscaling.internal.knative.dev/v1alpha1` PodAutoscaler: decoded (field types and
    /// enum values are checked) but neither validated further nor defaulted.
    PodAutoscaler,
    /// `networking.internal.knative.dev/v1alpha1` Ingress: decoded only, like PodAutoscaler.
    Ingress,
    /// `networking.internal.knative.dev/v1alpha1` ServerlessService: decoded only, like
    /// PodAutoscaler.
    ServerlessService,
}

impl Kind {
    /// Every kind, the user-facing ones first.
    pub const ALL: [Kind; 7] = [
        Kind::Service,
        Kind::Configuration,
        Kind::Revision,
        Kind::Route,
        Kind::PodAutoscaler,
        Kind::Ingress,
        Kind::ServerlessService,
    ];

    /// The kinds users write (`serving.knative.dev/v1`), which Knative's webhooks register for.
    pub const SERVING: [Kind; 4] = [
        Kind::Service,
        Kind::Configuration,
        Kind::Revision,
        Kind::Route,
    ];

    /// The kind with this `apiVersion` and `kind`, if it is one of ours.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version() == api_version && k.kind() == kind)
    }

    /// The API group, e.g. `serving.knative.dev`.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Service | Kind::Configuration | Kind::Revision | Kind::Route => {
                "serving.knative.dev"
            }
            Kind::PodAutoscaler => "autoscaling.internal.knative.dev",
            Kind::Ingress | Kind::ServerlessService => "networking.internal.knative.dev",
        }
    }

    /// The API version within the group, e.g. `v1`.
    pub fn version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Configuration | Kind::Revision | Kind::Route => "v1",
            Kind::PodAutoscaler | Kind::Ingress | Kind::ServerlessService => "v1alpha1",
        }
    }

    /// `group/version`, as in an object's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Configuration | Kind::Revision | Kind::Route => {
                "serving.knative.dev/v1"
            }
            Kind::PodAutoscaler => "autoscaling.internal.knative.dev/v1alpha1",
            Kind::Ingress | Kind::ServerlessService => "networking.internal.knative.dev/v1alpha1",
        }
    }

    /// The kind's name, as in an object's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::Configuration => "Configuration",
            Kind::Revision => "Revision",
            Kind::Route => "Route",
            Kind::PodAutoscaler => "PodAutoscaler",
            Kind::Ingress => "Ingress",
            Kind::ServerlessService => "ServerlessService",
        }
    }

    /// The resource name in URLs and webhook rules, e.g. `services`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Configuration => "configurations",
            Kind::Revision => "revisions",
            Kind::Route => "routes",
            Kind::PodAutoscaler => "podautoscalers",
            Kind::Ingress => "ingresses",
            Kind::ServerlessService => "serverlessservices",
        }
    }

    /// Whether defaulting records who created and last modified the object
    /// (`serving.knative.dev/creator`, `serving.knative.dev/lastModifier`), as Knative does for
    /// the kinds users write directly.
    fn records_user(self) -> bool {
        matches!(self, Kind::Service | Kind::Configuration | Kind::Route)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind())
    }
}

/// What an admission request adds to a check: the `config-defaults` in force, the user making
/// the request, and on an update the object as it was.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The defaults to fill in and the limits to validate against.
    pub defaults: &'a Defaults,
    /// The user creating or updating the object: recorded in `serving.knative.dev/creator` and
    /// `serving.knative.dev/lastModifier` on Services, Configurations and Routes.
    pub user: Option<&'a str>,
    /// The stored object, when this is an update: the creator annotation may not change, and
    /// `lastModifier` changes only with the spec.
    pub old_object: Option<&'a Value>,
}

impl<'a> Context<'a> {
    /// A creation by nobody in particular: what an offline check sees.
    pub fn new(defaults: &'a Defaults) -> Self {
        Context {
            defaults,
            user: None,
            old_object: None,
        }
    }
}

/// Decodes, defaults and validates `object` if it is a kind this crate knows.
///
/// The kind is read from the object's `apiVersion` and `kind`; anything else is
/// [`Outcome::Unknown`]. Never panics, whatever the JSON.
pub fn check(object: &Value, defaults: &Defaults) -> Outcome {
    check_in(object, &Context::new(defaults))
}

/// [`check`] with the user and the previous object of an admission request.
pub fn check_in(object: &Value, context: &Context<'_>) -> Outcome {
    let api_version = str_at(object, "/apiVersion");
    let kind = str_at(object, "/kind");
    let Some(known) = Kind::from_type(api_version, kind) else {
        return Outcome::Unknown {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        };
    };
    // Where a pod spec is inlined: its CRD schema is open, so decoding errors in it are
    // located with the pod spec's own schema.
    const TEMPLATE_POD_SPEC: &str = "/spec/template/spec";
    match known {
        Kind::Service => checked::<Service>(known, object, context, TEMPLATE_POD_SPEC),
        Kind::Configuration => checked::<Configuration>(known, object, context, TEMPLATE_POD_SPEC),
        Kind::Revision => checked::<Revision>(known, object, context, "/spec"),
        Kind::Route => checked::<Route>(known, object, context, ""),
        Kind::PodAutoscaler => decoded_only::<PodAutoscaler>(known, object),
        Kind::Ingress => decoded_only::<Ingress>(known, object),
        Kind::ServerlessService => decoded_only::<ServerlessService>(known, object),
    }
}

/// One document of a YAML stream and what [`check_yaml`] found out about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The document's position in the stream, from 0 (empty documents count).
    pub index: usize,
    /// Its `apiVersion` (empty when it has none).
    pub api_version: String,
    /// Its `kind` (empty when it has none).
    pub kind: String,
    /// Its `metadata.namespace`.
    pub namespace: Option<String>,
    /// Its `metadata.name`, or else its `metadata.generateName`.
    pub name: Option<String>,
    /// The outcome of [`check`].
    pub outcome: Outcome,
}

impl Document {
    /// `namespace/name`, or `name` when the document has no namespace.
    pub fn qualified_name(&self) -> String {
        let name = self.name.as_deref().unwrap_or_default();
        match &self.namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }
}

/// A YAML stream that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// The document the error is in, from 0.
    pub index: usize,
    /// The line of the error, from 1, when known.
    pub line: Option<usize>,
    /// The column of the error, from 1, when known.
    pub column: Option<usize>,
    /// The parser's message (with the line and column, when known).
    pub message: String,
}

/// [`check`]s every document of a multi-document YAML stream, in order; empty documents are
/// left out.
///
/// # Errors
/// When the stream is not YAML, or a document cannot be represented as JSON: nothing is
/// checked then, as `kubectl apply` would apply nothing.
pub fn check_yaml(yaml: &str, defaults: &Defaults) -> Result<Vec<Document>, YamlError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let object = Value::deserialize(document).map_err(|e| YamlError {
            index,
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
            message: e.to_string(),
        })?;
        if object.is_null() {
            continue;
        }
        let meta = |field: &str| {
            object
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        documents.push(Document {
            index,
            api_version: str_at(&object, "/apiVersion").to_owned(),
            kind: str_at(&object, "/kind").to_owned(),
            namespace: meta("namespace"),
            name: meta("name").or_else(|| meta("generateName")),
            outcome: check(&object, defaults),
        });
    }
    Ok(documents)
}

/// Decodes, defaults (recording the user), and validates a kind with [`Validate`] and
/// [`SetDefaults`].
fn checked<T>(kind: Kind, object: &Value, context: &Context<'_>, pod_spec_at: &str) -> Outcome
where
    T: DeserializeOwned + Serialize + JsonSchema + Validate + SetDefaults + kube::Resource,
{
    let mut typed: T = match decode::decode(object, pod_spec_at) {
        Ok(typed) => typed,
        Err(error) => return Outcome::Malformed { kind, error },
    };
    let before = to_json(&typed);
    typed.set_defaults(context.defaults);

    let mut update_errors = FieldError::default();
    let old = context.old_object.map(|old| {
        decode::decode::<T>(old, pod_spec_at).ok().map(|mut old| {
            old.set_defaults(context.defaults);
            old
        })
    });
    if kind.records_user() {
        if let Some(user) = context.user {
            set_user_info(&mut typed, old.as_ref().map(Option::as_ref), user);
        }
        if let Some(Some(old)) = &old {
            update_errors = validate_creator_and_modifier(old, &typed);
        }
    }
    if let Some(Some(old)) = &old {
        update_errors = update_errors.also(validate_update(kind, &to_json(old), &to_json(&typed)));
    }

    let after = to_json(&typed);
    let mut defaulted = object.clone();
    patch::merge_changes(&mut defaulted, &before, &after);
    let mut errors = typed
        .validate_with(context.defaults)
        .err()
        .unwrap_or_default();
    if kind == Kind::Revision && matches!(old, Some(Some(_))) {
        // Knative validates a Revision's spec on creation only: an update may only touch its
        // metadata, and must not fail because the limits in force changed since.
        errors = without_spec_errors(&errors);
    }
    let validation = errors.also(update_errors).into_result();
    Outcome::Checked {
        kind,
        defaulted,
        validation,
    }
}

/// Decodes a kind that has no validation or defaulting of its own.
fn decoded_only<T: DeserializeOwned + JsonSchema>(kind: Kind, object: &Value) -> Outcome {
    match decode::decode::<T>(object, "") {
        Ok(_) => Outcome::Checked {
            kind,
            defaulted: object.clone(),
            validation: Ok(()),
        },
        Err(error) => Outcome::Malformed { kind, error },
    }
}

/// Knative's `serving.SetUserInfo`: on create the user is creator and last modifier; on update
/// the last modifier, if the spec changed. `old` is `Some` on an update (`Some(None)` when the
/// old object does not decode, which counts as a change).
fn set_user_info<T: Serialize + kube::Resource>(
    typed: &mut T,
    old: Option<Option<&T>>,
    user: &str,
) {
    let keys: &[&str] = match old {
        Some(Some(old)) if spec_of(old) == spec_of(typed) => return,
        Some(_) => &[UPDATER_ANNOTATION],
        None => &[CREATOR_ANNOTATION, UPDATER_ANNOTATION],
    };
    let annotations = typed
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default);
    for key in keys {
        annotations.insert((*key).to_owned(), user.to_owned());
    }
}

/// pkg's `apis.ValidateCreatorAndModifier` (paths under `metadata.annotations`): the creator
/// never changes, and the last modifier only with the spec.
fn validate_creator_and_modifier<T: Serialize + kube::Resource>(old: &T, new: &T) -> FieldError {
    let annotation = |object: &T, key: &str| {
        object
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let mut errors = FieldError::default();
    if spec_of(old) == spec_of(new)
        && annotation(old, UPDATER_ANNOTATION) != annotation(new, UPDATER_ANNOTATION)
    {
        errors = errors.also(FieldError::new(
            "annotation value is immutable",
            [UPDATER_ANNOTATION],
        ));
    }
    if annotation(old, CREATOR_ANNOTATION) != annotation(new, CREATOR_ANNOTATION) {
        errors = errors.also(FieldError::new(
            "annotation value is immutable",
            [CREATOR_ANNOTATION],
        ));
    }
    // The annotation keys contain dots, so the prefix is added without splitting them.
    let mut prefixed = FieldError::default();
    for e in errors.normalized() {
        prefixed = prefixed.also(FieldError::new(
            e.message,
            e.paths.iter().map(|p| format!("metadata.annotations.{p}")),
        ));
    }
    prefixed
}

/// What may not change on an update, as Knative's `Validate` checks it in `apis.IsInUpdate`:
/// a Revision's spec is immutable; a Service's or Configuration's template that names its
/// Revision (`spec.template.metadata.name`) must get a new name when anything in it changes
/// (`RevisionTemplateSpec.VerifyNameChange`), since that name is the Revision's, and Revisions
/// are immutable.
fn validate_update(kind: Kind, old: &Value, new: &Value) -> FieldError {
    match kind {
        Kind::Revision => {
            let diff = json_diff(&old["spec"], &new["spec"]);
            if diff.is_empty() {
                FieldError::default()
            } else {
                FieldError::new("Immutable fields changed (-old +new)", ["spec"]).with_details(diff)
            }
        }
        Kind::Service | Kind::Configuration => {
            let (old, new) = (&old["spec"]["template"], &new["spec"]["template"]);
            let name = str_at(new, "/metadata/name");
            if name.is_empty() || name != str_at(old, "/metadata/name") {
                return FieldError::default();
            }
            let diff = json_diff(old, new);
            if diff.is_empty() {
                FieldError::default()
            } else {
                FieldError::new(
                    "Saw the following changes without a name change (-old +new)",
                    ["spec.template.metadata.name"],
                )
                .with_details(diff)
            }
        }
        _ => FieldError::default(),
    }
}

/// `errors` without those about `spec` or anything under it.
fn without_spec_errors(errors: &FieldError) -> FieldError {
    errors
        .normalized()
        .into_iter()
        .filter_map(|mut e| {
            e.paths
                .retain(|p| p != "spec" && !p.starts_with("spec.") && !p.starts_with("spec["));
            (!e.paths.is_empty()).then_some(e)
        })
        .fold(FieldError::default(), FieldError::also)
}

/// A short, line-per-change description of how `new` differs from `old`, in the spirit of
/// `kmp.ShortDiff`: `{path}: -{old} +{new}`, with `-` or `+` alone for a field removed or added.
/// Empty when they are equal.
fn json_diff(old: &Value, new: &Value) -> String {
    fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<String>) {
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let sub = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(&sub, a.get(key), b.get(key), out);
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) => {
                for i in 0..a.len().max(b.len()) {
                    walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
                }
            }
            (a, b) if a == b => {}
            (Some(a), Some(b)) => out.push(format!("{{{path}}}: -{a} +{b}")),
            (Some(a), None) => out.push(format!("{{{path}}}: -{a}")),
            (None, Some(b)) => out.push(format!("{{{path}}}: +{b}")),
            (None, None) => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out.join("\n")
}

fn spec_of<T: Serialize>(object: &T) -> Value {
    to_json(object).get("spec").cloned().unwrap_or_default()
}

/// The SDK's types serialise to JSON without fail (string keys, no non-finite floats); should
/// one ever fail, the object is treated as unchanged rather than mangled.
fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::*;

    fn hello() -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": { "name": "hello", "namespace": "default" },
            "spec": { "template": { "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] } } },
        })
    }

    fn revision() -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": { "name": "hello-00001", "namespace": "default" },
            "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] },
        })
    }

    /// The single error an update gets.
    fn update_error(new: &Value, old: &Value) -> FieldError {
        let errors = update(new, old).unwrap_err().normalized();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    fn update(new: &Value, old: &Value) -> Result<(), FieldError> {
        let defaults = Defaults::default();
        let context = Context {
            old_object: Some(old),
            ..Context::new(&defaults)
        };
        match check_in(new, &context) {
            Outcome::Checked { validation, .. } => validation,
            other => panic!("not checked: {other:?}"),
        }
    }

    #[test]
    fn a_revision_spec_change_is_refused_as_immutable() {
        let old = revision();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = "example.com/v2".into();
        let error = update_error(&new, &old);
        assert_eq!(error.paths, ["spec"]);
        assert_eq!(error.message, "Immutable fields changed (-old +new)");
        assert_eq!(
            error.details,
            r#"{containers[0].image}: -"ghcr.io/knative/helloworld-go:latest" +"example.com/v2""#
        );
    }

    #[test]
    fn a_revision_label_change_is_accepted() {
        let old = revision();
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({ "serving.knative.dev/routingState": "active" });
        assert_eq!(update(&new, &old), Ok(()));
    }

    #[test]
    fn a_revision_update_is_not_refused_for_a_spec_the_limits_no_longer_allow() {
        let mut old = revision();
        old["spec"]["timeoutSeconds"] = json!(100_000);
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({ "app": "x" });
        assert_eq!(update(&new, &old), Ok(()));
        assert!(matches!(
            check(&new, &Defaults::default()),
            Outcome::Checked {
                validation: Err(_),
                ..
            }
        ));
    }

    #[test]
    fn a_named_template_change_without_a_new_name_is_refused() {
        let mut old = hello();
        old["spec"]["template"]["metadata"] = json!({ "name": "hello-v1" });
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/v2".into();
        let error = update_error(&new, &old);
        assert_eq!(error.paths, ["spec.template.metadata.name"]);
        assert_eq!(
            error.message,
            "Saw the following changes without a name change (-old +new)"
        );
        assert!(
            error.details.contains("{spec.containers[0].image}"),
            "{}",
            error.details
        );
    }

    #[test]
    fn a_named_template_change_with_a_new_name_is_accepted() {
        let mut old = hello();
        old["spec"]["template"]["metadata"] = json!({ "name": "hello-v1" });
        let mut new = old.clone();
        new["spec"]["template"]["metadata"]["name"] = "hello-v2".into();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/v2".into();
        assert_eq!(update(&new, &old), Ok(()));
    }

    #[test]
    fn an_unnamed_template_may_change_without_a_name() {
        let old = hello();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/v2".into();
        assert_eq!(update(&new, &old), Ok(()));
    }

    #[test]
    fn kinds_agree_with_the_types() {
        fn agree<T: Resource<DynamicType = ()>>(kind: Kind) {
            assert_eq!(kind.api_version(), T::api_version(&()));
            assert_eq!(kind.group(), T::group(&()));
            assert_eq!(kind.version(), T::version(&()));
            assert_eq!(kind.kind(), T::kind(&()));
            assert_eq!(kind.plural(), T::plural(&()));
            assert_eq!(Kind::from_type(kind.api_version(), kind.kind()), Some(kind));
        }
        agree::<Service>(Kind::Service);
        agree::<Configuration>(Kind::Configuration);
        agree::<Revision>(Kind::Revision);
        agree::<Route>(Kind::Route);
        agree::<PodAutoscaler>(Kind::PodAutoscaler);
        agree::<Ingress>(Kind::Ingress);
        agree::<ServerlessService>(Kind::ServerlessService);
        assert_eq!(
            Kind::from_type("serving.knative.dev/v1beta1", "Service"),
            None
        );
        assert_eq!(Kind::from_type("v1", "Service"), None);
    }

    #[test]
    fn a_creation_by_a_user_records_creator_and_last_modifier() {
        let defaults = Defaults::default();
        let context = Context {
            user: Some("alice"),
            ..Context::new(&defaults)
        };
        let Outcome::Checked { defaulted, .. } = check_in(&hello(), &context) else {
            panic!("checked")
        };
        assert_eq!(
            defaulted["metadata"]["annotations"],
            json!({ CREATOR_ANNOTATION: "alice", UPDATER_ANNOTATION: "alice" })
        );
    }

    #[test]
    fn an_update_records_the_last_modifier_only_when_the_spec_changes() {
        let defaults = Defaults::default();
        let mut old = hello();
        old["metadata"]["annotations"] =
            json!({ CREATOR_ANNOTATION: "alice", UPDATER_ANNOTATION: "alice" });
        let same = old.clone();
        let context = Context {
            user: Some("bob"),
            old_object: Some(&old),
            ..Context::new(&defaults)
        };
        let Outcome::Checked {
            defaulted,
            validation,
            ..
        } = check_in(&same, &context)
        else {
            panic!("checked")
        };
        assert_eq!(validation, Ok(()));
        assert_eq!(
            defaulted["metadata"]["annotations"][UPDATER_ANNOTATION],
            "alice"
        );

        let mut changed = old.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/v2".into();
        let Outcome::Checked {
            defaulted,
            validation,
            ..
        } = check_in(&changed, &context)
        else {
            panic!("checked")
        };
        assert_eq!(validation, Ok(()));
        assert_eq!(
            defaulted["metadata"]["annotations"][UPDATER_ANNOTATION],
            "bob"
        );
        assert_eq!(
            defaulted["metadata"]["annotations"][CREATOR_ANNOTATION],
            "alice"
        );
    }

    #[test]
    fn an_update_may_not_change_the_creator() {
        let defaults = Defaults::default();
        let mut old = hello();
        old["metadata"]["annotations"] =
            json!({ CREATOR_ANNOTATION: "alice", UPDATER_ANNOTATION: "alice" });
        let mut new = old.clone();
        new["metadata"]["annotations"][CREATOR_ANNOTATION] = "mallory".into();
        new["metadata"]["annotations"][UPDATER_ANNOTATION] = "mallory".into();
        let context = Context {
            user: Some("mallory"),
            old_object: Some(&old),
            ..Context::new(&defaults)
        };
        let outcome = check_in(&new, &context);
        assert_eq!(
            outcome.error().map(ToString::to_string).as_deref(),
            Some(
                "annotation value is immutable: metadata.annotations.serving.knative.dev/creator, \
                 metadata.annotations.serving.knative.dev/lastModifier"
            )
        );
    }

    #[test]
    fn revisions_do_not_record_the_user() {
        let defaults = Defaults::default();
        let revision = json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": { "name": "hello-00001" },
            "spec": { "containers": [{ "image": "example.com/app" }] },
        });
        let context = Context {
            user: Some("alice"),
            ..Context::new(&defaults)
        };
        let Outcome::Checked { defaulted, .. } = check_in(&revision, &context) else {
            panic!("checked")
        };
        assert_eq!(defaulted["metadata"].get("annotations"), None);
    }
}
