//! The HTTP side: routes Kubernetes REST paths to the store and answers in the wire format
//! kube-apiserver uses (objects, lists, `Status` errors, newline-delimited watch events).

use crate::error::ApiError;
use crate::object::{self, Endpoint};
use crate::patch::{self, PatchKind};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind, DeleteOptions, Deleted, Propagation, Store};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A response body: a whole document or a watch stream.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Request bodies larger than this are refused (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The longest a watch may last (`timeoutSeconds` beyond it is capped).
const MAX_WATCH: Duration = Duration::from_secs(24 * 3600);

/// The server's shared state.
pub(crate) struct Server {
    pub store: Arc<Store>,
    pub addr: SocketAddr,
    pub bookmark_interval: Duration,
}

impl Server {
    /// Answers one request; never fails (errors become `Status` responses).
    pub(crate) async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return error(&ApiError::bad_request(format!("cannot read the body: {e}"))),
        };
        let query: HashMap<String, String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let call = Call {
            accept,
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            content_type,
            body,
        };
        tracing::debug!(method = %call.method, path = %call.path, "request");
        match self.route(call) {
            Ok(response) => response,
            Err(e) => error(&e),
        }
    }

    fn route(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
        let registry = self.store.registry();
        match segments.as_slice() {
            ["version"] => Ok(document(StatusCode::OK, &version())),
            ["healthz" | "readyz" | "livez"] => Ok(Response::new(full(Bytes::from_static(b"ok")))),
            ["openapi", "v2"] => Ok(openapi_v2(&call.accept)),
            ["openapi", "v3"] => Ok(document(StatusCode::OK, &registry.openapi_root())),
            ["openapi", "v3", "api", version] => registry
                .openapi_group_version("", version)
                .map(|d| document(StatusCode::OK, &d))
                .ok_or_else(|| ApiError::no_route(&call.path)),
            ["openapi", "v3", "apis", group, version] => registry
                .openapi_group_version(group, version)
                .map(|d| document(StatusCode::OK, &d))
                .ok_or_else(|| ApiError::no_route(&call.path)),
            ["api"] => Ok(document(
                StatusCode::OK,
                &registry.core_versions(&self.addr.to_string()),
            )),
            ["apis"] => Ok(document(StatusCode::OK, &registry.group_list())),
            ["apis", group] => registry
                .group(group)
                .map(|g| document(StatusCode::OK, &g))
                .ok_or_else(|| ApiError::no_route(&call.path)),
            ["api", version] => Ok(document(
                StatusCode::OK,
                &registry.resource_list("", version)?,
            )),
            ["apis", group, version] => Ok(document(
                StatusCode::OK,
                &registry.resource_list(group, version)?,
            )),
            ["api", version, rest @ ..] => self.resource(&call, "", version, rest),
            ["apis", group, version, rest @ ..] => self.resource(&call, group, version, rest),
            _ => Err(ApiError::no_route(&call.path)),
        }
    }

    fn resource(
        &self,
        call: &Call,
        group: &str,
        version: &str,
        rest: &[&str],
    ) -> Result<Response<Body>, ApiError> {
        let (namespace, plural, name, sub) = match rest {
            ["namespaces", ns, plural, tail @ ..]
                if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
            {
                match tail {
                    [] => (Some(*ns), *plural, None, None),
                    [name] => (Some(*ns), *plural, Some(*name), None),
                    [name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
                    _ => return Err(ApiError::no_route(&call.path)),
                }
            }
            [plural] => (None, *plural, None, None),
            [plural, name] => (None, *plural, Some(*name), None),
            [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
            _ => return Err(ApiError::no_route(&call.path)),
        };
        let registry = self.store.registry();
        let rt = registry
            .lookup(group, version, plural)
            .ok_or_else(|| ApiError::no_route(&call.path))?
            .clone();
        if !rt.namespaced && namespace.is_some() {
            return Err(ApiError::no_route(&call.path));
        }
        if rt.namespaced && name.is_some() && namespace.is_none() {
            return Err(ApiError::no_route(&call.path));
        }
        let endpoint = match sub {
            None => Endpoint::Main,
            Some("status") if rt.status => Endpoint::Status,
            Some(_) => return Err(ApiError::no_route(&call.path)),
        };
        let target = Target {
            rt,
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
        };
        if call.query.get("dryRun").is_some_and(|d| !d.is_empty()) && call.method != Method::GET {
            return Err(ApiError::bad_request(
                "dryRun is not supported by the embedded API server: the request was not applied",
            ));
        }
        let now = object::timestamp(jiff::Timestamp::now());
        let key = target.rt.key();
        let ns = target.namespace.as_deref().unwrap_or("");
        match (&call.method, name) {
            (&Method::GET, Some(name)) => {
                Ok(target.object(StatusCode::OK, self.store.get(&key, ns, name)?))
            }
            (&Method::GET, None) if call.flag("watch") => self.watch(call, target),
            (&Method::GET, None) => self.list(call, &target),
            (&Method::POST, None) => {
                let body = json_body(call)?;
                let created =
                    self.store
                        .create(&key, version, target.namespace.as_deref(), body, &now)?;
                Ok(target.object(StatusCode::CREATED, created))
            }
            (&Method::PUT, Some(name)) => {
                let body = json_body(call)?;
                let updated = self
                    .store
                    .update(&key, version, ns, name, body, endpoint, &now)?;
                Ok(target.object(StatusCode::OK, updated))
            }
            (&Method::PATCH, Some(name)) => {
                let kind = PatchKind::from_content_type(&call.content_type).ok_or_else(|| {
                    ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types \
                         include: application/json-patch+json, application/merge-patch+json, \
                         application/apply-patch+yaml (got {})",
                        call.content_type
                    ))
                })?;
                if kind == PatchKind::Strategic && target.rt.custom {
                    return Err(ApiError::unsupported_media_type(
                        "strategic merge patch is not supported for custom resources",
                    ));
                }
                if kind == PatchKind::Apply
                    && call.query.get("fieldManager").is_none_or(String::is_empty)
                {
                    return Err(ApiError::bad_request(
                        "PATCH requests of type apply must set a fieldManager",
                    ));
                }
                let patch = patch::parse_body(kind, &call.body)?;
                let patched = self
                    .store
                    .patch(&key, version, ns, name, kind, &patch, endpoint, &now)?;
                Ok(target.object(StatusCode::OK, patched))
            }
            (&Method::DELETE, Some(name)) if endpoint == Endpoint::Main => {
                let options = delete_options(call)?;
                match self.store.delete(&key, ns, name, &options, &now)? {
                    // kube-apiserver answers 200 for a deletion that waits on finalizers too.
                    Deleted::Gone(object) | Deleted::Pending(object) => {
                        Ok(target.object(StatusCode::OK, object))
                    }
                }
            }
            (&Method::DELETE, None) => {
                let options = delete_options(call)?;
                let filter = Filter::from_query(&call.query)?;
                let (items, _) = self
                    .store
                    .list(&key, target.namespace.as_deref(), |o| filter.matches(o));
                let mut deleted = Vec::new();
                for item in items {
                    let item_ns = item["metadata"]["namespace"].as_str().unwrap_or("");
                    match self
                        .store
                        .delete(&key, item_ns, object::name_of(&item), &options, &now)
                    {
                        Ok(Deleted::Gone(o) | Deleted::Pending(o)) => deleted.push(o),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                let rv = self.store.resource_version();
                Ok(document(StatusCode::OK, &target.list(deleted, rv, None)))
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}",
                call.method, call.path
            ))),
        }
    }

    fn list(&self, call: &Call, target: &Target) -> Result<Response<Body>, ApiError> {
        let filter = Filter::from_query(&call.query)?;
        let start = match call.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        if let Some((rv, _)) = &start {
            self.store.check_continuation(*rv)?;
        }
        let (mut items, rv) = self
            .store
            .list(&target.rt.key(), target.namespace.as_deref(), |o| {
                filter.matches(o)
                    && start.as_ref().is_none_or(|(_, after)| {
                        let key = (
                            o["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                            object::name_of(o).to_string(),
                        );
                        key > *after
                    })
            });
        let rv = start.as_ref().map_or(rv, |(rv, _)| *rv);
        let limit: usize = match call.query.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let mut more = None;
        if limit > 0 && items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = items.last().map(|o| {
                (
                    o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    object::name_of(o).to_string(),
                )
            });
            more = last.map(|last| (encode_continue(rv, &last), remaining));
        }
        Ok(document(StatusCode::OK, &target.list(items, rv, more)))
    }

    fn watch(&self, call: &Call, target: Target) -> Result<Response<Body>, ApiError> {
        let filter = Filter::from_query(&call.query)?;
        let from =
            match call.query.get("resourceVersion").map(String::as_str) {
                None | Some("" | "0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        let timeout = match call.query.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(
                t.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
            ),
            None => Duration::from_secs(1800),
        }
        .min(MAX_WATCH);
        let bookmarks = call.flag("allowWatchBookmarks");
        let initial_events_end = call.flag("sendInitialEvents") && bookmarks && from.is_none();
        let start = match self.store.watch(&target.rt.key(), from) {
            Ok(start) => start,
            Err(gone) => {
                let line = watch_line("ERROR", &gone.to_status());
                return Ok(watch_response(futures::stream::iter([Ok(Frame::data(
                    line,
                ))])));
            }
        };
        let mut interval = tokio::time::interval_at(
            tokio::time::Instant::now() + self.bookmark_interval,
            self.bookmark_interval,
        );
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = WatchState {
            replay: start.replay.into(),
            live: start.live,
            store: self.store.clone(),
            filter,
            target,
            bookmarks,
            initial_events_end: initial_events_end.then_some(start.at),
            interval,
            deadline: tokio::time::Instant::now() + timeout,
            done: false,
        };
        Ok(watch_response(futures::stream::unfold(
            state,
            WatchState::next,
        )))
    }
}

/// One parsed request.
struct Call {
    accept: String,
    method: Method,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    body: Bytes,
}

impl Call {
    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }
}

/// The resource and version a request addresses.
struct Target {
    rt: ResourceType,
    version: String,
    namespace: Option<String>,
}

impl Target {
    /// The object as served at the requested version (custom resources of several versions
    /// are stored once and served at each: no conversion but the apiVersion).
    fn served(&self, mut object: Value) -> Value {
        object["apiVersion"] = json!(self.rt.api_version(&self.version));
        object
    }

    fn object(&self, status: StatusCode, object: Value) -> Response<Body> {
        document(status, &self.served(object))
    }

    fn list(&self, items: Vec<Value>, rv: u64, more: Option<(String, usize)>) -> Value {
        let items: Vec<Value> = items.into_iter().map(|o| self.served(o)).collect();
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some((token, remaining)) = more {
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(remaining);
        }
        json!({
            "kind": format!("{}List", self.rt.kind),
            "apiVersion": self.rt.api_version(&self.version),
            "metadata": metadata,
            "items": items,
        })
    }
}

/// Namespace, label and field selection of a list or watch.
struct Filter {
    label: LabelSelector,
    field: FieldSelector,
}

impl Filter {
    fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        Ok(Self {
            label: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
            field: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        self.label.matches(object) && self.field.matches(object)
    }
}

struct WatchState {
    replay: VecDeque<Arc<Change>>,
    live: broadcast::Receiver<Arc<Change>>,
    store: Arc<Store>,
    filter: Filter,
    target: Target,
    bookmarks: bool,
    /// Set for `sendInitialEvents`: the resourceVersion of the initial-events-end bookmark.
    initial_events_end: Option<u64>,
    interval: tokio::time::Interval,
    deadline: tokio::time::Instant,
    done: bool,
}

type WatchFrame = Result<Frame<Bytes>, Infallible>;

impl WatchState {
    async fn next(mut self) -> Option<(WatchFrame, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(change) = self.replay.pop_front() {
                if let Some(line) = self.render(&change) {
                    return Some((Ok(Frame::data(line)), self));
                }
                continue;
            }
            if let Some(rv) = self.initial_events_end.take() {
                return Some((Ok(Frame::data(self.bookmark(rv, true))), self));
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(change) => {
                        if let Some(line) = self.render(&change) {
                            return Some((Ok(Frame::data(line)), self));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.done = true;
                        let gone = ApiError::expired("the watch fell too far behind; list again");
                        return Some((Ok(Frame::data(watch_line("ERROR", &gone.to_status()))), self));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.interval.tick(), if self.bookmarks => {
                    if let Some(rv) = self.store.bookmark(&self.live) {
                        return Some((Ok(Frame::data(self.bookmark(rv, false))), self));
                    }
                }
                _ = tokio::time::sleep_until(self.deadline) => return None,
            }
        }
    }

    /// The event `change` means to this watch, if any: objects entering or leaving the
    /// selection are ADDED or DELETED, like kube-apiserver's watch cache.
    fn render(&self, change: &Change) -> Option<Bytes> {
        if change.type_key != self.target.rt.key() {
            return None;
        }
        let in_scope = |o: &Value| {
            self.target
                .namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
                && self.filter.matches(o)
        };
        let now = in_scope(&change.object);
        let before = change.previous.as_ref().is_some_and(in_scope);
        let kind = match change.kind {
            ChangeKind::Added if now => "ADDED",
            ChangeKind::Deleted if now => "DELETED",
            ChangeKind::Modified if now && before => "MODIFIED",
            ChangeKind::Modified if now => "ADDED",
            ChangeKind::Modified if before => "DELETED",
            _ => return None,
        };
        Some(watch_line(kind, &self.target.served(change.object.clone())))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.target.rt.kind,
            "apiVersion": self.target.rt.api_version(&self.target.version),
            "metadata": metadata,
        });
        watch_line("BOOKMARK", &object)
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn watch_response(
    stream: impl futures::Stream<Item = WatchFrame> + Send + 'static,
) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn json_body(call: &Call) -> Result<Value, ApiError> {
    let essence = call.content_type.split(';').next().unwrap_or("").trim();
    let parsed = if essence.ends_with("yaml") {
        serde_yaml::from_slice::<Value>(&call.body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(&call.body).map_err(|e| e.to_string())
    };
    parsed
        .map_err(|e| ApiError::bad_request(format!("the request body is not a valid object: {e}")))
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let body = if call.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice::<Value>(&call.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = call
        .query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body["propagationPolicy"].as_str());
    let propagation = match policy {
        None | Some("Background" | "Foreground") => Propagation::Background,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}"
            )));
        }
    };
    let precondition = |field: &str| body["preconditions"][field].as_str().map(str::to_string);
    Ok(DeleteOptions {
        propagation,
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
    })
}

fn encode_continue(rv: u64, after: &(String, String)) -> String {
    let token = format!("{rv}|{}|{}", after.0, after.1);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::bad_request("invalid continue token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let rv = parts
        .next()
        .and_then(|rv| rv.parse().ok())
        .ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

/// `/openapi/v2`: a document without definitions, in protobuf when asked (kubectl before
/// 1.27 only reads that). Clients that validate against it find no schema for any kind and
/// leave validation to the server, as they do for CRDs without a schema.
fn openapi_v2(accept: &str) -> Response<Body> {
    if !accept.contains("protobuf") {
        return document(
            StatusCode::OK,
            &json!({
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": "v1.30.0"},
                "paths": {},
                "definitions": {},
            }),
        );
    }
    // gnostic's openapi_v2.Document: 1 swagger, 2 info {1 title, 2 version}, 8 paths,
    // 9 definitions (both empty messages).
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [field(1, b"Kubernetes"), field(2, b"v1.30.0")].concat();
    let doc = [
        field(1, b"2.0"),
        field(2, &info),
        field(8, &[]),
        field(9, &[]),
    ]
    .concat();
    let mut response = Response::new(full(Bytes::from(doc)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "30",
        "gitVersion": concat!("v1.30.0+knative-apiserver-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn full(bytes: Bytes) -> Body {
    BodyExt::boxed_unsync(Full::new(bytes))
}

fn document(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ApiError) -> Response<Body> {
    document(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continue_token_round_trips() {
        let key = ("ns".to_string(), "name".to_string());
        assert_eq!(
            decode_continue(&encode_continue(42, &key)).unwrap(),
            (42, key)
        );
    }

    #[test]
    fn a_garbled_continue_token_is_a_bad_request() {
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }
}
