//! Probes: the queue-proxy answers readiness probes for the pod and probes the user container.
//!
//! Kubernetes' readiness probe of a Knative pod targets the queue-proxy, carrying
//! `K-Network-Probe: queue` (the activator sends the same header); kubelet probes are also known
//! by their `kube-probe/` user agent. [`ProbeLayer`] answers them itself, as Knative does:
//! `503 shutting down` while draining, `400` for a probe header meant for someone else, and
//! otherwise `200` with the body `queue` when the user container is ready, `503` when it is
//! not. Probes never reach the user container and are not counted as requests.
//!
//! Whether the user container is ready is [`Readiness::check`]: the container's own readiness
//! probe, handed to the queue-proxy as JSON in `SERVING_READINESS_PROBE` (a Kubernetes `Probe`,
//! or a list of them), run against the container. A probe with `periodSeconds: 0` is Knative's
//! *aggressive* probe: it is retried every 50 ms with 100 ms per try until it succeeds
//! `successThreshold` times in a row, for at most 10 s.
//!
//! A container that starts in a few milliseconds would still wait up to 50 ms for the retry
//! that sees it listening, which is most of a cold start on a fast platform.
//! [`Readiness::with_first_retry`] keeps Knative's schedule but starts it sooner: the first
//! retry after the given delay, each next one after twice as long, until the delays reach
//! 50 ms (1 ms gives retries at 1, 3, 7, 15, 31, 63 ms, then every 50 ms: six more connection
//! attempts in the first 63 ms). `knative local` uses it; Knative's sidecar contract keeps the
//! plain 50 ms unless [`QueueConfig::readiness_first_retry`] says otherwise.
//!
//! [`QueueConfig::readiness_first_retry`]: super::queue::QueueConfig::readiness_first_retry

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, USER_AGENT};
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::body::{ResponseBody, boxed, text_response};
use super::drain::Drainer;

/// The header Knative's probes carry.
pub const NETWORK_PROBE_HEADER: &str = "k-network-probe";
/// The value of [`NETWORK_PROBE_HEADER`] meant for the queue-proxy.
pub const QUEUE_PROBE_VALUE: &str = "queue";
/// The user-agent prefix of kubelet probes.
pub const KUBE_PROBE_USER_AGENT: &str = "kube-probe/";
/// The header older kubelet probes rewritten by Knative carry.
pub const KUBELET_PROBE_HEADER: &str = "k-kubelet-probe";

const AGGRESSIVE_RETRY_INTERVAL: Duration = Duration::from_millis(50);
const AGGRESSIVE_TRY_TIMEOUT: Duration = Duration::from_millis(100);
const AGGRESSIVE_POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `req` is a probe the queue-proxy answers itself.
pub fn is_probe<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    headers.contains_key(NETWORK_PROBE_HEADER)
        || headers.contains_key(KUBELET_PROBE_HEADER)
        || headers
            .get(USER_AGENT)
            .is_some_and(|ua| ua.as_bytes().starts_with(KUBE_PROBE_USER_AGENT.as_bytes()))
}

/// Why `SERVING_READINESS_PROBE` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeConfigError {
    /// Not a Kubernetes Probe in JSON.
    #[error("SERVING_READINESS_PROBE is not a Kubernetes Probe in JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A probe the queue-proxy cannot run.
    #[error("SERVING_READINESS_PROBE: {0}")]
    Unsupported(String),
}

/// What a [`ReadinessProbe`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// Opens a TCP connection.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// Sends `GET` and expects a status from 200 to 399.
    Http {
        /// The URL, `http://host:port/path`.
        url: http::Uri,
        /// Extra request headers.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// One readiness probe of the user container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessProbe {
    /// What to do.
    pub action: ProbeAction,
    /// `periodSeconds: 0` probes aggressively (see the module documentation).
    pub aggressive: bool,
    /// How long one try may take (`timeoutSeconds`, default 1 s).
    pub timeout: Duration,
    /// Consecutive successes needed (`successThreshold`, default 1).
    pub success_threshold: u32,
}

impl ReadinessProbe {
    /// Knative's default when no probe is configured: an aggressive TCP probe of the user port.
    pub fn default_for(user_port: u16) -> Self {
        Self {
            action: ProbeAction::Tcp {
                address: format!("127.0.0.1:{user_port}"),
            },
            aggressive: true,
            timeout: Duration::from_secs(1),
            success_threshold: 1,
        }
    }

    /// Parses `SERVING_READINESS_PROBE`: one Kubernetes `Probe` or a list of them, in JSON.
    /// Unset hosts default to `127.0.0.1` and unset ports to `user_port`, as in Knative. An empty
    /// string means the default probe.
    pub fn parse(json: &str, user_port: u16) -> Result<Vec<Self>, ProbeConfigError> {
        let json = json.trim();
        if json.is_empty() {
            return Ok(vec![Self::default_for(user_port)]);
        }
        let probes: Vec<Probe> = if json.starts_with('[') {
            serde_json::from_str(json)?
        } else {
            vec![serde_json::from_str(json)?]
        };
        if probes.is_empty() {
            return Ok(vec![Self::default_for(user_port)]);
        }
        probes
            .iter()
            .map(|probe| Self::from_probe(probe, user_port))
            .collect()
    }

    fn from_probe(probe: &Probe, user_port: u16) -> Result<Self, ProbeConfigError> {
        let unsupported = |what: &str| Err(ProbeConfigError::Unsupported(what.to_owned()));
        let host = |host: &Option<String>| {
            host.as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or("127.0.0.1")
                .to_owned()
        };
        let action = if let Some(http) = &probe.http_get {
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
            {
                return unsupported("httpGet.scheme: only HTTP probes are supported");
            }
            let port = port(&http.port, user_port, "httpGet.port")?;
            let path = http.path.as_deref().unwrap_or("/");
            let path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
            let host = host(&http.host);
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let url = format!("http://{authority}{path}")
                .parse()
                .map_err(|e| ProbeConfigError::Unsupported(format!("httpGet: invalid URL: {e}")))?;
            let headers = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                        ProbeConfigError::Unsupported(format!(
                            "httpGet.httpHeaders: invalid header name {:?}",
                            h.name
                        ))
                    })?;
                    let value = HeaderValue::from_str(&h.value).map_err(|_| {
                        ProbeConfigError::Unsupported(format!(
                            "httpGet.httpHeaders: invalid value for {}",
                            h.name
                        ))
                    })?;
                    Ok((name, value))
                })
                .collect::<Result<_, ProbeConfigError>>()?;
            ProbeAction::Http { url, headers }
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = port(&tcp.port, user_port, "tcpSocket.port")?;
            let host = host(&tcp.host);
            let address = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            ProbeAction::Tcp { address }
        } else if probe.grpc.is_some() {
            return unsupported("grpc probes are not supported by this queue-proxy");
        } else if probe.exec.is_some() {
            return unsupported("exec probes cannot run in the queue-proxy");
        } else {
            return unsupported("the probe has neither httpGet nor tcpSocket");
        };
        Ok(Self {
            action,
            aggressive: probe.period_seconds.unwrap_or(0) == 0,
            timeout: Duration::from_secs(
                u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1),
            ),
            success_threshold: u32::try_from(probe.success_threshold.unwrap_or(1).max(1))
                .unwrap_or(1),
        })
    }
}

fn port(port: &IntOrString, user_port: u16, field: &str) -> Result<u16, ProbeConfigError> {
    match port {
        IntOrString::Int(0) => Ok(user_port),
        IntOrString::Int(p) => u16::try_from(*p)
            .map_err(|_| ProbeConfigError::Unsupported(format!("{field}: {p} is not a port"))),
        IntOrString::String(s) if s.is_empty() => Ok(user_port),
        IntOrString::String(s) => s.parse().map_err(|_| {
            ProbeConfigError::Unsupported(format!(
                "{field}: named port {s:?} cannot be resolved by the queue-proxy"
            ))
        }),
    }
}

/// Runs the user container's readiness probes. Cloning shares the connection pool.
#[derive(Clone, Debug)]
pub struct Readiness {
    inner: std::sync::Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    probes: Vec<ReadinessProbe>,
    first_retry: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
    // One check at a time: a burst of probe requests must not become a burst of probes.
    running: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// Readiness by `probes` (all must pass), aggressive probes retried every 50 ms as Knative
    /// retries them.
    pub fn new(probes: Vec<ReadinessProbe>) -> Self {
        Self::with_first_retry(probes, AGGRESSIVE_RETRY_INTERVAL)
    }

    /// Readiness by `probes` whose aggressive probes are first retried after `first_retry`,
    /// then after twice as long each time until the delay reaches Knative's 50 ms (see the
    /// [module docs](self)). A `first_retry` of 50 ms or more is Knative's schedule.
    pub fn with_first_retry(probes: Vec<ReadinessProbe>, first_retry: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner: std::sync::Arc::new(ReadinessInner {
                probes,
                first_retry: first_retry
                    .clamp(Duration::from_micros(100), AGGRESSIVE_RETRY_INTERVAL),
                client,
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Whether the user container is ready now.
    pub async fn check(&self) -> bool {
        let _running = self.inner.running.lock().await;
        for probe in &self.inner.probes {
            if !self.run(probe).await {
                return false;
            }
        }
        true
    }

    async fn run(&self, probe: &ReadinessProbe) -> bool {
        if !probe.aggressive {
            let mut successes = 0;
            while successes < probe.success_threshold {
                if !self.try_once(&probe.action, probe.timeout).await {
                    return false;
                }
                successes += 1;
            }
            return true;
        }
        let poll = async {
            let mut successes = 0;
            let mut delay = self.inner.first_retry;
            let mut next_try = tokio::time::Instant::now();
            loop {
                tokio::time::sleep_until(next_try).await;
                // Delays are counted from the start of a try, as a ticker counts them.
                next_try = tokio::time::Instant::now() + delay;
                delay = (delay * 2).min(AGGRESSIVE_RETRY_INTERVAL);
                if self.try_once(&probe.action, AGGRESSIVE_TRY_TIMEOUT).await {
                    successes += 1;
                    if successes >= probe.success_threshold {
                        return;
                    }
                } else {
                    successes = 0;
                }
            }
        };
        tokio::time::timeout(AGGRESSIVE_POLL_TIMEOUT, poll)
            .await
            .is_ok()
    }

    async fn try_once(&self, action: &ProbeAction, timeout: Duration) -> bool {
        let attempt = async {
            match action {
                ProbeAction::Tcp { address } => tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .is_ok(),
                ProbeAction::Http { url, headers } => {
                    let mut req = Request::get(url.clone())
                        .body(Empty::new())
                        .unwrap_or_default();
                    let request_headers = req.headers_mut();
                    request_headers.insert(
                        USER_AGENT,
                        HeaderValue::from_static("kube-probe/knative-queue-proxy"),
                    );
                    for (name, value) in headers {
                        request_headers.append(name.clone(), value.clone());
                    }
                    match self.inner.client.request(req).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            (200..400).contains(&status)
                        }
                        Err(_) => false,
                    }
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(false)
    }
}

/// A tower layer answering probes (see the module documentation) and letting everything else
/// through, telling the [`Drainer`] about it.
#[derive(Clone, Debug)]
pub struct ProbeLayer {
    readiness: Readiness,
    drainer: Drainer,
}

impl ProbeLayer {
    /// A layer answering with `readiness`, failing while `drainer` drains.
    pub fn new(readiness: Readiness, drainer: Drainer) -> Self {
        Self { readiness, drainer }
    }
}

impl<S> tower::Layer<S> for ProbeLayer {
    type Service = ProbeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProbeService {
            inner,
            readiness: self.readiness.clone(),
            drainer: self.drainer.clone(),
        }
    }
}

/// The service [`ProbeLayer`] builds.
#[derive(Clone, Debug)]
pub struct ProbeService<S> {
    inner: S,
    readiness: Readiness,
    drainer: Drainer,
}

impl<S, B> tower::Service<Request<B>> for ProbeService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResponseBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !is_probe(&req) {
            self.drainer.touch();
            return Box::pin(self.inner.call(req));
        }
        if self.drainer.is_draining() {
            return Box::pin(std::future::ready(Ok(text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down",
            ))));
        }
        if let Some(value) = req.headers().get(NETWORK_PROBE_HEADER)
            && value.as_bytes() != QUEUE_PROBE_VALUE.as_bytes()
        {
            let message = format!(
                "unexpected probe header value: {}",
                String::from_utf8_lossy(value.as_bytes())
            );
            return Box::pin(std::future::ready(Ok(text_response(
                StatusCode::BAD_REQUEST,
                &message,
            ))));
        }
        let readiness = self.readiness.clone();
        Box::pin(async move {
            Ok(if readiness.check().await {
                // Exactly "queue": Knative's activator compares the body.
                let mut response = Response::new(boxed(Full::new(Bytes::from_static(b"queue"))));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            } else {
                text_response(StatusCode::SERVICE_UNAVAILABLE, "container not ready")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_probe_means_an_aggressive_tcp_probe_of_the_user_port() {
        let probes = ReadinessProbe::parse("", 8080).unwrap();
        assert_eq!(probes, [ReadinessProbe::default_for(8080)]);
        assert!(probes[0].aggressive);
    }

    #[test]
    fn knatives_tcp_probe_json_defaults_host_and_port() {
        let probes =
            ReadinessProbe::parse(r#"{"tcpSocket":{"port":0},"successThreshold":1}"#, 8080)
                .unwrap();
        assert_eq!(
            probes[0].action,
            ProbeAction::Tcp {
                address: "127.0.0.1:8080".into()
            }
        );
        assert!(probes[0].aggressive);
    }

    #[test]
    fn an_http_probe_with_a_period_is_not_aggressive() {
        let json = r#"{"httpGet":{"path":"healthz","port":9000,"httpHeaders":[{"name":"X-Check","value":"1"}]},"periodSeconds":5,"timeoutSeconds":2,"successThreshold":2}"#;
        let probe = &ReadinessProbe::parse(json, 8080).unwrap()[0];
        let ProbeAction::Http { url, headers } = &probe.action else {
            panic!("an HTTP probe: {probe:?}");
        };
        assert_eq!(url, "http://127.0.0.1:9000/healthz");
        assert_eq!(headers[0].0, "x-check");
        assert!(!probe.aggressive);
        assert_eq!(probe.timeout, Duration::from_secs(2));
        assert_eq!(probe.success_threshold, 2);
    }

    #[test]
    fn a_list_of_probes_is_accepted() {
        let json = r#"[{"tcpSocket":{"port":8080}},{"httpGet":{"port":8081,"path":"/"}}]"#;
        assert_eq!(ReadinessProbe::parse(json, 8080).unwrap().len(), 2);
    }

    #[test]
    fn probes_the_queue_proxy_cannot_run_are_rejected_with_a_reason() {
        let exec = ReadinessProbe::parse(r#"{"exec":{"command":["true"]}}"#, 8080).unwrap_err();
        assert!(exec.to_string().contains("exec probes"), "{exec}");
        let named =
            ReadinessProbe::parse(r#"{"httpGet":{"port":"http","path":"/"}}"#, 8080).unwrap_err();
        assert!(named.to_string().contains("named port \"http\""), "{named}");
        let junk = ReadinessProbe::parse("{not json", 8080).unwrap_err();
        assert!(matches!(junk, ProbeConfigError::Json(_)));
    }

    #[test]
    fn probes_are_known_by_header_or_kubelet_user_agent() {
        let probe = |name: &str, value: &str| {
            is_probe(
                &Request::get("/")
                    .header(name, value)
                    .body(())
                    .unwrap_or_default(),
            )
        };
        assert!(probe("K-Network-Probe", "queue"));
        assert!(probe("User-Agent", "kube-probe/1.20"));
        assert!(!probe("User-Agent", "curl/8.0"));
    }

    #[tokio::test]
    async fn an_aggressive_probe_waits_for_the_container_to_listen() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let readiness = Readiness::new(vec![ReadinessProbe::default_for(port)]);
        let listen_later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap()
        });
        assert!(readiness.check().await);
        drop(listen_later.await.unwrap());
    }

    /// How long the readiness made by `readiness_for(port)` takes to see a listener that
    /// appears on `port` `listen_after` from now.
    async fn ready_after(
        readiness_for: impl Fn(u16) -> Readiness,
        listen_after: Duration,
    ) -> Duration {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let readiness = readiness_for(port);
        let started = tokio::time::Instant::now();
        let listen_later = tokio::spawn(async move {
            tokio::time::sleep(listen_after).await;
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap()
        });
        assert!(readiness.check().await);
        let took = started.elapsed();
        drop(listen_later.await.unwrap());
        took
    }

    #[tokio::test]
    async fn knatives_schedule_sees_a_container_that_listens_after_5ms_only_at_the_50ms_retry() {
        let took = ready_after(
            |port| Readiness::new(vec![ReadinessProbe::default_for(port)]),
            Duration::from_millis(5),
        )
        .await;
        assert!(took >= Duration::from_millis(50), "ready after {took:?}");
    }

    #[tokio::test]
    async fn a_first_retry_of_1ms_sees_a_container_that_listens_after_5ms_within_a_few_retries() {
        let took = ready_after(
            |port| {
                Readiness::with_first_retry(
                    vec![ReadinessProbe::default_for(port)],
                    Duration::from_millis(1),
                )
            },
            Duration::from_millis(5),
        )
        .await;
        // Retries at 1, 3, 7, 15, 31 ms: one of them sees it, before Knative's first retry.
        assert!(took < Duration::from_millis(50), "ready after {took:?}");
    }
}
