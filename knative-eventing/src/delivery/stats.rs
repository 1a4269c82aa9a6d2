//! Counters of what happened to every event a data plane accepted, so that "nothing lost" is
//! checkable: `accepted × fan-out = delivered + dead_lettered + failed + dropped`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Outcome;

/// Live counters, shared by a data plane's tasks.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    failed: AtomicU64,
    replies: AtomicU64,
}

/// A snapshot of [`DeliveryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events accepted at ingress (replies included).
    pub accepted: u64,
    /// Requests refused at ingress (malformed events).
    pub rejected: u64,
    /// Events dropped on purpose (TTL exhausted), each logged.
    pub dropped: u64,
    /// Deliveries that reached their destination.
    pub delivered: u64,
    /// Deliveries that went to the dead-letter sink.
    pub dead_lettered: u64,
    /// Deliveries that reached neither the destination nor a dead-letter sink.
    pub failed: u64,
    /// Reply events received from destinations.
    pub replies: u64,
}

impl StatsSnapshot {
    /// Deliveries that ended one way or another.
    pub fn finished(&self) -> u64 {
        self.delivered + self.dead_lettered + self.failed
    }
}

impl DeliveryStats {
    /// Counts an accepted event.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event dropped on purpose.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts how a delivery ended.
    pub fn record(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Delivered { reply, .. } => {
                if reply.is_some() {
                    self.replies.fetch_add(1, Ordering::Relaxed);
                }
                &self.delivered
            }
            Outcome::DeadLettered { .. } => &self.dead_lettered,
            Outcome::Failed { .. } => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            dropped: get(&self.dropped),
            delivered: get(&self.delivered),
            dead_lettered: get(&self.dead_lettered),
            failed: get(&self.failed),
            replies: get(&self.replies),
        }
    }
}
