//! `knative local` as a process: a Knative Service of `image: local://<hello>` gets its Pod run
//! by the process runtime with the in-process queue-proxy in front, and SIGTERM ends every
//! process of the platform.
//!
//! Needs the `hello` example built next to `knative` (`cargo build -p hello`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

fn hello_binary() -> PathBuf {
    let knative = Path::new(env!("CARGO_BIN_EXE_knative"));
    let hello = knative.with_file_name("hello");
    assert!(
        hello.is_file(),
        "{} is missing: run `cargo build -p hello` first",
        hello.display()
    );
    hello
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Platform {
    child: Child,
    dir: tempfile::TempDir,
}

impl Platform {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_knative"))
            .args(["local", "--data-dir"])
            .arg(dir.path())
            .arg(format!("--gateway-addr=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "no kubeconfig after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir }
    }

    fn apply(&self, yaml: &str) {
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

    async fn client(&self) -> kube::Client {
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `hello` processes whose parent is `parent`.
fn hello_children(parent: u32) -> Vec<u32> {
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
        if comm.ends_with("(hello") && ppid == parent {
            pids.push(pid);
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .split_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

fn get(addr: &str, host: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_service_runs_behind_the_queue_proxy_and_sigterm_ends_every_process() {
    let hello = hello_binary();
    let platform = Platform::start();
    platform.apply(&format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - image: local://{}\n",
        hello.display()
    ));
    let client = platform.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = deployments
            .get_opt("hello-00001-deployment")
            .await
            .unwrap()
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas);
        if ready == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Revision's Deployment is not ready after 60 s\n{}",
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = pods
        .list(&ListParams::default().labels("serving.knative.dev/revision=hello-00001"))
        .await
        .unwrap()
        .items
        .pop()
        .expect("a Pod of the revision");
    let ip = pod.status.and_then(|s| s.pod_ip).expect("a Pod IP");
    let response = get(&format!("{ip}:8012"), "hello.default.example.com");
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("Hello World!\n"),
        "{response}"
    );

    let pid = platform.child.id();
    let hellos = hello_children(pid);
    assert_eq!(hellos.len(), 1, "one hello process under knative local");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut platform = platform;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = platform.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "knative local still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", platform.log());
    assert!(
        hellos.iter().all(|p| !alive(*p)),
        "hello processes left: {hellos:?}"
    );
}
