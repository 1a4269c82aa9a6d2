//! Knative's validation rules, one test each, asserting the rendered message and paths.

use knative_serving::apis::{Configuration, Defaults, Revision, Route, Service, Validate};
use serde_json::{Value, json};

/// A Service named `hello` with `spec`.
fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": "hello" },
        "spec": spec,
    }))
    .expect("a Service")
}

/// A Service named `hello` running `container` (an image is added unless given).
fn service_with_container(container: Value) -> Service {
    let mut container = container;
    if container.get("image").is_none() {
        container["image"] = json!("ghcr.io/knative/helloworld-go:latest");
    }
    service(json!({ "template": { "spec": { "containers": [container] } } }))
}

/// A Service named `hello` whose revision template has these annotations.
fn service_with_template_annotations(annotations: Value) -> Service {
    service(json!({
        "template": {
            "metadata": { "annotations": annotations },
            "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] },
        },
    }))
}

/// A Route named `hello` with `traffic`.
fn route(traffic: Value) -> Route {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": { "name": "hello" },
        "spec": { "traffic": traffic },
    }))
    .expect("a Route")
}

fn error(object: &impl Validate) -> String {
    object.validate().expect_err("invalid").to_string()
}

fn error_with(object: &impl Validate, defaults: &Defaults) -> String {
    object
        .validate_with(defaults)
        .expect_err("invalid")
        .to_string()
}

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
    alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for \
    validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

// Traffic.

#[test]
fn traffic_percents_must_sum_to_100() {
    let r = route(json!([
        { "configurationName": "hello", "percent": 60 },
        { "revisionName": "hello-00001", "percent": 30 },
    ]));
    assert_eq!(
        error(&r),
        "Traffic targets sum to 90, want 100: spec.traffic"
    );
}

#[test]
fn a_route_without_traffic_sums_to_zero() {
    assert_eq!(
        error(&route(json!([]))),
        "Traffic targets sum to 0, want 100: spec.traffic"
    );
}

#[test]
fn a_traffic_target_names_exactly_one_of_revision_or_configuration_not_both() {
    let r = route(
        json!([{ "revisionName": "hello-00001", "configurationName": "hello", "percent": 100 }]),
    );
    assert_eq!(
        error(&r),
        "expected exactly one, got both: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
    );
}

#[test]
fn a_route_traffic_target_names_exactly_one_of_revision_or_configuration_not_neither() {
    let r = route(json!([{ "percent": 100 }]));
    assert_eq!(
        error(&r),
        "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
    );
}

#[test]
fn a_service_traffic_target_may_not_name_a_configuration() {
    let s = service(json!({
        "template": { "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] } },
        "traffic": [{ "configurationName": "hello", "percent": 100 }],
    }));
    assert_eq!(
        error(&s),
        "must not set the field(s): spec.traffic[0].configurationName"
    );
}

#[test]
fn latest_revision_true_with_a_revision_name_is_refused() {
    let r =
        route(json!([{ "revisionName": "hello-00001", "latestRevision": true, "percent": 100 }]));
    assert_eq!(
        error(&r),
        r#"may not set revisionName "hello-00001" when latestRevision is true: spec.traffic[0].latestRevision"#
    );
}

#[test]
fn latest_revision_false_without_a_revision_name_is_refused() {
    let r =
        route(json!([{ "configurationName": "hello", "latestRevision": false, "percent": 100 }]));
    assert_eq!(
        error(&r),
        r#"may not set revisionName "" when latestRevision is false: spec.traffic[0].latestRevision"#
    );
}

#[test]
fn a_traffic_percent_is_between_0_and_100() {
    let r = route(json!([{ "configurationName": "hello", "percent": 101 }]));
    assert_eq!(
        error(&r),
        "Traffic targets sum to 101, want 100: spec.traffic\nexpected 0 <= 101 <= 100: spec.traffic[0].percent"
    );
}

#[test]
fn traffic_tags_are_unique() {
    let r = route(json!([
        { "configurationName": "hello", "percent": 50, "tag": "v1" },
        { "revisionName": "hello-00001", "percent": 50, "tag": "v1" },
    ]));
    assert_eq!(
        error(&r),
        r#"Multiple definitions for "v1": spec.traffic[0].tag, spec.traffic[1].tag"#
    );
}

#[test]
fn traffic_tags_are_dns1035_labels() {
    let r = route(json!([{ "configurationName": "hello", "percent": 100, "tag": "V_1" }]));
    assert_eq!(
        error(&r),
        format!("invalid value: not a DNS 1035 label: [{DNS1035_MSG}]: spec.traffic[0].tag")
    );
}

#[test]
fn a_traffic_url_may_not_be_set_in_a_spec() {
    let r = route(
        json!([{ "configurationName": "hello", "percent": 100, "tag": "v1", "url": "http://v1-hello.example.com" }]),
    );
    assert_eq!(error(&r), "must not set the field(s): spec.traffic[0].url");
}

#[test]
fn a_traffic_revision_name_is_a_qualified_name() {
    let r = route(json!([{ "revisionName": "-hello", "percent": 100 }]));
    assert_eq!(
        error(&r),
        "invalid key name \"-hello\": spec.traffic[0].revisionName\nname part must consist of alphanumeric characters, \
         '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
         '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
}

#[test]
fn a_service_without_traffic_is_valid() {
    let s = service_with_container(json!({}));
    assert_eq!(s.validate(), Ok(()));
}

// Revision names.

#[test]
fn a_brought_revision_name_starts_with_the_parent_name() {
    let s = service(json!({
        "template": {
            "metadata": { "name": "world-00001" },
            "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] },
        },
    }));
    assert_eq!(
        error(&s),
        r#"invalid value: "world-00001" must have prefix "hello-": spec.template.metadata.name"#
    );
}

#[test]
fn a_brought_revision_name_is_a_dns1035_label() {
    let s = service(json!({
        "template": {
            "metadata": { "name": "hello-World" },
            "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] },
        },
    }));
    assert_eq!(
        error(&s),
        format!(
            "invalid value: not a DNS 1035 label: [{DNS1035_MSG}]: spec.template.metadata.name"
        )
    );
}

#[test]
fn a_brought_revision_name_is_refused_under_a_generated_parent_name() {
    let s: Service = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "generateName": "hello-" },
        "spec": {
            "template": {
                "metadata": { "name": "hello-00001" },
                "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go:latest" }] },
            },
        },
    }))
    .unwrap();
    assert_eq!(
        error(&s),
        "must not set the field(s): spec.template.metadata.name"
    );
}

// Containers and ports.

#[test]
fn a_revision_has_a_container() {
    let s = service(json!({ "template": { "spec": { "containers": [] } } }));
    assert_eq!(error(&s), "missing field(s): spec.template.spec.containers");
}

#[test]
fn a_container_has_an_image() {
    let s = service(json!({ "template": { "spec": { "containers": [{ "name": "app" }] } } }));
    assert_eq!(
        error(&s),
        "missing field(s): spec.template.spec.containers[0].image"
    );
}

#[test]
fn a_revision_has_at_most_one_port() {
    let s = service_with_container(
        json!({ "ports": [{ "containerPort": 8080 }, { "containerPort": 8081 }] }),
    );
    assert_eq!(
        error(&s),
        "more than one container port is set: spec.template.spec.containers[*].ports\n\
         Only a single port is allowed across all containers"
    );
}

#[test]
fn several_containers_share_one_port() {
    let s = service(json!({ "template": { "spec": { "containers": [
        { "name": "app", "image": "app", "ports": [{ "containerPort": 8080 }] },
        { "name": "sidecar", "image": "sidecar", "ports": [{ "containerPort": 9000 }] },
    ] } } }));
    assert_eq!(
        error(&s),
        "more than one container port is set: spec.template.spec.containers[*].ports\n\
         Only a single port is allowed across all containers"
    );
}

#[test]
fn several_containers_need_a_port_to_tell_the_serving_one() {
    let s = service(json!({ "template": { "spec": { "containers": [
        { "name": "app", "image": "app" },
        { "name": "sidecar", "image": "sidecar" },
    ] } } }));
    assert_eq!(
        error(&s),
        "missing field(s): spec.template.spec.containers[*].ports"
    );
}

#[test]
fn several_containers_are_refused_when_multi_container_is_off() {
    let s = service(json!({ "template": { "spec": { "containers": [
        { "name": "app", "image": "app", "ports": [{ "containerPort": 8080 }] },
        { "name": "sidecar", "image": "sidecar" },
    ] } } }));
    assert_eq!(s.validate(), Ok(()));
    let defaults = Defaults {
        multi_container: false,
        ..Defaults::default()
    };
    assert_eq!(
        error_with(&s, &defaults),
        "multi-container is off, but found 2 containers: "
    );
}

#[test]
fn container_names_are_unique() {
    let s = service(json!({ "template": { "spec": { "containers": [
        { "name": "app", "image": "app", "ports": [{ "containerPort": 8080 }] },
        { "name": "app", "image": "sidecar" },
    ] } } }));
    assert_eq!(
        error(&s),
        r#"duplicate container name "app": spec.template.spec.containers[1].name"#
    );
}

#[test]
fn the_queue_proxy_container_name_is_reserved() {
    let s = service_with_container(json!({ "name": "queue-proxy" }));
    assert_eq!(
        error(&s),
        r#""queue-proxy" is a reserved container name: spec.template.spec.containers[0].name"#
    );
}

#[test]
fn the_queue_proxy_ports_are_reserved() {
    for port in [8012, 8013, 8022, 9090, 9091, 8008] {
        let s = service_with_container(json!({ "ports": [{ "containerPort": port }] }));
        assert_eq!(
            error(&s),
            format!(
                "invalid value: {port} is a reserved port: spec.template.spec.containers[0].ports[0].containerPort\n\
                 {port} is a reserved port, please use a different value"
            )
        );
    }
}

#[test]
fn a_container_port_is_a_port_number() {
    let s = service_with_container(json!({ "ports": [{ "containerPort": 70000 }] }));
    assert_eq!(
        error(&s),
        "expected 0 <= 70000 <= 65535: spec.template.spec.containers[0].ports[0].containerPort"
    );
}

#[test]
fn a_container_port_is_named_for_its_protocol() {
    let s = service_with_container(json!({ "ports": [{ "containerPort": 8080, "name": "grpc" }] }));
    assert_eq!(
        error(&s),
        "Port name grpc is not allowed: spec.template.spec.containers[0].ports[0]\nName must be empty, or one of: 'h2c', 'http1'"
    );
    let s = service_with_container(json!({ "ports": [{ "containerPort": 8080, "name": "h2c" }] }));
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn a_container_port_is_tcp() {
    let s =
        service_with_container(json!({ "ports": [{ "containerPort": 8080, "protocol": "UDP" }] }));
    assert_eq!(
        error(&s),
        "invalid value: UDP: spec.template.spec.containers[0].ports[0].protocol"
    );
}

// Environment.

#[test]
fn knatives_environment_variables_are_reserved() {
    for name in ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"] {
        let s = service_with_container(
            json!({ "env": [{ "name": "TARGET", "value": "World" }, { "name": name, "value": "x" }] }),
        );
        assert_eq!(
            error(&s),
            format!(
                "\"{name}\" is a reserved environment variable: spec.template.spec.containers[0].env[1].name"
            )
        );
    }
}

#[test]
fn a_sidecar_may_set_port_but_not_the_other_reserved_variables() {
    let sidecar = |name: &str| {
        service(json!({ "template": { "spec": { "containers": [
            { "name": "app", "image": "app", "ports": [{ "containerPort": 8080 }] },
            { "name": "sidecar", "image": "sidecar", "env": [{ "name": name, "value": "x" }] },
        ] } } }))
    };
    assert_eq!(sidecar("PORT").validate(), Ok(()));
    assert_eq!(
        error(&sidecar("K_SERVICE")),
        "\"K_SERVICE\" is a reserved environment variable: spec.template.spec.containers[1].env[0].name"
    );
}

#[test]
fn an_environment_variable_has_a_name() {
    let s = service_with_container(json!({ "env": [{ "value": "World" }] }));
    assert_eq!(
        error(&s),
        "missing field(s): spec.template.spec.containers[0].env[0].name"
    );
}

// Timeouts and concurrency.

#[test]
fn timeout_seconds_is_within_the_maximum() {
    let s = service(json!({ "template": { "spec": {
        "timeoutSeconds": 601,
        "containers": [{ "image": "app" }],
    } } }));
    assert_eq!(
        error(&s),
        "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds"
    );
    let defaults = Defaults {
        max_revision_timeout_seconds: 900,
        ..Defaults::default()
    };
    assert_eq!(s.validate_with(&defaults), Ok(()));
}

#[test]
fn timeout_seconds_is_not_negative() {
    let s = service(
        json!({ "template": { "spec": { "timeoutSeconds": -1, "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(
        error(&s),
        "expected 0 <= -1 <= 600: spec.template.spec.timeoutSeconds"
    );
}

#[test]
fn response_start_timeout_is_within_the_timeout() {
    let s = service(json!({ "template": { "spec": {
        "timeoutSeconds": 100,
        "responseStartTimeoutSeconds": 101,
        "containers": [{ "image": "app" }],
    } } }));
    assert_eq!(
        error(&s),
        "expected 0 <= 101 <= 100: spec.template.spec.responseStartTimeoutSeconds"
    );
}

#[test]
fn idle_timeout_is_within_the_maximum() {
    let s = service(
        json!({ "template": { "spec": { "idleTimeoutSeconds": 700, "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(
        error(&s),
        "expected 0 <= 700 <= 600: spec.template.spec.idleTimeoutSeconds"
    );
}

#[test]
fn container_concurrency_is_between_0_and_1000() {
    let s = service(
        json!({ "template": { "spec": { "containerConcurrency": 1001, "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(
        error(&s),
        "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency"
    );
    let s = service(
        json!({ "template": { "spec": { "containerConcurrency": -1, "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(
        error(&s),
        "expected 0 <= -1 <= 1000: spec.template.spec.containerConcurrency"
    );
}

#[test]
fn container_concurrency_zero_can_be_disallowed() {
    let s = service(
        json!({ "template": { "spec": { "containerConcurrency": 0, "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(s.validate(), Ok(()));
    let defaults = Defaults {
        allow_container_concurrency_zero: false,
        ..Defaults::default()
    };
    assert_eq!(
        error_with(&s, &defaults),
        "expected 1 <= 0 <= 1000: spec.template.spec.containerConcurrency"
    );
}

// Probes and volumes.

#[test]
fn a_probe_has_exactly_one_handler() {
    let s = service_with_container(
        json!({ "readinessProbe": { "httpGet": { "port": 0 }, "exec": { "command": ["true"] } } }),
    );
    assert_eq!(
        error(&s),
        "expected exactly one, got both: spec.template.spec.containers[0].readinessProbe.exec, \
         spec.template.spec.containers[0].readinessProbe.httpGet"
    );
}

#[test]
fn an_aggressive_readiness_probe_takes_no_thresholds() {
    let s = service_with_container(
        json!({ "readinessProbe": { "tcpSocket": { "port": 0 }, "failureThreshold": 3 } }),
    );
    assert_eq!(
        error(&s),
        "failureThreshold is disallowed when periodSeconds is zero: spec.template.spec.containers[0].readinessProbe.failureThreshold"
    );
}

#[test]
fn a_probe_port_name_matches_the_container_port() {
    let s = service_with_container(json!({
        "ports": [{ "containerPort": 8080, "name": "h2c" }],
        "livenessProbe": { "httpGet": { "port": "http1" } },
    }));
    assert_eq!(
        error(&s),
        "invalid value: http1: spec.template.spec.containers[0].livenessProbe.httpGet.port\nProbe port must match container port"
    );
}

#[test]
fn a_volume_mount_names_a_volume() {
    let s = service_with_container(
        json!({ "volumeMounts": [{ "name": "config", "mountPath": "/etc/config", "readOnly": true }] }),
    );
    assert_eq!(
        error(&s),
        "volumeMount has no matching volume: spec.template.spec.containers[0].volumeMounts[0].name"
    );
}

#[test]
fn a_volume_mount_avoids_reserved_paths() {
    let s = service(json!({ "template": { "spec": {
        "containers": [{ "image": "app", "volumeMounts": [{ "name": "config", "mountPath": "/dev/", "readOnly": true }] }],
        "volumes": [{ "name": "config", "configMap": { "name": "config" } }],
    } } }));
    assert_eq!(
        error(&s),
        r#"mountPath "/dev" is a reserved path: spec.template.spec.containers[0].volumeMounts[0].mountPath"#
    );
}

#[test]
fn a_configuration_volume_is_mounted_read_only() {
    let s = service(json!({ "template": { "spec": {
        "containers": [{ "image": "app", "volumeMounts": [{ "name": "config", "mountPath": "/etc/config" }] }],
        "volumes": [{ "name": "config", "configMap": { "name": "config" } }],
    } } }));
    assert_eq!(
        error(&s),
        "volume mount should be readOnly for this type of volume: spec.template.spec.containers[0].volumeMounts[0].readOnly"
    );
}

#[test]
fn a_volume_is_mounted() {
    let s = service(json!({ "template": { "spec": {
        "containers": [{ "image": "app" }],
        "volumes": [{ "name": "config", "configMap": { "name": "config" } }],
    } } }));
    assert_eq!(
        error(&s),
        r#"volume with name "config" not mounted: spec.template.spec.volumes[0].name"#
    );
}

#[test]
fn init_containers_are_refused_while_their_feature_is_off() {
    let s = service(json!({ "template": { "spec": {
        "initContainers": [{ "name": "setup", "image": "setup" }],
        "containers": [{ "image": "app" }],
    } } }));
    assert_eq!(
        error(&s),
        "pod spec support for init-containers is off, but found 1 init containers: "
    );
    let defaults = Defaults {
        init_containers: true,
        ..Defaults::default()
    };
    assert_eq!(s.validate_with(&defaults), Ok(()));
}

#[test]
fn the_service_account_name_is_a_dns1123_subdomain() {
    let s = service(
        json!({ "template": { "spec": { "serviceAccountName": "Hello", "containers": [{ "image": "app" }] } } }),
    );
    assert_eq!(
        error(&s),
        "invalid value: Hello: spec.template.spec.serviceAccountName\na lowercase RFC 1123 subdomain must consist of lower \
         case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
         'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

// Autoscaling annotations.

#[test]
fn min_scale_is_not_negative() {
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/min-scale": "-1" }));
    assert_eq!(
        error(&s),
        "expected 0 <= -1 <= 2147483647: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"
    );
}

#[test]
fn max_scale_is_an_integer() {
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/maxScale": "ten" }));
    assert_eq!(
        error(&s),
        "invalid value: ten: spec.template.metadata.annotations.autoscaling.knative.dev/maxScale"
    );
}

#[test]
fn min_scale_is_at_most_max_scale() {
    let s = service_with_template_annotations(json!({
        "autoscaling.knative.dev/minScale": "3",
        "autoscaling.knative.dev/max-scale": "2",
    }));
    assert_eq!(
        error(&s),
        "max-scale=2 is less than min-scale=3: spec.template.metadata.annotations.autoscaling.knative.dev/max-scale, \
         spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"
    );
}

#[test]
fn max_scale_is_within_the_max_scale_limit() {
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/max-scale": "20" }));
    let defaults = Defaults {
        max_scale_limit: 10,
        ..Defaults::default()
    };
    assert_eq!(
        error_with(&s, &defaults),
        "expected 1 <= 20 <= 10: spec.template.metadata.annotations.autoscaling.knative.dev/max-scale"
    );
}

#[test]
fn the_target_is_at_least_a_hundredth() {
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/target": "0.001" }));
    assert_eq!(
        error(&s),
        "target 0.001 should be at least 0.01: spec.template.metadata.annotations.autoscaling.knative.dev/target"
    );
}

#[test]
fn the_target_utilization_is_a_percentage() {
    let s = service_with_template_annotations(
        json!({ "autoscaling.knative.dev/target-utilization-percentage": "120" }),
    );
    assert_eq!(
        error(&s),
        "expected 1 <= 120 <= 100: spec.template.metadata.annotations.autoscaling.knative.dev/target-utilization-percentage"
    );
}

#[test]
fn the_window_is_between_6s_and_1h() {
    for window in ["5s", "2h"] {
        let s =
            service_with_template_annotations(json!({ "autoscaling.knative.dev/window": window }));
        assert_eq!(
            error(&s),
            format!(
                "expected 6s <= {window} <= 1h0m0s: spec.template.metadata.annotations.autoscaling.knative.dev/window"
            )
        );
    }
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/window": "1m30s" }));
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn the_window_is_a_duration_in_whole_seconds() {
    let s =
        service_with_template_annotations(json!({ "autoscaling.knative.dev/window": "forever" }));
    assert_eq!(
        error(&s),
        "invalid value: forever: spec.template.metadata.annotations.autoscaling.knative.dev/window"
    );
    let s =
        service_with_template_annotations(json!({ "autoscaling.knative.dev/window": "6500ms" }));
    assert_eq!(
        error(&s),
        "must be specified with at most second precision: spec.template.metadata.annotations.autoscaling.knative.dev/window"
    );
}

#[test]
fn the_scale_down_delay_is_at_most_an_hour() {
    let s = service_with_template_annotations(
        json!({ "autoscaling.knative.dev/scale-down-delay": "-1s" }),
    );
    assert_eq!(
        error(&s),
        "expected 0s <= -1s <= 1h0m0s: spec.template.metadata.annotations.autoscaling.knative.dev/scale-down-delay"
    );
}

#[test]
fn an_autoscaler_class_of_knatives_domain_is_a_known_one() {
    let s = service_with_template_annotations(
        json!({ "autoscaling.knative.dev/class": "foo.autoscaling.knative.dev" }),
    );
    assert_eq!(
        error(&s),
        "invalid value: foo.autoscaling.knative.dev: spec.template.metadata.annotations.autoscaling.knative.dev/class"
    );
    for class in [
        "kpa.autoscaling.knative.dev",
        "hpa.autoscaling.knative.dev",
        "example.com/custom",
    ] {
        let s =
            service_with_template_annotations(json!({ "autoscaling.knative.dev/class": class }));
        assert_eq!(s.validate(), Ok(()), "{class}");
    }
}

#[test]
fn the_metric_suits_the_class() {
    let s = service_with_template_annotations(json!({ "autoscaling.knative.dev/metric": "cpu" }));
    assert_eq!(
        error(&s),
        "invalid value: cpu: spec.template.metadata.annotations.autoscaling.knative.dev/metric"
    );
    let s = service_with_template_annotations(json!({
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "cpu",
    }));
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn the_initial_scale_is_positive_unless_zero_is_allowed() {
    let s =
        service_with_template_annotations(json!({ "autoscaling.knative.dev/initial-scale": "0" }));
    assert_eq!(
        error(&s),
        "invalid value: 0: spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale"
    );
    let defaults = Defaults {
        allow_zero_initial_scale: true,
        ..Defaults::default()
    };
    assert_eq!(s.validate_with(&defaults), Ok(()));
}

#[test]
fn autoscaling_annotations_belong_on_the_template_not_the_service() {
    let mut s = service_with_container(json!({}));
    s.metadata.annotations = Some(
        [(
            "autoscaling.knative.dev/min-scale".to_owned(),
            "1".to_owned(),
        )]
        .into(),
    );
    assert_eq!(
        error(&s),
        "invalid key name \"autoscaling.knative.dev/min-scale\": metadata.annotations\n\
         autoscaling annotations must be put under \"spec.template.metadata.annotations\" to work"
    );
}

#[test]
fn a_revisions_own_autoscaling_annotations_are_validated() {
    let rev: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": { "name": "hello-00001", "annotations": { "autoscaling.knative.dev/min-scale": "x" } },
        "spec": { "containers": [{ "image": "app" }] },
    }))
    .unwrap();
    assert_eq!(
        error(&rev),
        "invalid value: x: metadata.annotations.autoscaling.knative.dev/min-scale"
    );
}

#[test]
fn the_queue_sidecar_resource_percentage_is_a_percentage() {
    let s = service_with_template_annotations(
        json!({ "queue.sidecar.serving.knative.dev/resource-percentage": "200" }),
    );
    // A dotted key breaks the `[key]` gluing, in Knative as here.
    assert_eq!(
        error(&s),
        "expected 0.1 <= 200 <= 100: spec.template.metadata.annotations.[queue.sidecar.serving.knative.dev/resource-percentage]"
    );
}

// Metadata.

#[test]
fn an_object_has_a_name_or_generate_name() {
    let s: Service = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {},
        "spec": { "template": { "spec": { "containers": [{ "image": "app" }] } } },
    }))
    .unwrap();
    assert_eq!(error(&s), "name or generateName is required: metadata.name");
}

#[test]
fn an_object_name_is_a_dns1035_label() {
    let mut s = service_with_container(json!({}));
    s.metadata.name = Some("1hello".to_owned());
    assert_eq!(
        error(&s),
        format!("not a DNS 1035 label: [{DNS1035_MSG}]: metadata.name")
    );
}

#[test]
fn only_knatives_own_serving_annotations_are_allowed() {
    let mut s = service_with_container(json!({}));
    s.metadata.annotations = Some(
        [
            ("serving.knative.dev/creator".to_owned(), "admin".to_owned()),
            ("serving.knative.dev/made-up".to_owned(), "x".to_owned()),
        ]
        .into(),
    );
    assert_eq!(
        error(&s),
        r#"invalid key name "serving.knative.dev/made-up": metadata.annotations"#
    );
}

#[test]
fn the_visibility_label_is_cluster_local() {
    let mut s = service_with_container(json!({}));
    s.metadata.labels = Some(
        [(
            "networking.knative.dev/visibility".to_owned(),
            "public".to_owned(),
        )]
        .into(),
    );
    assert_eq!(
        error(&s),
        "invalid value: public: metadata.labels.networking.knative.dev/visibility"
    );
}

#[test]
fn the_rollout_duration_is_a_positive_whole_number_of_seconds() {
    let mut s = service_with_container(json!({}));
    s.metadata.annotations = Some(
        [(
            "serving.knative.dev/rollout-duration".to_owned(),
            "-10s".to_owned(),
        )]
        .into(),
    );
    assert_eq!(
        error(&s),
        "rollout-duration=-10s must be positive: metadata.annotations.serving.knative.dev/rollout-duration"
    );
}

#[test]
fn a_revision_configuration_label_names_its_owner() {
    let rev: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": { "name": "hello-00001", "labels": { "serving.knative.dev/configuration": "hello" } },
        "spec": { "containers": [{ "image": "app" }] },
    }))
    .unwrap();
    assert_eq!(
        error(&rev),
        "missing field(s): metadata.labels.serving.knative.dev/configuration"
    );
}

#[test]
fn a_configuration_may_not_carry_unknown_serving_labels() {
    let config: Configuration = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "metadata": { "name": "hello", "labels": { "serving.knative.dev/made-up": "x" } },
        "spec": { "template": { "spec": { "containers": [{ "image": "app" }] } } },
    }))
    .unwrap();
    assert_eq!(
        error(&config),
        r#"invalid key name "serving.knative.dev/made-up": metadata.labels"#
    );
}

// Everything at once.

#[test]
fn every_problem_is_reported_at_once_sorted_by_message() {
    let s = service(json!({
        "template": { "spec": {
            "timeoutSeconds": 601,
            "containerConcurrency": 1001,
            "containers": [{ "ports": [{ "containerPort": 8012 }], "env": [{ "name": "K_REVISION" }] }],
        } },
        "traffic": [{ "revisionName": "hello-00001", "latestRevision": true, "percent": 90 }],
    }));
    assert_eq!(
        error(&s),
        "\"K_REVISION\" is a reserved environment variable: spec.template.spec.containers[0].env[0].name\n\
         Traffic targets sum to 90, want 100: spec.traffic\n\
         expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency\n\
         expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds\n\
         invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports[0].containerPort\n\
         8012 is a reserved port, please use a different value\n\
         may not set revisionName \"hello-00001\" when latestRevision is true: spec.traffic[0].latestRevision\n\
         missing field(s): spec.template.spec.containers[0].image"
    );
}
