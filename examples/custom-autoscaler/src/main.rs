//! `cargo run -p custom-autoscaler`: one Monday of a revision under a daytime load, decided by
//! the schedule autoscaler (`Mon-Fri 08:00-18:00=5`, target 50) and by the KPA, hour by hour.

use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use knative_core::config::AutoscalerConfig;
use knative_serving::autoscaler::AutoscalerParams;
use knative_serving::autoscaler::metrics::{MetricSpec, RevisionMetrics, Stat};
use knative_serving::autoscaler::{Autoscaler, MetricSnapshot};

fn main() {
    let config = AutoscalerConfig::default();
    let registry = custom_autoscaler::registry();
    let monday: Timestamp = "2024-01-01T00:00:00Z".parse().expect("a timestamp");
    let class = |class: &str| {
        BTreeMap::from([
            ("autoscaling.knative.dev/class".to_owned(), class.to_owned()),
            (
                custom_autoscaler::WINDOWS_ANNOTATION_KEY.to_owned(),
                "Mon-Fri 08:00-18:00=5".to_owned(),
            ),
            ("autoscaling.knative.dev/target".to_owned(), "50".to_owned()),
        ])
    };
    let schedule = class(custom_autoscaler::SCHEDULE_CLASS);
    let kpa = class("kpa.autoscaling.knative.dev");
    let make = |annotations| {
        let params = AutoscalerParams::new(annotations, &config, monday);
        let autoscaler: Box<dyn Autoscaler> = registry.create(&params).expect("an autoscaler");
        (autoscaler, RevisionMetrics::new(&MetricSpec::new(&params)))
    };
    let (mut by_schedule, mut schedule_metrics) = make(&schedule);
    let (mut by_kpa, mut kpa_metrics) = make(&kpa);

    println!("hour,concurrency,schedule_desired,kpa_desired");
    for hour in 0..24 {
        // Load rises from 07:00 to a noon peak of 300 in flight and is gone by 19:00.
        let concurrency = match hour {
            7..=18 => 300.0 - (f64::from(hour) - 12.5).abs() * 50.0,
            _ => 0.0,
        };
        let now = monday + SignedDuration::from_hours(i64::from(hour));
        // A minute of stats before each decision.
        for second in 0..60 {
            let at = now - SignedDuration::from_secs(59 - second);
            schedule_metrics.record(at, &Stat::concurrency(concurrency));
            kpa_metrics.record(at, &Stat::concurrency(concurrency));
        }
        let decide = |autoscaler: &mut Box<dyn Autoscaler>, metrics: &RevisionMetrics| {
            autoscaler
                .scale(&MetricSnapshot {
                    now,
                    ready_pods: 0,
                    metrics,
                })
                .desired_scale
        };
        println!(
            "{hour:02},{concurrency},{},{}",
            decide(&mut by_schedule, &schedule_metrics),
            decide(&mut by_kpa, &kpa_metrics)
        );
    }
}
