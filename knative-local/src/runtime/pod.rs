//! One Pod on the process runtime: its processes, port forwards, sidecars, probes and status.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::spec::{PodFacts, local_path, process_spec};
use super::{Sidecar, SidecarContext};

/// The restart delay after a container exits: doubling from this, as the kubelet's back-off
/// (which starts at 10 s; a local platform wants its functions back sooner).
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
/// The longest restart delay.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// How often an unready container is probed, whatever its `periodSeconds`: a Pod is ready as
/// soon as it answers, which is what a local cold start is timed by.
const FAST_PROBE_PERIOD: Duration = Duration::from_millis(25);
/// The first wait after a process starts while its Pod is not ready; it doubles up to
/// [`FAST_PROBE_PERIOD`]. A small function is ready a millisecond or two after it starts, and
/// waiting a whole period for it would be most of a cold start.
const FIRST_UNREADY_WAIT: Duration = Duration::from_millis(1);

/// One container's process and what the runtime knows of it.
struct Running {
    container: Container,
    child: Option<Child>,
    port: u16,
    restarts: i32,
    started_at: Option<Timestamp>,
    last_exit: Option<(i32, Timestamp)>,
    next_start: Option<tokio::time::Instant>,
    ready: bool,
    last_probe: Option<tokio::time::Instant>,
    failure: Option<String>,
}

/// Runs `pod` at `ip` until `stop` turns true, writing its status; then stops its processes
/// within the Pod's grace period.
pub(super) async fn run_pod(
    client: Client,
    pod: Pod,
    ip: Ipv4Addr,
    node_name: String,
    log_dir: std::path::PathBuf,
    sidecars: Arc<Vec<Arc<dyn Sidecar>>>,
    mut stop: watch::Receiver<bool>,
) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let start_time = Timestamp::now();

    let mut running = Vec::new();
    let mut tasks = JoinSet::new();
    let (stop_tasks, tasks_stopped) = watch::channel(false);
    for container in &containers {
        if local_path(container.image.as_deref().unwrap_or_default()).is_none() {
            continue;
        }
        let port = free_port().unwrap_or(0);
        // The container's declared ports on the Pod's address lead to its process.
        for declared in container.ports.iter().flatten() {
            let Ok(port_number) = u16::try_from(declared.container_port) else {
                continue;
            };
            let listen = SocketAddr::from((ip, port_number));
            match TcpListener::bind(listen).await {
                Ok(listener) => {
                    tasks.spawn(forward(listener, port, tasks_stopped.clone()));
                }
                Err(e) => {
                    tracing::warn!(pod = %name, %listen, error = %e, "cannot forward a container port")
                }
            }
        }
        running.push(Running {
            container: container.clone(),
            child: None,
            port,
            restarts: 0,
            started_at: None,
            last_exit: None,
            next_start: Some(tokio::time::Instant::now()),
            ready: false,
            last_probe: None,
            failure: None,
        });
    }
    let user_port = running.first().map_or(0, |r| r.port);
    let mut sidecar_containers = Vec::new();
    for container in &containers {
        if let Some(sidecar) = sidecars.iter().find(|s| s.handles(container)) {
            let ctx = SidecarContext {
                pod: pod.clone(),
                container: container.clone(),
                pod_ip: ip,
                user_port,
            };
            let sidecar = sidecar.clone();
            let stopped = tasks_stopped.clone();
            tasks.spawn(async move {
                if let Err(e) = sidecar.run(ctx, stopped).await {
                    tracing::warn!(error = %e, "sidecar failed");
                }
            });
            sidecar_containers.push((container.clone(), false));
        }
    }

    let mut last_status = Value::Null;
    // The first pass starts the processes at once.
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let now = tokio::time::Instant::now();
        let mut started = false;
        let facts = PodFacts {
            pod: &pod,
            pod_ip: ip,
            node_name: &node_name,
        };
        for r in &mut running {
            // Reap an exited process and schedule its restart.
            if let Some(child) = &mut r.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let code = status.code().unwrap_or(128 + 9);
                tracing::info!(pod = %name, container = %r.container.name, code, "container exited");
                r.child = None;
                r.ready = false;
                r.last_exit = Some((code, Timestamp::now()));
                r.restarts += 1;
                let delay = FIRST_RESTART_DELAY
                    .saturating_mul(1 << (r.restarts - 1).clamp(0, 10))
                    .min(MAX_RESTART_DELAY);
                r.next_start = Some(now + delay);
            }
            if r.child.is_none() && r.next_start.is_some_and(|t| t <= now) {
                r.next_start = None;
                match process_spec(&r.container, facts, r.port) {
                    Ok(spec) => {
                        match spawn(&spec, &log_dir, &namespace, &name, &r.container.name).await {
                            Ok(child) => {
                                r.child = Some(child);
                                started = true;
                                r.started_at = Some(Timestamp::now());
                                r.failure = None;
                            }
                            Err(e) => {
                                r.failure = Some(format!("cannot start {:?}: {e}", spec.program));
                                r.restarts += 1;
                                r.next_start =
                                    Some(now + MAX_RESTART_DELAY.min(FIRST_RESTART_DELAY * 4));
                            }
                        }
                    }
                    Err(e) => r.failure = Some(e.to_string()),
                }
            }
            if r.child.is_some() && probe_due(&r.container, r.ready, r.last_probe, now) {
                r.last_probe = Some(now);
                r.ready = probe(
                    r.container.readiness_probe.as_ref(),
                    ip,
                    r.port,
                    &r.container,
                )
                .await;
            }
        }
        for (container, ready) in &mut sidecar_containers {
            *ready = probe(container.readiness_probe.as_ref(), ip, 0, container).await;
        }
        let all_ready =
            running.iter().all(|r| r.ready) && sidecar_containers.iter().all(|(_, ready)| *ready);
        wait = next_wait(wait, started, all_ready);
        let status = pod_status(&running, &sidecar_containers, ip, start_time);
        if status != last_status {
            let patch = json!({ "status": status });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => last_status = status,
                Err(kube::Error::Api(s)) if s.is_not_found() => break,
                Err(e) => tracing::warn!(pod = %name, error = %e, "cannot write the pod status"),
            }
        }
    }

    // Stop: SIGTERM every process group, SIGKILL what is left after the grace period.
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .clamp(0, 300);
    let _ = stop_tasks.send(true);
    for r in &mut running {
        if let Some(child) = &r.child
            && let Some(pid) = child.id()
        {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace as u64);
    for r in &mut running {
        if let Some(child) = &mut r.child
            && tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            && let Some(pid) = child.id()
        {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(grace as u64 + 1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// The wait before the next pass of a Pod's loop: [`FAST_PROBE_PERIOD`] once everything is
/// ready; while something is not, [`FIRST_UNREADY_WAIT`] after a process (re)started, doubling
/// from there.
fn next_wait(previous: Duration, started: bool, all_ready: bool) -> Duration {
    if all_ready {
        FAST_PROBE_PERIOD
    } else if started {
        FIRST_UNREADY_WAIT
    } else {
        (previous * 2).clamp(FIRST_UNREADY_WAIT, FAST_PROBE_PERIOD)
    }
}

fn probe_due(
    container: &Container,
    ready: bool,
    last: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
) -> bool {
    if !ready {
        return true;
    }
    let period = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.period_seconds)
        .filter(|p| *p > 0)
        .unwrap_or(10);
    last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(period as u64))
}

/// One readiness probe of `container` (no probe: ready while running).
async fn probe(probe: Option<&Probe>, ip: Ipv4Addr, own_port: u16, container: &Container) -> bool {
    let Some(probe) = probe else {
        return true;
    };
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(p) => u16::try_from(*p).ok(),
            IntOrString::String(named) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(named))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let check = async {
        if let Some(get) = &probe.http_get {
            let Some(port) = port_of(&get.port) else {
                return false;
            };
            let host = ip.to_string();
            let path = get.path.as_deref().unwrap_or("/");
            let mut request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.20\r\nConnection: close\r\n"
            );
            for header in get.http_headers.iter().flatten() {
                request.push_str(&format!("{}: {}\r\n", header.name, header.value));
            }
            request.push_str("\r\n");
            let Ok(mut stream) = TcpStream::connect((ip, port)).await else {
                return false;
            };
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            let mut buf = [0u8; 16];
            let mut read = 0;
            while read < 12 {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut buf[read..]).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => read += n,
                }
            }
            // "HTTP/1.1 2xx" or 3xx counts as success, as the kubelet's.
            matches!(buf[9], b'2' | b'3')
        } else if let Some(tcp) = &probe.tcp_socket {
            match port_of(&tcp.port) {
                Some(port) => TcpStream::connect((ip, port)).await.is_ok(),
                None => false,
            }
        } else if let Some(exec) = &probe.exec {
            let Some((program, args)) = exec.command.as_deref().and_then(<[String]>::split_first)
            else {
                return false;
            };
            Command::new(program)
                .args(args)
                .env("PORT", own_port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success())
        } else {
            true
        }
    };
    tokio::time::timeout(timeout, check).await.unwrap_or(false)
}

async fn spawn(
    spec: &super::spec::ProcessSpec,
    log_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
) -> std::io::Result<Child> {
    tokio::fs::create_dir_all(log_dir).await?;
    let log_path = log_dir.join(format!("{namespace}_{pod}_{container}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    command.spawn()
}

/// Forwards connections on `listener` to `127.0.0.1:port` until `stopped`.
async fn forward(listener: TcpListener, port: u16, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            _ = stopped.changed() => {
                if *stopped.borrow() {
                    return;
                }
            }
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn time(t: Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

/// The Pod status the runtime reports (kubelet's shape).
fn pod_status(
    running: &[Running],
    sidecars: &[(Container, bool)],
    ip: Ipv4Addr,
    start_time: Timestamp,
) -> Value {
    let mut statuses = Vec::new();
    let mut all_ready = true;
    for r in running {
        let state = match (&r.child, &r.failure, r.last_exit) {
            (Some(_), _, _) => json!({ "running": { "startedAt": r.started_at.map(time) } }),
            (None, Some(message), _) => {
                json!({ "waiting": { "reason": "CreateContainerError", "message": message } })
            }
            (None, None, Some(_)) if r.restarts > 1 => {
                json!({ "waiting": { "reason": "CrashLoopBackOff" } })
            }
            (None, None, _) => json!({ "waiting": { "reason": "ContainerCreating" } }),
        };
        let mut status = json!({
            "name": r.container.name,
            "image": r.container.image,
            "imageID": "",
            "ready": r.ready,
            "started": r.child.is_some(),
            "restartCount": r.restarts,
            "state": state,
        });
        if let Some((code, at)) = r.last_exit {
            status["lastState"] = json!({ "terminated": {
                "exitCode": code,
                "reason": if code == 0 { "Completed" } else { "Error" },
                "finishedAt": time(at),
            }});
        }
        all_ready &= r.ready;
        statuses.push(status);
    }
    for (container, ready) in sidecars {
        all_ready &= *ready;
        statuses.push(json!({
            "name": container.name, "image": container.image, "imageID": "",
            "ready": ready, "started": true, "restartCount": 0,
            "state": { "running": { "startedAt": time(start_time) } },
        }));
    }
    let condition = |type_: &str, ok: bool| json!({ "type": type_, "status": if ok { "True" } else { "False" } });
    let ip = ip.to_string();
    json!({
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "startTime": time(start_time),
        "conditions": [
            condition("PodScheduled", true),
            condition("Initialized", true),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
        ],
        "containerStatuses": statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_unready_pod_is_passed_again_after_1_ms_doubling_to_the_probe_period() {
        let mut wait = next_wait(Duration::ZERO, true, false);
        let mut waits = vec![wait];
        for _ in 0..6 {
            wait = next_wait(wait, false, false);
            waits.push(wait);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 25, 25].map(ms));
    }

    #[test]
    fn a_ready_pod_is_passed_every_probe_period() {
        assert_eq!(next_wait(ms(2), false, true), FAST_PROBE_PERIOD);
        assert_eq!(next_wait(Duration::ZERO, true, true), FAST_PROBE_PERIOD);
    }

    #[test]
    fn a_restart_of_a_crashed_container_starts_the_fast_waits_over() {
        assert_eq!(next_wait(FAST_PROBE_PERIOD, true, false), ms(1));
    }
}
