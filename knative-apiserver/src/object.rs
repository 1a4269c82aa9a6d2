//! What happens to an object on create and update, as pure functions: system metadata,
//! generation, the status subresource, per-kind defaults, validation. No I/O, no clock: the
//! store passes `now`, the uid and the name suffix in.

use crate::error::ApiError;
use crate::resources::{Generation, ResourceType};
use base64::Engine;
use serde_json::{Map, Value, json};

/// Which endpoint a write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The object itself: status changes are ignored when the kind has a status subresource.
    Main,
    /// `/status`: only status changes are taken.
    Status,
}

/// Values the store supplies for a new object.
#[derive(Debug, Clone)]
pub(crate) struct Minted<'a> {
    /// RFC 3339 time in seconds.
    pub now: &'a str,
    pub uid: &'a str,
    /// Five characters appended to `generateName`.
    pub suffix: &'a str,
}

/// Formats a timestamp the way Kubernetes does (`2006-01-02T15:04:05Z`).
pub(crate) fn timestamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The name of an object.
pub(crate) fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// Prepares a new object: checks kind, namespace and name; sets system metadata and
/// defaults. The resourceVersion is set by the store.
pub(crate) fn prepare_create(
    rt: &ResourceType,
    version: &str,
    namespace: Option<&str>,
    mut object: Value,
    minted: &Minted<'_>,
) -> Result<Value, ApiError> {
    check_type(rt, version, &mut object)?;
    let metadata = metadata_mut(&mut object)?;
    scope_namespace(rt, namespace, metadata)?;
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        match metadata.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let generated = format!("{prefix}{}", minted.suffix);
                metadata.insert("name".into(), json!(generated));
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        }
    }
    for system in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        metadata.remove(system);
    }
    metadata.insert("uid".into(), json!(minted.uid));
    metadata.insert("creationTimestamp".into(), json!(minted.now));
    if rt.generation == Generation::Untracked {
        metadata.remove("generation");
    } else {
        metadata.insert("generation".into(), json!(1));
    }
    validate_name(rt, &object)?;
    if rt.status {
        object.as_object_mut().map(|o| o.remove("status"));
    }
    default(rt, &mut object, minted.now);
    Ok(object)
}

/// Prepares an update of `old` to `new` through `endpoint`. `None` when nothing would change
/// (kube-apiserver then keeps the resourceVersion and sends no event).
pub(crate) fn prepare_update(
    rt: &ResourceType,
    version: &str,
    old: &Value,
    mut new: Value,
    endpoint: Endpoint,
    now: &str,
) -> Result<Option<Value>, ApiError> {
    check_type(rt, version, &mut new)?;
    let name = name_of(old).to_string();
    if new["metadata"]["name"].as_str().unwrap_or("") != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            new["metadata"]["name"].as_str().unwrap_or("")
        )));
    }
    if let Some(rv) = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    if let Some(uid) = new["metadata"]["uid"]
        .as_str()
        .filter(|uid| !uid.is_empty())
        && Some(uid) != old["metadata"]["uid"].as_str()
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    let mut next = match endpoint {
        Endpoint::Status => {
            let mut next = old.clone();
            match new.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    next.as_object_mut().map(|o| o.remove("status"));
                }
            }
            next
        }
        Endpoint::Main => {
            let metadata = metadata_mut(&mut new)?;
            for system in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ] {
                match old["metadata"].get(system) {
                    Some(v) => metadata.insert(system.into(), v.clone()),
                    None => metadata.remove(system),
                };
            }
            metadata.remove("managedFields");
            metadata.remove("selfLink");
            if rt.status {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        new.as_object_mut().map(|o| o.remove("status"));
                    }
                }
            }
            new
        }
    };
    if old["metadata"].get("deletionTimestamp").is_some() {
        let before = strings(&old["metadata"]["finalizers"]);
        if strings(&next["metadata"]["finalizers"])
            .iter()
            .any(|f| !before.contains(f))
        {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    default(rt, &mut next, now);
    if let Some(Value::Object(m)) = next.get_mut("metadata") {
        m.insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
    }
    if next == *old {
        return Ok(None);
    }
    if spec_changed(rt, old, &next) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        next["metadata"]["generation"] = json!(generation);
    }
    Ok(Some(next))
}

/// Marks an object as being deleted (it has finalizers).
pub(crate) fn mark_deleting(object: &Value, now: &str) -> Value {
    let mut next = object.clone();
    next["metadata"]["deletionTimestamp"] = json!(now);
    next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    next
}

/// The object's finalizers.
pub(crate) fn finalizers(object: &Value) -> Vec<String> {
    strings(&object["metadata"]["finalizers"])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    match rt.generation {
        Generation::Untracked => false,
        Generation::Spec => old.get("spec") != new.get("spec"),
        Generation::AllButMetadata => {
            let strip = |v: &Value| {
                let mut m = v.as_object().cloned().unwrap_or_default();
                m.remove("metadata");
                if rt.status {
                    m.remove("status");
                }
                m
            };
            strip(old) != strip(new)
        }
    }
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    metadata
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn check_type(rt: &ResourceType, version: &str, object: &mut Value) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let expected_api_version = rt.api_version(version);
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != rt.kind)
        || (!api_version.is_empty() && api_version != expected_api_version)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the \
             expected {expected_api_version} {}",
            rt.kind
        )));
    }
    let maps: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => &["metadata", "spec", "status", "data", "stringData"],
        ("", "ConfigMap") => &["metadata", "spec", "status", "data", "binaryData"],
        _ => &["metadata", "spec", "status"],
    };
    for field in maps {
        if map
            .get(*field)
            .is_some_and(|v| !v.is_null() && !v.is_object())
        {
            return Err(ApiError::bad_request(format!("{field} must be an object")));
        }
    }
    if rt.group.is_empty()
        && rt.kind == "Service"
        && let Some(Value::Array(ports)) = map.get("spec").and_then(|s| s.get("ports"))
        && ports.iter().any(|p| !p.is_object())
    {
        return Err(ApiError::bad_request(
            "spec.ports: every port must be an object",
        ));
    }
    map.insert("apiVersion".into(), json!(expected_api_version));
    map.insert("kind".into(), json!(rt.kind));
    Ok(())
}

fn scope_namespace(
    rt: &ResourceType,
    namespace: Option<&str>,
    metadata: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    if !rt.namespaced {
        metadata.remove("namespace");
        return Ok(());
    }
    let Some(namespace) = namespace else {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: the request must name a namespace",
            rt.kind
        )));
    };
    match metadata.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            metadata.insert("namespace".into(), json!(namespace));
            Ok(())
        }
    }
}

/// DNS-1123 subdomain (label for namespaces), like kube-apiserver's name validation.
fn validate_name(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let name = name_of(object);
    let label_only = rt.kind == "Namespace";
    let max = if label_only { 63 } else { 253 };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    let ok = name.len() <= max
        && if label_only {
            part_ok(name)
        } else {
            name.split('.').all(part_ok)
        };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.kind,
            name,
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character",
                if label_only { "label" } else { "subdomain" }
            ),
        ))
    }
}

/// The defaults kube-apiserver fills in that clients and controllers rely on.
fn default(rt: &ResourceType, object: &mut Value, now: &str) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            if object["spec"]["finalizers"].is_null() {
                set(object, &["spec", "finalizers"], json!(["kubernetes"]));
            }
            if object["status"]["phase"].is_null() {
                set(object, &["status", "phase"], json!("Active"));
            }
        }
        ("", "Pod") if object["status"]["phase"].is_null() => {
            set(object, &["status", "phase"], json!("Pending"));
        }
        ("", "Secret") => {
            if object["type"].is_null() {
                set(object, &["type"], json!("Opaque"));
            }
            if let Some(Value::Object(string_data)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                for (key, value) in string_data {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(value.as_str().unwrap_or_default());
                    set(object, &["data", &key], json!(encoded));
                }
            }
        }
        ("", "Service") => {
            if object["spec"]["type"].is_null() {
                set(object, &["spec", "type"], json!("ClusterIP"));
            }
            if object["spec"]["sessionAffinity"].is_null() {
                set(object, &["spec", "sessionAffinity"], json!("None"));
            }
            if let Some(Value::Array(ports)) = object["spec"].get_mut("ports") {
                for port in ports {
                    if port["protocol"].is_null() {
                        set(port, &["protocol"], json!("TCP"));
                    }
                    if port["targetPort"].is_null() && !port["port"].is_null() {
                        let target = port["port"].clone();
                        set(port, &["targetPort"], target);
                    }
                }
            }
        }
        ("apps", "Deployment") if object["spec"]["replicas"].is_null() => {
            set(object, &["spec", "replicas"], json!(1));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let storage: Vec<Value> = object["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect();
            let mut accepted = object["spec"]["names"].clone();
            if accepted["singular"].is_null() {
                let kind = accepted["kind"].as_str().unwrap_or_default().to_lowercase();
                set(&mut accepted, &["singular"], json!(kind));
            }
            if accepted["listKind"].is_null() {
                let list_kind = format!("{}List", accepted["kind"].as_str().unwrap_or_default());
                set(&mut accepted, &["listKind"], json!(list_kind));
            }
            let since = object["status"]["conditions"][0]["lastTransitionTime"]
                .as_str()
                .unwrap_or(now)
                .to_string();
            let condition = |type_: &str, reason: &str, message: &str| {
                json!({"type": type_, "status": "True", "reason": reason, "message": message,
                       "lastTransitionTime": since})
            };
            let status = json!({
                "acceptedNames": accepted,
                "storedVersions": storage,
                "conditions": [
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
            });
            set(object, &["status"], status);
        }
        _ => {}
    }
}

/// Sets `path` in `target`, creating missing (null) maps on the way; a path through a
/// non-object value is left alone (such bodies are refused by validation or stored as given).
fn set(target: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = target;
    for key in parents {
        if current.is_null() {
            *current = json!({});
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        current = map.entry(key.to_string()).or_insert(Value::Null);
    }
    if current.is_null() {
        *current = json!({});
    }
    if let Some(map) = current.as_object_mut() {
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn rt(group: &str, plural: &str) -> ResourceType {
        Registry::builtin()
            .get(&crate::resources::type_key(group, plural))
            .unwrap()
            .clone()
    }

    fn minted() -> Minted<'static> {
        Minted {
            now: "2026-01-01T00:00:00Z",
            uid: "u-1",
            suffix: "abcde",
        }
    }

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web"}, "spec": {"replicas": replicas}})
    }

    #[test]
    fn create_sets_system_metadata_and_generation_one() {
        let out = prepare_create(
            &rt("apps", "deployments"),
            "v1",
            Some("ns"),
            deployment(2),
            &minted(),
        )
        .unwrap();
        assert_eq!(out["metadata"]["uid"], "u-1");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_eq!(out["metadata"]["generation"], 1);
        assert_eq!(out["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn generate_name_gets_the_suffix() {
        let cm = json!({"metadata": {"generateName": "cfg-"}});
        let out = prepare_create(&rt("", "configmaps"), "v1", Some("ns"), cm, &minted()).unwrap();
        assert_eq!(out["metadata"]["name"], "cfg-abcde");
        assert!(out["metadata"].get("generation").is_none());
    }

    #[test]
    fn an_object_without_a_name_is_invalid() {
        let err = prepare_create(
            &rt("", "configmaps"),
            "v1",
            Some("ns"),
            json!({}),
            &minted(),
        )
        .unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
    }

    #[test]
    fn an_uppercase_name_is_invalid() {
        let cm = json!({"metadata": {"name": "Bad"}});
        let err =
            prepare_create(&rt("", "configmaps"), "v1", Some("ns"), cm, &minted()).unwrap_err();
        assert!(err.message.contains("metadata.name"), "{}", err.message);
    }

    #[test]
    fn a_kind_that_does_not_match_the_url_is_a_bad_request() {
        let cm = json!({"kind": "Secret", "metadata": {"name": "a"}});
        let err =
            prepare_create(&rt("", "configmaps"), "v1", Some("ns"), cm, &minted()).unwrap_err();
        assert_eq!(err.code, 400);
    }

    fn created(replicas: i64) -> Value {
        let mut d = prepare_create(
            &rt("apps", "deployments"),
            "v1",
            Some("ns"),
            deployment(replicas),
            &minted(),
        )
        .unwrap();
        d["metadata"]["resourceVersion"] = json!("7");
        d
    }

    #[test]
    fn a_spec_change_bumps_the_generation() {
        let old = created(1);
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        let out = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["metadata"]["generation"], 2);
    }

    #[test]
    fn a_label_change_keeps_the_generation() {
        let old = created(1);
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"a": "b"});
        let out = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["metadata"]["generation"], 1);
    }

    #[test]
    fn the_main_endpoint_ignores_status_of_kinds_with_a_status_subresource() {
        let old = created(1);
        let mut new = old.clone();
        new["status"] = json!({"replicas": 5});
        let out = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap();
        assert_eq!(out, None, "an update that only changes status is a no-op");
    }

    #[test]
    fn the_status_endpoint_takes_only_status() {
        let old = created(1);
        let mut new = old.clone();
        new["status"] = json!({"replicas": 5});
        new["spec"]["replicas"] = json!(9);
        let out = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Status,
            "t",
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["status"]["replicas"], 5);
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["metadata"]["generation"], 1);
    }

    #[test]
    fn a_stale_resource_version_conflicts() {
        let old = created(1);
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("3");
        new["spec"]["replicas"] = json!(2);
        let err = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
    }

    #[test]
    fn an_update_carrying_another_uid_conflicts() {
        let old = created(1);
        let mut new = old.clone();
        new["metadata"]["uid"] = json!("someone-else");
        let err = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
    }

    #[test]
    fn no_finalizer_can_be_added_to_an_object_being_deleted() {
        let mut old = created(1);
        old["metadata"]["deletionTimestamp"] = json!("t");
        old["metadata"]["finalizers"] = json!(["a"]);
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!(["a", "b"]);
        let err = prepare_update(
            &rt("apps", "deployments"),
            "v1",
            &old,
            new,
            Endpoint::Main,
            "t",
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn a_spec_that_is_not_an_object_is_a_bad_request() {
        let ns = json!({"metadata": {"name": "n"}, "spec": "x"});
        let err = prepare_create(&rt("", "namespaces"), "v1", None, ns, &minted()).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn malformed_service_ports_and_secret_data_are_bad_requests() {
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": ["80"]}});
        let err =
            prepare_create(&rt("", "services"), "v1", Some("ns"), svc, &minted()).unwrap_err();
        assert_eq!(err.code, 400);
        let secret = json!({"metadata": {"name": "s"}, "data": "x", "stringData": {"k": "v"}});
        let err =
            prepare_create(&rt("", "secrets"), "v1", Some("ns"), secret, &minted()).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn secret_string_data_is_encoded_into_data() {
        let s = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        let out = prepare_create(&rt("", "secrets"), "v1", Some("ns"), s, &minted()).unwrap();
        assert_eq!(out["data"]["k"], "dg==");
        assert!(out.get("stringData").is_none());
    }
}
