//! CloudEvents over HTTP: decoding requests and responses, encoding outgoing events.
//!
//! Decoding is the `cloudevents-sdk` crate's HTTP binding (`cloudevents::binding::http::to_event`,
//! built on `http` 1, so it serves hyper 1 directly); this module adds the checks the SDK leaves
//! out and turns its errors into clear 400 reasons. Encoding maps the SDK's `Event` attributes to
//! headers directly (see [`encode`]), and uses the SDK's serde form for structured mode.

use bytes::Bytes;
use cloudevents::binding::http::to_event;
use cloudevents::event::AttributeValue;
use cloudevents::message::Error as MessageError;
use cloudevents::{AttributesReader, Data, Event};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// The HTTP content mode an event is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// Attributes in `ce-*` headers, data as the body (Knative's default).
    #[default]
    Binary,
    /// The whole event as `application/cloudevents+json`.
    Structured,
}

/// Why an HTTP message is not a valid CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Neither binary nor structured mode.
    #[error(
        "not a CloudEvent: expected a ce-specversion header (binary mode) or content-type \
         application/cloudevents+json (structured mode)"
    )]
    NotAnEvent,
    /// The SDK rejected the event (missing or malformed attribute, bad JSON, unknown version).
    #[error("malformed CloudEvent: {0}")]
    Malformed(String),
    /// A required attribute is present but empty.
    #[error("malformed CloudEvent: required attribute {0} is empty")]
    EmptyAttribute(&'static str),
}

/// Decodes an HTTP request or response (headers and body) into an event, in either mode.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Event, DecodeError> {
    let structured = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/cloudevents+json"));
    if !structured && !headers.contains_key("ce-specversion") {
        return Err(DecodeError::NotAnEvent);
    }
    let event =
        to_event(headers, Vec::from(body)).map_err(|e| DecodeError::Malformed(message(&e)))?;
    for (name, value) in [("id", event.id()), ("type", event.ty())] {
        if value.is_empty() {
            return Err(DecodeError::EmptyAttribute(name));
        }
    }
    if event.source().is_empty() {
        return Err(DecodeError::EmptyAttribute("source"));
    }
    Ok(event)
}

/// Whether an HTTP message carries a CloudEvent at all (a reply is optional).
pub fn carries_event(headers: &HeaderMap) -> bool {
    // A constant name: looking up by `&str` would parse it on every call.
    const SPEC_VERSION: http::HeaderName = http::HeaderName::from_static("ce-specversion");
    headers.contains_key(SPEC_VERSION)
        || headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/cloudevents+json"))
}

/// Encodes `event` as HTTP headers and body. Binary mode falls back to structured mode when an
/// attribute cannot be a header value (non-ASCII text), so no event is unsendable.
pub fn encode(event: &Event, mode: ContentMode) -> (HeaderMap, Bytes) {
    if mode == ContentMode::Binary
        && let Some(encoded) = encode_binary(event)
    {
        return encoded;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents+json"),
    );
    // An `Event` always serialises: its attributes are typed and its data is JSON, text or bytes.
    let body = serde_json::to_vec(event).unwrap_or_default();
    (headers, Bytes::from(body))
}

/// The binary-mode mapping of the CloudEvents HTTP binding, over the SDK's attribute iterators
/// (the SDK's own `Serializer` does the same through `Rc<RefCell<dyn Builder>>` and a clone of
/// the event; this is the hot path of every data plane). `None` when a value is not visible
/// ASCII, which receivers could not read back.
fn encode_binary(event: &Event) -> Option<(HeaderMap, Bytes)> {
    let mut headers = HeaderMap::with_capacity(8);
    let mut text = String::new();
    for (name, value) in event.iter_attributes() {
        let header = match name {
            "specversion" => HeaderName::from_static("ce-specversion"),
            "id" => HeaderName::from_static("ce-id"),
            "source" => HeaderName::from_static("ce-source"),
            "type" => HeaderName::from_static("ce-type"),
            "subject" => HeaderName::from_static("ce-subject"),
            "time" => HeaderName::from_static("ce-time"),
            "dataschema" => HeaderName::from_static("ce-dataschema"),
            "datacontenttype" => CONTENT_TYPE,
            other => HeaderName::from_bytes(format!("ce-{other}").as_bytes()).ok()?,
        };
        headers.insert(header, header_value(&value, &mut text)?);
    }
    for (name, value) in event.iter_extensions() {
        let header = HeaderName::from_bytes(format!("ce-{name}").as_bytes()).ok()?;
        headers.insert(
            header,
            header_value(&AttributeValue::from(value), &mut text)?,
        );
    }
    let body = match event.data() {
        None => Bytes::new(),
        Some(Data::Binary(bytes)) => Bytes::copy_from_slice(bytes),
        Some(Data::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(Data::Json(json)) => Bytes::from(serde_json::to_vec(json).ok()?),
    };
    Some((headers, body))
}

fn header_value(value: &AttributeValue<'_>, text: &mut String) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let value = match value {
        AttributeValue::String(s) => *s,
        other => {
            text.clear();
            write!(text, "{other}").ok()?;
            text.as_str()
        }
    };
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    HeaderValue::from_str(value).ok()
}

/// Encodes an event as structured JSON, the form durable channels store.
pub fn to_json(event: &Event) -> Bytes {
    Bytes::from(serde_json::to_vec(event).unwrap_or_default())
}

/// Decodes an event stored by [`to_json`].
pub fn from_json(bytes: &[u8]) -> Result<Event, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

fn message(error: &MessageError) -> String {
    match error {
        MessageError::Other { source } => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .extension("knativebrokerttl", "255")
            .data("application/json", serde_json::json!({"n": 1}))
            .build()
            .unwrap()
    }

    #[test]
    fn binary_mode_round_trips() {
        let (headers, body) = encode(&event(), ContentMode::Binary);
        assert_eq!(headers["ce-id"], "1");
        assert_eq!(headers["ce-knativebrokerttl"], "255");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(&body[..], br#"{"n":1}"#);
        let decoded = decode(&headers, body).unwrap();
        assert_eq!(decoded.iter().count(), event().iter().count());
        assert_eq!(
            decoded.data(),
            Some(&cloudevents::Data::Binary(br#"{"n":1}"#.to_vec()))
        );
    }

    #[test]
    fn time_and_typed_extensions_round_trip_in_binary_mode() {
        let mut e = event();
        e.set_extension("count", 7i64);
        e.set_extension("flag", true);
        cloudevents::AttributesWriter::set_time(
            &mut e,
            Some(
                chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                    .unwrap()
                    .with_timezone(&chrono::Utc),
            ),
        );
        let (headers, body) = encode(&e, ContentMode::Binary);
        assert_eq!(headers["ce-count"], "7");
        assert_eq!(headers["ce-flag"], "true");
        assert_eq!(headers["ce-time"], "2026-01-02T03:04:05+00:00");
        let decoded = decode(&headers, body).unwrap();
        assert_eq!(decoded.time(), e.time());
        assert_eq!(decoded.extension("count").unwrap().to_string(), "7");
    }

    #[test]
    fn structured_mode_round_trips() {
        let (headers, body) = encode(&event(), ContentMode::Structured);
        assert!(!headers.contains_key("ce-id"));
        assert_eq!(decode(&headers, body).unwrap(), event());
    }

    #[test]
    fn non_ascii_attributes_fall_back_to_structured_mode() {
        let mut e = event();
        e.set_extension("city", "Zürich");
        let (headers, body) = encode(&e, ContentMode::Binary);
        assert_eq!(headers[CONTENT_TYPE], "application/cloudevents+json");
        assert_eq!(decode(&headers, body).unwrap(), e);
    }

    #[test]
    fn a_plain_request_is_not_an_event() {
        let err = decode(&HeaderMap::new(), Bytes::from_static(b"{}")).unwrap_err();
        assert_eq!(err, DecodeError::NotAnEvent);
    }

    #[test]
    fn a_missing_required_attribute_is_named() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
        headers.insert("ce-id", HeaderValue::from_static("1"));
        headers.insert("ce-source", HeaderValue::from_static("/s"));
        let err = decode(&headers, Bytes::new()).unwrap_err().to_string();
        assert!(err.contains("type"), "{err}");
    }

    #[test]
    fn an_empty_id_is_rejected() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", ""),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        assert_eq!(
            decode(&headers, Bytes::new()).unwrap_err(),
            DecodeError::EmptyAttribute("id")
        );
    }

    #[test]
    fn malformed_structured_json_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json"),
        );
        let err = decode(&headers, Bytes::from_static(b"{\"id\":")).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
    }

    #[test]
    fn an_unknown_spec_version_is_rejected() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "9.9"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        assert!(matches!(
            decode(&headers, Bytes::new()).unwrap_err(),
            DecodeError::Malformed(_)
        ));
    }
}
