//! The routing table compiled from Ingresses (pure: no I/O, no clock, randomness passed in).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::apis::Ingress;
use crate::apis::networking::v1alpha1::{HTTPIngressPath, IngressBackend};

/// An Ingress compiled for routing: its hosts and, per host, its paths in order.
#[derive(Clone, Debug)]
pub struct CompiledIngress {
    /// `namespace/name` of the Ingress.
    pub key: String,
    hosts: Vec<(String, Arc<Vec<Path>>)>,
}

/// One path of an Ingress rule: what it matches and where it sends requests.
#[derive(Clone, Debug)]
pub struct Path {
    prefix: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    splits: Vec<Split>,
    total: u32,
    /// Headers added to every request this path matches.
    pub append_headers: Vec<(HeaderName, HeaderValue)>,
    /// The `Host` the request is forwarded with, when the path rewrites it.
    pub rewrite_host: Option<HeaderValue>,
}

/// A weighted backend of a [`Path`].
#[derive(Clone, Debug)]
pub struct Split {
    /// The Kubernetes Service (port) receiving this share.
    pub backend: IngressBackend,
    percent: u32,
    /// Headers added to requests sent to this backend.
    pub append_headers: Vec<(HeaderName, HeaderValue)>,
}

impl CompiledIngress {
    /// Compiles `ingress`, or says which field is wrong (header names and values must be valid
    /// HTTP, paths must start with `/`, percents must not be negative, and every path needs a
    /// split with a positive share).
    ///
    /// # Errors
    /// A message with the field path of the first problem.
    pub fn compile(ingress: &Ingress) -> Result<Self, String> {
        let key = format!(
            "{}/{}",
            ingress.metadata.namespace.as_deref().unwrap_or_default(),
            ingress.metadata.name.as_deref().unwrap_or_default()
        );
        let mut hosts = Vec::new();
        for (r, rule) in ingress.spec.rules.iter().enumerate() {
            let mut paths = Vec::new();
            for (p, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{r}].http.paths[{p}]");
                paths.push(compile_path(path, &field)?);
            }
            let paths = Arc::new(paths);
            for host in &rule.hosts {
                hosts.push((normalize_host(host).into_owned(), Arc::clone(&paths)));
            }
        }
        Ok(Self { key, hosts })
    }
}

fn compile_path(path: &HTTPIngressPath, field: &str) -> Result<Path, String> {
    let prefix = path.path.clone().unwrap_or_else(|| "/".to_owned());
    if !prefix.starts_with('/') {
        return Err(format!("{field}.path: {prefix:?} must start with '/'"));
    }
    let headers = path
        .headers
        .iter()
        .map(|(name, m)| header_pair(name, &m.exact, &format!("{field}.headers[{name}]")))
        .collect::<Result<_, _>>()?;
    let append_headers = header_pairs(&path.append_headers, &format!("{field}.appendHeaders"))?;
    let rewrite_host = path
        .rewrite_host
        .as_deref()
        .map(|h| {
            HeaderValue::from_str(h)
                .map_err(|_| format!("{field}.rewriteHost: {h:?} is not a valid host"))
        })
        .transpose()?;
    let lone = path.splits.len() == 1;
    let mut splits = Vec::with_capacity(path.splits.len());
    for (s, split) in path.splits.iter().enumerate() {
        let percent = match split.percent {
            None if lone => 100,
            None => 0,
            Some(p) => u32::try_from(p)
                .map_err(|_| format!("{field}.splits[{s}].percent: {p} is negative"))?,
        };
        splits.push(Split {
            backend: split.backend.clone(),
            percent,
            append_headers: header_pairs(
                &split.append_headers,
                &format!("{field}.splits[{s}].appendHeaders"),
            )?,
        });
    }
    let total = splits.iter().map(|s| s.percent).sum();
    if total == 0 {
        return Err(format!("{field}.splits: no split has a positive percent"));
    }
    Ok(Path {
        prefix,
        headers,
        splits,
        total,
        append_headers,
        rewrite_host,
    })
}

fn header_pair(name: &str, value: &str, field: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{field}: {name:?} is not a valid header name"))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("{field}: {value:?} is not a valid header value"))?;
    Ok((name, value))
}

fn header_pairs(
    headers: &std::collections::BTreeMap<String, String>,
    field: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .iter()
        .map(|(name, value)| header_pair(name, value, &format!("{field}[{name}]")))
        .collect()
}

/// Hosts compare without case, without a port and without a trailing dot.
fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        &host[..end + 2]
    } else {
        match host.split_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Every host's paths, from all Ingresses; swapped whole when an Ingress changes.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Vec<Arc<Vec<Path>>>>,
}

/// Where a request goes: the path that matched and the split drawn.
#[derive(Clone, Copy, Debug)]
pub struct RouteMatch<'a> {
    /// The matched path (its appended headers and host rewrite).
    pub path: &'a Path,
    /// The drawn split (its backend and appended headers).
    pub split: &'a Split,
}

impl RouteTable {
    /// The table of `ingresses`; where two claim a host, the one listed first is tried first.
    pub fn new<'a>(ingresses: impl IntoIterator<Item = &'a CompiledIngress>) -> Self {
        let mut hosts: HashMap<String, Vec<Arc<Vec<Path>>>> = HashMap::new();
        for ingress in ingresses {
            for (host, paths) in &ingress.hosts {
                hosts
                    .entry(host.clone())
                    .or_default()
                    .push(Arc::clone(paths));
            }
        }
        Self { hosts }
    }

    /// The hosts served.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// Routes a request for `host` (a port is ignored) and `path` with `headers`: the first
    /// path whose prefix and headers match, and the split that `roll` (uniform in `[0, 1)`)
    /// draws by percent. `None` when nothing matches.
    pub fn route(
        &self,
        host: &str,
        path: &str,
        headers: &HeaderMap,
        roll: f64,
    ) -> Option<RouteMatch<'_>> {
        let candidates = self.hosts.get(normalize_host(host).as_ref())?;
        let matched = candidates.iter().flat_map(|paths| paths.iter()).find(|p| {
            path.starts_with(&p.prefix)
                && p.headers
                    .iter()
                    .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
        })?;
        // `roll` in [0, 1) picks a point in [0, total); splits own consecutive ranges.
        let point =
            ((roll.clamp(0.0, 1.0) * f64::from(matched.total)) as u32).min(matched.total - 1);
        let mut upper = 0;
        let split = matched.splits.iter().find(|s| {
            upper += s.percent;
            point < upper
        })?;
        Some(RouteMatch {
            path: matched,
            split,
        })
    }
}
