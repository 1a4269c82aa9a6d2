//! What `knative local` adds to a function's start, measured in one run (figures in
//! docs/performance.md):
//!
//! 1. **bare**: `hello` started by hand with `PORT`, polled every millisecond with `GET /` until
//!    it answers: the function's own start-to-ready time;
//! 2. **platform start**: `knative local` started on a fresh data directory, the hello Service
//!    applied, `GET /` through the gateway polled until it answers;
//! 3. **cold start**: the Service idle until its revision is at zero (Knative's shortest
//!    windows: 6 s stable window, 6 s grace period), then one `GET /` through the gateway, which
//!    the activator holds until the new process is ready.
//!
//! Run: `cargo build --release -p hello && cargo bench -p knative-platform --bench local_cold_start`
//! (`TRIES=N` for another number of tries than 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    FAST_AUTOSCALER, Platform, free_port, get, hello_binary, hello_children, hello_service,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 50.0);
    println!(
        "{what:<36} n={:<3} p50 {:>8.2} ms  p99 {:>8.2} ms  min {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        percentile(&samples, 99.0).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    p50
}

/// Starts `hello` on a free port and returns the time until `GET /` answers 200.
fn bare_start() -> Duration {
    let addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = Command::new(hello_binary())
        .env("PORT", addr.rsplit(':').next().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if get(&addr, "bare").0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "hello never answered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let ready = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    ready
}

fn main() {
    let tries: usize = std::env::var("TRIES")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "knative local cold start, {tries} tries, {}",
        hello_binary().display()
    );

    let bare: Vec<_> = (0..tries).map(|_| bare_start()).collect();
    let bare_p50 = report("bare hello start-to-ready", bare);

    let started = Instant::now();
    let platform = Platform::start();
    platform.apply(FAST_AUTOSCALER);
    platform.apply(&hello_service("hello", "World", &[]));
    let host = "hello.default.example.com";
    while platform.get(host).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no answer in 60 s\n{}",
            platform.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = started.elapsed();
    println!(
        "{:<36} {:>8.2} ms",
        "platform start to first response",
        first.as_secs_f64() * 1e3
    );

    let pid = platform.child.id();
    let mut cold = Vec::new();
    for i in 0..tries {
        let idle = Instant::now();
        // At zero, and staying there for 3 s: no Pod, no process.
        runtime.block_on(async {
            let mut zero_since: Option<Instant> = None;
            loop {
                let at_zero =
                    platform.pods("hello-00001").await.is_empty() && hello_children(pid).is_empty();
                zero_since = if at_zero {
                    zero_since.or(Some(Instant::now()))
                } else {
                    None
                };
                if zero_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(3)) {
                    break;
                }
                assert!(
                    idle.elapsed() < Duration::from_secs(120),
                    "try {i}: never 3 s at zero\n{}",
                    platform.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let started = Instant::now();
        let (status, body) = platform.get(host);
        let took = started.elapsed();
        assert_eq!(status, 200, "try {i}: {body}\n{}", platform.log());
        cold.push(took);
    }
    let cold_p50 = report("cold start through the gateway", cold);
    println!(
        "platform adds {:.2} ms at p50 to the bare start",
        (cold_p50.as_secs_f64() - bare_p50.as_secs_f64()) * 1e3
    );
}
