//! Traffic resolution and host names, as Knative's `route/traffic`, `route/domains` and
//! `route/visibility` compute them: pure functions, one behaviour per test.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{ConditionSet, ConditionStatus, Status};
use knative_core::config::{Config, ConfigMapConfig, DomainConfig, NetworkConfig};
use knative_serving::apis::networking::ProtocolType;
use knative_serving::apis::networking::v1alpha1::IngressVisibility;
use knative_serving::apis::{Configuration, Revision, TrafficTarget};
use knative_serving::traffic::{
    self, DEFAULT_TARGET, DomainError, Snapshot, TargetError, TargetKind,
};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn configuration(name: &str, latest_ready: Option<&str>, ready: &str) -> Configuration {
    let mut status = json!({"conditions": [{"type": "Ready", "status": ready}]});
    if let Some(lrr) = latest_ready {
        status["latestReadyRevisionName"] = json!(lrr);
    }
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {},
        "status": status,
    }))
    .unwrap()
}

fn revision(name: &str, config: &str, ready: &str) -> Revision {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": name, "namespace": "ns",
                     "labels": {"serving.knative.dev/configuration": config}},
        "spec": {"containers": [{"image": "img"}]},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }))
    .unwrap()
}

/// Configuration `config` whose latest ready Revision is `config-00002`, with Revisions
/// `config-00001` and `config-00002` both ready.
fn two_ready_revisions() -> Snapshot {
    Snapshot::default()
        .with_configuration(&configuration("config", Some("config-00002"), "True"))
        .with_revision(&revision("config-00001", "config", "True"))
        .with_revision(&revision("config-00002", "config", "True"))
}

fn to_config(name: &str, percent: i64) -> TrafficTarget {
    TrafficTarget {
        configuration_name: Some(name.into()),
        latest_revision: Some(true),
        percent: Some(percent),
        ..TrafficTarget::default()
    }
}

fn to_revision(name: &str, percent: i64) -> TrafficTarget {
    TrafficTarget {
        revision_name: Some(name.into()),
        latest_revision: Some(false),
        percent: Some(percent),
        ..TrafficTarget::default()
    }
}

fn tagged(target: TrafficTarget, tag: &str) -> TrafficTarget {
    TrafficTarget {
        tag: Some(tag.into()),
        ..target
    }
}

/// (revision, percent) of each split of group `group`.
fn splits(config: &traffic::Config, group: &str) -> Vec<(String, i64)> {
    config.targets[group]
        .iter()
        .map(|t| (t.revision_name.clone(), t.percent()))
        .collect()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The stock configuration with `config-domain` set to `domains`.
fn with_domains(domains: &[(&str, &str)]) -> Config {
    Config {
        domain: DomainConfig::from_data(&data(domains)).unwrap(),
        ..Config::default()
    }
}

fn example_com() -> Config {
    with_domains(&[("example.com", "")])
}

fn route_meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        labels: (!labels.is_empty()).then(|| data(labels)),
        ..ObjectMeta::default()
    }
}

fn all_external(tags: &[&str]) -> traffic::Visibility {
    std::iter::once(DEFAULT_TARGET)
        .chain(tags.iter().copied())
        .map(|t| (t.to_owned(), IngressVisibility::ExternalIP))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Resolution to Revisions

#[test]
fn a_configuration_target_resolves_to_its_latest_ready_revision_at_100_percent() {
    let resolved = traffic::build(&[to_config("config", 100)], &two_ready_revisions()).unwrap();
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [("config-00002".to_owned(), 100)]
    );
    let target = &resolved.targets[DEFAULT_TARGET][0];
    assert_eq!(target.configuration_name.as_deref(), Some("config"));
    assert_eq!(target.latest_revision, Some(true));
    assert_eq!(resolved.targets.len(), 1, "no tag groups");
}

#[test]
fn a_revision_target_resolves_to_itself_and_records_its_configuration() {
    let resolved =
        traffic::build(&[to_revision("config-00001", 100)], &two_ready_revisions()).unwrap();
    let target = &resolved.targets[DEFAULT_TARGET][0];
    assert_eq!(target.revision_name, "config-00001");
    assert_eq!(target.configuration_name.as_deref(), Some("config"));
    assert_eq!(target.latest_revision, Some(false));
}

#[test]
fn a_split_keeps_the_shares_in_spec_order() {
    let spec = [to_revision("config-00001", 30), to_config("config", 70)];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [
            ("config-00001".to_owned(), 30),
            ("config-00002".to_owned(), 70)
        ]
    );
}

#[test]
fn targets_on_the_same_revision_are_consolidated_into_one_split() {
    let spec = [
        to_revision("config-00002", 40),
        to_revision("config-00001", 20),
        to_config("config", 40),
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [
            ("config-00002".to_owned(), 80),
            ("config-00001".to_owned(), 20)
        ]
    );
}

#[test]
fn a_group_of_one_revision_takes_100_percent_whatever_its_shares() {
    let spec = [to_revision("config-00002", 40), to_config("config", 60)];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [("config-00002".to_owned(), 100)]
    );
}

#[test]
fn a_tagged_target_gets_its_own_group_at_100_percent_and_stays_in_the_default_group() {
    let spec = [
        to_config("config", 90),
        tagged(to_revision("config-00001", 10), "old"),
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(
        resolved.targets.keys().collect::<Vec<_>>(),
        ["", "old"],
        "the default group and one per tag"
    );
    assert_eq!(splits(&resolved, "old"), [("config-00001".to_owned(), 100)]);
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [
            ("config-00002".to_owned(), 90),
            ("config-00001".to_owned(), 10)
        ]
    );
}

#[test]
fn a_zero_percent_tag_is_routable_by_its_tag_only() {
    let spec = [
        to_config("config", 100),
        tagged(to_revision("config-00001", 0), "candidate"),
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(
        splits(&resolved, "candidate"),
        [("config-00001".to_owned(), 100)]
    );
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [
            ("config-00002".to_owned(), 100),
            ("config-00001".to_owned(), 0)
        ]
    );
}

#[test]
fn two_tags_on_one_revision_make_two_groups() {
    let spec = [
        tagged(to_config("config", 50), "a"),
        tagged(to_config("config", 50), "b"),
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(splits(&resolved, "a"), [("config-00002".to_owned(), 100)]);
    assert_eq!(splits(&resolved, "b"), [("config-00002".to_owned(), 100)]);
    assert_eq!(
        splits(&resolved, DEFAULT_TARGET),
        [("config-00002".to_owned(), 100)]
    );
}

#[test]
fn an_empty_tag_is_no_tag() {
    let spec = [tagged(to_config("config", 100), "")];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(resolved.targets.keys().collect::<Vec<_>>(), [""]);
    assert_eq!(resolved.revision_targets[0].tag, None);
}

#[test]
fn an_unset_share_counts_as_zero() {
    let spec = [
        to_config("config", 100),
        TrafficTarget {
            percent: None,
            ..to_revision("config-00001", 0)
        },
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    assert_eq!(resolved.targets[DEFAULT_TARGET][1].percent(), 0);
}

#[test]
fn no_traffic_resolves_to_no_groups() {
    let resolved = traffic::build(&[], &Snapshot::default()).unwrap();
    assert_eq!(resolved, traffic::Config::default());
}

#[test]
fn the_flattened_targets_keep_every_spec_target_with_its_own_share() {
    let spec = [to_revision("config-00002", 40), to_config("config", 60)];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    let shares: Vec<_> = resolved
        .revision_targets
        .iter()
        .map(|t| (t.revision_name.as_str(), t.percent))
        .collect();
    assert_eq!(
        shares,
        [("config-00002", Some(40)), ("config-00002", Some(60))]
    );
}

#[test]
fn a_revision_whose_first_port_is_h2c_speaks_h2c() {
    let mut rev = revision("config-00001", "config", "True");
    rev.spec.pod_spec.containers[0].ports = Some(vec![
        serde_json::from_value(json!({"name": "h2c", "containerPort": 8080})).unwrap(),
    ]);
    assert_eq!(traffic::revision_protocol(&rev), ProtocolType::H2c);
    let snapshot = two_ready_revisions().with_revision(&rev);
    let resolved = traffic::build(&[to_revision("config-00001", 100)], &snapshot).unwrap();
    assert_eq!(resolved.targets[""][0].protocol, ProtocolType::H2c);
}

#[test]
fn a_revision_without_an_h2c_port_speaks_http1() {
    let mut rev = revision("config-00001", "config", "True");
    assert_eq!(traffic::revision_protocol(&rev), ProtocolType::Http1);
    rev.spec.pod_spec.containers[0].ports = Some(vec![
        serde_json::from_value(json!({"name": "http1", "containerPort": 8080})).unwrap(),
    ]);
    assert_eq!(traffic::revision_protocol(&rev), ProtocolType::Http1);
}

#[test]
fn the_serving_container_is_the_one_with_ports() {
    let rev: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "r"},
        "spec": {"containers": [
            {"image": "sidecar"},
            {"image": "app", "ports": [{"name": "h2c", "containerPort": 8080}]},
        ]},
    }))
    .unwrap();
    assert_eq!(traffic::revision_protocol(&rev), ProtocolType::H2c);
}

// ---------------------------------------------------------------------------------------------
// Targets that cannot be resolved

#[test]
fn a_missing_configuration_is_configuration_missing_and_a_failure() {
    let err = traffic::build(&[to_config("nope", 100)], &Snapshot::default()).unwrap_err();
    assert_eq!(
        err,
        TargetError::Missing {
            kind: TargetKind::Configuration,
            name: "nope".into()
        }
    );
    assert_eq!(err.reason(), "ConfigurationMissing");
    assert_eq!(err.status(), ConditionStatus::False);
    assert_eq!(
        err.message(),
        r#"Configuration "nope" referenced in traffic not found."#
    );
    assert_eq!(
        err.to_string(),
        r#"Configuration "nope" referenced in traffic not found"#
    );
}

#[test]
fn a_missing_revision_is_revision_missing_and_a_failure() {
    let err = traffic::build(&[to_revision("nope", 100)], &Snapshot::default()).unwrap_err();
    assert_eq!(err.reason(), "RevisionMissing");
    assert!(err.is_failure());
    assert_eq!(
        err.message(),
        r#"Revision "nope" referenced in traffic not found."#
    );
}

#[test]
fn a_configuration_without_a_ready_revision_is_waited_for() {
    let snapshot =
        Snapshot::default().with_configuration(&configuration("config", None, "Unknown"));
    let err = traffic::build(&[to_config("config", 100)], &snapshot).unwrap_err();
    assert_eq!(
        err,
        TargetError::UnreadyConfiguration {
            name: "config".into(),
            failed: false
        }
    );
    assert_eq!(err.status(), ConditionStatus::Unknown);
    assert_eq!(err.reason(), "RevisionMissing");
    assert_eq!(
        err.message(),
        r#"Configuration "config" is waiting for a Revision to become ready."#
    );
    assert_eq!(
        err.to_string(),
        r#"configuration "config" not ready, isFailure=false"#
    );
}

#[test]
fn a_failed_configuration_without_a_ready_revision_is_a_failure() {
    let snapshot = Snapshot::default().with_configuration(&configuration("config", None, "False"));
    let err = traffic::build(&[to_config("config", 100)], &snapshot).unwrap_err();
    assert_eq!(err.status(), ConditionStatus::False);
    assert_eq!(
        err.message(),
        r#"Configuration "config" does not have any ready Revision."#
    );
}

#[test]
fn a_configuration_whose_latest_ready_revision_is_gone_is_revision_missing() {
    let snapshot =
        Snapshot::default().with_configuration(&configuration("config", Some("gone"), "True"));
    let err = traffic::build(&[to_config("config", 100)], &snapshot).unwrap_err();
    assert_eq!(
        err,
        TargetError::Missing {
            kind: TargetKind::Revision,
            name: "gone".into()
        }
    );
}

#[test]
fn a_revision_not_ready_yet_is_waited_for() {
    let snapshot =
        two_ready_revisions().with_revision(&revision("config-00003", "config", "Unknown"));
    let err = traffic::build(&[to_revision("config-00003", 100)], &snapshot).unwrap_err();
    assert_eq!(err.status(), ConditionStatus::Unknown);
    assert_eq!(
        err.message(),
        r#"Revision "config-00003" is not yet ready."#
    );
    assert_eq!(
        err.to_string(),
        r#"revision "config-00003" not ready, isFailure=false"#
    );
}

#[test]
fn a_failed_revision_is_a_failure() {
    let snapshot =
        two_ready_revisions().with_revision(&revision("config-00003", "config", "False"));
    let err = traffic::build(&[to_revision("config-00003", 100)], &snapshot).unwrap_err();
    assert_eq!(err.status(), ConditionStatus::False);
    assert_eq!(err.reason(), "RevisionMissing");
    assert_eq!(
        err.message(),
        r#"Revision "config-00003" failed to become ready."#
    );
}

#[test]
fn a_revision_whose_configuration_is_gone_is_configuration_missing() {
    let snapshot = Snapshot::default().with_revision(&revision("orphan-00001", "orphan", "True"));
    let err = traffic::build(&[to_revision("orphan-00001", 100)], &snapshot).unwrap_err();
    assert_eq!(err.reason(), "ConfigurationMissing");
}

#[test]
fn a_failure_wins_over_a_target_that_is_only_not_ready() {
    let snapshot = two_ready_revisions()
        .with_revision(&revision("config-00003", "config", "Unknown"))
        .with_revision(&revision("config-00004", "config", "False"));
    let spec = [
        to_revision("config-00003", 50),
        to_revision("config-00004", 50),
    ];
    let err = traffic::build(&spec, &snapshot).unwrap_err();
    assert_eq!(
        err,
        TargetError::UnreadyRevision {
            name: "config-00004".into(),
            failed: true
        }
    );
}

#[test]
fn the_first_target_not_ready_is_reported_when_none_failed() {
    let snapshot = two_ready_revisions()
        .with_revision(&revision("config-00003", "config", "Unknown"))
        .with_revision(&revision("config-00004", "config", "Unknown"));
    let spec = [
        to_revision("config-00003", 50),
        to_revision("config-00004", 50),
    ];
    let err = traffic::build(&spec, &snapshot).unwrap_err();
    assert_eq!(
        err,
        TargetError::UnreadyRevision {
            name: "config-00003".into(),
            failed: false
        }
    );
}

#[test]
fn marking_a_route_with_a_target_error_sets_all_traffic_assigned() {
    let set = ConditionSet::living(&[
        "AllTrafficAssigned",
        "IngressReady",
        "CertificateProvisioned",
    ]);
    let mut status = Status::default();
    let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
    let missing = TargetError::Missing {
        kind: TargetKind::Configuration,
        name: "c".into(),
    };
    missing.mark(&mut set.manage(&mut status, now));
    let ata = status.get_condition("AllTrafficAssigned").unwrap();
    assert_eq!(ata.status, ConditionStatus::False);
    assert_eq!(ata.reason.as_deref(), Some("ConfigurationMissing"));
    assert_eq!(
        status.get_condition("Ready").unwrap().status,
        ConditionStatus::False
    );

    let waiting = TargetError::UnreadyConfiguration {
        name: "c".into(),
        failed: false,
    };
    let mut status = Status::default();
    waiting.mark(&mut set.manage(&mut status, now));
    let ata = status.get_condition("AllTrafficAssigned").unwrap();
    assert_eq!(ata.status, ConditionStatus::Unknown);
    assert_eq!(ata.reason.as_deref(), Some("RevisionMissing"));
}

// ---------------------------------------------------------------------------------------------
// Status traffic

#[test]
fn status_traffic_names_every_revision_and_gives_tags_their_url() {
    let spec = [
        to_config("config", 90),
        tagged(to_revision("config-00001", 10), "old"),
    ];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    let config = example_com();
    let status = resolved
        .status_traffic(&config, &route_meta("r", &[]), &all_external(&["old"]))
        .unwrap();
    assert_eq!(
        status,
        [
            TrafficTarget {
                revision_name: Some("config-00002".into()),
                latest_revision: Some(true),
                percent: Some(90),
                ..TrafficTarget::default()
            },
            TrafficTarget {
                tag: Some("old".into()),
                revision_name: Some("config-00001".into()),
                latest_revision: Some(false),
                percent: Some(10),
                url: Some("http://old-r.ns.example.com".into()),
                ..TrafficTarget::default()
            },
        ]
    );
}

#[test]
fn a_cluster_local_tag_url_is_under_the_cluster_domain() {
    let spec = [tagged(to_config("config", 100), "t")];
    let resolved = traffic::build(&spec, &two_ready_revisions()).unwrap();
    let mut visibility = all_external(&[]);
    visibility.insert("t".into(), IngressVisibility::ClusterLocal);
    let status = resolved
        .status_traffic(&example_com(), &route_meta("r", &[]), &visibility)
        .unwrap();
    assert_eq!(
        status[0].url.as_deref(),
        Some("http://t-r.ns.svc.cluster.local")
    );
}

// ---------------------------------------------------------------------------------------------
// Host names

#[test]
fn the_default_target_hostname_is_the_route_name() {
    let network = NetworkConfig::default();
    assert_eq!(traffic::hostname(&network, "r", "").unwrap(), "r");
    assert_eq!(traffic::hostname(&network, "r", "v1").unwrap(), "v1-r");
}

#[test]
fn the_tag_template_names_tag_hosts() {
    let network =
        NetworkConfig::from_data(&data(&[("tag-template", "{{.Name}}-at-{{.Tag}}")])).unwrap();
    assert_eq!(traffic::hostname(&network, "r", "v1").unwrap(), "r-at-v1");
}

#[test]
fn with_stock_configuration_hosts_live_under_the_cluster_local_domain() {
    let host = traffic::domain_name(&Config::default(), &route_meta("r", &[]), "r").unwrap();
    assert_eq!(host, "r.ns.svc.cluster.local");
}

#[test]
fn config_domain_chooses_the_domain_by_labels() {
    let config = with_domains(&[
        ("example.com", ""),
        ("example.org", "selector:\n  app: prod\n"),
    ]);
    assert_eq!(
        traffic::domain_name(&config, &route_meta("r", &[]), "r").unwrap(),
        "r.ns.example.com"
    );
    assert_eq!(
        traffic::domain_name(&config, &route_meta("r", &[("app", "prod")]), "r").unwrap(),
        "r.ns.example.org"
    );
}

#[test]
fn the_domain_template_shapes_the_host() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[(
            "domain-template",
            "{{.Name}}-{{.Namespace}}.{{.Domain}}",
        )]))
        .unwrap(),
        ..example_com()
    };
    assert_eq!(
        traffic::domain_name(&config, &route_meta("r", &[]), "r").unwrap(),
        "r-ns.example.com"
    );
}

#[test]
fn a_cluster_local_object_ignores_the_domain_template() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[(
            "domain-template",
            "{{.Name}}-{{.Namespace}}.{{.Domain}}",
        )]))
        .unwrap(),
        ..example_com()
    };
    let meta = route_meta(
        "r",
        &[("networking.knative.dev/visibility", "cluster-local")],
    );
    assert_eq!(
        traffic::domain_name(&config, &meta, "r").unwrap(),
        "r.ns.svc.cluster.local"
    );
}

#[test]
fn a_template_that_makes_no_domain_name_is_an_error() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[("domain-template", "{{.Name}}")])).unwrap(),
        ..example_com()
    };
    let err = traffic::domain_name(&config, &route_meta("r", &[]), "r").unwrap_err();
    assert!(
        matches!(err, DomainError::Invalid { ref name, .. } if name == "r"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        r#"invalid domain name "r": should be a domain with at least two segments separated by dots"#
    );
}

#[test]
fn with_visibility_sets_and_clears_the_label() {
    let meta = route_meta("r", &[("app", "x")]);
    let local = traffic::with_visibility(&meta, true);
    assert_eq!(
        local.labels.as_ref().unwrap()["networking.knative.dev/visibility"],
        "cluster-local"
    );
    let public = traffic::with_visibility(&local, false);
    assert_eq!(public.labels, Some(data(&[("app", "x")])));
    assert_eq!(
        traffic::with_visibility(&route_meta("r", &[]), false).labels,
        None
    );
}

#[test]
fn cluster_local_hosts_also_answer_to_their_short_forms() {
    assert_eq!(
        traffic::expanded_hosts("r.ns.svc.cluster.local"),
        ["r.ns", "r.ns.svc", "r.ns.svc.cluster.local"]
    );
    assert_eq!(
        traffic::expanded_hosts("r.ns.example.com"),
        ["r.ns.example.com"]
    );
}

#[test]
fn a_short_form_ending_in_digits_is_left_out() {
    assert_eq!(
        traffic::expanded_hosts("r.123.svc.cluster.local"),
        ["r.123.svc", "r.123.svc.cluster.local"]
    );
}

#[test]
fn rule_hosts_are_expanded_for_cluster_local_rules_only() {
    let config = example_com();
    let meta = route_meta("r", &[]);
    assert_eq!(
        traffic::rule_hosts(&config, &meta, "", IngressVisibility::ExternalIP).unwrap(),
        ["r.ns.example.com"]
    );
    assert_eq!(
        traffic::rule_hosts(&config, &meta, "v1", IngressVisibility::ClusterLocal).unwrap(),
        ["v1-r.ns", "v1-r.ns.svc", "v1-r.ns.svc.cluster.local"]
    );
}

// ---------------------------------------------------------------------------------------------
// Visibility and URLs

#[test]
fn a_route_under_the_cluster_local_domain_is_cluster_local() {
    assert_eq!(
        traffic::route_visibility(&DomainConfig::default(), None),
        IngressVisibility::ClusterLocal
    );
    assert_eq!(
        traffic::route_visibility(&example_com().domain, None),
        IngressVisibility::ExternalIP
    );
}

#[test]
fn the_visibility_label_makes_a_route_cluster_local() {
    let labels = data(&[("networking.knative.dev/visibility", "cluster-local")]);
    assert_eq!(
        traffic::route_visibility(&example_com().domain, Some(&labels)),
        IngressVisibility::ClusterLocal
    );
}

#[test]
fn every_tag_takes_the_routes_visibility_unless_its_service_is_cluster_local() {
    let spec = [to_config("c", 50), tagged(to_config("c", 50), "private")];
    let v = traffic::visibility(
        &example_com(),
        &route_meta("r", &[]),
        &spec,
        &BTreeSet::from(["private-r".to_owned()]),
    )
    .unwrap();
    assert_eq!(
        v,
        BTreeMap::from([
            ("".to_owned(), IngressVisibility::ExternalIP),
            ("private".to_owned(), IngressVisibility::ClusterLocal),
        ])
    );
}

#[test]
fn an_external_route_url_uses_the_default_external_scheme() {
    let url =
        traffic::route_url(&example_com(), &route_meta("r", &[]), &all_external(&[])).unwrap();
    assert_eq!(url, "http://r.ns.example.com");
    let config = Config {
        network: NetworkConfig::from_data(&data(&[("default-external-scheme", "https")])).unwrap(),
        ..example_com()
    };
    let url = traffic::route_url(&config, &route_meta("r", &[]), &all_external(&[])).unwrap();
    assert_eq!(url, "https://r.ns.example.com");
}

#[test]
fn a_cluster_local_route_url_is_http_under_the_cluster_domain() {
    let visibility = BTreeMap::from([("".to_owned(), IngressVisibility::ClusterLocal)]);
    let url = traffic::route_url(&example_com(), &route_meta("r", &[]), &visibility).unwrap();
    assert_eq!(url, "http://r.ns.svc.cluster.local");
}
