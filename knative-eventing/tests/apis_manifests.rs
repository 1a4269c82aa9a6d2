//! The manifests of Knative's Eventing documentation (copies under
//! `examples/manifests/eventing/`) decode, default and validate unchanged.

use std::path::PathBuf;

use knative_eventing::apis::Defaults;
use knative_eventing::apis::check::check;

fn manifests() -> Vec<(String, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests/eventing");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the manifests directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), value)
        })
        .collect()
}

#[test]
fn every_documented_manifest_validates() {
    let manifests = manifests();
    assert!(manifests.len() >= 18, "found only {}", manifests.len());
    for (file, object) in manifests {
        match check(&object, &Defaults::default()) {
            None => panic!("{file}: not an Eventing kind"),
            Some(Err(e)) => panic!("{file}: {e}"),
            Some(Ok(_)) => {}
        }
    }
}

#[test]
fn documented_manifests_cover_every_kind_the_issue_names() {
    let kinds: std::collections::BTreeSet<String> = manifests()
        .into_iter()
        .map(|(_, o)| o["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "Broker",
        "Trigger",
        "Channel",
        "Subscription",
        "Sequence",
        "Parallel",
        "PingSource",
        "ApiServerSource",
        "ContainerSource",
        "SinkBinding",
        "EventType",
    ] {
        assert!(kinds.contains(kind), "no manifest of kind {kind}");
    }
}

#[test]
fn defaulting_a_documented_broker_sets_knatives_class_and_config() {
    let (_, object) = manifests()
        .into_iter()
        .find(|(f, _)| f == "broker-default.yaml")
        .unwrap();
    let defaulted = check(&object, &Defaults::default()).unwrap().unwrap();
    assert_eq!(
        defaulted["metadata"]["annotations"]["eventing.knative.dev/broker.class"],
        "MTChannelBasedBroker"
    );
    assert_eq!(
        defaulted["spec"]["config"],
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "knative-eventing",
            "name": "config-br-default-channel"
        })
    );
}
