//! The activator's throttler: Knative's policies, capacity and queueing.

use std::net::SocketAddr;
use std::time::Duration;

use knative_serving::dataplane::throttler::{
    Backends, LoadBalancingPolicy, RevisionThrottler, ThrottleError,
};

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 8012))
}

fn rng() -> fastrand::Rng {
    fastrand::Rng::with_seed(7)
}

#[test]
fn the_policy_follows_knatives_choice_for_container_concurrency() {
    use LoadBalancingPolicy::*;
    let got: Vec<_> = [0, 1, 3, 4, 100]
        .into_iter()
        .map(LoadBalancingPolicy::for_container_concurrency)
        .collect();
    assert_eq!(
        got,
        [
            RandomChoice2,
            FirstAvailable,
            FirstAvailable,
            RoundRobin,
            RoundRobin
        ]
    );
}

#[test]
fn capacity_is_container_concurrency_times_backends() {
    let mut backends = Backends::new(10);
    assert_eq!(backends.capacity(), Some(0));
    backends.update([addr(1), addr(2), addr(3)]);
    assert_eq!(backends.capacity(), Some(30));
    backends.set_container_concurrency(0);
    assert_eq!(backends.capacity(), None, "unlimited with backends");
    backends.update([]);
    assert_eq!(backends.capacity(), Some(0), "nothing without backends");
}

#[test]
fn no_backend_means_no_slot() {
    let mut backends = Backends::new(0);
    assert_eq!(backends.acquire(&mut rng()), None);
}

#[test]
fn first_available_packs_requests_onto_the_first_backend_with_room() {
    let mut backends = Backends::new(2);
    backends.update([addr(1), addr(2)]);
    let mut rng = rng();
    let picks: Vec<_> = (0..4).map(|_| backends.acquire(&mut rng)).collect();
    assert_eq!(
        picks,
        [Some(addr(1)), Some(addr(1)), Some(addr(2)), Some(addr(2))]
    );
    assert_eq!(backends.acquire(&mut rng), None, "both backends are full");
    backends.release(addr(1));
    assert_eq!(backends.acquire(&mut rng), Some(addr(1)));
}

#[test]
fn round_robin_takes_backends_in_turn() {
    let mut backends = Backends::new(10);
    backends.update([addr(1), addr(2), addr(3)]);
    let mut rng = rng();
    let picks: Vec<_> = (0..6)
        .map(|_| backends.acquire(&mut rng).unwrap())
        .collect();
    assert_eq!(
        picks,
        [addr(1), addr(2), addr(3), addr(1), addr(2), addr(3)]
    );
}

#[test]
fn round_robin_skips_full_backends() {
    let mut backends = Backends::new(4);
    backends.update([addr(1), addr(2)]);
    let mut rng = rng();
    for _ in 0..8 {
        assert!(backends.acquire(&mut rng).is_some());
    }
    backends.release(addr(2));
    // The turn is addr(1)'s, but only addr(2) has room.
    assert_eq!(backends.acquire(&mut rng), Some(addr(2)));
    assert_eq!(backends.acquire(&mut rng), None);
}

#[test]
fn random_choice_of_two_prefers_the_less_loaded_backend() {
    let mut rng = rng();
    // With two backends both are always drawn: after one pick the other is the less loaded.
    let mut loaded = Backends::new(0);
    loaded.update([addr(1), addr(2)]);
    for _ in 0..10 {
        let pick = loaded.acquire(&mut rng).unwrap();
        let other = if pick == addr(1) { addr(2) } else { addr(1) };
        // The next pick is the other one whenever this one became the busier.
        let next = loaded.acquire(&mut rng).unwrap();
        assert_eq!(next, other);
    }
}

#[test]
fn unlimited_concurrency_never_runs_out_of_slots() {
    let mut backends = Backends::new(0);
    backends.update([addr(1)]);
    let mut rng = rng();
    for _ in 0..10_000 {
        assert_eq!(backends.acquire(&mut rng), Some(addr(1)));
    }
}

#[test]
fn a_backend_that_stays_keeps_its_requests_and_a_removed_one_is_forgotten() {
    let mut backends = Backends::new(1);
    backends.update([addr(1), addr(2)]);
    let mut rng = rng();
    backends.acquire(&mut rng);
    backends.acquire(&mut rng);
    backends.update([addr(2), addr(3)]);
    assert_eq!(backends.addrs(), [addr(2), addr(3)]);
    assert_eq!(backends.in_flight(), 1, "addr(2)'s request stays counted");
    backends.release(addr(1));
    assert_eq!(
        backends.in_flight(),
        1,
        "a release from a removed backend is ignored"
    );
    assert_eq!(backends.acquire(&mut rng), Some(addr(3)));
}

#[tokio::test]
async fn a_waiting_request_gets_the_first_backend_that_appears() {
    let throttler = RevisionThrottler::new(0, 10);
    let waiter = tokio::spawn({
        let throttler = throttler.clone();
        async move { throttler.acquire().await.map(|p| p.backend()) }
    });
    while throttler.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    throttler.update_backends([addr(1)]);
    assert_eq!(waiter.await.unwrap(), Ok(addr(1)));
    assert_eq!(throttler.waiting(), 0);
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let throttler = RevisionThrottler::new(0, 2);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let throttler = throttler.clone();
            tokio::spawn(async move { throttler.acquire().await.map(|p| p.backend()) })
        })
        .collect();
    while throttler.waiting() < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        throttler.acquire().await.map(|p| p.backend()),
        Err(ThrottleError::QueueFull { depth: 2 })
    );
    throttler.update_backends([addr(1)]);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Ok(addr(1)));
    }
}

#[tokio::test]
async fn a_request_that_gives_up_leaves_the_queue() {
    let throttler = RevisionThrottler::new(0, 1);
    let gave_up = tokio::time::timeout(Duration::from_millis(20), throttler.acquire()).await;
    assert!(gave_up.is_err());
    assert_eq!(throttler.waiting(), 0);
    throttler.update_backends([addr(1)]);
    assert!(
        throttler.acquire().await.is_ok(),
        "its place was given back"
    );
}

#[tokio::test]
async fn a_finished_request_lets_the_next_one_in() {
    let throttler = RevisionThrottler::new(1, 10);
    throttler.update_backends([addr(1)]);
    let first = throttler.acquire().await.unwrap();
    let second = tokio::spawn({
        let throttler = throttler.clone();
        async move { throttler.acquire().await.map(|p| p.backend()) }
    });
    while throttler.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(throttler.in_flight(), 1, "the second request waits");
    drop(first);
    assert_eq!(second.await.unwrap(), Ok(addr(1)));
}

#[tokio::test]
async fn raising_container_concurrency_admits_waiting_requests() {
    let throttler = RevisionThrottler::new(1, 10);
    throttler.update_backends([addr(1)]);
    let _first = throttler.acquire().await.unwrap();
    let second = tokio::spawn({
        let throttler = throttler.clone();
        async move { throttler.acquire().await.map(|p| p.backend()) }
    });
    while throttler.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    throttler.set_container_concurrency(2);
    let admitted = tokio::time::timeout(Duration::from_secs(5), second).await;
    assert_eq!(
        admitted
            .expect("admitted while the first request holds its slot")
            .unwrap(),
        Ok(addr(1))
    );
}
