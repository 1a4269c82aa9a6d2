//! Broker data-plane benchmark on loopback, in one run:
//!
//! 1. throughput: events/s POSTed straight to a subscriber, against events/s through broker
//!    ingress → filter (10 Triggers, 1 matching) → the same subscriber (counted when the
//!    subscriber received them), in `BENCH_ROUNDS` alternating rounds (direct, brokered, direct,
//!    ...) so that a slow spell of the machine falls on both; the figures are over all rounds;
//! 2. latency at a fixed rate (default 1,000 events/s): send time → subscriber receive time,
//!    direct and through the broker; the broker's added p50/p99 is the difference.
//!
//! ```text
//! cargo bench -p knative-eventing --bench broker_throughput
//! BENCH_EVENTS=50000 BENCH_ROUNDS=5 BENCH_CONCURRENCY=64 BENCH_RATE=1000 BENCH_SECONDS=10 cargo bench ...
//! ```
//!
//! A plain `main` (harness = false) rather than criterion: the figures are pipeline throughput
//! and tail latency under a paced load, which criterion's per-iteration model does not measure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use http::{StatusCode, Uri};
use knative_eventing::broker::{Broker, BrokerConfig, TriggerRoute};
use knative_eventing::delivery::{ContentMode, DeliveryPolicy, Dispatcher, codec, server};
use knative_eventing::filter::Filter;
use tokio::net::TcpListener;
use tokio::sync::Notify;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A subscriber that only counts and timestamps what it receives (by event id).
struct Subscriber {
    uri: Uri,
    received: AtomicUsize,
    arrival_nanos: Vec<AtomicU64>,
    epoch: Instant,
    notify: Notify,
}

async fn subscriber(capacity: usize, epoch: Instant) -> Arc<Subscriber> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let state = Arc::new(Subscriber {
        uri,
        received: AtomicUsize::new(0),
        arrival_nanos: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        epoch,
        notify: Notify::new(),
    });
    let handler_state = state.clone();
    tokio::spawn(server::serve(
        listener,
        move |request| {
            let state = handler_state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = server::read_body(body).await.unwrap_or_default();
                if let Ok(event) = codec::decode(&parts.headers, body)
                    && let Some(slot) = event
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| state.arrival_nanos.get(i))
                {
                    slot.store(state.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                state.received.fetch_add(1, Ordering::Relaxed);
                state.notify.notify_waiters();
                server::text(StatusCode::ACCEPTED, "")
            }
        },
        std::future::pending(),
    ));
    state
}

impl Subscriber {
    async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.notify.notified();
            if self.received.load(Ordering::Relaxed) >= n {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(10), notified).await;
        }
    }

    fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        for slot in &self.arrival_nanos {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

async fn broker(subscriber: &Uri) -> Uri {
    let broker = Broker::new(BrokerConfig {
        max_in_flight: env("BENCH_MAX_IN_FLIGHT", BrokerConfig::default().max_in_flight),
        ..BrokerConfig::default()
    });
    let mut triggers: Vec<TriggerRoute> = (0..9)
        .map(|i| TriggerRoute {
            name: format!("other-{i}"),
            filter: Filter::from_attributes([("type", format!("bench.other.{i}").as_str())]),
            subscriber: subscriber.clone(),
            delivery: DeliveryPolicy::default(),
        })
        .collect();
    triggers.push(TriggerRoute {
        name: "matching".into(),
        filter: Filter::from_attributes([("type", "bench.event"), ("source", "")]),
        subscriber: subscriber.clone(),
        delivery: DeliveryPolicy::default(),
    });
    broker.set_triggers(triggers);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move { broker.serve(listener, std::future::pending()).await });
    uri
}

fn event(id: usize) -> Event {
    EventBuilderV10::new()
        .id(id.to_string())
        .source("/bench")
        .ty("bench.event")
        .data("application/json", serde_json::json!({ "n": id }))
        .build()
        .unwrap()
}

/// Sends events 0..n to `target` with `concurrency` senders; returns the time until the
/// subscriber received them all.
async fn throughput(target: &Uri, sink: &Subscriber, n: usize, concurrency: usize) -> Duration {
    sink.reset();
    let sender = Dispatcher::new();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (sender, next, target) = (sender.clone(), next.clone(), target.clone());
        tasks.spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= n {
                    return;
                }
                let status = sender
                    .send_once(&event(id), &target, ContentMode::Binary, None)
                    .await
                    .expect("loopback send");
                assert_eq!(status, StatusCode::ACCEPTED);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    sink.wait_for(n).await;
    start.elapsed()
}

/// Sends at a fixed `rate` for `seconds`; returns the sorted send → receive latencies.
async fn paced_latencies(
    target: &Uri,
    sink: &Arc<Subscriber>,
    rate: usize,
    seconds: usize,
) -> Vec<Duration> {
    sink.reset();
    let n = rate * seconds;
    let sender = Dispatcher::new();
    let sent_nanos: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..n {
        ticker.tick().await;
        let (sender, target, sent, epoch) = (
            sender.clone(),
            target.clone(),
            sent_nanos.clone(),
            sink.epoch,
        );
        tasks.spawn(async move {
            let e = event(id);
            sent[id].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let _ = sender
                .send_once(&e, &target, ContentMode::Binary, None)
                .await;
        });
    }
    while tasks.join_next().await.is_some() {}
    sink.wait_for(n).await;
    let mut latencies: Vec<Duration> = (0..n)
        .map(|i| {
            let sent = sent_nanos[i].load(Ordering::Relaxed);
            let arrived = sink.arrival_nanos[i].load(Ordering::Relaxed);
            Duration::from_nanos(arrived.saturating_sub(sent))
        })
        .collect();
    latencies.sort();
    latencies
}

/// The CPU time this process used so far (user + system, every thread), from `/proc/self/stat`
/// (Linux; clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime is the 12th, stime
    // the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Time and CPU (sender, broker and subscriber together) spent on some events.
#[derive(Clone, Copy, Default)]
struct Spent {
    events: usize,
    time: Duration,
    cpu: Duration,
}

impl Spent {
    fn rate(&self) -> f64 {
        self.events as f64 / self.time.as_secs_f64()
    }

    fn cpu_per_event(&self) -> Duration {
        self.cpu / self.events.max(1) as u32
    }

    fn add(&mut self, other: Spent) {
        self.events += other.events;
        self.time += other.time;
        self.cpu += other.cpu;
    }
}

/// [`throughput`] and the process's CPU time meanwhile.
async fn throughput_and_cpu(
    target: &Uri,
    sink: &Subscriber,
    n: usize,
    concurrency: usize,
) -> Spent {
    let before = cpu_time();
    let time = throughput(target, sink, n, concurrency).await;
    Spent {
        events: n,
        time,
        cpu: cpu_time() - before,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let events = env("BENCH_EVENTS", 20_000);
    let rounds = env("BENCH_ROUNDS", 5).max(1);
    let concurrency = env("BENCH_CONCURRENCY", 64);
    let rate = env("BENCH_RATE", 1_000);
    let seconds = env("BENCH_SECONDS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let epoch = Instant::now();
        let sink = subscriber(events.max(rate * seconds), epoch).await;
        let broker_uri = broker(&sink.uri).await;

        // Warm both paths' connection pools.
        throughput(&sink.uri, &sink, 1_000, concurrency).await;
        throughput(&broker_uri, &sink, 1_000, concurrency).await;

        let per_round = (events / rounds).max(1);
        let (mut direct, mut brokered) = (Spent::default(), Spent::default());
        let mut per_round_ratios = Vec::new();
        for _ in 0..rounds {
            let d = throughput_and_cpu(&sink.uri, &sink, per_round, concurrency).await;
            let b = throughput_and_cpu(&broker_uri, &sink, per_round, concurrency).await;
            per_round_ratios.push(format!("{:.0}%", 100.0 * b.rate() / d.rate()));
            direct.add(d);
            brokered.add(b);
        }
        println!(
            "throughput ({} events, {concurrency} concurrent senders, {rounds} rounds): direct {:.0} events/s, \
             through broker (10 triggers, 1 matching) {:.0} events/s = {:.0}% of direct (rounds: {})",
            direct.events,
            direct.rate(),
            brokered.rate(),
            100.0 * brokered.rate() / direct.rate(),
            per_round_ratios.join(" ")
        );
        println!(
            "CPU per event (sender, broker and subscriber): direct {:.1} µs, through broker {:.1} µs \
             ({:.0}% of direct at equal CPU)",
            direct.cpu_per_event().as_secs_f64() * 1e6,
            brokered.cpu_per_event().as_secs_f64() * 1e6,
            100.0 * direct.cpu.as_secs_f64() / brokered.cpu.as_secs_f64()
        );

        let direct = paced_latencies(&sink.uri, &sink, rate, seconds).await;
        let brokered = paced_latencies(&broker_uri, &sink, rate, seconds).await;
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let (b50, b99) = (percentile(&brokered, 0.5), percentile(&brokered, 0.99));
        println!(
            "latency at {rate} events/s for {seconds}s: direct p50 {:.3} ms p99 {:.3} ms; \
             through broker p50 {:.3} ms p99 {:.3} ms; added p50 {:.3} ms p99 {:.3} ms",
            ms(d50),
            ms(d99),
            ms(b50),
            ms(b99),
            ms(b50) - ms(d50),
            ms(b99) - ms(d99)
        );
    });
}
