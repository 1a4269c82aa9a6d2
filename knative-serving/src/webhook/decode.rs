//! Typed decoding whose errors name the field.
//!
//! serde's errors say what is wrong but not where: the SDK's types inline (flatten) several
//! structs, and a flattened field's error loses its path. So when decoding fails, the object
//! is walked against the type's JSON schema (and, where a pod spec is inlined, the pod spec's)
//! to find every field of the wrong type or value, each reported with its path. What the
//! schema cannot see (a malformed timestamp, say) falls back to serde's own message, located
//! as far as serde_yaml's path tracking can.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::apis::FieldError;

/// Decodes `object` as a `T`; when it does not decode, every problem found, with its path.
///
/// `pod_spec_at` is the JSON pointer of an inlined pod spec (`""`: none).
pub(crate) fn decode<T: DeserializeOwned + JsonSchema>(
    object: &Value,
    pod_spec_at: &str,
) -> Result<T, FieldError> {
    T::deserialize(object).map_err(|error| locate::<T>(object, pod_spec_at, &error))
}

fn locate<T: DeserializeOwned + JsonSchema>(
    object: &Value,
    pod_spec_at: &str,
    error: &serde_json::Error,
) -> FieldError {
    let mut problems = Vec::new();
    let schema = root_schema::<T>();
    Walker::new(&schema).check(object, &schema, "", false, &mut problems);
    // The schemas of the Kubernetes types that the root schema leaves out: the metadata of a
    // custom resource, and the pod spec whose CRD schema is kept open.
    let mut embedded = Vec::new();
    if schema.pointer("/properties/metadata").is_none() {
        embedded.push(("/metadata", root_schema::<ObjectMeta>()));
    }
    if !pod_spec_at.is_empty() {
        embedded.push((pod_spec_at, root_schema::<PodSpec>()));
    }
    for (pointer, schema) in &embedded {
        if let Some(value) = object.pointer(pointer) {
            let path = pointer.trim_start_matches('/').replace('/', ".");
            Walker::new(schema).check(value, schema, &path, true, &mut problems);
        }
    }
    if problems.is_empty() {
        return fallback::<T>(object, error);
    }
    problems
        .into_iter()
        .fold(FieldError::default(), |errors, problem| {
            errors.also(FieldError::new(problem.message(), [problem.path()]))
        })
}

fn root_schema<T: JsonSchema>() -> Value {
    SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// serde's message, with the path serde_yaml tracks (it follows every field that is not
/// flattened).
fn fallback<T: DeserializeOwned>(object: &Value, error: &serde_json::Error) -> FieldError {
    let yaml_message = serde_yaml::to_string(object)
        .ok()
        .and_then(|text| serde_yaml::from_str::<T>(&text).err())
        .map(|e| strip_location(&e.to_string()).to_owned());
    let message = yaml_message.unwrap_or_else(|| strip_location(&error.to_string()).to_owned());
    match message.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            FieldError::new(rest, [path])
        }
        _ => FieldError::new(message, [""]),
    }
}

/// serde's messages end with ` at line L column C`, which would point into a document the
/// user never wrote.
fn strip_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at)
            if message[at + " at line ".len()..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            &message[..at]
        }
        _ => message,
    }
}

/// One field of the wrong type or value.
#[derive(Debug)]
enum Problem {
    /// A value of the wrong JSON type.
    Type {
        path: String,
        found: String,
        expected: String,
    },
    /// A value of the right type that is not allowed, or a missing field.
    Value { path: String, message: String },
}

impl Problem {
    fn path(&self) -> &str {
        match self {
            Problem::Type { path, .. } | Problem::Value { path, .. } => path,
        }
    }

    fn message(&self) -> String {
        match self {
            Problem::Type {
                found, expected, ..
            } => format!("invalid type: {found}, expected {expected}"),
            Problem::Value { message, .. } => message.clone(),
        }
    }
}

/// The type of a Quantity, which decodes from a string or a number.
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// A walk of a JSON value against a JSON schema (draft 2020-12, as schemars writes it), with
/// the keywords the SDK's schemas use: `$ref`, `type`, `format`, `enum`, `const`,
/// `properties`, `additionalProperties`, `required`, `items`, `anyOf`, `oneOf`, `allOf` and
/// `x-kubernetes-int-or-string`.
struct Walker<'a> {
    defs: Option<&'a Map<String, Value>>,
}

impl<'a> Walker<'a> {
    fn new(root: &'a Value) -> Self {
        Walker {
            defs: root.get("$defs").and_then(Value::as_object),
        }
    }

    /// Pushes the problems of `value` against `schema` at `path`. `k8s` is set inside the
    /// Kubernetes types, whose decoders take `null` for any field and default missing ones.
    fn check(&self, value: &Value, schema: &Value, path: &str, k8s: bool, out: &mut Vec<Problem>) {
        let Value::Object(schema) = schema else {
            return;
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/$defs/")
                .map(|n| n.replace("~1", "/").replace("~0", "~"));
            let Some(name) = name else { return };
            if name == QUANTITY {
                if !(value.is_string() || value.is_number() || value.is_null()) {
                    out.push(type_problem(path, value, "a quantity"));
                }
                return;
            }
            if let Some(target) = self.defs.and_then(|defs| defs.get(&name)) {
                self.check(value, target, path, k8s || name.starts_with("io.k8s."), out);
            }
            return;
        }
        if value.is_null() && (k8s || allows_null(schema)) {
            return;
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            if !(is_integer(value) || value.is_string()) {
                out.push(type_problem(path, value, "an integer or a string"));
            }
            return;
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(union).and_then(Value::as_array) {
                self.check_union(value, branches, path, k8s, out);
                return;
            }
        }
        for branch in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(value, branch, path, k8s, out);
        }
        let types = types_of(schema);
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            out.push(type_problem(path, value, &describe(&types)));
            return;
        }
        if let Some(problem) = integer_range(value, schema) {
            out.push(Problem::Value {
                path: path.to_owned(),
                message: format!("invalid value: {value}, expected {problem}"),
            });
        }
        let allowed = allowed_values(schema);
        if !allowed.is_empty() && !allowed.contains(&value) {
            out.push(one_of_problem(path, value, &allowed));
        }
        match value {
            Value::Object(fields) => self.check_fields(fields, schema, path, k8s, out),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &format!("{path}[{i}]"), k8s, out);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_fields(
        &self,
        fields: &Map<String, Value>,
        schema: &Map<String, Value>,
        path: &str,
        k8s: bool,
        out: &mut Vec<Problem>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, field) in fields {
            if let Some(field_schema) = properties.and_then(|p| p.get(key)) {
                self.check(field, field_schema, &join(path, key), k8s, out);
            } else if let Some(additional) = additional {
                self.check(field, additional, &format!("{path}[{key}]"), k8s, out);
            }
        }
        if k8s {
            return;
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(required) {
                out.push(Problem::Value {
                    path: join(path, required),
                    message: "missing field(s)".to_owned(),
                });
            }
        }
    }

    /// A value matches a union when it matches any branch. When it matches none, the branch
    /// whose type it has says what is wrong (an `Option<Enum>` reports the enum's values, not
    /// that the value is not `null`).
    fn check_union(
        &self,
        value: &Value,
        branches: &[Value],
        path: &str,
        k8s: bool,
        out: &mut Vec<Problem>,
    ) {
        let mut attempts = Vec::with_capacity(branches.len());
        for branch in branches {
            let mut problems = Vec::new();
            self.check(value, branch, path, k8s, &mut problems);
            if problems.is_empty() {
                return;
            }
            attempts.push((branch, problems));
        }
        // An enum whose variants are documented: one `const` per branch.
        let constants: Vec<&Value> = branches
            .iter()
            .flat_map(|b| {
                let b = self.resolve(b);
                b.get("const").into_iter().chain(
                    b.get("enum")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
            })
            .collect();
        let nullable = branches
            .iter()
            .any(|b| self.resolve(b).get("type") == Some(&"null".into()));
        if constants.len() + usize::from(nullable) == branches.len() && !constants.is_empty() {
            out.push(one_of_problem(path, value, &constants));
            return;
        }
        let typed_right = attempts.iter().position(|(_, problems)| {
            !problems
                .iter()
                .any(|p| matches!(p, Problem::Type { path: at, .. } if at == path))
        });
        if let Some(i) = typed_right {
            out.append(&mut attempts.swap_remove(i).1);
            return;
        }
        let mut expected: Vec<String> = Vec::new();
        for (_, problems) in &attempts {
            for problem in problems {
                if let Problem::Type {
                    path: at,
                    expected: e,
                    ..
                } = problem
                    && at == path
                    && e != "null"
                    && !expected.contains(e)
                {
                    expected.push(e.clone());
                }
            }
        }
        out.push(type_problem(path, value, &expected.join(" or ")));
    }

    /// The schema a `$ref` points to, or the schema itself.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| self.defs.and_then(|defs| defs.get(name)))
            .unwrap_or(schema)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn types_of(schema: &Map<String, Value>) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn allows_null(schema: &Map<String, Value>) -> bool {
    types_of(schema).contains(&"null") || schema.get("nullable") == Some(&Value::Bool(true))
}

fn allowed_values(schema: &Map<String, Value>) -> Vec<&Value> {
    schema
        .get("enum")
        .and_then(Value::as_array)
        .map(|values| values.iter().collect())
        .or_else(|| schema.get("const").map(|c| vec![c]))
        .unwrap_or_default()
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64()
}

fn has_type(value: &Value, json_type: &str) -> bool {
    match json_type {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// `an integer or a string`, for the types of a schema (`null` left out: it is never what
/// the user meant to write).
fn describe(types: &[&str]) -> String {
    let described: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "boolean" => "a boolean",
            "integer" => "an integer",
            "number" => "a number",
            "string" => "a string",
            "array" => "a list",
            "object" => "an object",
            other => other,
        })
        .collect();
    if described.is_empty() {
        "null".to_owned()
    } else {
        described.join(" or ")
    }
}

/// What a value is, in an error message: `string "abc"`, `integer 5`, `a list`, ...
fn found(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => format!("string {value}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn type_problem(path: &str, value: &Value, expected: &str) -> Problem {
    Problem::Type {
        path: path.to_owned(),
        found: found(value),
        expected: expected.to_owned(),
    }
}

fn one_of_problem(path: &str, value: &Value, allowed: &[&Value]) -> Problem {
    let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
    Problem::Value {
        path: path.to_owned(),
        message: format!(
            "invalid value: {value}, expected one of {}",
            allowed.join(", ")
        ),
    }
}

/// The range an integer `format` allows, when the value is outside it.
fn integer_range(value: &Value, schema: &Map<String, Value>) -> Option<&'static str> {
    let format = schema.get("format").and_then(Value::as_str)?;
    let fits = |min: i128, max: i128| {
        let n = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from));
        n.is_none_or(|n| (min..=max).contains(&n))
    };
    let (ok, expected) = match format {
        "int8" => (fits(i8::MIN.into(), i8::MAX.into()), "an 8-bit integer"),
        "int16" => (fits(i16::MIN.into(), i16::MAX.into()), "a 16-bit integer"),
        "int32" => (fits(i32::MIN.into(), i32::MAX.into()), "a 32-bit integer"),
        "uint8" => (fits(0, u8::MAX.into()), "an unsigned 8-bit integer"),
        "uint16" => (fits(0, u16::MAX.into()), "an unsigned 16-bit integer"),
        "uint32" => (fits(0, u32::MAX.into()), "an unsigned 32-bit integer"),
        "uint" | "uint64" => (fits(0, u64::MAX.into()), "a non-negative integer"),
        _ => (true, ""),
    };
    (!ok).then_some(expected)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apis::{Revision, ServerlessService, Service};

    fn service(spec: Value) -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": { "name": "hello" },
            "spec": spec,
        })
    }

    fn error_of<T: DeserializeOwned + JsonSchema + std::fmt::Debug>(
        object: &Value,
        pod_spec_at: &str,
    ) -> String {
        decode::<T>(object, pod_spec_at)
            .expect_err("does not decode")
            .to_string()
    }

    #[test]
    fn a_field_of_the_wrong_type_in_a_flattened_struct_is_named() {
        let object = service(json!({ "traffic": [{ "percent": "all", "latestRevision": true }] }));
        assert_eq!(
            error_of::<Service>(&object, "/spec/template/spec"),
            r#"invalid type: string "all", expected an integer: spec.traffic[0].percent"#
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_in_the_pod_spec_is_named() {
        let object = service(json!({ "template": { "spec": { "containers": [
            { "image": "example.com/app", "ports": [{ "containerPort": "http" }] },
        ] } } }));
        assert_eq!(
            error_of::<Service>(&object, "/spec/template/spec"),
            r#"invalid type: string "http", expected an integer: spec.template.spec.containers[0].ports[0].containerPort"#
        );
    }

    #[test]
    fn an_out_of_range_integer_is_named() {
        let object = json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": { "name": "r" },
            "spec": { "containers": [{ "image": "i", "ports": [{ "containerPort": 3_000_000_000_u64 }] }] },
        });
        assert_eq!(
            error_of::<Revision>(&object, "/spec"),
            "invalid value: 3000000000, expected a 32-bit integer: spec.containers[0].ports[0].containerPort"
        );
    }

    #[test]
    fn an_unknown_enum_value_is_named_with_the_values_allowed() {
        let object = json!({
            "apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "ServerlessService",
            "metadata": { "name": "s" },
            "spec": {
                "mode": "Sideways",
                "objectRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "d" },
                "protocolType": "http1",
            },
        });
        assert_eq!(
            error_of::<ServerlessService>(&object, ""),
            r#"invalid value: "Sideways", expected one of "Serve", "Proxy": spec.mode"#
        );
    }

    #[test]
    fn several_problems_are_all_reported() {
        let object = service(json!({
            "template": { "spec": { "timeoutSeconds": true, "containers": "app" } },
            "traffic": {},
        }));
        assert_eq!(
            error_of::<Service>(&object, "/spec/template/spec"),
            "invalid type: an object, expected a list: spec.traffic\n\
             invalid type: boolean true, expected an integer: spec.template.spec.timeoutSeconds\n\
             invalid type: string \"app\", expected a list: spec.template.spec.containers"
        );
    }

    #[test]
    fn kubernetes_types_are_checked_with_their_own_schemas() {
        let object = json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": { "name": "x", "labels": { "tier": 1 } },
            "spec": { "template": { "spec": { "containers": [{
                "image": "i",
                "resources": { "limits": { "cpu": true, "memory": 128 } },
                "livenessProbe": { "httpGet": { "port": [8080] } },
            }] } } },
        });
        assert_eq!(
            error_of::<Service>(&object, "/spec/template/spec"),
            "invalid type: a list, expected an integer or a string: spec.template.spec.containers[0].livenessProbe.httpGet.port\n\
             invalid type: boolean true, expected a quantity: spec.template.spec.containers[0].resources.limits[cpu]\n\
             invalid type: integer 1, expected a string: metadata.labels[tier]"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let object = json!({
            "apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "ServerlessService",
            "metadata": { "name": "s" },
            "spec": {},
        });
        assert_eq!(
            error_of::<ServerlessService>(&object, ""),
            "missing field(s): spec.objectRef, spec.protocolType"
        );
    }

    #[test]
    fn null_is_accepted_where_kubernetes_accepts_it() {
        let mut object =
            service(json!({ "template": { "spec": { "containers": [{ "image": "i" }] } } }));
        object["metadata"]["creationTimestamp"] = Value::Null;
        object["spec"]["traffic"] = json!([{ "percent": "x" }]);
        assert_eq!(
            error_of::<Service>(&object, "/spec/template/spec"),
            r#"invalid type: string "x", expected an integer: spec.traffic[0].percent"#
        );
    }

    #[test]
    fn what_the_schema_cannot_see_falls_back_to_serdes_message_with_its_path() {
        let mut object = service(json!({}));
        object["metadata"]["creationTimestamp"] = "yesterday".into();
        let message = error_of::<Service>(&object, "/spec/template/spec");
        assert!(
            message.ends_with(": metadata.creationTimestamp"),
            "{message}"
        );
    }

    #[test]
    fn locations_are_stripped_from_serde_messages() {
        assert_eq!(strip_location("bad at line 3 column 7"), "bad");
        assert_eq!(strip_location("bad at line three"), "bad at line three");
        assert_eq!(strip_location("bad"), "bad");
    }
}
