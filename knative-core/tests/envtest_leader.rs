//! Leader election against a real kube-apiserver: two candidates with short timings (lease 3s,
//! renew 2s, retry 500ms) share one Lease.
//!
//! Run with `KUBECONFIG=/tmp/envtest-0/kubeconfig cargo test -p knative-core --features testing
//! --test envtest_leader`.

use k8s_openapi::api::coordination::v1::Lease;
use knative_core::leader::{LeaderElector, LeaseConfig, run_while_leading};
use knative_core::testing::envtest::{TestNamespace, client};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const LEASE: &str = "controller";
const LEASE_DURATION: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY_PERIOD: Duration = Duration::from_millis(500);
/// Allowance for API round trips and scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

struct Candidate {
    identity: &'static str,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Candidate {
    fn start(client: &Client, namespace: &str, identity: &'static str) -> Self {
        let config = LeaseConfig {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
            ..LeaseConfig::new(namespace, LEASE, identity)
        };
        let elector = LeaderElector::new(client.clone(), config).expect("valid config");
        let leading = elector.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async {
            let _ = stopped.await;
        }));
        Self {
            identity,
            leading,
            stop: Some(stop),
            task,
        }
    }

    fn leads(&self) -> bool {
        *self.leading.borrow()
    }

    /// A clean stop: the elector releases the Lease.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(RENEW_DEADLINE + SLACK, &mut self.task)
            .await
            .expect("elector stops within the renew deadline")
            .expect("elector does not panic");
    }

    /// A crash: the task is gone without releasing the Lease.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Samples both candidates until `until` is true of them or `timeout` passes, failing if both
/// ever lead at the same sampled instant. Returns how long it took.
async fn watch_pair(
    a: &Candidate,
    b: &Candidate,
    timeout: Duration,
    until: impl Fn(bool, bool) -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let (la, lb) = (a.leads(), b.leads());
        assert!(
            !(la && lb),
            "both {} and {} lead at once",
            a.identity,
            b.identity
        );
        if until(la, lb) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "after {timeout:?}: {} leads: {la}, {} leads: {lb}",
                a.identity, b.identity
            ));
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Samples both candidates for `period`, failing if both ever lead at once or leadership moves.
async fn hold_steady(a: &Candidate, b: &Candidate, period: Duration) {
    let leader = (a.leads(), b.leads());
    let sampled = watch_pair(a, b, period, |la, lb| (la, lb) != leader).await;
    assert!(
        sampled.is_err(),
        "leadership moved while both candidates were healthy"
    );
}

async fn read_lease(client: &Client, namespace: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get(LEASE)
        .await
        .expect("the Lease exists")
}

fn holder(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|spec| spec.holder_identity.clone())
        .filter(|holder| !holder.is_empty())
}

fn transitions(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|spec| spec.lease_transitions)
        .unwrap_or(0)
}

/// Starts two candidates and waits for exactly one to lead; returns (leader, follower).
async fn elect(client: &Client, namespace: &str) -> (Candidate, Candidate) {
    let a = Candidate::start(client, namespace, "candidate-a");
    let b = Candidate::start(client, namespace, "candidate-b");
    watch_pair(&a, &b, LEASE_DURATION + SLACK, |la, lb| la || lb)
        .await
        .expect("someone leads");
    hold_steady(&a, &b, Duration::from_secs(2)).await;
    let (leader, follower) = if a.leads() { (a, b) } else { (b, a) };
    assert!(leader.leads() && !follower.leads());
    let lease = read_lease(client, namespace).await;
    assert_eq!(
        holder(&lease).as_deref(),
        Some(leader.identity),
        "the Lease names the leader"
    );
    (leader, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_once_its_lease_expires() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "leader-crash").await;
    let (leader, follower) = elect(&client, &ns.name).await;
    let before = transitions(&read_lease(&client, &ns.name).await);

    // Watch from the follower's side while the leader dies without releasing.
    let died = Instant::now();
    let leader_identity = leader.identity;
    let leader_rx = leader.leading.clone();
    leader.kill().await;
    assert!(
        !*leader_rx.borrow(),
        "a dropped elector publishes that it no longer leads"
    );

    let mut follower_rx = follower.leading.clone();
    tokio::time::timeout(
        LEASE_DURATION + 2 * RETRY_PERIOD + SLACK,
        follower_rx.wait_for(|leads| *leads),
    )
    .await
    .expect("the follower takes over within the lease duration (plus retry slack)")
    .expect("the follower's elector is running");
    let took = died.elapsed();
    eprintln!("takeover {took:?} after the leader crashed");
    // The last renewal was at most one retry period before the crash, and the Lease must
    // have expired first.
    assert!(
        took >= LEASE_DURATION - RETRY_PERIOD - Duration::from_millis(200),
        "took over after {took:?}, before the Lease of {leader_identity} could expire"
    );

    let lease = read_lease(&client, &ns.name).await;
    assert_eq!(holder(&lease).as_deref(), Some(follower.identity));
    assert_eq!(transitions(&lease), before + 1);

    follower.stop().await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanly_stopped_leader_hands_over_at_once() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "leader-release").await;
    let (leader, follower) = elect(&client, &ns.name).await;
    let before = transitions(&read_lease(&client, &ns.name).await);

    let stopped = Instant::now();
    let leader_rx = leader.leading.clone();
    leader.stop().await;
    assert!(!*leader_rx.borrow());
    let released = stopped.elapsed();

    let mut follower_rx = follower.leading.clone();
    tokio::time::timeout(RETRY_PERIOD + SLACK, follower_rx.wait_for(|leads| *leads))
        .await
        .expect("the follower takes a released Lease on its next read")
        .expect("the follower's elector is running");
    let took = stopped.elapsed();
    eprintln!("takeover {took:?} after the leader stopped (release took {released:?})");
    assert!(
        took < LEASE_DURATION - RETRY_PERIOD,
        "takeover after a release took {took:?} (release itself {released:?}), as long as an expiry"
    );

    let lease = read_lease(&client, &ns.name).await;
    assert_eq!(holder(&lease).as_deref(), Some(follower.identity));
    assert_eq!(transitions(&lease), before + 1);

    follower.stop().await;
    let lease = read_lease(&client, &ns.name).await;
    assert_eq!(
        holder(&lease),
        None,
        "the last candidate released the Lease too"
    );
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_never_runs_on_two_candidates_at_once() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "leader-work").await;
    let live = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(AtomicUsize::new(0));

    let a = Candidate::start(&client, &ns.name, "candidate-a");
    let b = Candidate::start(&client, &ns.name, "candidate-b");
    let work = |candidate: &Candidate| {
        let (live, most, starts) = (live.clone(), most.clone(), starts.clone());
        tokio::spawn(run_while_leading(candidate.leading.clone(), move || {
            let (live, most) = (live.clone(), most.clone());
            starts.fetch_add(1, Ordering::SeqCst);
            async move {
                let _running = Running::start(&live, &most);
                std::future::pending::<()>().await;
            }
        }))
    };
    let work_a = work(&a);
    let work_b = work(&b);

    watch_pair(&a, &b, LEASE_DURATION + SLACK, |la, lb| la || lb)
        .await
        .expect("someone leads");
    hold_steady(&a, &b, Duration::from_secs(1)).await;
    let (leader, follower) = if a.leads() { (a, b) } else { (b, a) };
    leader.kill().await;
    let mut follower_rx = follower.leading.clone();
    tokio::time::timeout(
        LEASE_DURATION + 2 * RETRY_PERIOD + SLACK,
        follower_rx.wait_for(|leads| *leads),
    )
    .await
    .expect("the follower takes over")
    .expect("the follower's elector is running");
    tokio::time::sleep(RETRY_PERIOD).await;

    assert_eq!(
        starts.load(Ordering::SeqCst),
        2,
        "the work started once per leader"
    );
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "only the new leader's work runs"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "the two leaders' work never overlapped"
    );

    follower.stop().await;
    for work in [work_a, work_b] {
        let finished = tokio::time::timeout(SLACK, work)
            .await
            .expect("work ends with its elector");
        assert!(finished.expect("no panic").is_none());
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
    ns.delete().await;
}

/// Marks one running instance of the work, recording the most ever running at once.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(live: &Arc<AtomicUsize>, most: &AtomicUsize) -> Self {
        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        Self(live.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
