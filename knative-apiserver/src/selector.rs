//! Label and field selectors, parsed from their query-string syntax and matched against objects.

use crate::error::ApiError;
use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {why}: {text:?}"))
        };
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(valid_key(key.trim()).ok_or_else(|| bad("invalid key"))?)
            } else if let Some((key, values)) = split_set(term, " notin ") {
                Requirement::NotIn(
                    valid_key(key).ok_or_else(|| bad("invalid key"))?,
                    set(values).ok_or_else(|| bad("invalid set"))?,
                )
            } else if let Some((key, values)) = split_set(term, " in ") {
                Requirement::In(
                    valid_key(key).ok_or_else(|| bad("invalid key"))?,
                    set(values).ok_or_else(|| bad("invalid set"))?,
                )
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(
                    valid_key(key).ok_or_else(|| bad("invalid key"))?,
                    value.trim().to_string(),
                )
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::Equals(
                    valid_key(key).ok_or_else(|| bad("invalid key"))?,
                    value.trim().to_string(),
                )
            } else {
                Requirement::Exists(valid_key(term).ok_or_else(|| bad("invalid key"))?)
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn split_set<'a>(term: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    let (key, values) = term.split_once(operator)?;
    Some((key, values.trim()))
}

fn set(values: &str) -> Option<Vec<String>> {
    let inner = values.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn valid_key(key: &str) -> Option<String> {
    let key = key.trim();
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

/// A parsed `fieldSelector`: `path=value`, `path==value` or `path!=value` terms, where the
/// path is a dotted field path such as `metadata.name`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
            terms.push((path, equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    /// Whether every term holds; a missing field compares as the empty string, like
    /// kube-apiserver's field sets.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let mut v = object;
            for segment in path {
                v = &v[segment.as_str()];
            }
            let actual = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_inequality_requirements_all_must_hold() {
        let s = LabelSelector::parse("app=web,tier!=db").unwrap();
        assert!(s.matches(&labelled(json!({"app": "web", "tier": "front"}))));
        assert!(s.matches(&labelled(json!({"app": "web"}))));
        assert!(!s.matches(&labelled(json!({"app": "web", "tier": "db"}))));
        assert!(!s.matches(&labelled(json!({"app": "api"}))));
    }

    #[test]
    fn set_based_requirements_match_membership() {
        let s = LabelSelector::parse("env in (prod, staging),team notin (x)").unwrap();
        assert!(s.matches(&labelled(json!({"env": "prod"}))));
        assert!(!s.matches(&labelled(json!({"env": "dev"}))));
        assert!(!s.matches(&labelled(json!({"env": "prod", "team": "x"}))));
    }

    #[test]
    fn existence_requirements_test_the_key_only() {
        let s = LabelSelector::parse("serving.knative.dev/service,!canary").unwrap();
        assert!(s.matches(&labelled(json!({"serving.knative.dev/service": ""}))));
        assert!(!s.matches(&labelled(
            json!({"serving.knative.dev/service": "a", "canary": "1"})
        )));
        assert!(!s.matches(&labelled(json!({}))));
    }

    #[test]
    fn a_malformed_label_selector_is_a_bad_request() {
        assert_eq!(LabelSelector::parse("a in b").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("a b=c").unwrap_err().code, 400);
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let s = FieldSelector::parse("metadata.name=x,metadata.namespace!=other").unwrap();
        assert!(s.matches(&labelled(json!({}))));
        let s = FieldSelector::parse("metadata.name==y").unwrap();
        assert!(!s.matches(&labelled(json!({}))));
    }

    #[test]
    fn a_field_selector_without_an_operator_is_a_bad_request() {
        assert_eq!(FieldSelector::parse("metadata.name").unwrap_err().code, 400);
    }
}
