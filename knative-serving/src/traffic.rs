//! Traffic targets to weighted revision splits and tag routes, as pure functions: Knative's
//! `pkg/reconciler/route/traffic`, `route/domains` and `route/visibility`, with no I/O.
//!
//! A Route's (or Service's) `spec.traffic` names Revisions, or Configurations whose latest
//! ready Revision gets the traffic. [`build`] resolves every target against a [`Snapshot`] of
//! the Configurations and Revisions it refers to, and groups the result by tag: the default
//! target (`""`) carries all the traffic of the Route, each tag only its own targets, with the
//! shares of one Revision added up. A target that cannot be resolved is a [`TargetError`] that
//! says how the Route's `AllTrafficAssigned` condition reads (`RevisionMissing`,
//! `ConfigurationMissing`, ...).
//!
//! Host names come from `config-network`'s `domain-template` and `tag-template` and
//! `config-domain` ([`domain_name`], [`hostname`]); a Route labelled
//! `networking.knative.dev/visibility: cluster-local`, or living under the cluster-local domain,
//! is only reachable inside the cluster ([`visibility`]).
//!
//! ```
//! use knative_core::config::Config;
//! use knative_serving::apis::{Configuration, Revision, TrafficTarget};
//! use knative_serving::traffic::{self, Snapshot};
//!
//! let config: Configuration = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
//!     "metadata": {"name": "hello", "namespace": "default"},
//!     "spec": {},
//!     "status": {"latestReadyRevisionName": "hello-00002"},
//! })).unwrap();
//! let revision = |name: &str| -> Revision { serde_json::from_value(serde_json::json!({
//!     "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
//!     "metadata": {"name": name, "namespace": "default",
//!                  "labels": {"serving.knative.dev/configuration": "hello"}},
//!     "spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]},
//!     "status": {"conditions": [{"type": "Ready", "status": "True"}]},
//! })).unwrap() };
//! let snapshot = Snapshot::default()
//!     .with_configuration(&config)
//!     .with_revision(&revision("hello-00001"))
//!     .with_revision(&revision("hello-00002"));
//!
//! let spec = [
//!     TrafficTarget { configuration_name: Some("hello".into()), latest_revision: Some(true),
//!                     percent: Some(90), ..Default::default() },
//!     TrafficTarget { revision_name: Some("hello-00001".into()), tag: Some("old".into()),
//!                     percent: Some(10), ..Default::default() },
//! ];
//! let resolved = traffic::build(&spec, &snapshot).unwrap();
//! let default: Vec<_> = resolved.targets[""].iter()
//!     .map(|t| (t.revision_name.as_str(), t.percent())).collect();
//! assert_eq!(default, [("hello-00002", 90), ("hello-00001", 10)]);
//! assert_eq!(resolved.targets["old"][0].percent(), 100);
//!
//! let network = Config::default().network;
//! assert_eq!(traffic::hostname(&network, "hello", "old").unwrap(), "old-hello");
//! ```

pub mod rollout;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{CONDITION_READY, ConditionManager, ConditionStatus};
use knative_core::config::{
    CLUSTER_LOCAL_DOMAIN, Config as NetworkingConfig, DEFAULT_DOMAIN_TEMPLATE, DomainConfig,
    DomainTemplateValues, NetworkConfig, TemplateError, VISIBILITY_CLUSTER_LOCAL,
    VISIBILITY_LABEL_KEY,
};

use crate::apis::networking::ProtocolType;
use crate::apis::networking::v1alpha1::IngressVisibility;
use crate::apis::serving::CONFIGURATION_LABEL_KEY;
use crate::apis::serving::v1::ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED;
use crate::apis::{Configuration, Revision, TrafficTarget};

/// The name under which the untagged traffic of a Route is grouped: all of it.
pub const DEFAULT_TARGET: &str = "";

/// What traffic resolution needs to know of a Configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigurationState {
    /// `status.latestReadyRevisionName`.
    pub latest_ready_revision_name: Option<String>,
    /// The status of its `Ready` condition (Unknown when it has none).
    pub ready: ConditionStatus,
}

/// What traffic resolution needs to know of a Revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionState {
    /// The status of its `Ready` condition (Unknown when it has none).
    pub ready: ConditionStatus,
    /// Its `serving.knative.dev/configuration` label: the Configuration that created it.
    pub configuration_name: Option<String>,
    /// The protocol it speaks (`h2c` when its serving container's first port is named so).
    pub protocol: ProtocolType,
}

impl From<&Configuration> for ConfigurationState {
    fn from(config: &Configuration) -> Self {
        let status = config.status.as_ref();
        Self {
            latest_ready_revision_name: status
                .and_then(|s| non_empty(&s.configuration.latest_ready_revision_name))
                .map(str::to_owned),
            ready: status
                .and_then(|s| s.status.get_condition(CONDITION_READY))
                .map_or(ConditionStatus::Unknown, |c| c.status),
        }
    }
}

impl From<&Revision> for RevisionState {
    fn from(revision: &Revision) -> Self {
        Self {
            ready: revision
                .status
                .as_ref()
                .and_then(|s| s.status.get_condition(CONDITION_READY))
                .map_or(ConditionStatus::Unknown, |c| c.status),
            configuration_name: revision
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONFIGURATION_LABEL_KEY))
                .filter(|v| !v.is_empty())
                .cloned(),
            protocol: revision_protocol(revision),
        }
    }
}

/// The Configurations and Revisions a Route's traffic may refer to, by name. Anything absent
/// does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Configurations by name.
    pub configurations: BTreeMap<String, ConfigurationState>,
    /// Revisions by name.
    pub revisions: BTreeMap<String, RevisionState>,
}

impl Snapshot {
    /// Adds a Configuration.
    #[must_use]
    pub fn with_configuration(mut self, config: &Configuration) -> Self {
        self.insert_configuration(config);
        self
    }

    /// Adds a Revision.
    #[must_use]
    pub fn with_revision(mut self, revision: &Revision) -> Self {
        self.insert_revision(revision);
        self
    }

    /// Adds a Configuration in place.
    pub fn insert_configuration(&mut self, config: &Configuration) {
        if let Some(name) = &config.metadata.name {
            self.configurations.insert(name.clone(), config.into());
        }
    }

    /// Adds a Revision in place.
    pub fn insert_revision(&mut self, revision: &Revision) {
        if let Some(name) = &revision.metadata.name {
            self.revisions.insert(name.clone(), revision.into());
        }
    }
}

/// One traffic target resolved to a Revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionTarget {
    /// The target's tag, if any.
    pub tag: Option<String>,
    /// The Revision receiving the traffic.
    pub revision_name: String,
    /// The Configuration the traffic follows (configuration targets), or the one that created
    /// the Revision (revision targets), when known.
    pub configuration_name: Option<String>,
    /// The target's `latestRevision`, as written in the spec.
    pub latest_revision: Option<bool>,
    /// The target's share, as written in the spec (or the consolidated share, in
    /// [`Config::targets`]).
    pub percent: Option<i64>,
    /// The protocol the Revision speaks.
    pub protocol: ProtocolType,
}

impl RevisionTarget {
    /// The share of traffic in percent (an unset share is 0).
    pub fn percent(&self) -> i64 {
        self.percent.unwrap_or(0)
    }
}

/// A Route's traffic resolved to Revisions (Knative's `traffic.Config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The splits of each host of the Route: [`DEFAULT_TARGET`] carries every target, each tag
    /// its own targets; a Revision appears once per group with its shares added up, and a
    /// group of a single Revision takes 100%.
    pub targets: BTreeMap<String, Vec<RevisionTarget>>,
    /// Every spec target resolved to its Revision, in spec order (for the Route's status).
    pub revision_targets: Vec<RevisionTarget>,
}

/// The visibility of each traffic group of a Route: [`DEFAULT_TARGET`] and every tag.
pub type Visibility = BTreeMap<String, IngressVisibility>;

/// A traffic target that cannot be resolved, and so keeps the Route from programming any
/// traffic (Knative's `traffic.TargetError`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The Configuration or Revision does not exist.
    #[error("{kind} {name:?} referenced in traffic not found")]
    Missing {
        /// What kind of target is missing.
        kind: TargetKind,
        /// Its name.
        name: String,
    },
    /// The Configuration has no ready Revision yet; `failed` when its `Ready` is False.
    #[error("configuration {name:?} not ready, isFailure={failed}")]
    UnreadyConfiguration {
        /// The Configuration's name.
        name: String,
        /// Whether the Configuration failed (rather than still working).
        failed: bool,
    },
    /// The Revision is not ready; `failed` when its `Ready` is False.
    #[error("revision {name:?} not ready, isFailure={failed}")]
    UnreadyRevision {
        /// The Revision's name.
        name: String,
        /// Whether the Revision failed (rather than still starting).
        failed: bool,
    },
}

/// The kind of object a traffic target refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    /// A `Configuration`.
    Configuration,
    /// A `Revision`.
    Revision,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Configuration => "Configuration",
            Self::Revision => "Revision",
        })
    }
}

impl TargetError {
    /// Whether the target failed for good (`AllTrafficAssigned` False) rather than not being
    /// ready yet (Unknown). A missing target is a failure.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Missing { .. } => true,
            Self::UnreadyConfiguration { failed, .. } | Self::UnreadyRevision { failed, .. } => {
                *failed
            }
        }
    }

    /// The status `AllTrafficAssigned` takes.
    pub fn status(&self) -> ConditionStatus {
        if self.is_failure() {
            ConditionStatus::False
        } else {
            ConditionStatus::Unknown
        }
    }

    /// The reason `AllTrafficAssigned` takes: `ConfigurationMissing` or `RevisionMissing`
    /// for a missing target, `RevisionMissing` for an unready one.
    pub fn reason(&self) -> String {
        match self {
            Self::Missing { kind, .. } => format!("{kind}Missing"),
            Self::UnreadyConfiguration { .. } | Self::UnreadyRevision { .. } => {
                "RevisionMissing".to_owned()
            }
        }
    }

    /// The message `AllTrafficAssigned` takes, Knative's word for word.
    pub fn message(&self) -> String {
        match self {
            Self::Missing { kind, name } => {
                format!("{kind} {name:?} referenced in traffic not found.")
            }
            Self::UnreadyConfiguration { name, failed: true } => {
                format!("Configuration {name:?} does not have any ready Revision.")
            }
            Self::UnreadyConfiguration {
                name,
                failed: false,
            } => format!("Configuration {name:?} is waiting for a Revision to become ready."),
            Self::UnreadyRevision { name, failed: true } => {
                format!("Revision {name:?} failed to become ready.")
            }
            Self::UnreadyRevision {
                name,
                failed: false,
            } => format!("Revision {name:?} is not yet ready."),
        }
    }

    /// Marks a Route's `AllTrafficAssigned` condition with this error (Knative's
    /// `MarkBadTrafficTarget`).
    pub fn mark(&self, conditions: &mut ConditionManager<'_>) {
        let (reason, message) = (self.reason(), self.message());
        if self.is_failure() {
            conditions.mark_false(ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED, &reason, &message);
        } else {
            conditions.mark_unknown(ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED, &reason, &message);
        }
    }
}

/// A host name that cannot be made from the configured templates.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// `domain-template` or `tag-template` does not parse.
    #[error("error executing the template: {0}")]
    Template(#[from] TemplateError),
    /// The template made something that is not a fully qualified domain name.
    #[error("invalid domain name {name:?}: {reason}")]
    Invalid {
        /// What the template made.
        name: String,
        /// Why it is not a domain name.
        reason: String,
    },
}

/// Resolves `traffic` (a Route's spec traffic, or a Service's with configuration names filled
/// in) against `snapshot` (Knative's `BuildTrafficConfiguration`).
///
/// Every target is looked at, so that the error reported is a failure when any target failed
/// (else the first target not ready yet), as Knative reports it.
///
/// # Errors
/// A [`TargetError`] when a target is missing or not ready: no traffic is programmed then.
pub fn build(traffic: &[TrafficTarget], snapshot: &Snapshot) -> Result<Config, TargetError> {
    let mut flattened = Vec::with_capacity(traffic.len());
    let mut deferred: Option<TargetError> = None;
    for target in traffic {
        let resolved = if let Some(revision) = non_empty(&target.revision_name) {
            resolve_revision(target, revision, snapshot)
        } else if let Some(config) = non_empty(&target.configuration_name) {
            resolve_configuration(target, config, snapshot)
        } else {
            continue;
        };
        match resolved {
            Ok(t) => flattened.push(t),
            // A failure always wins over an earlier target that is merely not ready.
            Err(err) if deferred.is_none() || err.is_failure() => deferred = Some(err),
            Err(_) => {}
        }
    }
    if let Some(err) = deferred {
        return Err(err);
    }
    let mut groups: BTreeMap<String, Vec<RevisionTarget>> = BTreeMap::new();
    groups.insert(DEFAULT_TARGET.to_owned(), Vec::new());
    for target in &flattened {
        groups
            .get_mut(DEFAULT_TARGET)
            .expect("default group")
            .push(target.clone());
        if let Some(tag) = &target.tag {
            groups.entry(tag.clone()).or_default().push(target.clone());
        }
    }
    if flattened.is_empty() {
        groups.clear();
    }
    Ok(Config {
        targets: groups
            .into_iter()
            .map(|(name, targets)| (name, consolidate(targets)))
            .collect(),
        revision_targets: flattened,
    })
}

impl Config {
    /// The Route's status traffic (Knative's `GetRevisionTrafficTargets`): every spec target
    /// with its Revision, tagged ones with their own URL.
    ///
    /// # Errors
    /// When a tag's host name cannot be made.
    pub fn status_traffic(
        &self,
        config: &NetworkingConfig,
        route: &ObjectMeta,
        visibility: &Visibility,
    ) -> Result<Vec<TrafficTarget>, DomainError> {
        self.revision_targets
            .iter()
            .map(|t| {
                let url = match &t.tag {
                    Some(tag) => {
                        let local = is_cluster_local(visibility, tag);
                        let host = hostname(&config.network, route_name(route), tag)?;
                        let domain = domain_name(config, &with_visibility(route, local), &host)?;
                        Some(format!("{}://{domain}", scheme(&config.network, local)))
                    }
                    None => None,
                };
                Ok(TrafficTarget {
                    tag: t.tag.clone(),
                    revision_name: Some(t.revision_name.clone()),
                    configuration_name: None,
                    latest_revision: t.latest_revision,
                    percent: t.percent,
                    url,
                })
            })
            .collect()
    }
}

/// The name of the placeholder Kubernetes Service (and the first label of the host) of
/// traffic group `tag` of Route `route`: the Route's name for [`DEFAULT_TARGET`], else
/// `tag-template` executed (`<tag>-<route>` by default). Knative's `HostnameFromTemplate`.
///
/// # Errors
/// When `tag-template` does not parse.
pub fn hostname(network: &NetworkConfig, route: &str, tag: &str) -> Result<String, DomainError> {
    if tag.is_empty() {
        return Ok(route.to_owned());
    }
    Ok(network.tag_name(route, tag)?)
}

/// The fully qualified host name `name` gets under an object with metadata `meta` (Knative's
/// `DomainNameFromTemplate`): `domain-template` executed with the domain `config-domain`
/// chooses for the object's labels. A cluster-local object always uses the default template
/// (`{{.Name}}.{{.Namespace}}.{{.Domain}}`) under the cluster-local domain.
///
/// # Errors
/// When the template does not parse or makes something that is not a fully qualified domain
/// name.
pub fn domain_name(
    config: &NetworkingConfig,
    meta: &ObjectMeta,
    name: &str,
) -> Result<String, DomainError> {
    let labels = meta.labels.as_ref();
    let empty = BTreeMap::new();
    let domain = config.domain.lookup(labels.unwrap_or(&empty));
    let values = DomainTemplateValues {
        name,
        namespace: meta.namespace.as_deref().unwrap_or_default(),
        domain,
        annotations: meta.annotations.as_ref(),
        labels,
    };
    let cluster_local = labels
        .and_then(|l| l.get(VISIBILITY_LABEL_KEY))
        .is_some_and(|v| v == VISIBILITY_CLUSTER_LOCAL);
    let host = if cluster_local {
        let network = NetworkConfig {
            domain_template: DEFAULT_DOMAIN_TEMPLATE.to_owned(),
            ..NetworkConfig::default()
        };
        network.domain(&values)?
    } else {
        config.network.domain(&values)?
    };
    check_fqdn(&host)?;
    Ok(host)
}

/// A copy of `meta` with the visibility label set to `cluster-local` (`cluster_local`) or
/// removed (Knative's `labels.SetVisibility`).
pub fn with_visibility(meta: &ObjectMeta, cluster_local: bool) -> ObjectMeta {
    let mut meta = meta.clone();
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    if cluster_local {
        labels.insert(
            VISIBILITY_LABEL_KEY.to_owned(),
            VISIBILITY_CLUSTER_LOCAL.to_owned(),
        );
    } else {
        labels.remove(VISIBILITY_LABEL_KEY);
    }
    if labels.is_empty() {
        meta.labels = None;
    }
    meta
}

/// The visibility of a Route as a whole, from the domain `config-domain` gives it: under the
/// cluster-local domain (including when labelled `cluster-local`) it is `ClusterLocal`.
pub fn route_visibility(
    domain: &DomainConfig,
    labels: Option<&BTreeMap<String, String>>,
) -> IngressVisibility {
    let empty = BTreeMap::new();
    if domain.lookup(labels.unwrap_or(&empty)) == CLUSTER_LOCAL_DOMAIN {
        IngressVisibility::ClusterLocal
    } else {
        IngressVisibility::ExternalIP
    }
}

/// The visibility of every traffic group of a Route (Knative's `visibility.GetVisibility`):
/// the Route's own ([`route_visibility`]), made `ClusterLocal` for a tag whose placeholder
/// Kubernetes Service is labelled `cluster-local` (`cluster_local_services` holds the names of
/// those Services).
///
/// # Errors
/// When `tag-template` does not parse.
pub fn visibility(
    config: &NetworkingConfig,
    route: &ObjectMeta,
    traffic: &[TrafficTarget],
    cluster_local_services: &BTreeSet<String>,
) -> Result<Visibility, DomainError> {
    let default = route_visibility(&config.domain, route.labels.as_ref());
    let tags = std::iter::once(DEFAULT_TARGET)
        .chain(traffic.iter().filter_map(|t| non_empty(&t.tag)))
        .collect::<BTreeSet<_>>();
    tags.into_iter()
        .map(|tag| {
            let service = hostname(&config.network, route_name(route), tag)?;
            let v = if cluster_local_services.contains(&service) {
                IngressVisibility::ClusterLocal
            } else {
                default
            };
            Ok((tag.to_owned(), v))
        })
        .collect()
}

/// The URL of a Route (Knative's `updateRouteStatusURL`): `http://<host>` for a cluster-local
/// Route, `<default-external-scheme>://<host>` otherwise.
///
/// # Errors
/// When the host name cannot be made.
pub fn route_url(
    config: &NetworkingConfig,
    route: &ObjectMeta,
    visibility: &Visibility,
) -> Result<String, DomainError> {
    let local = is_cluster_local(visibility, DEFAULT_TARGET);
    let host = domain_name(config, &with_visibility(route, local), route_name(route))?;
    Ok(format!("{}://{host}", scheme(&config.network, local)))
}

/// The hosts of the Ingress rule of traffic group `tag` at `visibility` (Knative's
/// `routeDomain`): the external host, or the cluster-local host with its short forms
/// (`name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`), sorted.
///
/// # Errors
/// When the host name cannot be made.
pub fn rule_hosts(
    config: &NetworkingConfig,
    route: &ObjectMeta,
    tag: &str,
    visibility: IngressVisibility,
) -> Result<Vec<String>, DomainError> {
    let host = hostname(&config.network, route_name(route), tag)?;
    let local = visibility == IngressVisibility::ClusterLocal;
    let domain = domain_name(config, &with_visibility(route, local), &host)?;
    Ok(if local {
        expanded_hosts(&domain)
    } else {
        vec![domain]
    })
}

/// A cluster-local host name and its short forms, sorted (Knative networking's
/// `ExpandedHosts`): `a.b.svc.cluster.local` also answers as `a.b.svc` and `a.b`. A short
/// form whose last label is all digits is not a host name and is left out.
pub fn expanded_hosts(host: &str) -> Vec<String> {
    let cluster_domain = CLUSTER_LOCAL_DOMAIN
        .strip_prefix("svc.")
        .unwrap_or(CLUSTER_LOCAL_DOMAIN);
    let suffixes = [
        format!(".{cluster_domain}"),
        format!(".{CLUSTER_LOCAL_DOMAIN}"),
    ];
    let mut hosts = BTreeSet::from([host.to_owned()]);
    for suffix in &suffixes {
        if let Some(short) = host.strip_suffix(suffix.as_str())
            && valid_top_level_domain(short)
        {
            hosts.insert(short.to_owned());
        }
    }
    hosts.into_iter().collect()
}

/// The protocol a Revision speaks (Knative's `Revision.GetProtocol`): `h2c` when the first
/// port of its serving container (the one with ports, else the first) is named `h2c`.
pub fn revision_protocol(revision: &Revision) -> ProtocolType {
    let containers = &revision.spec.pod_spec.containers;
    let serving = containers
        .iter()
        .find(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
        .or_else(|| containers.first());
    let first_port = serving
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.name.as_deref());
    if first_port == Some("h2c") {
        ProtocolType::H2c
    } else {
        ProtocolType::Http1
    }
}

fn resolve_configuration(
    target: &TrafficTarget,
    name: &str,
    snapshot: &Snapshot,
) -> Result<RevisionTarget, TargetError> {
    let config = snapshot
        .configurations
        .get(name)
        .ok_or_else(|| TargetError::Missing {
            kind: TargetKind::Configuration,
            name: name.to_owned(),
        })?;
    let Some(latest_ready) = config.latest_ready_revision_name.as_deref() else {
        return Err(TargetError::UnreadyConfiguration {
            name: name.to_owned(),
            failed: config.ready.is_false(),
        });
    };
    let revision = snapshot
        .revisions
        .get(latest_ready)
        .ok_or_else(|| TargetError::Missing {
            kind: TargetKind::Revision,
            name: latest_ready.to_owned(),
        })?;
    Ok(RevisionTarget {
        tag: non_empty(&target.tag).map(str::to_owned),
        revision_name: latest_ready.to_owned(),
        configuration_name: Some(name.to_owned()),
        latest_revision: target.latest_revision,
        percent: target.percent,
        protocol: revision.protocol,
    })
}

fn resolve_revision(
    target: &TrafficTarget,
    name: &str,
    snapshot: &Snapshot,
) -> Result<RevisionTarget, TargetError> {
    let revision = snapshot
        .revisions
        .get(name)
        .ok_or_else(|| TargetError::Missing {
            kind: TargetKind::Revision,
            name: name.to_owned(),
        })?;
    if !revision.ready.is_true() {
        return Err(TargetError::UnreadyRevision {
            name: name.to_owned(),
            failed: revision.ready.is_false(),
        });
    }
    // A Revision's Configuration must exist too: the Route follows it (Knative looks it up).
    if let Some(config) = &revision.configuration_name
        && !snapshot.configurations.contains_key(config)
    {
        return Err(TargetError::Missing {
            kind: TargetKind::Configuration,
            name: config.clone(),
        });
    }
    Ok(RevisionTarget {
        tag: non_empty(&target.tag).map(str::to_owned),
        revision_name: name.to_owned(),
        configuration_name: revision.configuration_name.clone(),
        latest_revision: target.latest_revision,
        percent: target.percent,
        protocol: revision.protocol,
    })
}

/// One entry per Revision, in order of first appearance, with the shares added up; a lone
/// Revision takes 100%.
fn consolidate(targets: Vec<RevisionTarget>) -> Vec<RevisionTarget> {
    let mut consolidated: Vec<RevisionTarget> = Vec::with_capacity(targets.len());
    for target in targets {
        match consolidated
            .iter_mut()
            .find(|t| t.revision_name == target.revision_name)
        {
            Some(existing) => existing.percent = Some(existing.percent() + target.percent()),
            None => consolidated.push(target),
        }
    }
    if let [only] = consolidated.as_mut_slice() {
        only.percent = Some(100);
    }
    consolidated
}

fn is_cluster_local(visibility: &Visibility, tag: &str) -> bool {
    visibility.get(tag) == Some(&IngressVisibility::ClusterLocal)
}

fn scheme(network: &NetworkConfig, cluster_local: bool) -> &str {
    if cluster_local {
        "http"
    } else {
        &network.default_external_scheme
    }
}

fn route_name(route: &ObjectMeta) -> &str {
    route.name.as_deref().unwrap_or_default()
}

/// `validation.IsFullyQualifiedDomainName`: at least two dot-separated DNS-1123 labels, at
/// most 253 characters.
fn check_fqdn(name: &str) -> Result<(), DomainError> {
    let invalid = |reason: &str| DomainError::Invalid {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(invalid("a domain name is required"));
    }
    if trimmed.len() > 253 {
        return Err(invalid("must be no more than 253 characters"));
    }
    if !trimmed.split('.').all(is_dns1123_label) {
        return Err(invalid(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if !trimmed.contains('.') {
        return Err(invalid(
            "should be a domain with at least two segments separated by dots",
        ));
    }
    Ok(())
}

fn is_dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The last label of a short host name must not be all digits (it would read as an address).
fn valid_top_level_domain(host: &str) -> bool {
    let tld = host.rsplit('.').next().unwrap_or(host);
    !tld.is_empty() && !tld.bytes().all(|b| b.is_ascii_digit())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
