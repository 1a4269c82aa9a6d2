//! A minimal hyper 1 HTTP/1.1 server for the data planes: one task per connection, graceful
//! shutdown, and work a handler leaves behind ([`run_after_request`]) run on the connection's
//! task.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

tokio::task_local! {
    /// Work handed over by the handlers of the connection this task serves.
    static CONNECTION_WORK: RefCell<Vec<Work>>;
}

/// Runs `work` in the background: on the task of the connection whose request is being handled
/// when called from a handler [`serve`] runs (no task spawned, no hand-off to another thread;
/// the connection's task lives until its work is done, even after the connection closed), and
/// in a task of its own otherwise.
pub fn run_after_request(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Some(Box::pin(work));
    let _ = CONNECTION_WORK.try_with(|queue| {
        if let Some(work) = work.take() {
            queue.borrow_mut().push(work);
        }
    });
    if let Some(work) = work {
        tokio::spawn(work);
    }
}

/// Polls `connection` and the work its handlers hand over ([`run_after_request`]) until both are
/// done.
async fn connection_and_its_work(connection: impl Future<Output = ()>) {
    let mut connection = std::pin::pin!(connection);
    let mut connection_done = false;
    let mut work = FuturesUnordered::new();
    std::future::poll_fn(|cx| {
        if !connection_done && connection.as_mut().poll(cx).is_ready() {
            connection_done = true;
        }
        loop {
            CONNECTION_WORK.with(|queue| work.extend(queue.borrow_mut().drain(..)));
            match work.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                // Work polled just now may have handed over more.
                _ if CONNECTION_WORK.with(|queue| !queue.borrow().is_empty()) => continue,
                _ => break,
            }
        }
        if connection_done && work.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The largest request body a data plane accepts (larger requests get 413).
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Serves `handler` on `listener` until `shutdown` completes, then lets open connections finish
/// their current request.
pub async fn serve<H, Fut, S>(listener: TcpListener, handler: H, shutdown: S) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    S: Future<Output = ()>,
{
    let handler = Arc::new(handler);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(CONNECTION_WORK.scope(
            RefCell::new(Vec::new()),
            connection_and_its_work(async move {
                let _ = connection.await;
            }),
        ));
    }
    graceful.shutdown().await;
    Ok(())
}

/// Reads a request body of at most [`MAX_REQUEST_BODY`] bytes; the error is the response to send.
pub async fn read_body(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_REQUEST_BODY} bytes"),
        )),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("reading the body: {e}"),
        )),
    }
}

/// An empty `202 Accepted`, without headers to allocate.
pub fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn work_left_by_a_handler_runs_after_the_response_even_once_the_connection_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (done_tx, done_rx) = oneshot::channel();
        let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
        tokio::spawn(serve(
            listener,
            move |_request| {
                let done_tx = done_tx.clone();
                async move {
                    run_after_request(async move {
                        // Outlives the connection: the client has closed it by then.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if let Some(tx) = done_tx.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                    });
                    text(StatusCode::ACCEPTED, "")
                }
            },
            std::future::pending(),
        ));
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut response = [0u8; 12];
        stream.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"HTTP/1.1 202");
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("the work never ran")
            .unwrap();
    }

    #[tokio::test]
    async fn work_handed_over_outside_a_served_request_runs_in_a_task_of_its_own() {
        let (tx, rx) = oneshot::channel();
        run_after_request(async move {
            let _ = tx.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the work never ran")
            .unwrap();
    }
}
