//! HTTP/1.1 client connections driven by the task that uses them, and a stack of idle ones: the
//! plumbing the data planes' clients share (the serving forwarder, the eventing dispatcher).
//!
//! hyper-util's legacy `Client` spawns a task per connection, and every request crosses to it
//! through a channel and comes back through another. A [`DrivenConn`] is polled by whoever
//! sends on it, while it waits ([`DrivenConn::drive`]): no task, no hand-off per request.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use hyper::body::Body;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One HTTP/1.1 connection over TCP: the handle requests are sent through and the connection's
/// state machine, which the user polls while it waits for the connection's I/O.
pub struct DrivenConn<B: Body + 'static> {
    /// Sends requests; see [`DrivenConn::drive`] for waiting on what it returns.
    pub sender: http1::SendRequest<B>,
    connection: http1::Connection<TokioIo<TcpStream>, B>,
    /// The connection future completed: closed by the server, or failed.
    done: bool,
}

impl<B: Body + 'static> std::fmt::Debug for DrivenConn<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrivenConn")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> DrivenConn<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Does the HTTP/1.1 handshake over `stream` (whose options, e.g. `TCP_NODELAY`, the caller
    /// has set).
    ///
    /// # Errors
    /// hyper's, when the handshake fails.
    pub async fn handshake(stream: TcpStream) -> Result<Self, hyper::Error> {
        let (sender, connection) = http1::Builder::new()
            // Head and body copied into one buffer and written with one `write`: measured
            // faster than `writev` of the two for the small messages proxies mostly carry (see
            // docs/performance.md, data plane).
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Self {
            sender,
            connection,
            done: false,
        })
    }

    /// Polls the connection (its reads and writes) once, noting when it has finished: for a body
    /// that streams from the connection after [`drive`](Self::drive) returned.
    pub fn poll_connection(&mut self, cx: &mut Context<'_>) {
        if !self.done && Pin::new(&mut self.connection).poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Runs `work`, made from the sender, while driving the connection, which does the I/O it
    /// waits for.
    pub async fn drive<'a, F: Future + 'a>(
        &'a mut self,
        work: impl FnOnce(&'a mut http1::SendRequest<B>) -> F,
    ) -> F::Output {
        let Self {
            sender,
            connection,
            done,
            ..
        } = self;
        let mut work = std::pin::pin!(work(sender));
        std::future::poll_fn(|cx| {
            if !*done && Pin::new(&mut *connection).poll(cx).is_ready() {
                *done = true;
            }
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Waits until a request can be sent; `false` if the connection is closed.
    pub async fn ready(&mut self) -> bool {
        self.drive(|sender| sender.ready()).await.is_ok() && !self.done
    }

    /// Whether another request may go over this connection.
    pub fn reusable(&self) -> bool {
        !self.done && !self.sender.is_closed()
    }
}

/// What an idle connection can tell, without I/O, about whether the server may still have it
/// open.
pub trait MayBeOpen {
    /// `false` once the connection is known to be closed (or to have received what nobody
    /// asked for).
    fn may_be_open(&self) -> bool;
}

impl<B: Body + 'static> MayBeOpen for Box<DrivenConn<B>> {
    fn may_be_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

impl MayBeOpen for TcpStream {
    /// Only a readiness the runtime has already seen costs a system call: an idle connection
    /// with nothing to read answers `WouldBlock` from tokio's own state.
    fn may_be_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Idle connections to one server, reused last-in first-out: the most recently used is the
/// most likely to be alive, and the oldest age out after the idle timeout.
pub struct IdleConns<C> {
    /// With the time each became idle; the most recently used last.
    conns: Vec<(C, Instant)>,
}

impl<C> Default for IdleConns<C> {
    fn default() -> Self {
        Self { conns: Vec::new() }
    }
}

impl<C> std::fmt::Debug for IdleConns<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConns")
            .field("len", &self.conns.len())
            .finish()
    }
}

impl<C: MayBeOpen> IdleConns<C> {
    /// The most recently used connection idle for less than `timeout` that the server may not
    /// have closed yet; older ones are dropped.
    pub fn checkout(&mut self, timeout: Duration) -> Option<C> {
        let now = Instant::now();
        while let Some((conn, idle_since)) = self.conns.pop() {
            if now.duration_since(idle_since) >= timeout {
                // Every one below is older still.
                self.conns.clear();
                break;
            }
            if conn.may_be_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` (unless `max` are kept already), dropping those idle for `timeout`, so that a
    /// server no longer used does not keep them.
    pub fn checkin(&mut self, conn: C, timeout: Duration, max: usize) {
        let now = Instant::now();
        self.drop_expired(now, timeout);
        if self.conns.len() < max {
            self.conns.push((conn, now));
        }
    }

    /// Drops the connections idle for `timeout` or longer at `now`.
    pub fn drop_expired(&mut self, now: Instant, timeout: Duration) {
        let expired = self
            .conns
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= timeout)
            .count();
        self.conns.drain(..expired);
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;

    type Conn = DrivenConn<Empty<bytes::Bytes>>;

    async fn conn() -> Box<Conn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move { listener.accept().await.unwrap().0 });
        let stream = TcpStream::connect(address).await.unwrap();
        let conn = Conn::handshake(stream).await.unwrap();
        // Keep the server's end open for the test's length.
        std::mem::forget(accepting.await.unwrap());
        Box::new(conn)
    }

    #[tokio::test]
    async fn the_most_recently_checked_in_connection_is_checked_out_first() {
        let mut idle = IdleConns::default();
        let (first, second) = (conn().await, conn().await);
        let (first_at, second_at): (*const Conn, *const Conn) = (&*first, &*second);
        idle.checkin(first, Duration::from_secs(60), 8);
        idle.checkin(second, Duration::from_secs(60), 8);
        assert_eq!(idle.len(), 2);
        let out = idle.checkout(Duration::from_secs(60)).unwrap();
        assert!(std::ptr::eq(&*out, second_at));
        let out = idle.checkout(Duration::from_secs(60)).unwrap();
        assert!(std::ptr::eq(&*out, first_at));
        assert!(idle.is_empty());
    }

    #[tokio::test]
    async fn connections_idle_longer_than_the_timeout_are_dropped_not_checked_out() {
        let mut idle = IdleConns::default();
        idle.checkin(conn().await, Duration::from_secs(60), 8);
        assert!(idle.checkout(Duration::ZERO).is_none());
        assert!(idle.is_empty());
    }

    #[tokio::test]
    async fn no_more_than_max_are_kept() {
        let mut idle = IdleConns::default();
        for _ in 0..3 {
            idle.checkin(conn().await, Duration::from_secs(60), 2);
        }
        assert_eq!(idle.len(), 2);
    }
}
