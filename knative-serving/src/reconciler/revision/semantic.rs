//! Whether an object the API server returned already holds what the reconciler would write.
//!
//! The API server fills in defaults (`protocol: TCP`, `imagePullPolicy`, probe periods,
//! `maxSurge`, `fieldRef.apiVersion`, ...) and drops empty values (`value: ""`,
//! `stdin: false`), so comparing what we would create with what is stored for equality finds a
//! difference on every pass (Knative's knative/serving#13204). Instead, what we want must be
//! *contained* in what is stored: every value we set is there, unchanged; fields we leave unset
//! may hold anything. An edit of any field we set (the image, an environment variable, a port)
//! is still a difference.

use serde_json::Value;

/// Whether `have` holds every value of `want`: objects key by key (a key `want` gives an empty
/// value may be absent from `have`), arrays element by element with the same length, anything
/// else equal.
pub(crate) fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(key, want)| {
            have.get(key)
                .map_or_else(|| is_empty(want), |have| contains(have, want))
        }),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        (Value::Null, want) => is_empty(want),
        (Value::Number(have), Value::Number(want)) => have.as_f64() == want.as_f64(),
        (have, want) => have == want,
    }
}

/// What the API server stores as absent: Go's zero values, which `omitempty` drops.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::contains;

    #[test]
    fn server_defaults_are_not_differences() {
        let want = json!({"ports": [{"name": "user-port", "containerPort": 8080}]});
        let have =
            json!({"ports": [{"name": "user-port", "containerPort": 8080, "protocol": "TCP"}]});
        assert!(contains(&have, &want));
    }

    #[test]
    fn values_the_server_drops_are_not_differences() {
        let want = json!({"env": [{"name": "K_SERVICE", "value": ""}], "stdin": false});
        let have = json!({"env": [{"name": "K_SERVICE"}]});
        assert!(contains(&have, &want));
    }

    #[test]
    fn an_edited_value_is_a_difference() {
        let want = json!({"containers": [{"name": "user-container", "image": "a"}]});
        let have = json!({"containers": [{"name": "user-container", "image": "b"}]});
        assert!(!contains(&have, &want));
    }

    #[test]
    fn an_added_or_removed_element_is_a_difference() {
        let want = json!({"env": [{"name": "A", "value": "1"}]});
        assert!(!contains(&json!({"env": []}), &want));
        assert!(!contains(
            &json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}),
            &want
        ));
    }

    #[test]
    fn a_missing_value_is_a_difference() {
        assert!(!contains(&json!({}), &json!({"replicas": 1})));
        assert!(contains(&json!({}), &json!({"replicas": 0})));
    }
}
