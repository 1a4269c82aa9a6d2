//! The queue-proxy's fast path for plain HTTP/1.1 exchanges.
//!
//! Nearly all traffic through a queue-proxy is plain HTTP/1.1: a keep-alive request with no body
//! or a `Content-Length` one, answered with a `Content-Length` or chunked response. For these,
//! hyper's server and client (request and response values, header maps, body frames, a task and a
//! channel per exchange) are about a fifth of the proxy's CPU (docs/performance.md). This path
//! forwards such an exchange as bytes: it parses the request head with `httparse` (the parser
//! hyper uses) to find where the request ends and to see that it is plain, writes it unchanged to
//! a pooled connection to the user container, parses the response head the same way and relays
//! the response with its framing. The queue-proxy's rules apply as on the hyper path: the drainer
//! sees the request, the [timeouts](super::super::timeout) (same deadlines, same `504`), the
//! [stats](super::super::stats) (`K-Proxy-Request` counted as proxied; user metrics by status)
//! and the [breaker](super::super::breaker) (`503` when its queue is full).
//!
//! A connection starts on this path and leaves it for good, with the bytes already read, at the
//! first request that is not plain; hyper then serves the rest of the connection. Not plain:
//!
//! - anything but HTTP/1.1 (HTTP/1.0, h2c's preface), a malformed head, one larger than the
//!   limit or with more than 100 headers (hyper answers `400` or `431`);
//! - a target that is not origin-form (`/path`), no `Host` or more than one;
//! - `Transfer-Encoding`, `Connection`, `Upgrade`, `Expect`, `TE` or another hop-by-hop header:
//!   the hyper path strips them, tunnels upgrades and streams chunked bodies;
//! - probes (`K-Network-Probe`, `K-Kubelet-Probe`, a `kube-probe/` user agent): the
//!   [probe layer](super::super::probe) answers them;
//! - a body that has not fully arrived with the head: hyper streams it.
//!
//! Responses are relayed as they come: `Content-Length`, chunked (passed through, chunk sizes
//! parsed to find the end) or, without either, until the backend closes (then the client's
//! connection closes too). A response head with hop-by-hop headers or from an HTTP/1.0 backend is
//! rewritten as HTTP/1.1 without them. A backend connection is reused only after a complete
//! response that allows it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use knative_core::http1::IdleConns;

use crate::dataplane::breaker::{Breaker, BreakerPermit};
use crate::dataplane::drain::Drainer;
use crate::dataplane::probe::{KUBE_PROBE_USER_AGENT, KUBELET_PROBE_HEADER, NETWORK_PROBE_HEADER};
use crate::dataplane::proxy::{HOP_BY_HOP, ProxyError};
use crate::dataplane::stats::{PROXY_HEADER, SharedStats};
use crate::dataplane::timeout::{TIMEOUT_MESSAGE, Timeouts};

/// The most headers a head may have, as in hyper: a request with more goes to hyper (which
/// answers `431`), a response with more is a `502`.
const MAX_HEADERS: usize = 100;
/// The longest response head read, as hyper's client has it (its default buffer limit).
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;
/// How much a read asks for at least.
const READ_SIZE: usize = 8192;
/// How large the response buffer grows: reads double it from [`READ_SIZE`] while they fill it,
/// so a large body takes a few large reads and writes. A read fills all the buffer has, so the
/// size it reached serves the connection's next responses too.
const MAX_READ_SIZE: usize = 64 * 1024;
/// A response buffer larger than this (a huge response head) is given back after the exchange.
const MAX_KEPT_BUFFER: usize = 2 * MAX_READ_SIZE;

/// What every connection on the fast path shares.
#[derive(Debug)]
pub(super) struct FastPath {
    pub(super) stats: SharedStats,
    pub(super) breaker: Option<Breaker>,
    pub(super) drainer: Drainer,
    pub(super) timeouts: Timeouts,
    pub(super) target: SocketAddr,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) header_read_timeout: Duration,
    /// The longest request head read before handing the connection to hyper (which then answers
    /// `431`).
    pub(super) max_head: usize,
    pub(super) pool: Pool,
}

/// A client connection the fast path hands to hyper, with the bytes it has read and not used.
#[derive(Debug)]
pub(super) struct Handoff {
    stream: TcpStream,
    read: BytesMut,
}

impl Handoff {
    /// A connection that has not been read from.
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
        }
    }
}

impl AsyncRead for Handoff {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            if self.read.is_empty() {
                // hyper has its own buffer from here on.
                self.read = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Handoff {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl FastPath {
    /// Serves `client` until it closes, `stop` turns true while it is idle, or a request that is
    /// not plain arrives: then the connection is handed back for hyper to serve.
    pub(super) async fn serve(
        &self,
        mut client: TcpStream,
        mut stop: watch::Receiver<bool>,
    ) -> Option<Handoff> {
        let mut read = BytesMut::with_capacity(READ_SIZE);
        let mut response = BytesMut::with_capacity(READ_SIZE);
        // As in hyper, the header read timeout runs from the end of one response (or the
        // connection's start) until the next request head has arrived: it also closes idle
        // connections. One timer per connection, not per request: it is set once and, when it
        // fires before the current deadline (which only moves later), set again.
        let mut timer = Box::pin(tokio::time::sleep(self.header_read_timeout));
        // The same for the exchanges' deadlines (the revision's timeouts).
        let mut exchange_timer = Box::pin(tokio::time::sleep(self.header_read_timeout));
        loop {
            let deadline = Instant::now() + self.header_read_timeout;
            let request = loop {
                match classify_request(&read) {
                    Head::Partial if read.len() < self.max_head => {}
                    Head::Plain(request) if request.len <= read.len() => break request,
                    // Not plain, too large, or a body still to come.
                    _ => {
                        return Some(Handoff {
                            stream: client,
                            read,
                        });
                    }
                }
                read.reserve(READ_SIZE);
                let idle = read.is_empty();
                let n = tokio::select! {
                    biased;
                    n = client.read_buf(&mut read) => n,
                    // Idle between requests: a shutdown closes the connection.
                    Ok(_) = stop.wait_for(|stop| *stop), if idle => return None,
                    () = &mut timer => {
                        if Instant::now() < deadline {
                            timer.as_mut().reset(deadline);
                            continue;
                        }
                        return None;
                    }
                };
                match n {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            };
            let keep_alive = self
                .exchange(
                    &mut client,
                    &read[..request.len],
                    &request,
                    &mut response,
                    &mut exchange_timer,
                )
                .await;
            read.advance(request.len);
            if response.capacity() > MAX_KEPT_BUFFER {
                response = BytesMut::with_capacity(READ_SIZE);
            }
            if !keep_alive || *stop.borrow() {
                return None;
            }
        }
    }

    /// Forwards one plain request and relays its response; whether the client connection may
    /// serve another request.
    async fn exchange(
        &self,
        client: &mut TcpStream,
        bytes: &[u8],
        request: &PlainRequest,
        response: &mut BytesMut,
        timer: &mut Pin<Box<Sleep>>,
    ) -> bool {
        self.drainer.touch();
        let mut in_flight = self.stats.request_started(request.proxied);
        let (total, first_byte) = self.timeouts.deadlines(Instant::now());
        response.clear();
        let started = self.start(client, bytes, request, response);
        let started = until(timer, first_byte, started).await.unwrap_or_else(|| {
            Err(Early::Answer(
                StatusCode::GATEWAY_TIMEOUT,
                TIMEOUT_MESSAGE.to_owned(),
            ))
        });
        let mut started = match started {
            Ok(started) => started,
            Err(Early::Answer(status, message)) => {
                in_flight.respond(status.as_u16());
                return write_text(client, status, &message, request.head_method)
                    .await
                    .is_ok();
            }
            Err(Early::ClientGone) => return false,
        };
        in_flight.respond(started.head.status);
        let relayed = self
            .relay(
                client,
                &mut started,
                response,
                (total, self.timeouts.idle),
                timer,
            )
            .await;
        let Started {
            conn, head, permit, ..
        } = started;
        // The slot is free once the response is over, whichever way it ended.
        drop(permit);
        drop(in_flight);
        match relayed {
            Ok(()) => {
                if head.keep_alive {
                    self.pool.checkin(conn);
                }
                head.framing != Framing::UntilClose
            }
            Err(_) => false,
        }
    }

    /// Takes a breaker slot, sends the request and reads the response head into `response`
    /// (passing informational responses on to the client).
    async fn start(
        &self,
        client: &mut TcpStream,
        bytes: &[u8],
        request: &PlainRequest,
        response: &mut BytesMut,
    ) -> Result<Started, Early> {
        let permit = match &self.breaker {
            Some(breaker) => Some(breaker.acquire().await.map_err(|error| {
                Early::Answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            })?),
            None => None,
        };
        let target = self.target;
        let mut retried = false;
        loop {
            let (mut conn, reused) = match self.pool.checkout() {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            let sent = conn.write_all(bytes).await;
            let head = match sent {
                Ok(()) => read_response_head(&mut conn, client, request, response).await?,
                Err(error) => Err(error.to_string()),
            };
            match head {
                Ok(head) => {
                    return Ok(Started { conn, head, permit });
                }
                // A kept-alive connection the backend closed without answering (most likely as
                // the request went out): an idempotent request may be sent again (RFC 9110
                // §9.2.2), once, on another connection.
                Err(_) if reused && !retried && response.is_empty() && request.idempotent => {
                    retried = true;
                }
                Err(reason) => {
                    return Err(Early::Answer(
                        StatusCode::BAD_GATEWAY,
                        ProxyError::Upstream { target, reason }.to_string(),
                    ));
                }
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, Early> {
        let target = self.target;
        let connecting = TcpStream::connect(target);
        let connected = match self.connect_timeout {
            Some(limit) => match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected,
                Err(_) => {
                    let error = ProxyError::ConnectTimeout { target };
                    return Err(Early::Answer(error.status(), error.to_string()));
                }
            },
            None => connecting.await,
        };
        let stream = connected.map_err(|e| {
            let error = ProxyError::Connect {
                target,
                reason: format!("tcp connect error: {e}"),
            };
            Early::Answer(error.status(), error.to_string())
        })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Writes the response (its head is in `response`, maybe with the start of its body) to the
    /// client and relays the rest of the body within the deadlines.
    async fn relay(
        &self,
        client: &mut TcpStream,
        started: &mut Started,
        response: &mut BytesMut,
        (total, idle): (Option<Instant>, Option<Duration>),
        timer: &mut Pin<Box<Sleep>>,
    ) -> io::Result<()> {
        let head = &mut started.head;
        if let Some(rewritten) = head.rewritten.take() {
            let body = response.split_off(head.len);
            response.clear();
            response.extend_from_slice(&rewritten);
            head.len = response.len();
            response.unsplit(body);
        }
        let mut body = Body::new(head.framing);
        let mut done = body.consume(&response[head.len..])?;
        if let Some(used) = done {
            // Anything after the end is not ours to relay: the connection is not reused.
            if head.len + used < response.len() {
                head.keep_alive = false;
                response.truncate(head.len + used);
            }
        }
        let mut grow = false;
        loop {
            client.write_all(response).await?;
            if done.is_some() {
                return Ok(());
            }
            let spare = response.capacity();
            response.clear();
            response.reserve(if grow {
                (2 * spare).min(MAX_READ_SIZE)
            } else {
                READ_SIZE
            });
            let spare = response.capacity();
            let deadline = [
                total,
                idle.and_then(|idle| Instant::now().checked_add(idle)),
            ]
            .into_iter()
            .flatten()
            .min();
            let read = started.conn.read_buf(response);
            let n = until(timer, deadline, read)
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "response timed out"))??;
            if n == 0 {
                if body.framing == Framing::UntilClose {
                    head.keep_alive = false;
                    return Ok(());
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the backend closed the connection in the middle of the response",
                ));
            }
            grow = n == spare;
            done = body.consume(response)?;
            if let Some(used) = done
                && used < response.len()
            {
                head.keep_alive = false;
                response.truncate(used);
            }
        }
    }
}

/// Runs `future` until `deadline` (if any) on a connection's `timer`, which is only set again
/// when it would fire too late or fires too early: deadlines mostly move later from one request
/// to the next, and then no request pays for a timer of its own.
async fn until<F: Future>(
    timer: &mut Pin<Box<Sleep>>,
    deadline: Option<Instant>,
    future: F,
) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(future.await);
    };
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    let mut future = std::pin::pin!(future);
    loop {
        tokio::select! {
            biased;
            output = &mut future => return Some(output),
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// Reads a response head from `conn` into `response`, passing informational (1xx) responses on
/// to the client. The outer error ends the exchange; the inner one says why the backend failed.
async fn read_response_head(
    conn: &mut TcpStream,
    client: &mut TcpStream,
    request: &PlainRequest,
    response: &mut BytesMut,
) -> Result<Result<ResponseHead, String>, Early> {
    loop {
        match classify_response(response, request.head_method) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Informational(len)) => {
                if client.write_all(&response[..len]).await.is_err() {
                    return Err(Early::ClientGone);
                }
                response.advance(len);
                continue;
            }
            Ok(Parsed::Head(head)) => return Ok(Ok(head)),
            Err(reason) => return Ok(Err(reason)),
        }
        if response.len() >= MAX_RESPONSE_HEAD {
            return Ok(Err(format!(
                "the response head is larger than {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        response.reserve(READ_SIZE);
        match conn.read_buf(response).await {
            Ok(0) => {
                return Ok(Err(
                    "the connection closed before the response head was complete".into(),
                ));
            }
            Ok(_) => {}
            Err(error) => return Ok(Err(error.to_string())),
        }
    }
}

/// An exchange that ended before a response from the backend.
enum Early {
    /// Answer the client with this.
    Answer(StatusCode, String),
    /// The client cannot be written to.
    ClientGone,
}

/// An exchange whose response head has arrived.
struct Started {
    conn: TcpStream,
    head: ResponseHead,
    permit: Option<BreakerPermit>,
}

/// Answers with `message` (and a newline) as a `text/plain` body, without the body for `HEAD`.
async fn write_text(
    client: &mut TcpStream,
    status: StatusCode,
    message: &str,
    head_method: bool,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message.len() + 1,
    );
    if !head_method {
        text.push_str(message);
        text.push('\n');
    }
    client.write_all(text.as_bytes()).await
}

/// Idle connections to the user container ([`IdleConns`], as the forwarder keeps them).
#[derive(Debug)]
pub(super) struct Pool {
    idle: Mutex<IdleConns<TcpStream>>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            idle: Mutex::default(),
            idle_timeout,
            max_idle,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, IdleConns<TcpStream>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that has not timed out and that the backend has
    /// not closed (as far as the socket knows without a system call).
    fn checkout(&self) -> Option<TcpStream> {
        self.idle().checkout(self.idle_timeout)
    }

    fn checkin(&self, conn: TcpStream) {
        self.idle().checkin(conn, self.idle_timeout, self.max_idle);
    }

    /// Closes the connections idle for longer than the idle timeout.
    pub(super) fn reap(&self) {
        self.idle()
            .drop_expired(std::time::Instant::now(), self.idle_timeout);
    }

    /// How many connections are idle.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.idle().len()
    }
}

/// A plain request: its head and body are the first `len` bytes read.
#[derive(Debug, PartialEq, Eq)]
struct PlainRequest {
    len: usize,
    proxied: bool,
    /// Safe to send again when a reused connection turned out closed.
    idempotent: bool,
    /// A `HEAD` request, whose response has no body whatever its headers say.
    head_method: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Plain(PlainRequest),
    Partial,
    /// Not for the fast path.
    Other,
}

fn classify_request(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    if request.version != Some(1) || !request.path.is_some_and(|p| p.starts_with('/')) {
        return Head::Other;
    }
    let (mut hosts, mut length, mut proxied) = (0, None, false);
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Head::Other;
            }
            let Some(n) = parse_length(header.value) else {
                return Head::Other;
            };
            length = Some(n);
        } else if name.eq_ignore_ascii_case(PROXY_HEADER) {
            proxied = true;
        } else if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("te")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case(NETWORK_PROBE_HEADER)
            || name.eq_ignore_ascii_case(KUBELET_PROBE_HEADER)
            || (name.eq_ignore_ascii_case("user-agent")
                && header.value.starts_with(KUBE_PROBE_USER_AGENT.as_bytes()))
        {
            return Head::Other;
        }
    }
    if hosts != 1 {
        return Head::Other;
    }
    let Some(len) = usize::try_from(length.unwrap_or(0))
        .ok()
        .and_then(|body| head_len.checked_add(body))
    else {
        return Head::Other;
    };
    let method = request.method.unwrap_or_default();
    Head::Plain(PlainRequest {
        len,
        proxied,
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        head_method: method == "HEAD",
    })
}

/// One of the hop-by-hop headers the hyper path strips ([`HOP_BY_HOP`]; `TE` is apart: only
/// requests carry it).
fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop.as_str()))
}

/// A `Content-Length` value: decimal digits only, as RFC 9110 §8.6 has it.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body (`HEAD`, `204`, `304`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked: the last chunk and the trailers end it.
    Chunked,
    /// Neither: the body ends when the backend closes the connection.
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
struct ResponseHead {
    len: usize,
    status: u16,
    framing: Framing,
    /// The backend lets the connection be reused.
    keep_alive: bool,
    /// The head to send instead (HTTP/1.1, without hop-by-hop headers), when it has to change.
    rewritten: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Head(ResponseHead),
    /// An informational response of this many bytes, to pass on; the real one follows.
    Informational(usize),
    Partial,
}

fn classify_response(bytes: &[u8], head_request: bool) -> Result<Parsed, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(error) => return Err(format!("invalid response head: {error}")),
    };
    let status = response.code.unwrap_or_default();
    match status {
        101 => return Err("the backend switched protocols without being asked to".into()),
        100..=199 => return Ok(Parsed::Informational(len)),
        _ => {}
    }
    let http10 = response.version == Some(0);
    let (mut chunked, mut encoded, mut length) = (false, false, None);
    let (mut close, mut keep_alive_token, mut hop_by_hop) = (false, false, http10);
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(header.value)
                .ok_or_else(|| "invalid Content-Length in the response".to_owned())?;
            if length.is_some_and(|before| before != n) {
                return Err("conflicting Content-Length values in the response".into());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Chunked when it is the last coding.
            chunked = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            hop_by_hop = true;
            for token in header.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is_hop_by_hop(name) || name.eq_ignore_ascii_case("te") {
            hop_by_hop = true;
        }
    }
    let keep_alive = !close && (!http10 || keep_alive_token);
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    // A length next to a transfer coding must not reach the client (RFC 9112 §6.3).
    let rewrite = hop_by_hop || (encoded && length.is_some());
    let rewritten = rewrite.then(|| {
        let reason = response.reason.unwrap_or_default();
        rewrite_head(status, reason, response.headers, encoded)
    });
    Ok(Parsed::Head(ResponseHead {
        len,
        status,
        framing,
        keep_alive,
        rewritten,
    }))
}

/// An HTTP/1.1 head with the response's headers but the hop-by-hop ones, those `Connection`
/// names, and `Content-Length` when there is a transfer coding.
fn rewrite_head(status: u16, reason: &str, headers: &[httparse::Header], encoded: bool) -> Vec<u8> {
    let named: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for header in headers {
        let name = header.name;
        let keep = if name.eq_ignore_ascii_case("transfer-encoding") {
            // The chunked framing is relayed as it is; the client must know it.
            true
        } else if name.eq_ignore_ascii_case("content-length") {
            !encoded
        } else {
            !(is_hop_by_hop(name)
                || name.eq_ignore_ascii_case("te")
                || named
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name.as_bytes())))
        };
        if keep {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(header.value);
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Follows a response body through its framing to find its end.
#[derive(Debug)]
struct Body {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In the chunk-size line: its value so far and how many digits.
    Size(u64, u8),
    /// In a chunk extension, up to the end of the line.
    Extension(u64),
    /// After the size line's CR.
    SizeLf(u64),
    /// In chunk data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    FinalLf,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed chunked response body: {what}"),
    )
}

impl Body {
    fn new(framing: Framing) -> Self {
        Self {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunk: Chunk::Size(0, 0),
        }
    }

    /// Takes in the next bytes of the body; once it has ended, how many of them belonged to it.
    fn consume(&mut self, bytes: &[u8]) -> io::Result<Option<usize>> {
        match self.framing {
            Framing::Empty => Ok(Some(0)),
            Framing::UntilClose => Ok(None),
            Framing::Length(_) => {
                let n = usize::try_from(self.remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                self.remaining -= n as u64;
                Ok((self.remaining == 0).then_some(n))
            }
            Framing::Chunked => self.consume_chunked(bytes),
        }
    }

    fn consume_chunked(&mut self, bytes: &[u8]) -> io::Result<Option<usize>> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.chunk = match self.chunk {
                Chunk::Size(value, digits) => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(malformed("chunk size too large"));
                        }
                        let digit = (b as char).to_digit(16).unwrap_or_default();
                        Chunk::Size(value * 16 + u64::from(digit), digits + 1)
                    }
                    _ if digits == 0 => return Err(malformed("no chunk size")),
                    b';' | b' ' | b'\t' => Chunk::Extension(value),
                    b'\r' => Chunk::SizeLf(value),
                    _ => return Err(malformed("bad chunk size")),
                },
                Chunk::Extension(value) => match b {
                    b'\r' => Chunk::SizeLf(value),
                    b'\n' => return Err(malformed("bare LF after a chunk size")),
                    _ => Chunk::Extension(value),
                },
                Chunk::SizeLf(value) => match b {
                    b'\n' if value == 0 => Chunk::TrailerStart,
                    b'\n' => {
                        self.remaining = value;
                        Chunk::Data
                    }
                    _ => return Err(malformed("no LF after a chunk size")),
                },
                Chunk::Data => {
                    let available = (bytes.len() - i) as u64;
                    let n = self.remaining.min(available);
                    self.remaining -= n;
                    i += n as usize;
                    if self.remaining == 0 {
                        self.chunk = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    _ => return Err(malformed("no CRLF after chunk data")),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Size(0, 0),
                    _ => return Err(malformed("no CRLF after chunk data")),
                },
                Chunk::TrailerStart => match b {
                    b'\r' => Chunk::FinalLf,
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLine => match b {
                    b'\n' => Chunk::TrailerStart,
                    _ => Chunk::TrailerLine,
                },
                Chunk::FinalLf => match b {
                    b'\n' => return Ok(Some(i + 1)),
                    _ => return Err(malformed("no LF at the end")),
                },
            };
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(bytes: &[u8]) -> PlainRequest {
        match classify_request(bytes) {
            Head::Plain(request) => request,
            other => panic!("not plain: {other:?}"),
        }
    }

    #[test]
    fn a_get_with_a_host_is_plain_and_ends_with_its_head() {
        let bytes = b"GET /greet?x=1 HTTP/1.1\r\nHost: hello\r\nAccept: */*\r\n\r\nGET /next";
        let request = plain(bytes);
        assert_eq!(request.len, bytes.len() - b"GET /next".len());
        assert!(request.idempotent && !request.proxied && !request.head_method);
    }

    #[test]
    fn a_content_length_body_belongs_to_the_request() {
        let bytes = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let mut pipelined = bytes.to_vec();
        pipelined.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let request = plain(&pipelined);
        assert_eq!(request.len, bytes.len());
        assert!(!request.idempotent);
    }

    #[test]
    fn k_proxy_request_marks_the_request_proxied() {
        assert!(plain(b"GET / HTTP/1.1\r\nHost: h\r\nK-Proxy-Request: activator\r\n\r\n").proxied);
    }

    #[test]
    fn an_incomplete_head_is_partial() {
        assert_eq!(
            classify_request(b"GET / HTTP/1.1\r\nHost: h\r\n"),
            Head::Partial
        );
        assert_eq!(classify_request(b""), Head::Partial);
    }

    #[test]
    fn requests_the_hyper_path_must_serve_are_not_plain() {
        for bytes in [
            &b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nK-Network-Probe: queue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nK-Kubelet-Probe: queue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: kube-probe/1.30\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: y\r\n\r\n",
            b"THIS IS NOT HTTP\r\n\r\n",
        ] {
            assert_eq!(
                classify_request(bytes),
                Head::Other,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn more_headers_than_the_fast_path_holds_go_to_hyper() {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            bytes.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        assert_eq!(classify_request(&bytes), Head::Other);
    }

    fn head(bytes: &[u8], head_request: bool) -> ResponseHead {
        match classify_response(bytes, head_request) {
            Ok(Parsed::Head(head)) => head,
            other => panic!("no head: {other:?}"),
        }
    }

    #[test]
    fn a_content_length_response_is_kept_alive_and_forwarded_as_it_is() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let head = head(bytes, false);
        assert_eq!(
            head,
            ResponseHead {
                len: bytes.len() - 5,
                status: 200,
                framing: Framing::Length(5),
                keep_alive: true,
                rewritten: None,
            }
        );
    }

    #[test]
    fn how_a_response_body_ends_follows_rfc_9112() {
        let framing = |bytes: &[u8], head_request| head(bytes, head_request).framing;
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(framing(cl, true), Framing::Empty);
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Framing::UntilClose
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Framing::UntilClose
        );
    }

    #[test]
    fn connection_close_and_http_1_0_end_the_backend_connection() {
        assert!(!head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false).keep_alive);
        assert!(!head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
        assert!(
            head(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
    }

    #[test]
    fn hop_by_hop_response_headers_are_rewritten_away() {
        let bytes = b"HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: 1\r\nX-Public: 2\r\nContent-Length: 2\r\n\r\nhi";
        let rewritten = head(bytes, false).rewritten.expect("rewritten");
        assert_eq!(
            String::from_utf8(rewritten).unwrap(),
            "HTTP/1.1 200 OK\r\nX-Public: 2\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_length_beside_a_transfer_coding_is_dropped() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = head(bytes, false);
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(
            String::from_utf8(head.rewritten.unwrap()).unwrap(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn informational_responses_are_passed_on_and_a_switch_is_refused() {
        let early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(
            classify_response(early, false),
            Ok(Parsed::Informational(early.len() - 17))
        );
        assert!(classify_response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
    }

    #[test]
    fn bad_response_heads_are_errors() {
        assert!(classify_response(b"NOT HTTP\r\n\r\n", false).is_err());
        assert!(classify_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
        assert!(
            classify_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            )
            .is_err()
        );
        assert_eq!(
            classify_response(b"HTTP/1.1 200 OK\r\n", false),
            Ok(Parsed::Partial)
        );
    }

    #[test]
    fn a_length_body_ends_after_its_length_even_across_reads() {
        let mut body = Body::new(Framing::Length(5));
        assert_eq!(body.consume(b"hel").unwrap(), None);
        assert_eq!(body.consume(b"loEXTRA").unwrap(), Some(2));
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let whole = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
        let mut body = Body::new(Framing::Chunked);
        let mut extra = whole.to_vec();
        extra.extend_from_slice(b"garbage");
        assert_eq!(body.consume(&extra).unwrap(), Some(whole.len()));
        // Byte by byte: the same end, found at the last byte.
        let mut body = Body::new(Framing::Chunked);
        for (i, b) in whole.iter().enumerate() {
            let ended = body.consume(std::slice::from_ref(b)).unwrap();
            assert_eq!(ended.is_some(), i == whole.len() - 1, "at byte {i}");
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bytes in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"10000000000000000\r\n",
        ] {
            assert!(
                Body::new(Framing::Chunked).consume(bytes).is_err(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[tokio::test]
    async fn the_pool_hands_out_the_latest_open_connection_and_drops_closed_ones() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(Duration::from_secs(60), 8);
        let first = TcpStream::connect(addr).await.unwrap();
        let (first_peer, _) = listener.accept().await.unwrap();
        let second = TcpStream::connect(addr).await.unwrap();
        let (_second_peer, _) = listener.accept().await.unwrap();
        let second_port = second.local_addr().unwrap().port();
        pool.checkin(first);
        pool.checkin(second);
        let out = pool.checkout().unwrap();
        assert_eq!(out.local_addr().unwrap().port(), second_port);
        // The backend closes the first connection while it is idle.
        drop(first_peer);
        // Time for the runtime to see the close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.checkout().is_none());
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn connections_idle_past_the_timeout_are_reaped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(Duration::from_millis(20), 8);
        pool.checkin(TcpStream::connect(addr).await.unwrap());
        pool.reap();
        assert_eq!(pool.len(), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        pool.reap();
        assert_eq!(pool.len(), 0);
    }
}
