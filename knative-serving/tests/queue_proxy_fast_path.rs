//! The queue-proxy's fast path for plain HTTP/1.1 against a scripted user container on loopback
//! that answers with exactly the bytes each case needs: pipelining, connection reuse, backends
//! that close, HTTP/1.0, informational and chunked responses, hop-by-hop headers, broken
//! responses, and connections that move on to hyper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use knative_serving::dataplane::queue::{QueueConfig, QueueListeners, QueueProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A user container answering by path with canned bytes; counts connections and requests.
#[derive(Clone, Default)]
struct Scripted {
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start() -> (Self, SocketAddr) {
        let scripted = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = scripted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = server.connections.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(server.clone().serve(stream, id));
            }
        });
        (scripted, addr)
    }

    async fn serve(self, mut stream: TcpStream, connection: usize) {
        let mut buf = Vec::new();
        loop {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            buf.drain(..end + 4 + length);
            self.requests.fetch_add(1, Ordering::SeqCst);
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let (answer, then_close): (String, bool) = match path.as_str() {
                "/close" => ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose".into(), true),
                "/http10" => ("HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nold style".into(), true),
                "/early" => ("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater".into(), false),
                "/chunked" => ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n".into(), false),
                "/hop" => ("HTTP/1.1 200 OK\r\nConnection: X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: secret\r\nX-Public: open\r\nContent-Length: 2\r\n\r\nok".into(), false),
                "/drop" => ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndrop".into(), true),
                "/short" => ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".into(), true),
                "/garbage" => ("NOT HTTP AT ALL\r\n\r\n".into(), true),
                "/big" => {
                    let big = "0123456789".repeat(100_000);
                    (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}", big.len()), false)
                }
                "/echo" => (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()), false),
                _ => {
                    let text = format!("connection {connection} {path}");
                    (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()), false)
                }
            };
            if stream.write_all(answer.as_bytes()).await.is_err() || then_close {
                return;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Running {
    main: SocketAddr,
    shutdown: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(user: SocketAddr, container_concurrency: usize) -> Running {
    let mut config = QueueConfig::new(user.port());
    config.container_concurrency = container_concurrency;
    start_with(config).await
}

async fn start_with(mut config: QueueConfig) -> Running {
    config.drain_quiet_period = Duration::ZERO;
    let bind = || TcpListener::bind("127.0.0.1:0");
    let listeners = QueueListeners {
        main: bind().await.unwrap(),
        admin: None,
        metrics: None,
        user_metrics: None,
    };
    let main = listeners.main.local_addr().unwrap();
    let (shutdown, stop) = oneshot::channel::<()>();
    let served = tokio::spawn(QueueProxy::new(config).serve(listeners, async move {
        let _ = stop.await;
    }));
    Running {
        main,
        shutdown,
        served,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(5), self.served)
            .await
            .expect("the proxy stops")
            .unwrap()
            .unwrap();
    }
}

/// A client connection reading whole responses (by `Content-Length` or chunked framing).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, request: &str) {
        self.stream.write_all(request.as_bytes()).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(3), self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next response, head and body, as text; `None` if the connection ends first.
    async fn response(&mut self) -> Option<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let total = if head.contains("transfer-encoding: chunked") {
                    find(&self.buf[end + 4..], b"0\r\n").and_then(|last| {
                        find(&self.buf[end + 4 + last..], b"\r\n\r\n")
                            .map(|e| end + 4 + last + e + 4)
                    })
                } else {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    (self.buf.len() >= end + 4 + length).then_some(end + 4 + length)
                };
                if let Some(total) = total {
                    let response = String::from_utf8_lossy(&self.buf[..total]).into_owned();
                    self.buf.drain(..total);
                    return Some(response);
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Everything until the proxy closes the connection (or 3 s pass).
    async fn rest(&mut self) -> String {
        while self.fill().await {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: hello.default\r\n\r\n")
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_backend_connection() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&format!("{}{}{}", get("/a"), get("/b"), get("/c")))
        .await;
    for path in ["/a", "/b", "/c"] {
        let response = conn.response().await.expect("a response");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert_eq!(body(&response), format!("connection 1 {path}"));
    }
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
    queue.stop().await;
}

#[tokio::test]
async fn client_connections_share_the_idle_backend_connections() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    for _ in 0..3 {
        let mut conn = Conn::open(queue.main).await;
        conn.send(&get("/")).await;
        assert_eq!(body(&conn.response().await.unwrap()), "connection 1 /");
    }
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
    queue.stop().await;
}

#[tokio::test]
async fn a_backend_that_closes_after_its_response_is_not_reused_and_the_client_stays_connected() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/close")).await;
    let response = conn.response().await.unwrap();
    assert_eq!(body(&response), "close");
    assert!(
        !response.to_ascii_lowercase().contains("connection:"),
        "the backend's Connection header is its own: {response}"
    );
    conn.send(&get("/")).await;
    assert_eq!(body(&conn.response().await.unwrap()), "connection 2 /");
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 2);
    queue.stop().await;
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_while_idle_is_not_used() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    // Answered with a keep-alive response, then the backend closes (an idle timeout).
    conn.send(&get("/drop")).await;
    assert_eq!(body(&conn.response().await.unwrap()), "drop");
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send(&get("/")).await;
    let response = conn.response().await.unwrap();
    assert_eq!(body(&response), "connection 2 /", "{response}");
    queue.stop().await;
}

#[tokio::test]
async fn an_http_1_0_response_is_relayed_as_http_1_1_until_the_backend_closes() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/http10")).await;
    let answer = conn.rest().await;
    assert_eq!(answer, "HTTP/1.1 200 OK\r\nX-Old: yes\r\n\r\nold style");
    queue.stop().await;
}

#[tokio::test]
async fn informational_responses_reach_the_client_before_the_final_one() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/early")).await;
    let early = conn.response().await.unwrap();
    assert!(early.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{early}");
    let last = conn.response().await.unwrap();
    assert_eq!(body(&last), "later");
    queue.stop().await;
}

#[tokio::test]
async fn a_chunked_response_passes_through_with_its_trailers_and_the_connection_is_reused() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&format!("{}{}", get("/chunked"), get("/after")))
        .await;
    let chunked = conn.response().await.unwrap();
    assert_eq!(
        body(&chunked),
        "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    );
    assert_eq!(body(&conn.response().await.unwrap()), "connection 1 /after");
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
    queue.stop().await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_and_those_connection_names_are_removed() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/hop")).await;
    let response = conn.response().await.unwrap();
    assert_eq!(
        response,
        "HTTP/1.1 200 OK\r\nX-Public: open\r\nContent-Length: 2\r\n\r\nok"
    );
    queue.stop().await;
}

#[tokio::test]
async fn a_request_body_reaches_the_backend_and_the_next_request_follows() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world{}",
        get("/next")
    ))
    .await;
    assert_eq!(body(&conn.response().await.unwrap()), "hello world");
    assert_eq!(body(&conn.response().await.unwrap()), "connection 1 /next");
    queue.stop().await;
}

#[tokio::test]
async fn a_response_cut_short_by_the_backend_closes_the_client_connection() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/short")).await;
    // The head and the 3 bytes that came, then the end: the client sees a truncated body.
    assert_eq!(
        conn.rest().await,
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    );
    queue.stop().await;
}

#[tokio::test]
async fn a_response_that_is_not_http_is_a_502_that_says_so() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/garbage")).await;
    let response = conn.response().await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{response}"
    );
    assert!(
        body(&response).contains("invalid response head"),
        "{response}"
    );
    // The client's connection is still good.
    conn.send(&get("/")).await;
    assert!(body(&conn.response().await.unwrap()).ends_with(" /"));
    queue.stop().await;
}

#[tokio::test]
async fn a_connection_moves_to_hyper_at_its_first_request_that_is_not_plain_and_goes_on() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/first")).await;
    assert_eq!(body(&conn.response().await.unwrap()), "connection 1 /first");
    // A probe: answered by the queue-proxy itself on the hyper path.
    conn.send("GET / HTTP/1.1\r\nHost: h\r\nK-Network-Probe: queue\r\n\r\n")
        .await;
    let probe = conn.response().await.unwrap();
    assert_eq!(body(&probe), "queue", "{probe}");
    // Hyper serves the rest of the connection, forwarding over its own backend connections (a
    // new one: the probe's TCP check of the container made the second).
    conn.send("GET /third HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(body(&conn.response().await.unwrap()), "connection 3 /third");
    assert_eq!(scripted.requests.load(Ordering::SeqCst), 2);
    queue.stop().await;
}

#[tokio::test]
async fn with_a_breaker_requests_still_flow_and_the_slot_is_freed_after_each_response() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 1).await;
    let mut conn = Conn::open(queue.main).await;
    for path in ["/chunked", "/close", "/"] {
        conn.send(&get(path)).await;
        let response = conn.response().await.expect(path);
        assert!(
            response.starts_with("HTTP/1.1 200 OK"),
            "{path}: {response}"
        );
    }
    queue.stop().await;
}

#[tokio::test]
async fn an_idle_client_connection_is_closed_at_shutdown() {
    let (_scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    conn.send(&get("/")).await;
    conn.response().await.unwrap();
    // stop() fails unless the proxy ends while this connection stays open.
    queue.stop().await;
    assert_eq!(conn.rest().await, "");
}

#[tokio::test]
async fn a_connection_idle_for_the_header_read_timeout_is_closed() {
    let (_scripted, user) = Scripted::start().await;
    let mut config = QueueConfig::new(user.port());
    config.header_read_timeout = Duration::from_millis(300);
    let queue = start_with(config).await;
    let mut conn = Conn::open(queue.main).await;
    // Requests closer together than the timeout keep the connection.
    for _ in 0..3 {
        conn.send(&get("/")).await;
        conn.response().await.expect("served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle = std::time::Instant::now();
    assert_eq!(conn.rest().await, "");
    let waited = idle.elapsed();
    assert!(waited < Duration::from_secs(1), "closed after {waited:?}");
    queue.stop().await;
}

#[tokio::test]
async fn a_large_response_arrives_whole_and_the_connection_goes_on() {
    let (scripted, user) = Scripted::start().await;
    let queue = start(user, 0).await;
    let mut conn = Conn::open(queue.main).await;
    for _ in 0..2 {
        conn.send(&get("/big")).await;
        let response = conn.response().await.expect("the whole response");
        assert_eq!(body(&response), "0123456789".repeat(100_000));
    }
    conn.send(&get("/")).await;
    assert_eq!(body(&conn.response().await.unwrap()), "connection 1 /");
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
    queue.stop().await;
}
