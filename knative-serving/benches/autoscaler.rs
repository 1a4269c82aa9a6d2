//! Autoscaler benchmarks: the cost of one KPA decision (record a stat, then decide), and of a
//! full 2-second tick of a multi-scaler with 10,000 revisions, each with its own decider and
//! metric windows under its own load. Memory per revision is printed (not timed): it is
//! computed from the capacities of what each revision holds (see `docs/performance.md`).
//!
//! `cargo bench -p knative-serving --bench autoscaler -- --warm-up-time 1 --measurement-time 3`

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::jiff::Timestamp;
use knative_core::config::AutoscalerConfig;
use knative_serving::autoscaler::metrics::{MetricSpec, RevisionMetrics, Stat};
use knative_serving::autoscaler::multiscaler::MultiScaler;
use knative_serving::autoscaler::{
    Autoscaler, AutoscalerParams, AutoscalerRegistry, MetricSnapshot,
};

const BASE: i64 = 1_700_000_000;
const REVISIONS: usize = 10_000;
/// Seconds of load recorded before measuring, so that every window is full.
const WARM_UP_SECONDS: i64 = 120;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(BASE + second).expect("in range")
}

/// A deterministic, varied load: each revision has its own base level, period and phase, plus
/// a little noise, and is idle a tenth of the time.
#[derive(Clone, Copy)]
struct Load {
    level: f64,
    period: f64,
    phase: f64,
    seed: u64,
}

impl Load {
    fn new(revision: usize) -> Self {
        let mut seed = (revision as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        Self {
            level: 1.0 + next() * 400.0,
            period: 30.0 + next() * 600.0,
            phase: next() * std::f64::consts::TAU,
            seed,
        }
    }

    fn concurrency(&mut self, second: i64) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let noise = (self.seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let wave = (second as f64 * std::f64::consts::TAU / self.period + self.phase).sin();
        if wave < -0.8 {
            0.0
        } else {
            (self.level * (1.0 + 0.5 * wave) * (1.0 + 0.1 * noise)).max(0.0)
        }
    }
}

/// One revision driven directly: its windows and its autoscaler (as made by the registry).
struct Revision {
    metrics: RevisionMetrics,
    autoscaler: Box<dyn Autoscaler>,
    load: Load,
    ready_pods: i32,
    second: i64,
}

impl Revision {
    fn new(annotations: &[(&str, &str)]) -> Self {
        let config = AutoscalerConfig::default();
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let params = AutoscalerParams {
            ready_pods: 1,
            ..AutoscalerParams::new(&annotations, &config, at(0))
        };
        let mut revision = Self {
            metrics: RevisionMetrics::new(&MetricSpec::new(&params)),
            autoscaler: AutoscalerRegistry::default()
                .create(&params)
                .expect("a KPA"),
            load: Load::new(7),
            ready_pods: 1,
            second: 0,
        };
        for _ in 0..WARM_UP_SECONDS {
            revision.step();
        }
        revision
    }

    /// One second: record the revision's stat, then decide.
    fn step(&mut self) -> i32 {
        let now = at(self.second);
        let stat = Stat::concurrency(self.load.concurrency(self.second));
        self.metrics.record(now, &stat);
        let decision = self.autoscaler.scale(&MetricSnapshot {
            now,
            ready_pods: self.ready_pods,
            metrics: &self.metrics,
        });
        if decision.valid {
            self.ready_pods = decision.desired_scale;
        }
        self.second += 1;
        decision.desired_scale
    }
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("kpa-decision");
    let variants: [(&str, &[(&str, &str)]); 3] = [
        ("linear", &[]),
        (
            "weighted-exponential",
            &[(
                "autoscaling.knative.dev/metric-aggregation-algorithm",
                "weighted-exponential",
            )],
        ),
        (
            "linear+scale-down-delay",
            &[("autoscaling.knative.dev/scale-down-delay", "30s")],
        ),
    ];
    for (name, annotations) in variants {
        let mut revision = Revision::new(annotations);
        group.bench_function(name, |b| b.iter(|| black_box(revision.step())));
    }
    group.finish();
}

/// 10,000 revisions in one multi-scaler, fed one stat per revision per second and ticked every
/// two seconds, as Knative's autoscaler scrapes and decides.
struct Fleet {
    scalers: MultiScaler<String>,
    keys: Vec<String>,
    loads: Vec<Load>,
    ready_pods: HashMap<String, i32>,
    changes: Vec<(String, i32)>,
    second: i64,
}

impl Fleet {
    fn new(revisions: usize) -> Self {
        let config = AutoscalerConfig::default();
        let annotations = BTreeMap::new();
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        let keys: Vec<String> = (0..revisions)
            .map(|i| format!("namespace-{:03}/service-{i:05}-00001", i % 100))
            .collect();
        for key in &keys {
            scalers
                .create(
                    key.clone(),
                    &AutoscalerParams {
                        ready_pods: 1,
                        ..AutoscalerParams::new(&annotations, &config, at(0))
                    },
                )
                .expect("a KPA");
        }
        let mut fleet = Self {
            scalers,
            ready_pods: keys.iter().map(|k| (k.clone(), 1)).collect(),
            loads: (0..revisions).map(Load::new).collect(),
            keys,
            changes: Vec::new(),
            second: 0,
        };
        for _ in 0..WARM_UP_SECONDS / 2 {
            fleet.tick();
        }
        fleet
    }

    /// Two seconds: a stat per revision each second, then one decision per revision.
    fn tick(&mut self) -> usize {
        for _ in 0..2 {
            let now = at(self.second);
            for (key, load) in self.keys.iter().zip(&mut self.loads) {
                let stat = Stat::concurrency(load.concurrency(self.second));
                self.scalers.record(key, now, &stat);
            }
            self.second += 1;
        }
        let now = at(self.second - 1);
        let ready_pods = &self.ready_pods;
        let changes = &mut self.changes;
        self.scalers.tick(
            now,
            |key| ready_pods.get(key).copied().unwrap_or(0),
            |key, status| changes.push((key.clone(), status.desired_scale)),
        );
        let changed = changes.len();
        // Pods come and go at once: the next tick sees the scale just decided.
        for (key, desired) in changes.drain(..) {
            self.ready_pods.insert(key, desired);
        }
        changed
    }
}

fn multiscaler(c: &mut Criterion) {
    let mut fleet = Fleet::new(REVISIONS);
    report_memory(&fleet);
    let mut group = c.benchmark_group("kpa-multiscaler");
    group.throughput(Throughput::Elements(REVISIONS as u64));
    group.sample_size(20);
    group.bench_function("10000-revisions-full-tick", |b| {
        b.iter(|| black_box(fleet.tick()));
    });
    group.finish();
}

/// Bytes per revision, from capacities: the multi-scaler's table, keys, windows and deciders.
fn report_memory(fleet: &Fleet) {
    let total = fleet.scalers.memory_footprint(String::capacity);
    let keys: usize = fleet.keys.iter().map(String::capacity).sum();
    let one = Revision::new(&[]);
    let windows = one.metrics.memory_footprint();
    let decider = one.autoscaler.memory_footprint();
    let n = fleet.scalers.len();
    println!(
        "memory: {} bytes per revision over {n} revisions ({total} bytes in all); \
         per revision: metric windows {windows}, KPA decider {decider}, key {}, \
         hash table and bookkeeping {} (the table's capacity over {n} entries, box pointers, \
         statuses)",
        total / n,
        keys / n,
        (total - keys - n * (windows + decider)) / n,
    );
}

criterion_group!(benches, decision, multiscaler);
criterion_main!(benches);
