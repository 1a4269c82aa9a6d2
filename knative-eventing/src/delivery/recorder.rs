//! A CloudEvents sink that records what it receives: the event-display of tests and demos.
//!
//! It can be told to fail a share of requests, to reply, or to be slow, so delivery guarantees
//! can be checked end to end on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, oneshot};

use super::{codec, server};

/// Makes the reply to an accepted event, if any.
pub type ReplyFn = Arc<dyn Fn(&Event) -> Option<Event> + Send + Sync>;

/// How a [`Recorder`] answers.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Fail this share of requests (0.0..=1.0) with `fail_status`, pseudo-randomly.
    pub fail_ratio: f64,
    /// The status of failed requests (500 when unset).
    pub fail_status: Option<StatusCode>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Answer accepted events with the event this returns (a reply), if any.
    pub reply: Option<ReplyFn>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("fail_ratio", &self.fail_ratio)
            .field("fail_status", &self.fail_status)
            .field("delay", &self.delay)
            .field("reply", &self.reply.is_some())
            .finish()
    }
}

/// A running recording sink on loopback. Stops when dropped.
#[derive(Debug)]
pub struct Recorder {
    /// Where to send events.
    pub uri: Uri,
    state: Arc<State>,
    _stop: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    accepted: Mutex<Vec<Event>>,
    requests: AtomicU64,
    rejected: AtomicU64,
    seed: AtomicU64,
    changed: Notify,
}

impl Recorder {
    /// Starts a sink on an ephemeral loopback port.
    pub async fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let state = Arc::new(State {
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            ..State::default()
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let handler_state = state.clone();
        let behaviour = Arc::new(behaviour);
        tokio::spawn(server::serve(
            listener,
            move |request| {
                let state = handler_state.clone();
                let behaviour = behaviour.clone();
                async move { answer(&state, &behaviour, request).await }
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Recorder {
            uri: format!("http://{addr}/")
                .parse()
                .expect("a loopback URI is valid"),
            state,
            _stop: stop,
        })
    }

    /// The events accepted so far (2xx answered), in arrival order.
    pub async fn events(&self) -> Vec<Event> {
        self.state.accepted.lock().await.clone()
    }

    /// How many events were accepted per id.
    pub async fn counts_by_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for event in self.state.accepted.lock().await.iter() {
            *counts.entry(event.id().to_owned()).or_insert(0) += 1;
        }
        counts
    }

    /// Requests received, accepted or not.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` events were accepted or `timeout` passed; returns the count.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            let count = self.state.accepted.lock().await.len();
            if count >= n {
                return count;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state.accepted.lock().await.len();
            }
        }
    }
}

async fn answer(
    state: &State,
    behaviour: &Behaviour,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(delay) = behaviour.delay {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = request.into_parts();
    let body = match server::read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let event = match codec::decode(&parts.headers, body) {
        Ok(event) => event,
        Err(e) => {
            state.rejected.fetch_add(1, Ordering::Relaxed);
            return server::text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if behaviour.fail_ratio > 0.0 && next_unit(&state.seed) < behaviour.fail_ratio {
        return server::text(
            behaviour
                .fail_status
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "failing on purpose",
        );
    }
    let reply = behaviour.reply.as_ref().and_then(|reply| reply(&event));
    state.accepted.lock().await.push(event);
    state.changed.notify_waiters();
    match reply {
        None => server::text(StatusCode::ACCEPTED, ""),
        Some(reply) => {
            let (headers, body) = codec::encode(&reply, codec::ContentMode::Binary);
            let mut response = Response::new(Full::new(body));
            *response.headers_mut() = headers;
            response
        }
    }
}

/// A shared xorshift generator: deterministic over a run, good enough to fail "half" the requests.
fn next_unit(seed: &AtomicU64) -> f64 {
    let mut x = seed.load(Ordering::Relaxed);
    loop {
        let mut next = x;
        next ^= next << 13;
        next ^= next >> 7;
        next ^= next << 17;
        match seed.compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (next >> 11) as f64 / (1u64 << 53) as f64,
            Err(current) => x = current,
        }
    }
}
