//! Revision garbage collection by `config-gc` (Knative's `pkg/reconciler/gc/v2`).
//!
//! [`collectable`] decides, purely, which Revisions of a Configuration go; [`collect`] lists
//! them, decides and deletes. The Configuration reconciler calls [`collect`] on every pass, so
//! a Revision is collected as soon as the labeler marks it `reserve` and the settings allow.
//!
//! The rules, as Knative's:
//! - a Revision is *active*, and never collected, while it is its Configuration's latest
//!   ready Revision, carries `serving.knative.dev/no-gc: "true"`, or is not labelled
//!   `serving.knative.dev/routingState: reserve` by the labeler;
//! - of the non-active ones, `min-non-active-revisions` are always kept;
//! - a non-active one is *stale* once older than `retain-since-create-time` and inactive for
//!   longer than `retain-since-last-active-time` (either check off when `disabled`); stale
//!   ones go, oldest activity first, while more than the minimum remain;
//! - then, of the non-stale ones, the least recently active go until no more than
//!   `max-non-active-revisions` remain.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use knative_core::config::GcConfig;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use crate::apis::serving::{
    REVISION_PRESERVED_ANNOTATION_KEY, ROUTING_STATE_LABEL_KEY,
    ROUTING_STATE_MODIFIED_ANNOTATION_KEY,
};
use crate::apis::{Configuration, Revision};

/// The names of the Revisions of `configuration` to delete now, among `revisions` (all of its
/// Revisions), under `config` at `now`.
pub fn collectable(
    config: &GcConfig,
    configuration: &Configuration,
    revisions: &[Revision],
    now: Timestamp,
) -> Vec<String> {
    let min = usize::try_from(config.min_non_active_revisions).unwrap_or(usize::MAX);
    let max = config
        .max_non_active_revisions
        .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    if max.is_none()
        && config.retain_since_create_time.is_none()
        && config.retain_since_last_active_time.is_none()
    {
        return Vec::new(); // every deletion setting is disabled
    }
    if revisions.len() <= min {
        return Vec::new();
    }
    let latest_ready = configuration
        .status
        .as_ref()
        .and_then(|s| s.configuration.latest_ready_revision_name.as_deref());
    let mut revs: Vec<&Revision> = revisions
        .iter()
        .filter(|r| !is_active(r, latest_ready))
        .collect();
    if revs.len() <= min {
        return Vec::new();
    }
    // Oldest activity first (a stable sort; Knative's sort.Slice is not, ties are rare).
    revs.sort_by_key(|r| last_active(r));

    // Delete stale Revisions, oldest activity first, while more than `min` remain.
    let max_deletions = revs.len() - min;
    let mut doomed = Vec::new();
    let mut kept = Vec::new();
    for rev in &revs {
        if is_stale(config, rev, now) {
            doomed.push(rev.name_any());
            if doomed.len() >= max_deletions {
                return doomed; // as many as may go
            }
        } else {
            kept.push(*rev);
        }
    }
    // Then the least recently active of the others, down to `max`.
    if let Some(max) = max
        && kept.len() > max
    {
        let excess = kept.len() - max;
        doomed.extend(kept[..excess].iter().map(|r| r.name_any()));
    }
    doomed
}

/// Decides with [`collectable`] which of `revisions` (those of `configuration`) to delete, and
/// deletes them with `api` (the Revisions of the Configuration's namespace). Returns the names
/// deleted; a Revision already gone counts as deleted.
///
/// # Errors
/// When the API server refuses a deletion (the others are still attempted).
pub async fn collect(
    api: &Api<Revision>,
    config: &GcConfig,
    configuration: &Configuration,
    revisions: &[Revision],
    now: Timestamp,
) -> Result<Vec<String>, kube::Error> {
    let namespace = configuration.namespace().unwrap_or_default();
    let doomed = collectable(config, configuration, revisions, now);
    let mut first_error = None;
    for name in &doomed {
        tracing::info!(revision = %name, namespace = %namespace, "collecting a stale revision");
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(err) => {
                tracing::warn!(revision = %name, error = %err, "failed to collect a revision");
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(doomed),
    }
}

fn is_active(rev: &Revision, latest_ready: Option<&str>) -> bool {
    if latest_ready == Some(rev.name_any().as_str()) {
        return true; // never the latest ready one, even if the Configuration is not routed
    }
    if rev
        .annotations()
        .get(REVISION_PRESERVED_ANNOTATION_KEY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return true;
    }
    // Anything the labeler has not explicitly marked inactive.
    rev.labels()
        .get(ROUTING_STATE_LABEL_KEY)
        .map(String::as_str)
        != Some("reserve")
}

fn is_stale(config: &GcConfig, rev: &Revision, now: Timestamp) -> bool {
    let (since_create, since_active) = (
        config.retain_since_create_time,
        config.retain_since_last_active_time,
    );
    if since_create.is_none() && since_active.is_none() {
        return false;
    }
    let age =
        |t: Timestamp| -> Duration { now.duration_since(t).try_into().unwrap_or(Duration::ZERO) };
    if let Some(keep) = since_create
        && age(created(rev)) < keep
    {
        return false; // created recently
    }
    if let Some(keep) = since_active
        && age(last_active(rev)) < keep
    {
        return false; // active recently
    }
    true
}

fn created(rev: &Revision) -> Timestamp {
    rev.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_default()
}

/// When the Revision's routing state last changed (`routingStateModified`), else its creation.
fn last_active(rev: &Revision) -> Timestamp {
    rev.annotations()
        .get(ROUTING_STATE_MODIFIED_ANNOTATION_KEY)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .unwrap_or_else(|| created(rev))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;
    use serde_json::json;

    use super::*;
    use crate::apis::serving::CONFIGURATION_LABEL_KEY;

    const HOUR: i64 = 3600;

    fn now() -> Timestamp {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    fn ago(seconds: i64) -> Timestamp {
        now() - SignedDuration::from_secs(seconds)
    }

    /// A Revision created `created` seconds ago, last active `active` seconds ago (None: never
    /// changed routing state), in routing state `state`.
    fn rev(name: &str, created: i64, active: Option<i64>, state: &str) -> Revision {
        let mut r: Revision = serde_json::from_value(json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": { CONFIGURATION_LABEL_KEY: "hello", ROUTING_STATE_LABEL_KEY: state },
            },
            "spec": { "containers": [{ "image": "example.com/hello" }] },
        }))
        .unwrap();
        r.metadata.creation_timestamp = Some(Time(ago(created)));
        if let Some(active) = active {
            r.annotations_mut().insert(
                ROUTING_STATE_MODIFIED_ANNOTATION_KEY.to_owned(),
                ago(active).to_string(),
            );
        }
        r
    }

    fn configuration(latest_ready: Option<&str>) -> Configuration {
        serde_json::from_value(json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Configuration",
            "metadata": { "name": "hello", "namespace": "default" },
            "spec": { "template": { "spec": { "containers": [{ "image": "example.com/hello" }] } } },
            "status": { "latestReadyRevisionName": latest_ready },
        }))
        .unwrap()
    }

    fn gc(min: u64, max: Option<u64>, create: Option<i64>, active: Option<i64>) -> GcConfig {
        GcConfig {
            retain_since_create_time: create.map(|s| Duration::from_secs(s as u64)),
            retain_since_last_active_time: active.map(|s| Duration::from_secs(s as u64)),
            min_non_active_revisions: min,
            max_non_active_revisions: max,
        }
    }

    #[test]
    fn stale_reserve_revisions_beyond_the_minimum_are_collected_oldest_first() {
        let revs = [
            rev("hello-00001", 100 * HOUR, Some(90 * HOUR), "reserve"),
            rev("hello-00002", 80 * HOUR, Some(70 * HOUR), "reserve"),
            rev("hello-00003", 60 * HOUR, Some(50 * HOUR), "reserve"),
            rev("hello-00004", HOUR, None, "active"),
        ];
        let doomed = collectable(
            &gc(1, None, Some(48 * HOUR), Some(15 * HOUR)),
            &configuration(Some("hello-00004")),
            &revs,
            now(),
        );
        assert_eq!(doomed, ["hello-00001", "hello-00002"]);
    }

    #[test]
    fn the_latest_ready_preserved_and_routed_revisions_are_never_collected() {
        let mut preserved = rev("hello-00002", 100 * HOUR, Some(90 * HOUR), "reserve");
        preserved.annotations_mut().insert(
            REVISION_PRESERVED_ANNOTATION_KEY.to_owned(),
            "True".to_owned(),
        );
        let revs = [
            rev("hello-00001", 100 * HOUR, Some(90 * HOUR), "reserve"),
            preserved,
            rev("hello-00003", 100 * HOUR, Some(90 * HOUR), "active"),
            rev("hello-00004", 100 * HOUR, Some(90 * HOUR), "pending"),
        ];
        let doomed = collectable(
            &gc(0, Some(0), Some(HOUR), Some(HOUR)),
            &configuration(Some("hello-00001")),
            &revs,
            now(),
        );
        assert!(doomed.is_empty(), "{doomed:?}");
    }

    #[test]
    fn recently_created_or_recently_active_revisions_are_not_stale() {
        let revs = [
            rev("young", 10 * HOUR, Some(90 * HOUR), "reserve"),
            rev("recently-active", 100 * HOUR, Some(5 * HOUR), "reserve"),
            rev("stale", 100 * HOUR, Some(90 * HOUR), "reserve"),
        ];
        let doomed = collectable(
            &gc(0, None, Some(48 * HOUR), Some(15 * HOUR)),
            &configuration(None),
            &revs,
            now(),
        );
        assert_eq!(doomed, ["stale"]);
    }

    #[test]
    fn a_disabled_time_check_does_not_protect_a_revision() {
        let revs = [rev("young", 10 * HOUR, Some(90 * HOUR), "reserve")];
        let doomed = collectable(
            &gc(0, None, None, Some(15 * HOUR)),
            &configuration(None),
            &revs,
            now(),
        );
        assert_eq!(doomed, ["young"]);
    }

    #[test]
    fn the_maximum_removes_the_least_recently_active_of_the_fresh_ones() {
        let revs = [
            rev("a", 5 * HOUR, Some(4 * HOUR), "reserve"),
            rev("b", 5 * HOUR, Some(3 * HOUR), "reserve"),
            rev("c", 5 * HOUR, Some(2 * HOUR), "reserve"),
            rev("d", 5 * HOUR, Some(HOUR), "reserve"),
        ];
        let doomed = collectable(
            &gc(0, Some(2), Some(48 * HOUR), Some(15 * HOUR)),
            &configuration(None),
            &revs,
            now(),
        );
        assert_eq!(doomed, ["a", "b"]);
    }

    #[test]
    fn everything_disabled_collects_nothing() {
        let revs = [rev("old", 1000 * HOUR, Some(1000 * HOUR), "reserve")];
        let doomed = collectable(&gc(0, None, None, None), &configuration(None), &revs, now());
        assert!(doomed.is_empty());
    }

    #[test]
    fn no_more_than_the_minimum_of_non_active_revisions_collects_nothing() {
        let revs = [
            rev("a", 1000 * HOUR, Some(1000 * HOUR), "reserve"),
            rev("b", 1000 * HOUR, Some(1000 * HOUR), "reserve"),
            rev("live", 1000 * HOUR, None, "active"),
        ];
        let doomed = collectable(
            &gc(2, Some(0), Some(HOUR), Some(HOUR)),
            &configuration(None),
            &revs,
            now(),
        );
        assert!(doomed.is_empty(), "{doomed:?}");
    }
}
