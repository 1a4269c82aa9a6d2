//! `knative local` as a child process for the tests: start, apply YAML, talk to its API server
//! and its gateway, stop or restart it.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use knative_serving::apis::Service;
use kube::api::{Api, ListParams};

/// The `hello` example built next to `knative` (`cargo build -p hello`).
pub fn hello_binary() -> PathBuf {
    let knative = Path::new(env!("CARGO_BIN_EXE_knative"));
    let hello = knative.with_file_name("hello");
    assert!(
        hello.is_file(),
        "{} is missing: run `cargo build -p hello` first",
        hello.display()
    );
    hello
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Knative's shortest autoscaling windows (6 s + 6 s), and zero initial scale allowed:
/// `examples/manifests/config-autoscaler-fast.yaml`.
pub const FAST_AUTOSCALER: &str = include_str!("../../../manifests/config-autoscaler-fast.yaml");

/// A running `knative local` with its own data directory and gateway port.
pub struct Platform {
    /// The `knative local` process.
    pub child: Child,
    /// Its data directory (store, kubeconfig, logs).
    pub dir: tempfile::TempDir,
    /// Where its gateway listens.
    pub gateway: String,
    starts: u32,
}

impl Platform {
    /// Starts `knative local` and waits for its kubeconfig.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let gateway = format!("127.0.0.1:{}", free_port());
        let child = spawn(dir.path(), &gateway, 0);
        let platform = Self {
            child,
            dir,
            gateway,
            starts: 1,
        };
        platform.wait_for_kubeconfig();
        platform
    }

    fn wait_for_kubeconfig(&self) {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(
                Instant::now() < deadline,
                "no kubeconfig after 30 s\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the platform with SIGTERM and waits for it to exit, successfully.
    pub fn stop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "knative local still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}\n{}", self.log());
    }

    /// Starts the platform again on the same data directory (after [`Platform::stop`]).
    pub fn restart(&mut self) {
        std::fs::remove_file(self.dir.path().join("kubeconfig")).unwrap();
        self.child = spawn(self.dir.path(), &self.gateway, self.starts);
        self.starts += 1;
        self.wait_for_kubeconfig();
    }

    /// `knative local apply -f` of `yaml`.
    pub fn apply(&self, yaml: &str) {
        let file = self.dir.path().join("apply.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_knative"))
            .args(["local", "apply", "--data-dir"])
            .arg(self.dir.path())
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A client of the platform's API server.
    pub async fn client(&self) -> kube::Client {
        let config =
            kube::config::Kubeconfig::read_from(self.dir.path().join("kubeconfig")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            config,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// What the platform wrote to stderr (every start of it).
    pub fn log(&self) -> String {
        let mut log = String::new();
        for start in 0..self.starts.max(1) {
            log.push_str(
                &std::fs::read_to_string(self.dir.path().join(format!("stderr-{start}.log")))
                    .unwrap_or_default(),
            );
        }
        // The tail is what matters in a failure message.
        let mut keep = log.len().saturating_sub(20_000);
        while !log.is_char_boundary(keep) {
            keep += 1;
        }
        log.split_off(keep)
    }

    /// `GET /` through the gateway with `Host: host`: the status code and body.
    pub fn get(&self, host: &str) -> (u16, String) {
        get(&self.gateway, host)
    }

    /// Waits until the Knative Service `name` in `default` is Ready, and returns its URL's host.
    pub async fn wait_ready(&self, name: &str) -> String {
        let services: Api<Service> = Api::namespaced(self.client().await, "default");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let service = services.get_opt(name).await.ok().flatten();
            if let Some(status) = service.and_then(|s| s.status) {
                let ready = status
                    .status
                    .get_condition("Ready")
                    .is_some_and(|c| c.is_true());
                if let (true, Some(url)) = (ready, status.route.url) {
                    return url.trim_start_matches("http://").to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "Service {name} not Ready after 60 s\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `probe` every 100 ms until it yields a value; fails after `patience` with the
    /// platform's log.
    pub async fn eventually<T>(
        &self,
        what: &str,
        patience: Duration,
        probe: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        knative_core::testing::envtest::eventually_within(patience, probe)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "timed out after {patience:?} waiting for {what}\n{}",
                    self.log()
                )
            })
    }

    /// The running Pods of `revision`.
    pub async fn pods(&self, revision: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client().await, "default");
        pods.list(
            &ListParams::default().labels(&format!("serving.knative.dev/revision={revision}")),
        )
        .await
        .unwrap()
        .items
    }
}

fn spawn(dir: &Path, gateway: &str, start: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["local", "--data-dir"])
        .arg(dir)
        .arg(format!("--gateway-addr={gateway}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("stderr-{start}.log"))).unwrap())
        .spawn()
        .unwrap()
}

impl Drop for Platform {
    /// SIGTERM, so the platform stops its children and Pods, then SIGKILL after 20 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes named `name` whose parent is `parent` (zombies excluded).
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid: u32 = rest
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let named = comm.split_once('(').is_some_and(|(_, c)| c == name);
        if named && ppid == parent && !rest.starts_with('Z') {
            pids.push(pid);
        }
    }
    pids
}

/// The `hello` processes whose parent is `parent`.
pub fn hello_children(parent: u32) -> Vec<u32> {
    children_named(parent, "hello")
}

/// Whether `pid` runs (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .split_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// `GET /` on `addr` with `Host: host` over HTTP/1.1: the status code (0 when the exchange
/// failed) and the body.
pub fn get(addr: &str, host: &str) -> (u16, String) {
    let exchange = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    match exchange() {
        Ok(response) => {
            let status = response
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
            (status, body)
        }
        Err(e) => (0, e.to_string()),
    }
}

/// A Knative Service `name` running `hello` with `TARGET=target`, in `default`.
pub fn hello_service(name: &str, target: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(k, v)| format!("        {k}: \"{v}\"\n"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("    metadata:\n      annotations:\n{annotations}")
    };
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  template:\n{annotations}    spec:\n      containers:\n        - image: local://{}\n          env:\n            - name: TARGET\n              value: {target}\n",
        hello_binary().display()
    )
}
