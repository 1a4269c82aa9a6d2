//! The admission webhook registered with a real kube-apiserver: invalid Services are refused
//! with their field errors, valid ones are stored defaulted.
//!
//! The webhook runs in the test on 127.0.0.1 with a generated certificate; its configurations
//! select only the test's namespace (by a label), so other tests never reach it, and they are
//! deleted at the end whether the test passes or not.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::Service;
use knative_serving::webhook::{self, Kind, Registration, Webhook, WebhookServer};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SELECTOR_LABEL: &str = "webhook-test.knative-rs.dev/namespace";

async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in knative_serving::crds() {
        api.patch(
            &crd.name_any(),
            &PatchParams::apply("knative-webhook-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("the API server refused {}: {e}", crd.name_any()));
    }
    for crd in knative_serving::crds() {
        let name = crd.name_any();
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
        .unwrap();
    }
}

fn services(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<Service>(&()),
    )
}

fn service(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("a Service")
}

fn hello_spec() -> Value {
    json!({ "template": { "spec": { "containers": [{
        "image": "ghcr.io/knative/helloworld-go:latest",
        "ports": [{ "containerPort": 8080 }],
        "env": [{ "name": "TARGET", "value": "World" }],
    }] } } })
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..PostParams::default()
    }
}

/// Retries `attempt` until it returns `Some`: the API server picks up new webhook
/// configurations from a watch, a moment after they are created.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(done) = attempt().await {
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_api_server_refuses_invalid_services_and_stores_valid_ones_defaulted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "webhook").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { SELECTOR_LABEL: ns.name } } })),
        )
        .await
        .expect("label the namespace");

    let certs = webhook::self_signed(&["127.0.0.1"]).expect("a certificate");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        WebhookServer::new(Webhook::default(), certs.tls_config().unwrap()).serve(
            listener,
            async {
                let _ = stopped.await;
            },
        ),
    );

    let mut registration = Registration::url(&format!("https://127.0.0.1:{port}"), &certs.ca_pem);
    registration.validating_name = format!("validation.{}.webhook-test.knative-rs.dev", ns.name);
    registration.defaulting_name = format!("defaulting.{}.webhook-test.knative-rs.dev", ns.name);
    registration.kinds = vec![Kind::Service];
    registration.namespace_selector = Some(LabelSelector {
        match_labels: Some([(SELECTOR_LABEL.to_owned(), ns.name.clone())].into()),
        ..LabelSelector::default()
    });

    // Whatever happens from here on, the configurations are deleted: the test body runs in
    // its own task so that a failed assertion comes back here as an error.
    let body = {
        let client = client.clone();
        let namespace = ns.name.clone();
        let registration = registration.clone();
        tokio::spawn(async move {
            registration
                .apply(&client)
                .await
                .expect("register the webhooks");
            exercise(&client, &namespace).await;
        })
    };
    let outcome = body.await;

    let deleted = registration.delete(&client).await;
    ns.delete().await;
    let _ = stop.send(());
    let _ = server.await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
    deleted.expect("the webhook configurations are deleted");
    // A second deletion finds nothing, and that is fine.
    registration
        .delete(&client)
        .await
        .expect("deleting is idempotent");
    let remaining = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(&registration.validating_name)
        .await
        .unwrap();
    assert!(remaining.is_none());
    let remaining = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get_opt(&registration.defaulting_name)
        .await
        .unwrap();
    assert!(remaining.is_none());
}

async fn exercise(client: &Client, namespace: &str) {
    let api = &services(client, namespace);

    // An invalid Service: refused by the validating webhook, with the field path.
    let split = &service(
        "split",
        json!({
            "template": hello_spec()["template"].clone(),
            "traffic": [{ "latestRevision": true, "percent": 90 }],
        }),
    );
    let refusal = eventually(
        "the validating webhook refuses an invalid Service",
        || async move { api.create(&dry_run(), split).await.err() },
    )
    .await;
    let kube::Error::Api(status) = &refusal else {
        panic!("not a refusal by the API server: {refusal}")
    };
    assert_eq!(status.code, 400, "{status:?}");
    assert!(
        status
            .message
            .ends_with("denied the request: Traffic targets sum to 90, want 100: spec.traffic"),
        "{}",
        status.message
    );
    let real = api.create(&PostParams::default(), split).await;
    assert!(real.is_err(), "stored an invalid Service: {real:?}");

    // A Service that does not even decode: refused, naming the field.
    let mut malformed = service("malformed", hello_spec());
    malformed.data["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        "8080".into();
    let refusal = api
        .create(&PostParams::default(), &malformed)
        .await
        .expect_err("a port that is not a number");
    assert!(
        refusal.to_string().contains(
            r#"invalid type: string "8080", expected an integer: spec.template.spec.containers[0].ports[0].containerPort"#
        ),
        "{refusal}"
    );

    // A valid Service: stored with Knative's defaults.
    let hello = &service("hello", hello_spec());
    eventually(
        "the defaulting webhook patches a valid Service",
        || async move {
            let created = api
                .create(&dry_run(), hello)
                .await
                .expect("a valid Service");
            (created.data["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container")
                .then_some(())
        },
    )
    .await;
    api.create(&PostParams::default(), hello)
        .await
        .expect("a valid Service is stored");
    let stored = api.get("hello").await.expect("read back");
    let spec = &stored.data["spec"];
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "user-container");
    assert_eq!(container["image"], "ghcr.io/knative/helloworld-go:latest");
    assert_eq!(
        container["env"],
        json!([{ "name": "TARGET", "value": "World" }])
    );
    assert_eq!(spec["template"]["spec"]["timeoutSeconds"], 300);
    assert_eq!(spec["template"]["spec"]["containerConcurrency"], 0);
    assert_eq!(
        spec["traffic"],
        json!([{ "latestRevision": true, "percent": 100 }])
    );
    let annotations = stored.annotations();
    let creator = annotations
        .get("serving.knative.dev/creator")
        .expect("the creator is recorded");
    assert!(!creator.is_empty());
    assert_eq!(
        annotations.get("serving.knative.dev/lastModifier"),
        Some(creator)
    );

    // Its stored form is what the library call gives, so a later update changes nothing.
    let mut update = stored.clone();
    update.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
    let updated = api
        .replace("hello", &PostParams::default(), &update)
        .await
        .expect("an update that keeps the spec");
    assert_eq!(updated.data["spec"], stored.data["spec"]);
    assert_eq!(updated.annotations(), stored.annotations());

    // The creator cannot be rewritten.
    let mut forged = updated.clone();
    forged.annotations_mut().insert(
        "serving.knative.dev/creator".to_owned(),
        "someone-else".to_owned(),
    );
    let refusal = api
        .replace("hello", &PostParams::default(), &forged)
        .await
        .expect_err("the creator is immutable");
    assert!(
        refusal.to_string().contains(
            "annotation value is immutable: metadata.annotations.serving.knative.dev/creator"
        ),
        "{refusal}"
    );
}
