//! Knative's activator throttler: at most `containerConcurrency` requests per ready backend of a
//! revision, the rest waiting in a bounded queue until a backend has room.
//!
//! - [`Backends`] is the pure part: a revision's backends, the requests in flight on each, and
//!   the load-balancing policy Knative picks from the container concurrency
//!   ([`LoadBalancingPolicy::for_container_concurrency`]): power-of-two random choices for
//!   `0` (unlimited), first-available for `1..=3`, round-robin above.
//! - [`RevisionThrottler`] wraps it for concurrent use: [`RevisionThrottler::acquire`] waits for a
//!   slot (or fails at once when the queue is full) and hands out a [`Permit`] naming the
//!   backend; dropping the permit frees the slot and wakes a waiter. Backends change with
//!   [`RevisionThrottler::update_backends`] while requests wait: a revision at zero gets its
//!   first backend and its queue drains.
//!
//! Knative also divides a revision's capacity among several activator replicas; this throttler
//! serves the whole capacity (one activator per revision).
//!
//! ```
//! use knative_serving::dataplane::throttler::RevisionThrottler;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let throttler = RevisionThrottler::new(1, 100);
//! throttler.update_backends(["10.0.0.1:8012".parse().unwrap()]);
//! let permit = throttler.acquire().await.unwrap();
//! assert_eq!(permit.backend().to_string(), "10.0.0.1:8012");
//! // The one slot is taken: a second request would wait until `permit` is dropped.
//! assert_eq!(throttler.in_flight(), 1);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// How a request picks among a revision's backends with room for it (Knative's `lbPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBalancingPolicy {
    /// Two backends at random, the less loaded of them (unlimited concurrency).
    RandomChoice2,
    /// The first backend with a free slot (small concurrency: keeps requests packed).
    FirstAvailable,
    /// The next backend with a free slot after the last one picked.
    RoundRobin,
}

impl LoadBalancingPolicy {
    /// Knative's choice for a revision's `containerConcurrency`.
    pub fn for_container_concurrency(container_concurrency: u32) -> Self {
        match container_concurrency {
            0 => Self::RandomChoice2,
            1..=3 => Self::FirstAvailable,
            _ => Self::RoundRobin,
        }
    }
}

/// The ready backends of one revision and the requests in flight on each (no I/O, no clock).
#[derive(Debug, Clone)]
pub struct Backends {
    container_concurrency: u32,
    trackers: Vec<Tracker>,
    next: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracker {
    addr: SocketAddr,
    in_flight: u32,
}

impl Backends {
    /// No backends yet, each backend to take `container_concurrency` requests at once (`0`:
    /// unlimited).
    pub fn new(container_concurrency: u32) -> Self {
        Self {
            container_concurrency,
            trackers: Vec::new(),
            next: 0,
        }
    }

    /// The requests each backend takes at once (`0`: unlimited).
    pub fn container_concurrency(&self) -> u32 {
        self.container_concurrency
    }

    /// Changes the requests each backend takes at once; requests in flight keep their slots.
    pub fn set_container_concurrency(&mut self, container_concurrency: u32) {
        self.container_concurrency = container_concurrency;
    }

    /// The policy in force.
    pub fn policy(&self) -> LoadBalancingPolicy {
        LoadBalancingPolicy::for_container_concurrency(self.container_concurrency)
    }

    /// Replaces the set of ready backends. Backends that stay keep their in-flight counts (and
    /// their order, so first-available keeps packing the same ones); removed ones are
    /// forgotten, and their requests' releases are ignored.
    pub fn update(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut wanted: Vec<SocketAddr> = addrs.into_iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        self.trackers
            .retain(|t| wanted.binary_search(&t.addr).is_ok());
        for addr in wanted {
            if !self.trackers.iter().any(|t| t.addr == addr) {
                self.trackers.push(Tracker { addr, in_flight: 0 });
            }
        }
        if self.next >= self.trackers.len() {
            self.next = 0;
        }
    }

    /// The ready backends, in the order policies scan them.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.trackers.iter().map(|t| t.addr).collect()
    }

    /// How many requests the revision takes at once: `containerConcurrency × backends`; `None`
    /// when unlimited (concurrency `0` and at least one backend).
    pub fn capacity(&self) -> Option<usize> {
        match (self.container_concurrency, self.trackers.len()) {
            (_, 0) => Some(0),
            (0, _) => None,
            (cc, n) => Some(cc as usize * n),
        }
    }

    /// The requests in flight on the current backends.
    pub fn in_flight(&self) -> usize {
        self.trackers.iter().map(|t| t.in_flight as usize).sum()
    }

    /// Picks a backend with room for one more request by the policy in force and counts the
    /// request on it; `None` when every backend is full (or there is none). `rng` drives the
    /// random choices, so a seeded one makes the pick reproducible.
    pub fn acquire(&mut self, rng: &mut fastrand::Rng) -> Option<SocketAddr> {
        let index = match self.policy() {
            LoadBalancingPolicy::RandomChoice2 => self.random_choice_2(rng),
            LoadBalancingPolicy::FirstAvailable => self.first_available(),
            LoadBalancingPolicy::RoundRobin => self.round_robin(),
        }?;
        let tracker = &mut self.trackers[index];
        tracker.in_flight += 1;
        Some(tracker.addr)
    }

    /// Counts a request on `addr` as finished. A backend removed meanwhile is ignored.
    pub fn release(&mut self, addr: SocketAddr) {
        if let Some(tracker) = self.trackers.iter_mut().find(|t| t.addr == addr) {
            tracker.in_flight = tracker.in_flight.saturating_sub(1);
        }
    }

    fn has_room(&self, index: usize) -> bool {
        self.container_concurrency == 0
            || self.trackers[index].in_flight < self.container_concurrency
    }

    fn random_choice_2(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let (first, second) = match self.trackers.len() {
            0 => return None,
            1 => return self.has_room(0).then_some(0),
            n => {
                let first = rng.usize(0..n);
                // A second, distinct index: skip over the first.
                let mut second = rng.usize(0..n - 1);
                if second >= first {
                    second += 1;
                }
                (first, second)
            }
        };
        let pick = if self.trackers[second].in_flight < self.trackers[first].in_flight {
            second
        } else {
            first
        };
        self.has_room(pick).then_some(pick)
    }

    fn first_available(&self) -> Option<usize> {
        (0..self.trackers.len()).find(|&i| self.has_room(i))
    }

    fn round_robin(&mut self) -> Option<usize> {
        let n = self.trackers.len();
        let found = (0..n)
            .map(|offset| (self.next + offset) % n)
            .find(|&i| self.has_room(i))?;
        self.next = (found + 1) % n;
        Some(found)
    }
}

/// Why [`RevisionThrottler::acquire`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleError {
    /// As many requests as the queue holds are already waiting.
    #[error("the revision's request queue is full ({depth} requests waiting)")]
    QueueFull {
        /// The queue's depth.
        depth: usize,
    },
}

/// The throttler of one revision: [`Backends`] behind a lock, with a bounded queue of waiting
/// requests.
#[derive(Debug)]
pub struct RevisionThrottler {
    state: Mutex<State>,
    capacity_freed: Notify,
    queue_depth: usize,
}

#[derive(Debug)]
struct State {
    backends: Backends,
    waiting: usize,
    rng: fastrand::Rng,
}

impl RevisionThrottler {
    /// A throttler with no backends, `container_concurrency` requests per backend (`0`:
    /// unlimited) and at most `queue_depth` requests waiting.
    pub fn new(container_concurrency: u32, queue_depth: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                backends: Backends::new(container_concurrency),
                waiting: 0,
                rng: fastrand::Rng::new(),
            }),
            capacity_freed: Notify::new(),
            queue_depth,
        })
    }

    /// Waits for a backend with room and reserves a slot on it. Fails at once when the queue is
    /// full. Cancel-safe: dropping the future leaves the queue.
    ///
    /// # Errors
    /// [`ThrottleError::QueueFull`] when `queue_depth` requests are already waiting.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, ThrottleError> {
        let mut slot: Option<QueueSlot<'_>> = None;
        loop {
            let freed = self.capacity_freed.notified();
            tokio::pin!(freed);
            {
                let mut state = self.lock();
                let State { backends, rng, .. } = &mut *state;
                if let Some(backend) = backends.acquire(rng) {
                    drop(state);
                    drop(slot);
                    return Ok(Permit {
                        throttler: Arc::clone(self),
                        backend,
                    });
                }
                if slot.is_none() {
                    if state.waiting >= self.queue_depth {
                        return Err(ThrottleError::QueueFull {
                            depth: self.queue_depth,
                        });
                    }
                    state.waiting += 1;
                    slot = Some(QueueSlot { throttler: self });
                }
                // Registered before the lock is released, so no release in between is missed.
                freed.as_mut().enable();
            }
            freed.await;
        }
    }

    /// Replaces the ready backends and wakes the waiting requests to try them.
    pub fn update_backends(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.lock().backends.update(addrs);
        self.capacity_freed.notify_waiters();
    }

    /// Changes the requests each backend takes at once and wakes the waiting requests.
    pub fn set_container_concurrency(&self, container_concurrency: u32) {
        self.lock()
            .backends
            .set_container_concurrency(container_concurrency);
        self.capacity_freed.notify_waiters();
    }

    /// The ready backends.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.lock().backends.addrs()
    }

    /// The requests holding a slot.
    pub fn in_flight(&self) -> usize {
        self.lock().backends.in_flight()
    }

    /// The requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    // Never held across an await: every critical section is a few field updates.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, backend: SocketAddr) {
        self.lock().backends.release(backend);
        self.capacity_freed.notify_one();
    }
}

/// A request's place in the queue, given back when it leaves (served or cancelled).
struct QueueSlot<'a> {
    throttler: &'a RevisionThrottler,
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        let mut state = self.throttler.lock();
        state.waiting = state.waiting.saturating_sub(1);
    }
}

/// A slot on one backend of a revision, held while the request is served.
#[derive(Debug)]
pub struct Permit {
    throttler: Arc<RevisionThrottler>,
    backend: SocketAddr,
}

impl Permit {
    /// The backend to send the request to.
    pub fn backend(&self) -> SocketAddr {
        self.backend
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.throttler.release(self.backend);
    }
}
