//! From a Pod's container to the process that runs it (pure).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The image scheme of a local executable: `local:///absolute/path/to/executable`.
pub const LOCAL_SCHEME: &str = "local://";

/// The absolute path a `local://` image names, or `None` for any other image.
pub fn local_path(image: &str) -> Option<&str> {
    image
        .strip_prefix(LOCAL_SCHEME)
        .filter(|path| path.starts_with('/') && path.len() > 1)
}

/// What a container's process is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment (nothing is inherited from the runtime's).
    pub env: BTreeMap<String, String>,
    /// Its working directory, when the container sets one.
    pub working_dir: Option<PathBuf>,
}

/// What the runtime knows of the Pod a container runs in.
#[derive(Clone, Copy, Debug)]
pub struct PodFacts<'a> {
    /// The Pod.
    pub pod: &'a Pod,
    /// Its loopback address.
    pub pod_ip: Ipv4Addr,
    /// The node's name.
    pub node_name: &'a str,
}

/// Why a container cannot run as a local process.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The image is not `local:///absolute/path`.
    #[error("image {0:?} is not a local executable (local:///absolute/path)")]
    NotLocal(String),
    /// An environment variable comes from somewhere the runtime cannot read.
    #[error("env {name}: {what} is not supported by the local runtime")]
    UnsupportedEnv {
        /// The variable.
        name: String,
        /// Where it would come from.
        what: String,
    },
}

/// The process of `container` in the Pod of `facts`, listening on `port`.
///
/// As on Kubernetes: `command` (if set) replaces the image's entrypoint (here the executable
/// the image names), `args` follow, `$(VAR)` in both expands to the container's variables, and
/// `valueFrom.fieldRef` reads the Pod's name, namespace, uid, IP, node, host IP and service
/// account. `PORT` is the port the runtime chose for the container (the Pod's declared ports on
/// its address are forwarded there), and `HOME`/`PATH` come from the runtime's own
/// environment unless the container sets them.
///
/// # Errors
/// [`SpecError`] when the image is not local or an env var comes from a ConfigMap, Secret or
/// resource field.
pub fn process_spec(
    container: &Container,
    facts: PodFacts<'_>,
    port: u16,
) -> Result<ProcessSpec, SpecError> {
    let image = container.image.as_deref().unwrap_or_default();
    let executable = local_path(image).ok_or_else(|| SpecError::NotLocal(image.to_owned()))?;

    let mut env = BTreeMap::new();
    for inherited in ["HOME", "PATH"] {
        if let Ok(value) = std::env::var(inherited) {
            env.insert(inherited.to_owned(), value);
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(&field.field_path, facts).ok_or_else(|| {
                        SpecError::UnsupportedEnv {
                            name: var.name.clone(),
                            what: format!("fieldRef {}", field.field_path),
                        }
                    })?
                } else {
                    let what = if from.config_map_key_ref.is_some() {
                        "configMapKeyRef"
                    } else if from.secret_key_ref.is_some() {
                        "secretKeyRef"
                    } else {
                        "resourceFieldRef"
                    };
                    return Err(SpecError::UnsupportedEnv {
                        name: var.name.clone(),
                        what: what.to_owned(),
                    });
                }
            }
            (Some(value), None) => expand(value, &env),
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    env.insert("PORT".to_owned(), port.to_string());

    let mut words: Vec<String> = container.command.clone().unwrap_or_default();
    words.extend(container.args.iter().flatten().cloned());
    let mut words: Vec<String> = words.iter().map(|w| expand(w, &env)).collect();
    let program = if container.command.as_ref().is_some_and(|c| !c.is_empty()) {
        PathBuf::from(words.remove(0))
    } else {
        PathBuf::from(executable)
    };
    Ok(ProcessSpec {
        program,
        args: words,
        env,
        working_dir: container.working_dir.as_ref().map(PathBuf::from),
    })
}

fn field_value(path: &str, facts: PodFacts<'_>) -> Option<String> {
    let meta = &facts.pod.metadata;
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => facts.pod_ip.to_string(),
        "status.hostIP" => Ipv4Addr::LOCALHOST.to_string(),
        "spec.nodeName" => facts.node_name.to_owned(),
        "spec.serviceAccountName" => facts
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        _ => {
            let key = path
                .strip_prefix("metadata.labels['")
                .or_else(|| path.strip_prefix("metadata.annotations['"))?
                .strip_suffix("']")?;
            let map = if path.starts_with("metadata.labels") {
                meta.labels.as_ref()
            } else {
                meta.annotations.as_ref()
            };
            map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
        }
    })
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, and
/// anything else is left as written.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix("$(")
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    use serde_json::json;

    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "hello-abc", "namespace": "default", "uid": "u-1",
                          "labels": { "app": "hello" } },
            "spec": { "containers": [] },
        }))
        .unwrap()
    }

    fn facts(pod: &Pod) -> PodFacts<'_> {
        PodFacts {
            pod,
            pod_ip: Ipv4Addr::new(127, 0, 0, 7),
            node_name: "local",
        }
    }

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_absolute_local_images_are_local() {
        assert_eq!(local_path("local:///usr/bin/hello"), Some("/usr/bin/hello"));
        assert_eq!(local_path("local://hello"), None);
        assert_eq!(local_path("local:///"), None);
        assert_eq!(local_path("ghcr.io/knative/helloworld-go"), None);
    }

    #[test]
    fn the_image_is_the_entrypoint_with_args_env_and_the_chosen_port() {
        let pod = pod();
        let c = container(json!({
            "name": "user-container", "image": "local:///opt/hello",
            "args": ["--greeting", "$(TARGET)"],
            "env": [{ "name": "TARGET", "value": "Rust" }, { "name": "PORT", "value": "8080" }],
        }));
        let spec = process_spec(&c, facts(&pod), 40123).unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/hello"));
        assert_eq!(spec.args, ["--greeting", "Rust"]);
        assert_eq!(spec.env["TARGET"], "Rust");
        assert_eq!(spec.env["PORT"], "40123");
    }

    #[test]
    fn a_command_replaces_the_entrypoint() {
        let pod = pod();
        let c = container(json!({
            "name": "c", "image": "local:///opt/hello",
            "command": ["/bin/sh", "-c"], "args": ["echo hi"],
        }));
        let spec = process_spec(&c, facts(&pod), 1).unwrap();
        assert_eq!(spec.program, PathBuf::from("/bin/sh"));
        assert_eq!(spec.args, ["-c", "echo hi"]);
    }

    #[test]
    fn field_refs_read_the_pod() {
        let pod = pod();
        let field = |name: &str, path: &str| EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let mut c = container(json!({ "name": "c", "image": "local:///opt/hello" }));
        c.env = Some(vec![
            field("POD", "metadata.name"),
            field("IP", "status.podIP"),
            field("APP", "metadata.labels['app']"),
        ]);
        let spec = process_spec(&c, facts(&pod), 1).unwrap();
        assert_eq!(spec.env["POD"], "hello-abc");
        assert_eq!(spec.env["IP"], "127.0.0.7");
        assert_eq!(spec.env["APP"], "hello");
    }

    #[test]
    fn secrets_and_remote_images_are_refused_clearly() {
        let pod = pod();
        let remote = container(json!({ "name": "c", "image": "nginx" }));
        assert_eq!(
            process_spec(&remote, facts(&pod), 1)
                .unwrap_err()
                .to_string(),
            "image \"nginx\" is not a local executable (local:///absolute/path)"
        );
        let secret = container(json!({
            "name": "c", "image": "local:///opt/hello",
            "env": [{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }],
        }));
        assert_eq!(
            process_spec(&secret, facts(&pod), 1)
                .unwrap_err()
                .to_string(),
            "env TOKEN: secretKeyRef is not supported by the local runtime"
        );
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let env = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }
}
