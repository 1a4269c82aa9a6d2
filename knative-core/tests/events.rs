//! Events as Knative's recorder publishes them: different notes are different Events, an exact
//! repeat within the series window counts into the first one's series.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use knative_core::reconciler::EventPublisher;
use knative_core::testing::{RecordingApi, Verb};
use kube::runtime::events::EventType;

fn regarding() -> ObjectReference {
    ObjectReference {
        api_version: Some("serving.knative.dev/v1".into()),
        kind: Some("Configuration".into()),
        name: Some("hello".into()),
        namespace: Some("ns".into()),
        uid: Some("uid-hello".into()),
        ..ObjectReference::default()
    }
}

fn at(seconds: i64) -> Timestamp {
    "2026-11-28T12:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_secs(seconds)
}

fn event_writes(api: &RecordingApi) -> Vec<(Verb, Option<String>)> {
    api.actions()
        .into_iter()
        .filter(|a| a.resource == "events" && a.code < 300)
        .map(|a| {
            (
                a.verb,
                a.body.and_then(|b| b["note"].as_str().map(str::to_owned)),
            )
        })
        .collect()
}

#[tokio::test]
async fn events_with_the_same_reason_but_different_notes_are_separate_events() {
    let api = RecordingApi::new();
    let publisher = EventPublisher::new(api.client(), "configuration-controller", None);
    for note in [
        "Created Revision \"hello-00001\"",
        "Created Revision \"hello-00002\"",
    ] {
        publisher
            .publish(
                &regarding(),
                EventType::Normal,
                "Created",
                "Reconcile",
                note,
                at(0),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        event_writes(&api),
        [
            (
                Verb::Create,
                Some("Created Revision \"hello-00001\"".into())
            ),
            (
                Verb::Create,
                Some("Created Revision \"hello-00002\"".into())
            ),
        ]
    );
}

#[tokio::test]
async fn an_exact_repeat_counts_into_the_series_of_the_first() {
    let api = RecordingApi::new();
    let publisher = EventPublisher::new(api.client(), "configuration-controller", None);
    for second in [0, 10, 20] {
        publisher
            .publish(
                &regarding(),
                EventType::Warning,
                "InternalError",
                "Reconcile",
                "boom",
                at(second),
            )
            .await
            .unwrap();
    }
    let writes = event_writes(&api);
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[0].0, Verb::Create);
    assert_eq!(writes[1].0, Verb::Patch);
    assert_eq!(writes[2].0, Verb::Patch);
    let last = api
        .actions()
        .into_iter()
        .rfind(|a| a.resource == "events")
        .and_then(|a| a.body)
        .unwrap();
    assert_eq!(last["series"]["count"], 3);
}

#[tokio::test]
async fn a_repeat_after_the_series_window_is_a_new_event() {
    let api = RecordingApi::new();
    let publisher = EventPublisher::new(api.client(), "configuration-controller", None);
    for second in [0, 7 * 60] {
        publisher
            .publish(
                &regarding(),
                EventType::Warning,
                "InternalError",
                "Reconcile",
                "boom",
                at(second),
            )
            .await
            .unwrap();
    }
    let verbs: Vec<Verb> = event_writes(&api).into_iter().map(|(v, _)| v).collect();
    assert_eq!(verbs, [Verb::Create, Verb::Create]);
}
