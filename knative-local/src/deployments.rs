//! A Deployment controller for clusters that have none (the embedded API server has no
//! kube-controller-manager).
//!
//! It skips the ReplicaSet level: a Deployment owns its Pods directly (controller owner
//! reference to the Deployment), each labelled with the pod template's labels plus
//! `pod-template-hash` and named `<deployment>-<hash>-<suffix>` as Kubernetes names them.
//!
//! - [`plan`] decides, from a Deployment and the Pods it owns, which Pods to create and which to
//!   delete: Pods of the current template up or down to `spec.replicas` (when scaling down, the
//!   not-ready and then the youngest first), and Pods of an older template once as many Pods
//!   of the current one are ready as wanted (a rolling update with a 100 % surge, so that
//!   traffic always has somewhere to go).
//! - [`status`] computes the Deployment's status as Kubernetes writes it: `observedGeneration`,
//!   `replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`,
//!   `unavailableReplicas` and the `Available` and `Progressing` conditions.
//! - [`run`] is the watch loop: Deployments and the Pods they own, each change reconciled.
//!
//! Differences on purpose: no ReplicaSets, `minReadySeconds` and `progressDeadlineSeconds` are
//! not enforced (ready means available), the `Recreate` strategy behaves as the rolling update.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

/// The label carrying the hash of the pod template a Pod was made from.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The hash of a pod template, as Kubernetes encodes it (FNV-1a over the template, in the
/// alphabet of `rand.SafeEncodeString`, without vowels so that it never spells a word).
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| char::from(ALPHABET[usize::from(d) % ALPHABET.len()]))
        .collect()
}

/// What to do to bring a Deployment's Pods to its spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create (with `generateName`; the API server adds the suffix).
    pub create: Vec<Pod>,
    /// Names of Pods to delete.
    pub delete: Vec<String>,
}

fn desired_replicas(deployment: &Deployment) -> usize {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(1, |r| usize::try_from(r).unwrap_or(0))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_terminal(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

/// Whether `pod` is controlled by `deployment` (by uid, or by name when the Deployment has
/// none yet).
pub fn is_owned_by(pod: &Pod, deployment: &Deployment) -> bool {
    pod.owner_references().iter().any(|o| {
        o.controller == Some(true)
            && o.kind == "Deployment"
            && match &deployment.metadata.uid {
                Some(uid) => &o.uid == uid,
                None => Some(&o.name) == deployment.metadata.name.as_ref(),
            }
    })
}

/// The live Pods of `deployment` among `pods`: owned by it, not being deleted, not terminated.
fn live<'a>(deployment: &Deployment, pods: &'a [Pod]) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| {
            is_owned_by(p, deployment) && p.metadata.deletion_timestamp.is_none() && !is_terminal(p)
        })
        .collect()
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.labels()
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

/// A new Pod of `deployment`'s current template.
pub fn new_pod(deployment: &Deployment, hash: &str) -> Pod {
    let name = deployment.name_any();
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    let owner = OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: name.clone(),
        uid: deployment.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-{hash}-")),
            namespace: deployment.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// What to create and delete so that `deployment`'s Pods (among `pods`) match its spec.
pub fn plan(deployment: &Deployment, pods: &[Pod]) -> Plan {
    let desired = desired_replicas(deployment);
    let Some(spec) = &deployment.spec else {
        return Plan::default();
    };
    let hash = pod_template_hash(&spec.template);
    let owned = live(deployment, pods);
    let (mut current, old): (Vec<&Pod>, Vec<&Pod>) =
        owned.into_iter().partition(|p| hash_of(p) == Some(&hash));
    let mut out = Plan::default();
    if current.len() < desired {
        out.create = (current.len()..desired)
            .map(|_| new_pod(deployment, &hash))
            .collect();
    } else if current.len() > desired {
        // Keep the ready and the oldest: delete not-ready first, then the youngest.
        current.sort_by(|a, b| {
            is_ready(b)
                .cmp(&is_ready(a))
                .then_with(|| a.creation_timestamp().cmp(&b.creation_timestamp()))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        out.delete = current[desired..].iter().map(|p| p.name_any()).collect();
        current.truncate(desired);
    }
    let ready_current = current.iter().filter(|p| is_ready(p)).count();
    if ready_current >= desired {
        out.delete.extend(old.iter().map(|p| p.name_any()));
    }
    out
}

fn max_unavailable(deployment: &Deployment, desired: usize) -> usize {
    let value = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or_else(|| IntOrString::String("25%".to_owned()));
    match value {
        IntOrString::Int(n) => usize::try_from(n).unwrap_or(0),
        IntOrString::String(s) => {
            let percent: usize = s.trim_end_matches('%').parse().unwrap_or(25);
            desired * percent / 100
        }
    }
}

fn condition(
    previous: Option<&DeploymentCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let status = if status { "True" } else { "False" }.to_owned();
    let unchanged = previous.is_some_and(|p| p.status == status);
    let same = previous.is_some_and(|p| {
        p.status == status
            && p.reason.as_deref() == Some(reason)
            && p.message == Some(message.clone())
    });
    DeploymentCondition {
        type_: type_.to_owned(),
        status,
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: if unchanged {
            previous.and_then(|p| p.last_transition_time.clone())
        } else {
            Some(Time(now))
        },
        last_update_time: if same {
            previous.and_then(|p| p.last_update_time.clone())
        } else {
            Some(Time(now))
        },
    }
}

/// The status of `deployment` given the Pods among `pods` (as of `now`, for the conditions'
/// times; unchanged conditions keep theirs).
pub fn status(deployment: &Deployment, pods: &[Pod], now: Timestamp) -> DeploymentStatus {
    let desired = desired_replicas(deployment);
    let hash = deployment
        .spec
        .as_ref()
        .map(|s| pod_template_hash(&s.template));
    let owned = live(deployment, pods);
    let updated = owned
        .iter()
        .filter(|p| hash.is_some() && hash_of(p) == hash.as_deref())
        .count();
    let ready = owned.iter().filter(|p| is_ready(p)).count();
    let total = owned.len();
    let previous = deployment.status.as_ref();
    let find = |t: &str| {
        previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
    };
    let available_ok = ready + max_unavailable(deployment, desired) >= desired;
    let available = condition(
        find("Available"),
        "Available",
        available_ok,
        if available_ok {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if available_ok {
            "Deployment has minimum availability.".to_owned()
        } else {
            "Deployment does not have minimum availability.".to_owned()
        },
        now,
    );
    let name = deployment.name_any();
    let complete = updated == desired && total == desired && ready >= desired;
    let progressing = condition(
        find("Progressing"),
        "Progressing",
        true,
        if complete {
            "NewReplicaSetAvailable"
        } else {
            "ReplicaSetUpdated"
        },
        if complete {
            format!("Deployment \"{name}\" has successfully progressed.")
        } else {
            format!("Deployment \"{name}\" is progressing.")
        },
        now,
    );
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let nonzero = |n: usize| (n > 0).then(|| count(n));
    DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: nonzero(total),
        updated_replicas: nonzero(updated),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(ready),
        unavailable_replicas: nonzero(desired.saturating_sub(ready)),
        conditions: Some(vec![available, progressing]),
        collision_count: None,
        terminating_replicas: None,
    }
}

/// `status` as a merge patch: the counts it leaves out (zero) are cleared, not kept.
fn merge_status(status: &DeploymentStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for field in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ] {
            map.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    value
}

/// Errors of one reconciliation.
#[derive(Debug, thiserror::Error)]
#[error("deployment {namespace}/{name}: {source}")]
pub struct ReconcileError {
    namespace: String,
    name: String,
    source: kube::Error,
}

async fn reconcile(
    deployment: Arc<Deployment>,
    client: Arc<Client>,
) -> Result<Action, ReconcileError> {
    let namespace = deployment.namespace().unwrap_or_default();
    let name = deployment.name_any();
    let err = |source| ReconcileError {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    if deployment.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced((*client).clone(), &namespace);
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(err)?;
    let plan = plan(&deployment, &list.items);
    for pod in &plan.create {
        pods.create(&PostParams::default(), pod)
            .await
            .map_err(err)?;
    }
    for victim in &plan.delete {
        match pods.delete(victim, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(err(e)),
        }
    }
    if plan.create.is_empty() && plan.delete.is_empty() {
        let next = status(&deployment, &list.items, Timestamp::now());
        if deployment.status.as_ref() != Some(&next) {
            let deployments: Api<Deployment> = Api::namespaced((*client).clone(), &namespace);
            deployments
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": merge_status(&next) })),
                )
                .await
                .map_err(err)?;
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Runs the Deployment controller on `client`'s cluster (one namespace or all) until
/// `shutdown` completes.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (deployments, pods): (Api<Deployment>, Api<Pod>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    Controller::new(deployments, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, error: &ReconcileError, _| {
                tracing::warn!(%error, "deployment not reconciled; retrying");
                Action::requeue(Duration::from_millis(500))
            },
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn deployment(replicas: i32, image: &str) -> Deployment {
        let labels = BTreeMap::from([("app".to_owned(), "hello".to_owned())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("hello".to_owned()),
                namespace: Some("default".to_owned()),
                uid: Some("d-uid".to_owned()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "user".to_owned(),
                            image: Some(image.to_owned()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    /// A Pod the API server made of `new_pod`, named `suffix`, ready or not.
    fn pod(d: &Deployment, suffix: &str, ready: bool) -> Pod {
        let hash = pod_template_hash(&d.spec.as_ref().unwrap().template);
        let mut p = new_pod(d, &hash);
        p.metadata.name = Some(format!("hello-{hash}-{suffix}"));
        p.status = Some(PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    fn now() -> Timestamp {
        "2026-11-28T05:00:00Z".parse().unwrap()
    }

    #[test]
    fn new_pods_carry_the_template_labels_the_hash_and_a_controller_reference() {
        let d = deployment(1, "local:///bin/hello");
        let created = plan(&d, &[]).create;
        assert_eq!(created.len(), 1);
        let p = &created[0];
        let hash = pod_template_hash(&d.spec.as_ref().unwrap().template);
        assert_eq!(
            p.metadata.generate_name.as_deref(),
            Some(format!("hello-{hash}-").as_str())
        );
        assert_eq!(p.labels().get("app").map(String::as_str), Some("hello"));
        assert_eq!(p.labels().get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
        let owner = &p.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Deployment", "d-uid", Some(true))
        );
        assert_eq!(p.spec, d.spec.as_ref().unwrap().template.spec);
    }

    #[test]
    fn scaling_up_creates_the_missing_pods() {
        let d = deployment(3, "local:///bin/hello");
        let pods = [pod(&d, "aaaaa", true)];
        let p = plan(&d, &pods);
        assert_eq!((p.create.len(), p.delete.len()), (2, 0));
    }

    #[test]
    fn scaling_down_deletes_not_ready_pods_first() {
        let d = deployment(1, "local:///bin/hello");
        let pods = [pod(&d, "ready", true), pod(&d, "notready", false)];
        let p = plan(&d, &pods);
        assert!(p.create.is_empty());
        assert_eq!(p.delete.len(), 1);
        assert!(p.delete[0].ends_with("-notready"), "{:?}", p.delete);
    }

    #[test]
    fn scaling_to_zero_deletes_every_pod() {
        let d = deployment(0, "local:///bin/hello");
        let pods = [pod(&d, "a", true), pod(&d, "b", true)];
        assert_eq!(plan(&d, &pods).delete.len(), 2);
    }

    #[test]
    fn pods_of_other_owners_are_left_alone() {
        let d = deployment(1, "local:///bin/hello");
        let mut stranger = pod(&d, "x", true);
        stranger.metadata.owner_references.as_mut().unwrap()[0].uid = "other".to_owned();
        let p = plan(&d, &[stranger]);
        assert_eq!((p.create.len(), p.delete.len()), (1, 0));
    }

    #[test]
    fn pods_being_deleted_do_not_count() {
        let d = deployment(1, "local:///bin/hello");
        let mut going = pod(&d, "x", true);
        going.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(plan(&d, &[going]).create.len(), 1);
    }

    #[test]
    fn a_template_change_creates_new_pods_and_keeps_old_ones_until_new_ones_are_ready() {
        let old = deployment(1, "local:///bin/v1");
        let new = deployment(1, "local:///bin/v2");
        let old_pod = pod(&old, "old", true);
        let p = plan(&new, std::slice::from_ref(&old_pod));
        assert_eq!(p.create.len(), 1);
        assert!(
            p.delete.is_empty(),
            "old pod deleted before a new one is ready"
        );

        let p = plan(&new, &[old_pod.clone(), pod(&new, "new", false)]);
        assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");

        let p = plan(&new, &[old_pod.clone(), pod(&new, "new", true)]);
        assert_eq!(p.delete, vec![old_pod.name_any()]);
    }

    #[test]
    fn the_hash_changes_with_the_template_and_only_with_it() {
        let a = deployment(1, "local:///bin/v1");
        let b = deployment(5, "local:///bin/v1");
        let c = deployment(1, "local:///bin/v2");
        let h = |d: &Deployment| pod_template_hash(&d.spec.as_ref().unwrap().template);
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
        assert!(
            h(&a)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    fn cond<'a>(s: &'a DeploymentStatus, t: &str) -> &'a DeploymentCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn status_of_a_complete_deployment_counts_its_ready_pods() {
        let d = deployment(2, "local:///bin/hello");
        let s = status(&d, &[pod(&d, "a", true), pod(&d, "b", true)], now());
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (Some(2), Some(2), Some(2), Some(2))
        );
        assert_eq!(s.unavailable_replicas, None);
        assert_eq!(cond(&s, "Available").status, "True");
        assert_eq!(
            cond(&s, "Progressing").reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
    }

    #[test]
    fn status_without_ready_pods_is_unavailable_and_progressing() {
        let d = deployment(1, "local:///bin/hello");
        let s = status(&d, &[pod(&d, "a", false)], now());
        assert_eq!((s.replicas, s.ready_replicas), (Some(1), None));
        assert_eq!(s.unavailable_replicas, Some(1));
        let available = cond(&s, "Available");
        assert_eq!(
            (available.status.as_str(), available.reason.as_deref()),
            ("False", Some("MinimumReplicasUnavailable"))
        );
        let progressing = cond(&s, "Progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("True", Some("ReplicaSetUpdated"))
        );
    }

    #[test]
    fn a_deployment_scaled_to_zero_is_available() {
        let d = deployment(0, "local:///bin/hello");
        let s = status(&d, &[], now());
        assert_eq!(s.replicas, None);
        assert_eq!(cond(&s, "Available").status, "True");
    }

    #[test]
    fn the_status_patch_clears_counts_that_fell_to_zero() {
        let d = deployment(1, "local:///bin/hello");
        let patch = merge_status(&status(&d, &[pod(&d, "a", true)], now()));
        assert_eq!(patch["unavailableReplicas"], serde_json::Value::Null);
        assert!(
            patch
                .as_object()
                .unwrap()
                .contains_key("unavailableReplicas")
        );
        assert_eq!(patch["readyReplicas"], 1);
    }

    #[test]
    fn unchanged_conditions_keep_their_times() {
        let mut d = deployment(1, "local:///bin/hello");
        let pods = [pod(&d, "a", true)];
        d.status = Some(status(&d, &pods, now()));
        let later: Timestamp = "2026-11-28T06:00:00Z".parse().unwrap();
        let s = status(&d, &pods, later);
        assert_eq!(
            cond(&s, "Available").last_transition_time,
            Some(Time(now()))
        );
        assert_eq!(cond(&s, "Available").last_update_time, Some(Time(now())));
    }
}
