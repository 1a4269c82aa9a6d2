//! From an object to its defaulted form: the changes defaulting made, carried onto the object
//! as written, and the RFC 6902 JSON patch between the two.

use serde_json::{Map, Value, json};

/// The RFC 6902 JSON patch that turns `from` into `to`, as a JSON array of operations.
///
/// Members are added, removed or replaced one by one, down to the leaves; a list that changes
/// length is replaced whole. Applying the patch to `from` gives `to`.
///
/// ```
/// use serde_json::json;
///
/// let patch = knative_serving::webhook::json_patch(
///     &json!({ "spec": { "traffic": [{ "percent": 100 }] } }),
///     &json!({ "spec": { "traffic": [{ "percent": 100, "latestRevision": true }] } }),
/// );
/// assert_eq!(
///     patch,
///     json!([{ "op": "add", "path": "/spec/traffic/0/latestRevision", "value": true }])
/// );
/// ```
pub fn json_patch(from: &Value, to: &Value) -> Value {
    let mut operations = Vec::new();
    diff("", from, to, &mut operations);
    Value::Array(operations)
}

fn diff(path: &str, from: &Value, to: &Value, operations: &mut Vec<Value>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            for (key, old) in from {
                let at = format!("{path}/{}", escape(key));
                match to.get(key) {
                    Some(new) => diff(&at, old, new, operations),
                    None => operations.push(json!({ "op": "remove", "path": at })),
                }
            }
            for (key, new) in to {
                if !from.contains_key(key) {
                    let at = format!("{path}/{}", escape(key));
                    operations.push(json!({ "op": "add", "path": at, "value": new }));
                }
            }
        }
        (Value::Array(from), Value::Array(to)) if from.len() == to.len() => {
            for (i, (old, new)) in from.iter().zip(to).enumerate() {
                diff(&format!("{path}/{i}"), old, new, operations);
            }
        }
        _ => operations.push(json!({ "op": "replace", "path": path, "value": to })),
    }
}

/// RFC 6901: `~` and `/` in a member name.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Carries the changes from `before` to `after` onto `object`.
///
/// `before` and `after` are a typed object serialised before and after defaulting; `object`
/// is the JSON it was decoded from, which may hold fields the types do not model (and so drop)
/// or spell an empty field differently. Only what defaulting changed is written, so the rest
/// of `object` stays exactly as it was.
pub(crate) fn merge_changes(object: &mut Value, before: &Value, after: &Value) {
    if before == after {
        return;
    }
    match (object, before, after) {
        (Value::Object(object), Value::Object(before), Value::Object(after)) => {
            merge_members(object, before, after);
        }
        (Value::Array(object), Value::Array(before), Value::Array(after))
            if object.len() == before.len() && before.len() == after.len() =>
        {
            for ((item, old), new) in object.iter_mut().zip(before).zip(after) {
                merge_changes(item, old, new);
            }
        }
        (object, _, after) => *object = after.clone(),
    }
}

fn merge_members(
    object: &mut Map<String, Value>,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) {
    for (key, new) in after {
        match (object.get_mut(key), before.get(key)) {
            (Some(current), Some(old)) => merge_changes(current, old, new),
            (_, Some(old)) if old == new => {}
            _ => {
                object.insert(key.clone(), new.clone());
            }
        }
    }
    for key in before.keys() {
        if !after.contains_key(key) {
            object.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A minimal RFC 6902 applier for the operations [`json_patch`] writes.
    fn apply(document: &mut Value, patch: &Value) {
        for op in patch.as_array().expect("a list of operations") {
            let path = op["path"].as_str().expect("a path");
            let (parent, last) = match path.rfind('/') {
                Some(i) => (
                    &path[..i],
                    path[i + 1..].replace("~1", "/").replace("~0", "~"),
                ),
                None => {
                    *document = op["value"].clone();
                    continue;
                }
            };
            let target = document.pointer_mut(parent).expect("the parent exists");
            match (op["op"].as_str(), target) {
                (Some("remove"), Value::Object(map)) => {
                    map.remove(&last).expect("the member exists");
                }
                (Some("add"), Value::Object(map)) => {
                    map.insert(last, op["value"].clone());
                }
                (Some("replace"), Value::Object(map)) => {
                    *map.get_mut(&last).expect("the member exists") = op["value"].clone();
                }
                (Some("replace"), Value::Array(items)) => {
                    items[last.parse::<usize>().expect("an index")] = op["value"].clone();
                }
                (op, target) => panic!("unexpected {op:?} on {target}"),
            }
        }
    }

    #[test]
    fn the_patch_turns_one_document_into_the_other() {
        let cases = [
            (json!({}), json!({ "a": 1 })),
            (json!({ "a": 1, "b": 2 }), json!({ "b": 3 })),
            (json!({ "a": [1, 2] }), json!({ "a": [1, 3] })),
            (json!({ "a": [1, 2] }), json!({ "a": [1, 2, 3] })),
            (json!({ "a/b": { "~c": 1 } }), json!({ "a/b": { "~c": 2 } })),
            (json!({ "a": { "b": null } }), json!({ "a": "text" })),
            (json!(1), json!({ "a": 1 })),
        ];
        for (from, to) in cases {
            let patch = json_patch(&from, &to);
            let mut patched = from.clone();
            apply(&mut patched, &patch);
            assert_eq!(patched, to, "{from} -> {to} by {patch}");
        }
        assert_eq!(
            json_patch(&json!({ "a": 1 }), &json!({ "a": 1 })),
            json!([])
        );
    }

    #[test]
    fn member_names_are_escaped() {
        assert_eq!(
            json_patch(&json!({}), &json!({ "a/b~c": 1 })),
            json!([{ "op": "add", "path": "/a~1b~0c", "value": 1 }])
        );
    }

    #[test]
    fn merging_writes_only_what_changed_and_keeps_unmodelled_fields() {
        let mut object = json!({
            "spec": {
                "unmodelled": { "kept": true },
                "containers": [{ "image": "i", "futureField": 1 }],
            },
        });
        let before = json!({ "spec": { "containers": [{ "image": "i" }], "emptyByDefault": {} } });
        let after = json!({
            "spec": {
                "containers": [{ "image": "i", "name": "user-container" }],
                "emptyByDefault": { "now": "set" },
                "timeoutSeconds": 300,
            },
        });
        merge_changes(&mut object, &before, &after);
        assert_eq!(
            object,
            json!({
                "spec": {
                    "unmodelled": { "kept": true },
                    "containers": [{ "image": "i", "futureField": 1, "name": "user-container" }],
                    "emptyByDefault": { "now": "set" },
                    "timeoutSeconds": 300,
                },
            })
        );
    }

    #[test]
    fn merging_replaces_a_list_that_changed_length() {
        let mut object = json!({ "traffic": [] });
        merge_changes(
            &mut object,
            &json!({}),
            &json!({ "traffic": [{ "percent": 100 }] }),
        );
        assert_eq!(object, json!({ "traffic": [{ "percent": 100 }] }));
    }
}
