//! The kinds the server serves: built-in ones and those CustomResourceDefinitions declare,
//! and the discovery documents that describe them.

use crate::error::ApiError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// When `metadata.generation` is bumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    /// The kind has no generation (ConfigMap, Pod, Service, ...).
    Untracked,
    /// A change of `spec` bumps it (Deployment, CustomResourceDefinition).
    Spec,
    /// A change of anything but `metadata` (and `status` with a status subresource) bumps it:
    /// the rule for custom resources.
    AllButMetadata,
}

/// One resource: a kind under a group, served at one or more versions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceType {
    pub group: String,
    /// Served versions, the preferred (storage) version first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (and the main endpoint ignores status changes).
    pub status: bool,
    pub generation: Generation,
    /// Defined by a CustomResourceDefinition (strategic merge patch is refused).
    pub custom: bool,
}

/// The key that identifies a resource across versions: `group/plural`.
pub(crate) type TypeKey = String;

impl ResourceType {
    pub(crate) fn key(&self) -> TypeKey {
        type_key(&self.group, &self.plural)
    }

    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut entries = vec![main];
        if self.status {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

pub(crate) fn type_key(group: &str, plural: &str) -> TypeKey {
    format!("{group}/{plural}")
}

/// All served resources.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: BTreeMap<TypeKey, ResourceType>,
}

impl Registry {
    /// The built-in kinds.
    pub(crate) fn builtin() -> Self {
        let mut types = BTreeMap::new();
        for t in builtin_types() {
            types.insert(t.key(), t);
        }
        Self { types }
    }

    /// The resource served at `group/version` under `plural`.
    pub(crate) fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&type_key(group, plural))
            .filter(|t| t.versions.iter().any(|v| v == version))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&ResourceType> {
        self.types.get(key)
    }

    /// Serves (or stops serving, with `None`) the kinds of one CRD, replacing what it served.
    pub(crate) fn set_custom(&mut self, key: &str, served: Option<ResourceType>) {
        self.types.remove(key);
        if let Some(t) = served {
            self.types.insert(t.key(), t);
        }
    }

    /// `/api`.
    pub(crate) fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    /// `/apis`.
    pub(crate) fn group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().into_iter().map(group_document).collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `/apis/<group>`.
    pub(crate) fn group(&self, group: &str) -> Option<Value> {
        self.groups()
            .into_iter()
            .find(|(name, _)| name == group)
            .map(|g| {
                let mut doc = group_document(g);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                doc
            })
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Result<Value, ApiError> {
        let resources: Vec<Value> = self
            .types
            .values()
            .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
            .flat_map(ResourceType::discovery_entries)
            .collect();
        if resources.is_empty() && !(group.is_empty() && version == "v1") {
            let path = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            return Err(ApiError::no_route(&path));
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Ok(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }

    /// `/openapi/v3`: one document per group-version.
    pub(crate) fn openapi_root(&self) -> Value {
        let mut paths = serde_json::Map::new();
        let mut add = |path: String| {
            let url = format!("/openapi/v3/{path}");
            paths.insert(path, json!({ "serverRelativeURL": url }));
        };
        add("api/v1".to_string());
        for (group, versions) in self.groups() {
            for version in versions {
                add(format!("apis/{group}/{version}"));
            }
        }
        json!({ "paths": paths })
    }

    /// `/openapi/v3/<api/v1|apis/group/version>`: the operations of each kind, with the query
    /// parameters kubectl looks for (`fieldValidation`) but no schemas: objects are not
    /// validated against a schema.
    pub(crate) fn openapi_group_version(&self, group: &str, version: &str) -> Option<Value> {
        let mut paths = serde_json::Map::new();
        for t in self
            .types
            .values()
            .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
        {
            let prefix = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            let scope = if t.namespaced {
                "/namespaces/{namespace}"
            } else {
                ""
            };
            let gvk = json!({"group": group, "version": version, "kind": t.kind});
            let operation = |action: &str, content: &[&str]| {
                let content: serde_json::Map<String, Value> = content
                    .iter()
                    .map(|c| (c.to_string(), json!({"schema": {"type": "object"}})))
                    .collect();
                json!({
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                        {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    ],
                    "requestBody": {"content": content},
                    "responses": {"200": {"description": "OK"}},
                })
            };
            let mut patch_types = vec![
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ];
            if !t.custom {
                patch_types.push("application/strategic-merge-patch+json");
            }
            paths.insert(
                format!("{prefix}{scope}/{}/{{name}}", t.plural),
                json!({
                    "put": operation("put", &["application/json"]),
                    "patch": operation("patch", &patch_types),
                }),
            );
            paths.insert(
                format!("{prefix}{scope}/{}", t.plural),
                json!({ "post": operation("post", &["application/json"]) }),
            );
        }
        if paths.is_empty() {
            return None;
        }
        Some(json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.30.0"},
            "paths": paths,
            "components": {"schemas": {}},
        }))
    }

    /// Named groups (not core) with their versions, preferred first.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self
            .types
            .values()
            .filter(|t| !t.group.is_empty() && !t.versions.is_empty())
        {
            let versions = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups.into_iter().collect()
    }
}

fn group_document((name, versions): (String, Vec<String>)) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

/// The kinds a CustomResourceDefinition declares, or why it is invalid.
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let text = |v: &Value, path: &str| -> Result<String, String> {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{path}: Required value"))
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let group = text(&spec["group"], "spec.group")?;
    let plural = text(&spec["names"]["plural"], "spec.names.plural")?;
    let kind = text(&spec["names"]["kind"], "spec.names.kind")?;
    let singular = spec["names"]["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => {
            return Err(
                "spec.scope: Unsupported value: supported values: \"Cluster\", \"Namespaced\""
                    .into(),
            );
        }
    };
    let versions = spec["versions"]
        .as_array()
        .filter(|v| !v.is_empty())
        .ok_or("spec.versions: Required value: must have exactly one version marked as storage version")?;
    let mut served = Vec::new();
    let mut status = false;
    for (i, version) in versions.iter().enumerate() {
        let name = text(&version["name"], &format!("spec.versions[{i}].name"))?;
        if version["subresources"].get("status").is_some() {
            status = true;
        }
        if version["served"].as_bool().unwrap_or(false) {
            if version["storage"].as_bool().unwrap_or(false) {
                served.insert(0, name);
            } else {
                served.push(name);
            }
        }
    }
    if versions
        .iter()
        .filter(|v| v["storage"].as_bool().unwrap_or(false))
        .count()
        != 1
    {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let expected_name = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected_name.as_str()) {
        return Err(format!(
            "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected_name})"
        ));
    }
    Ok(ResourceType {
        group,
        versions: served,
        plural,
        singular,
        kind,
        namespaced,
        short_names: strings(&spec["names"]["shortNames"]),
        categories: strings(&spec["names"]["categories"]),
        status,
        generation: Generation::AllButMetadata,
        custom: true,
    })
}

fn builtin(
    group: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    generation: Generation,
) -> ResourceType {
    ResourceType {
        group: group.to_string(),
        versions: vec!["v1".to_string()],
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if matches!(plural, "pods" | "services" | "deployments") {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        status,
        generation,
        custom: false,
    }
}

fn builtin_types() -> Vec<ResourceType> {
    use Generation::{Spec, Untracked};
    vec![
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            Untracked,
        ),
        builtin(
            "",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            Untracked,
        ),
        builtin("", "secrets", "Secret", true, &[], false, Untracked),
        builtin("", "services", "Service", true, &["svc"], true, Untracked),
        builtin(
            "",
            "endpoints",
            "Endpoints",
            true,
            &["ep"],
            false,
            Untracked,
        ),
        builtin("", "pods", "Pod", true, &["po"], true, Untracked),
        builtin("", "events", "Event", true, &["ev"], false, Untracked),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            Untracked,
        ),
        builtin(
            "events.k8s.io",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            Untracked,
        ),
        builtin(
            "apps",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            Spec,
        ),
        builtin(
            "coordination.k8s.io",
            "leases",
            "Lease",
            true,
            &[],
            false,
            Untracked,
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            Spec,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(scope: &str) -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": scope,
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                ],
            },
        })
    }

    #[test]
    fn a_crd_serves_its_versions_with_the_storage_version_preferred() {
        let t = from_crd(&crd("Namespaced")).unwrap();
        assert_eq!(t.versions, ["v1", "v1alpha1"]);
        assert!(t.namespaced && t.status && t.custom);
        assert_eq!(t.singular, "widget");
    }

    #[test]
    fn a_crd_without_a_valid_scope_is_rejected_with_the_field_path() {
        let err = from_crd(&crd("Galactic")).unwrap_err();
        assert!(err.starts_with("spec.scope"), "{err}");
    }

    #[test]
    fn a_crd_whose_name_is_not_plural_dot_group_is_rejected() {
        let mut c = crd("Cluster");
        c["metadata"]["name"] = json!("widgets");
        assert!(from_crd(&c).unwrap_err().starts_with("metadata.name"));
    }

    #[test]
    fn discovery_lists_the_status_subresource_of_kinds_that_have_one() {
        let registry = Registry::builtin();
        let list = registry.resource_list("apps", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deployments", "deployments/status"]);
    }

    #[test]
    fn a_crd_serving_no_version_publishes_no_group() {
        let mut c = crd("Namespaced");
        c["spec"]["versions"][0]["served"] = json!(false);
        c["spec"]["versions"][1]["served"] = json!(false);
        let mut registry = Registry::builtin();
        let t = from_crd(&c).unwrap();
        registry.set_custom(&t.key(), Some(t));
        assert!(registry.group("example.com").is_none());
        assert!(registry.lookup("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn an_unknown_group_version_is_not_found() {
        let err = Registry::builtin()
            .resource_list("nope.io", "v1")
            .unwrap_err();
        assert_eq!(err.code, 404);
    }
}
