//! `knative local` as a process, as a user meets it: a Knative Service of
//! `image: local://<hello>` answers at its URL through the gateway, scales to zero and wakes
//! through the activator, splits traffic between revisions, survives its function process
//! being killed and the platform being restarted; SIGTERM ends every process.
//!
//! Needs the `hello` example built next to `knative` (`cargo build -p hello`). The scenarios run
//! one at a time: every platform gives its first Pod the address 127.0.0.2.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{FAST_AUTOSCALER, Platform, alive, children_named, hello_children, hello_service};
use knative_serving::apis::{Configuration, Revision, Route, Service};
use kube::ResourceExt;
use kube::api::Api;

/// One platform at a time (they share Pod addresses).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn a_service_answers_at_its_url_through_the_gateway() {
    let _serial = SERIAL.lock().await;
    let platform = Platform::start();
    platform.apply(&hello_service("hello", "World", &[]));
    let host = platform.wait_ready("hello").await;
    assert_eq!(host, "hello.default.example.com");
    assert_eq!(platform.get(&host), (200, "Hello World!\n".to_owned()));
    assert_eq!(
        platform.get("nobody.default.example.com").0,
        404,
        "an unknown host is not routed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_service_scales_to_zero_and_wakes_on_the_next_request() {
    let _serial = SERIAL.lock().await;
    let platform = Platform::start();
    platform.apply(FAST_AUTOSCALER);
    platform.apply(&hello_service("hello", "World", &[]));
    let host = platform.wait_ready("hello").await;
    assert_eq!(platform.get(&host).0, 200);

    let pid = platform.child.id();
    platform
        .eventually("the revision at zero", Duration::from_secs(60), || async {
            (platform.pods("hello-00001").await.is_empty() && hello_children(pid).is_empty())
                .then_some(())
        })
        .await;
    assert_eq!(
        platform.get(&host),
        (200, "Hello World!\n".to_owned()),
        "the activator holds the request until the function is back"
    );
    assert_eq!(hello_children(pid).len(), 1, "one process again");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_requests_to_a_service_at_zero_all_succeed() {
    let _serial = SERIAL.lock().await;
    let platform = Platform::start();
    platform.apply(FAST_AUTOSCALER);
    platform.apply(&hello_service(
        "hello",
        "World",
        &[("autoscaling.knative.dev/initial-scale", "0")],
    ));
    let host = platform.wait_ready("hello").await;
    assert!(
        platform.pods("hello-00001").await.is_empty(),
        "initial scale 0: Ready without a Pod"
    );

    let gateway = platform.gateway.clone();
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (gateway, host) = (gateway.clone(), host.clone());
            std::thread::spawn(move || common::get(&gateway, &host))
        })
        .collect();
    let mut failures = BTreeMap::<String, usize>::new();
    for request in requests {
        let (status, body) = request.join().unwrap();
        if (status, body.as_str()) != (200, "Hello World!\n") {
            *failures.entry(format!("{status} {body}")).or_default() += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "failures: {failures:?}\n{}",
        platform.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifty_fifty_split_between_two_revisions_shows_over_a_thousand_requests() {
    let _serial = SERIAL.lock().await;
    let platform = Platform::start();
    platform.apply(&hello_service("hello", "Blue", &[]));
    platform.wait_ready("hello").await;
    let split = hello_service("hello", "Green", &[]).replace(
        "spec:\n  template:\n",
        "spec:\n  traffic:\n    - revisionName: hello-00001\n      percent: 50\n    - latestRevision: true\n      percent: 50\n  template:\n",
    );
    platform.apply(&split);
    let services: Api<Service> = Api::namespaced(platform.client().await, "default");
    platform
        .eventually(
            "traffic on two revisions",
            Duration::from_secs(60),
            || async {
                let status = services.get("hello").await.ok()?.status?;
                let ready = status
                    .status
                    .get_condition("Ready")
                    .is_some_and(|c| c.is_true());
                (ready && status.route.traffic.len() == 2).then_some(())
            },
        )
        .await;
    let host = platform.wait_ready("hello").await;

    let mut answers = BTreeMap::<String, usize>::new();
    for _ in 0..1000 {
        let (status, body) = platform.get(&host);
        assert_eq!(status, 200, "{body}");
        *answers.entry(body).or_default() += 1;
    }
    let blue = answers.get("Hello Blue!\n").copied().unwrap_or(0);
    let green = answers.get("Hello Green!\n").copied().unwrap_or(0);
    assert_eq!(
        blue + green,
        1000,
        "only the two revisions answer: {answers:?}"
    );
    assert!(
        (450..=550).contains(&blue),
        "50% ± 5% of 1000 to each revision, got {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_function_process_is_replaced_and_traffic_recovers() {
    let _serial = SERIAL.lock().await;
    let platform = Platform::start();
    platform.apply(&hello_service("hello", "World", &[]));
    let host = platform.wait_ready("hello").await;
    assert_eq!(platform.get(&host).0, 200);

    let pid = platform.child.id();
    let victims = hello_children(pid);
    assert_eq!(victims.len(), 1, "one hello process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victims[0]).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    platform
        .eventually(
            "a new process answering",
            Duration::from_secs(60),
            || async {
                let replaced = hello_children(pid).iter().any(|p| *p != victims[0]);
                (replaced && platform.get(&host) == (200, "Hello World!\n".to_owned()))
                    .then_some(())
            },
        )
        .await;
    assert!(!alive(victims[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_platform_keeps_every_object_and_serves_again() {
    let _serial = SERIAL.lock().await;
    let mut platform = Platform::start();
    platform.apply(&hello_service("hello", "World", &[]));
    let host = platform.wait_ready("hello").await;
    let uids = async |platform: &Platform| {
        let client = platform.client().await;
        let uid = |o: Option<String>| o.unwrap_or_else(|| "missing".to_owned());
        [
            uid(Api::<Service>::namespaced(client.clone(), "default")
                .get("hello")
                .await
                .ok()
                .and_then(|o| o.uid())),
            uid(Api::<Configuration>::namespaced(client.clone(), "default")
                .get("hello")
                .await
                .ok()
                .and_then(|o| o.uid())),
            uid(Api::<Route>::namespaced(client.clone(), "default")
                .get("hello")
                .await
                .ok()
                .and_then(|o| o.uid())),
            uid(Api::<Revision>::namespaced(client, "default")
                .get("hello-00001")
                .await
                .ok()
                .and_then(|o| o.uid())),
        ]
    };
    let before = uids(&platform).await;
    assert!(!before.contains(&"missing".to_owned()), "{before:?}");

    platform.stop();
    platform.restart();
    assert_eq!(
        uids(&platform).await,
        before,
        "the same objects after the restart"
    );
    assert_eq!(platform.wait_ready("hello").await, host);
    platform
        .eventually(
            "the service answering again",
            Duration::from_secs(60),
            || async { (platform.get(&host) == (200, "Hello World!\n".to_owned())).then_some(()) },
        )
        .await;
    let revisions: Api<Revision> = Api::namespaced(platform.client().await, "default");
    assert_eq!(
        revisions
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "no new revision: the state reconciled is the same"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_platform_and_every_function_process() {
    let _serial = SERIAL.lock().await;
    let mut platform = Platform::start();
    platform.apply(&hello_service("hello", "World", &[]));
    let host = platform.wait_ready("hello").await;
    assert_eq!(platform.get(&host).0, 200);
    let hellos = hello_children(platform.child.id());
    assert_eq!(hellos.len(), 1, "one hello process under knative local");
    platform.stop();
    assert!(
        hellos.iter().all(|p| !alive(*p)),
        "hello processes left: {hellos:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_address_in_use_stops_the_platform_with_an_error() {
    let _serial = SERIAL.lock().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_knative"))
            .args(["local", "--data-dir"])
            .arg(dir.path())
            .arg(format!("--gateway-addr={}", taken.local_addr().unwrap()))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("knative local gives up within 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("knative gateway exited unexpectedly"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_platform_takes_its_controller_activator_and_gateway_with_it() {
    let _serial = SERIAL.lock().await;
    let mut platform = Platform::start();
    let pid = platform.child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let children = loop {
        let children = children_named(pid, "knative");
        if children.len() == 3 {
            break children;
        }
        assert!(Instant::now() < deadline, "children: {children:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    platform.child.kill().unwrap(); // SIGKILL: no chance to stop them itself
    platform.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "left running: {:?}",
            children.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
