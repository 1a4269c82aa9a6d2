//! The HTTP/1 client the [`Dispatcher`](super::Dispatcher) delivers with: hyper's
//! `client::conn::http1` over plain TCP ([`knative_core::http1`]'s driven connections), with a
//! small pool of idle connections per authority.
//!
//! Why not hyper-util's legacy `Client`: each of its requests goes through a pool checkout
//! (hashing, locking, a waiter queue) and a channel to a connection task spawned per connection,
//! which wakes that task to write the request and wakes the caller back with the response. Here
//! the caller's own task drives its connection while it waits: no connection task, no hand-off
//! between tasks.
//!
//! - Idle connections are reused last-in first-out (the most recently used is the most likely
//!   to be alive, and the oldest ones age out after [`IDLE_TIMEOUT`]).
//! - A pooled connection that the server closed while it was idle, or that is not ready, is
//!   discarded before anything is sent on it, and the request goes to another (or a new)
//!   connection; a request hyper hands back unsent is resent the same way. Any other error is
//!   the caller's, whose retry policy decides.
//! - Only `http` URIs: TLS is not part of the in-cluster data plane.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use knative_core::http1::{DrivenConn, IdleConns};
use tokio::net::TcpStream;

/// How long an idle connection stays in the pool.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most idle connections kept per authority.
pub(crate) const MAX_IDLE_PER_AUTHORITY: usize = 1024;

type Conn = DrivenConn<Full<Bytes>>;

/// Connections per authority, shared by clones.
#[derive(Clone, Default)]
pub(crate) struct HttpClient {
    /// Keyed by the authority as written (two spellings of a host get two pools, which is
    /// harmless) with [`Fnv`]: `Authority`'s own `Hash` feeds SipHash one lower-cased byte at a
    /// time, which cost more than the rest of a checkout.
    authorities: Arc<Mutex<Pools>>,
}

type Pools = HashMap<Box<str>, Pool, BuildHasherDefault<Fnv>>;

/// FNV-1a, for short keys of our own.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What is kept per authority.
struct Pool {
    /// The `Host` header of its requests.
    host: HeaderValue,
    idle: IdleConns<Box<DrivenConn<Full<Bytes>>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// POSTs `body` with `headers` and `extra` headers to `destination` and reads the response
    /// body (at most `max_body` bytes). The error is a readable reason.
    pub(crate) async fn post(
        &self,
        destination: &Uri,
        headers: &HeaderMap,
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
        max_body: usize,
    ) -> Result<Response<Bytes>, String> {
        if destination.scheme_str() != Some("http") {
            return Err(format!(
                "unsupported URI {destination}: only http:// destinations are supported"
            ));
        }
        let authority = destination
            .authority()
            .ok_or_else(|| format!("URI {destination} has no host"))?;
        let (host, mut pooled) = self.checkout(authority)?;
        // Built with room for all, rather than cloned and grown by the extra ones.
        let mut all = HeaderMap::with_capacity(headers.len() + extra.len() + 1);
        all.insert(http::header::HOST, host);
        for (name, value) in extra {
            all.insert(name.clone(), value.clone());
        }
        for (name, value) in headers {
            // Ours win over the same header in `headers`, as an insert after them would.
            if name != http::header::HOST && !extra.iter().any(|(extra, _)| extra == name) {
                all.append(name.clone(), value.clone());
            }
        }
        let path = destination
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from(path);
        *request.headers_mut() = all;

        loop {
            let (mut conn, reused) = match pooled.take() {
                Some(conn) => (conn, true),
                None => (connect(authority).await?, false),
            };
            if !conn.ready().await {
                if reused {
                    pooled = self.checkout(authority)?.1;
                    continue;
                }
                return Err(format!(
                    "connection to {authority} closed before the request"
                ));
            }
            let response = match conn.drive(|sender| sender.try_send_request(request)).await {
                Ok(response) => response,
                Err(mut e) => match e.take_message() {
                    // Not sent: another connection may take it.
                    Some(unsent) if reused => {
                        request = unsent;
                        continue;
                    }
                    _ => return Err(error_chain(&e.into_error())),
                },
            };
            let (parts, body) = response.into_parts();
            let body = conn
                .drive(|_| Limited::new(body, max_body).collect())
                .await
                .map_err(|e| format!("reading the response body: {e}"))?
                .to_bytes();
            if conn.reusable() {
                self.checkin(authority, conn);
            }
            return Ok(Response::from_parts(parts, body));
        }
    }

    /// The `Host` header for `authority` and its most recently used idle connection that may
    /// still be open, if any.
    fn checkout(&self, authority: &Authority) -> Result<(HeaderValue, Option<Box<Conn>>), String> {
        let mut authorities = self.authorities.lock().unwrap_or_else(|e| e.into_inner());
        let pool = match authorities.get_mut(authority.as_str()) {
            Some(pool) => pool,
            None => {
                let host = match authority.as_str().rsplit_once('@') {
                    Some((_, host)) => host,
                    None => authority.as_str(),
                };
                let host = HeaderValue::from_str(host).map_err(|e| format!("invalid host: {e}"))?;
                authorities
                    .entry(authority.as_str().into())
                    .or_insert(Pool {
                        host,
                        idle: IdleConns::default(),
                    })
            }
        };
        Ok((pool.host.clone(), pool.idle.checkout(IDLE_TIMEOUT)))
    }

    fn checkin(&self, authority: &Authority, conn: Box<Conn>) {
        let mut authorities = self.authorities.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = authorities.get_mut(authority.as_str()) {
            pool.idle
                .checkin(conn, IDLE_TIMEOUT, MAX_IDLE_PER_AUTHORITY);
        }
    }

    /// Idle connections in the pool to `authority` (for tests).
    #[cfg(test)]
    fn idle_count(&self, authority: &str) -> usize {
        self.authorities
            .lock()
            .unwrap()
            .get(authority)
            .map_or(0, |pool| pool.idle.len())
    }
}

/// Opens a TCP connection (no Nagle delay) and does the HTTP/1 handshake.
/// Boxed: a connection is moved in and out of its pool on every request.
async fn connect(authority: &Authority) -> Result<Box<Conn>, String> {
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>();
    let stream = match ip {
        Ok(ip) => TcpStream::connect((ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    }
    .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let conn = Conn::handshake(stream)
        .await
        .map_err(|e| format!("connecting to {authority}: {}", error_chain(&e)))?;
    Ok(Box::new(conn))
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const OK: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok";
    const OK_CLOSE: &[u8] =
        b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

    /// A raw HTTP/1 server on loopback that answers each request with `answer(n)` (n counts
    /// requests over all connections) and then closes the connection if `close(n)`. Counts the
    /// connections it accepted.
    struct TestServer {
        uri: Uri,
        authority: String,
        accepted: Arc<AtomicUsize>,
    }

    async fn test_server(
        delay: Duration,
        answer: fn(usize) -> &'static [u8],
        close: fn(usize) -> bool,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers up to the blank line, then content-length bytes.
                        let end = loop {
                            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buffer.len() < end + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.drain(..end + length);
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        if stream.write_all(answer(n)).await.is_err() {
                            return;
                        }
                        if close(n) {
                            // Later than the response: the client has pooled the connection
                            // by then, unless the response said `connection: close`.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            return;
                        }
                    }
                });
            }
        });
        TestServer {
            uri: format!("http://{authority}/path").parse().unwrap(),
            authority,
            accepted,
        }
    }

    async fn post(client: &HttpClient, uri: &Uri) -> Result<Response<Bytes>, String> {
        client
            .post(uri, &HeaderMap::new(), &[], Bytes::from_static(b"{}"), 1024)
            .await
    }

    #[tokio::test]
    async fn an_idle_connection_is_reused() {
        let server = test_server(Duration::ZERO, |_| OK, |_| false).await;
        let client = HttpClient::default();
        for _ in 0..5 {
            let response = post(&client, &server.uri).await.unwrap();
            assert_eq!(response.status(), 202);
            assert_eq!(response.body().as_ref(), b"ok");
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.idle_count(&server.authority), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_reused() {
        let server = test_server(Duration::ZERO, |_| OK_CLOSE, |_| true).await;
        let client = HttpClient::default();
        for _ in 0..3 {
            let response = post(&client, &server.uri).await.unwrap();
            assert_eq!(response.status(), 202);
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
        assert_eq!(client.idle_count(&server.authority), 0);
    }

    #[tokio::test]
    async fn a_request_goes_to_a_new_connection_when_the_idle_one_was_closed_silently() {
        // The first connection answers without `connection: close` and then closes: the pooled
        // connection is dead when the second request comes.
        let server = test_server(Duration::ZERO, |_| OK, |n| n == 0).await;
        let client = HttpClient::default();
        post(&client, &server.uri).await.unwrap();
        assert_eq!(client.idle_count(&server.authority), 1);
        // Let the server close the pooled connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = tokio::time::timeout(Duration::from_secs(5), post(&client, &server.uri))
            .await
            .expect("no answer: the request went to the dead connection")
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_open_several_connections() {
        let server = test_server(Duration::from_millis(100), |_| OK, |_| false).await;
        let client = HttpClient::default();
        let requests = (0..4).map(|_| {
            let (client, uri) = (client.clone(), server.uri.clone());
            tokio::spawn(async move { post(&client, &uri).await })
        });
        for request in requests.collect::<Vec<_>>() {
            assert_eq!(request.await.unwrap().unwrap().status(), 202);
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 4);
        assert_eq!(client.idle_count(&server.authority), 4);
    }

    #[tokio::test]
    async fn a_connection_abandoned_mid_request_is_not_reused() {
        let server = test_server(Duration::from_millis(300), |_| OK, |_| false).await;
        let client = HttpClient::default();
        let timed_out =
            tokio::time::timeout(Duration::from_millis(50), post(&client, &server.uri)).await;
        assert!(timed_out.is_err());
        assert_eq!(client.idle_count(&server.authority), 0);
        assert_eq!(post(&client, &server.uri).await.unwrap().status(), 202);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        let error = post(&HttpClient::default(), &uri).await.unwrap_err();
        assert!(error.contains("connecting to"), "{error}");
    }

    #[tokio::test]
    async fn an_https_destination_is_refused() {
        let uri: Uri = "https://127.0.0.1:1/".parse().unwrap();
        let error = post(&HttpClient::default(), &uri).await.unwrap_err();
        assert!(error.contains("only http://"), "{error}");
    }

    #[tokio::test]
    async fn the_request_is_sent_in_origin_form_with_a_host_header() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let uri: Uri = format!("http://{authority}/a/b?c=d").parse().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            stream.write_all(OK).await.unwrap();
            String::from_utf8(received).unwrap()
        });
        post(&HttpClient::default(), &uri).await.unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("POST /a/b?c=d HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_lowercase()
                .contains(&format!("host: {authority}\r\n")),
            "{head}"
        );
    }
}
