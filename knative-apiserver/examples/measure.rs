//! Measures the embedded server: start-to-first-response time (in memory and on a data
//! directory) and sequential create latency through `kube::Client`.
//!
//! ```text
//! cargo run --release -p knative-apiserver --example measure
//! ```

use k8s_openapi::api::core::v1::ConfigMap;
use knative_apiserver::{ApiServer, Builder};
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};

const STARTS: usize = 20;
const CREATES: usize = 500;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// (start() returned, first response through a new kube::Client)
async fn start_to_first_response(builder: impl Fn() -> Builder) -> (Vec<Duration>, Vec<Duration>) {
    let (mut listening, mut answered) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let started = Instant::now();
        let server = builder().start().await.expect("the server starts");
        listening.push(started.elapsed());
        server
            .client()
            .apiserver_version()
            .await
            .expect("a first response");
        answered.push(started.elapsed());
        server.shutdown().await;
    }
    (listening, answered)
}

async fn create_latencies(builder: Builder) -> (Vec<Duration>, Duration) {
    let server = builder.start().await.expect("the server starts");
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut samples = Vec::new();
    let all = Instant::now();
    for i in 0..CREATES {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i}")}, "data": {"k": "v"},
        }))
        .unwrap();
        let started = Instant::now();
        api.create(&PostParams::default(), &cm)
            .await
            .expect("created");
        samples.push(started.elapsed());
    }
    let total = all.elapsed();
    server.shutdown().await;
    (samples, total)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    println!(
        "{what}: p50 {:?}, p99 {:?} (n={})",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (listening, answered) = start_to_first_response(|| ApiServer::builder().in_memory()).await;
    report("start, in memory", listening);
    report("start to first response, in memory", answered);
    let (listening, answered) =
        start_to_first_response(|| ApiServer::builder().data_dir(dir.path())).await;
    report("start, data dir", listening);
    report("start to first response, data dir", answered);
    let (samples, total) = create_latencies(ApiServer::builder().in_memory()).await;
    report("create, in memory", samples);
    println!("  {CREATES} creates in {total:?}");
    let fresh = tempfile::tempdir().expect("a temporary directory");
    let (samples, total) = create_latencies(ApiServer::builder().data_dir(fresh.path())).await;
    report("create, data dir (fsync per write)", samples);
    println!("  {CREATES} creates in {total:?}");
}
