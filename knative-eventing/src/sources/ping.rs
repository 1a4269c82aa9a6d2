//! The PingSource adapter: a CloudEvent of type `dev.knative.sources.ping` on a cron schedule.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use knative_eventing::sources::ping::PingSchedule;
//!
//! let schedule = PingSchedule::parse("0 9 * * MON-FRI", "Europe/Paris").unwrap();
//! let now: DateTime<Utc> = "2026-03-06T09:30:00Z".parse().unwrap(); // a Friday, 10:30 in Paris
//! let next = schedule.next_after(now).unwrap();
//! assert_eq!(next.to_rfc3339(), "2026-03-09T08:00:00+00:00"); // Monday 09:00 in Paris
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use http::Uri;

use crate::apis::sources::ping::PingSource;
use crate::delivery::{DeliveryPolicy, Dispatcher, Outcome};
use crate::sources::adapter::{AdapterEnv, AdapterEnvError};

/// The type of every PingSource event.
pub const PING_EVENT_TYPE: &str = "dev.knative.sources.ping";

/// When a PingSource fires: a standard five-field cron expression (or a descriptor such as
/// `@hourly`, or `@every 30s`) read in a time zone.
#[derive(Debug, Clone)]
pub struct PingSchedule {
    kind: ScheduleKind,
    timezone: Tz,
}

#[derive(Debug, Clone)]
enum ScheduleKind {
    Cron(Box<croner::Cron>),
    Every(Duration),
}

/// Why a PingSource cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// The schedule is not a standard cron expression.
    #[error("invalid value: {schedule}: spec.schedule: {reason}")]
    Schedule {
        /// The schedule.
        schedule: String,
        /// Why.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("invalid value: {0}: spec.timezone")]
    Timezone(String),
    /// `dataBase64` is not base64.
    #[error("invalid value: spec.dataBase64: {0}")]
    DataBase64(String),
    /// The sink URI is missing or invalid.
    #[error("the PingSource has no valid sink URI (status.sinkUri): {0}")]
    Sink(String),
    /// The adapter's environment is not usable.
    #[error(transparent)]
    Env(#[from] AdapterEnvError),
}

impl PingSchedule {
    /// Parses `schedule` in `timezone` (an IANA name; empty means UTC). A `CRON_TZ=` or `TZ=`
    /// prefix in the schedule overrides the time zone, as robfig/cron allows.
    pub fn parse(schedule: &str, timezone: &str) -> Result<Self, PingError> {
        let mut schedule = schedule.trim();
        let mut timezone = timezone.trim();
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = schedule.strip_prefix(prefix) {
                let (tz, cron) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                timezone = tz;
                schedule = cron.trim();
            }
        }
        let timezone = if timezone.is_empty() {
            Tz::UTC
        } else {
            Tz::from_str(timezone).map_err(|_| PingError::Timezone(timezone.to_owned()))?
        };
        let invalid = |reason: String| PingError::Schedule {
            schedule: schedule.to_owned(),
            reason,
        };
        let kind = if let Some(every) = schedule.strip_prefix("@every") {
            ScheduleKind::Every(
                parse_go_duration(every.trim())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| invalid(format!("failed to parse duration {}", every.trim())))?,
            )
        } else {
            if !schedule.starts_with('@') && schedule.split_whitespace().count() != 5 {
                return Err(invalid("expected exactly 5 fields".to_owned()));
            }
            ScheduleKind::Cron(Box::new(
                croner::Cron::from_str(schedule).map_err(|e| invalid(e.to_string()))?,
            ))
        };
        Ok(PingSchedule { kind, timezone })
    }

    /// The first firing strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            ScheduleKind::Every(every) => {
                // robfig/cron: the next activation is `now + every`, truncated to the second.
                let next = now + chrono::Duration::from_std(*every).ok()?;
                DateTime::from_timestamp(next.timestamp(), 0)
            }
            ScheduleKind::Cron(cron) => cron
                .find_next_occurrence(&now.with_timezone(&self.timezone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// A PingSource as its adapter runs it.
#[derive(Debug, Clone)]
pub struct PingAdapter {
    /// The event source: `/apis/v1/namespaces/<namespace>/pingsources/<name>`.
    pub source: String,
    /// When to fire.
    pub schedule: PingSchedule,
    /// The data's media type, if any.
    pub content_type: Option<String>,
    /// The event data (`data`, or `dataBase64` decoded).
    pub data: Option<Vec<u8>>,
    /// Extensions added to every event (`ceOverrides.extensions`).
    pub extensions: BTreeMap<String, String>,
    /// Where events go.
    pub sink: Uri,
    /// How they are delivered.
    pub delivery: DeliveryPolicy,
}

impl PingAdapter {
    /// The adapter of `source`, sending to `status.sinkUri` (or a plain `spec.sink.uri`).
    pub fn from_source(source: &PingSource) -> Result<Self, PingError> {
        let spec = &source.spec;
        let namespace = source.metadata.namespace.as_deref().unwrap_or("default");
        let name = source.metadata.name.as_deref().unwrap_or_default();
        let sink = source
            .status
            .as_ref()
            .and_then(|s| s.sink_uri.clone())
            .or_else(|| spec.source.sink.uri.clone())
            .ok_or_else(|| PingError::Sink("not resolved".to_owned()))?;
        let sink = sink
            .parse::<Uri>()
            .map_err(|_| PingError::Sink(sink.clone()))?;
        Self::new(
            ping_source_uri(namespace, name),
            PingSettings {
                schedule: &spec.schedule,
                timezone: &spec.timezone,
                content_type: &spec.content_type,
                data: &spec.data,
                data_base64: &spec.data_base64,
            },
            spec.source
                .ce_overrides
                .as_ref()
                .map(|o| o.extensions.clone())
                .unwrap_or_default(),
            sink,
        )
    }

    /// The adapter a `pingsource-<name>` Deployment runs, configured by its environment as the
    /// PingSource reconciler writes it: `K_SINK`, `K_CE_OVERRIDES` (see
    /// [`AdapterEnv`]), `PING_SCHEDULE`, `PING_TIMEZONE`, `PING_CONTENT_TYPE`, `PING_DATA` or
    /// `PING_DATA_BASE64`, and `K_SOURCE` (else `NAMESPACE` and `NAME`) for the events' source.
    ///
    /// ```
    /// use knative_eventing::sources::ping::PingAdapter;
    ///
    /// let adapter = PingAdapter::from_env(|name| {
    ///     match name {
    ///         "K_SINK" => Some("http://127.0.0.1:8080/"),
    ///         "K_CE_OVERRIDES" => Some(r#"{"extensions": {"team": "blue"}}"#),
    ///         "PING_SCHEDULE" => Some("@every 10s"),
    ///         "K_SOURCE" => Some("/apis/v1/namespaces/demo/pingsources/tick"),
    ///         _ => None,
    ///     }
    ///     .map(str::to_owned)
    /// })
    /// .unwrap();
    /// assert_eq!(adapter.extensions["team"], "blue");
    /// ```
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PingError> {
        let env = AdapterEnv::from_lookup(&lookup)?;
        let source = match (
            lookup("K_SOURCE").filter(|s| !s.is_empty()),
            &env.namespace,
            &env.name,
        ) {
            (Some(source), _, _) => source,
            (None, Some(namespace), Some(name)) => ping_source_uri(namespace, name),
            (None, _, _) => return Err(PingError::Env(AdapterEnvError::Missing("K_SOURCE"))),
        };
        let var = |name: &str| lookup(name).unwrap_or_default();
        Self::new(
            source,
            PingSettings {
                schedule: &var("PING_SCHEDULE"),
                timezone: &var("PING_TIMEZONE"),
                content_type: &var("PING_CONTENT_TYPE"),
                data: &var("PING_DATA"),
                data_base64: &var("PING_DATA_BASE64"),
            },
            env.overrides.extensions,
            env.sink,
        )
    }

    fn new(
        source: String,
        settings: PingSettings<'_>,
        extensions: BTreeMap<String, String>,
        sink: Uri,
    ) -> Result<Self, PingError> {
        let schedule = if settings.schedule.trim().is_empty() {
            "* * * * *"
        } else {
            settings.schedule
        };
        let data = if !settings.data_base64.is_empty() {
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(settings.data_base64.trim())
                    .map_err(|e| PingError::DataBase64(e.to_string()))?,
            )
        } else if !settings.data.is_empty() {
            Some(settings.data.as_bytes().to_vec())
        } else {
            None
        };
        Ok(PingAdapter {
            source,
            schedule: PingSchedule::parse(schedule, settings.timezone)?,
            content_type: (!settings.content_type.is_empty())
                .then(|| settings.content_type.to_owned()),
            data,
            extensions,
            sink,
            delivery: DeliveryPolicy::default(),
        })
    }

    /// The event fired at `at`, with event id `id`.
    pub fn event(&self, at: DateTime<Utc>, id: &str) -> Event {
        let mut builder = EventBuilderV10::new()
            .id(id)
            .source(self.source.as_str())
            .ty(PING_EVENT_TYPE)
            .time(at);
        if let Some(data) = &self.data {
            let content_type = self.content_type.as_deref().unwrap_or("text/plain");
            builder = if content_type.starts_with("application/json") {
                match serde_json::from_slice::<serde_json::Value>(data) {
                    Ok(json) => builder.data(content_type, json),
                    Err(_) => builder.data(content_type, data.clone()),
                }
            } else {
                builder.data(content_type, data.clone())
            };
        }
        for (name, value) in &self.extensions {
            builder = builder.extension(name, value.as_str());
        }
        // Every attribute set above is valid: id, source and type are non-empty.
        builder.build().unwrap_or_else(|_| Event::default())
    }

    /// Fires on schedule until `shutdown` completes; each event is delivered with the adapter's
    /// delivery policy and its outcome logged.
    pub async fn run(&self, dispatcher: &Dispatcher, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let now = Utc::now();
            let Some(next) = self.schedule.next_after(now) else {
                tracing::error!(source = %self.source, "the schedule never fires again");
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
            let event = self.event(next, &uuid::Uuid::new_v4().to_string());
            match dispatcher.deliver(&event, &self.sink, &self.delivery).await {
                Outcome::Delivered { .. } => {
                    tracing::debug!(source = %self.source, at = %next, "ping delivered");
                }
                other => {
                    tracing::error!(source = %self.source, at = %next, ?other, "ping not delivered")
                }
            }
        }
    }
}

/// Runs every PingSource of `namespace` (all namespaces when `None`) on the API server, as
/// Knative's multi-tenant `mt-ping` does: one adapter per PingSource whose sink resolved
/// (`status.sinkUri`, or a plain `spec.sink.uri`), restarted when the PingSource changes and
/// stopped when it is deleted, until the watch ends. A PingSource that cannot run (an invalid
/// schedule, no sink yet) is logged and skipped until it changes.
pub async fn run_from_api_server(
    client: kube::Client,
    namespace: Option<String>,
    dispatcher: Dispatcher,
) {
    use futures::StreamExt;
    use kube::ResourceExt;
    use kube::runtime::watcher;

    let api: kube::Api<PingSource> = match &namespace {
        Some(ns) => kube::Api::namespaced(client, ns),
        None => kube::Api::all(client),
    };
    // Per PingSource: what its adapter was made from, and the adapter's task.
    let mut running: HashMap<(String, String), (String, tokio::task::AbortHandle)> = HashMap::new();
    let mut listed: HashSet<(String, String)> = HashSet::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let (source, initial) = match event {
            Ok(watcher::Event::Apply(source)) => (source, false),
            Ok(watcher::Event::InitApply(source)) => (source, true),
            Ok(watcher::Event::Delete(source)) => {
                let key = (source.namespace().unwrap_or_default(), source.name_any());
                if let Some((_, task)) = running.remove(&key) {
                    task.abort();
                }
                continue;
            }
            Ok(watcher::Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                running.retain(|key, (_, task)| {
                    let keep = listed.contains(key);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "PingSource watch error");
                continue;
            }
        };
        let key = (source.namespace().unwrap_or_default(), source.name_any());
        if initial {
            listed.insert(key.clone());
        }
        let made_from = serde_json::to_string(&(
            &source.spec,
            source.status.as_ref().and_then(|s| s.sink_uri.as_ref()),
        ))
        .unwrap_or_default();
        if running
            .get(&key)
            .is_some_and(|(from, _)| *from == made_from)
        {
            continue;
        }
        if let Some((_, task)) = running.remove(&key) {
            task.abort();
        }
        match PingAdapter::from_source(&source) {
            Ok(adapter) => {
                tracing::info!(source = %adapter.source, sink = %adapter.sink, "ping source");
                let dispatcher = dispatcher.clone();
                let task = tokio::spawn(async move {
                    adapter.run(&dispatcher, std::future::pending()).await;
                });
                running.insert(key, (made_from, task.abort_handle()));
            }
            Err(e) => {
                tracing::warn!(namespace = %key.0, name = %key.1, error = %e, "PingSource not run")
            }
        }
    }
    for (_, task) in running.into_values() {
        task.abort();
    }
}

/// A PingSource's settings, from its spec or from its adapter's environment.
struct PingSettings<'a> {
    schedule: &'a str,
    timezone: &'a str,
    content_type: &'a str,
    data: &'a str,
    data_base64: &'a str,
}

/// The CloudEvents `source` of PingSource `namespace/name`.
fn ping_source_uri(namespace: &str, name: &str) -> String {
    format!("/apis/v1/namespaces/{namespace}/pingsources/{name}")
}

/// Parses a Go duration (`1h30m`, `90s`, `500ms`), as `@every` takes.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * seconds).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn ping(json: serde_json::Value) -> PingSource {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_minute_fires_on_the_next_minute() {
        let s = PingSchedule::parse("* * * * *", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:00:30Z")),
            Some(at("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-01-01T10:01:00Z")),
            Some(at("2026-01-01T10:02:00Z"))
        );
    }

    #[test]
    fn the_schedule_is_read_in_its_time_zone() {
        let s = PingSchedule::parse("0 2 * * *", "America/New_York").unwrap();
        // 02:00 in New York is 07:00 UTC in winter.
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T07:00:00Z"))
        );
    }

    #[test]
    fn a_cron_tz_prefix_overrides_the_time_zone() {
        let s = PingSchedule::parse("CRON_TZ=Asia/Tokyo 0 9 * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn days_of_the_week_count_from_sunday_zero() {
        let s = PingSchedule::parse("0 0 * * 0", "").unwrap();
        // 2026-01-01 is a Thursday; the next Sunday is the 4th.
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-04T00:00:00Z"))
        );
    }

    #[test]
    fn descriptors_and_every_are_accepted() {
        let hourly = PingSchedule::parse("@hourly", "").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-01-01T10:20:00Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        let every = PingSchedule::parse("@every 1m30s", "").unwrap();
        assert_eq!(
            every.next_after(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T10:01:30Z"))
        );
    }

    #[test]
    fn invalid_schedules_and_zones_are_rejected() {
        assert!(matches!(
            PingSchedule::parse("* * * *", ""),
            Err(PingError::Schedule { .. })
        ));
        assert!(matches!(
            PingSchedule::parse("61 * * * *", ""),
            Err(PingError::Schedule { .. })
        ));
        assert_eq!(
            PingSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err(),
            PingError::Timezone("Mars/Olympus".into())
        );
    }

    #[test]
    fn a_ping_event_carries_knatives_attributes_and_data() {
        let source = ping(serde_json::json!({
            "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "test-ping", "namespace": "demo"},
            "spec": {
                "schedule": "*/2 * * * *",
                "contentType": "application/json",
                "data": "{\"message\": \"Hello world!\"}",
                "ceOverrides": {"extensions": {"team": "blue"}},
                "sink": {"uri": "http://display.demo.svc/"}
            }
        }));
        let adapter = PingAdapter::from_source(&source).unwrap();
        let event = adapter.event(at("2026-01-01T10:02:00Z"), "id-1");
        assert_eq!(event.ty(), PING_EVENT_TYPE);
        assert_eq!(
            event.source(),
            "/apis/v1/namespaces/demo/pingsources/test-ping"
        );
        assert_eq!(event.time(), Some(&at("2026-01-01T10:02:00Z")));
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert_eq!(
            event.data(),
            Some(&cloudevents::Data::Json(
                serde_json::json!({"message": "Hello world!"})
            ))
        );
        assert_eq!(event.extension("team").unwrap().to_string(), "blue");
        assert_eq!(adapter.sink, "http://display.demo.svc/");
    }

    #[test]
    fn data_base64_is_decoded_into_binary_data() {
        let source = ping(serde_json::json!({
            "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "b", "namespace": "demo"},
            "spec": {"dataBase64": "aGVsbG8=", "contentType": "application/octet-stream",
                     "sink": {"uri": "http://x/"}}
        }));
        let event = PingAdapter::from_source(&source)
            .unwrap()
            .event(at("2026-01-01T00:00:00Z"), "1");
        assert_eq!(
            event.data(),
            Some(&cloudevents::Data::Binary(b"hello".to_vec()))
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("3d"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
