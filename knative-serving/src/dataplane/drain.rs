//! Graceful drain, as Knative's `Drainer` (`knative.dev/pkg/network/handlers`) does it.
//!
//! Once told to drain, the queue-proxy fails its readiness probes (so Kubernetes takes the pod out
//! of its Endpoints) but keeps serving every request that still arrives, and [`Drainer::drain`]
//! returns only when no request has arrived for the *quiet period*. The server then stops
//! accepting connections and waits for the requests in flight to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Knative's default quiet period (`network.DefaultDrainTimeout`).
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_secs(45);

/// Tracks whether the proxy is draining and when it last saw a request. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Drainer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    quiet_period: Duration,
    draining: AtomicBool,
    base: Instant,
    // Nanoseconds after `base` of the last request seen while draining (or of the drain start).
    last_activity: AtomicU64,
}

impl Drainer {
    /// A drainer that waits for `quiet_period` without requests before it lets the server stop.
    pub fn new(quiet_period: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                quiet_period,
                draining: AtomicBool::new(false),
                base: Instant::now(),
                last_activity: AtomicU64::new(0),
            }),
        }
    }

    /// The quiet period.
    pub fn quiet_period(&self) -> Duration {
        self.shared.quiet_period
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// Records a request: while draining, the quiet period starts over.
    pub fn touch(&self) {
        if self.is_draining() {
            self.mark_activity();
        }
    }

    /// Starts draining (if not yet started) and waits until no request has arrived for the quiet
    /// period. Every caller waits; the first one starts the clock.
    pub async fn drain(&self) {
        if !self.shared.draining.swap(true, Ordering::AcqRel) {
            self.mark_activity();
        }
        loop {
            let Some(deadline) = self.last_activity().checked_add(self.shared.quiet_period) else {
                // A quiet period too long to end: draining never completes.
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Stops draining: probes succeed again. Knative does this when the user container asked to
    /// drain but no SIGTERM followed (its liveness probe restarted it).
    pub fn reset(&self) {
        self.shared.draining.store(false, Ordering::Release);
    }

    fn mark_activity(&self) {
        let nanos = Instant::now()
            .saturating_duration_since(self.shared.base)
            .as_nanos();
        self.shared
            .last_activity
            .fetch_max(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    fn last_activity(&self) -> Instant {
        self.shared.base + Duration::from_nanos(self.shared.last_activity.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_returns_after_a_quiet_period_without_requests() {
        let drainer = Drainer::new(Duration::from_secs(5));
        let start = Instant::now();
        drainer.drain().await;
        assert!(drainer.is_draining());
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_while_draining_restarts_the_quiet_period() {
        let drainer = Drainer::new(Duration::from_secs(5));
        let start = Instant::now();
        let waiting = tokio::spawn({
            let drainer = drainer.clone();
            async move { drainer.drain().await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        drainer.touch();
        waiting.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_before_draining_do_not_delay_it() {
        let drainer = Drainer::new(Duration::from_secs(5));
        drainer.touch();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!drainer.is_draining());
        let start = Instant::now();
        drainer.drain().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
