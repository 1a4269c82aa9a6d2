//! HTTP/1.1 connections to backends, pooled and driven by the task that uses them: the fast path
//! of the [`Forwarder`](super::proxy::Forwarder) for plain HTTP/1.1 requests.
//!
//! hyper-util's legacy `Client` spawns a task per connection: each request goes through a pool
//! checkout, a channel to that task (waking it to write the request) and a oneshot back (waking
//! the caller with the response), and every chunk of the response body crosses tasks again.
//! Here the task that forwards a request polls the connection itself while it waits for the
//! response head, and the [`ForwardedBody`] it hands back keeps polling the connection while the
//! response body streams; when the body has ended the connection goes back to the pool. No task,
//! no hand-off, no cross-task wake-up per request.
//!
//! - Idle connections are reused last-in first-out (the most recently used is the most likely to
//!   be alive; the oldest age out after the idle timeout).
//! - A pooled connection the backend closed while it was idle is discarded before anything is
//!   sent on it, and so is a request hyper hands back unsent: both go to another (or a new)
//!   connection. Any other failure is the caller's.
//! - A response body dropped before its end closes its connection (the backend may still be
//!   sending); one that ended returns it to the pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use knative_core::http1::{DrivenConn, IdleConns};
use tokio::net::TcpStream;

use super::proxy::{ForwardBody, ProxyError};

type Conn = DrivenConn<ForwardBody>;

/// How the pool connects and keeps connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolOptions {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_backend: usize,
}

/// Idle HTTP/1.1 connections per backend.
#[derive(Debug)]
pub(crate) struct Pool {
    options: PoolOptions,
    idle: Mutex<HashMap<SocketAddr, IdleConns<Box<Conn>>>>,
}

impl Pool {
    pub(crate) fn new(options: PoolOptions) -> Self {
        Self {
            options,
            idle: Mutex::default(),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `target` over a pooled or new
    /// connection; the response's body drives the connection and returns it to the pool.
    pub(crate) async fn send(
        self: &Arc<Self>,
        target: SocketAddr,
        mut request: Request<ForwardBody>,
    ) -> Result<Response<ForwardedBody>, ProxyError> {
        let mut pooled = self.checkout(target);
        loop {
            let (mut conn, reused) = match pooled.take() {
                Some(conn) => (conn, true),
                None => (self.connect(target).await?, false),
            };
            if !conn.ready().await {
                if reused {
                    pooled = self.checkout(target);
                    continue;
                }
                return Err(ProxyError::Upstream {
                    target,
                    reason: "the connection closed before the request was sent".into(),
                });
            }
            match conn.drive(|sender| sender.try_send_request(request)).await {
                Ok(response) => {
                    return Ok(response.map(|body| ForwardedBody {
                        body,
                        pooled: Some(Pooled {
                            conn,
                            pool: Arc::clone(self),
                            target,
                        }),
                        ended: false,
                    }));
                }
                Err(mut error) => match error.take_message() {
                    // Never sent: another connection may take it.
                    Some(unsent) if reused => {
                        request = unsent;
                        pooled = self.checkout(target);
                    }
                    _ => {
                        return Err(ProxyError::Upstream {
                            target,
                            reason: super::proxy::error_chain(&error.into_error()),
                        });
                    }
                },
            }
        }
    }

    /// The most recently used idle connection to `target` that may still be open.
    fn checkout(&self, target: SocketAddr) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(&target)?.checkout(self.options.idle_timeout)
    }

    fn checkin(&self, target: SocketAddr, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(target).or_default().checkin(
            conn,
            self.options.idle_timeout,
            self.options.max_idle_per_backend,
        );
    }

    /// Opens a TCP connection (no Nagle delay) and does the HTTP/1.1 handshake.
    async fn connect(&self, target: SocketAddr) -> Result<Box<Conn>, ProxyError> {
        let connecting = TcpStream::connect(target);
        let stream = match self.options.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(|_| ProxyError::ConnectTimeout { target })?,
            None => connecting.await,
        }
        .map_err(|e| ProxyError::Connect {
            target,
            reason: format!("tcp connect error: {e}"),
        })?;
        let _ = stream.set_nodelay(true);
        let conn = Conn::handshake(stream)
            .await
            .map_err(|e| ProxyError::Connect {
                target,
                reason: super::proxy::error_chain(&e),
            })?;
        Ok(Box::new(conn))
    }

    /// Idle connections kept for `target` (for tests).
    #[cfg(test)]
    pub(crate) fn idle_count(&self, target: SocketAddr) -> usize {
        self.idle
            .lock()
            .unwrap()
            .get(&target)
            .map_or(0, IdleConns::len)
    }
}

/// A connection lent to a response body, and where to return it.
struct Pooled {
    conn: Box<Conn>,
    pool: Arc<Pool>,
    target: SocketAddr,
}

/// The body of a forwarded response, streaming from the backend.
///
/// On the fast path (HTTP/1.1 to the backend) it also drives the backend connection while it is
/// read, and returns the connection to the pool once it has ended; dropped before its end, it
/// closes the connection instead.
pub struct ForwardedBody {
    body: Incoming,
    pooled: Option<Pooled>,
    ended: bool,
}

impl std::fmt::Debug for ForwardedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedBody")
            .field("body", &self.body)
            .field("pooled", &self.pooled.is_some())
            .field("ended", &self.ended)
            .finish()
    }
}

impl ForwardedBody {
    /// A body whose connection is driven elsewhere (hyper-util's client, h2c, upgrades).
    pub(crate) fn unpooled(body: Incoming) -> Self {
        Self {
            body,
            pooled: None,
            ended: false,
        }
    }

    /// Returns the connection to its pool if the body has ended and the connection may be
    /// reused; closes it otherwise.
    fn release(&mut self) {
        if let Some(Pooled { conn, pool, target }) = self.pooled.take()
            && (self.ended || self.body.is_end_stream())
            && conn.reusable()
        {
            pool.checkin(target, conn);
        }
    }
}

impl Body for ForwardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(pooled) = &mut this.pooled {
            pooled.conn.poll_connection(cx);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => {
                this.ended = true;
                this.release();
            }
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => {
                this.ended = true;
                this.release();
            }
            // A failed body leaves the connection in an unknown state: closed on drop.
            Poll::Ready(Some(Err(_))) => drop(this.pooled.take()),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ForwardedBody {
    fn drop(&mut self) {
        // A body with nothing to read (a HEAD response, a 204) may be dropped unpolled.
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    /// A raw HTTP/1.1 backend on loopback: reads each request head (bodiless requests only) and
    /// writes `answer(n)` (n counts requests over all connections), then closes the connection
    /// when `close(n)`. Counts the connections it accepted.
    async fn backend(
        answer: fn(usize) -> &'static [&'static [u8]],
        close: fn(usize) -> bool,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let end = loop {
                            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        buffer.drain(..end);
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        // The parts of the answer are written apart, so a body can arrive in
                        // several reads.
                        for part in answer(n) {
                            if stream.write_all(part).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if close(n) {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(PoolOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_backend: 16,
        }))
    }

    fn request(method: http::Method) -> Request<ForwardBody> {
        Request::builder()
            .method(method)
            .uri("/path")
            .header(http::header::HOST, "hello.example.com")
            .body(ForwardBody::from_body(Empty::<Bytes>::new()))
            .unwrap()
    }

    async fn get(pool: &Arc<Pool>, target: SocketAddr) -> (http::StatusCode, Bytes) {
        let response = pool.send(target, request(http::Method::GET)).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn a_connection_goes_back_to_the_pool_when_its_body_has_ended_and_is_reused() {
        let (target, accepted) = backend(|_| &[OK], |_| false).await;
        let pool = pool();
        for _ in 0..3 {
            let (status, body) = get(&pool, target).await;
            assert_eq!(status, 200);
            assert_eq!(body.as_ref(), b"hello");
            assert_eq!(pool.idle_count(target), 1);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_chunked_body_streams_in_parts_and_returns_its_connection() {
        let (target, accepted) = backend(
            |_| {
                &[
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
                    b"6\r\n world\r\n",
                    b"0\r\n\r\n",
                ]
            },
            |_| false,
        )
        .await;
        let pool = pool();
        let response = pool.send(target, request(http::Method::GET)).await.unwrap();
        let mut body = response.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames.concat(), b"hello world");
        assert!(frames.len() >= 2, "the parts arrived as one: {frames:?}");
        drop(body);
        assert_eq!(pool.idle_count(target), 1);
        get(&pool, target).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (target, accepted) = backend(
            |_| {
                &[
                    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel",
                    b"lo12345",
                ]
            },
            |_| false,
        )
        .await;
        let pool = pool();
        let response = pool.send(target, request(http::Method::GET)).await.unwrap();
        drop(response);
        assert_eq!(pool.idle_count(target), 0);
        let (_, body) = get(&pool, target).await;
        assert_eq!(body.as_ref(), b"hello12345");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_head_response_dropped_unread_returns_its_connection() {
        let (target, accepted) = backend(
            |_| &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"],
            |_| false,
        )
        .await;
        let pool = pool();
        let response = pool
            .send(target, request(http::Method::HEAD))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        drop(response);
        assert_eq!(pool.idle_count(target), 1);
        pool.send(target, request(http::Method::HEAD))
            .await
            .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_replaced_without_failing_the_request() {
        // The backend closes every connection after its answer, without saying so.
        let (target, accepted) = backend(|_| &[OK], |_| true).await;
        let pool = pool();
        for _ in 0..3 {
            let (status, body) = get(&pool, target).await;
            assert_eq!(status, 200);
            assert_eq!(body.as_ref(), b"hello");
            // Let the close arrive while the connection is idle.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_response_that_says_connection_close_does_not_return_its_connection() {
        let (target, _) = backend(
            |_| &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"],
            |_| true,
        )
        .await;
        let pool = pool();
        let (status, _) = get(&pool, target).await;
        assert_eq!(status, 200);
        assert_eq!(pool.idle_count(target), 0);
    }

    #[tokio::test]
    async fn concurrent_requests_get_connections_of_their_own() {
        let (target, accepted) = backend(|_| &[OK], |_| false).await;
        let pool = pool();
        let (a, b, c) = tokio::join!(get(&pool, target), get(&pool, target), get(&pool, target));
        for (status, body) in [a, b, c] {
            assert_eq!(status, 200);
            assert_eq!(body.as_ref(), b"hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_count(target), 3);
    }

    #[tokio::test]
    async fn a_backend_that_refuses_connections_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        drop(listener);
        let error = pool()
            .send(target, request(http::Method::GET))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ProxyError::Connect { target: t, reason } if *t == target && reason.contains("refused")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_backend_that_answers_garbage_is_an_upstream_error() {
        let (target, _) = backend(|_| &[b"NOT HTTP\r\n\r\n"], |_| true).await;
        let error = pool()
            .send(target, request(http::Method::GET))
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::Upstream { .. }), "{error:?}");
    }
}
