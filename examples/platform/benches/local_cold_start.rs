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
//! Each cold try also records, from watches on the API server, when each step of the cold path
//! became visible (the PodAutoscaler asking for a Pod, the Deployment scaled up, the Pod
//! created, its process started and ready, the Endpoints listing it), so that the time the
//! platform adds can be told apart step by step.
//!
//! Run: `cargo build --release -p hello && cargo bench -p knative-platform --bench local_cold_start`
//! (`TRIES=N` for another number of tries than 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use knative_serving::apis::PodAutoscaler;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

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

/// The steps of the cold path, in order, as watches on the API server see them.
const STEPS: [&str; 6] = [
    "PodAutoscaler desiredScale >= 1",
    "Deployment replicas >= 1",
    "Pod created",
    "Pod Ready",
    "Endpoints list an address",
    "response",
];

/// When each step of [`STEPS`] (but the response) was last seen becoming true.
type Timeline = Arc<Mutex<Vec<Option<Instant>>>>;

/// Watches objects of one kind in `default` and marks `step` in the timeline whenever `seen`
/// holds for one of them and did not before.
fn watch_step<K>(
    runtime: &tokio::runtime::Runtime,
    client: kube::Client,
    timeline: Timeline,
    step: usize,
    seen: fn(&K) -> bool,
) where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    runtime.spawn(async move {
        let api: Api<K> = Api::namespaced(client, "default");
        let mut events = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        let mut held = false;
        while let Some(Ok(object)) = events.next().await {
            let now = seen(&object);
            if now && !held {
                timeline.lock().unwrap()[step] = Some(Instant::now());
            }
            held = now;
        }
    });
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn start_timeline(runtime: &tokio::runtime::Runtime, client: kube::Client) -> Timeline {
    let timeline: Timeline = Arc::new(Mutex::new(vec![None; STEPS.len()]));
    watch_step::<PodAutoscaler>(runtime, client.clone(), timeline.clone(), 0, |pa| {
        pa.status
            .as_ref()
            .and_then(|s| s.desired_scale)
            .is_some_and(|d| d >= 1)
    });
    watch_step::<Deployment>(runtime, client.clone(), timeline.clone(), 1, |d| {
        d.spec
            .as_ref()
            .and_then(|s| s.replicas)
            .is_some_and(|r| r >= 1)
    });
    // Pods are created and deleted, not scaled: "created" is a Pod without a deletion mark.
    watch_step::<Pod>(runtime, client.clone(), timeline.clone(), 2, |p| {
        p.metadata.deletion_timestamp.is_none() && !pod_ready(p)
    });
    watch_step::<Pod>(runtime, client.clone(), timeline.clone(), 3, pod_ready);
    watch_step::<Endpoints>(runtime, client, timeline.clone(), 4, |e| {
        e.metadata.name.as_deref() == Some("hello-00001-private")
            && e.subsets.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
            })
    });
    timeline
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
    let timeline = start_timeline(&runtime, runtime.block_on(platform.client()));
    // Per step, the time from the request to the step's first sighting, over every try.
    let mut steps: Vec<Vec<Duration>> = vec![Vec::new(); STEPS.len()];
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
        timeline.lock().unwrap().fill(None);
        let started = Instant::now();
        let (status, body) = platform.get(host);
        let took = started.elapsed();
        assert_eq!(status, 200, "try {i}: {body}\n{}", platform.log());
        cold.push(took);
        // Give the watches a moment to deliver what happened before the response.
        std::thread::sleep(Duration::from_millis(200));
        let seen = timeline.lock().unwrap().clone();
        for (step, at) in seen.iter().enumerate().take(STEPS.len() - 1) {
            if let Some(at) = at.filter(|at| *at >= started) {
                steps[step].push(at - started);
            }
        }
        steps[STEPS.len() - 1].push(took);
    }
    println!("cold path, time from the request to each step (watches on the API server):");
    for (name, samples) in STEPS.iter().zip(steps) {
        if samples.is_empty() {
            println!("  {name:<34} never seen");
        } else {
            report(&format!("  {name}"), samples);
        }
    }
    let cold_p50 = report("cold start through the gateway", cold);
    println!(
        "platform adds {:.2} ms at p50 to the bare start",
        (cold_p50.as_secs_f64() - bare_p50.as_secs_f64()) * 1e3
    );
}
