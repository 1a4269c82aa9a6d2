//! The admission webhook: `AdmissionReview`s in, allowed / denied / patched out.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;
use serde_json::Value;

use super::check::{Context, Outcome, check_in};
use super::patch::json_patch;
use crate::apis::Defaults;

/// The largest request body the webhook reads (1 MiB); the API server's own limit on an
/// object is about 1.5 MiB, but no Knative object comes near.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The two webhooks: each is registered with the API server on its own path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/validate`: a ValidatingAdmissionWebhook, denying invalid objects with their field
    /// errors.
    Validate,
    /// `/default`: a MutatingAdmissionWebhook, answering with a JSON patch that fills in
    /// Knative's defaults.
    Default,
}

impl Endpoint {
    /// The URL path the endpoint is served on.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Validate => "/validate",
            Endpoint::Default => "/default",
        }
    }

    /// The endpoint served on `path`.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        [Endpoint::Validate, Endpoint::Default]
            .into_iter()
            .find(|e| e.path() == path)
    }
}

/// Why a request body is not an admission review the webhook can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error("the request body is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The body is JSON but not an `AdmissionReview`.
    #[error("the request body is not an AdmissionReview: {0}")]
    NotAReview(#[source] serde_json::Error),
    /// The `AdmissionReview` has no `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Knative's validating and defaulting webhooks: the handling of `AdmissionReview`s, over
/// HTTP ([`handle`](Self::handle)) or as plain bytes ([`review`](Self::review)).
///
/// Services, Configurations and Routes also get `serving.knative.dev/creator` and
/// `serving.knative.dev/lastModifier` from the request's user, as in Knative. Objects of kinds
/// this crate does not know are allowed unchanged; DELETE and CONNECT are always allowed.
#[derive(Clone, Debug, Default)]
pub struct Webhook {
    defaults: Defaults,
}

impl Webhook {
    /// A webhook that defaults and validates with `defaults` (Knative's `config-defaults`).
    pub fn new(defaults: Defaults) -> Self {
        Webhook { defaults }
    }

    /// The defaults in use.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// Answers the `AdmissionReview` in `body` for `endpoint`.
    ///
    /// # Errors
    /// When `body` is not an `AdmissionReview` with a request: the caller answers 400.
    pub fn review(
        &self,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<AdmissionReview<DynamicObject>, ReviewError> {
        let mut body: Value = serde_json::from_slice(body).map_err(ReviewError::Json)?;
        // The objects are taken out raw: a malformed object is the caller's error to report
        // with its path, not a reason to refuse the whole review.
        let Some(request) = body.get_mut("request").and_then(Value::as_object_mut) else {
            return Err(ReviewError::NoRequest);
        };
        let object = request.remove("object").filter(|o| !o.is_null());
        let old_object = request.remove("oldObject").filter(|o| !o.is_null());
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_value(body).map_err(ReviewError::NotAReview)?;
        let request: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| ReviewError::NoRequest)?;
        let response = self.admit(endpoint, &request, object.as_ref(), old_object.as_ref());
        Ok(response.into_review())
    }

    /// Answers an HTTP request: `POST /validate` or `POST /default` with an
    /// `application/json` `AdmissionReview` of at most [`MAX_BODY_BYTES`], and `GET /healthz`.
    ///
    /// A request it cannot answer gets a 4xx with a plain-text reason: 404 (unknown path), 405
    /// (not POST), 415 (not JSON), 413 (too large), 400 (not an `AdmissionReview`).
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        if parts.uri.path() == "/healthz" && parts.method == Method::GET {
            return plain(StatusCode::OK, "ok");
        }
        let Some(endpoint) = Endpoint::from_path(parts.uri.path()) else {
            return plain(
                StatusCode::NOT_FOUND,
                "no such webhook: POST to /validate or /default",
            );
        };
        if parts.method != Method::POST {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "admission reviews are POSTed",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "an AdmissionReview is sent as application/json",
            );
        }
        let declared_too_large = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|length| length > MAX_BODY_BYTES as u64);
        if declared_too_large {
            return too_large();
        }
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => return too_large(),
            Err(e) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                );
            }
        };
        let review = match self.review(endpoint, &body) {
            Ok(review) => review,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        match serde_json::to_vec(&review) {
            Ok(json) => response(StatusCode::OK, "application/json", json.into()),
            Err(e) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the AdmissionReview: {e}"),
            ),
        }
    }

    /// The response to one admission request.
    fn admit(
        &self,
        endpoint: Endpoint,
        request: &AdmissionRequest<DynamicObject>,
        object: Option<&Value>,
        old_object: Option<&Value>,
    ) -> AdmissionResponse {
        let allowed = AdmissionResponse::from(request);
        let update = match request.operation {
            Operation::Create => false,
            Operation::Update => true,
            Operation::Delete | Operation::Connect => return allowed,
        };
        let Some(object) = object else {
            return deny(request, "the admission request has no object");
        };
        let context = Context {
            defaults: &self.defaults,
            user: request.user_info.username.as_deref(),
            old_object: old_object.filter(|_| update),
        };
        match (endpoint, check_in(object, &context)) {
            (_, Outcome::Unknown { .. }) => allowed,
            (_, Outcome::Malformed { error, .. }) => deny(request, error),
            (
                Endpoint::Validate,
                Outcome::Checked {
                    validation: Err(error),
                    ..
                },
            ) => deny(request, error),
            (Endpoint::Validate, Outcome::Checked { .. }) => allowed,
            (Endpoint::Default, Outcome::Checked { defaulted, .. }) => {
                let patch = json_patch(object, &defaulted);
                if patch.as_array().is_some_and(Vec::is_empty) {
                    return allowed;
                }
                // kube takes the patch as its json-patch crate's type, which is not re-exported:
                // it is built from the JSON operations by inference.
                match serde_json::from_value(patch)
                    .map_err(|e| e.to_string())
                    .and_then(|patch| allowed.with_patch(patch).map_err(|e| e.to_string()))
                {
                    Ok(patched) => patched,
                    Err(e) => deny(request, format!("cannot encode the defaulting patch: {e}")),
                }
            }
        }
    }
}

/// A denial as Knative's webhook makes it: status `Failure`, code 400, the message shown to the
/// user after `admission webhook "…" denied the request: `.
fn deny(request: &AdmissionRequest<DynamicObject>, message: impl ToString) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.status = Some(StatusSummary::Failure);
    response.result.code = StatusCode::BAD_REQUEST.as_u16();
    response.result.reason = "BadRequest".to_owned();
    response
}

fn too_large() -> http::Response<Full<Bytes>> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("an AdmissionReview is at most {MAX_BODY_BYTES} bytes"),
    )
}

fn plain(status: StatusCode, text: &str) -> http::Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{text}\n")),
    )
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn review(operation: &str, object: Value, old_object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": { "group": "serving.knative.dev", "version": "v1", "kind": "Service" },
                "resource": { "group": "serving.knative.dev", "version": "v1", "resource": "services" },
                "name": "hello",
                "namespace": "default",
                "operation": operation,
                "userInfo": { "username": "alice", "groups": ["system:authenticated"] },
                "object": object,
                "oldObject": old_object,
                "dryRun": false,
                "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" },
            },
        }))
        .unwrap()
    }

    fn service(traffic: Value) -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": { "name": "hello", "namespace": "default", "creationTimestamp": null },
            "spec": {
                "template": { "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go" }] } },
                "traffic": traffic,
            },
        })
    }

    fn response_of(endpoint: Endpoint, body: &[u8]) -> Value {
        let review = Webhook::default().review(endpoint, body).expect("a review");
        let json = serde_json::to_value(review).unwrap();
        assert_eq!(json["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(json["kind"], "AdmissionReview");
        assert_eq!(
            json["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        json["response"].clone()
    }

    fn patch_of(response: &Value) -> Value {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes: Vec<u8> = serde_json::from_value(response["patch"].clone()).expect("bytes");
        serde_json::from_slice(&bytes).expect("a JSON patch")
    }

    #[test]
    fn a_valid_object_is_allowed() {
        let body = review("CREATE", service(json!([])), Value::Null);
        let response = response_of(Endpoint::Validate, &body);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
    }

    #[test]
    fn an_invalid_object_is_denied_with_its_field_errors() {
        let body = review(
            "CREATE",
            service(json!([{ "latestRevision": true, "percent": 90 }])),
            Value::Null,
        );
        let response = response_of(Endpoint::Validate, &body);
        assert_eq!(response["allowed"], false);
        assert_eq!(
            response["status"],
            json!({
                "status": "Failure",
                "code": 400,
                "reason": "BadRequest",
                "message": "Traffic targets sum to 90, want 100: spec.traffic",
            })
        );
    }

    #[test]
    fn a_malformed_object_is_denied_on_both_endpoints() {
        let body = review(
            "CREATE",
            service(json!([{ "percent": "most" }])),
            Value::Null,
        );
        for endpoint in [Endpoint::Validate, Endpoint::Default] {
            let response = response_of(endpoint, &body);
            assert_eq!(response["allowed"], false);
            assert_eq!(
                response["status"]["message"],
                r#"invalid type: string "most", expected an integer: spec.traffic[0].percent"#
            );
        }
    }

    #[test]
    fn defaulting_answers_with_a_patch_to_the_defaulted_object() {
        let body = review("CREATE", service(json!([])), Value::Null);
        let response = response_of(Endpoint::Default, &body);
        assert_eq!(response["allowed"], true);
        let patch = patch_of(&response);
        let operations = patch.as_array().unwrap();
        let op_at = |path: &str| {
            operations
                .iter()
                .find(|op| op["path"] == path)
                .unwrap_or_else(|| panic!("no operation on {path} in {patch}"))
        };
        assert_eq!(
            op_at("/spec/template/spec/containers/0/name")["value"],
            "user-container"
        );
        assert_eq!(op_at("/spec/template/spec/timeoutSeconds")["value"], 300);
        assert_eq!(
            op_at("/spec/traffic"),
            &json!({ "op": "replace", "path": "/spec/traffic", "value": [{ "latestRevision": true, "percent": 100 }] })
        );
        assert_eq!(
            op_at("/metadata/annotations"),
            &json!({ "op": "add", "path": "/metadata/annotations", "value": {
                "serving.knative.dev/creator": "alice",
                "serving.knative.dev/lastModifier": "alice",
            } })
        );
        // Nothing the user wrote is touched.
        assert!(operations.iter().all(|op| op["op"] != "remove"));
    }

    #[test]
    fn a_defaulted_object_needs_no_patch() {
        let Outcome::Checked { defaulted, .. } = check_in(
            &service(json!([])),
            &Context {
                user: Some("alice"),
                ..Context::new(&Defaults::default())
            },
        ) else {
            panic!("checked")
        };
        let body = review("CREATE", defaulted, Value::Null);
        let response = response_of(Endpoint::Default, &body);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none(), "{response}");
    }

    #[test]
    fn updates_are_checked_against_the_old_object() {
        let mut old = service(json!([{ "latestRevision": true, "percent": 100 }]));
        old["metadata"]["annotations"] = json!({
            "serving.knative.dev/creator": "bob",
            "serving.knative.dev/lastModifier": "bob",
        });
        let mut new = old.clone();
        new["metadata"]["annotations"]["serving.knative.dev/creator"] = "alice".into();
        let response = response_of(Endpoint::Validate, &review("UPDATE", new, old));
        assert_eq!(response["allowed"], false);
        assert_eq!(
            response["status"]["message"],
            "annotation value is immutable: metadata.annotations.serving.knative.dev/creator"
        );
    }

    #[test]
    fn other_kinds_and_deletions_are_allowed_unchanged() {
        let config_map =
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" } });
        for endpoint in [Endpoint::Validate, Endpoint::Default] {
            let response =
                response_of(endpoint, &review("CREATE", config_map.clone(), Value::Null));
            assert_eq!(response["allowed"], true);
            assert!(response.get("patch").is_none());
            let invalid = service(json!([{ "percent": 1 }]));
            let response = response_of(endpoint, &review("DELETE", Value::Null, invalid));
            assert_eq!(response["allowed"], true);
        }
    }

    #[test]
    fn bodies_that_are_not_reviews_are_errors() {
        let webhook = Webhook::default();
        assert!(matches!(
            webhook.review(Endpoint::Validate, b"{not json"),
            Err(ReviewError::Json(_))
        ));
        assert!(matches!(
            webhook.review(
                Endpoint::Validate,
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#
            ),
            Err(ReviewError::NoRequest)
        ));
        assert!(matches!(
            webhook.review(Endpoint::Validate, br#"{"request": {"uid": 7}}"#),
            Err(ReviewError::NotAReview(_))
        ));
        assert!(matches!(
            webhook.review(Endpoint::Validate, b"[]"),
            Err(ReviewError::NoRequest)
        ));
    }

    async fn http(request: http::Request<Full<Bytes>>) -> (StatusCode, String) {
        let response = Webhook::default().handle(request).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn post(path: &str, content_type: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
        http::Request::post(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    #[tokio::test]
    async fn http_requests_are_answered_with_a_review_or_a_4xx() {
        let body = review("CREATE", service(json!([])), Value::Null);
        let (status, text) = http(post(
            "/validate",
            "application/json; charset=utf-8",
            body.clone(),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["response"]["allowed"], true);

        let (status, _) = http(post("/mutate", "application/json", body.clone())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = http(post("/validate", "text/yaml", body.clone())).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, text) = http(post("/default", "application/json", b"{oops".to_vec())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.starts_with("the request body is not JSON"), "{text}");
        let get = http::Request::get("/validate")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(http(get).await.0, StatusCode::METHOD_NOT_ALLOWED);
        let health = http::Request::get("/healthz")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(http(health).await, (StatusCode::OK, "ok\n".to_owned()));
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_whether_declared_or_not() {
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        let (status, _) = http(post("/validate", "application/json", huge.clone())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let declared = http::Request::post("/validate")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "10000000")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        assert_eq!(http(declared).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
