//! The webhook over HTTPS: hyper 1 on tokio-rustls.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::admission::Webhook;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may wait for a request's headers, idle keep-alive time included.
/// Longer than the API server's idle timeout (90 s), so that it is always the API server that
/// closes an idle connection: a request sent just as the server closed would fail, and with
/// `failurePolicy: Fail` so would the user's.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Knative's validating and defaulting webhooks served over HTTPS (HTTP/1.1), as the API
/// server calls them.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use knative_serving::webhook::{self, Webhook, WebhookServer};
///
/// let certs = webhook::self_signed(&["knative-webhook.knative-serving.svc"])?;
/// // Register `certs.ca_pem` as the caBundle of the webhook configurations, then:
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// WebhookServer::new(Webhook::default(), certs.tls_config()?)
///     .serve(listener, async { tokio::signal::ctrl_c().await.unwrap_or_default() })
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct WebhookServer {
    webhook: Arc<Webhook>,
    tls: Arc<ServerConfig>,
}

impl WebhookServer {
    /// Serves `webhook` with the TLS configuration `tls` (see
    /// [`tls_config`](super::tls_config), [`self_signed`](super::self_signed)).
    pub fn new(webhook: Webhook, tls: Arc<ServerConfig>) -> Self {
        WebhookServer {
            webhook: Arc::new(webhook),
            tls,
        }
    }

    /// Accepts connections on `listener` until `shutdown` completes, then stops accepting,
    /// lets requests in flight finish, and returns.
    ///
    /// Connections that fail (a bad handshake, a client that goes away) are logged and
    /// dropped; they never stop the server.
    ///
    /// # Errors
    /// None so far: failing accepts are retried. The `Result` leaves room for errors a
    /// future listener may have.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let webhook = self.webhook.clone();
                        let acceptor = acceptor.clone();
                        let stopped = stopped.clone();
                        connections.spawn(async move {
                            if let Err(e) = connection(stream, acceptor, webhook, stopped).await {
                                tracing::debug!(%peer, error = %e, "webhook connection failed");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "webhook cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One client connection: the TLS handshake, then HTTP/1.1 requests until the client closes
/// or the server stops.
async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    webhook: Arc<Webhook>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let tls = tokio::select! {
        tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => tls??,
        () = stop_requested(&mut stopped) => return Ok(()),
    };
    let service = service_fn(move |request| {
        let webhook = webhook.clone();
        async move { Ok::<_, Infallible>(webhook.handle(request).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served?,
        () = stop_requested(&mut stopped) => {
            conn.as_mut().graceful_shutdown();
            conn.await?;
        }
    }
    Ok(())
}

/// Completes once the server stops (or is gone). The watch's read guard is dropped at once, so
/// the connection future stays `Send`.
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
