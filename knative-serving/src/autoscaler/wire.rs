//! The wire formats between the data plane and the autoscaler.
//!
//! - [`WireStat`] is Knative's `metrics.Stat` protobuf message (`pkg/autoscaler/metrics/stat.proto`),
//!   field for field: what a queue-proxy serves on `:9090/metrics` when asked for
//!   `application/protobuf`, so Knative's own queue-proxies can be scraped as well as ours.
//! - [`WireStatMessages`] is what the activator pushes to the autoscaler: a batch of stats, each
//!   keyed by the revision's namespace and name. Knative sends the same content over a
//!   WebSocket; we POST it to [`STAT_PUSH_PATH`] on the autoscaler's HTTP port instead.

/// The `Accept` / `Content-Type` value of a protobuf-encoded [`WireStat`].
pub const PROTOBUF_CONTENT_TYPE: &str = "application/protobuf";

/// The autoscaler's HTTP path that takes pushed [`WireStatMessages`] (protobuf, POST).
pub const STAT_PUSH_PATH: &str = "/stats";

/// One pod's measurement at a point in time (Knative's protobuf `metrics.Stat`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireStat {
    /// The unique identity of this pod, used to count how many pods contribute.
    #[prost(string, tag = "1")]
    pub pod_name: String,
    /// Average number of requests currently being handled by this pod.
    #[prost(double, tag = "2")]
    pub average_concurrent_requests: f64,
    /// Part of `average_concurrent_requests`, for requests going through a proxy.
    #[prost(double, tag = "3")]
    pub average_proxied_concurrent_requests: f64,
    /// Number of requests received since the last stat (about requests per second).
    #[prost(double, tag = "4")]
    pub request_count: f64,
    /// Part of `request_count`, for requests going through a proxy.
    #[prost(double, tag = "5")]
    pub proxied_request_count: f64,
    /// Process uptime in seconds.
    #[prost(double, tag = "6")]
    pub process_uptime: f64,
}

/// A stat for one revision, as the activator reports it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireStatMessage {
    /// The revision's namespace.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// The revision's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The measurement.
    #[prost(message, optional, tag = "3")]
    pub stat: Option<WireStat>,
}

/// A batch of [`WireStatMessage`]s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireStatMessages {
    /// The stats, one per revision.
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<WireStatMessage>,
}

impl From<&WireStat> for super::metrics::Stat {
    fn from(wire: &WireStat) -> Self {
        Self {
            average_concurrent_requests: wire.average_concurrent_requests,
            average_proxied_concurrent_requests: wire.average_proxied_concurrent_requests,
            request_count: wire.request_count,
            proxied_request_count: wire.proxied_request_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn a_stat_round_trips_through_protobuf_with_knatives_field_numbers() {
        let stat = WireStat {
            pod_name: "hello-00001-deployment-abc".into(),
            average_concurrent_requests: 2.5,
            average_proxied_concurrent_requests: 1.0,
            request_count: 10.0,
            proxied_request_count: 4.0,
            process_uptime: 30.0,
        };
        let bytes = stat.encode_to_vec();
        // Field 1 (pod_name) is a length-delimited string: tag byte (1 << 3) | 2.
        assert_eq!(bytes[0], 0x0a);
        // Field 2 (average_concurrent_requests) is a 64-bit double: tag byte (2 << 3) | 1.
        assert_eq!(bytes[2 + stat.pod_name.len()], 0x11);
        assert_eq!(WireStat::decode(bytes.as_slice()).unwrap(), stat);
    }
}
