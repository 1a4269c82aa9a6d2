//! Response bodies the queue-proxy's layers share.
//!
//! Every layer answers with a [`ResponseBody`]: either the backend's body streaming through, or a
//! short message of the proxy itself ([`text_response`]). Layers that must act when a response is
//! over (release a breaker slot, count a request out) wrap the body in a [`GuardedBody`], which
//! drops its guard when the body ends or when the client goes away, whichever comes first.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, SizeHint};

use super::proxy::BoxError;

/// The body of every response of the queue-proxy's layers.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`ResponseBody`].
pub fn boxed<B>(body: B) -> ResponseBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A response with `status` and `message` (plus a newline) as its `text/plain` body.
pub fn text_response(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut text = String::with_capacity(message.len() + 1);
    text.push_str(message);
    text.push('\n');
    let mut response = Response::new(boxed(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A body that holds `guard` until the inner body has ended, failed or been dropped.
#[derive(Debug)]
pub struct GuardedBody<B, G> {
    inner: B,
    guard: Option<G>,
}

impl<B, G> GuardedBody<B, G> {
    /// Wraps `inner`, keeping `guard` alive as long as the body streams.
    pub fn new(inner: B, guard: G) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B, G> Body for GuardedBody<B, G>
where
    B: Body + Unpin,
    G: Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => this.guard = None,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.guard = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps the body of `response` so that `guard` lives until the body is over.
pub fn guard_response<G>(response: Response<ResponseBody>, guard: G) -> Response<ResponseBody>
where
    G: Send + Unpin + 'static,
{
    if response.body().is_end_stream() {
        // Nothing left to stream: the guard can go now.
        return response;
    }
    response.map(|body| boxed(GuardedBody::new(body, guard)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use http_body_util::StreamBody;

    use super::*;

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_guard_is_released_once_the_body_has_ended() {
        let dropped = Arc::new(AtomicBool::new(false));
        let frames = futures::stream::iter([
            Ok::<_, BoxError>(Frame::data(Bytes::from("a"))),
            Ok(Frame::data(Bytes::from("b"))),
        ]);
        let body = GuardedBody::new(boxed(StreamBody::new(frames)), Flag(Arc::clone(&dropped)));
        let mut body = Box::pin(body);
        let first = futures::executor::block_on(body.frame());
        assert!(first.is_some());
        assert!(!dropped.load(Ordering::SeqCst), "still streaming");
        let _ = futures::executor::block_on(body.frame());
        let end = futures::executor::block_on(body.frame());
        assert!(end.is_none());
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn the_guard_is_released_when_the_client_goes_away() {
        let dropped = Arc::new(AtomicBool::new(false));
        let frames = futures::stream::pending::<Result<Frame<Bytes>, BoxError>>();
        let body = GuardedBody::new(boxed(StreamBody::new(frames)), Flag(Arc::clone(&dropped)));
        drop(body);
        assert!(dropped.load(Ordering::SeqCst));
    }
}
