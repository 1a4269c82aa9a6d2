//! The forwarding client the queue-proxy, the activator and the gateway share.
//!
//! A [`Forwarder`] sends a request on to a backend at a [`SocketAddr`] and hands back the
//! backend's response, streaming both bodies. It does what Go's `httputil.ReverseProxy` does for
//! Knative's data plane: it rewrites the request URI to the backend, removes hop-by-hop headers
//! (RFC 9110 §7.6.1) in both directions and keeps the client's `Host`, so the user container sees
//! the host the client asked for. An HTTP/1.1 upgrade (WebSocket) that the backend accepts
//! becomes a tunnel between the two connections. Connections are pooled and kept alive
//! (HTTP/1.1), and requests that arrived over HTTP/2 can go on over h2c (prior knowledge) as
//! Knative's auto transport does.
//!
//! When forwarding fails, [`ProxyError`] says why and maps to the status a proxy answers with:
//! `502 Bad Gateway` when the backend cannot be reached or breaks the exchange, `504 Gateway
//! Timeout` when it does not answer in time; [`ProxyError::into_response`] renders it with a
//! plain-text body.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use knative_serving::dataplane::proxy::Forwarder;
//!
//! # async fn example() {
//! let forwarder = Forwarder::new();
//! let request = http::Request::get("http://hello.default.example.com/greet")
//!     .body(Empty::<Bytes>::new())
//!     .unwrap();
//! let response = match forwarder.forward(request, "127.0.0.1:8080".parse().unwrap()).await {
//!     Ok(response) => response.map(http_body_util::Either::Left),
//!     Err(error) => error.into_response().map(http_body_util::Either::Right),
//! };
//! # let _ = response;
//! # }
//! ```

use std::any::Any;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

pub use super::upstream::ForwardedBody;
use super::upstream::{Pool, PoolOptions};

/// A boxed error, as bodies and services of the data plane carry them.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Forwards requests to backends over pooled connections. Cloning is cheap (the pools are
/// shared), so one `Forwarder` serves a whole process.
#[derive(Clone, Debug)]
pub struct Forwarder {
    // One allocation shared by every clone: a proxy clones its forwarder per request.
    inner: Arc<Clients>,
}

#[derive(Debug)]
struct Clients {
    /// Plain HTTP/1.1 requests (the fast path): connections driven by the forwarding task.
    pool: Arc<Pool>,
    /// HTTP/1.1 upgrades (WebSocket tunnels).
    http1: Client<HttpConnector, ForwardBody>,
    h2c: Option<Client<HttpConnector, ForwardBody>>,
    protocol: UpstreamProtocol,
}

/// Which protocol a [`Forwarder`] speaks to backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 for every request.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c) for every request.
    H2c,
    /// h2c for requests that arrived over HTTP/2, HTTP/1.1 for the rest (Knative's auto
    /// transport: a client that speaks HTTP/2 reaches a user container that does).
    Auto,
}

/// How a [`Forwarder`] connects and pools. [`Default`] is what the data plane uses.
#[derive(Clone, Debug)]
pub struct ForwarderOptions {
    /// The protocol spoken to backends.
    pub protocol: UpstreamProtocol,
    /// How long establishing a TCP connection may take before the request fails with
    /// [`ProxyError::ConnectTimeout`]. `None` waits as long as the operating system does.
    pub connect_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept per backend.
    pub pool_max_idle_per_host: usize,
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        Self {
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Some(Duration::from_secs(5)),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
        }
    }
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection to the backend could be made (refused, unreachable).
    #[error("cannot connect to the backend at {target}: {reason}")]
    Connect {
        /// The backend.
        target: SocketAddr,
        /// What the connector reported.
        reason: String,
    },
    /// Connecting to the backend took longer than the connect timeout.
    #[error("connecting to the backend at {target} timed out")]
    ConnectTimeout {
        /// The backend.
        target: SocketAddr,
    },
    /// The backend closed the connection or sent something that is not HTTP.
    #[error("the backend at {target} failed: {reason}")]
    Upstream {
        /// The backend.
        target: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The backend did not answer within the allowed time.
    #[error("the backend did not answer within {}", humanize(*.after))]
    Timeout {
        /// How long the proxy waited.
        after: Duration,
    },
    /// The request cannot be sent on (for example an HTTP version a backend cannot speak).
    #[error("the request cannot be forwarded: {0}")]
    InvalidRequest(String),
}

impl ProxyError {
    /// The status a proxy answers with: `504 Gateway Timeout` for timeouts, `502 Bad Gateway`
    /// for every other failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ConnectTimeout { .. } | Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect { .. } | Self::Upstream { .. } | Self::InvalidRequest(_) => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// A response with [`status`](Self::status) and the error's message as a plain-text body.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        text_response(self.status(), self.to_string())
    }
}

/// A response with `status` and `message` (plus a newline) as its `text/plain` body.
pub fn text_response(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut body = message.into();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    /// A forwarder speaking HTTP/1.1 with keep-alive pooling, with [`ForwarderOptions::default`].
    pub fn new() -> Self {
        Self::with_options(ForwarderOptions::default())
    }

    /// A forwarder with the given options.
    pub fn with_options(options: ForwarderOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(options.connect_timeout);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host);
        let http1 = builder.build(connector.clone());
        let h2c = (options.protocol != UpstreamProtocol::Http1).then(|| {
            builder
                .http2_only(true)
                .http2_adaptive_window(true)
                .build(connector)
        });
        let pool = Arc::new(Pool::new(PoolOptions {
            connect_timeout: options.connect_timeout,
            idle_timeout: options.pool_idle_timeout,
            max_idle_per_backend: options.pool_max_idle_per_host,
        }));
        Self {
            inner: Arc::new(Clients {
                pool,
                http1,
                h2c,
                protocol: options.protocol,
            }),
        }
    }

    /// Sends `req` to the backend at `target` and returns its response, whose body streams from
    /// the backend as the caller reads it. Over HTTP/1.1 the body also drives the backend
    /// connection: read to its end, it returns the connection to the pool; dropped before, it
    /// closes it.
    ///
    /// The request keeps the path and query of its URI; the client's `Host` is kept (taken from
    /// the original URI when an HTTP/2 request carried it there, `target` when it has none);
    /// hop-by-hop headers, and those the `Connection` header names, are removed from the
    /// request and from the response.
    pub async fn forward<B>(
        &self,
        req: Request<B>,
        target: SocketAddr,
    ) -> Result<Response<ForwardedBody>, ProxyError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let clients = &*self.inner;
        let use_h2c = match clients.protocol {
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::H2c => true,
            UpstreamProtocol::Auto => parts.version == Version::HTTP_2,
        };
        if !parts.headers.contains_key(header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(header::HOST, host);
        }
        // An HTTP/1.1 upgrade (WebSocket) keeps its Upgrade header and becomes a tunnel.
        let upgrade = upgrade_protocol(&parts.headers);
        if upgrade.is_none() && !(use_h2c && clients.h2c.is_some()) {
            // The fast path: HTTP/1.1 over a connection this task drives.
            strip_hop_by_hop(&mut parts.headers, true);
            parts.version = Version::HTTP_11;
            parts.uri = origin_form(&parts.uri);
            if !parts.headers.contains_key(header::HOST) {
                parts.headers.insert(header::HOST, host_of(target)?);
            }
            let request = Request::from_parts(parts, ForwardBody::from_body(body));
            let mut response = clients.pool.send(target, request).await?;
            strip_hop_by_hop(response.headers_mut(), false);
            return Ok(response);
        }
        parts.uri = backend_uri(&parts.uri, target)?;
        let client_upgrade = upgrade
            .as_ref()
            .and_then(|_| parts.extensions.remove::<OnUpgrade>());
        strip_hop_by_hop(&mut parts.headers, true);
        let client = match (use_h2c && upgrade.is_none(), &clients.h2c) {
            (true, Some(h2c)) => {
                parts.version = Version::HTTP_2;
                h2c
            }
            _ => {
                parts.version = Version::HTTP_11;
                &clients.http1
            }
        };
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        let request = Request::from_parts(parts, ForwardBody::from_body(body));
        let mut response = client
            .request(request)
            .await
            .map_err(|error| classify(error, target))?;
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let agreed = switching
            .then(|| response.headers().get(header::UPGRADE).cloned())
            .flatten();
        strip_hop_by_hop(response.headers_mut(), false);
        let mut response = response.map(ForwardedBody::unpooled);
        if let (Some(protocol), Some(client_upgrade)) = (agreed, client_upgrade) {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(client_upgrade, backend_upgrade));
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        Ok(response)
    }
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Copies bytes both ways between an upgraded client connection and the backend's.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "upgraded connection ended with an error");
    }
}

/// The path and query of `uri` alone (what an HTTP/1.1 request line carries to an origin).
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(_) if uri.authority().is_none() && uri.scheme().is_none() => uri.clone(),
        Some(path_and_query) => Uri::from(path_and_query.clone()),
        None => Uri::from_static("/"),
    }
}

/// `target` as a `Host` header value.
fn host_of(target: SocketAddr) -> Result<HeaderValue, ProxyError> {
    HeaderValue::try_from(target.to_string())
        .map_err(|e| ProxyError::InvalidRequest(format!("backend address {target}: {e}")))
}

/// `http://{target}{path and query of uri}`.
fn backend_uri(uri: &Uri, target: SocketAddr) -> Result<Uri, ProxyError> {
    let authority = Authority::try_from(target.to_string())
        .map_err(|e| ProxyError::InvalidRequest(format!("backend address {target}: {e}")))?;
    let path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| ProxyError::InvalidRequest(e.to_string()))
}

/// The headers that concern one connection only (RFC 9110 §7.6.1, plus the non-standard ones
/// proxies have always removed).
pub(crate) const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and those `Connection` names. `TE` is a request header; only
/// `TE: trailers` survives it (gRPC needs it end to end).
fn strip_hop_by_hop(headers: &mut HeaderMap, request: bool) {
    if headers.is_empty() {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if request
        && let Some(te) = headers.get(header::TE)
        && !te.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(header::TE);
    }
}

fn classify(error: hyper_util::client::legacy::Error, target: SocketAddr) -> ProxyError {
    let reason = error_chain(&error);
    if error.is_connect() {
        if timed_out(&error) {
            ProxyError::ConnectTimeout { target }
        } else {
            ProxyError::Connect { target, reason }
        }
    } else {
        ProxyError::Upstream { target, reason }
    }
}

fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// The error and its sources, joined with `: `, so the response says what really happened
/// ("client error (Connect): tcp connect error: Connection refused").
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let text = source.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        current = source.source();
    }
    message
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The body a [`Forwarder`] sends: an incoming body passes through as it is (no allocation on the
/// hot path of a proxy), any other body is boxed.
#[derive(Debug)]
pub(crate) enum ForwardBody {
    Incoming(Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl ForwardBody {
    pub(crate) fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        if let Some(incoming) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Incoming>>()
            && let Some(incoming) = incoming.take()
        {
            return Self::Incoming(incoming);
        }
        match slot {
            Some(body) => Self::Boxed(body.map_err(Into::into).boxed_unsync()),
            None => Self::Boxed(
                http_body_util::Empty::new()
                    .map_err(Into::into)
                    .boxed_unsync(),
            ),
        }
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Incoming(body) => body.is_end_stream(),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Incoming(body) => body.size_hint(),
            Self::Boxed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_uri_keeps_path_and_query_and_replaces_the_authority() {
        let uri: Uri = "http://hello.example.com/a/b?x=1".parse().unwrap();
        let rewritten = backend_uri(&uri, "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert_eq!(rewritten, "http://127.0.0.1:8080/a/b?x=1");
    }

    #[test]
    fn an_absolute_uri_is_sent_in_origin_form_and_an_origin_form_one_as_it_is() {
        let absolute: Uri = "http://hello.example.com/a/b?x=1".parse().unwrap();
        assert_eq!(origin_form(&absolute), "/a/b?x=1");
        let origin: Uri = "/healthz?probe=1".parse().unwrap();
        assert_eq!(origin_form(&origin), "/healthz?probe=1");
        let authority_only: Uri = "hello.example.com:80".parse().unwrap();
        assert_eq!(origin_form(&authority_only), "/");
    }

    #[test]
    fn an_origin_form_uri_gets_the_backend_authority() {
        let uri: Uri = "/healthz".parse().unwrap();
        let rewritten = backend_uri(&uri, "[::1]:9000".parse().unwrap()).unwrap();
        assert_eq!(rewritten, "http://[::1]:9000/healthz");
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, X-Private".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-private", "secret".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        headers.insert(header::HOST, "hello.example.com".parse().unwrap());
        headers.insert("k-proxy-request", "activator".parse().unwrap());
        strip_hop_by_hop(&mut headers, true);
        let mut left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "k-proxy-request"]);
    }

    #[test]
    fn te_trailers_survives_but_other_te_values_do_not() {
        let mut grpc = HeaderMap::new();
        grpc.insert(header::TE, "trailers".parse().unwrap());
        strip_hop_by_hop(&mut grpc, true);
        assert_eq!(grpc.get(header::TE).unwrap(), "trailers");

        let mut gzip = HeaderMap::new();
        gzip.insert(header::TE, "gzip".parse().unwrap());
        strip_hop_by_hop(&mut gzip, true);
        assert!(gzip.get(header::TE).is_none());
    }

    #[test]
    fn timeouts_map_to_504_and_other_failures_to_502() {
        let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            ProxyError::ConnectTimeout { target }.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ProxyError::Timeout {
                after: Duration::from_secs(1)
            }
            .status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let refused = ProxyError::Connect {
            target,
            reason: "connection refused".into(),
        };
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn an_error_response_says_what_failed_in_plain_text() {
        let response = ProxyError::Timeout {
            after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = futures::executor::block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        assert_eq!(body, "the backend did not answer within 1500ms\n");
    }
}
