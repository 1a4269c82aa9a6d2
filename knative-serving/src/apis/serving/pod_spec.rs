//! Validation and defaulting of the pod spec a Revision inlines: Knative's
//! `serving/k8s_validation.go` and the container part of `RevisionSpec.SetDefaults`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, Probe, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use knative_core::apis::FieldError;

use crate::apis::Defaults;
use crate::apis::names::{dns1123_subdomain, is_dns1123_label};
use crate::apis::serving::{RESERVED_CONTAINER_NAMES, RESERVED_ENV_VARS, RESERVED_PORTS};

/// Port names the serving container may use: they pick the protocol (`h2c`, `http1`).
const VALID_PORT_NAMES: [&str; 3] = ["h2c", "http1", ""];
/// Mount paths no volume may cover.
const RESERVED_PATHS: [&str; 3] = ["/", "/dev", "/dev/log"];

/// Which kind of container is being validated: it decides the reserved environment variables,
/// the port rules and whether probes are allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    /// The container that receives requests (the one with the port).
    Serving,
    /// Another container of a multi-container Revision.
    Sidecar,
    /// An init container.
    Init,
}

/// `serving.ValidatePodSpec` (paths relative to the Revision spec, which inlines the pod spec).
pub(crate) fn validate_pod_spec(ps: &PodSpec, defaults: &Defaults) -> FieldError {
    let init_containers = ps.init_containers.as_deref().unwrap_or_default();
    let all: Vec<&Container> = init_containers.iter().chain(&ps.containers).collect();
    let (volumes, volume_errs) = validate_volumes(ps.volumes.as_deref().unwrap_or_default(), &all);
    let mut errs = volume_errs.via_field("volumes");

    errs = errs.also(validate_init_containers(
        init_containers,
        &ps.containers,
        &volumes,
        defaults,
    ));

    let (port, port_errs) = validate_containers_ports(&ps.containers);
    errs = errs.also(port_errs.via_field("containers[*]"));

    errs = match ps.containers.as_slice() {
        [] => errs.also(FieldError::err_missing_field(["containers"])),
        [only] => errs.also(
            validate_container(only, ContainerKind::Serving, &volumes, &port)
                .via_field_index("containers", 0),
        ),
        many => errs.also(validate_containers(many, &volumes, &port, defaults)),
    };

    if let Some(sa) = ps
        .service_account_name
        .as_deref()
        .filter(|sa| !sa.is_empty())
    {
        for msg in dns1123_subdomain(sa) {
            errs = errs
                .also(FieldError::err_invalid_value(sa, "serviceAccountName").with_details(msg));
        }
    }
    errs
}

/// The container part of `RevisionSpec.SetDefaults`.
pub(crate) fn set_pod_spec_defaults(ps: &mut PodSpec, defaults: &Defaults) {
    let mut taken: BTreeSet<String> = ps.containers.iter().map(|c| c.name.clone()).collect();
    taken.extend(ps.init_containers.iter().flatten().map(|c| c.name.clone()));
    apply_default_container_names(
        &mut ps.containers,
        &mut taken,
        &defaults.user_container_name,
    );
    if let Some(init) = ps.init_containers.as_mut() {
        apply_default_container_names(init, &mut taken, &defaults.init_container_name);
    }

    let writable: BTreeSet<String> = ps
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some() || v.persistent_volume_claim.is_some())
        .map(|v| v.name.clone())
        .collect();
    let single = ps.containers.len() == 1;
    for container in &mut ps.containers {
        // Only the serving container gets the default readiness probe.
        if single || container.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            apply_probes(container);
        }
        for mount in container.volume_mounts.iter_mut().flatten() {
            if !writable.contains(&mount.name) {
                mount.read_only = Some(true);
            }
        }
    }
    if ps.enable_service_links.is_none() {
        ps.enable_service_links = defaults.enable_service_links;
    }
}

/// `validateContainersPorts`: at most one port across all containers (and one at least when
/// there are several containers, to tell the serving one). Returns the serving port.
fn validate_containers_ports(containers: &[Container]) -> (ContainerPort, FieldError) {
    let mut count = 0;
    let mut port = ContainerPort::default();
    for ports in containers
        .iter()
        .filter_map(|c| c.ports.as_ref())
        .filter(|p| !p.is_empty())
    {
        count += ports.len();
        port = ports[0].clone();
    }
    if port.name.as_deref().unwrap_or_default().is_empty() {
        port.name = Some("http".to_owned());
    }
    if port.container_port == 0 {
        port.container_port = 8080;
    }
    let errs = if count == 0 && containers.len() > 1 {
        FieldError::err_missing_field(["ports"])
    } else if count > 1 {
        FieldError::new("more than one container port is set", ["ports"])
            .with_details("Only a single port is allowed across all containers")
    } else {
        FieldError::default()
    };
    (port, errs)
}

/// `validateContainers`: a multi-container Revision, when the feature is on.
fn validate_containers(
    containers: &[Container],
    volumes: &BTreeMap<String, Volume>,
    port: &ContainerPort,
    defaults: &Defaults,
) -> FieldError {
    if !defaults.multi_container {
        return FieldError::new(
            format!(
                "multi-container is off, but found {} containers",
                containers.len()
            ),
            Vec::<String>::new(),
        );
    }
    let mut errs = FieldError::default();
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        // Unnamed containers are named by defaulting, which keeps the names unique.
        if !container.name.is_empty() && !names.insert(container.name.as_str()) {
            errs = errs.also(
                FieldError::new(
                    format!("duplicate container name {:?}", container.name),
                    ["name"],
                )
                .via_field_index("containers", i),
            );
        }
        let kind = if container.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            ContainerKind::Serving
        } else {
            ContainerKind::Sidecar
        };
        errs = errs.also(
            validate_container(container, kind, volumes, port).via_field_index("containers", i),
        );
    }
    errs
}

/// `validateInitContainers`: init containers, when the feature is on.
fn validate_init_containers(
    init: &[Container],
    containers: &[Container],
    volumes: &BTreeMap<String, Volume>,
    defaults: &Defaults,
) -> FieldError {
    if init.is_empty() {
        return FieldError::default();
    }
    if !defaults.init_containers {
        return FieldError::new(
            format!(
                "pod spec support for init-containers is off, but found {} init containers",
                init.len()
            ),
            Vec::<String>::new(),
        );
    }
    let names: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let mut errs = FieldError::default();
    for (i, container) in init.iter().enumerate() {
        if !container.name.is_empty() && names.contains(container.name.as_str()) {
            errs = errs.also(
                FieldError::new(
                    format!("duplicate container name {:?}", container.name),
                    ["name"],
                )
                .via_field_index("initContainers", i),
            );
        }
        let port = ContainerPort::default();
        errs = errs.also(
            validate_container(container, ContainerKind::Init, volumes, &port)
                .via_field_index("initContainers", i),
        );
    }
    errs
}

/// `ValidateContainer`, `validateSidecarContainer`, `validateInitContainer` and `validate`
/// (paths relative to the container).
fn validate_container(
    c: &Container,
    kind: ContainerKind,
    volumes: &BTreeMap<String, Volume>,
    port: &ContainerPort,
) -> FieldError {
    if *c == Container::default() {
        return FieldError::err_missing_field([""]);
    }
    let mut errs = FieldError::default();
    match kind {
        ContainerKind::Serving => {
            errs = errs
                .also(
                    c.liveness_probe
                        .as_ref()
                        .map(|p| validate_probe(p, port).via_field("livenessProbe")),
                )
                .also(
                    c.readiness_probe
                        .as_ref()
                        .map(|p| validate_readiness_probe(p, port).via_field("readinessProbe")),
                );
        }
        ContainerKind::Sidecar => {}
        ContainerKind::Init => {
            let forbidden = [
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
                ("lifecycle", c.lifecycle.is_some()),
            ];
            for (field, _) in forbidden.iter().filter(|(_, set)| *set) {
                errs = errs.also(FieldError::new(
                    "field not allowed in an init container",
                    [*field],
                ));
            }
        }
    }

    if RESERVED_CONTAINER_NAMES.contains(&c.name.as_str()) {
        errs = errs.also(FieldError::new(
            format!("{:?} is a reserved container name", c.name),
            ["name"],
        ));
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        errs = errs.also(validate_env_var(env, kind).via_field_index("env", i));
    }
    for (i, env_from) in c.env_from.iter().flatten().enumerate() {
        errs = errs.also(match (&env_from.config_map_ref, &env_from.secret_ref) {
            (Some(_), Some(_)) => FieldError::err_multiple_one_of(["configMapRef", "secretRef"])
                .via_field_index("envFrom", i),
            (None, None) => FieldError::err_missing_one_of(["configMapRef", "secretRef"])
                .via_field_index("envFrom", i),
            _ => FieldError::default(),
        });
    }
    if c.image.as_deref().unwrap_or_default().is_empty() {
        errs = errs.also(FieldError::err_missing_field(["image"]));
    }
    let ports = c.ports.as_deref().unwrap_or_default();
    errs = errs.also(match kind {
        ContainerKind::Init => ports
            .iter()
            .enumerate()
            .fold(FieldError::default(), |errs, (i, p)| {
                errs.also(validate_container_port_basic(p).via_index(i))
            })
            .via_field("ports"),
        _ => ports
            .first()
            .map(validate_serving_port)
            .unwrap_or_default()
            .via_field("ports[0]"),
    });
    match c.termination_message_policy.as_deref() {
        None | Some("" | "File" | "FallbackToLogsOnError") => {}
        Some(policy) => {
            errs = errs.also(FieldError::err_invalid_value(
                policy,
                "terminationMessagePolicy",
            ))
        }
    }
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    errs.also(validate_volume_mounts(mounts, volumes).via_field("volumeMounts"))
}

/// `validateEnvVar`: a name, and none of the variables Knative sets itself (`PORT` is only
/// reserved in the serving container).
fn validate_env_var(env: &EnvVar, kind: ContainerKind) -> FieldError {
    if env.name.is_empty() {
        return FieldError::err_missing_field(["name"]);
    }
    let reserved = RESERVED_ENV_VARS.contains(&env.name.as_str())
        && (kind == ContainerKind::Serving || env.name != "PORT");
    if reserved {
        FieldError::new(
            format!("{:?} is a reserved environment variable", env.name),
            ["name"],
        )
    } else {
        FieldError::default()
    }
}

/// `validateContainerPorts`: the serving port is TCP, not reserved, and named for its protocol.
fn validate_serving_port(port: &ContainerPort) -> FieldError {
    let mut errs = validate_container_port_basic(port);
    if let Some(protocol) = port
        .protocol
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "TCP")
    {
        errs = errs.also(FieldError::err_invalid_value(protocol, "protocol"));
    }
    let name = port.name.as_deref().unwrap_or_default();
    if !VALID_PORT_NAMES.contains(&name) {
        errs = errs.also(
            FieldError::new(format!("Port name {name} is not allowed"), [""])
                .with_details("Name must be empty, or one of: 'h2c', 'http1'"),
        );
    }
    errs
}

/// `validateContainerPortBasic`: not one of the queue-proxy's ports, and a valid port number.
fn validate_container_port_basic(port: &ContainerPort) -> FieldError {
    let mut errs = FieldError::default();
    let number = port.container_port;
    if RESERVED_PORTS.contains(&number) {
        errs = errs.also(
            FieldError::err_invalid_value(format!("{number} is a reserved port"), "containerPort")
                .with_details(format!(
                    "{number} is a reserved port, please use a different value"
                )),
        );
    }
    if !(0..=65535).contains(&number) {
        errs = errs.also(FieldError::err_out_of_bounds_value(
            number,
            0,
            65535,
            "containerPort",
        ));
    }
    errs
}

/// `validateProbe`: exactly one handler, aimed at the serving port.
fn validate_probe(p: &Probe, port: &ContainerPort) -> FieldError {
    let mut errs = FieldError::default();
    let mut handlers = Vec::new();
    let port_name = port.name.as_deref().unwrap_or_default();
    if let Some(http_get) = &p.http_get {
        handlers.push("httpGet");
        if let IntOrString::String(name) = &http_get.port
            && !name.is_empty()
            && name != port_name
        {
            errs = errs.also(
                FieldError::err_invalid_value(name, "httpGet.port")
                    .with_details("Probe port must match container port"),
            );
        }
    }
    if let Some(tcp) = &p.tcp_socket {
        handlers.push("tcpSocket");
        if let IntOrString::String(name) = &tcp.port
            && !name.is_empty()
            && name != port_name
        {
            errs = errs.also(
                FieldError::err_invalid_value(name, "tcpSocket.port")
                    .with_details("Probe port must match container port"),
            );
        }
    }
    if p.exec.is_some() {
        handlers.push("exec");
    }
    if p.grpc.is_some() {
        handlers.push("grpc");
    }
    match handlers.len() {
        0 => errs.also(FieldError::err_missing_one_of([
            "httpGet",
            "tcpSocket",
            "exec",
            "grpc",
        ])),
        1 => errs,
        _ => errs.also(FieldError::err_multiple_one_of(handlers)),
    }
}

/// `validateReadinessProbe`: a probe whose `periodSeconds: 0` (the default) selects Knative's
/// aggressive probing, which takes no thresholds. Unset values are left to defaulting.
fn validate_readiness_probe(p: &Probe, port: &ContainerPort) -> FieldError {
    const MAX: i32 = i32::MAX;
    let mut errs = validate_probe(p, port);
    let at_least = |value: Option<i32>, min: i32, field: &str| match value {
        Some(v) if v < min => FieldError::err_out_of_bounds_value(v, min, MAX, field),
        _ => FieldError::default(),
    };
    errs = errs
        .also(at_least(p.period_seconds, 0, "periodSeconds"))
        .also(at_least(p.initial_delay_seconds, 0, "initialDelaySeconds"))
        .also(at_least(p.success_threshold, 1, "successThreshold"));
    if p.period_seconds.unwrap_or(0) == 0 {
        if p.failure_threshold.unwrap_or(0) != 0 {
            errs = errs.also(FieldError::new(
                "failureThreshold is disallowed when periodSeconds is zero",
                ["failureThreshold"],
            ));
        }
        if p.timeout_seconds.unwrap_or(0) != 0 {
            errs = errs.also(FieldError::new(
                "timeoutSeconds is disallowed when periodSeconds is zero",
                ["timeoutSeconds"],
            ));
        }
    } else {
        errs = errs
            .also(at_least(p.timeout_seconds, 1, "timeoutSeconds"))
            .also(at_least(p.failure_threshold, 1, "failureThreshold"));
    }
    errs
}

/// `ValidateVolumes` (the part that needs no feature flags): unique, mounted volumes with a
/// DNS-1123 name. Returns the volumes by name.
fn validate_volumes(
    vs: &[Volume],
    containers: &[&Container],
) -> (BTreeMap<String, Volume>, FieldError) {
    let mounted: BTreeSet<&str> = containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| m.name.as_str())
        .collect();
    let mut volumes = BTreeMap::new();
    let mut errs = FieldError::default();
    for (i, volume) in vs.iter().enumerate() {
        if volumes.contains_key(&volume.name) {
            errs = errs.also(
                FieldError::new(format!("duplicate volume name {:?}", volume.name), ["name"])
                    .via_index(i),
            );
        }
        if !mounted.contains(volume.name.as_str()) {
            errs = errs.also(
                FieldError::new(
                    format!("volume with name {:?} not mounted", volume.name),
                    ["name"],
                )
                .via_index(i),
            );
        }
        if volume.name.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["name"]).via_index(i));
        } else if !is_dns1123_label(&volume.name) {
            errs = errs.also(FieldError::err_invalid_value(&volume.name, "name").via_index(i));
        }
        volumes.insert(volume.name.clone(), volume.clone());
    }
    (volumes, errs)
}

/// `validateVolumeMounts`: every mount names a volume, at a unique absolute path outside the
/// reserved ones, read-only unless the volume is writable.
fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeMap<String, Volume>,
) -> FieldError {
    let mut errs = FieldError::default();
    let mut seen_paths = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let volume = volumes.get(&mount.name);
        if volume.is_none() {
            errs = errs
                .also(FieldError::new("volumeMount has no matching volume", ["name"]).via_index(i));
        }
        let path = clean_path(&mount.mount_path);
        if mount.mount_path.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["mountPath"]).via_index(i));
        } else if RESERVED_PATHS.contains(&path.as_str()) {
            errs = errs.also(
                FieldError::new(
                    format!("mountPath {path:?} is a reserved path"),
                    ["mountPath"],
                )
                .via_index(i),
            );
        } else if !mount.mount_path.starts_with('/') {
            errs = errs
                .also(FieldError::err_invalid_value(&mount.mount_path, "mountPath").via_index(i));
        } else if seen_paths.contains(&path) {
            errs = errs.also(
                FieldError::err_invalid_value(
                    format!("{:?} must be unique", mount.mount_path),
                    "mountPath",
                )
                .via_index(i),
            );
        }
        seen_paths.insert(path);
        let writable =
            volume.is_some_and(|v| v.empty_dir.is_some() || v.persistent_volume_claim.is_some());
        if !writable && mount.read_only != Some(true) {
            errs = errs.also(
                FieldError::new(
                    "volume mount should be readOnly for this type of volume",
                    ["readOnly"],
                )
                .via_index(i),
            );
        }
    }
    errs
}

/// Go's `path.Clean` for the absolute and relative paths of volume mounts.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if p.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// `applyDefaultContainerNames`: `user-container` for a lone unnamed container,
/// `user-container-0`, `user-container-1`, ... when there are several (skipping taken names).
fn apply_default_container_names(
    containers: &mut [Container],
    taken: &mut BTreeSet<String>,
    default_name: &str,
) {
    let several = containers.len() > 1;
    let mut next_suffix = 0;
    for container in containers.iter_mut().filter(|c| c.name.is_empty()) {
        let mut name = default_name.to_owned();
        if several || taken.contains(&name) {
            loop {
                name = format!("{default_name}-{next_suffix}");
                next_suffix += 1;
                if !taken.contains(&name) {
                    break;
                }
            }
        }
        taken.insert(name.clone());
        container.name = name;
    }
}

/// `applyProbes`: the serving container gets a TCP readiness probe on its port unless it has
/// one, with Kubernetes' thresholds when it probes periodically.
fn apply_probes(container: &mut Container) {
    let probe = container.readiness_probe.get_or_insert_with(Probe::default);
    if probe.tcp_socket.is_none()
        && probe.http_get.is_none()
        && probe.exec.is_none()
        && probe.grpc.is_none()
    {
        probe.tcp_socket = Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(0),
        });
    }
    if probe.success_threshold.unwrap_or(0) == 0 {
        probe.success_threshold = Some(1);
    }
    if probe.period_seconds.unwrap_or(0) != 0 {
        if probe.failure_threshold.unwrap_or(0) == 0 {
            probe.failure_threshold = Some(3);
        }
        if probe.timeout_seconds.unwrap_or(0) == 0 {
            probe.timeout_seconds = Some(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_is_go_path_clean() {
        for (input, want) in [
            ("/", "/"),
            ("/dev/", "/dev"),
            ("/a/../dev//log", "/dev/log"),
            ("a/./b", "a/b"),
            ("", "."),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
    }

    #[test]
    fn several_unnamed_containers_get_numbered_names_around_taken_ones() {
        let mut containers = vec![
            Container::default(),
            Container {
                name: "user-container-0".into(),
                ..Container::default()
            },
            Container::default(),
        ];
        let mut taken = containers.iter().map(|c| c.name.clone()).collect();
        apply_default_container_names(&mut containers, &mut taken, "user-container");
        let names: Vec<_> = containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["user-container-1", "user-container-0", "user-container-2"]
        );
    }
}
