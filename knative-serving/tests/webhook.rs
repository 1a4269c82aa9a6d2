//! `knative_serving::webhook`: the library call on each kind of outcome, YAML streams, and the
//! admission webhook over real HTTPS on loopback.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use knative_serving::apis::Defaults;
use knative_serving::webhook::{
    self, Kind, Outcome, Registration, Webhook, WebhookServer, check, check_yaml,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn hello() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": "hello", "namespace": "default" },
        "spec": { "template": { "spec": { "containers": [{
            "image": "ghcr.io/knative/helloworld-go:latest",
            "env": [{ "name": "TARGET", "value": "World" }],
        }] } } },
    })
}

#[test]
fn a_valid_service_comes_back_defaulted() {
    let Outcome::Checked {
        kind,
        defaulted,
        validation,
    } = check(&hello(), &Defaults::default())
    else {
        panic!("a Service is checked")
    };
    assert_eq!(kind, Kind::Service);
    assert_eq!(validation, Ok(()));
    let revision = &defaulted["spec"]["template"]["spec"];
    assert_eq!(revision["containers"][0]["name"], "user-container");
    assert_eq!(
        revision["containers"][0]["env"],
        json!([{ "name": "TARGET", "value": "World" }])
    );
    assert_eq!(revision["timeoutSeconds"], 300);
    assert_eq!(revision["containerConcurrency"], 0);
    assert_eq!(
        defaulted["spec"]["traffic"],
        json!([{ "latestRevision": true, "percent": 100 }])
    );
    // Defaulting is idempotent: the defaulted form defaults to itself.
    let again = check(&defaulted, &Defaults::default());
    assert!(matches!(&again, Outcome::Checked { defaulted: d, .. } if *d == defaulted));
}

#[test]
fn an_invalid_service_comes_back_with_field_errors() {
    let mut ksvc = hello();
    ksvc["spec"]["traffic"] = json!([
        { "latestRevision": true, "percent": 90 },
        { "revisionName": "hello-00001", "percent": 120, "tag": "Not_DNS" },
    ]);
    let outcome = check(&ksvc, &Defaults::default());
    assert_eq!(outcome.kind(), Some(Kind::Service));
    assert!(!outcome.is_valid());
    let Outcome::Checked {
        validation: Err(error),
        ..
    } = &outcome
    else {
        panic!("checked and invalid: {outcome:?}")
    };
    let message = error.to_string();
    assert!(
        message.contains("Traffic targets sum to 210, want 100: spec.traffic"),
        "{message}"
    );
    assert!(
        message.contains("expected 0 <= 120 <= 100: spec.traffic[1].percent"),
        "{message}"
    );
    assert!(message.contains("spec.traffic[1].tag"), "{message}");
}

#[test]
fn the_limits_come_from_the_defaults_given() {
    let mut ksvc = hello();
    ksvc["spec"]["template"]["spec"]["timeoutSeconds"] = 900.into();
    assert!(!check(&ksvc, &Defaults::default()).is_valid());
    let generous = Defaults {
        max_revision_timeout_seconds: 1000,
        ..Defaults::default()
    };
    assert!(check(&ksvc, &generous).is_valid());
}

#[test]
fn every_user_facing_kind_is_checked() {
    let defaults = Defaults::default();
    let configuration = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": { "name": "c" },
        "spec": { "template": { "spec": { "containers": [{ "image": "i" }] } } },
    });
    let revision = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": { "name": "r" },
        "spec": { "containers": [{ "image": "i" }], "containerConcurrency": 5000 },
    });
    let route = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": { "name": "rt" },
        "spec": { "traffic": [{ "configurationName": "c", "percent": 100 }] },
    });
    assert!(check(&configuration, &defaults).is_valid());
    assert_eq!(
        check(&revision, &defaults)
            .error()
            .map(ToString::to_string)
            .as_deref(),
        Some("expected 0 <= 5000 <= 1000: spec.containerConcurrency")
    );
    let Outcome::Checked { defaulted, .. } = check(&route, &defaults) else {
        panic!("checked")
    };
    assert_eq!(defaulted["spec"]["traffic"][0]["latestRevision"], true);
}

#[test]
fn internal_kinds_are_decoded_but_not_defaulted() {
    let sks = json!({
        "apiVersion": "networking.internal.knative.dev/v1alpha1",
        "kind": "ServerlessService",
        "metadata": { "name": "s" },
        "spec": {
            "mode": "Serve",
            "objectRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "d" },
            "protocolType": "http1",
        },
    });
    assert_eq!(
        check(&sks, &Defaults::default()),
        Outcome::Checked {
            kind: Kind::ServerlessService,
            defaulted: sks.clone(),
            validation: Ok(()),
        }
    );
    let mut bad = sks;
    bad["spec"]["mode"] = "Sideways".into();
    assert_eq!(
        check(&bad, &Defaults::default())
            .error()
            .map(ToString::to_string)
            .as_deref(),
        Some(r#"invalid value: "Sideways", expected one of "Serve", "Proxy": spec.mode"#)
    );
}

#[test]
fn a_malformed_object_names_the_field() {
    let mut ksvc = hello();
    ksvc["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{ "containerPort": "8080" }]);
    let outcome = check(&ksvc, &Defaults::default());
    let Outcome::Malformed { kind, error } = &outcome else {
        panic!("malformed: {outcome:?}")
    };
    assert_eq!(*kind, Kind::Service);
    assert_eq!(
        error.to_string(),
        r#"invalid type: string "8080", expected an integer: spec.template.spec.containers[0].ports[0].containerPort"#
    );
}

#[test]
fn other_kinds_and_non_objects_are_unknown() {
    for (object, api_version, kind) in [
        (
            json!({ "apiVersion": "v1", "kind": "ConfigMap" }),
            "v1",
            "ConfigMap",
        ),
        (
            json!({ "apiVersion": "serving.knative.dev/v1alpha1", "kind": "Service" }),
            "serving.knative.dev/v1alpha1",
            "Service",
        ),
        (json!("just a string"), "", ""),
        (json!({ "apiVersion": 1, "kind": ["Service"] }), "", ""),
        (Value::Null, "", ""),
    ] {
        assert_eq!(
            check(&object, &Defaults::default()),
            Outcome::Unknown {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            }
        );
    }
}

#[test]
fn a_yaml_stream_gives_one_result_per_document() {
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: foo
  namespace: apps
---
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  generateName: hello-
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: both
spec:
  traffic:
    - revisionName: hello-00001
      configurationName: hello
      percent: 100
"#;
    let documents = check_yaml(yaml, &Defaults::default()).unwrap();
    let summary: Vec<_> = documents
        .iter()
        .map(|d| {
            (
                d.index,
                d.kind.as_str(),
                d.qualified_name(),
                d.outcome.is_valid(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "ConfigMap", "apps/foo".to_owned(), false),
            (2, "Service", "hello-".to_owned(), true),
            (3, "Route", "both".to_owned(), false),
        ]
    );
    assert!(matches!(documents[0].outcome, Outcome::Unknown { .. }));
    assert_eq!(
        documents[2].outcome.error().unwrap().to_string(),
        "expected exactly one, got both: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
    );
}

#[test]
fn a_yaml_syntax_error_has_its_document_and_line() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\n---\nkind: Service\nmetadata: {name: [oops\n";
    let error = check_yaml(yaml, &Defaults::default()).unwrap_err();
    assert_eq!(error.index, 1);
    assert_eq!(error.line, Some(6));
    assert!(error.to_string().contains("line"), "{error}");
}

// --- The admission webhook over HTTPS --------------------------------------------------

/// A webhook server on a free loopback port with a fresh certificate.
struct Running {
    address: std::net::SocketAddr,
    /// The CA to trust.
    ca_pem: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start() -> Running {
        let certs = webhook::self_signed(&["127.0.0.1", "localhost"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = WebhookServer::new(Webhook::default(), certs.tls_config().unwrap());
        let server = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Running {
            address,
            ca_pem: certs.ca_pem,
            stop,
            server,
        }
    }

    /// Stops the server and waits until it has shut down.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

fn client_trusting(ca_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request over TLS to 127.0.0.1; returns the status code and body.
async fn post(
    connector: &TlsConnector,
    address: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    write_all(&mut tls, head.as_bytes()).await?;
    write_all(&mut tls, body).await?;
    let response = read_to_end(&mut tls).await?;
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Ok((status, body.to_owned()))
}

// tokio's `io-util` extension traits are not enabled in this workspace: the two loops by hand.
async fn write_all(
    stream: &mut (impl AsyncWrite + Unpin),
    mut bytes: &[u8],
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx)).await
}

async fn read_to_end(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut buf = ReadBuf::new(&mut chunk);
        poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
        if buf.filled().is_empty() {
            return Ok(all);
        }
        all.extend_from_slice(buf.filled());
    }
}

fn review(object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f5d1a7c-0000-4000-8000-000000000001",
            "kind": { "group": "serving.knative.dev", "version": "v1", "kind": "Service" },
            "resource": { "group": "serving.knative.dev", "version": "v1", "resource": "services" },
            "name": "hello",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": { "username": "kubernetes-admin" },
            "object": object,
            "dryRun": false,
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn reviews_round_trip_over_https() {
    let running = Running::start().await;
    let (address, client) = (running.address, client_trusting(&running.ca_pem));

    let mut invalid = hello();
    invalid["spec"]["traffic"] = json!([{ "latestRevision": true, "percent": 90 }]);
    let (status, body) = post(
        &client,
        address,
        "/validate",
        "application/json",
        &review(invalid),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["response"]["uid"],
        "3f5d1a7c-0000-4000-8000-000000000001"
    );
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "Traffic targets sum to 90, want 100: spec.traffic"
    );
    assert_eq!(answer["response"]["status"]["code"], 400);

    let (status, body) = post(
        &client,
        address,
        "/default",
        "application/json",
        &review(hello()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let patch: Vec<u8> = serde_json::from_value(answer["response"]["patch"].clone()).unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert!(
        patch.as_array().unwrap().contains(&json!({
            "op": "add",
            "path": "/spec/template/spec/containers/0/name",
            "value": "user-container",
        })),
        "{patch}"
    );

    let (status, _) = post(
        &client,
        address,
        "/validate",
        "application/json",
        b"{\"request\": 1",
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    let (status, _) = post(&client, address, "/validate", "text/plain", b"hello")
        .await
        .unwrap();
    assert_eq!(status, 415);
    let (status, _) = post(
        &client,
        address,
        "/default",
        "application/json",
        &vec![b' '; webhook::MAX_BODY_BYTES + 1],
    )
    .await
    .unwrap_or((413, String::new()));
    assert_eq!(status, 413);

    running.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_cannot_connect() {
    let running = Running::start().await;
    let address = running.address;
    let stranger = webhook::self_signed(&["127.0.0.1"]).unwrap();
    let result = post(
        &client_trusting(&stranger.ca_pem),
        address,
        "/validate",
        "application/json",
        &review(hello()),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    // The failed handshake did not hurt the server.
    let (status, _) = post(
        &client_trusting(&running.ca_pem),
        address,
        "/validate",
        "application/json",
        &review(hello()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    running.stop().await;
}

#[test]
fn registrations_point_the_api_server_at_both_endpoints() {
    let registration = Registration::url("https://127.0.0.1:8443", "CA");
    let validating = registration.validating_webhook_configuration();
    let mutating = registration.mutating_webhook_configuration();
    let validating = &validating.webhooks.unwrap()[0];
    let mutating = &mutating.webhooks.unwrap()[0];
    assert_eq!(
        validating.client_config.url.as_deref(),
        Some("https://127.0.0.1:8443/validate")
    );
    assert_eq!(
        mutating.client_config.url.as_deref(),
        Some("https://127.0.0.1:8443/default")
    );
    let resources: Vec<_> = validating
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.resources.iter().flatten())
        .map(String::as_str)
        .collect();
    assert_eq!(
        resources,
        ["services", "configurations", "revisions", "routes"]
    );
}
