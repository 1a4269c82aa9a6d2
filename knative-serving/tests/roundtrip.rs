//! Knative's own YAML reads into our types, validates, and writes back unchanged.

use knative_serving::apis::{
    Configuration, Ingress, PodAutoscaler, Revision, Route, ServerlessService, Service, Validate,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Reads `yaml` as `T` and checks that it serialises back to the same JSON document.
fn round_trip<T: Serialize + DeserializeOwned>(yaml: &str) -> T {
    let document: Value = serde_yaml::from_str(yaml).expect("valid YAML");
    let object: T = serde_json::from_value(document.clone()).expect("deserialises");
    let written = serde_json::to_value(&object).expect("serialises");
    assert_eq!(written, document, "round trip changed the document");
    object
}

/// `helloworld-go` from Knative's getting-started guide.
const HELLOWORLD_GO: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "World"
"#;

#[test]
fn helloworld_go_from_the_getting_started_guide_round_trips_and_validates() {
    let ksvc: Service = round_trip(HELLOWORLD_GO);
    ksvc.validate().expect("valid");
    let container = &ksvc.spec.configuration.template.spec.pod_spec.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/knative/helloworld-go:latest")
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
    assert_eq!(
        container.env.as_ref().unwrap()[0].value.as_deref(),
        Some("World")
    );
    assert!(ksvc.spec.route.traffic.is_empty());
}

#[test]
fn the_traffic_split_of_the_getting_started_guide_round_trips_and_validates() {
    let ksvc: Service = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "Knative"
  traffic:
  - latestRevision: true
    percent: 50
  - latestRevision: false
    percent: 50
    revisionName: hello-00001
"#,
    );
    ksvc.validate().expect("valid");
    let traffic = &ksvc.spec.route.traffic;
    assert_eq!(traffic[1].revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(traffic[1].latest_revision, Some(false));
}

#[test]
fn tagged_traffic_targets_from_the_traffic_management_docs_round_trip_and_validate() {
    let ksvc: Service = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: example-service
  namespace: default
spec:
  template:
    metadata:
      name: example-service-2
      annotations:
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/target: "10"
    spec:
      containerConcurrency: 50
      timeoutSeconds: 120
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
  traffic:
  - tag: current
    revisionName: example-service-1
    percent: 50
  - tag: candidate
    revisionName: example-service-2
    percent: 50
  - tag: latest
    latestRevision: true
    percent: 0
"#,
    );
    ksvc.validate().expect("valid");
    let tags: Vec<_> = ksvc
        .spec
        .route
        .traffic
        .iter()
        .filter_map(|t| t.tag.as_deref())
        .collect();
    assert_eq!(tags, ["current", "candidate", "latest"]);
}

#[test]
fn a_service_read_back_from_the_cluster_round_trips_with_its_status() {
    let ksvc: Service = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
  generation: 2
  annotations:
    serving.knative.dev/creator: admin
    serving.knative.dev/lastModifier: admin
spec:
  template:
    spec:
      containerConcurrency: 0
      timeoutSeconds: 300
      enableServiceLinks: false
      containers:
        - name: user-container
          image: ghcr.io/knative/helloworld-go:latest
          readinessProbe:
            tcpSocket:
              port: 0
            successThreshold: 1
          resources: {}
  traffic:
  - latestRevision: true
    percent: 100
status:
  observedGeneration: 2
  conditions:
  - type: ConfigurationsReady
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  - type: Ready
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:01Z"
  - type: RoutesReady
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:01Z"
  latestCreatedRevisionName: hello-00002
  latestReadyRevisionName: hello-00002
  url: http://hello.default.example.com
  address:
    url: http://hello.default.svc.cluster.local
  traffic:
  - latestRevision: true
    percent: 100
    revisionName: hello-00002
"#,
    );
    let status = ksvc.status.expect("a status");
    assert_eq!(
        status.configuration.latest_ready_revision_name.as_deref(),
        Some("hello-00002")
    );
    assert_eq!(
        status.route.address.and_then(|a| a.url).as_deref(),
        Some("http://hello.default.svc.cluster.local")
    );
    assert_eq!(
        status
            .status
            .get_condition("Ready")
            .map(|c| c.type_.as_str()),
        Some("Ready")
    );
}

#[test]
fn a_revision_as_knative_creates_it_round_trips() {
    let rev: Revision = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Revision
metadata:
  name: hello-00001
  namespace: default
  labels:
    serving.knative.dev/configuration: hello
    serving.knative.dev/configurationGeneration: "1"
    serving.knative.dev/service: hello
  annotations:
    autoscaling.knative.dev/max-scale: "10"
  ownerReferences:
  - apiVersion: serving.knative.dev/v1
    kind: Configuration
    name: hello
    uid: 9b3d2c1e-0000-4000-8000-000000000001
    controller: true
    blockOwnerDeletion: true
spec:
  containerConcurrency: 0
  timeoutSeconds: 300
  responseStartTimeoutSeconds: 120
  idleTimeoutSeconds: 0
  enableServiceLinks: false
  serviceAccountName: hello-sa
  containers:
  - name: user-container
    image: ghcr.io/knative/helloworld-go@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    ports:
    - name: h2c
      containerPort: 8080
      protocol: TCP
    readinessProbe:
      httpGet:
        path: /healthz
        port: 0
      successThreshold: 1
    volumeMounts:
    - name: config
      mountPath: /etc/config
      readOnly: true
  volumes:
  - name: config
    configMap:
      name: hello-config
status:
  observedGeneration: 1
  conditions:
  - type: Active
    status: "False"
    severity: Info
    reason: NoTraffic
    message: The target is not receiving traffic.
    lastTransitionTime: "2024-05-01T10:05:00Z"
  - type: ContainerHealthy
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  - type: Ready
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  - type: ResourcesAvailable
    status: "True"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  logUrl: http://logs.example.com/hello-00001
  containerStatuses:
  - name: user-container
    imageDigest: ghcr.io/knative/helloworld-go@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  actualReplicas: 0
  desiredReplicas: 0
"#,
    );
    rev.validate().expect("valid");
    assert_eq!(rev.spec.container_concurrency(), 0);
    assert_eq!(rev.status.and_then(|s| s.actual_replicas), Some(0));
}

#[test]
fn a_configuration_and_a_route_round_trip_and_validate() {
    let config: Configuration = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Configuration
metadata:
  name: hello
spec:
  template:
    metadata:
      labels:
        app: hello
    spec:
      containers:
      - image: ghcr.io/knative/helloworld-go:latest
status:
  latestCreatedRevisionName: hello-00001
"#,
    );
    config.validate().expect("valid");

    let route: Route = round_trip(
        r#"
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: hello
  labels:
    networking.knative.dev/visibility: cluster-local
spec:
  traffic:
  - configurationName: hello
    latestRevision: true
    percent: 80
    tag: latest
  - revisionName: hello-00001
    percent: 20
status:
  url: http://hello.default.svc.cluster.local
  traffic:
  - revisionName: hello-00002
    latestRevision: true
    percent: 80
    tag: latest
    url: http://latest-hello.default.svc.cluster.local
  - revisionName: hello-00001
    latestRevision: false
    percent: 20
"#,
    );
    route.validate().expect("valid");
}

#[test]
fn the_internal_resources_round_trip() {
    let pa: PodAutoscaler = round_trip(
        r#"
apiVersion: autoscaling.internal.knative.dev/v1alpha1
kind: PodAutoscaler
metadata:
  name: hello-00001
  annotations:
    autoscaling.knative.dev/class: kpa.autoscaling.knative.dev
    autoscaling.knative.dev/metric: concurrency
spec:
  containerConcurrency: 10
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: hello-00001-deployment
  reachability: Reachable
  protocolType: http1
status:
  serviceName: hello-00001
  metricsServiceName: hello-00001-private
  desiredScale: 1
  actualScale: 1
  conditions:
  - type: Ready
    status: "True"
"#,
    );
    assert_eq!(
        pa.spec.scale_target_ref.name.as_deref(),
        Some("hello-00001-deployment")
    );

    let ingress: Ingress = round_trip(
        r#"
apiVersion: networking.internal.knative.dev/v1alpha1
kind: Ingress
metadata:
  name: hello
  annotations:
    networking.knative.dev/ingress.class: gateway.networking.knative.dev
spec:
  httpOption: Enabled
  rules:
  - hosts:
    - hello.default.svc.cluster.local
    visibility: ClusterLocal
    http:
      paths:
      - splits:
        - serviceName: hello-00001
          serviceNamespace: default
          servicePort: 80
          percent: 100
          appendHeaders:
            Knative-Serving-Revision: hello-00001
            Knative-Serving-Namespace: default
  - hosts:
    - latest-hello.example.com
    visibility: ExternalIP
    http:
      paths:
      - path: /
        headers:
          Knative-Serving-Tag:
            exact: latest
        rewriteHost: hello.example.com
        appendHeaders:
          Knative-Serving-Tag: latest
        splits:
        - serviceName: hello-00002
          serviceNamespace: default
          servicePort: http
          percent: 100
status:
  publicLoadBalancer:
    ingress:
    - domainInternal: gateway.knative-serving.svc.cluster.local
  privateLoadBalancer:
    ingress:
    - domainInternal: gateway-internal.knative-serving.svc.cluster.local
      meshOnly: true
"#,
    );
    assert_eq!(ingress.spec.rules.len(), 2);

    let sks: ServerlessService = round_trip(
        r#"
apiVersion: networking.internal.knative.dev/v1alpha1
kind: ServerlessService
metadata:
  name: hello-00001
spec:
  mode: Proxy
  numActivators: 2
  objectRef:
    apiVersion: apps/v1
    kind: Deployment
    name: hello-00001-deployment
  protocolType: h2c
status:
  serviceName: hello-00001
  privateServiceName: hello-00001-private
"#,
    );
    assert_eq!(
        sks.status.and_then(|s| s.private_service_name).as_deref(),
        Some("hello-00001-private")
    );
}
