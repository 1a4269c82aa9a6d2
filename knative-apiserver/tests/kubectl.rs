//! kubectl against the embedded server, through the kubeconfig it writes: apply (client-side,
//! then again as a strategic merge patch), server-side apply, get, CRDs and their kinds,
//! delete. kubectl is taken from `KUBECTL`, else the test environment's cache
//! (`$ENVTEST_CACHE/bin`, default `~/.cache/envtest/bin`, filled by `scripts/envtest.sh up`),
//! else `PATH`.

use knative_apiserver::{ApiServer, RunningApiServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn kubectl_binary() -> PathBuf {
    if let Ok(path) = std::env::var("KUBECTL") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("ENVTEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/envtest")
        });
    let cached = cache.join("bin/kubectl");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("kubectl")
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    _server: RunningApiServer,
    _dir: TempDir,
}

impl Kubectl {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let server = ApiServer::builder()
            .write_kubeconfig(&kubeconfig)
            .start()
            .await
            .unwrap();
        Self {
            binary: kubectl_binary(),
            kubeconfig,
            _server: server,
            _dir: dir,
        }
    }

    /// Runs kubectl with `stdin`; returns stdout, panicking with stderr on failure.
    async fn run(&self, args: &[&str], stdin: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {:?}: {e}; set KUBECTL or run scripts/envtest.sh up",
                    self.binary
                )
            });
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    async fn get_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&all, "").await).unwrap()
    }
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: example.com/app:1
        ports: [{containerPort: 8080}]
";

#[tokio::test]
async fn kubectl_apply_creates_then_patches_a_deployment() {
    let kubectl = Kubectl::start().await;
    kubectl.run(&["apply", "-f", "-"], DEPLOYMENT).await;
    let changed = DEPLOYMENT
        .replace("app:1", "app:2")
        .replace("replicas: 1", "replicas: 2");
    kubectl.run(&["apply", "-f", "-"], &changed).await;
    let web = kubectl.get_json(&["get", "deployment", "web"]).await;
    assert_eq!(web["metadata"]["generation"], 2);
    assert_eq!(web["spec"]["replicas"], 2);
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "example.com/app:2");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
}

#[tokio::test]
async fn kubectl_server_side_apply_and_delete() {
    let kubectl = Kubectl::start().await;
    kubectl
        .run(&["apply", "--server-side", "-f", "-"], DEPLOYMENT)
        .await;
    let web = kubectl.get_json(&["get", "deploy", "web"]).await;
    assert_eq!(web["spec"]["replicas"], 1);
    kubectl.run(&["delete", "deployment", "web"], "").await;
    let left = kubectl.get_json(&["get", "deployments"]).await;
    assert_eq!(left["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn kubectl_serves_the_kinds_of_an_applied_crd() {
    let kubectl = Kubectl::start().await;
    let crd = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";
    kubectl.run(&["apply", "-f", "-"], crd).await;
    let widget = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 1}
";
    kubectl.run(&["apply", "-f", "-"], widget).await;
    kubectl
        .run(&["apply", "-f", "-"], &widget.replace("size: 1", "size: 2"))
        .await;
    let w1 = kubectl.get_json(&["get", "wd", "w1"]).await;
    assert_eq!(w1["spec"]["size"], 2);
    assert_eq!(w1["metadata"]["generation"], 2);
}

#[tokio::test]
async fn kubectl_lists_namespaces_from_the_written_kubeconfig() {
    let kubectl = Kubectl::start().await;
    assert!(Path::new(&kubectl.kubeconfig).exists());
    let names = kubectl.run(&["get", "namespaces", "-o", "name"], "").await;
    assert_eq!(names, "namespace/default\nnamespace/kube-system\n");
}
