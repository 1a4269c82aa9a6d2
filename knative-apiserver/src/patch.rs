//! The four patch types, applied to an object's JSON.
//!
//! - JSON merge patch (RFC 7386) and JSON patch (RFC 6902) are exact.
//! - Strategic merge patch (built-in kinds only, like kube-apiserver) merges maps like a merge
//!   patch and merges lists of objects by a merge key (`name`, `containerPort`, `port`,
//!   `mountPath`, `ip`, `type`, `uid`: the first key every element carries) instead of reading
//!   the Go struct tags; it honours the `$patch: delete|replace`, `$retainKeys`,
//!   `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` directives, and
//!   `metadata.finalizers` merges as a set. Other lists are replaced.
//! - Server-side apply is "merge the applied configuration into the live object, or create it":
//!   fields the applier dropped from its configuration are not removed and lists are replaced
//!   (kube-apiserver tracks field ownership in `managedFields` and merges `listType=map` lists).

use crate::error::ApiError;
use serde_json::{Map, Value};

/// How a PATCH body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Parses a patch body: JSON, or YAML for apply patches.
pub(crate) fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let parsed = match kind {
        PatchKind::Apply => serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string()),
        _ => serde_json::from_slice::<Value>(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))
}

/// Applies a parsed patch to `current`.
pub(crate) fn apply(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut target = current.clone();
    match kind {
        PatchKind::Merge | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut target, patch);
        }
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut target, &operations).map_err(|e| ApiError {
                code: 422,
                reason: "Invalid",
                message: format!("the JSON patch cannot be applied: {e}"),
                details: None,
            })?;
        }
        PatchKind::Strategic => {
            let Value::Object(patch) = patch else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            target = strategic_merge_map(&target, patch, &[]);
        }
    }
    Ok(target)
}

const MERGE_KEYS: [&str; 7] = [
    "name",
    "containerPort",
    "port",
    "mountPath",
    "ip",
    "type",
    "uid",
];

fn strategic_merge_map(current: &Value, patch: &Map<String, Value>, path: &[&str]) -> Value {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        return Value::Object(replaced);
    }
    let mut result = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        result.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (result.get_mut(field), value)
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(key);
        match value {
            Value::Null => {
                result.remove(key);
            }
            Value::Object(child) => {
                if child.get("$patch").and_then(Value::as_str) == Some("delete") {
                    result.remove(key);
                } else {
                    let existing = result.get(key).cloned().unwrap_or(Value::Null);
                    result.insert(
                        key.clone(),
                        strategic_merge_map(&existing, child, &child_path),
                    );
                }
            }
            Value::Array(items) => {
                let existing = result.get(key).cloned();
                let merged = match existing {
                    Some(Value::Array(existing)) => {
                        strategic_merge_list(&existing, items, &child_path)
                    }
                    _ => Value::Array(
                        items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect(),
                    ),
                };
                result.insert(key.clone(), merged);
            }
            other => {
                result.insert(key.clone(), other.clone());
            }
        }
    }
    Value::Object(result)
}

fn strategic_merge_list(current: &[Value], patch: &[Value], path: &[&str]) -> Value {
    if path == ["metadata", "finalizers"] {
        let mut merged = current.to_vec();
        merged.extend(patch.iter().filter(|v| !current.contains(v)).cloned());
        return Value::Array(merged);
    }
    let carries = |items: &[Value], key: &str| {
        items
            .iter()
            .all(|i| i.as_object().is_some_and(|o| o.contains_key(key)))
    };
    let merge_key = (!patch.is_empty() && !current.is_empty())
        .then(|| {
            MERGE_KEYS
                .into_iter()
                .find(|key| carries(patch, key) && carries(current, key))
        })
        .flatten();
    let Some(merge_key) = merge_key else {
        return Value::Array(patch.to_vec());
    };
    let mut merged = current.to_vec();
    for item in patch {
        let position = merged.iter().position(|m| m[merge_key] == item[merge_key]);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, item) {
            (Some(i), _) if delete => {
                merged.remove(i);
            }
            (Some(i), Value::Object(fields)) => {
                merged[i] = strategic_merge_map(&merged[i], fields, path)
            }
            (None, _) if delete => {}
            (None, _) => merged.push(item.clone()),
            (Some(i), other) => merged[i] = other.clone(),
        }
    }
    Value::Array(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_select_the_patch_kind() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }

    #[test]
    fn a_merge_patch_sets_fields_and_null_removes_them() {
        let out = apply(
            PatchKind::Merge,
            &json!({"a": 1, "b": {"c": 2, "d": 3}}),
            &json!({"b": {"c": null, "e": 4}}),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"d": 3, "e": 4}}));
    }

    #[test]
    fn a_failing_json_patch_test_is_invalid() {
        let err = apply(
            PatchKind::Json,
            &json!({"a": 1}),
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn a_strategic_merge_patch_merges_containers_by_name() {
        let current = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "s:1"},
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "a:2"}],
        }});
        let out = apply(PatchKind::Strategic, &current, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "a:2");
        assert_eq!(
            out["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "sidecar");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn a_strategic_delete_directive_removes_the_keyed_element() {
        let current = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let patch = json!({"env": [{"name": "A", "$patch": "delete"}]});
        let out = apply(PatchKind::Strategic, &current, &patch).unwrap();
        assert_eq!(out, json!({"env": [{"name": "B", "value": "2"}]}));
    }

    #[test]
    fn strategic_finalizers_merge_as_a_set_and_delete_from_primitive_list_removes() {
        let current = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = apply(
            PatchKind::Strategic,
            &current,
            &json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn an_apply_body_is_read_as_yaml() {
        let body = parse_body(PatchKind::Apply, b"metadata:\n  labels:\n    a: b\n").unwrap();
        assert_eq!(body, json!({"metadata": {"labels": {"a": "b"}}}));
    }
}
