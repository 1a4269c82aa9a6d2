//! A Revision's request timeouts, as Knative's queue-proxy enforces them.
//!
//! - `timeoutSeconds` ([`Timeouts::total`]): the whole exchange. Before the response has started
//!   the client gets `504 Gateway Timeout` ("request timeout"); after, the response is cut off.
//! - `responseStartTimeoutSeconds` ([`Timeouts::response_start`]): how long the user container
//!   may take to start its response (`504` when it does not).
//! - `idleTimeoutSeconds` ([`Timeouts::idle`]): the longest silence, from the request's arrival
//!   until the response starts and then between two pieces of the response body.
//!
//! A `None` disables a timeout (Knative's `0`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::{ResponseBody, boxed, text_response};
use super::proxy::BoxError;

/// The body of the `504` a timed-out request gets, as in Knative.
pub const TIMEOUT_MESSAGE: &str = "request timeout";

/// The three timeouts of a Revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest a request may take, response body included.
    pub total: Option<Duration>,
    /// The longest the response may take to start.
    pub response_start: Option<Duration>,
    /// The longest silence before the response starts or between two body chunks.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// The deadlines of an exchange that starts at `start`: the whole exchange's, and the one
    /// by which the response must have started (the earliest of the three). A timeout too large
    /// to be a point in time is no deadline at all.
    pub(crate) fn deadlines(&self, start: Instant) -> (Option<Instant>, Option<Instant>) {
        let total = self.total.and_then(|d| start.checked_add(d));
        let first_byte = [
            total,
            self.response_start.and_then(|d| start.checked_add(d)),
            self.idle.and_then(|d| start.checked_add(d)),
        ]
        .into_iter()
        .flatten()
        .min();
        (total, first_byte)
    }
}

/// Which timeout cut a response body off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// The whole exchange took longer than the revision timeout.
    #[error("the response exceeded the revision timeout")]
    Total,
    /// The backend sent nothing for longer than the idle timeout.
    #[error("the response was idle for longer than the idle timeout")]
    Idle,
}

/// A tower layer enforcing [`Timeouts`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeouts: Timeouts,
}

impl TimeoutLayer {
    /// A layer enforcing `timeouts`.
    pub fn new(timeouts: Timeouts) -> Self {
        Self { timeouts }
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeouts: self.timeouts,
        }
    }
}

/// The service [`TimeoutLayer`] builds.
#[derive(Clone, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    timeouts: Timeouts,
}

impl<S, B> tower::Service<Request<B>> for TimeoutService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResponseBody>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let timeouts = self.timeouts;
        let future = self.inner.call(req);
        if timeouts == Timeouts::default() {
            return Box::pin(future);
        }
        let (total, first_byte) = timeouts.deadlines(Instant::now());
        Box::pin(async move {
            let response = match first_byte {
                None => future.await?,
                Some(deadline) => match tokio::time::timeout_at(deadline, future).await {
                    Ok(response) => response?,
                    Err(_) => {
                        return Ok(text_response(StatusCode::GATEWAY_TIMEOUT, TIMEOUT_MESSAGE));
                    }
                },
            };
            if (total.is_none() && timeouts.idle.is_none()) || response.body().is_end_stream() {
                return Ok(response);
            }
            Ok(response.map(|body| boxed(DeadlineBody::new(body, total, timeouts.idle))))
        })
    }
}

/// A body that fails with [`BodyTimeout`] when its deadline passes or it stays idle too long,
/// which makes the server cut the response off.
pub struct DeadlineBody<B> {
    inner: B,
    total: Option<Instant>,
    idle: Option<Duration>,
    last_frame: Instant,
    // Only created once the body has to wait: a body that is always ready costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> std::fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineBody")
            .field("total", &self.total)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<B> DeadlineBody<B> {
    /// Wraps `inner` with an absolute deadline and an idle timeout, either optional.
    pub fn new(inner: B, total: Option<Instant>, idle: Option<Duration>) -> Self {
        Self {
            inner,
            total,
            idle,
            last_frame: Instant::now(),
            sleep: None,
        }
    }

    fn deadline(&self) -> Option<(Instant, BodyTimeout)> {
        let idle = self
            .idle
            .and_then(|idle| self.last_frame.checked_add(idle))
            .map(|deadline| (deadline, BodyTimeout::Idle));
        let total = self.total.map(|total| (total, BodyTimeout::Total));
        match (idle, total) {
            (Some(idle), Some(total)) => Some(if total.0 <= idle.0 { total } else { idle }),
            (idle, total) => idle.or(total),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if this.idle.is_some() {
                this.last_frame = Instant::now();
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let Some((deadline, which)) = this.deadline() else {
            return Poll::Pending;
        };
        match &mut this.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
            }
            None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        match this.sleep.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(which)))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full, StreamBody};
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn slow_service(
        delay: Duration,
    ) -> impl Service<
        Request<()>,
        Response = Response<ResponseBody>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Send
    + 'static {
        tower::service_fn(move |_req: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Response::new(boxed(Full::new(Bytes::from("done")))))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_that_does_not_start_in_time_is_a_504() {
        let layer = TimeoutLayer::new(Timeouts {
            response_start: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        });
        let response = layer
            .layer(slow_service(Duration::from_secs(2)))
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "request timeout\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_too_large_to_be_a_deadline_never_fires() {
        let layer = TimeoutLayer::new(Timeouts {
            total: Some(Duration::MAX),
            response_start: Some(Duration::MAX),
            idle: Some(Duration::MAX),
        });
        let response = layer
            .layer(slow_service(Duration::from_secs(2)))
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_within_every_timeout_passes_through() {
        let layer = TimeoutLayer::new(Timeouts {
            total: Some(Duration::from_secs(5)),
            response_start: Some(Duration::from_secs(3)),
            idle: Some(Duration::from_secs(3)),
        });
        let response = layer
            .layer(slow_service(Duration::from_secs(2)))
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_goes_quiet_for_longer_than_the_idle_timeout_is_cut_off() {
        let frames = futures::stream::unfold(0, |n| async move {
            match n {
                0 => Some((Ok::<_, BoxError>(Frame::data(Bytes::from("a"))), 1)),
                _ => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Some((Ok(Frame::data(Bytes::from("late"))), n + 1))
                }
            }
        });
        let body = DeadlineBody::new(
            boxed(StreamBody::new(frames)),
            None,
            Some(Duration::from_secs(1)),
        );
        let mut body = Box::pin(body);
        assert!(body.frame().await.unwrap().is_ok());
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            error.downcast_ref::<BodyTimeout>(),
            Some(&BodyTimeout::Idle)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_body_is_cut_off_at_the_revision_timeout() {
        let frames = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            Some((Ok::<_, BoxError>(Frame::data(Bytes::from("tick"))), ()))
        });
        let total = Instant::now() + Duration::from_secs(2);
        let mut body = Box::pin(DeadlineBody::new(
            boxed(StreamBody::new(frames)),
            Some(total),
            None,
        ));
        let mut ticks = 0;
        let error = loop {
            match body.frame().await.unwrap() {
                Ok(_) => ticks += 1,
                Err(error) => break error,
            }
        };
        assert_eq!(ticks, 3);
        assert_eq!(
            error.downcast_ref::<BodyTimeout>(),
            Some(&BodyTimeout::Total)
        );
    }
}
