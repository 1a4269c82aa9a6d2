//! A recording API double: an in-memory Kubernetes API behind a real [`kube::Client`].
//!
//! Reconcilers under test use the ordinary `kube::Api`; the double stores objects, answers as
//! the API server would for the common verbs, and records every request so that a test can
//! state exactly which writes and Events a reconcile produced.
//!
//! What it implements: get, list (with equality label selectors), create (with `generateName`,
//! `resourceVersion`, `uid`, `generation`), update and `/status` update (optimistic concurrency:
//! a stale `resourceVersion` is a 409; a spec change bumps `generation`; the main resource keeps
//! the stored status and `/status` keeps the stored spec), merge patches (strategic-merge and
//! apply patches are applied as JSON merge patches, which is exact for the maps and scalars that
//! reconcilers patch), delete (with finalizers: sets `deletionTimestamp`; the object goes once
//! the last finalizer is removed). Watches are not served: table tests call
//! [`Driver::reconcile`](crate::reconciler::Driver::reconcile) directly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The kind of request the double saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// One request the double served (or refused).
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// What was asked.
    pub verb: Verb,
    /// The resource's plural name, e.g. `services`.
    pub resource: String,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// The namespace, for namespaced resources.
    pub namespace: Option<String>,
    /// The object's name (for creates: the name given or generated).
    pub name: Option<String>,
    /// The request body (objects and patches), if any.
    pub body: Option<Value>,
    /// The HTTP status the double answered with.
    pub code: u16,
}

impl Action {
    /// Whether the action changed (or tried to change) state: not a get or list.
    pub fn is_write(&self) -> bool {
        !matches!(self.verb, Verb::Get | Verb::List)
    }

    /// The body deserialised as `T` (e.g. the created child).
    ///
    /// # Panics
    /// When there is no body or it is not a `T`.
    pub fn object<T: DeserializeOwned>(&self) -> T {
        let body = self.body.clone().expect("action without a body");
        serde_json::from_value(body).expect("action body of another type")
    }
}

/// An Event published through the double (events.k8s.io/v1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The Event's reason, e.g. `InternalError`.
    pub reason: String,
    /// The Event's note (message).
    pub note: String,
    /// The name of the object the Event is about.
    pub regarding: String,
}

/// The in-memory API. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct RecordingApi {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    actions: Vec<Action>,
    failures: Vec<Failure>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// `/api/v1` or `/apis/<group>/<version>`.
    prefix: String,
    resource: String,
    namespace: Option<String>,
    name: String,
}

#[derive(Debug)]
struct Failure {
    verb: Verb,
    resource: String,
    subresource: Option<String>,
    code: u16,
}

impl RecordingApi {
    /// An empty API.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `obj` as if it had been created (a `resourceVersion` is assigned when missing).
    /// Seeding is not recorded as an action.
    pub fn seed<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let mut value = serde_json::to_value(obj).expect("object serialises");
        let key = Key {
            prefix: prefix_of(&K::api_version(&())),
            resource: K::plural(&()).into_owned(),
            namespace: obj.meta().namespace.clone(),
            name: obj.meta().name.clone().expect("seeded objects need a name"),
        };
        let mut state = self.lock();
        state.resource_version += 1;
        let rv = state.resource_version.to_string();
        let meta = ensure_object(&mut value, "metadata");
        meta.entry("resourceVersion").or_insert(Value::String(rv));
        meta.entry("generation").or_insert(json!(1));
        meta.entry("uid")
            .or_insert_with(|| Value::String(format!("uid-{}", key.name)));
        value["apiVersion"] = Value::String(K::api_version(&()).into_owned());
        value["kind"] = Value::String(K::kind(&()).into_owned());
        state.objects.insert(key, value);
    }

    /// A `kube::Client` served by this double.
    pub fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.serve(req).await) }
        });
        Client::new(service, "default")
    }

    /// The stored object `namespace/name` of kind `K`, if any.
    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let key = Key {
            prefix: prefix_of(&K::api_version(&())),
            resource: K::plural(&()).into_owned(),
            namespace: Some(namespace.to_owned()).filter(|n| !n.is_empty()),
            name: name.to_owned(),
        };
        self.lock()
            .objects
            .get(&key)
            .map(|v| serde_json::from_value(v.clone()).expect("stored object of kind K"))
    }

    /// Makes the next request with `verb` on `resource` (plural; `resource/status` for the
    /// status subresource) fail with HTTP `code` (e.g. 409), once.
    pub fn fail_next(&self, verb: Verb, resource: &str, code: u16) {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
            None => (resource.to_owned(), None),
        };
        self.lock().failures.push(Failure {
            verb,
            resource,
            subresource,
            code,
        });
    }

    /// Every request, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.lock().actions.clone()
    }

    /// The writes to objects (not Events), in order.
    pub fn writes(&self) -> Vec<Action> {
        self.actions()
            .into_iter()
            .filter(|a| a.is_write() && a.resource != "events")
            .collect()
    }

    /// Successful creates of objects (not Events).
    pub fn creates(&self) -> Vec<Action> {
        self.successful(|a| a.verb == Verb::Create && a.resource != "events")
    }

    /// Successful updates of the main resource.
    pub fn updates(&self) -> Vec<Action> {
        self.successful(|a| a.verb == Verb::Update && a.subresource.is_none())
    }

    /// Successful updates of the `/status` subresource.
    pub fn status_updates(&self) -> Vec<Action> {
        self.successful(|a| a.verb == Verb::Update && a.subresource.as_deref() == Some("status"))
    }

    /// Successful patches of objects (not Events).
    pub fn patches(&self) -> Vec<Action> {
        self.successful(|a| a.verb == Verb::Patch && a.resource != "events")
    }

    /// Successful deletes.
    pub fn deletes(&self) -> Vec<Action> {
        self.successful(|a| a.verb == Verb::Delete)
    }

    /// Events published, in order (each publish, including repeats that kube's recorder sends
    /// as a series patch).
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.successful(|a| a.resource == "events" && matches!(a.verb, Verb::Create | Verb::Patch))
            .into_iter()
            .filter_map(|a| a.body)
            .map(|b| RecordedEvent {
                type_: str_at(&b, &["type"]),
                reason: str_at(&b, &["reason"]),
                note: str_at(&b, &["note"]),
                regarding: str_at(&b, &["regarding", "name"]),
            })
            .collect()
    }

    /// Forgets the recorded actions (not the objects), e.g. between two reconciles.
    pub fn clear_actions(&self) {
        self.lock().actions.clear();
    }

    fn successful(&self, pred: impl Fn(&Action) -> bool) -> Vec<Action> {
        self.actions()
            .into_iter()
            .filter(|a| a.code < 300 && pred(a))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn serve(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("unreadable body: {err}"),
                );
            }
        };
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(path) = parse_path(parts.uri.path()) else {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("unknown path {}", parts.uri.path()),
            );
        };
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else if content_type.contains("yaml") {
            // Server-side apply bodies are JSON (a YAML subset) when sent by kube.
            serde_json::from_slice(&bytes).ok()
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => Some(v),
                Err(err) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid JSON: {err}"),
                    );
                }
            }
        };
        let verb = match (&parts.method, path.name.is_some()) {
            (&Method::GET, true) => Verb::Get,
            (&Method::GET, false) => Verb::List,
            (&Method::POST, _) => Verb::Create,
            (&Method::PUT, _) => Verb::Update,
            (&Method::PATCH, _) => Verb::Patch,
            (&Method::DELETE, _) => Verb::Delete,
            _ => {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "method not allowed",
                );
            }
        };
        let query = parts.uri.query().unwrap_or("").to_owned();
        let mut state = self.lock();
        let induced = state.failures.iter().position(|f| {
            f.verb == verb && f.resource == path.key.resource && f.subresource == path.subresource
        });
        let (response, name) = match induced {
            Some(i) => {
                let f = state.failures.remove(i);
                let code =
                    StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let reason = reason_for(code);
                (
                    error(code, reason, &format!("induced failure: {reason}")),
                    path.name.clone(),
                )
            }
            None => state.handle(verb, &path, body.clone(), &query, content_type),
        };
        state.actions.push(Action {
            verb,
            resource: path.key.resource.clone(),
            subresource: path.subresource.clone(),
            namespace: path.key.namespace.clone(),
            name,
            body,
            code: response.status().as_u16(),
        });
        response
    }
}

struct ParsedPath {
    key: Key,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<ParsedPath> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (format!("/api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("/apis/{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some((*name).to_owned()), None),
        [resource, name, sub] => (*resource, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return None,
    };
    Some(ParsedPath {
        key: Key {
            prefix,
            resource: resource.to_owned(),
            namespace,
            name: name.clone().unwrap_or_default(),
        },
        name,
        subresource,
    })
}

impl State {
    fn next_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn handle(
        &mut self,
        verb: Verb,
        path: &ParsedPath,
        body: Option<Value>,
        query: &str,
        content_type: &str,
    ) -> (Response<Full<Bytes>>, Option<String>) {
        match verb {
            Verb::Get => (self.get(&path.key), path.name.clone()),
            Verb::List => (self.list(&path.key, query), None),
            Verb::Create => self.create(&path.key, body),
            Verb::Update => (
                self.update(&path.key, body, path.subresource.as_deref()),
                path.name.clone(),
            ),
            Verb::Patch => (
                self.patch(&path.key, body, path.subresource.as_deref(), content_type),
                path.name.clone(),
            ),
            Verb::Delete => (self.delete(&path.key), path.name.clone()),
        }
    }

    fn get(&self, key: &Key) -> Response<Full<Bytes>> {
        match self.objects.get(key) {
            Some(obj) => ok(StatusCode::OK, obj),
            None => not_found(key),
        }
    }

    fn list(&self, key: &Key, query: &str) -> Response<Full<Bytes>> {
        let selector = query_param(query, "labelSelector");
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.prefix == key.prefix && k.resource == key.resource)
            .filter(|(k, _)| key.namespace.is_none() || k.namespace == key.namespace)
            .filter(|(_, v)| selector.as_deref().is_none_or(|s| labels_match(v, s)))
            .map(|(_, v)| v)
            .collect();
        let list = json!({
            "apiVersion": "v1", "kind": "List",
            "metadata": { "resourceVersion": self.resource_version.to_string() },
            "items": items,
        });
        ok(StatusCode::OK, &list)
    }

    fn create(
        &mut self,
        key: &Key,
        body: Option<Value>,
    ) -> (Response<Full<Bytes>>, Option<String>) {
        let Some(mut obj) = body else {
            return (
                error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "create without a body",
                ),
                None,
            );
        };
        let mut name = str_at(&obj, &["metadata", "name"]);
        if name.is_empty() {
            let generate = str_at(&obj, &["metadata", "generateName"]);
            if generate.is_empty() {
                return (
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "metadata.name: Required value",
                    ),
                    None,
                );
            }
            name = format!("{generate}{:05}", self.resource_version + 1);
        }
        let key = Key {
            name: name.clone(),
            ..key.clone()
        };
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{name}\" already exists", key.resource);
            return (
                error(StatusCode::CONFLICT, "AlreadyExists", &message),
                Some(name),
            );
        }
        let rv = self.next_version();
        let meta = ensure_object(&mut obj, "metadata");
        meta.insert("name".into(), Value::String(name.clone()));
        if let Some(ns) = &key.namespace {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        meta.insert("resourceVersion".into(), Value::String(rv.clone()));
        meta.insert("uid".into(), Value::String(format!("uid-{name}-{rv}")));
        meta.insert("generation".into(), json!(1));
        meta.insert(
            "creationTimestamp".into(),
            Value::String("2026-01-01T00:00:00Z".into()),
        );
        self.objects.insert(key, obj.clone());
        (ok(StatusCode::CREATED, &obj), Some(name))
    }

    fn update(
        &mut self,
        key: &Key,
        body: Option<Value>,
        subresource: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let Some(new) = body else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "update without a body",
            );
        };
        let Some(stored) = self.objects.get(key).cloned() else {
            return not_found(key);
        };
        let sent_rv = str_at(&new, &["metadata", "resourceVersion"]);
        if !sent_rv.is_empty() && sent_rv != str_at(&stored, &["metadata", "resourceVersion"]) {
            return conflict(key);
        }
        let mut result = stored.clone();
        if subresource == Some("status") {
            set_or_remove(&mut result, "status", new.get("status").cloned());
        } else {
            result = new;
            set_or_remove(&mut result, "status", stored.get("status").cloned());
            // System fields are the server's.
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                let value = stored.get("metadata").and_then(|m| m.get(field)).cloned();
                set_or_remove(ensure_value(&mut result, "metadata"), field, value);
            }
        }
        self.store(key, stored, result)
    }

    fn patch(
        &mut self,
        key: &Key,
        body: Option<Value>,
        subresource: Option<&str>,
        content_type: &str,
    ) -> Response<Full<Bytes>> {
        if content_type.contains("json-patch") {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "JSON patches are not supported",
            );
        }
        let Some(patch) = body else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "patch without a body",
            );
        };
        let Some(stored) = self.objects.get(key).cloned() else {
            if content_type.contains("apply-patch") {
                return self.create(key, Some(patch)).0;
            }
            return not_found(key);
        };
        let sent_rv = str_at(&patch, &["metadata", "resourceVersion"]);
        if !sent_rv.is_empty() && sent_rv != str_at(&stored, &["metadata", "resourceVersion"]) {
            return conflict(key);
        }
        let mut result = stored.clone();
        if subresource == Some("status") {
            if let Some(status) = patch.get("status") {
                merge(ensure_value(&mut result, "status"), status);
            }
        } else {
            let mut patch = patch;
            if let Some(obj) = patch.as_object_mut() {
                obj.remove("status");
            }
            merge(&mut result, &patch);
        }
        self.store(key, stored, result)
    }

    /// Writes `result` over `stored`: new resourceVersion, generation bumped on a spec change,
    /// and removal once a deleted object's last finalizer is gone.
    fn store(&mut self, key: &Key, stored: Value, mut result: Value) -> Response<Full<Bytes>> {
        let rv = self.next_version();
        let spec_changed =
            without(&stored, &["metadata", "status"]) != without(&result, &["metadata", "status"]);
        let generation = stored
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let meta = ensure_object(&mut result, "metadata");
        meta.insert("resourceVersion".into(), Value::String(rv));
        meta.insert(
            "generation".into(),
            json!(if spec_changed {
                generation + 1
            } else {
                generation
            }),
        );
        let deleting = meta.get("deletionTimestamp").is_some_and(|v| !v.is_null());
        let finalized = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if deleting && finalized {
            self.objects.remove(key);
        } else {
            self.objects.insert(key.clone(), result.clone());
        }
        ok(StatusCode::OK, &result)
    }

    fn delete(&mut self, key: &Key) -> Response<Full<Bytes>> {
        let Some(mut obj) = self.objects.get(key).cloned() else {
            return not_found(key);
        };
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            let rv = self.next_version();
            let meta = ensure_object(&mut obj, "metadata");
            meta.insert(
                "deletionTimestamp".into(),
                Value::String("2026-01-01T00:00:00Z".into()),
            );
            meta.insert("resourceVersion".into(), Value::String(rv));
            self.objects.insert(key.clone(), obj.clone());
        } else {
            self.objects.remove(key);
        }
        ok(StatusCode::OK, &obj)
    }
}

fn prefix_of(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

fn str_at(value: &Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(value, |v, p| v.get(*p))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn ensure_value<'a>(value: &'a mut Value, field: &str) -> &'a mut Value {
    if !value.is_object() {
        *value = json!({});
    }
    let obj = value.as_object_mut().expect("object");
    let entry = obj.entry(field.to_owned()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry
}

fn ensure_object<'a>(value: &'a mut Value, field: &str) -> &'a mut serde_json::Map<String, Value> {
    ensure_value(value, field).as_object_mut().expect("object")
}

fn set_or_remove(value: &mut Value, field: &str, new: Option<Value>) {
    if let Some(obj) = value.as_object_mut() {
        match new {
            Some(v) => {
                obj.insert(field.to_owned(), v);
            }
            None => {
                obj.remove(field);
            }
        }
    }
}

fn without(value: &Value, fields: &[&str]) -> Value {
    let mut v = value.clone();
    if let Some(obj) = v.as_object_mut() {
        for f in fields {
            obj.remove(*f);
        }
    }
    v
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = json!({});
            }
            let obj = target.as_object_mut().expect("object");
            for (k, v) in patch {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    merge(obj.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equality-based selectors (`a=b,c==d,e!=f`), which is what reconcilers use.
fn labels_match(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector.split(',').filter(|s| !s.is_empty()).all(|req| {
        if let Some((k, v)) = req.split_once("!=") {
            label(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            label(k.trim()) == Some(v.trim())
        } else {
            label(req.trim()).is_some()
        }
    })
}

fn ok(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).expect("JSON"),
    )));
    *response.status_mut() = code;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    ok(code, &status)
}

fn not_found(key: &Key) -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{}\" not found", key.resource, key.name),
    )
}

fn conflict(key: &Key) -> Response<Full<Bytes>> {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
        key.resource, key.name
    );
    error(StatusCode::CONFLICT, "Conflict", &message)
}

fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}
