//! `knative autoscaler simulate`, run as a user runs it: its stdout for a KPA conformance
//! scenario is Knative's expected CSV, byte for byte, and bad input fails with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenario(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../knative-serving/tests/data/kpa")
        .join(file)
}

fn knative(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(args)
        .output()
        .expect("run knative")
}

#[test]
fn simulate_prints_knatives_decisions() {
    // steps-sdd20.args: `--cm scale-down-delay=20s`.
    let trace = scenario("steps-sdd20.trace.csv");
    let out = knative(&[
        "autoscaler",
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--cm",
        "scale-down-delay=20s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(scenario("steps-sdd20.expected.csv")).unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "stdout differs from the expected CSV at line {}:\n  got  {:?}\n  want {:?}",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn a_malformed_trace_fails_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("knative-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("bad.csv");
    std::fs::write(
        &trace,
        "second,observed_concurrency,ready_pods\n0,1,1\n1,many,1\n",
    )
    .unwrap();
    let out = knative(&["autoscaler", "simulate", "--trace", trace.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3: observed_concurrency \"many\" is not valid"),
        "{stderr}"
    );
}

#[test]
fn a_bad_cm_value_fails_naming_the_key() {
    let trace = scenario("ramp500.trace.csv");
    let out = knative(&[
        "autoscaler",
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--cm",
        "stable-window=2s",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"--cm: config-autoscaler: stable-window: invalid value "2s": must be in [6s, 1h]"#
        ),
        "{stderr}"
    );
}
