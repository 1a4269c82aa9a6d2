//! KPA conformance: every scenario of `tests/data/kpa` (traces Knative Serving's own autoscaler
//! replayed, with the decisions it made) replays through our KPA to the same decisions.
//!
//! A scenario `NAME` is `NAME.trace.csv` (input), `NAME.args` (the flags of
//! `knative autoscaler simulate`) and `NAME.expected.csv` (Knative's rows). Matching means equal
//! `desired_pods`, `excess_burst_capacity`, `panic_mode` and `scale_valid` on every row, and
//! stable and panic concurrency within 0.001.

use std::fs;
use std::path::{Path, PathBuf};

use knative_serving::autoscaler::simulate::{self, Row, Settings};

const TOLERANCE: f64 = 0.001;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kpa")
}

/// The scenario names: every `NAME.trace.csv`.
fn scenarios() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(data_dir())
        .expect("tests/data/kpa")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".trace.csv").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The settings a `.args` file gives: `--tick N`, `--container-concurrency N`,
/// `--cm key=value` and `--annotation key=value`, whitespace-separated.
fn settings(args: &str) -> Settings {
    let mut tick = 1;
    let mut container_concurrency = 0;
    let mut cm = Vec::new();
    let mut annotations = Vec::new();
    let mut words = args.split_whitespace();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .unwrap_or_else(|| panic!("{flag} without a value"));
        match flag {
            "--tick" => tick = value.parse().expect("--tick N"),
            "--container-concurrency" => {
                container_concurrency = value.parse().expect("--container-concurrency N");
            }
            "--cm" => cm.push(value),
            "--annotation" => annotations.push(value),
            other => panic!("unknown flag {other}"),
        }
    }
    Settings::from_flags(tick, container_concurrency, &cm, &annotations).expect("valid flags")
}

/// The differences between our rows and Knative's, one line each.
fn mismatches(got: &[Row], want: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("{} rows, want {}", got.len(), want.len()));
    }
    for (g, w) in got.iter().zip(want) {
        let same = g.second == w.second
            && g.ready_pods == w.ready_pods
            && g.observed_concurrency == w.observed_concurrency
            && g.desired_pods == w.desired_pods
            && g.excess_burst_capacity == w.excess_burst_capacity
            && g.panic_mode == w.panic_mode
            && g.scale_valid == w.scale_valid
            && (g.stable_concurrency - w.stable_concurrency).abs() <= TOLERANCE
            && (g.panic_concurrency - w.panic_concurrency).abs() <= TOLERANCE;
        if !same {
            problems.push(format!("second {}:\n  got  {g:?}\n  want {w:?}", w.second));
        }
    }
    problems
}

#[test]
fn every_scenario_is_present() {
    assert_eq!(
        scenarios(),
        [
            "ramp-window30-thr150",
            "ramp500",
            "ramp500-tick2",
            "sawtooth",
            "spike1000",
            "steps-cc10",
            "steps-sdd20",
        ]
    );
}

#[test]
fn every_scenario_replays_to_knatives_decisions() {
    let mut failures = Vec::new();
    for name in scenarios() {
        let read = |suffix: &str| {
            fs::read_to_string(data_dir().join(format!("{name}.{suffix}")))
                .unwrap_or_else(|e| panic!("{name}.{suffix}: {e}"))
        };
        let trace = simulate::parse_trace(&read("trace.csv"))
            .unwrap_or_else(|e| panic!("{name}.trace.csv: {e}"));
        let want = simulate::parse_rows(&read("expected.csv"))
            .unwrap_or_else(|e| panic!("{name}.expected.csv: {e}"));
        let got = simulate::replay(&trace, &settings(&read("args"))).expect("a KPA");
        let problems = mismatches(&got, &want);
        if problems.is_empty() {
            println!("{name}: {} rows match", want.len());
        } else {
            failures.push(format!(
                "{name}: {} of {} rows differ\n{}",
                problems.len(),
                want.len(),
                problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn formatted_output_is_knatives_csv() {
    // The averages Knative prints are rounded to three decimals; ours print the same digits.
    for name in scenarios() {
        let read =
            |suffix: &str| fs::read_to_string(data_dir().join(format!("{name}.{suffix}"))).unwrap();
        let trace = simulate::parse_trace(&read("trace.csv")).unwrap();
        let got = simulate::replay(&trace, &settings(&read("args"))).unwrap();
        assert_eq!(
            simulate::format_rows(&got),
            read("expected.csv"),
            "{name}: formatted rows differ"
        );
    }
}
