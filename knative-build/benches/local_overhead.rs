//! LocalExecutor overhead per step: a build of N steps, each running `/bin/true`, against a
//! plain shell script that runs the same N commands, in the same run.
//!
//! `cargo bench -p knative-build --bench local_overhead`
//!
//! Overhead per step = (time of the LocalExecutor build − time of the script) / N. It includes
//! what the executor adds per step: its own process spawn with piped output read line by line,
//! a process group killed at the step's end, a results directory created and read, and the
//! progress events; and per build: the temporary workspace.

use std::io::Write;
use std::process::Command;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use knative_build::apis::Build;
use knative_build::executor::{
    BuildOutcome, BuildPlan, CancellationToken, Events, LocalExecutor, StepExecutor,
};

const TRUE: &str = "/bin/true";

fn plan(steps: usize) -> BuildPlan {
    let steps: Vec<_> = (0..steps)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "image": "x", "command": [TRUE]}))
        .collect();
    let build: Build = serde_json::from_value(serde_json::json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "Build",
        "metadata": {"name": "bench"}, "spec": {"steps": steps},
    }))
    .unwrap();
    BuildPlan::new(&build, None).unwrap()
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let executor = LocalExecutor::new();
    let mut group = c.benchmark_group("build_of_n_true_steps");
    group.sample_size(20);
    for n in [1usize, 10, 50] {
        let p = plan(n);
        group.bench_with_input(BenchmarkId::new("local_executor", n), &p, |b, p| {
            b.iter(|| {
                let report = runtime
                    .block_on(executor.execute(p, &Events::none(), CancellationToken::new()))
                    .unwrap();
                assert_eq!(report.outcome, BuildOutcome::Succeeded);
            });
        });
        let mut script = tempfile::NamedTempFile::new().unwrap();
        writeln!(script, "set -e").unwrap();
        for _ in 0..n {
            writeln!(script, "{TRUE}").unwrap();
        }
        let path = script.path().to_owned();
        group.bench_with_input(BenchmarkId::new("shell_script", n), &path, |b, path| {
            b.iter(|| {
                let status = Command::new("sh").arg(path).status().unwrap();
                assert!(status.success());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
