//! Knative's queue-proxy as an in-process container of the [process runtime](crate::runtime).
//!
//! Revision Pods carry a container named `queue-proxy`; on a cluster it runs Knative's image.
//! [`QueueProxySidecar`] runs [`knative_serving::dataplane::queue::QueueProxy`] instead, in the
//! runtime's process, configured from the container's `env` as on a cluster, with three local
//! adjustments: it listens on the Pod's address (each Pod has its own 127.0.0.x); it forwards
//! to the port the user container's process actually listens on (the runtime gives each process
//! its own `PORT`), including in `SERVING_READINESS_PROBE` where that names the declared
//! `USER_PORT`; and its aggressive readiness probe is first retried after 1 ms rather than 50 ms
//! ([`Readiness::with_first_retry`](knative_serving::dataplane::probe::Readiness::with_first_retry)):
//! a local process is ready in milliseconds.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use knative_serving::dataplane::queue::{QueueConfig, QueueProxy};
use serde_json::Value;
use tokio::sync::watch;

use crate::runtime::{Sidecar, SidecarContext};

/// The name of Knative's queue-proxy container in Revision Pods.
pub const QUEUE_PROXY_CONTAINER: &str = "queue-proxy";

/// Runs the `queue-proxy` container of Revision Pods in-process; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct QueueProxySidecar {
    drain_quiet_period: Duration,
}

impl Default for QueueProxySidecar {
    fn default() -> Self {
        Self {
            drain_quiet_period: Duration::from_secs(1),
        }
    }
}

impl QueueProxySidecar {
    /// A sidecar whose proxies, when their Pod stops, drain for `quiet` with no new request
    /// before closing (Knative's default is 30 s; locally 1 s is enough, as Endpoints change at
    /// once).
    pub fn with_drain_quiet_period(quiet: Duration) -> Self {
        Self {
            drain_quiet_period: quiet,
        }
    }
}

/// The queue-proxy configuration of `container` in a Pod at `pod_ip` whose user process listens
/// on `127.0.0.1:user_port`.
///
/// # Errors
/// The container's env is not a valid queue-proxy configuration (the message names the
/// variable).
pub fn queue_config(
    container: &Container,
    pod_ip: IpAddr,
    user_port: u16,
    drain_quiet_period: Duration,
) -> Result<QueueConfig, String> {
    let mut env: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    let declared: Option<u16> = env.get("USER_PORT").and_then(|p| p.trim().parse().ok());
    if let (Some(declared), Some(probe)) = (declared, env.get_mut("SERVING_READINESS_PROBE"))
        && let Ok(mut json) = serde_json::from_str::<Value>(probe)
    {
        retarget_port(&mut json, declared, user_port);
        *probe = json.to_string();
    }
    env.insert("USER_PORT".to_owned(), user_port.to_string());
    env.insert("SERVING_POD_IP".to_owned(), pod_ip.to_string());
    let mut config = QueueConfig::from_lookup(|name| env.get(name).cloned())
        .map_err(|e| format!("queue-proxy configuration: {e}"))?;
    config.listen_address = pod_ip;
    config.drain_quiet_period = drain_quiet_period;
    // A local process is ready in milliseconds: retry the aggressive probe after 1 ms, 2, 4 ...
    // instead of first after 50 ms, which was most of a cold start here.
    config.readiness_first_retry = Some(Duration::from_millis(1));
    Ok(config)
}

/// Replaces every `"port": from` in a probe with `to`.
fn retarget_port(json: &mut Value, from: u16, to: u16) {
    match json {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "port" && value.as_u64() == Some(u64::from(from)) {
                    *value = Value::from(to);
                } else {
                    retarget_port(value, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| retarget_port(v, from, to)),
        _ => {}
    }
}

#[async_trait::async_trait]
impl Sidecar for QueueProxySidecar {
    fn handles(&self, container: &Container) -> bool {
        container.name == QUEUE_PROXY_CONTAINER
    }

    async fn run(
        &self,
        ctx: SidecarContext,
        mut stopped: watch::Receiver<bool>,
    ) -> Result<(), String> {
        if ctx.user_port == 0 {
            return Err("queue-proxy: the Pod has no local user container".to_owned());
        }
        let config = queue_config(
            &ctx.container,
            IpAddr::V4(ctx.pod_ip),
            ctx.user_port,
            self.drain_quiet_period,
        )?;
        let proxy = QueueProxy::new(config);
        let listeners = proxy
            .bind()
            .await
            .map_err(|e| format!("queue-proxy cannot listen on {}: {e}", ctx.pod_ip))?;
        proxy
            .serve(listeners, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| format!("queue-proxy: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;
    use knative_serving::dataplane::probe::ProbeAction;

    fn container(env: &[(&str, &str)]) -> Container {
        Container {
            name: QUEUE_PROXY_CONTAINER.to_owned(),
            env: Some(
                env.iter()
                    .map(|(k, v)| EnvVar {
                        name: (*k).to_owned(),
                        value: Some((*v).to_owned()),
                        value_from: None,
                    })
                    .collect(),
            ),
            ..Container::default()
        }
    }

    fn ip() -> IpAddr {
        "127.0.0.7".parse().unwrap()
    }

    #[test]
    fn the_proxy_listens_on_the_pod_address_and_forwards_to_the_process_port() {
        let c = container(&[
            ("USER_PORT", "8080"),
            ("QUEUE_SERVING_PORT", "8012"),
            ("SERVING_REVISION", "hello-00001"),
            ("CONTAINER_CONCURRENCY", "3"),
        ]);
        let config = queue_config(&c, ip(), 40123, Duration::from_secs(1)).unwrap();
        assert_eq!(config.listen_address, ip());
        assert_eq!(config.user_port, 40123);
        assert_eq!(config.queue_serving_port, 8012);
        assert_eq!(config.revision, "hello-00001");
        assert_eq!(config.container_concurrency, 3);
    }

    #[test]
    fn a_readiness_probe_on_the_declared_user_port_probes_the_process_port() {
        let c = container(&[
            ("USER_PORT", "8080"),
            (
                "SERVING_READINESS_PROBE",
                r#"{"tcpSocket":{"port":8080,"host":"127.0.0.1"},"successThreshold":1}"#,
            ),
        ]);
        let config = queue_config(&c, ip(), 40123, Duration::from_secs(1)).unwrap();
        match &config.readiness_probes[0].action {
            ProbeAction::Tcp { address } => assert_eq!(address, "127.0.0.1:40123"),
            other => panic!("expected a TCP probe, got {other:?}"),
        }
    }

    #[test]
    fn the_local_queue_proxy_retries_its_aggressive_probe_after_1ms() {
        let c = container(&[("USER_PORT", "8080")]);
        let config = queue_config(&c, ip(), 40123, Duration::from_secs(1)).unwrap();
        assert_eq!(config.readiness_first_retry, Some(Duration::from_millis(1)));
    }

    #[test]
    fn an_invalid_env_is_refused_with_the_variable_named() {
        let c = container(&[("USER_PORT", "8080"), ("CONTAINER_CONCURRENCY", "many")]);
        let error = queue_config(&c, ip(), 40123, Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("CONTAINER_CONCURRENCY"), "{error}");
    }

    #[test]
    fn only_the_queue_proxy_container_is_handled() {
        let sidecar = QueueProxySidecar::default();
        assert!(sidecar.handles(&container(&[])));
        let user = Container {
            name: "user-container".to_owned(),
            ..Container::default()
        };
        assert!(!sidecar.handles(&user));
    }
}
