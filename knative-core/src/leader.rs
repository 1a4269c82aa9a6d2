//! Lease-based leader election, so that two replicas of a controller never both write.
//!
//! Candidates share one `coordination.k8s.io/v1` Lease and follow client-go's `leaderelection`
//! protocol, so they interoperate with Go controllers that use the same Lease:
//!
//! - The leader renews the Lease (`renewTime`) every [`retry_period`](LeaseConfig::retry_period).
//! - A follower reads it every `retry_period` and takes it over only when the holder has let it
//!   expire (`leaseDurationSeconds` after its last renewal) or released it (empty
//!   `holderIdentity`). Every change of holder increments `leaseTransitions`.
//! - Every write is a replace carrying the `resourceVersion` that was read, so when two
//!   followers race for an expired Lease exactly one wins; the loser gets a 409, reads again and
//!   sees the winner.
//! - A leader that cannot renew within [`renew_deadline`](LeaseConfig::renew_deadline) stops
//!   leading at once. `renew_deadline < lease_duration` is what keeps an old leader from still
//!   acting when a follower takes over.
//! - On a clean stop the leader releases the Lease (client-go's `ReleaseOnCancel`), so a
//!   follower takes over on its next read instead of waiting for the Lease to expire.
//!
//! The decision itself is the pure function [`decide`]; [`LeaderElector`] is the I/O around it
//! and publishes leadership on a [`watch`] channel, and [`run_while_leading`] runs work only
//! while that channel says so.
//!
//! Like client-go's, this election has no fencing: it relies on the candidates' clocks running
//! at about the same *rate* (their offsets do not matter, see [`decide`]).
//!
//! ```no_run
//! use knative_core::leader::{LeaderElector, LeaseConfig, run_while_leading};
//!
//! # async fn reconcile_forever() {}
//! # async fn example(client: kube::Client) -> Result<(), knative_core::leader::Error> {
//! let identity = std::env::var("POD_NAME").unwrap_or_else(|_| "local".into());
//! let config = LeaseConfig::new("knative-serving", "controller", identity).with_knative_timings();
//! let elector = LeaderElector::new(client, config)?;
//! let leading = elector.subscribe();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let election = tokio::spawn(elector.run(async {
//!     let _ = stopped.await;
//! }));
//!
//! // Reconciles only while this replica leads; restarted whenever leadership comes back.
//! let work = tokio::spawn(run_while_leading(leading, reconcile_forever));
//!
//! tokio::signal::ctrl_c().await.ok();
//! let _ = stop.send(()); // stops leading, then releases the Lease
//! election.await.ok();
//! work.await.ok();
//! # Ok(())
//! # }
//! ```

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// Where the Lease is, who this candidate is, and the timings of the election.
///
/// [`LeaseConfig::new`] takes client-go's defaults (15 s / 10 s / 2 s), which fail over quickly;
/// [`with_knative_timings`](LeaseConfig::with_knative_timings) takes Knative's
/// (`config-leader-election`: 60 s / 40 s / 10 s), which put far less load on the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease; every candidate of one election uses the same.
    pub name: String,
    /// This candidate's identity, unique among the candidates (the Pod name is the usual
    /// choice). A candidate restarted with the identity that holds the Lease resumes leading at
    /// once, so two live processes must never share one.
    pub identity: String,
    /// How long a follower waits after the leader's last renewal before taking over. Written to
    /// the Lease in whole seconds, rounded up.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading. Less than
    /// `lease_duration`; the difference is the margin for clock rate differences.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers read the Lease; also the pause after a failed
    /// attempt. Less than `renew_deadline`.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's default lease duration, ours too.
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
    /// client-go's default renew deadline, ours too.
    pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
    /// client-go's default retry period, ours too.
    pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
    /// Knative's default lease duration (`config-leader-election`, `lease-duration`).
    pub const KNATIVE_LEASE_DURATION: Duration = Duration::from_secs(60);
    /// Knative's default renew deadline (`config-leader-election`, `renew-deadline`).
    pub const KNATIVE_RENEW_DEADLINE: Duration = Duration::from_secs(40);
    /// Knative's default retry period (`config-leader-election`, `retry-period`).
    pub const KNATIVE_RETRY_PERIOD: Duration = Duration::from_secs(10);

    /// The Lease `namespace/name` for the candidate `identity`, with client-go's timings.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            retry_period: Self::DEFAULT_RETRY_PERIOD,
        }
    }

    /// The same Lease and identity with Knative's timings (60 s / 40 s / 10 s).
    #[must_use]
    pub fn with_knative_timings(self) -> Self {
        Self {
            lease_duration: Self::KNATIVE_LEASE_DURATION,
            renew_deadline: Self::KNATIVE_RENEW_DEADLINE,
            retry_period: Self::KNATIVE_RETRY_PERIOD,
            ..self
        }
    }

    /// Checks what the election's safety rests on: names set, and
    /// `lease_duration > renew_deadline > retry_period > 0`, with a lease of at least a second
    /// (and at most what `leaseDurationSeconds` holds).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] saying which rule is broken.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: &str| Err(Error::InvalidConfig(reason.to_owned()));
        if self.namespace.is_empty() || self.name.is_empty() {
            return invalid("the Lease namespace and name must not be empty");
        }
        if self.identity.is_empty() {
            return invalid("the identity must not be empty");
        }
        if self.lease_duration < Duration::from_secs(1) {
            return invalid("lease_duration must be at least 1s");
        }
        if self.lease_duration > Duration::from_secs(i32::MAX.unsigned_abs().into()) {
            return invalid("lease_duration must fit the Lease's leaseDurationSeconds (an i32)");
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid("lease_duration must be greater than renew_deadline");
        }
        if self.renew_deadline <= self.retry_period {
            return invalid("renew_deadline must be greater than retry_period");
        }
        if self.retry_period.is_zero() {
            return invalid("retry_period must be greater than zero");
        }
        Ok(())
    }

    /// `lease_duration` as the Lease stores it: whole seconds, rounded up so followers never
    /// wait less than configured.
    fn lease_duration_seconds(&self) -> i32 {
        let seconds =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The [`LeaseConfig`] breaks a rule the election's safety rests on.
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),
}

/// What a candidate does after reading the Lease, as decided by [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Take the Lease: it does not exist yet (create it), was released, or has expired. Write
    /// this spec.
    Acquire(LeaseSpec),
    /// This candidate holds the Lease: write this spec, with a fresh `renewTime`.
    Renew(LeaseSpec),
    /// Another candidate holds a valid Lease; it expires at `until` unless renewed.
    Wait {
        /// The current holder.
        holder: String,
        /// When the holder's Lease expires, unless renewed.
        until: Timestamp,
    },
}

/// Decides what the candidate `identity` does with the Lease it just read, at `now`.
///
/// `lease` is the Lease's spec (`None` when there is no Lease yet). `seen_at` is when, by this
/// candidate's clock, it first read this exact spec. Expiry counts from the later of the
/// holder's `renewTime` and `seen_at`: `renewTime` was written by another machine's clock, and
/// measuring from our own first sighting of it (as client-go does) means a clock offset between
/// the machines can delay a takeover but never hasten one. A candidate that has just started
/// therefore waits a full lease duration before taking over a stale Lease.
///
/// The spec to write keeps `acquireTime` and `leaseTransitions` on renewal; on acquisition it
/// sets `acquireTime` to `now` and increments `leaseTransitions` (a new Lease starts at 0).
/// Fields this election does not use (`strategy`, `preferredHolder`) are kept as they are.
///
/// ```
/// use k8s_openapi::jiff::Timestamp;
/// use knative_core::leader::{Decision, LeaseConfig, decide};
///
/// let config = LeaseConfig::new("default", "controller", "pod-a");
/// let now = Timestamp::from_second(1_700_000_000).unwrap();
/// let Decision::Acquire(spec) = decide(None, "pod-a", now, now, &config) else { panic!() };
/// assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
/// assert!(matches!(decide(Some(&spec), "pod-b", now, now, &config), Decision::Wait { .. }));
/// ```
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    seen_at: Timestamp,
    config: &LeaseConfig,
) -> Decision {
    let Some(current) = lease else {
        return Decision::Acquire(record(&LeaseSpec::default(), identity, now, now, 0, config));
    };
    let holder = current.holder_identity.as_deref().unwrap_or_default();
    let transitions = current.lease_transitions.unwrap_or(0);
    if !holder.is_empty() && holder == identity {
        let acquired = current.acquire_time.as_ref().map_or(now, |t| t.0);
        return Decision::Renew(record(
            current,
            identity,
            acquired,
            now,
            transitions,
            config,
        ));
    }
    if !holder.is_empty() {
        let until = expiry(current, seen_at, config);
        if now < until {
            return Decision::Wait {
                holder: holder.to_owned(),
                until,
            };
        }
    }
    Decision::Acquire(record(
        current,
        identity,
        now,
        now,
        transitions.saturating_add(1),
        config,
    ))
}

/// When the Lease `spec`, first seen at `seen_at`, expires unless renewed: the later of its
/// `renewTime` (else `acquireTime`) and `seen_at`, plus its `leaseDurationSeconds` (else the
/// configured duration).
fn expiry(spec: &LeaseSpec, seen_at: Timestamp, config: &LeaseConfig) -> Timestamp {
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map_or(seen_at, |t| t.0.max(seen_at));
    let duration = spec
        .lease_duration_seconds
        .filter(|seconds| *seconds > 0)
        .map_or(config.lease_duration, |seconds| {
            Duration::from_secs(u64::from(seconds.unsigned_abs()))
        });
    renewed.checked_add(duration).unwrap_or(Timestamp::MAX)
}

fn record(
    base: &LeaseSpec,
    identity: &str,
    acquired: Timestamp,
    now: Timestamp,
    transitions: i32,
    config: &LeaseConfig,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(config.lease_duration_seconds()),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..base.clone()
    }
}

/// The spec a leader writes to give the Lease up, as client-go's release does: no holder, a
/// one-second duration, transitions unchanged.
fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..current.clone()
    }
}

/// One candidate of a Lease-based election: the I/O around [`decide`].
///
/// Take the leadership channel with [`subscribe`](Self::subscribe), then drive the election with
/// [`run`](Self::run). Dropping the elector (or aborting the task that runs it) publishes
/// `false` but leaves the Lease to expire; only a clean stop through `run`'s shutdown releases it.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leading: watch::Sender<bool>,
}

/// What the elector knows between attempts.
#[derive(Default)]
struct State {
    /// Whether this candidate currently leads (mirrors the published value).
    leading: bool,
    /// When the last successful write while leading started, by the monotonic clock.
    renewed_at: Option<Instant>,
    /// The Lease as last read or written; the leader renews from it without reading first.
    lease: Option<Lease>,
    /// The spec last read and when (wall clock) it was first seen, for [`decide`]'s `seen_at`.
    seen: Option<(LeaseSpec, Timestamp)>,
    /// The holder last reported in the logs.
    holder: Option<String>,
}

/// What one attempt to acquire or renew came to.
enum Outcome {
    Leading,
    Following {
        until: Timestamp,
    },
    /// Someone else wrote the Lease between our read and our write.
    Conflict,
}

impl LeaderElector {
    /// An elector for the Lease and identity of `config`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` fails [`LeaseConfig::validate`].
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, Error> {
        config.validate()?;
        let api = Api::namespaced(client, &config.namespace);
        let (leading, _) = watch::channel(false);
        Ok(Self {
            api,
            config,
            leading,
        })
    }

    /// The election's configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// A channel that reads `true` while this candidate leads. It reads `false` before the first
    /// acquisition, as soon as renewal fails past the renew deadline or another holder is seen,
    /// and once the elector stops.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Runs the election until `shutdown` completes: acquires, renews, and follows the Lease,
    /// publishing leadership on the [`subscribe`](Self::subscribe) channel. On shutdown it stops
    /// leading first (publishes `false`) and then releases the Lease if it holds it, waiting at
    /// most `renew_deadline` for that write. API errors are logged and retried; they end
    /// leadership only once the renew deadline has passed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let span = tracing::info_span!(
            "leader_election",
            lease = %format!("{}/{}", self.config.namespace, self.config.name),
            identity = %self.config.identity,
        );
        self.elect(shutdown).instrument(span).await;
    }

    async fn elect(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut state = State::default();
        loop {
            let pause = tokio::select! {
                () = &mut shutdown => break,
                pause = self.attempt(&mut state) => pause,
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let held = state.leading;
        self.set_leading(&mut state, false);
        if held || self.holds(state.lease.as_ref()) {
            let release = self.release(state.lease.take());
            if tokio::time::timeout(self.config.renew_deadline, release)
                .await
                .is_err()
            {
                tracing::warn!("release timed out; the Lease will expire");
            }
        }
    }

    /// One attempt to acquire or renew, bounded by the renew deadline; returns the pause before
    /// the next attempt.
    async fn attempt(&self, state: &mut State) -> Duration {
        let renew_by = state.renewed_at.map(|at| at + self.config.renew_deadline);
        if state.leading && renew_by.is_some_and(|renew_by| Instant::now() >= renew_by) {
            tracing::warn!("renew deadline passed");
            self.set_leading(state, false);
        }
        let started = Instant::now();
        let deadline = match state.renewed_at {
            Some(renewed_at) if state.leading => renewed_at + self.config.renew_deadline,
            _ => started + self.config.renew_deadline,
        };
        match tokio::time::timeout_at(deadline, self.try_acquire_or_renew(state)).await {
            Ok(Ok(Outcome::Leading)) => {
                state.renewed_at = Some(started);
                self.set_leading(state, true);
                self.config.retry_period
            }
            Ok(Ok(Outcome::Following { until })) => {
                self.set_leading(state, false);
                let until_expiry = Timestamp::now().duration_until(until);
                Duration::try_from(until_expiry)
                    .unwrap_or(Duration::ZERO)
                    .min(self.config.retry_period)
            }
            Ok(Ok(Outcome::Conflict)) => Duration::ZERO,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read or write the Lease");
                if state.leading {
                    // Wake up at the deadline at the latest, to stop leading right then.
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(self.config.retry_period)
                } else {
                    self.config.retry_period
                }
            }
            Err(_) => {
                if state.leading {
                    tracing::warn!("renew deadline passed");
                    self.set_leading(state, false);
                }
                Duration::ZERO
            }
        }
    }

    async fn try_acquire_or_renew(&self, state: &mut State) -> Result<Outcome, kube::Error> {
        let current = match state.lease.take() {
            // client-go's fast path: the leader writes over what it last wrote; a 409 sends it
            // back to reading.
            Some(lease) if state.leading => Some(lease),
            _ => self.api.get_opt(&self.config.name).await?,
        };
        let now = Timestamp::now();
        let spec = current
            .as_ref()
            .map(|lease| lease.spec.clone().unwrap_or_default());
        let seen_at = match (&spec, &state.seen) {
            (Some(spec), Some((seen, at))) if seen == spec => *at,
            (Some(spec), _) => {
                state.seen = Some((spec.clone(), now));
                now
            }
            (None, _) => now,
        };
        self.report_holder(state, spec.as_ref());
        let new = match decide(
            spec.as_ref(),
            &self.config.identity,
            now,
            seen_at,
            &self.config,
        ) {
            Decision::Wait { until, .. } => {
                state.lease = current;
                return Ok(Outcome::Following { until });
            }
            Decision::Acquire(new) | Decision::Renew(new) => new,
        };
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(new),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(new);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                state.seen = lease.spec.clone().map(|spec| (spec, now));
                self.report_holder(state, lease.spec.as_ref());
                state.lease = Some(lease);
                Ok(Outcome::Leading)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                tracing::debug!("lost a race for the Lease, reading it again");
                Ok(Outcome::Conflict)
            }
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up if it is still ours: writes over `last`, or over a fresh read when
    /// `last` is unknown or outdated.
    async fn release(&self, mut last: Option<Lease>) {
        for _ in 0..2 {
            let lease = match last.take() {
                Some(lease) => lease,
                None => match self.api.get_opt(&self.config.name).await {
                    Ok(Some(lease)) => lease,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the Lease to release it");
                        return;
                    }
                },
            };
            if !self.holds(Some(&lease)) {
                return;
            }
            let mut lease = lease;
            lease.spec = Some(released(&lease.spec.unwrap_or_default(), Timestamp::now()));
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    tracing::info!("released the Lease");
                    return;
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot release the Lease");
                    return;
                }
            }
        }
    }

    fn holds(&self, lease: Option<&Lease>) -> bool {
        lease
            .and_then(|lease| lease.spec.as_ref())
            .and_then(|spec| spec.holder_identity.as_deref())
            .is_some_and(|holder| holder == self.config.identity)
    }

    fn set_leading(&self, state: &mut State, leading: bool) {
        if state.leading != leading {
            if leading {
                tracing::info!("started leading");
            } else {
                tracing::info!("stopped leading");
            }
        }
        state.leading = leading;
        if !leading {
            state.renewed_at = None;
        }
        self.leading
            .send_if_modified(|current| std::mem::replace(current, leading) != leading);
    }

    fn report_holder(&self, state: &mut State, spec: Option<&LeaseSpec>) {
        let holder = spec
            .and_then(|spec| spec.holder_identity.clone())
            .filter(|holder| !holder.is_empty());
        if state.holder != holder {
            tracing::info!(
                holder = holder.as_deref().unwrap_or("<none>"),
                "new holder observed"
            );
            state.holder = holder;
        }
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        // An elector that is dropped mid-run (its task aborted) no longer renews: say so, rather
        // than leave receivers reading a stale `true`.
        self.leading
            .send_if_modified(|current| std::mem::replace(current, false));
    }
}

/// Runs `make()`'s future only while `leading` reads `true`: starts it when leadership is
/// gained, drops it (cancelling it at its next await) as soon as leadership is lost, and starts a
/// fresh one when leadership comes back.
///
/// Returns `Some(output)` when the work finishes on its own while leading, and `None` when the
/// elector is gone (the channel is closed) while not leading. Tasks the work spawned are not
/// cancelled with it; keep the work inside the future (or abort them on drop) so that two
/// replicas never both write.
///
/// ```
/// use knative_core::leader::run_while_leading;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = tokio::sync::watch::channel(true);
/// let out = run_while_leading(rx, || async { 42 }).await;
/// assert_eq!(out, Some(42));
/// drop(tx);
/// # }
/// ```
pub async fn run_while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    mut make: F,
) -> Option<Fut::Output>
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    loop {
        if leading.wait_for(|leading| *leading).await.is_err() {
            return None;
        }
        let mut work = pin!(make());
        let lost = tokio::select! {
            biased;
            lost = async { leading.wait_for(|leading| !*leading).await.map(|_| ()) } => lost,
            output = &mut work => return Some(output),
        };
        tracing::info!("leadership lost: stopping the work that needs it");
        if lost.is_err() {
            // The elector is gone: nothing will ever say we lead again.
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config() -> LeaseConfig {
        LeaseConfig::new("default", "controller", "a")
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).expect("valid timestamp")
    }

    fn held_by(holder: &str, renewed: i64, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(at(renewed - 100))),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn acquired(decision: Decision) -> LeaseSpec {
        match decision {
            Decision::Acquire(spec) => spec,
            other => panic!("expected Acquire, got {other:?}"),
        }
    }

    #[test]
    fn no_lease_is_acquired_with_zero_transitions() {
        let spec = acquired(decide(None, "a", at(0), at(0), &config()));
        assert_eq!(
            spec,
            LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(MicroTime(at(0))),
                renew_time: Some(MicroTime(at(0))),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }
        );
    }

    #[test]
    fn holder_renews_keeping_acquire_time_and_transitions() {
        let current = held_by("a", 10, 3);
        let decision = decide(Some(&current), "a", at(12), at(10), &config());
        assert_eq!(
            decision,
            Decision::Renew(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(MicroTime(at(-90))),
                renew_time: Some(MicroTime(at(12))),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            })
        );
    }

    #[test]
    fn holder_renews_even_an_expired_lease_nobody_took() {
        let current = held_by("a", 0, 1);
        let Decision::Renew(spec) = decide(Some(&current), "a", at(100), at(0), &config()) else {
            panic!("expected Renew");
        };
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.renew_time, Some(MicroTime(at(100))));
    }

    #[test]
    fn holder_renewing_a_lease_without_acquire_time_sets_it() {
        let current = LeaseSpec {
            acquire_time: None,
            ..held_by("a", 0, 0)
        };
        let Decision::Renew(spec) = decide(Some(&current), "a", at(5), at(0), &config()) else {
            panic!("expected Renew");
        };
        assert_eq!(spec.acquire_time, Some(MicroTime(at(5))));
    }

    #[test]
    fn valid_lease_of_another_is_waited_for_until_it_expires() {
        let current = held_by("b", 10, 2);
        for now in [10, 11, 20, 24] {
            assert_eq!(
                decide(Some(&current), "a", at(now), at(10), &config()),
                Decision::Wait {
                    holder: "b".into(),
                    until: at(25)
                },
                "at {now}"
            );
        }
    }

    #[test]
    fn expired_lease_is_taken_over_counting_a_transition() {
        let current = held_by("b", 10, 2);
        for now in [25, 26, 1000] {
            let spec = acquired(decide(Some(&current), "a", at(now), at(10), &config()));
            assert_eq!(spec.holder_identity.as_deref(), Some("a"));
            assert_eq!(spec.lease_transitions, Some(3));
            assert_eq!(spec.acquire_time, Some(MicroTime(at(now))));
            assert_eq!(spec.renew_time, Some(MicroTime(at(now))));
            assert_eq!(spec.lease_duration_seconds, Some(15));
        }
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let release = released(&held_by("b", 10, 4), at(11));
        assert_eq!(release.holder_identity, None);
        assert_eq!(release.lease_duration_seconds, Some(1));
        assert_eq!(release.lease_transitions, Some(4));
        let spec = acquired(decide(Some(&release), "a", at(11), at(11), &config()));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(5));

        let empty_holder = LeaseSpec {
            holder_identity: Some(String::new()),
            ..held_by("b", 10, 4)
        };
        let spec = acquired(decide(Some(&empty_holder), "a", at(11), at(11), &config()));
        assert_eq!(spec.lease_transitions, Some(5));
    }

    #[test]
    fn expiry_counts_from_the_later_of_renew_time_and_first_sighting() {
        let current = held_by("b", 10, 0);
        // The holder's clock is behind ours (or we just started): wait a full duration from our
        // first sighting.
        assert_eq!(
            decide(Some(&current), "a", at(30), at(20), &config()),
            Decision::Wait {
                holder: "b".into(),
                until: at(35)
            }
        );
        // The holder's clock is ahead of ours: its renewTime is in our future.
        assert_eq!(
            decide(Some(&current), "a", at(5), at(0), &config()),
            Decision::Wait {
                holder: "b".into(),
                until: at(25)
            }
        );
    }

    #[test]
    fn lease_duration_comes_from_the_lease_else_the_config() {
        let short = LeaseSpec {
            lease_duration_seconds: Some(5),
            ..held_by("b", 10, 0)
        };
        assert_eq!(
            decide(Some(&short), "a", at(11), at(10), &config()),
            Decision::Wait {
                holder: "b".into(),
                until: at(15)
            }
        );
        for unusable in [None, Some(0), Some(-3)] {
            let spec = LeaseSpec {
                lease_duration_seconds: unusable,
                ..held_by("b", 10, 0)
            };
            assert_eq!(
                decide(Some(&spec), "a", at(11), at(10), &config()),
                Decision::Wait {
                    holder: "b".into(),
                    until: at(25)
                },
                "{unusable:?}"
            );
        }
    }

    #[test]
    fn renew_time_falls_back_to_acquire_time_then_to_first_sighting() {
        let acquired_only = LeaseSpec {
            renew_time: None,
            ..held_by("b", 10, 0)
        };
        assert_eq!(
            decide(Some(&acquired_only), "a", at(-80), at(-200), &config()),
            Decision::Wait {
                holder: "b".into(),
                until: at(-75)
            }
        );
        let no_times = LeaseSpec {
            renew_time: None,
            acquire_time: None,
            ..held_by("b", 10, 0)
        };
        assert_eq!(
            decide(Some(&no_times), "a", at(0), at(-5), &config()),
            Decision::Wait {
                holder: "b".into(),
                until: at(10)
            }
        );
        assert!(matches!(
            decide(Some(&no_times), "a", at(10), at(-5), &config()),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn unrelated_fields_are_kept() {
        let current = LeaseSpec {
            strategy: Some("OldestEmulationVersion".into()),
            preferred_holder: Some("c".into()),
            ..held_by("b", 0, 0)
        };
        let spec = acquired(decide(Some(&current), "a", at(100), at(0), &config()));
        assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
        assert_eq!(spec.preferred_holder.as_deref(), Some("c"));
    }

    #[test]
    fn transitions_saturate_and_missing_counts_as_zero() {
        let full = held_by("b", 0, i32::MAX);
        assert_eq!(
            acquired(decide(Some(&full), "a", at(100), at(0), &config())).lease_transitions,
            Some(i32::MAX)
        );
        let missing = LeaseSpec {
            lease_transitions: None,
            ..held_by("b", 0, 0)
        };
        assert_eq!(
            acquired(decide(Some(&missing), "a", at(100), at(0), &config())).lease_transitions,
            Some(1)
        );
    }

    #[test]
    fn written_duration_is_whole_seconds_rounded_up() {
        let mut config = config();
        assert_eq!(config.lease_duration_seconds(), 15);
        config.lease_duration = Duration::from_millis(2500);
        assert_eq!(config.lease_duration_seconds(), 3);
        assert_eq!(
            acquired(decide(None, "a", at(0), at(0), &config)).lease_duration_seconds,
            Some(3)
        );
    }

    #[test]
    fn defaults_are_client_go_and_knative_timings_are_offered() {
        let config = config();
        assert_eq!(
            (
                config.lease_duration,
                config.renew_deadline,
                config.retry_period
            ),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        let knative = config.with_knative_timings();
        assert_eq!(
            (
                knative.lease_duration,
                knative.renew_deadline,
                knative.retry_period
            ),
            (
                Duration::from_secs(60),
                Duration::from_secs(40),
                Duration::from_secs(10)
            )
        );
        assert_eq!(knative.identity, "a");
        assert!(knative.validate().is_ok());
    }

    #[test]
    fn validation_guards_the_timing_invariants() {
        assert!(config().validate().is_ok());
        let broken = [
            LeaseConfig {
                identity: String::new(),
                ..config()
            },
            LeaseConfig {
                name: String::new(),
                ..config()
            },
            LeaseConfig {
                namespace: String::new(),
                ..config()
            },
            LeaseConfig {
                renew_deadline: Duration::from_secs(15),
                ..config()
            },
            LeaseConfig {
                retry_period: Duration::from_secs(10),
                ..config()
            },
            LeaseConfig {
                retry_period: Duration::ZERO,
                ..config()
            },
            LeaseConfig {
                lease_duration: Duration::MAX,
                ..config()
            },
            LeaseConfig {
                lease_duration: Duration::from_millis(900),
                renew_deadline: Duration::from_millis(500),
                retry_period: Duration::from_millis(100),
                ..config()
            },
        ];
        for config in broken {
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig(_))),
                "{config:?}"
            );
        }
    }

    /// Counts starts and live instances of the work.
    #[derive(Clone, Default)]
    struct Probe {
        starts: Arc<AtomicUsize>,
        live: Arc<AtomicUsize>,
    }

    struct Alive(Arc<AtomicUsize>);

    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Probe {
        fn work(&self) -> impl Future<Output = &'static str> + use<> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            self.live.fetch_add(1, Ordering::SeqCst);
            let alive = Alive(self.live.clone());
            async move {
                let _alive = alive;
                std::future::pending::<()>().await;
                "unreachable"
            }
        }

        fn counts(&self) -> (usize, usize) {
            (
                self.starts.load(Ordering::SeqCst),
                self.live.load(Ordering::SeqCst),
            )
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn work_runs_only_while_leading_and_restarts_on_regain() {
        let (tx, rx) = watch::channel(false);
        let probe = Probe::default();
        let task = tokio::spawn({
            let probe = probe.clone();
            run_while_leading(rx, move || probe.work())
        });
        settle().await;
        assert_eq!(probe.counts(), (0, 0), "not leading yet");

        tx.send_replace(true);
        settle().await;
        assert_eq!(probe.counts(), (1, 1), "started on gaining leadership");

        tx.send_replace(false);
        settle().await;
        assert_eq!(probe.counts(), (1, 0), "dropped on losing leadership");

        tx.send_replace(true);
        settle().await;
        assert_eq!(
            probe.counts(),
            (2, 1),
            "a fresh start on regaining leadership"
        );

        tx.send_replace(false);
        drop(tx);
        assert_eq!(task.await.expect("no panic"), None);
        assert_eq!(probe.counts(), (2, 0));
    }

    #[tokio::test]
    async fn work_stops_when_the_elector_goes_away_while_leading() {
        let (tx, rx) = watch::channel(true);
        let probe = Probe::default();
        let task = tokio::spawn({
            let probe = probe.clone();
            run_while_leading(rx, move || probe.work())
        });
        settle().await;
        assert_eq!(probe.counts(), (1, 1));
        // What LeaderElector's Drop does: publish false, then close the channel.
        tx.send_replace(false);
        drop(tx);
        assert_eq!(task.await.expect("no panic"), None);
        assert_eq!(probe.counts(), (1, 0));
    }

    #[test]
    fn work_and_election_futures_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let (_tx, rx) = watch::channel(false);
        let work = run_while_leading(rx, || async {});
        assert_send(&work);
    }

    #[tokio::test]
    async fn finished_work_is_returned() {
        let (_tx, rx) = watch::channel(true);
        assert_eq!(run_while_leading(rx, || async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn closed_channel_before_leading_returns_none() {
        let (tx, rx) = watch::channel(false);
        drop(tx);
        assert_eq!(run_while_leading(rx, || async { 1 }).await, None);
    }

    #[tokio::test]
    async fn channel_closed_while_reading_true_stops_the_work_for_good() {
        // A sender other than LeaderElector may go away without publishing false first.
        let (tx, rx) = watch::channel(true);
        let probe = Probe::default();
        let task = tokio::spawn({
            let probe = probe.clone();
            run_while_leading(rx, move || probe.work())
        });
        settle().await;
        drop(tx);
        assert_eq!(task.await.expect("no panic"), None);
        assert_eq!(probe.counts(), (1, 0));
    }
}
