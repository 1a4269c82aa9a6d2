//! The children of a PodAutoscaler: its ServerlessService (Knative's `MakeSKS`) and, for the
//! HPA class, its HorizontalPodAutoscaler (`MakeHPA`), in `autoscaling/v2` or `v2beta2`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, ObjectMeta};
use kube::core::GroupVersionKind;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::apis::autoscaling::{
    CPU, MEMORY, METRIC_ANNOTATION_KEY, TARGET_ANNOTATION_KEY, WINDOW_ANNOTATION_KEY,
};
use crate::apis::networking::v1alpha1::{ServerlessServiceOperationMode, ServerlessServiceSpec};
use crate::apis::{PodAutoscaler, ServerlessService};

/// The annotation `kubectl apply` leaves, which children do not inherit.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The name of a PodAutoscaler's ServerlessService: the PodAutoscaler's (`names.SKS`).
pub fn sks_name(pa: &PodAutoscaler) -> String {
    pa.name_any()
}

/// The controller reference of a PodAutoscaler's children (`kmeta.NewControllerRef`).
pub fn controller_ref(pa: &PodAutoscaler) -> OwnerReference {
    OwnerReference {
        api_version: PodAutoscaler::api_version(&()).into_owned(),
        kind: PodAutoscaler::kind(&()).into_owned(),
        name: pa.name_any(),
        uid: pa.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` names `pa` as its controller (`metav1.IsControlledBy`).
pub fn is_controlled_by(meta: &ObjectMeta, pa: &PodAutoscaler) -> bool {
    let uid = pa.uid();
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref())
}

/// Knative's `MakeSKS`: the ServerlessService `<pa>` with the PodAutoscaler's labels and
/// annotations, controlled by it, in `mode` with `num_activators` (0: all) in front of the
/// scale target.
pub fn make_sks(
    pa: &PodAutoscaler,
    mode: ServerlessServiceOperationMode,
    num_activators: i32,
) -> ServerlessService {
    let annotations = pa
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<std::collections::BTreeMap<_, _>>();
    ServerlessService {
        metadata: ObjectMeta {
            name: Some(sks_name(pa)),
            namespace: pa.namespace(),
            labels: pa.metadata.labels.clone(),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref(pa)]),
            ..ObjectMeta::default()
        },
        spec: ServerlessServiceSpec {
            mode: Some(mode),
            object_ref: pa.spec.scale_target_ref.clone(),
            protocol_type: pa.spec.protocol_type,
            num_activators: (num_activators != 0).then_some(num_activators),
        },
        status: None,
    }
}

/// The versions of `autoscaling` a HorizontalPodAutoscaler can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HpaVersion {
    /// `autoscaling/v2` (Kubernetes 1.23 and later).
    V2,
    /// `autoscaling/v2beta2` (Kubernetes 1.12 to 1.25).
    V2beta2,
}

impl HpaVersion {
    /// The version's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            HpaVersion::V2 => "autoscaling/v2",
            HpaVersion::V2beta2 => "autoscaling/v2beta2",
        }
    }

    /// The API resource of HorizontalPodAutoscalers in this version.
    pub fn api_resource(self) -> ApiResource {
        let version = match self {
            HpaVersion::V2 => "v2",
            HpaVersion::V2beta2 => "v2beta2",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("autoscaling", version, "HorizontalPodAutoscaler"),
            "horizontalpodautoscalers",
        )
    }
}

/// Knative's `MakeHPA`, as JSON of `version` (whose specs agree on every field set here): the
/// scale bounds (no maximum becomes `i32::MAX`), the metric and target (`cpu`: average
/// utilisation in percent; `memory`: average value in MiB; any other metric: a pods metric of
/// that name), and the window as the stabilisation window of both directions.
pub fn make_hpa(
    pa: &PodAutoscaler,
    config: &knative_core::config::AutoscalerConfig,
    version: HpaVersion,
) -> Value {
    let (min, max) = super::scaler::scale_bounds(pa, config);
    let annotations = pa.metadata.annotations.clone().unwrap_or_default();
    let target_ref = &pa.spec.scale_target_ref;
    let mut spec = json!({
        "scaleTargetRef": {
            "apiVersion": target_ref.api_version,
            "kind": target_ref.kind,
            "name": target_ref.name,
        },
        "maxReplicas": if max == 0 { i32::MAX } else { max },
    });
    if min > 0 {
        spec["minReplicas"] = json!(min);
    }
    let target = annotations
        .get(TARGET_ANNOTATION_KEY)
        .and_then(|v| v.parse::<f64>().ok());
    let metric = annotations
        .get(METRIC_ANNOTATION_KEY)
        .map_or(CPU, String::as_str);
    if let Some(target) = target {
        spec["metrics"] = json!([match metric {
            CPU => json!({
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target.ceil() as i32},
                },
            }),
            MEMORY => json!({
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": format!("{}Mi", target as i64)},
                },
            }),
            other => json!({
                "type": "Pods",
                "pods": {
                    "metric": {"name": other},
                    "target": {"type": "AverageValue", "averageValue": format!("{}", target as i64)},
                },
            }),
        }]);
    }
    if let Some(window) = annotations
        .get(WINDOW_ANNOTATION_KEY)
        .and_then(|v| knative_core::config::parse_go_duration(v).ok())
    {
        let seconds = window.as_secs();
        spec["behavior"] = json!({
            "scaleDown": {"stabilizationWindowSeconds": seconds},
            "scaleUp": {"stabilizationWindowSeconds": seconds},
        });
    }
    json!({
        "apiVersion": version.api_version(),
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": pa.name_any(),
            "namespace": pa.namespace(),
            "labels": pa.metadata.labels.clone().unwrap_or_default(),
            "annotations": annotations,
            "ownerReferences": [controller_ref(pa)],
        },
        "spec": spec,
    })
}

/// Whether `have` holds every value of `want` (objects compared key by key, recursively;
/// anything else by equality): what the API server defaulted around our values is not a
/// difference.
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| contains(h, v))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        (have, want) => have == want,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ObjectReference;
    use knative_core::config::AutoscalerConfig;

    use super::*;
    use crate::apis::PodAutoscalerSpec;

    fn pa(annotations: &[(&str, &str)]) -> PodAutoscaler {
        PodAutoscaler {
            metadata: ObjectMeta {
                name: Some("hello-00001".into()),
                namespace: Some("default".into()),
                uid: Some("uid-pa".into()),
                labels: Some(BTreeMap::from([(
                    "serving.knative.dev/revision".to_owned(),
                    "hello-00001".to_owned(),
                )])),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: PodAutoscalerSpec {
                scale_target_ref: ObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: Some("Deployment".into()),
                    name: Some("hello-00001-deployment".into()),
                    ..ObjectReference::default()
                },
                ..PodAutoscalerSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn the_sks_copies_labels_and_annotations_and_is_controlled_by_the_pa() {
        let pa = pa(&[
            (
                "autoscaling.knative.dev/class",
                "kpa.autoscaling.knative.dev",
            ),
            (LAST_APPLIED_ANNOTATION, "{}"),
        ]);
        let sks = make_sks(&pa, ServerlessServiceOperationMode::Proxy, 3);
        assert_eq!(sks.metadata.name.as_deref(), Some("hello-00001"));
        assert_eq!(sks.metadata.labels, pa.metadata.labels);
        assert_eq!(
            sks.metadata.annotations,
            Some(BTreeMap::from([(
                "autoscaling.knative.dev/class".to_owned(),
                "kpa.autoscaling.knative.dev".to_owned()
            )]))
        );
        assert!(is_controlled_by(&sks.metadata, &pa));
        assert_eq!(sks.spec.mode, Some(ServerlessServiceOperationMode::Proxy));
        assert_eq!(sks.spec.num_activators, Some(3));
        assert_eq!(sks.spec.object_ref, pa.spec.scale_target_ref);
        let all = make_sks(&pa, ServerlessServiceOperationMode::Serve, 0);
        assert_eq!(all.spec.num_activators, None, "0 means all activators");
    }

    #[test]
    fn an_hpa_for_cpu_has_utilisation_bounds_and_window() {
        let hpa = make_hpa(
            &pa(&[
                ("autoscaling.knative.dev/metric", "cpu"),
                ("autoscaling.knative.dev/target", "70.5"),
                ("autoscaling.knative.dev/min-scale", "2"),
                ("autoscaling.knative.dev/max-scale", "8"),
                ("autoscaling.knative.dev/window", "2m"),
            ]),
            &AutoscalerConfig::default(),
            HpaVersion::V2beta2,
        );
        assert_eq!(hpa["apiVersion"], "autoscaling/v2beta2");
        assert_eq!(
            hpa["spec"],
            json!({
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello-00001-deployment"},
                "minReplicas": 2,
                "maxReplicas": 8,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 71}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}, "scaleUp": {"stabilizationWindowSeconds": 120}},
            })
        );
        assert_eq!(hpa["metadata"]["ownerReferences"][0]["uid"], "uid-pa");
    }

    #[test]
    fn an_hpa_for_memory_or_a_custom_metric_targets_average_values() {
        let config = AutoscalerConfig::default();
        let memory = make_hpa(
            &pa(&[
                ("autoscaling.knative.dev/metric", "memory"),
                ("autoscaling.knative.dev/target", "75"),
            ]),
            &config,
            HpaVersion::V2,
        );
        assert_eq!(
            memory["spec"]["metrics"][0]["resource"],
            json!({"name": "memory", "target": {"type": "AverageValue", "averageValue": "75Mi"}})
        );
        assert_eq!(memory["spec"]["maxReplicas"], i32::MAX, "no maximum");
        assert!(memory["spec"].get("minReplicas").is_none());
        let custom = make_hpa(
            &pa(&[
                ("autoscaling.knative.dev/metric", "http_requests"),
                ("autoscaling.knative.dev/target", "10"),
            ]),
            &config,
            HpaVersion::V2,
        );
        assert_eq!(
            custom["spec"]["metrics"][0],
            json!({"type": "Pods", "pods": {"metric": {"name": "http_requests"}, "target": {"type": "AverageValue", "averageValue": "10"}}})
        );
        let untargeted = make_hpa(&pa(&[]), &config, HpaVersion::V2);
        assert!(untargeted["spec"].get("metrics").is_none());
    }

    #[test]
    fn contains_ignores_server_defaults_but_not_changes() {
        let want = json!({"a": 1, "b": {"c": [1, {"d": 2}]}});
        assert!(contains(
            &json!({"a": 1, "x": 0, "b": {"c": [1, {"d": 2, "e": 3}], "y": 1}}),
            &want
        ));
        assert!(!contains(
            &json!({"a": 1, "b": {"c": [1, {"d": 3}]}}),
            &want
        ));
        assert!(!contains(&json!({"a": 1}), &want));
    }
}
