//! The build-and-serve example (`examples/build-and-serve`), "git push → a running URL" on one
//! machine: a commit of a std-only Rust HTTP function in a local git repository is built by
//! `knative build run` with the example's Build and BuildTemplate, and the binary it copied out
//! is served by `knative local` as the example's Knative Service, through the gateway.
//!
//! The Build's steps run `git` and `cargo` (offline: the function has no dependencies); the
//! run.sh test also needs `kubectl` and `curl`, as the script does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use knative_serving::apis::Service;
use kube::api::Api;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One `knative local` at a time in this binary. Each `knative local` hands out the Pod
/// addresses 127.0.0.2, 127.0.0.3, ... on its own, so two at once give their first Pods the same
/// address: the second one's queue-proxy cannot listen there, and its gateway reaches the first
/// one's function (an answer from the wrong build, which the assertions below would catch).
static ONE_PLATFORM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the Build's and the Service's YAML point before a run writes its own paths over them.
const EXAMPLE_REPO_URL: &str = "file:///tmp/build-and-serve/repo";
const EXAMPLE_OUT_DIR: &str = "/tmp/build-and-serve/out";

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../build-and-serve")
        .join(file)
}

/// A git repository holding the example's function, committed; `edit` may change the sources
/// before the commit. Returns the commit, as the build names it (12 hex digits).
fn commit_function(repo: &Path, edit: impl FnOnce(&Path)) -> String {
    std::fs::create_dir_all(repo.join("src")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        std::fs::copy(example("function").join(file), repo.join(file)).unwrap();
    }
    edit(repo);
    git(repo, &["init", "--quiet", "--initial-branch=main"]);
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "greeter"]);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(head.status.success(), "git rev-parse HEAD");
    String::from_utf8(head.stdout).unwrap().trim().to_owned()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// `knative build run` of the example's Build (source: `repo`, binary to `out`) with its
/// BuildTemplate.
fn build(dir: &Path, repo: &Path, out: &Path) -> Output {
    let yaml = std::fs::read_to_string(example("build.yaml"))
        .unwrap()
        .replace(EXAMPLE_REPO_URL, &format!("file://{}", repo.display()))
        .replace(EXAMPLE_OUT_DIR, &out.display().to_string());
    let file = dir.join("build.yaml");
    std::fs::write(&file, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["build", "run", "-f"])
        .arg(&file)
        .arg("-f")
        .arg(example("template.yaml"))
        .output()
        .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `knative local`, stopped when dropped (a failed assertion included): SIGTERM, and
/// SIGKILL to it and every process under it if it has not ended 20 s later.
struct Platform {
    child: Child,
    dir: PathBuf,
    gateway: String,
}

impl Platform {
    fn start(dir: &Path) -> Self {
        let gateway = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_knative"))
            .args(["local", "--data-dir"])
            .arg(dir)
            .arg(format!("--gateway-addr={gateway}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("knative.log")).unwrap())
            .spawn()
            .unwrap();
        let platform = Self {
            child,
            dir: dir.to_owned(),
            gateway,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.join("kubeconfig").exists() {
            assert!(
                Instant::now() < deadline,
                "knative local wrote no kubeconfig in 30 s\n{}",
                platform.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        platform
    }

    fn apply(&self, file: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_knative"))
            .args(["local", "apply", "--data-dir"])
            .arg(&self.dir)
            .arg("-f")
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "apply failed: {}", describe(&out));
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.dir.join("kubeconfig")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The URL of the Service `name` once it is Ready.
    async fn ready_url(&self, name: &str) -> String {
        let services: Api<Service> = Api::namespaced(self.client().await, "default");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let service = services.get_opt(name).await.unwrap();
            let status = service.as_ref().and_then(|s| s.status.as_ref());
            if let Some(status) = status
                && status
                    .status
                    .get_condition("Ready")
                    .is_some_and(|c| c.is_true())
                && let Some(url) = &status.route.url
            {
                return url.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the Service {name} is not Ready after 60 s: {:#?}\n{}",
                status,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /` through the gateway with `Host: host`: the status line and the body.
    fn get(&self, host: &str) -> (String, String) {
        let mut stream = TcpStream::connect(&self.gateway).unwrap();
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
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, body.to_owned())
    }

    /// The platform's log, after the likely cause when it shows one.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("knative.log")).unwrap_or_default();
        if log.contains("queue-proxy cannot listen") {
            format!(
                "the Pod's queue-proxy could not listen on its address: another knative local on \
                 this machine runs a Pod on the same 127.0.0.x (each hands out addresses on its \
                 own), and this platform's gateway may reach that one's function\n{log}"
            )
        } else {
            log
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return;
        };
        // knative local stops its children and its Pods' processes itself on SIGTERM.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Collected before the kill: orphans are re-parented and could not be found after it.
        for process in descendants(pid) {
            let _ = kill(Pid::from_raw(process), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process under `root` (children, their children, ...), from `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        if let Some(ppid) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<i32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.split_off(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_built_by_knative_build_run_answers_through_the_gateway_as_a_knative_service() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, out, data) = (
        tmp.path().join("repo"),
        tmp.path().join("out"),
        tmp.path().join("platform"),
    );
    let commit = commit_function(&repo, |_| {});
    let built = build(tmp.path(), &repo, &out);
    assert!(
        built.status.success(),
        "the build failed: {}",
        describe(&built)
    );
    let binary = out.join("greeter");
    assert!(binary.is_file(), "no {} after the build", binary.display());

    std::fs::create_dir_all(&data).unwrap();
    let _alone = ONE_PLATFORM_AT_A_TIME.lock().await;
    let platform = Platform::start(&data);
    let service = tmp.path().join("service.yaml");
    std::fs::write(
        &service,
        std::fs::read_to_string(example("service.yaml"))
            .unwrap()
            .replace(EXAMPLE_OUT_DIR, &out.display().to_string()),
    )
    .unwrap();
    platform.apply(&service);
    let url = platform.ready_url("greeter").await;
    assert_eq!(url, "http://greeter.default.example.com");

    let (status, body) = platform.get("greeter.default.example.com");
    // TARGET is set only in service.yaml, the commit only by the build's compile step.
    assert_eq!(
        (status.as_str(), body.as_str()),
        (
            "HTTP/1.1 200 OK",
            format!("Hello Knative! (built from {commit})\n").as_str()
        ),
        "{}",
        platform.log()
    );
}

#[test]
fn a_commit_that_does_not_compile_fails_the_build_with_the_compilers_error_and_nothing_to_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, out) = (tmp.path().join("repo"), tmp.path().join("out"));
    commit_function(&repo, |repo| {
        let mut main = std::fs::OpenOptions::new()
            .append(true)
            .open(repo.join("src/main.rs"))
            .unwrap();
        writeln!(main, "fn broken() -> u8 {{ \"not a number\" }}").unwrap();
    });

    let built = build(tmp.path(), &repo, &out);
    assert_eq!(built.status.code(), Some(1), "{}", describe(&built));
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("error[E0308]: mismatched types")
            && stderr.contains("error: build \"greeter\" failed at step \"compile\""),
        "{}",
        describe(&built)
    );
    assert!(
        !out.join("greeter").exists(),
        "a failed build left a binary to serve"
    );
}

#[test]
fn run_sh_goes_from_a_commit_to_the_answer_of_the_function_built_from_it() {
    let _alone = ONE_PLATFORM_AT_A_TIME.blocking_lock();
    let run = Command::new("bash")
        .arg(example("run.sh"))
        .env("KNATIVE", env!("CARGO_BIN_EXE_knative"))
        .env_remove("KEEP")
        .output()
        .unwrap();
    assert!(run.status.success(), "run.sh failed: {}", describe(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let commit = stderr
        .lines()
        .find_map(|line| line.strip_prefix("[build-and-serve]    commit "))
        .unwrap_or_else(|| panic!("run.sh named no commit: {}", describe(&run)));
    assert!(
        stdout
            .lines()
            .any(|line| line == format!("Hello Knative! (built from {commit})")),
        "{}",
        describe(&run)
    );
}
