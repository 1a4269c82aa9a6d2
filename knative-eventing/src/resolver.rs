//! A [`Destination`] to a URL, through the Addressable duck type (knative.dev/pkg's
//! `resolver.URIResolver`).
//!
//! A `ref` to a Kubernetes Service (`v1`, `Service`) becomes
//! `http://<name>.<namespace>.svc.cluster.local`; a `ref` to anything else is read with a
//! [`DynamicObject`] and its `status.address.url` (or the entry of `status.addresses` that the
//! ref's `address` names) is used. A `uri` next to a `ref` is resolved against that URL; a `uri`
//! alone must be absolute.
//!
//! This belongs in knative-core (every block that sends to a Destination needs it); it lives
//! here until it moves there.
//!
//! ```
//! use knative_eventing::resolver::resolve_reference;
//!
//! assert_eq!(
//!     resolve_reference("http://svc.ns.svc.cluster.local/base/", "events").unwrap(),
//!     "http://svc.ns.svc.cluster.local/base/events"
//! );
//! assert_eq!(
//!     resolve_reference("http://svc.ns.svc.cluster.local/base/x", "/events?q=1").unwrap(),
//!     "http://svc.ns.svc.cluster.local/events?q=1"
//! );
//! ```

use knative_core::apis::{Destination, KReference};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

/// A Destination resolved to where events are sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedDestination {
    /// The URL.
    pub url: String,
    /// The CA certificates to trust (the Destination's, else the Addressable's).
    pub ca_certs: Option<String>,
    /// The OIDC audience (the Destination's, else the Addressable's).
    pub audience: Option<String>,
}

/// Why a Destination does not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The Destination has neither `ref` nor `uri`.
    #[error("destination has neither ref nor uri")]
    Empty,
    /// A `uri` without a `ref` is not absolute.
    #[error("URI is not absolute (both scheme and host should be non-empty): {0:?}")]
    NotAbsolute(String),
    /// The referenced object does not exist.
    #[error("failed to get object {namespace}/{name}: {kind} {namespace}/{name} not found")]
    NotFound {
        /// The referent's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The referenced object has no address (yet).
    #[error("address not set for {kind} {namespace}/{name}")]
    NotAddressable {
        /// The referent's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server failed.
    #[error("failed to get the referenced object: {0}")]
    Api(#[from] kube::Error),
}

impl ResolveError {
    /// A CamelCase reason for a condition (`NotFound`, `NotAddressable`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::Empty | ResolveError::NotAbsolute(_) => "InvalidDestination",
            ResolveError::NotFound { .. } => "NotFound",
            ResolveError::NotAddressable { .. } => "NotAddressable",
            ResolveError::Api(_) => "ResolveFailed",
        }
    }

    /// Whether the error may go away without a change of the Destination (the referent may be
    /// created or get an address later, the API server may recover).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ResolveError::Empty | ResolveError::NotAbsolute(_))
    }
}

/// Resolves Destinations with a Kubernetes client.
#[derive(Clone)]
pub struct Resolver {
    client: Client,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver reading referents with `client`.
    pub fn new(client: Client) -> Self {
        Resolver { client }
    }

    /// The URL of `destination`, whose references default to `namespace`.
    pub async fn resolve(
        &self,
        destination: &Destination,
        namespace: &str,
    ) -> Result<ResolvedDestination, ResolveError> {
        let uri = destination.uri.as_deref().filter(|u| !u.is_empty());
        let resolved = match (&destination.ref_, uri) {
            (None, None) => return Err(ResolveError::Empty),
            (None, Some(uri)) => {
                if !is_absolute_with_host(uri) {
                    return Err(ResolveError::NotAbsolute(uri.to_owned()));
                }
                ResolvedDestination {
                    url: uri.to_owned(),
                    ..ResolvedDestination::default()
                }
            }
            (Some(reference), uri) => {
                let mut base = self.resolve_ref(reference, namespace).await?;
                if let Some(uri) = uri {
                    base.url = resolve_reference(&base.url, uri)
                        .ok_or_else(|| ResolveError::NotAbsolute(base.url.clone()))?;
                }
                base
            }
        };
        Ok(ResolvedDestination {
            ca_certs: destination.ca_certs.clone().or(resolved.ca_certs),
            audience: destination.audience.clone().or(resolved.audience),
            url: resolved.url,
        })
    }

    /// The address of the object `reference` names.
    pub async fn resolve_ref(
        &self,
        reference: &KReference,
        namespace: &str,
    ) -> Result<ResolvedDestination, ResolveError> {
        let namespace = if reference.namespace.is_empty() {
            namespace
        } else {
            &reference.namespace
        };
        if reference.kind == "Service" && reference.api_version == "v1" {
            return Ok(ResolvedDestination {
                url: service_url(&reference.name, namespace),
                ..ResolvedDestination::default()
            });
        }
        let (group, version) = match reference.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", reference.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &reference.kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &ApiResource::from_gvk(&gvk));
        let not = |addressable: bool| {
            let (kind, namespace, name) = (
                reference.kind.clone(),
                namespace.to_owned(),
                reference.name.clone(),
            );
            if addressable {
                ResolveError::NotAddressable {
                    kind,
                    namespace,
                    name,
                }
            } else {
                ResolveError::NotFound {
                    kind,
                    namespace,
                    name,
                }
            }
        };
        let object = api
            .get_opt(&reference.name)
            .await?
            .ok_or_else(|| not(false))?;
        address_of(&object.data, reference.address.as_deref()).ok_or_else(|| not(true))
    }
}

/// The cluster-local URL of a Kubernetes Service.
pub fn service_url(name: &str, namespace: &str) -> String {
    format!("http://{name}.{namespace}.svc.cluster.local")
}

/// The address in an Addressable's data (`status.address`, or the entry of `status.addresses`
/// named `name`).
fn address_of(data: &Value, name: Option<&str>) -> Option<ResolvedDestination> {
    let status = data.get("status")?;
    let address = match name {
        Some(name) => status
            .get("addresses")?
            .as_array()?
            .iter()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(name))?,
        None => status.get("address")?,
    };
    let text = |key: &str| {
        address
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(ResolvedDestination {
        url: text("url")?,
        ca_certs: text("CACerts"),
        audience: text("audience"),
    })
}

fn is_absolute_with_host(uri: &str) -> bool {
    split_url(uri).is_some_and(|(_, authority, _)| !authority.is_empty())
}

/// `scheme`, `authority` and the rest (path, query, fragment) of an absolute URL.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// RFC 3986 reference resolution of `reference` against the absolute `base`, for the relative
/// references Destinations hold (paths, with query and fragment). `None` when `base` is not
/// absolute.
pub fn resolve_reference(base: &str, reference: &str) -> Option<String> {
    if split_url(reference).is_some() {
        return Some(reference.to_owned());
    }
    let (scheme, authority, rest) = split_url(base)?;
    let base_path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let path_end = reference.find(['?', '#']).unwrap_or(reference.len());
    let (path, suffix) = reference.split_at(path_end);
    let merged = if path.starts_with('/') {
        path.to_owned()
    } else if path.is_empty() {
        base_path.to_owned()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{path}")
    };
    Some(format!(
        "{scheme}://{authority}{}{suffix}",
        remove_dot_segments(&merged)
    ))
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
            }
            s => out.push(s),
        }
        if (*segment == "." || *segment == "..") && i + 1 == segments.len() {
            out.push("");
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_paths_resolve_against_the_base_directory() {
        let base = "http://a.b.svc.cluster.local/x/y";
        assert_eq!(
            resolve_reference(base, "z").as_deref(),
            Some("http://a.b.svc.cluster.local/x/z")
        );
        assert_eq!(
            resolve_reference(base, "../z").as_deref(),
            Some("http://a.b.svc.cluster.local/z")
        );
        assert_eq!(
            resolve_reference("http://a.b", "events").as_deref(),
            Some("http://a.b/events")
        );
    }

    #[test]
    fn an_absolute_reference_replaces_the_base() {
        assert_eq!(
            resolve_reference("http://a/b", "https://c/d").as_deref(),
            Some("https://c/d")
        );
    }

    #[test]
    fn the_address_named_by_the_ref_wins_over_status_address() {
        let data = json!({"status": {
            "address": {"url": "http://default"},
            "addresses": [{"name": "http", "url": "http://plain"}, {"name": "https", "url": "https://secure", "CACerts": "pem"}]
        }});
        assert_eq!(address_of(&data, None).unwrap().url, "http://default");
        let https = address_of(&data, Some("https")).unwrap();
        assert_eq!(
            (https.url.as_str(), https.ca_certs.as_deref()),
            ("https://secure", Some("pem"))
        );
        assert_eq!(address_of(&data, Some("grpc")), None);
    }

    #[test]
    fn an_object_without_an_address_url_is_not_addressable() {
        assert_eq!(address_of(&json!({"status": {"address": {}}}), None), None);
        assert_eq!(address_of(&json!({"spec": {}}), None), None);
    }
}
