//! Publishing `events.k8s.io/v1` Events for reconciled objects.
//!
//! kube's `Recorder` folds every Event with the same type, reason and action on an object into
//! one series, whatever its note says, so "Created Revision hello-00002" would only bump the
//! count of "Created Revision hello-00001". Knative's recorder (client-go's) keeps Events with
//! different messages apart and only counts repeats of the same one. [`EventPublisher`] does
//! that: an Event repeated within [`SERIES_WINDOW`] (same type, reason, action, note and
//! object) becomes a series on the first one; anything else is a new Event.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;

/// How long a repeated Event keeps counting into the series of the first (as kube's and
/// client-go's: 6 minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two Events the same: type, reason, action, note and the object they regard.
#[derive(Hash)]
struct Key<'a> {
    warning: bool,
    reason: &'a str,
    action: &'a str,
    note: &'a str,
    regarding: [Option<&'a str>; 4],
}

/// An Event published lately: its name, its series count, when it was last observed.
type Recent = (String, i32, Timestamp);

/// Creates Events on behalf of one controller, counting exact repeats into series.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    /// The Events published lately, by the hash of their [`Key`] (64 bits, keyed anew in each
    /// process: a thousand objects' Events took 4 MB with the keys' strings kept). Two different
    /// Events with the same hash would share a series; the odds are 1 in 2^64 per pair.
    recent: Arc<Mutex<HashMap<u64, Recent>>>,
    hasher: RandomState,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher reporting as `controller` (and `instance`, default: the controller).
    pub fn new(client: Client, controller: impl Into<String>, instance: Option<String>) -> Self {
        let controller = controller.into();
        Self {
            instance: instance.unwrap_or_else(|| controller.clone()),
            client,
            controller,
            recent: Arc::default(),
            hasher: RandomState::new(),
        }
    }

    /// Publishes an Event about `regarding` at `now`: a new Event, or one more in the series of
    /// the identical Event published less than [`SERIES_WINDOW`] ago.
    ///
    /// # Errors
    /// When the API server refuses the Event.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        let warning = matches!(type_, EventType::Warning);
        let key = self.hasher.hash_one(Key {
            warning,
            reason,
            action,
            note,
            regarding: [
                regarding.namespace.as_deref(),
                regarding.kind.as_deref(),
                regarding.name.as_deref(),
                regarding.uid.as_deref(),
            ],
        });
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let window = SignedDuration::try_from(SERIES_WINDOW).unwrap_or(SignedDuration::MAX);
        let repeat = {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|_, (_, _, last)| *last + window > now);
            recent.get_mut(&key).map(|entry| {
                entry.1 += 1;
                entry.2 = now;
                (entry.0.clone(), entry.1)
            })
        };
        let mut event = K8sEvent {
            metadata: ObjectMeta {
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(reason.to_owned()),
            action: Some(action.to_owned()),
            note: Some(note.to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        if let Some((name, count)) = repeat {
            event.series = Some(EventSeries {
                count,
                last_observed_time: MicroTime(now),
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&event))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (expired or deleted): start a new Event.
                Err(kube::Error::Api(s)) if s.is_not_found() => event.series = None,
                Err(err) => return Err(err),
            }
        }
        // Named as client-go names Events: `<object>.<event time in hex nanoseconds>` (1.20's
        // API server refuses a generateName ending in a dot).
        let base = regarding.name.as_deref().unwrap_or(&self.controller);
        let mut nanos = now.as_nanosecond();
        let name = loop {
            let name = format!("{base}.{nanos:x}");
            event.metadata.name = Some(name.clone());
            match api.create(&PostParams::default(), &event).await {
                Ok(_) => break name,
                Err(kube::Error::Api(s)) if s.is_already_exists() => nanos += 1,
                Err(err) => return Err(err),
            }
        };
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (name, 1, now));
        Ok(())
    }
}
