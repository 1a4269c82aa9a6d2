//! The queue-proxy's configuration, read from the environment as Knative's sidecar reads it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::super::probe::{ProbeConfigError, ReadinessProbe};
use super::super::proxy::UpstreamProtocol;
use super::super::timeout::Timeouts;

/// Knative's port for user traffic.
pub const DEFAULT_QUEUE_SERVING_PORT: u16 = 8012;
/// Knative's admin port (`/drain`, `/wait-for-drain`).
pub const DEFAULT_ADMIN_PORT: u16 = 8022;
/// Knative's autoscaler-metrics port.
pub const DEFAULT_METRICS_PORT: u16 = 9090;
/// Knative's user-metrics port.
pub const DEFAULT_USER_METRICS_PORT: u16 = 9091;
/// Knative's default revision timeout (`REVISION_TIMEOUT_SECONDS`).
pub const DEFAULT_REVISION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long Knative's queue-proxy waits without requests before it stops after SIGTERM.
pub const DEFAULT_DRAIN_QUIET_PERIOD: Duration = Duration::from_secs(30);

/// Everything the queue-proxy needs; [`QueueConfig::new`] gives Knative's defaults,
/// [`QueueConfig::from_env`] reads Knative's environment variables.
///
/// ```
/// use std::time::Duration;
/// use knative_serving::dataplane::queue::QueueConfig;
///
/// let mut config = QueueConfig::new(8080);
/// config.container_concurrency = 10;
/// config.timeouts.total = Some(Duration::from_secs(60));
/// assert_eq!(config.queue_serving_port, 8012);
/// ```
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// `SERVING_NAMESPACE`: the Revision's namespace.
    pub namespace: String,
    /// `SERVING_CONFIGURATION`: the Revision's Configuration.
    pub configuration: String,
    /// `SERVING_REVISION`: the Revision.
    pub revision: String,
    /// `SERVING_POD`: this pod's name, reported to the autoscaler.
    pub pod: String,
    /// `SERVING_POD_IP`: this pod's IP.
    pub pod_ip: String,
    /// `CONTAINER_CONCURRENCY`: requests the user container takes at once; 0 is unlimited.
    pub container_concurrency: usize,
    /// The address the queue-proxy listens on (all interfaces by default).
    pub listen_address: IpAddr,
    /// `QUEUE_SERVING_PORT`: the port for user traffic (HTTP/1 and h2c).
    pub queue_serving_port: u16,
    /// The admin port.
    pub admin_port: u16,
    /// The autoscaler-metrics port.
    pub metrics_port: u16,
    /// The user-metrics port.
    pub user_metrics_port: u16,
    /// The user container's address (loopback: it shares the pod's network).
    pub user_address: IpAddr,
    /// `USER_PORT`: the user container's port.
    pub user_port: u16,
    /// `REVISION_TIMEOUT_SECONDS`, `REVISION_RESPONSE_START_TIMEOUT_SECONDS`,
    /// `REVISION_IDLE_TIMEOUT_SECONDS`.
    pub timeouts: Timeouts,
    /// `SERVING_READINESS_PROBE`: how to tell that the user container is ready.
    pub readiness_probes: Vec<ReadinessProbe>,
    /// When aggressive readiness probes (`periodSeconds: 0`) are first retried; later retries
    /// double the delay up to Knative's 50 ms. `None` (the default) is Knative's schedule,
    /// every 50 ms. See [`Readiness::with_first_retry`](crate::dataplane::probe::Readiness::with_first_retry).
    pub readiness_first_retry: Option<Duration>,
    /// How long to keep serving without requests after SIGTERM before stopping.
    pub drain_quiet_period: Duration,
    /// How often concurrency is averaged and reported to the autoscaler.
    pub stats_period: Duration,
    /// How long a client may take to send a request's headers, counted from the end of the
    /// previous response on a kept-alive connection (so it also closes idle connections).
    pub header_read_timeout: Duration,
    /// The largest request head (request line and headers) accepted, in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// The protocol spoken to the user container.
    pub upstream_protocol: UpstreamProtocol,
    /// Whether plain HTTP/1.1 requests are forwarded as bytes rather than through hyper's server
    /// and client (on by default; see the queue module's documentation). Off, every request
    /// takes the hyper path; with an h2c-only user container it is always off.
    pub http1_fast_path: bool,
}

/// Why the environment does not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The readiness probe cannot be used.
    #[error(transparent)]
    Probe(#[from] ProbeConfigError),
}

impl QueueConfig {
    /// Knative's defaults in front of a user container listening on `user_port`.
    pub fn new(user_port: u16) -> Self {
        Self {
            namespace: String::new(),
            configuration: String::new(),
            revision: String::new(),
            pod: String::new(),
            pod_ip: String::new(),
            container_concurrency: 0,
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            queue_serving_port: DEFAULT_QUEUE_SERVING_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            metrics_port: DEFAULT_METRICS_PORT,
            user_metrics_port: DEFAULT_USER_METRICS_PORT,
            user_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_port,
            timeouts: Timeouts {
                total: Some(DEFAULT_REVISION_TIMEOUT),
                response_start: None,
                idle: None,
            },
            readiness_probes: vec![ReadinessProbe::default_for(user_port)],
            drain_quiet_period: DEFAULT_DRAIN_QUIET_PERIOD,
            readiness_first_retry: None,
            stats_period: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            upstream_protocol: UpstreamProtocol::Auto,
            http1_fast_path: true,
        }
    }

    /// Reads Knative's environment variables from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads Knative's environment variables through `lookup` (`USER_PORT` is required; the rest
    /// default as in [`QueueConfig::new`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let user_port: u16 = match get("USER_PORT") {
            Some(v) => parse("USER_PORT", &v)?,
            None => return Err(ConfigError::Missing("USER_PORT")),
        };
        let mut config = Self::new(user_port);
        let text = |name: &'static str| get(name).unwrap_or_default();
        config.namespace = text("SERVING_NAMESPACE");
        config.configuration = text("SERVING_CONFIGURATION");
        config.revision = text("SERVING_REVISION");
        config.pod = text("SERVING_POD");
        config.pod_ip = text("SERVING_POD_IP");
        if let Some(v) = get("CONTAINER_CONCURRENCY") {
            config.container_concurrency = parse("CONTAINER_CONCURRENCY", &v)?;
        }
        if let Some(v) = get("QUEUE_SERVING_PORT") {
            config.queue_serving_port = parse("QUEUE_SERVING_PORT", &v)?;
        }
        if let Some(v) = get("REVISION_TIMEOUT_SECONDS") {
            config.timeouts.total = seconds("REVISION_TIMEOUT_SECONDS", &v)?;
        }
        if let Some(v) = get("REVISION_RESPONSE_START_TIMEOUT_SECONDS") {
            config.timeouts.response_start =
                seconds("REVISION_RESPONSE_START_TIMEOUT_SECONDS", &v)?;
        }
        if let Some(v) = get("REVISION_IDLE_TIMEOUT_SECONDS") {
            config.timeouts.idle = seconds("REVISION_IDLE_TIMEOUT_SECONDS", &v)?;
        }
        if let Some(v) = get("SERVING_READINESS_PROBE") {
            config.readiness_probes = ReadinessProbe::parse(&v, user_port)?;
        }
        Ok(config)
    }
}

fn parse<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// Whole seconds; 0 disables the timeout.
fn seconds(name: &'static str, value: &str) -> Result<Option<Duration>, ConfigError> {
    let secs: u64 = parse(name, value)?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<QueueConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        QueueConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn knatives_environment_configures_the_queue_proxy() {
        let config = from(&[
            ("SERVING_NAMESPACE", "default"),
            ("SERVING_CONFIGURATION", "hello"),
            ("SERVING_REVISION", "hello-00001"),
            ("SERVING_POD", "hello-00001-deployment-abc"),
            ("SERVING_POD_IP", "10.0.0.7"),
            ("CONTAINER_CONCURRENCY", "10"),
            ("QUEUE_SERVING_PORT", "8013"),
            ("USER_PORT", "8080"),
            ("REVISION_TIMEOUT_SECONDS", "60"),
            ("REVISION_RESPONSE_START_TIMEOUT_SECONDS", "5"),
            ("REVISION_IDLE_TIMEOUT_SECONDS", "0"),
            (
                "SERVING_READINESS_PROBE",
                r#"{"tcpSocket":{"port":8080,"host":"127.0.0.1"},"successThreshold":1}"#,
            ),
        ])
        .unwrap();
        assert_eq!(config.revision, "hello-00001");
        assert_eq!(config.pod, "hello-00001-deployment-abc");
        assert_eq!(config.container_concurrency, 10);
        assert_eq!(config.queue_serving_port, 8013);
        assert_eq!(config.user_port, 8080);
        assert_eq!(config.timeouts.total, Some(Duration::from_secs(60)));
        assert_eq!(config.timeouts.response_start, Some(Duration::from_secs(5)));
        assert_eq!(config.timeouts.idle, None);
        assert_eq!(config.readiness_probes.len(), 1);
    }

    #[test]
    fn only_the_user_port_is_required() {
        let config = from(&[("USER_PORT", "8080")]).unwrap();
        assert_eq!(config.queue_serving_port, DEFAULT_QUEUE_SERVING_PORT);
        assert_eq!(config.container_concurrency, 0);
        assert_eq!(config.timeouts.total, Some(DEFAULT_REVISION_TIMEOUT));
        let missing = from(&[]).unwrap_err();
        assert_eq!(missing.to_string(), "USER_PORT is required but not set");
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let error = from(&[("USER_PORT", "8080"), ("CONTAINER_CONCURRENCY", "-1")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("CONTAINER_CONCURRENCY=\"-1\": "),
            "{error}"
        );
        let probe = from(&[("USER_PORT", "8080"), ("SERVING_READINESS_PROBE", "{")]).unwrap_err();
        assert!(
            probe.to_string().contains("SERVING_READINESS_PROBE"),
            "{probe}"
        );
    }
}
