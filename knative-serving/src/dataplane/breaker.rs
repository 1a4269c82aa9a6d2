//! The concurrency breaker: at most `containerConcurrency` requests reach the user container at
//! once, a bounded queue waits for a slot, and the rest are turned away with `503`.
//!
//! This is Knative's queue-proxy breaker (`pkg/queue/breaker.go`): a request first takes a
//! *pending* slot out of `max_concurrency + queue_depth`; when none is left it fails at once with
//! [`BreakerError::QueueFull`] ("pending request queue full", `503 Service Unavailable`).
//! Otherwise it waits for one of `max_concurrency` *active* slots. The queue-proxy builds it
//! with a queue depth of ten times the container concurrency; a container concurrency of `0`
//! means unlimited, and no breaker at all ([`BreakerLayer::for_container_concurrency`]).
//!
//! Both slots stay taken until the response body has been sent, as in Knative, where the breaker
//! wraps the whole proxied exchange.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::{ResponseBody, guard_response, text_response};

/// Sizes of a [`Breaker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerParams {
    /// How many requests may wait for a slot.
    pub queue_depth: usize,
    /// How many requests may be in flight at once (must be at least 1).
    pub max_concurrency: usize,
}

impl BreakerParams {
    /// Knative's queue-proxy sizing for a container concurrency `cc` > 0: `cc` slots and a queue
    /// of `10 × cc`.
    pub fn for_container_concurrency(cc: usize) -> Self {
        Self {
            queue_depth: cc.saturating_mul(10),
            max_concurrency: cc,
        }
    }
}

/// Why the breaker turned a request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError {
    /// Every active slot is taken and the queue is full.
    #[error("pending request queue full")]
    QueueFull,
}

/// A concurrency limiter with a bounded wait queue. Cloning shares the slots.
#[derive(Clone, Debug)]
pub struct Breaker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pending: AtomicUsize,
    total_slots: usize,
    active: Arc<Semaphore>,
    params: BreakerParams,
}

/// Both slots a request holds; released on drop.
#[derive(Debug)]
pub struct BreakerPermit {
    _active: OwnedSemaphorePermit,
    _pending: PendingSlot,
}

#[derive(Debug)]
struct PendingSlot(Arc<Shared>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Breaker {
    /// A breaker with the given sizes. A `max_concurrency` of 0 is treated as 1: a breaker with
    /// no slots would never let anything through (use no breaker for "unlimited"); one beyond
    /// what a semaphore can count is capped there.
    pub fn new(params: BreakerParams) -> Self {
        let params = BreakerParams {
            max_concurrency: params.max_concurrency.clamp(1, Semaphore::MAX_PERMITS),
            ..params
        };
        Self {
            shared: Arc::new(Shared {
                pending: AtomicUsize::new(0),
                total_slots: params.queue_depth.saturating_add(params.max_concurrency),
                active: Arc::new(Semaphore::new(params.max_concurrency)),
                params,
            }),
        }
    }

    /// The sizes this breaker was built with.
    pub fn params(&self) -> BreakerParams {
        self.shared.params
    }

    /// Requests holding a slot or waiting for one.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Requests holding an active slot.
    pub fn in_flight(&self) -> usize {
        self.shared.params.max_concurrency - self.shared.active.available_permits()
    }

    /// Takes a slot, waiting in the queue if all are taken; fails at once when the queue is full.
    pub async fn acquire(&self) -> Result<BreakerPermit, BreakerError> {
        let pending = self.try_pending()?;
        let active = Arc::clone(&self.shared.active)
            .acquire_owned()
            .await
            .map_err(|_| BreakerError::QueueFull)?;
        Ok(BreakerPermit {
            _active: active,
            _pending: pending,
        })
    }

    fn try_pending(&self) -> Result<PendingSlot, BreakerError> {
        let shared = &self.shared;
        let mut current = shared.pending.load(Ordering::Acquire);
        loop {
            if current >= shared.total_slots {
                return Err(BreakerError::QueueFull);
            }
            match shared.pending.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(PendingSlot(Arc::clone(shared))),
                Err(actual) => current = actual,
            }
        }
    }
}

/// A tower layer putting a [`Breaker`] in front of a service.
#[derive(Clone, Debug)]
pub struct BreakerLayer {
    breaker: Option<Breaker>,
}

impl BreakerLayer {
    /// A layer using `breaker`.
    pub fn new(breaker: Breaker) -> Self {
        Self {
            breaker: Some(breaker),
        }
    }

    /// Knative's queue-proxy breaker for a container concurrency: none for `0` (unlimited),
    /// otherwise `cc` slots and a queue of `10 × cc`.
    pub fn for_container_concurrency(cc: usize) -> Self {
        Self {
            breaker: (cc > 0).then(|| Breaker::new(BreakerParams::for_container_concurrency(cc))),
        }
    }

    /// The breaker, if there is one.
    pub fn breaker(&self) -> Option<&Breaker> {
        self.breaker.as_ref()
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The service [`BreakerLayer`] builds.
#[derive(Clone, Debug)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Option<Breaker>,
}

impl<S, B> tower::Service<Request<B>> for BreakerService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(breaker) = self.breaker.clone() else {
            return Box::pin(self.inner.call(req));
        };
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let permit = match breaker.acquire().await {
                Ok(permit) => permit,
                Err(error) => {
                    return Ok(text_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &error.to_string(),
                    ));
                }
            };
            let response = inner.call(req).await?;
            Ok(guard_response(response, permit))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_beyond_slots_and_queue_are_turned_away() {
        let breaker = Breaker::new(BreakerParams {
            queue_depth: 1,
            max_concurrency: 1,
        });
        let first = breaker.acquire().await.unwrap();
        let waiting = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.acquire().await.map(drop) }
        });
        while breaker.pending() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            breaker.acquire().await.unwrap_err(),
            BreakerError::QueueFull
        );
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(breaker.pending(), 0);
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_slot_when_one_frees_up() {
        let breaker = Breaker::new(BreakerParams::for_container_concurrency(1));
        let first = breaker.acquire().await.unwrap();
        assert_eq!(breaker.in_flight(), 1);
        let second = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        drop(first);
        let second = second.await.unwrap().unwrap();
        assert_eq!(breaker.in_flight(), 1);
        drop(second);
        assert_eq!(breaker.in_flight(), 0);
    }

    #[tokio::test]
    async fn an_absurd_container_concurrency_is_capped_not_a_panic() {
        let breaker = Breaker::new(BreakerParams::for_container_concurrency(usize::MAX));
        assert_eq!(breaker.params().max_concurrency, Semaphore::MAX_PERMITS);
        drop(breaker.acquire().await.unwrap());
    }

    #[test]
    fn knatives_sizing_queues_ten_times_the_container_concurrency() {
        assert_eq!(
            BreakerParams::for_container_concurrency(10),
            BreakerParams {
                queue_depth: 100,
                max_concurrency: 10
            }
        );
        assert!(
            BreakerLayer::for_container_concurrency(0)
                .breaker()
                .is_none()
        );
    }
}
